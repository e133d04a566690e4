/* `eval --replay`'s engine: the processor's per-user code path (window,
 * online scores, offline and popular lists, blends) driven from a log in
 * memory. See run_replay.h for what is measured and how. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run_int.h"
#include "run_replay.h"

/* ==== Parameters ==== */

int run_replay_add(run_replay_params *p, const char *name, run_replay_kind kind,
                   const model_blend_params *blend) {
    if (p->n_strategies == RUN_REPLAY_MAX_STRATEGIES) return -1;
    run_replay_strategy *s = &p->strategies[p->n_strategies++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->kind = kind;
    s->blend = *blend;
    return 0;
}

static void add_builtin(run_replay_params *p, const char *name, run_replay_kind kind,
                        model_blend_strategy strategy, float mix) {
    model_blend_params b;
    model_blend_params_default(&b);
    b.strategy = strategy;
    b.rerank_mix = mix;
    run_replay_add(p, name, kind, &b);
}

void run_replay_params_default(run_replay_params *p, const run_config *cfg) {
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    add_builtin(p, "popular", RUN_REPLAY_BLEND, MODEL_BLEND_POPULAR, 0);
    add_builtin(p, "offline", RUN_REPLAY_BLEND, MODEL_BLEND_OFFLINE, 0);
    add_builtin(p, "online", RUN_REPLAY_BLEND, MODEL_BLEND_ONLINE, 0);
    add_builtin(p, "foldin", RUN_REPLAY_FOLDIN, MODEL_BLEND_ONLINE, 0);
    add_builtin(p, "interleave", RUN_REPLAY_BLEND, MODEL_BLEND_INTERLEAVE, 0);
    add_builtin(p, "weighted", RUN_REPLAY_BLEND, MODEL_BLEND_WEIGHTED, 0);
    add_builtin(p, "rerank", RUN_REPLAY_BLEND, MODEL_BLEND_RERANK, 1.0f);
    add_builtin(p, "rerank+foldin", RUN_REPLAY_BLEND, MODEL_BLEND_RERANK, 1.0f);
    p->strategies[p->n_strategies - 1].blend.rerank_foldin = 1;
    add_builtin(p, "bandit", RUN_REPLAY_BANDIT, MODEL_BLEND_WEIGHTED, 0);
    static const uint32_t ks[] = {5, 10, 20};
    memcpy(p->ks, ks, sizeof(ks));
    p->n_k = 3;
    p->bandit_explore = 0.1;
}

/* ==== Coverage: the best rank each shown item reached, per strategy ====
 *
 * Lists hold pointers into the model's, the offline file's or the log's id
 * tables; keying by pointer keeps the per-event cost to one probe per item,
 * and names are resolved (and twins under other pointers merged) once at
 * the end. */

typedef struct seen_map {
    const char **key;
    uint8_t *rank;
    size_t cap, n;
} seen_map;

static size_t ptr_hash(const char *p, size_t cap) {
    return (size_t)(((uintptr_t)p >> 3) * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
}

static void seen_put(seen_map *m, const char *key, uint8_t rank);

static void seen_grow(seen_map *m) {
    seen_map old = *m;
    m->cap = old.cap ? old.cap * 2 : 4096;
    m->key = util_calloc(m->cap, sizeof(*m->key));
    m->rank = util_malloc(m->cap);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.key[i]) seen_put(m, old.key[i], old.rank[i]);
    free(old.key);
    free(old.rank);
}

static void seen_put(seen_map *m, const char *key, uint8_t rank) {
    if (2 * (m->n + 1) > m->cap) seen_grow(m);
    size_t i = ptr_hash(key, m->cap);
    while (m->key[i] && m->key[i] != key) i = (i + 1) & (m->cap - 1);
    if (!m->key[i]) {
        m->key[i] = key, m->rank[i] = rank, m->n++;
    } else if (rank < m->rank[i]) {
        m->rank[i] = rank;
    }
}

/* ==== The run ====
 *
 * Users are split over the threads by index; each thread replays its users'
 * events of a chunk of the log in order, so every user's window evolves
 * exactly as in one pass. What all users share (the live popular list and
 * the bandit's weights) is read from a snapshot taken at the start of each
 * chunk, and the chunk's events are counted into them after it, in log
 * order: results do not depend on the number of threads, and the shared
 * counters lag the stream by at most one chunk. */

#define CHUNK 1024 /* events between updates of the shared counters */

typedef struct replay replay;

/* One thread's scratch and tallies. */
typedef struct worker {
    replay *r;
    int id;
    pthread_t th;
    run_recs recs;
    /* Hits by rank: HR and NDCG come from these integer counts at the
     * end, so the sums do not depend on how threads split the events. */
    uint64_t at_rank[RUN_REPLAY_MAX_STRATEGIES][256];
    seen_map seen[RUN_REPLAY_MAX_STRATEGIES];
    uint64_t scored, repeats, cold_users, unknown_item;
} worker;

/* What a scored event tells the bandit, applied after the chunk. */
typedef struct outcome {
    int8_t scored, segment, hit_source;
    uint8_t slots[CODEC_SOURCES];
} outcome;

struct replay {
    const run_replay_params *p;
    const reload_view *v;
    const model_dataset *ds;
    state_user **users; /* by the log's user index */
    uint32_t n_list;    /* list length: max k */
    int threads;
    worker *w;
    /* Shared counters and their snapshot for the current chunk. */
    model_popular_live *pop;
    model_candidates pop_list;
    const char **pop_names;
    model_bandit *bandit;
    float bandit_w[RUN_REPLAY_SEGMENTS][CODEC_SOURCES];
    /* The chunk: [lo, hi) of ds->rows, outcomes by position in it. */
    size_t lo, hi;
    outcome out_ev[CHUNK];
    int done;
    pthread_barrier_t start, end;
};

static state_user *user_of(replay *r, uint32_t user) {
    if (!r->users[user]) r->users[user] = state_user_new();
    return r->users[user];
}

static float event_weight(const replay *r, const model_interaction *e) {
    return e->weight >= 0 ? e->weight : r->p->cfg->online.type_weight[e->type];
}

/* The window append of run_batch.c's apply_user. */
static void push(replay *r, const model_interaction *e) {
    const char *item = model_ids_name(r->ds->items, e->item);
    state_user_push_event(user_of(r, e->user), item, strlen(item), e->type, e->ts_ms, e->weight,
                          r->p->cfg->history, NULL);
}

/* The live popular list as the sources take it: long enough that n_list
 * remain after a full window is left out. */
static void snapshot(replay *r) {
    for (uint32_t g = 0; g < RUN_REPLAY_SEGMENTS; g++)
        model_bandit_weights(r->bandit, g, r->bandit_w[g]);
    if (r->p->popular_model) return;
    const uint32_t *items;
    const float *scores;
    uint32_t n = model_popular_live_top(r->pop, &items, &scores);
    for (uint32_t i = 0; i < n; i++) r->pop_names[i] = model_ids_name(r->ds->items, items[i]);
    r->pop_list = (model_candidates){r->pop_names, scores, n};
}

static int window_has(const state_user *u, const char *item, size_t len) {
    for (uint32_t i = 0; i < u->n_events; i++)
        if (u->events[i].item_len == len && !memcmp(state_user_item(u, &u->events[i]), item, len))
            return 1;
    return 0;
}

static uint32_t segment_of(const state_user *u) {
    return u->n_events == 0 ? 0 : u->n_events < 5 ? 1 : u->n_events < 20 ? 2 : 3;
}

/* Rank of item in the list, or -1. */
static int rank_in(const codec_rec_item *items, size_t n, const char *item) {
    for (size_t i = 0; i < n; i++)
        if (items[i].item_id[0] == item[0] && !strcmp(items[i].item_id, item)) return (int)i;
    return -1;
}

static void count_list(worker *w, size_t s, const codec_rec_item *items, size_t n, int rank) {
    if (rank >= 0) w->at_rank[s][rank]++;
    for (size_t i = 0; i < n; i++) seen_put(&w->seen[s], items[i].item_id, (uint8_t)i);
}

/* The bandit's list under the chunk's weights, and what it shows the
 * bandit: the slots each source filled and the source of the hit. */
static size_t bandit_list(worker *w, const run_replay_strategy *st, const state_user *u,
                          const char *item, int *rank, outcome *oc) {
    replay *r = w->r;
    model_blend_params bp = st->blend;
    oc->segment = (int8_t)segment_of(u);
    memcpy(bp.weight, r->bandit_w[oc->segment], sizeof(bp.weight));
    bp.n = r->n_list;
    size_t n = run_recs_blend(&w->recs, r->p->cfg, &bp, r->v, u);
    *rank = rank_in(w->recs.items, n, item);
    for (size_t i = 0; i < n; i++) oc->slots[w->recs.items[i].source]++;
    oc->hit_source = (int8_t)(*rank >= 0 ? (int)w->recs.items[*rank].source : -1);
    oc->scored = 1;
    return n;
}

/* Every strategy's list for the user before event e, and the event's rank. */
static void score_event(worker *w, const model_interaction *e, const state_user *u, outcome *oc) {
    replay *r = w->r;
    const char *item = model_ids_name(r->ds->items, e->item);
    const char *user = model_ids_name(r->ds->users, e->user);
    run_recs_sources(&w->recs, r->p->cfg, r->v, user, u, e->ts_ms, r->n_list,
                     r->p->popular_model ? NULL : &r->pop_list);
    for (size_t s = 0; s < r->p->n_strategies; s++) {
        const run_replay_strategy *st = &r->p->strategies[s];
        size_t n;
        int rank;
        if (st->kind == RUN_REPLAY_FOLDIN) {
            n = run_recs_foldin(&w->recs, r->p->cfg, r->v, u, r->n_list);
            rank = rank_in(w->recs.items, n, item);
        } else if (st->kind == RUN_REPLAY_BANDIT) {
            n = bandit_list(w, st, u, item, &rank, oc);
        } else {
            model_blend_params bp = st->blend;
            bp.n = r->n_list;
            n = run_recs_blend(&w->recs, r->p->cfg, &bp, r->v, u);
            rank = rank_in(w->recs.items, n, item);
        }
        count_list(w, s, w->recs.items, n, rank);
    }
    w->scored++;
    w->cold_users += u->n_events == 0;
    w->unknown_item += model_item_index(r->v->model, item) == MODEL_NONE;
}

/* This thread's users' events of the chunk, in log order. */
static void work(worker *w) {
    replay *r = w->r;
    for (size_t i = r->lo; i < r->hi; i++) {
        const model_interaction *e = &r->ds->rows[i];
        if ((int)(e->user % (uint32_t)r->threads) != w->id) continue;
        outcome *oc = &r->out_ev[i - r->lo];
        memset(oc, 0, sizeof(*oc));
        state_user *u = user_of(r, e->user);
        const char *item = model_ids_name(r->ds->items, e->item);
        if (!r->p->cfg->online.include_seen && window_has(u, item, strlen(item)))
            w->repeats++;
        else
            score_event(w, e, u, oc);
        push(r, e);
    }
}

/* After a chunk: its events counted into the shared counters, in order. */
static void settle(replay *r) {
    for (size_t i = r->lo; i < r->hi; i++) {
        const model_interaction *e = &r->ds->rows[i];
        const outcome *oc = &r->out_ev[i - r->lo];
        if (oc->scored) {
            uint32_t slots[CODEC_SOURCES];
            for (int s = 0; s < CODEC_SOURCES; s++) slots[s] = oc->slots[s];
            model_bandit_record(r->bandit, (uint32_t)oc->segment, slots, oc->hit_source);
        }
        model_popular_live_add(r->pop, e->item, event_weight(r, e), e->ts_ms);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    for (;;) {
        pthread_barrier_wait(&w->r->start);
        if (w->r->done) return NULL;
        work(w);
        pthread_barrier_wait(&w->r->end);
    }
}

static void replay_all(replay *r, size_t first) {
    for (int t = 1; t < r->threads; t++) pthread_create(&r->w[t].th, NULL, worker_main, &r->w[t]);
    for (size_t lo = first; lo < r->ds->n; lo += CHUNK) {
        r->lo = lo;
        r->hi = r->ds->n - lo < CHUNK ? r->ds->n : lo + CHUNK;
        snapshot(r);
        pthread_barrier_wait(&r->start);
        work(&r->w[0]);
        pthread_barrier_wait(&r->end);
        settle(r);
    }
    r->done = 1;
    pthread_barrier_wait(&r->start);
    for (int t = 1; t < r->threads; t++) pthread_join(r->w[t].th, NULL);
}

/* ==== Results ==== */

/* Coverage@k of strategy s from the threads' pointer maps: names resolved
 * to the log's ids. */
static void coverage(const replay *r, size_t s, run_replay_row *row) {
    const model_ids *items = r->ds->items;
    uint32_t n_items = model_ids_count(items);
    uint8_t *best = util_malloc(n_items ? n_items : 1);
    memset(best, 0xff, n_items);
    for (int t = 0; t < r->threads; t++) {
        const seen_map *m = &r->w[t].seen[s];
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            uint32_t idx = model_ids_find(items, m->key[i], strlen(m->key[i]));
            if (idx != MODEL_NONE && m->rank[i] < best[idx]) best[idx] = m->rank[i];
        }
    }
    /* Over the items with events in the log (a filtered log's id table may
     * hold more). */
    uint8_t *present = util_calloc(n_items ? n_items : 1, 1);
    uint32_t n_present = 0;
    for (size_t i = 0; i < r->ds->n; i++) present[r->ds->rows[i].item] = 1;
    for (uint32_t i = 0; i < n_items; i++) n_present += present[i];
    for (uint32_t q = 0; q < r->p->n_k; q++) {
        uint32_t c = 0;
        for (uint32_t i = 0; i < n_items; i++) c += present[i] && best[i] < r->p->ks[q];
        row->coverage[q] = n_present ? (double)c / n_present : 0;
    }
    free(present);
    free(best);
}

static void finish(replay *r, run_replay_result *o) {
    o->n_k = r->p->n_k;
    memcpy(o->ks, r->p->ks, sizeof(o->ks));
    o->n_rows = r->p->n_strategies;
    for (int t = 0; t < r->threads; t++) {
        const worker *w = &r->w[t];
        o->scored += w->scored, o->repeats += w->repeats;
        o->cold_users += w->cold_users, o->unknown_item += w->unknown_item;
    }
    double d = o->scored ? (double)o->scored : 1;
    for (size_t s = 0; s < o->n_rows; s++) {
        run_replay_row *row = &o->rows[s];
        snprintf(row->name, sizeof(row->name), "%s", r->p->strategies[s].name);
        for (uint32_t q = 0; q < o->n_k; q++) {
            double hits = 0, ndcg = 0;
            for (uint32_t k = 0; k < o->ks[q]; k++) {
                uint64_t c = 0;
                for (int t = 0; t < r->threads; t++) c += r->w[t].at_rank[s][k];
                hits += (double)c;
                ndcg += (double)c / log2((double)k + 2.0);
            }
            row->hr[q] = hits / d;
            row->ndcg[q] = ndcg / d;
        }
        coverage(r, s, row);
    }
    for (uint32_t g = 0; g < RUN_REPLAY_SEGMENTS; g++)
        model_bandit_weights(r->bandit, g, o->bandit_weights[g]);
}

/* CPU time of the whole process (all threads): on a shared machine the
 * wall clock also counts other programs' turns. */
static int64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static replay *replay_new(const run_replay_params *p, const reload_view *v,
                          const model_dataset *ds) {
    replay *r = util_calloc(1, sizeof(*r));
    r->p = p, r->v = v, r->ds = ds;
    r->n_list = p->ks[p->n_k - 1];
    r->users = util_calloc(model_ids_count(ds->users) + 1u, sizeof(*r->users));
    uint32_t n_pop = r->n_list + p->cfg->history;
    r->pop = model_popular_live_new(p->popular_half_life_ms, n_pop);
    r->pop_names = util_malloc(n_pop * sizeof(*r->pop_names));
    r->bandit = model_bandit_new(RUN_REPLAY_SEGMENTS, p->bandit_explore);
    r->threads = p->threads > 0 ? p->threads : 1;
    r->w = util_calloc((size_t)r->threads, sizeof(*r->w));
    for (int t = 0; t < r->threads; t++) {
        r->w[t].r = r, r->w[t].id = t;
        run_recs_init(&r->w[t].recs);
    }
    pthread_barrier_init(&r->start, NULL, (unsigned)r->threads);
    pthread_barrier_init(&r->end, NULL, (unsigned)r->threads);
    return r;
}

static void replay_free(replay *r) {
    uint32_t n_users = model_ids_count(r->ds->users);
    for (uint32_t i = 0; i < n_users; i++) state_user_free(r->users[i]);
    free(r->users);
    for (int t = 0; t < r->threads; t++) {
        for (size_t s = 0; s < RUN_REPLAY_MAX_STRATEGIES; s++) {
            free(r->w[t].seen[s].key);
            free(r->w[t].seen[s].rank);
        }
        run_recs_free(&r->w[t].recs);
    }
    free(r->w);
    pthread_barrier_destroy(&r->start);
    pthread_barrier_destroy(&r->end);
    model_popular_live_free(r->pop);
    model_bandit_free(r->bandit);
    free(r->pop_names);
    free(r);
}

int run_replay(const run_replay_params *p, const reload_view *v, const model_dataset *ds,
               size_t first, run_replay_result *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    if (!p->n_k || !p->n_strategies || p->ks[p->n_k - 1] > 255) {
        snprintf(errstr, errstr_size, "replay: need 1 to 255 as cut-offs and a strategy");
        return -1;
    }
    replay *r = replay_new(p, v, ds);
    if (first > ds->n) first = ds->n;
    for (size_t i = 0; i < first; i++) {
        push(r, &ds->rows[i]);
        model_popular_live_add(r->pop, ds->rows[i].item, event_weight(r, &ds->rows[i]),
                               ds->rows[i].ts_ms);
    }
    out->trained = first;
    out->replayed = ds->n - first;
    int64_t t0 = util_mono_ns(), c0 = cpu_ns();
    replay_all(r, first);
    out->seconds = (double)(util_mono_ns() - t0) / 1e9;
    out->cpu_seconds = (double)(cpu_ns() - c0) / 1e9;
    out->events_per_s = out->seconds > 0 ? (double)out->replayed / out->seconds : 0;
    out->threads = r->threads;
    finish(r, out);
    replay_free(r);
    return 0;
}
