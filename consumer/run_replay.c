/* `eval --replay`'s engine: the processor's per-user code path (window,
 * online scores, offline and popular lists, blends) driven from a log in
 * memory. See run_replay.h for what is measured and how. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    add_builtin(p, "bandit", RUN_REPLAY_BANDIT, MODEL_BLEND_WEIGHTED, 0);
    static const uint32_t ks[] = {5, 10, 20};
    memcpy(p->ks, ks, sizeof(ks));
    p->n_k = 3;
    p->popular_half_life_ms = 0;
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

/* ==== The run ==== */

typedef struct replay {
    const run_replay_params *p;
    const reload_view *v;
    const model_dataset *ds;
    run_recs recs;
    state_user **users; /* by the log's user index */
    model_popular_live *pop;
    model_candidates pop_list;
    const char **pop_names;
    float *pop_scores;
    model_bandit *bandit;
    uint32_t n_list; /* list length: max k */
    double hits[RUN_REPLAY_MAX_STRATEGIES][RUN_REPLAY_MAX_K];
    double ndcg[RUN_REPLAY_MAX_STRATEGIES][RUN_REPLAY_MAX_K];
    seen_map seen[RUN_REPLAY_MAX_STRATEGIES];
    run_replay_result *out;
} replay;

static state_user *user_of(replay *r, uint32_t user) {
    if (!r->users[user]) r->users[user] = state_user_new();
    return r->users[user];
}

static float event_weight(const replay *r, const model_interaction *e) {
    return e->weight >= 0 ? e->weight : r->p->cfg->online.type_weight[e->type];
}

/* The window append of run_batch.c's apply_user, then the live counters. */
static void apply(replay *r, const model_interaction *e) {
    const char *item = model_ids_name(r->ds->items, e->item);
    state_user_push_event(user_of(r, e->user), item, strlen(item), e->type, e->ts_ms, e->weight,
                          r->p->cfg->history, NULL);
    model_popular_live_add(r->pop, e->item, event_weight(r, e), e->ts_ms);
}

/* The popular candidates as the sources take them: the live top, long
 * enough that n remain after the window's items are left out. */
static const model_candidates *popular_now(replay *r) {
    if (r->p->popular_model) return NULL;
    const uint32_t *items;
    const float *scores;
    uint32_t n = model_popular_live_top(r->pop, &items, &scores);
    for (uint32_t i = 0; i < n; i++) r->pop_names[i] = model_ids_name(r->ds->items, items[i]);
    r->pop_list = (model_candidates){r->pop_names, scores, n};
    return &r->pop_list;
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

static void count_list(replay *r, size_t s, const codec_rec_item *items, size_t n, int rank) {
    const run_replay_params *p = r->p;
    for (uint32_t q = 0; q < p->n_k; q++)
        if (rank >= 0 && (uint32_t)rank < p->ks[q]) {
            r->hits[s][q] += 1;
            r->ndcg[s][q] += 1.0 / log2((double)rank + 2.0);
        }
    for (size_t i = 0; i < n; i++) seen_put(&r->seen[s], items[i].item_id, (uint8_t)i);
}

/* The bandit's list, and what it learns from the user's next item. */
static size_t bandit_list(replay *r, const run_replay_strategy *st, const state_user *u,
                          const char *item, int *rank) {
    model_blend_params bp = st->blend;
    uint32_t seg = segment_of(u);
    model_bandit_weights(r->bandit, seg, bp.weight);
    bp.n = r->n_list;
    size_t n = run_recs_blend(&r->recs, r->p->cfg, &bp, r->v, u);
    *rank = rank_in(r->recs.items, n, item);
    uint32_t slots[CODEC_SOURCES] = {0};
    for (size_t i = 0; i < n; i++) slots[r->recs.items[i].source]++;
    model_bandit_record(r->bandit, seg, slots, *rank >= 0 ? (int)r->recs.items[*rank].source : -1);
    return n;
}

/* Every strategy's list for the user before event e, and the event's rank. */
static void score_event(replay *r, const model_interaction *e, const state_user *u) {
    const char *item = model_ids_name(r->ds->items, e->item);
    const char *user = model_ids_name(r->ds->users, e->user);
    run_recs_sources(&r->recs, r->p->cfg, r->v, user, u, e->ts_ms, r->n_list, popular_now(r));
    for (size_t s = 0; s < r->p->n_strategies; s++) {
        const run_replay_strategy *st = &r->p->strategies[s];
        size_t n;
        int rank;
        if (st->kind == RUN_REPLAY_FOLDIN) {
            n = run_recs_foldin(&r->recs, r->p->cfg, r->v, u, r->n_list);
            rank = rank_in(r->recs.items, n, item);
        } else if (st->kind == RUN_REPLAY_BANDIT) {
            n = bandit_list(r, st, u, item, &rank);
        } else {
            model_blend_params bp = st->blend;
            bp.n = r->n_list;
            n = run_recs_blend(&r->recs, r->p->cfg, &bp, r->v, u);
            rank = rank_in(r->recs.items, n, item);
        }
        count_list(r, s, r->recs.items, n, rank);
    }
    r->out->scored++;
    r->out->cold_users += u->n_events == 0;
    r->out->unknown_item += model_item_index(r->v->model, item) == MODEL_NONE;
}

static void replay_event(replay *r, const model_interaction *e) {
    state_user *u = user_of(r, e->user);
    const char *item = model_ids_name(r->ds->items, e->item);
    if (!r->p->cfg->online.include_seen && window_has(u, item, strlen(item)))
        r->out->repeats++;
    else
        score_event(r, e, u);
    apply(r, e);
    r->out->replayed++;
}

/* Coverage@k from the pointer maps: names resolved to the log's ids. */
static void coverage(replay *r, size_t s, run_replay_row *row) {
    const model_ids *items = r->ds->items;
    uint32_t n_items = model_ids_count(items);
    uint8_t *best = util_malloc(n_items ? n_items : 1);
    memset(best, 0xff, n_items);
    const seen_map *m = &r->seen[s];
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->key[i]) continue;
        uint32_t idx = model_ids_find(items, m->key[i], strlen(m->key[i]));
        if (idx != MODEL_NONE && m->rank[i] < best[idx]) best[idx] = m->rank[i];
    }
    for (uint32_t q = 0; q < r->p->n_k; q++) {
        uint32_t c = 0;
        for (uint32_t i = 0; i < n_items; i++) c += best[i] < r->p->ks[q];
        row->coverage[q] = n_items ? (double)c / n_items : 0;
    }
    free(best);
}

