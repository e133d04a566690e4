/* `recstream inspect`: looks into the processor's state store and model
 * files without changing them.
 *
 *   inspect user ID --state-dir DIR [--partition P] [--json]
 *   inspect partitions --state-dir DIR [--json]
 *   inspect dump --state-dir DIR [--partition P]      (JSON lines, all users)
 *   inspect export --state-dir DIR --partition P --out FILE
 *   inspect model FILE [--top N]
 *   inspect item ID --model FILE
 *
 * The store is opened read-only (no lock), so inspect works beside a
 * running processor and sees the state as of the moment it opened. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "commands.h"
#include "model.h"
#include "state.h"
#include "util.h"

typedef struct inspect_args {
    const char *state_dir, *model, *out;
    int64_t partition, top;
    int json;
} inspect_args;

/* ==== JSON of one user ==== */

static json_t *jstr(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    return j ? j : json_string("(invalid UTF-8)");
}

static const char *type_name(uint8_t t) {
    return t < CODEC_EVENT_TYPES ? codec_event_type_name((codec_event_type)t) : "UNKNOWN";
}

static const char *source_name(uint8_t s) {
    return s < CODEC_SOURCES ? codec_source_name((codec_source)s) : "UNKNOWN";
}

static const char *dec_name(state_dec_result r) {
    return r == STATE_DEC_OK ? "ok" : r == STATE_DEC_CORRUPT ? "corrupt" : "unknown_version";
}

static json_t *user_json(int32_t partition, const char *id, size_t len, const state_user *u,
                         state_dec_result dec) {
    json_t *events = json_array(), *pubs = json_array();
    for (uint32_t i = 0; i < u->n_events; i++) {
        const state_event *e = &u->events[i];
        json_t *je = json_pack("{s:o, s:s, s:I}", "item", jstr(state_user_item(u, e), e->item_len),
                               "type", type_name(e->type), "ts", (json_int_t)e->ts_ms);
        if (e->weight >= 0) json_object_set_new(je, "weight", json_real(e->weight));
        json_array_append_new(events, je);
    }
    for (uint32_t i = 0; i < u->n_published; i++) {
        const state_pub *p = &u->published[i];
        json_array_append_new(
            pubs, json_pack("{s:o, s:s, s:f}", "item", jstr(state_user_pub_item(u, p), p->item_len),
                            "source", source_name(p->source), "score", (double)p->score));
    }
    return json_pack("{s:i, s:o, s:s, s:I, s:o, s:{s:s, s:I, s:o}}", "partition", partition,
                     "user_id", jstr(id, len), "record", dec_name(dec), "last_seen_ms",
                     (json_int_t)u->last_seen_ms, "events", events, "published", "variant",
                     u->variant, "ts", (json_int_t)u->published_ts_ms, "items", pubs);
}

static void print_json_line(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(j);
}

static void print_user_text(int32_t partition, const char *id, size_t len, const state_user *u,
                            state_dec_result dec) {
    printf("user %.*s (partition %d, record %s, last seen %lld)\n", (int)len, id, partition,
           dec_name(dec), (long long)u->last_seen_ms);
    printf("history: %u events, oldest first\n", u->n_events);
    for (uint32_t i = 0; i < u->n_events; i++) {
        const state_event *e = &u->events[i];
        printf("  %lld %-6s %.*s", (long long)e->ts_ms, type_name(e->type), (int)e->item_len,
               state_user_item(u, e));
        if (e->weight >= 0) printf(" weight=%g", (double)e->weight);
        putchar('\n');
    }
    printf("published: %u items, variant \"%s\", at %lld\n", u->n_published, u->variant,
           (long long)u->published_ts_ms);
    for (uint32_t i = 0; i < u->n_published; i++) {
        const state_pub *p = &u->published[i];
        printf("  %2u. %.*s %s %.4f\n", i + 1, (int)p->item_len, state_user_pub_item(u, p),
               source_name(p->source), (double)p->score);
    }
}

/* ==== State subcommands ==== */

