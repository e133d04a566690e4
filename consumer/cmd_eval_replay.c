/* `recstream eval --replay LOG`: next-event evaluation of the live code
 * path. The log is sorted by time and cut (--cut-time, or the last
 * --test-fraction of its events); ALS, the neighbour index, popularity and
 * the offline lists are trained on the first part exactly as `train` makes
 * them, and the rest is replayed through run_replay (the processor's
 * per-user code). Prints HR, NDCG and coverage at each k per strategy and
 * the replay's events/s; --json adds the same as JSON; --search tries a grid
 * of online settings and reports the best. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval_int.h"
#include "run.h"
#include "run_replay.h"
#include "util.h"

/* ==== Training on the first part ==== */

/* The rows before first, with their own id tables: the model must not know
 * items or users that only appear later. */
static model_dataset *train_part(const model_dataset *ds, size_t first) {
    model_dataset *t = model_dataset_new();
    t->cap = first ? first : 1;
    t->rows = util_malloc(t->cap * sizeof(*t->rows));
    for (size_t i = 0; i < first; i++) {
        model_interaction r = ds->rows[i];
        const char *u = model_ids_name(ds->users, r.user), *it = model_ids_name(ds->items, r.item);
        r.user = model_ids_intern(t->users, u, strlen(u));
        r.item = model_ids_intern(t->items, it, strlen(it));
        t->rows[t->n++] = r;
    }
    return t;
}

typedef struct served {
    model *m;
    model_offline *off;
    reload_view v;
    double train_seconds;
} served;

static void served_free(served *s) {
    model_free(s->m);
    model_offline_free(s->off);
}

/* The offline lists go through a temporary file so that the replay serves
 * them by the loader the processor uses. */