static void finish(replay *r) {
    run_replay_result *o = r->out;
    o->n_k = r->p->n_k;
    memcpy(o->ks, r->p->ks, sizeof(o->ks));
    o->n_rows = r->p->n_strategies;
    double d = o->scored ? (double)o->scored : 1;
    for (size_t s = 0; s < o->n_rows; s++) {
        run_replay_row *row = &o->rows[s];
        snprintf(row->name, sizeof(row->name), "%s", r->p->strategies[s].name);
        for (uint32_t q = 0; q < o->n_k; q++) {
            row->hr[q] = r->hits[s][q] / d;
            row->ndcg[q] = r->ndcg[s][q] / d;
        }
        coverage(r, s, row);
    }
    for (uint32_t g = 0; g < RUN_REPLAY_SEGMENTS; g++)
        model_bandit_weights(r->bandit, g, o->bandit_weights[g]);
}

static void replay_free(replay *r) {
    uint32_t n_users = model_ids_count(r->ds->users);
    for (uint32_t i = 0; i < n_users; i++) state_user_free(r->users[i]);
    free(r->users);
    for (size_t s = 0; s < RUN_REPLAY_MAX_STRATEGIES; s++) {
        free(r->seen[s].key);
        free(r->seen[s].rank);
    }
    run_recs_free(&r->recs);
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
    replay *r = util_calloc(1, sizeof(*r));
    r->p = p, r->v = v, r->ds = ds, r->out = out;
    r->n_list = p->ks[p->n_k - 1];
    r->users = util_calloc(model_ids_count(ds->users) + 1u, sizeof(*r->users));
    /* Long enough that n_list remain after a full window is left out. */
    uint32_t n_pop = r->n_list + p->cfg->history;
    r->pop = model_popular_live_new(p->popular_half_life_ms, n_pop);
    r->pop_names = util_malloc(n_pop * sizeof(*r->pop_names));
    r->bandit = model_bandit_new(RUN_REPLAY_SEGMENTS, p->bandit_explore);
    run_recs_init(&r->recs);
    for (size_t i = 0; i < first && i < ds->n; i++) apply(r, &ds->rows[i]);
    out->trained = first < ds->n ? first : ds->n;
    int64_t t0 = util_mono_ns();
    for (size_t i = first; i < ds->n; i++) replay_event(r, &ds->rows[i]);
    out->seconds = (double)(util_mono_ns() - t0) / 1e9;
    out->events_per_s = out->seconds > 0 ? (double)out->replayed / out->seconds : 0;
    finish(r);
    replay_free(r);
    return 0;
}