static state_store *open_ro(const inspect_args *a) {
    state_options o;
    state_options_default(&o);
    o.read_only = 1;
    o.block_cache_mb = 8;
    state_store *s = NULL;
    char err[512];
    if (state_open(a->state_dir, &o, &s, err, sizeof(err))) {
        fprintf(stderr, "recstream inspect: %s\n", err);
        return NULL;
    }
    return s;
}

/* Looks the user up under each partition (one multi-get): the given one,
 * or every partition the store holds (a user changes partition only when
 * the topic is repartitioned, so usually one answers). */
static int lookup_user(state_store *s, const inspect_args *a, const char *id, int *found, char *err,
                       size_t errsz) {
    int32_t *parts = NULL;
    size_t n = 0;
    if (a->partition >= 0) {
        parts = util_malloc(sizeof(*parts));
        parts[n++] = (int32_t)a->partition;
    } else if (state_partition_list(s, &parts, &n, err, errsz)) {
        return -1;
    }
    const char **ids = util_malloc((n + 1) * sizeof(*ids));
    size_t *lens = util_malloc((n + 1) * sizeof(*lens));
    state_user **u = util_calloc(n + 1, sizeof(*u));
    for (size_t i = 0; i < n; i++) ids[i] = id, lens[i] = strlen(id);
    state_stats before, after;
    state_get_stats(s, &before);
    int rc = n ? state_multi_get(s, parts, ids, lens, n, u, err, errsz) : 0;
    state_get_stats(s, &after);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!u[i]->n_events && !u[i]->n_published && !u[i]->last_seen_ms) continue;
        (*found)++;
        if (a->json)
            print_json_line(user_json(parts[i], id, lens[i], u[i], STATE_DEC_OK));
        else
            print_user_text(parts[i], id, lens[i], u[i], STATE_DEC_OK);
    }
    if (rc == 0 && after.decode_failed + after.unknown_version >
                       before.decode_failed + before.unknown_version) {
        snprintf(err, errsz,
                 "the record of user %s is unreadable (corrupt or newer format); "
                 "`inspect dump` shows where",
                 id);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++) state_user_free(u[i]);
    free(u);
    free(ids);
    free(lens);
    free(parts);
    return rc;
}

static int inspect_user(const inspect_args *a, const char *id) {
    state_store *s = open_ro(a);
    if (!s) return 1;
    char err[512];
    int found = 0;
    int rc = lookup_user(s, a, id, &found, err, sizeof(err));
    state_close(s);
    if (rc) {
        fprintf(stderr, "recstream inspect: %s\n", err);
        return 1;
    }
    if (!found) {
        fprintf(stderr, "recstream inspect: user %s not found\n", id);
        return 1;
    }
    return 0;
}

static int dump_cb(int32_t partition, const char *id, size_t len, const state_user *u,
                   state_dec_result dec, void *opaque) {
    print_json_line(user_json(partition, id, len, u, dec));
    return 0;
}

static int inspect_dump(const inspect_args *a) {
    state_store *s = open_ro(a);
    if (!s) return 1;
    char err[512];
    int rc = state_foreach_user(s, (int32_t)a->partition, dump_cb, NULL, err, sizeof(err));
    state_close(s);
    if (rc) fprintf(stderr, "recstream inspect: %s\n", err);
    return rc ? 1 : 0;
}

static int offset_cb(const char *topic, int32_t partition, int64_t next, void *opaque) {
    json_t *arr = opaque;
    json_array_append_new(arr, json_pack("{s:s, s:i, s:I}", "topic", topic, "partition", partition,
                                         "next_offset", (json_int_t)next));
    return 0;
}

