/* `recstream eval`: offline evaluation of ALS beside the popularity
 * baseline. Reads an event file (or generates a synthetic log), splits it
 * (leave-last-out per user, or a global time cut), trains ALS on the
 * training part and ranks every unseen item for every test user, then
 * prints HR, precision, recall, NDCG and MAP at each k and catalogue
 * coverage as a table, and as JSON on request. Exit 1 on a run-time
 * failure (unreadable input, no test users), 2 on a bad flag. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ab.h"
#include "commands.h"
#include "model.h"
#include "state.h"
#include "util.h"

#include "eval_int.h"

static const char about[] =
    "Evaluates ALS beside a popularity baseline offline. The log comes from an event file\n"
    "(--input; TSV, CSV or JSON lines, mapped as for `train`) or from the synthetic\n"
    "generator (--synthetic N). It is split per user (leave-last-out: each user's last\n"
    "--holdout distinct items are held out) or by time (--split time: events at or after\n"
    "--cut-time, or the last --test-fraction of them, are held out). ALS trains on the\n"
    "rest; every test user gets a full ranking of all items they have not had in training,\n"
    "and HR, precision, recall, NDCG and MAP at each k and catalogue coverage are reported\n"
    "as a table on stdout and as JSON with --json FILE ('-' for stdout).\n"
    "--replay LOG instead cuts the time-ordered log, trains on the first part and replays\n"
    "the rest event by event through the processor's per-user code, reporting next-event\n"
    "HR, NDCG and coverage per strategy (popular, offline, online, foldin, the blends,\n"
    "each --variant) and the replay's events/s; --search STRATEGY tunes H, K, the\n"
    "half-life and the type weights on it (docs/eval.md).\n"
    "Examples:\n"
    "  recstream eval --synthetic 1000000 --users 20000 --items 5000\n"
    "  recstream eval --input u.data --columns user,item,weight,ts --ts-unit s --split time\n"
    "  recstream eval --replay u.data --columns user,item,weight,ts --ts-unit s\n"
    "  recstream eval --replay synthetic --synthetic 1000000 --drift 0.2";

static int parse_ks(const char *s, eval_plan *p) {
    p->n_k = 0;
    while (*s) {
        char *end;
        long k = strtol(s, &end, 10);
        if (end == s || k < 1 || k > 1000 || p->n_k == MODEL_EVAL_MAX_K) return -1;
        for (uint32_t q = 0; q < p->n_k; q++)
            if (p->ks[q] >= k) return -1; /* ascending, no repeats */
        p->ks[p->n_k++] = (uint32_t)k;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return p->n_k ? 0 : -1;
}

/* "listen=1,view=0.5,like=3"; types not named keep their default. */
static int parse_type_weights(const char *s, float *w) {
    char buf[256];
    if (strlen(s) >= sizeof(buf)) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return -1;
        int t = codec_event_type_parse(tok, (size_t)(eq - tok));
        double v;
        if (t < 0 || util_parse_double(eq + 1, 0, 1e6, &v)) return -1;
        w[t] = (float)v;
    }
    return 0;
}

static int resolve_als(const util_cli *cli, const eval_cfg *c, model_als_params *a) {
    if (cmd_als_params(cli, &c->als, a)) return -1;
    a->threads = (int)c->threads;
    if (c->synth.seed != UNSET) a->seed = (uint64_t)c->synth.seed;
    if (c->type_weights && parse_type_weights(c->type_weights, a->type_weight))
        return util_cli_error(cli, "--type-weights: expected e.g. listen=1,view=0.5,like=3"), -1;
    return 0;
}

