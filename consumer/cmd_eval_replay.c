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
    /* The search tries K up to 100: the model must keep that many. */
    uint32_t k = (uint32_t)c->neighbours;
    if (c->search && k < 100) k = 100;
    int rc = model_build(train, &als, &p->als, k, 100, 0, &s->m, err, sizeof(err));
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
    size_t kept = 0;
    for (size_t s = 0; s < rp->n_strategies; s++) {
        if (rp->strategies[s].blend.strategy == MODEL_BLEND_RERANK)
            rp->strategies[s].blend.rerank_mix = (float)c->rerank_mix;
        if (!c->strategies || eval_list_has(c->strategies, rp->strategies[s].name))
            rp->strategies[kept++] = rp->strategies[s];
    }
    rp->n_strategies = kept;
    for (size_t i = 0; i < c->variants.n; i++) {
        const ab_variant *av = &c->variants.variants[i];
        char name[RUN_REPLAY_NAME_MAX];
        snprintf(name, sizeof(name), "variant:%s", av->name);
        /* A variant blends exactly as `run --variant` would: its own mix. */
        run_replay_add(rp, name, RUN_REPLAY_BLEND, &av->blend);
    }
}

/* ==== Output ==== */

static void print_table(const run_replay_result *r) {
    static const char *metric[] = {"HR", "NDCG", "Cov"};
    char head[16];
    printf("%-24s", "strategy");
    for (int m = 0; m < 3; m++)
        for (uint32_t q = 0; q < r->n_k; q++) {
            snprintf(head, sizeof(head), "%s@%u", metric[m], r->ks[q]);
            printf(" %8s", head);
        }
    printf("\n");
    for (size_t s = 0; s < r->n_rows; s++) {
        const run_replay_row *row = &r->rows[s];
        printf("%-24s", row->name);
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

/* ==== Hyper-parameter search (--search STRATEGY) ====
 *
 * Coordinate ascent over a small grid: starting from the flags' values,
 * each parameter in turn takes every value of its row while the others keep
 * their best so far, and the best HR@10 (NDCG@10 breaking ties) of the
 * strategy is kept. One pass: 4 + 4 + 5 + 3 replays, fewer when a value
 * equals the current one. Only the strategy searched is replayed. */

static const uint32_t grid_h[] = {10, 20, 50, 100};
static const uint32_t grid_k[] = {10, 20, 50, 100};
static const int64_t grid_half_life[] = {600000, 3600000, 21600000, 86400000, 604800000};
static const float grid_weights[][CODEC_EVENT_TYPES] = {{1, 0.5f, 3}, {1, 1, 1}, {1, 0.25f, 6}};
#define GRID_N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct setting {
    uint32_t h, k;
    int64_t half_life_ms;
    size_t weights; /* row of grid_weights */
    double hr10, ndcg10;
} setting;

typedef struct search {
    const eval_cfg *c;
    const eval_plan *p;
    const model_dataset *ds;
    size_t first;
    const served *s;
    run_replay_params rp;
    size_t at10; /* index of k = 10 in the cut-offs, or the nearest */
    setting tried[64];
    size_t n_tried;
} search;

static int try_setting(search *x, setting *st) {
    for (size_t i = 0; i < x->n_tried; i++) {
        const setting *t = &x->tried[i];
        if (t->h == st->h && t->k == st->k && t->half_life_ms == st->half_life_ms &&
            t->weights == st->weights)
            return *st = *t, 0;
    }
    run_config cfg;
    online_config(x->c, x->p, &cfg);
    cfg.history = st->h, cfg.online.k = st->k, cfg.online.half_life_ms = st->half_life_ms;
    memcpy(cfg.online.type_weight, grid_weights[st->weights], sizeof(cfg.online.type_weight));
    x->rp.cfg = &cfg;
    static run_replay_result res;
    char err[256];
    if (run_replay(&x->rp, &x->s->v, x->ds, x->first, &res, err, sizeof(err)))
        return log_error("%s", err), -1;
    st->hr10 = res.rows[0].hr[x->at10];
    st->ndcg10 = res.rows[0].ndcg[x->at10];
    log_info("search: H %u, K %u, half-life %lld ms, weights %zu: HR@%u %.4f (%.1f s)", st->h,
             st->k, (long long)st->half_life_ms, st->weights, res.ks[x->at10], st->hr10,
             res.seconds);
    if (x->n_tried < GRID_N(x->tried)) x->tried[x->n_tried++] = *st;
    return 0;
}

static int better(const setting *a, const setting *b) {
    return a->hr10 > b->hr10 || (a->hr10 == b->hr10 && a->ndcg10 > b->ndcg10);
}

/* Tries every value of one parameter (which: 0 H, 1 K, 2 half-life, 3
 * weights) around best. */
static int sweep(search *x, int which, setting *best) {
    size_t n = which == 0   ? GRID_N(grid_h)
               : which == 1 ? GRID_N(grid_k)
               : which == 2 ? GRID_N(grid_half_life)
                            : GRID_N(grid_weights);
    for (size_t i = 0; i < n; i++) {
        setting st = *best;
        if (which == 0) st.h = grid_h[i];
        if (which == 1) st.k = grid_k[i];
        if (which == 2) st.half_life_ms = grid_half_life[i];
        if (which == 3) st.weights = i;
        if (st.k > x->s->m->k) continue; /* the model keeps no more neighbours */
        if (try_setting(x, &st)) return -1;
        if (better(&st, best)) *best = st;
    }
    return 0;
}

static void print_search(const search *x, const setting *best) {
    printf("%-6s %-6s %-12s %-22s %8s %8s\n", "H", "K", "half-life", "weights (l,v,like)", "HR@10",
           "NDCG@10");
    for (size_t i = 0; i < x->n_tried; i++) {
        const setting *t = &x->tried[i];
        const float *w = grid_weights[t->weights];
        printf("%-6u %-6u %-12.3g %-5g %-5g %-10g %8.4f %8.4f\n", t->h, t->k,
               (double)t->half_life_ms / 3600000.0, (double)w[0], (double)w[1], (double)w[2],
               t->hr10, t->ndcg10);
    }
    const float *w = grid_weights[best->weights];
    printf("best for %s: --history %u --neighbours %u --half-life %lldms --type-weights "
           "listen=%g,view=%g,like=%g: HR@10 %.4f, NDCG@10 %.4f\n",
           x->rp.strategies[0].name, best->h, best->k, (long long)best->half_life_ms, (double)w[0],
           (double)w[1], (double)w[2], best->hr10, best->ndcg10);
}

static json_t *search_json(const search *x, const setting *best) {
    json_t *tried = json_array();
    for (size_t i = 0; i <= x->n_tried; i++) {
        const setting *t = i < x->n_tried ? &x->tried[i] : best;
        const float *w = grid_weights[t->weights];
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:{s:f, s:f, s:f}, s:f, s:f}", "history", (json_int_t)t->h,
                      "neighbours", (json_int_t)t->k, "half_life_ms", (json_int_t)t->half_life_ms,
                      "type_weights", "listen", (double)w[0], "view", (double)w[1], "like",
                      (double)w[2], "hr10", t->hr10, "ndcg10", t->ndcg10);
        if (i < x->n_tried)
            json_array_append_new(tried, o);
        else
            return json_pack("{s:s, s:o, s:o}", "strategy", x->rp.strategies[0].name, "tried",
                             tried, "best", o);
    }
    return NULL;
}