static int inspect_partitions(const inspect_args *a) {
    state_store *s = open_ro(a);
    if (!s) return 1;
    char err[512];
    int32_t *parts = NULL;
    size_t n = 0;
    json_t *out = json_array();
    int rc = state_partition_list(s, &parts, &n, err, sizeof(err));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t users = 0;
        json_t *offs = json_array();
        rc = state_partition_count_users(s, parts[i], &users, err, sizeof(err));
        if (rc == 0) rc = state_foreach_offset(s, parts[i], offset_cb, offs, err, sizeof(err));
        json_array_append_new(out, json_pack("{s:i, s:I, s:o}", "partition", parts[i], "users",
                                             (json_int_t)users, "offsets", offs));
    }
    free(parts);
    state_stats st;
    state_get_stats(s, &st);
    state_close(s);
    if (rc) {
        fprintf(stderr, "recstream inspect: %s\n", err);
        json_decref(out);
        return 1;
    }
    if (a->json) {
        print_json_line(out);
        return 0;
    }
    printf("%-9s %10s  %s\n", "partition", "users", "next offsets");
    size_t i;
    json_t *p;
    json_array_foreach(out, i, p) {
        printf("%-9d %10lld ", (int)json_integer_value(json_object_get(p, "partition")),
               (long long)json_integer_value(json_object_get(p, "users")));
        size_t j;
        json_t *o;
        json_array_foreach(json_object_get(p, "offsets"), j, o) {
            printf(" %s=%lld", json_string_value(json_object_get(o, "topic")),
                   (long long)json_integer_value(json_object_get(o, "next_offset")));
        }
        putchar('\n');
    }
    printf("approximate size: %.1f MiB\n", (double)st.approx_bytes / (1 << 20));
    json_decref(out);
    return 0;
}

static int inspect_export(const inspect_args *a) {
    state_store *s = open_ro(a);
    if (!s) return 1;
    char err[512];
    uint64_t recs = 0;
    int rc = state_partition_export(s, (int32_t)a->partition, a->out, &recs, err, sizeof(err));
    state_close(s);
    if (rc) {
        fprintf(stderr, "recstream inspect: %s\n", err);
        return 1;
    }
    fprintf(stderr, "exported partition %lld: %llu records to %s\n", (long long)a->partition,
            (unsigned long long)recs, a->out);
    return 0;
}

/* ==== Model subcommands ==== */

static model *load_model(const char *path) {
    model *m = NULL;
    char err[512];
    if (model_load(path, &m, err, sizeof(err))) {
        fprintf(stderr, "recstream inspect: %s\n", err);
        return NULL;
    }
    return m;
}

static int inspect_model(const inspect_args *a, const char *path) {
    model *m = load_model(path);
    if (!m) return 1;
    printf("model %s\n", m->version);
    printf("created_ms %lld\nitems %u\nfactors %u\nneighbours per item %u\n",
           (long long)m->created_ms, m->n_items, m->factors, m->k);
    printf("regularization %g\nalpha %g\n", (double)m->regularization, (double)m->alpha);
    uint32_t top = m->n_popular < (uint32_t)a->top ? m->n_popular : (uint32_t)a->top;
    printf("popular (top %u of %u):\n", top, m->n_popular);
    for (uint32_t i = 0; i < top; i++)
        printf("  %2u. %s %.4f\n", i + 1, model_ids_name(m->items, m->popular[i]),
               (double)m->popular_score[i]);
    model_free(m);
    return 0;
}

static int inspect_item(const inspect_args *a, const char *id) {
    model *m = load_model(a->model);
    if (!m) return 1;
    uint32_t idx = model_item_index(m, id);
    if (idx == MODEL_NONE) {
        fprintf(stderr, "recstream inspect: item %s is not in model %s\n", id, m->version);
        model_free(m);
        return 1;
    }
    printf("item %s (index %u) in model %s, nearest neighbours:\n", id, idx, m->version);
    uint32_t shown = 0;
    for (uint32_t j = 0; j < m->k && shown < (uint32_t)a->top; j++) {
        uint32_t nb = m->nbr_idx[(size_t)idx * m->k + j];
        if (nb == MODEL_NONE) break;
        printf("  %2u. %s %.4f\n", ++shown, model_ids_name(m->items, nb),
               (double)m->nbr_sim[(size_t)idx * m->k + j]);
    }
    model_free(m);
    return 0;
}