/* Checks that need more than one flag, and turns strings into values. */
static int resolve(const util_cli *cli, const eval_cfg *c, int n_pos, eval_plan *p) {
    memset(p, 0, sizeof(*p));
    if (n_pos) return util_cli_error(cli, "unexpected argument; the log goes in --input"), -1;
    if ((c->synthetic == UNSET) == !c->input)
        return util_cli_error(cli, "give either --input FILE or --synthetic N"), -1;
    if (!strcmp(c->split, "leave-last-out"))
        p->leave_last_out = 1;
    else if (strcmp(c->split, "time"))
        return util_cli_error(cli, "--split: expected leave-last-out or time, not '%s'", c->split),
               -1;
    if (c->cut_time != UNSET && p->leave_last_out)
        return util_cli_error(cli, "--cut-time needs --split time"), -1;
    if (parse_ks(c->ks, p))
        return util_cli_error(cli,
                              "--k: expected up to %d ascending cut-offs in 1..1000, e.g. "
                              "5,10,20, not '%s'",
                              MODEL_EVAL_MAX_K, c->ks),
               -1;
    if (c->replay && p->ks[p->n_k - 1] > 255)
        return util_cli_error(cli, "--k: the replay's lists hold at most 255 items"), -1;
    if (c->log_level) {
        int l = util_log_level_parse(c->log_level);
        if (l < 0) return util_cli_error(cli, "--log-level: unknown '%s'", c->log_level), -1;
        util_log_set_level((util_log_level)l);
    }
    if (producer_file_resolve(cli, &c->file, c->input, &p->file)) return -1;
    return resolve_als(cli, c, &p->als);
}

/* ==== The log ==== */

static void warn_line(const char *msg, void *opaque) {
    (void)opaque;
    log_warn("skipping %s", msg);
}

static model_dataset *synth_log(const eval_cfg *c) {
    model_synth_params sp;
    producer_synth_params(&c->synth, &sp);
    sp.expected_events = (uint64_t)c->synthetic;
    log_info("generating %lld synthetic events: %u users, %u items, %u clusters, seed %llu",
             (long long)c->synthetic, sp.users, sp.items, sp.clusters, (unsigned long long)sp.seed);
    model_synth *g = model_synth_new(&sp);
    model_dataset *ds = model_dataset_new();
    codec_event ev;
    for (int64_t i = 0; i < c->synthetic; i++) {
        model_synth_next(g, &ev);
        model_dataset_add(ds, &ev);
    }
    model_synth_free(g);
    return ds;
}

/* --min-weight: keeps events whose explicit weight (a rating) reaches the
 * threshold, and events without one. The id tables keep every id: an id
 * with no row left is simply never seen. */
static void drop_light(model_dataset *ds, float min_weight) {
    size_t kept = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->rows[i].weight < 0 || ds->rows[i].weight >= min_weight)
            ds->rows[kept++] = ds->rows[i];
    log_info("--min-weight %g: kept %zu of %zu events", (double)min_weight, kept, ds->n);
    ds->n = kept;
}

model_dataset *eval_load_log(const eval_cfg *c, const eval_plan *p, size_t *n_bad) {
    *n_bad = 0;
    if (c->synthetic != UNSET) return synth_log(c);
    model_dataset *ds = model_dataset_new();
    char err[512];
    if (model_dataset_read_file(ds, c->input, &p->file, c->file.strict, n_bad, warn_line, NULL, err,
                                sizeof(err))) {
        log_error("%s", err);
        model_dataset_free(ds);
        return NULL;
    }
    if (*n_bad) log_warn("%s: skipped %zu bad lines", c->input, *n_bad);
    if (c->min_weight > 0) drop_light(ds, (float)c->min_weight);
    return ds;
}

/* ==== Split, train, rank ==== */

typedef struct eval_run {
    model_split split;
    int64_t cut_ms;
    double train_seconds;
    model_eval_result als, pop;
} eval_run;