static int offline_lists(const model_dataset *train, const model_als *als, uint32_t n,
                         const eval_plan *p, served *s) {
    char dir[512], path[600], err[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/recstream-replay-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return log_error("replay: cannot make a directory %s", dir), -1;
    snprintf(path, sizeof(path), "%s/offline.avro", dir);
    int rc =
        model_offline_write(path, train, als, n, s->m->version, p->als.threads, err, sizeof(err));
    if (!rc) rc = model_offline_load(path, &s->off, err, sizeof(err));
    unlink(path);
    rmdir(dir);
    if (rc) log_error("replay: offline lists: %s", err);
    return rc;
}

static void on_iteration(uint32_t it, double loss, double seconds, void *opaque) {
    (void)opaque;
    log_info("ALS iteration %u: loss %.6g (%.2f s)", it, loss, seconds);
}

static int train_served(const eval_cfg *c, const eval_plan *p, const model_dataset *train,
                        uint32_t n_list, served *s) {
    char err[512];
    model_als als;
    int64_t t0 = util_mono_ns();
    if (model_als_train(train, &p->als, on_iteration, NULL, &als, err, sizeof(err)))
        return log_error("ALS: %s", err), -1;
    int rc =
        model_build(train, &als, &p->als, (uint32_t)c->neighbours, 100, 0, &s->m, err, sizeof(err));
    if (rc)
        log_error("model: %s", err);
    else
        rc = offline_lists(train, &als, n_list, p, s);
    model_als_free(&als);
    s->train_seconds = (double)(util_mono_ns() - t0) / 1e9;
    if (rc) return -1;
    s->v = (reload_view){s->m, s->off, s->m->version, model_offline_version(s->off), {0}};
    return 0;
}

/* ==== Settings of the replay ==== */

static void online_config(const eval_cfg *c, const eval_plan *p, run_config *cfg) {
    run_config_default(cfg);
    cfg->history = (uint32_t)c->history;
    cfg->online.k = (uint32_t)c->neighbours;
    cfg->online.half_life_ms = c->half_life_ms;
    cfg->online.include_seen = c->include_seen;
    memcpy(cfg->online.type_weight, p->als.type_weight, sizeof(cfg->online.type_weight));
}

static void replay_params(const eval_cfg *c, const eval_plan *p, const run_config *cfg,
                          run_replay_params *rp) {
    run_replay_params_default(rp, cfg);
    memcpy(rp->ks, p->ks, sizeof(rp->ks));
    rp->n_k = p->n_k;
    rp->popular_model = !strcmp(c->popular, "model");
    rp->popular_half_life_ms = c->popular_half_life_ms;
    rp->bandit_explore = c->bandit_explore;
    rp->threads = c->threads > 0 ? (int)c->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (size_t s = 0; s < rp->n_strategies; s++)
        if (rp->strategies[s].blend.strategy == MODEL_BLEND_RERANK)
            rp->strategies[s].blend.rerank_mix = (float)c->rerank_mix;
    for (size_t i = 0; i < c->variants.n; i++) {
        const ab_variant *av = &c->variants.variants[i];
        char name[RUN_REPLAY_NAME_MAX];
        snprintf(name, sizeof(name), "variant:%s", av->name);
        model_blend_params b = av->blend;
        if (b.strategy == MODEL_BLEND_RERANK) b.rerank_mix = (float)c->rerank_mix;
        run_replay_add(rp, name, RUN_REPLAY_BLEND, &b);
    }
}

/* ==== Output ==== */

static void print_table(const run_replay_result *r) {
    static const char *metric[] = {"HR", "NDCG", "Cov"};
    char head[16];
    printf("%-22s", "strategy");
    for (int m = 0; m < 3; m++)
        for (uint32_t q = 0; q < r->n_k; q++) {
            snprintf(head, sizeof(head), "%s@%u", metric[m], r->ks[q]);
            printf(" %8s", head);
        }
    printf("\n");
    for (size_t s = 0; s < r->n_rows; s++) {
        const run_replay_row *row = &r->rows[s];
        printf("%-22s", row->name);
        for (uint32_t q = 0; q < r->n_k; q++) printf(" %8.4f", row->hr[q]);
        for (uint32_t q = 0; q < r->n_k; q++) printf(" %8.4f", row->ndcg[q]);
        for (uint32_t q = 0; q < r->n_k; q++) printf(" %8.4f", row->coverage[q]);
        printf("\n");
    }
    printf("replayed %llu events (%llu scored, %llu repeats of a window item not scored) in "
           "%.2f s: %.0f events/s (%d threads, %.2f CPU s: %.0f events per CPU second)\n",
           (unsigned long long)r->replayed, (unsigned long long)r->scored,
           (unsigned long long)r->repeats, r->seconds, r->events_per_s, r->threads, r->cpu_seconds,
           r->cpu_seconds > 0 ? (double)r->replayed / r->cpu_seconds : 0);
}

static json_t *rows_json(const run_replay_result *r) {
    json_t *rows = json_object();
    for (size_t s = 0; s < r->n_rows; s++) {
        json_t *at = json_array();
        for (uint32_t q = 0; q < r->n_k; q++)
            json_array_append_new(at, json_pack("{s:I, s:f, s:f, s:f}", "k", (json_int_t)r->ks[q],
                                                "hr", r->rows[s].hr[q], "ndcg", r->rows[s].ndcg[q],
                                                "coverage", r->rows[s].coverage[q]));
        json_object_set_new(rows, r->rows[s].name, at);
    }
    return rows;
}

static json_t *bandit_json(const run_replay_result *r) {
    static const char *seg[RUN_REPLAY_SEGMENTS] = {"window 0", "window 1-4", "window 5-19",
                                                   "window 20+"};
    json_t *o = json_object();
    for (int g = 0; g < RUN_REPLAY_SEGMENTS; g++)
        json_object_set_new(o, seg[g],
                            json_pack("{s:f, s:f, s:f}", "online", r->bandit_weights[g][0],
                                      "offline", r->bandit_weights[g][1], "popular",
                                      r->bandit_weights[g][2]));
    return o;
}

static json_t *report_json(const eval_cfg *c, const model_dataset *ds, size_t n_bad, int64_t cut_ms,
                           const served *s, const run_config *cfg, const run_replay_result *r) {
    json_t *data = json_pack(
        "{s:s, s:I, s:I, s:I, s:I}", "source", c->synthetic != UNSET ? "synthetic" : c->input,
        "events", (json_int_t)ds->n, "users", (json_int_t)model_ids_count(ds->users), "items",
        (json_int_t)model_ids_count(ds->items), "bad_lines", (json_int_t)n_bad);
    json_t *replay = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "cut_ms",
                               (json_int_t)cut_ms, "trained", (json_int_t)r->trained, "replayed",
                               (json_int_t)r->replayed, "scored", (json_int_t)r->scored, "repeats",
                               (json_int_t)r->repeats, "cold_users", (json_int_t)r->cold_users,
                               "unknown_items", (json_int_t)r->unknown_item, "seconds", r->seconds,
                               "events_per_s", r->events_per_s, "train_seconds", s->train_seconds);
    json_object_set_new(replay, "threads", json_integer(r->threads));
    json_object_set_new(replay, "cpu_seconds", json_real(r->cpu_seconds));
    json_t *online =
        json_pack("{s:I, s:I, s:I, s:b, s:s, s:f}", "history", (json_int_t)cfg->history,
                  "neighbours", (json_int_t)cfg->online.k, "half_life_ms",
                  (json_int_t)cfg->online.half_life_ms, "include_seen", cfg->online.include_seen,
                  "popular", c->popular, "rerank_mix", c->rerank_mix);
    return json_pack("{s:o, s:o, s:o, s:s, s:o, s:o}", "data", data, "replay", replay, "online",
                     online, "model_version", s->m->version, "results", rows_json(r),
                     "bandit_weights", bandit_json(r));
}