/* ==== Dispatch ==== */

static int need(const util_cli *cli, const char *what, const char *value, const char *sub) {
    if (value) return 0;
    return util_cli_error(cli, "%s needs %s", sub, what);
}

static int is_one_of(const char *s, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(s, *names)) return 1;
    return 0;
}

static int dispatch(const util_cli *cli, inspect_args *a, int n_pos, char **pos) {
    static const char *const with_arg[] = {"user", "model", "item", NULL};
    static const char *const state_cmds[] = {"user", "partitions", "dump", "export", NULL};
    const char *sub = n_pos > 0 ? pos[0] : "";
    const char *arg = n_pos > 1 ? pos[1] : NULL;
    int want_arg = is_one_of(sub, with_arg);
    if (!want_arg && !is_one_of(sub, state_cmds))
        return util_cli_error(cli,
                              "unknown subcommand \"%s\" (user, partitions, dump, export, "
                              "model, item)",
                              sub);
    if (n_pos != (want_arg ? 2 : 1))
        return util_cli_error(cli, "%s takes %s", sub, want_arg ? "one argument" : "no argument");
    if (is_one_of(sub, state_cmds) && need(cli, "--state-dir", a->state_dir, sub)) return 2;
    if (!strcmp(sub, "user")) return inspect_user(a, arg);
    if (!strcmp(sub, "partitions")) return inspect_partitions(a);
    if (!strcmp(sub, "dump")) return inspect_dump(a);
    if (!strcmp(sub, "export")) {
        if (a->partition < 0) return util_cli_error(cli, "export needs --partition");
        if (need(cli, "--out", a->out, sub)) return 2;
        return inspect_export(a);
    }
    if (!strcmp(sub, "model")) return inspect_model(a, arg);
    if (need(cli, "--model", a->model, sub)) return 2;
    return inspect_item(a, arg);
}

int cmd_inspect(int argc, char **argv) {
    inspect_args a = {.partition = -1, .top = 10};
    const util_opt opts[] = {
        {"state-dir", 's', UTIL_OPT_STRING, &a.state_dir, .arg = "DIR",
         .help = "the processor's state directory (opened read-only)"},
        {"partition", 'p', UTIL_OPT_INT, &a.partition, 0, INT32_MAX, .arg = "P",
         .help = "input partition (user: look only there; dump/export: this one)"},
        {"json", 0, UTIL_OPT_FLAG, &a.json, .help = "machine-readable output (one JSON line)"},
        {"model", 'm', UTIL_OPT_STRING, &a.model, .arg = "FILE", .help = "model file (item)"},
        {"out", 'o', UTIL_OPT_STRING, &a.out, .arg = "FILE", .help = "export file to write"},
        {"top", 'n', UTIL_OPT_INT, &a.top, 1, 100000, .arg = "N",
         .help = "popular items / neighbours to show (default 10)"},
    };
    const util_cli cli = {
        .command = "recstream inspect",
        .usage = "user ID | partitions | dump | export | model FILE | item ID [OPTIONS]",
        .about = "Shows what the processor knows. user ID: a user's history and last published "
                 "list (looked up in every partition unless --partition). partitions: per input "
                 "partition, users stored and next offsets. dump: every user as JSON lines. "
                 "export: one partition's state to a file (restored with the state API's "
                 "import). model FILE: a model's summary. item ID --model FILE: an item's "
                 "neighbours. The state store is opened read-only, so this works beside a "
                 "running processor (it sees the state as of the moment it opened).",
        .opts = opts,
        .n_opts = sizeof(opts) / sizeof(opts[0]),
    };
    int n_pos = 0;
    int rc = util_cli_parse(&cli, argc, argv, &n_pos);
    if (rc != 0) {
        util_cli_free();
        return rc > 0 ? 0 : 2;
    }
    rc = dispatch(&cli, &a, n_pos, argv + 1);
    util_cli_free();
    return rc;
}