static int make_split(const eval_cfg *c, const eval_plan *p, const model_dataset *ds, eval_run *r) {
    char err[256];
    int rc;
    r->cut_ms = 0;
    if (p->leave_last_out) {
        rc = model_split_leave_last_out(ds, (uint32_t)c->holdout, &r->split, err, sizeof(err));
    } else {
        r->cut_ms = c->cut_time != UNSET ? c->cut_time : model_split_time_cut(ds, c->test_fraction);
        rc = model_split_time(ds, r->cut_ms, &r->split, err, sizeof(err));
    }
    if (rc) return log_error("split: %s", err), -1;
    const model_split *s = &r->split;
    log_info("split %s: %zu training and %zu held-out interactions, %u test users (%u without "
             "training data skipped), %zu held-out items never seen in training",
             c->split, s->train.n, s->test_rows, s->test_users, s->cold_users, s->test_cold_items);
    if (!s->test_users) return log_error("split: no test users; nothing to evaluate"), -1;
    return 0;
}

static void on_iteration(uint32_t it, double loss, double seconds, void *opaque) {
    (void)opaque;
    log_info("ALS iteration %u: loss %.6g (%.2f s)", it, loss, seconds);
}

static int evaluate(const eval_plan *p, eval_run *r) {
    char err[256];
    model_als als;
    int64_t t0 = util_mono_ns();
    if (model_als_train(&r->split.train, &p->als, on_iteration, NULL, &als, err, sizeof(err)))
        return log_error("ALS: %s", err), -1;
    r->train_seconds = (double)(util_mono_ns() - t0) / 1e9;
    int rc = model_eval_run(&r->split, model_score_als, &als, p->ks, p->n_k, p->als.threads,
                            &r->als, err, sizeof(err));
    model_als_free(&als);
    if (rc) return log_error("eval: %s", err), -1;
    float *pop = util_malloc(((size_t)r->split.n_items + 1) * sizeof(float));
    model_eval_popularity(&r->split.train, p->als.type_weight, r->split.n_items, pop);
    rc = model_eval_run(&r->split, model_score_static, pop, p->ks, p->n_k, p->als.threads, &r->pop,
                        err, sizeof(err));
    free(pop);
    if (rc) return log_error("eval: %s", err), -1;
    log_info("ranked %u users x %u items: ALS %.2f s, popularity %.2f s", r->als.users,
             r->split.n_items, r->als.seconds, r->pop.seconds);
    return 0;
}

/* ==== Output ==== */

static void print_table(const eval_run *r) {
    const model_eval_result *rows[2] = {&r->als, &r->pop};
    const char *names[2] = {"ALS", "popularity"};
    static const char *metric[] = {"HR", "P", "R", "NDCG", "MAP", "Cov"};
    char head[16];
    printf("%-11s", "model");
    for (int m = 0; m < 6; m++)
        for (uint32_t q = 0; q < r->als.n_k; q++) {
            snprintf(head, sizeof(head), "%s@%u", metric[m], r->als.at[q].k);
            printf(" %8s", head);
        }
    printf("\n");
    for (int i = 0; i < 2; i++) {
        printf("%-11s", names[i]);
        for (int m = 0; m < 6; m++)
            for (uint32_t q = 0; q < rows[i]->n_k; q++) {
                const model_eval_metrics *x = &rows[i]->at[q];
                double v[] = {x->hr, x->precision, x->recall, x->ndcg, x->map, x->coverage};
                printf(" %8.4f", v[m]);
            }
        printf("\n");
    }
}

static json_t *result_json(const model_eval_result *res) {
    json_t *at = json_array();
    for (uint32_t q = 0; q < res->n_k; q++) {
        const model_eval_metrics *m = &res->at[q];
        json_array_append_new(at, json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "k",
                                            (json_int_t)m->k, "hr", m->hr, "precision",
                                            m->precision, "recall", m->recall, "ndcg", m->ndcg,
                                            "map", m->map, "coverage", m->coverage));
    }
    return json_pack("{s:I, s:f, s:o}", "users", (json_int_t)res->users, "rank_seconds",
                     res->seconds, "at", at);
}