/* ==== The command ==== */

static size_t cut_index(const model_dataset *ds, int64_t cut_ms) {
    size_t lo = 0, hi = ds->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->rows[mid].ts_ms < cut_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int replay_once(const eval_cfg *c, const eval_plan *p, const model_dataset *ds, size_t first,
                       const served *s, run_replay_result *res) {
    run_config cfg;
    online_config(c, p, &cfg);
    static run_replay_params rp;
    replay_params(c, p, &cfg, &rp);
    char err[256];
    if (run_replay(&rp, &s->v, ds, first, res, err, sizeof(err))) return log_error("%s", err), -1;
    return 0;
}

int eval_replay_main(const eval_cfg *c, const eval_plan *p) {
    size_t n_bad;
    model_dataset *ds = eval_load_log(c, p, &n_bad);
    if (!ds) return 1;
    model_dataset_sort_by_time(ds);
    int64_t cut_ms =
        c->cut_time != UNSET ? c->cut_time : model_split_time_cut(ds, c->test_fraction);
    size_t first = cut_index(ds, cut_ms);
    int rc = 1;
    served s = {0};
    model_dataset *train = NULL;
    if (first == 0 || first == ds->n) {
        log_error("replay: the cut at %lld leaves %s part empty", (long long)cut_ms,
                  first ? "the replayed" : "the training");
        goto out;
    }
    log_info("replay: training on %zu events, replaying %zu (cut at %lld ms)", first, ds->n - first,
             (long long)cut_ms);
    train = train_part(ds, first);
    if (train_served(c, p, train, p->ks[p->n_k - 1], &s)) goto out;
    run_replay_result res;
    if (replay_once(c, p, ds, first, &s, &res)) goto out;
    int to_stdout = c->json && !strcmp(c->json, "-");
    if (!to_stdout) print_table(&res);
    rc = 0;
    if (c->json) {
        run_config cfg;
        online_config(c, p, &cfg);
        json_t *doc = report_json(c, ds, n_bad, cut_ms, &s, &cfg, &res);
        rc = eval_write_json(c->json, doc) ? 1 : 0;
        json_decref(doc);
    }
out:
    served_free(&s);
    model_dataset_free(train);
    model_dataset_free(ds);
    return rc;
}