/* The strategy named by --search, alone in the replay. */
static int search_params(const eval_cfg *c, const eval_plan *p, const run_config *cfg, search *x) {
    run_replay_params all;
    replay_params(c, p, cfg, &all);
    x->rp = all;
    x->rp.n_strategies = 0;
    for (size_t i = 0; i < all.n_strategies; i++)
        if (!strcmp(all.strategies[i].name, c->search))
            x->rp.strategies[x->rp.n_strategies++] = all.strategies[i];
    if (!x->rp.n_strategies) return log_error("--search: no strategy '%s'", c->search), -1;
    x->at10 = 0;
    for (uint32_t q = 0; q < p->n_k; q++)
        if (p->ks[q] <= 10) x->at10 = q;
    return 0;
}

static int run_search(const eval_cfg *c, const eval_plan *p, const model_dataset *ds, size_t first,
                      const served *s) {
    static search x;
    memset(&x, 0, sizeof(x));
    x.c = c, x.p = p, x.ds = ds, x.first = first, x.s = s;
    run_config cfg;
    online_config(c, p, &cfg);
    if (search_params(c, p, &cfg, &x)) return 1;
    setting best = {cfg.history, cfg.online.k, cfg.online.half_life_ms, 0, -1, -1};
    for (int which = 0; which < 4; which++)
        if (sweep(&x, which, &best)) return 1;
    if (!(c->json && !strcmp(c->json, "-"))) print_search(&x, &best);
    if (!c->json) return 0;
    json_t *doc = search_json(&x, &best);
    int rc = eval_write_json(c->json, doc) ? 1 : 0;
    json_decref(doc);
    return rc;
}

/* ==== The command ==== */

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
    if (c->search) {
        rc = run_search(c, p, ds, first, &s);
        goto out;
    }
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