static json_t *report_json(const eval_cfg *c, const eval_plan *p, const model_dataset *ds,
                           size_t n_bad, const eval_run *r) {
    const model_split *s = &r->split;
    json_t *data = json_pack("{s:s, s:I, s:I, s:I, s:I}", "source",
                             c->synthetic != UNSET ? "synthetic" : c->input, "interactions",
                             (json_int_t)ds->n, "users", (json_int_t)s->n_users, "items",
                             (json_int_t)s->n_items, "bad_lines", (json_int_t)n_bad);
    json_t *split = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I}", "kind", c->split, "train_rows", (json_int_t)s->train.n,
        "test_rows", (json_int_t)s->test_rows, "test_users", (json_int_t)s->test_users,
        "cold_users", (json_int_t)s->cold_users, "test_cold_items", (json_int_t)s->test_cold_items);
    if (p->leave_last_out)
        json_object_set_new(split, "holdout", json_integer(c->holdout));
    else
        json_object_set_new(split, "cut_ms", json_integer(r->cut_ms));
    const model_als_params *a = &p->als;
    json_t *als =
        json_pack("{s:I, s:I, s:f, s:f, s:b, s:s, s:I, s:I, s:f}", "factors",
                  (json_int_t)a->factors, "iterations", (json_int_t)a->iterations, "regularization",
                  (double)a->regularization, "alpha", (double)a->alpha, "log_confidence",
                  a->log_confidence, "solver", c->als.solver, "cg_steps", (json_int_t)a->cg_steps,
                  "seed", (json_int_t)a->seed, "train_seconds", r->train_seconds);
    return json_pack("{s:o, s:o, s:o, s:{s:o, s:o}}", "data", data, "split", split, "als_params",
                     als, "results", "als", result_json(&r->als), "popularity",
                     result_json(&r->pop));
}

int eval_write_json(const char *path, json_t *doc) {
    int rc = !strcmp(path, "-") ? json_dumpf(doc, stdout, JSON_INDENT(2))
                                : json_dump_file(doc, path, JSON_INDENT(2));
    if (rc) return log_error("cannot write %s", path), -1;
    if (!strcmp(path, "-")) printf("\n");
    return 0;
}

/* ==== The command ==== */

static int eval_main(const eval_cfg *c, const eval_plan *p) {
    size_t n_bad;
    model_dataset *ds = eval_load_log(c, p, &n_bad);
    if (!ds) return 1;
    eval_run r;
    memset(&r, 0, sizeof(r));
    int rc = 1;
    if (make_split(c, p, ds, &r) == 0 && evaluate(p, &r) == 0) {
        int to_stdout = c->json && !strcmp(c->json, "-");
        if (!to_stdout) print_table(&r);
        rc = 0;
        if (c->json) {
            json_t *doc = report_json(c, p, ds, n_bad, &r);
            rc = eval_write_json(c->json, doc) ? 1 : 0;
            json_decref(doc);
        }
    }
    model_split_free(&r.split);
    model_dataset_free(ds);
    return rc;
}

int eval_list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}

static const char *const replay_builtin[] = {"popular", "offline",       "online",
                                             "foldin",  "interleave",    "weighted",
                                             "rerank",  "rerank+foldin", "bandit"};
#define REPLAY_BUILTINS (sizeof(replay_builtin) / sizeof(replay_builtin[0]))

static int is_builtin(const char *name, size_t len) {
    for (size_t i = 0; i < REPLAY_BUILTINS; i++)
        if (strlen(replay_builtin[i]) == len && !strncmp(name, replay_builtin[i], len)) return 1;
    return 0;
}

/* --strategies: every name a built-in one. */
static int strategies_ok(const char *list) {
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!is_builtin(p, len)) return 0;
        if (!end) return 1;
        p = end + 1;
    }
}

/* --replay LOG stands for --input LOG (or the generator) and a time cut. */
static int replay_flags(const util_cli *cli, eval_cfg *c) {
    if (!c->replay) {
        if (c->search) return util_cli_error(cli, "--search needs --replay"), -1;
        return 0;
    }
    if (c->input) return util_cli_error(cli, "--replay takes the log; drop --input"), -1;
    if (!strcmp(c->replay, "synthetic")) {
        if (c->synthetic == UNSET) c->synthetic = 1000000;
    } else if (c->synthetic != UNSET) {
        return util_cli_error(cli, "--synthetic needs --replay synthetic"), -1;
    } else {
        c->input = c->replay;
    }
    int known = !c->search || is_builtin(c->search, strlen(c->search));
    if (!known)
        return util_cli_error(cli,
                              "--search: expected a built-in strategy (online, rerank, ...), "
                              "not '%s'",
                              c->search),
               -1;
    if (c->strategies && !strategies_ok(c->strategies))
        return util_cli_error(
                   cli,
                   "--strategies: expected names from popular, offline, online, "
                   "foldin, interleave, weighted, rerank, rerank+foldin, bandit, not '%s'",
                   c->strategies),
               -1;
    if (strcmp(c->popular, "live") && strcmp(c->popular, "model"))
        return util_cli_error(cli, "--popular: expected live or model, not '%s'", c->popular), -1;
    if (c->half_life_ms <= 0) return util_cli_error(cli, "--half-life: must be positive"), -1;
    if (c->popular_half_life_ms < 0)
        return util_cli_error(cli, "--popular-half-life: must not be negative"), -1;
    c->split = "time";
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_cfg c = {.file = PRODUCER_FILE_FLAGS_INIT,
                  .synth = PRODUCER_SYNTH_FLAGS_INIT,
                  .als = CMD_ALS_FLAGS_INIT,
                  .split = "leave-last-out",
                  .ks = "5,10,20",
                  .synthetic = UNSET,
                  .holdout = 1,
                  .cut_time = UNSET,
                  .threads = 0,
                  .test_fraction = 0.2,
                  .popular = "live",
                  .history = 50,
                  .neighbours = 50,
                  .half_life_ms = 86400000,
                  .rerank_mix = 1.0,
                  .bandit_explore = 0.1};
    ab_init(&c.variants);
    const util_opt head[] = {
        {"input", 'i', UTIL_OPT_STRING, &c.input, .arg = "FILE", .help = "event file ('-': stdin)"},
        {"synthetic", 'n', UTIL_OPT_INT, &c.synthetic, 1, UINT32_MAX - 1, .arg = "N",
         .help = "evaluate on N synthetic events instead of a file"},
    };
    const util_opt mid[] = {
        {"seed", 0, UTIL_OPT_INT, &c.synth.seed, 0, INT64_MAX, .arg = "N",
         .help = "seed of the generator and of ALS (42)"},
        {"split", 's', UTIL_OPT_STRING, &c.split, .arg = "KIND",
         .help = "leave-last-out (default) or time"},
        {"holdout", 0, UTIL_OPT_INT, &c.holdout, 1, 1000, .arg = "N",
         .help = "leave-last-out: distinct items held out per user (1)"},
        {"test-fraction", 0, UTIL_OPT_DOUBLE, &c.test_fraction, .dmin = 0.001, .dmax = 0.999,
         .arg = "F", .help = "time split: share of the latest events held out (0.2)"},
        {"cut-time", 0, UTIL_OPT_INT, &c.cut_time, INT64_MIN, INT64_MAX, .arg = "MS",
         .help = "time split: hold out events at or after this time (epoch ms)"},
        {"k", 'k', UTIL_OPT_STRING, &c.ks, .arg = "LIST", .help = "cut-offs (5,10,20)"},
    };
    const util_opt tail[] = {
        {"type-weights", 0, UTIL_OPT_STRING, &c.type_weights, .arg = "LIST",
         .help = "event weights (listen=1,view=0.5,like=3)"},
        {"threads", 0, UTIL_OPT_INT, &c.threads, 0, 64, .arg = "N",
         .help = "threads for training and ranking (0: all cores)"},
        {"json", 'j', UTIL_OPT_STRING, &c.json, .arg = "FILE",
         .help = "also write the results as JSON ('-': stdout, instead of the table)"},
        {"min-weight", 0, UTIL_OPT_DOUBLE, &c.min_weight, .dmin = 0, .dmax = 1e9, .arg = "W",
         .help = "drop events whose explicit weight (e.g. a rating) is below W"},
        {"replay", 'r', UTIL_OPT_STRING, &c.replay, .arg = "LOG",
         .help = "next-event replay of LOG (a file, or 'synthetic' for --synthetic N events)"},
        {"history", 0, UTIL_OPT_INT, &c.history, 1, STATE_H_MAX, .arg = "H",
         .help = "replay: events kept per user (50)"},
        {"neighbours", 0, UTIL_OPT_INT, &c.neighbours, 1, 1000, .arg = "K",
         .help = "replay: neighbours per item, in the model and online (50)"},
        {"half-life", 0, UTIL_OPT_DURATION, &c.half_life_ms, .arg = "DUR",
         .help = "replay: decay half-life of online scores (1d)"},
        {"include-seen", 0, UTIL_OPT_FLAG, &c.include_seen,
         .help = "replay: recommend window items too, and score repeats"},
        {"popular", 0, UTIL_OPT_STRING, &c.popular, .arg = "live|model",
         .help = "replay: popular list counted live over the log (default) or the model's"},
        {"popular-half-life", 0, UTIL_OPT_DURATION, &c.popular_half_life_ms, .arg = "DUR",
         .help = "replay: decay of live popularity (0: plain counts)"},
        {"rerank-mix", 0, UTIL_OPT_DOUBLE, &c.rerank_mix, .dmin = 0, .dmax = 1000, .arg = "X",
         .help = "replay: weight of the sources' rank merge beside the user vector in rerank (1)"},
        {"bandit-explore", 0, UTIL_OPT_DOUBLE, &c.bandit_explore, .dmin = 0, .dmax = 100,
         .arg = "X", .help = "replay: UCB exploration of the bandit's source weights (0.1)"},
        {"variant", 0, UTIL_OPT_FUNC, &c.variants, 0, 0, 0, 0, ab_opt_variant, "SPEC",
         "replay: also evaluate this blend (as run's --variant; repeatable)"},
        {"strategies", 0, UTIL_OPT_STRING, &c.strategies, .arg = "LIST",
         .help = "replay: only these built-in strategies (default all: popular,offline,online,"
                 "foldin,interleave,weighted,rerank,bandit)"},
        {"search", 0, UTIL_OPT_STRING, &c.search, .arg = "STRATEGY",
         .help = "replay: grid search of H, K, half-life and type weights for STRATEGY's HR@10"},
        {"log-level", 0, UTIL_OPT_STRING, &c.log_level, .arg = "LEVEL",
         .help = "error, warn, info (default) or debug"},
    };
    util_opt opts[sizeof(head) / sizeof(*head) + PRODUCER_FILE_OPTS + PRODUCER_SYNTH_OPTS +
                  sizeof(mid) / sizeof(*mid) + CMD_ALS_OPTS + sizeof(tail) / sizeof(*tail)];
    size_t n = util_opts_add(opts, 0, head, sizeof(head) / sizeof(*head));
    n += producer_file_opts(&c.file, opts + n);
    n += producer_synth_opts(&c.synth, opts + n);
    n = util_opts_add(opts, n, mid, sizeof(mid) / sizeof(*mid));
    n += cmd_als_opts(&c.als, opts + n);
    n = util_opts_add(opts, n, tail, sizeof(tail) / sizeof(*tail));
    const util_cli cli = {"recstream eval", "[OPTIONS]", about, opts, n, NULL, NULL};
    int n_pos = 0, rc = util_cli_parse(&cli, argc, argv, &n_pos);
    eval_plan plan;
    if (rc)
        rc = rc > 0 ? 0 : 2;
    else if (replay_flags(&cli, &c))
        rc = 2;
    else if (resolve(&cli, &c, n_pos, &plan))
        rc = 2;
    else
        rc = c.replay ? eval_replay_main(&c, &plan) : eval_main(&c, &plan);
    util_cli_free();
    return rc;
}
