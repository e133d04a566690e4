/* One user's recommendations: online neighbours of their recent items, their
 * offline list and popular items, blended, encoded, and remembered in their
 * state as the list last published.
 *
 * The online accumulator is rebuilt from the user's whole window (at most H
 * events) every time the user is touched. That IS the from-scratch result
 * the incremental scorer must equal, costs at most H * K additions (50 * 50
 * by default; an item repeated in the window is spread once), and needs no
 * cache that could disagree with the state store after a rollback or a
 * rebalance. A cache of hot users' accumulators was measured and not
 * built: users return too rarely for one to pay (docs/online.md). */
#include <stdlib.h>
#include <string.h>

#include "run_int.h"

void run_recs_init(run_recs *r) {
    memset(r, 0, sizeof(*r));
    r->acc = model_online_new();
}

void run_recs_free(run_recs *r) {
    model_online_free(r->acc);
    free(r->win);
    free(r->win_ids);
    free(r->win_lens);
    free(r->win_idx);
    free(r->exclude);
    free(r->on_items);
    free(r->on_scores);
    free(r->pop_scores);
    free(r->off_scores);
    free(r->on_names);
    free(r->pop_names);
    free(r->off_names);
    free(r->items);
    free(r->fold_items);
    free(r->fold_scores);
    free(r->fold_names);
    free(r->mix_names);
    free(r->mix_scores);
    free(r->pub);
    free(r->prev);
    free(r->prev_ids);
    free(r->conf);
    free(r->user_vec);
    codec_buf_free(&r->buf);
    memset(r, 0, sizeof(*r));
}

/* Grows the scratch arrays: lists of n entries, exclude of h entries. */
static void reserve(run_recs *r, size_t n, size_t h) {
    if (h > r->cap_exclude) {
        r->win = util_realloc(r->win, h * sizeof(*r->win));
        r->win_ids = util_realloc(r->win_ids, h * sizeof(*r->win_ids));
        r->win_lens = util_realloc(r->win_lens, h * sizeof(*r->win_lens));
        r->win_idx = util_realloc(r->win_idx, h * sizeof(*r->win_idx));
        r->exclude = util_realloc(r->exclude, h * sizeof(*r->exclude));
        r->conf = util_realloc(r->conf, h * sizeof(*r->conf));
        r->cap_exclude = h;
    }
    if (n <= r->cap_lists) return;
    r->on_items = util_realloc(r->on_items, n * sizeof(*r->on_items));
    r->on_scores = util_realloc(r->on_scores, n * sizeof(float));
    r->pop_scores = util_realloc(r->pop_scores, n * sizeof(float));
    r->off_scores = util_realloc(r->off_scores, n * sizeof(float));
    r->on_names = util_realloc(r->on_names, n * sizeof(char *));
    r->pop_names = util_realloc(r->pop_names, n * sizeof(char *));
    r->off_names = util_realloc(r->off_names, n * sizeof(char *));
    r->items = util_realloc(r->items, n * sizeof(*r->items));
    r->fold_items = util_realloc(r->fold_items, n * sizeof(*r->fold_items));
    r->fold_scores = util_realloc(r->fold_scores, n * sizeof(float));
    r->fold_names = util_realloc(r->fold_names, n * sizeof(char *));
    r->mix_names = util_realloc(r->mix_names, 2 * n * sizeof(char *));
    r->mix_scores = util_realloc(r->mix_scores, 2 * n * sizeof(float));
    r->pub = util_realloc(r->pub, n * sizeof(*r->pub));
    r->cap_lists = n;
}

/* A 1024-bit Bloom filter of the window's item ids (one bit each), so the
 * offline candidates that are not in the window (nearly all) skip the scan
 * of H ids. Made on the first question of a user's sources: most users
 * have no offline list, and popular items are asked by model index. */
static void window_filter(run_recs *r, const state_user *u) {
    memset(r->win_bloom, 0, sizeof(r->win_bloom));
    for (uint32_t i = 0; i < u->n_events; i++) {
        uint64_t h = util_hash64(state_user_item(u, &u->events[i]), u->events[i].item_len, 0);
        r->win_bloom[(h >> 6) & 15] |= 1ULL << (h & 63);
    }
    r->win_bloom_ready = 1;
}

static int in_history(run_recs *r, const state_user *u, const char *item) {
    if (!r->win_bloom_ready) window_filter(r, u);
    size_t len = strlen(item);
    uint64_t h = util_hash64(item, len, 0);
    if (!(r->win_bloom[(h >> 6) & 15] & (1ULL << (h & 63)))) return 0;
    for (uint32_t i = 0; i < u->n_events; i++) {
        const state_event *e = &u->events[i];
        if (e->item_len == len && !memcmp(state_user_item(u, e), item, len)) return 1;
    }
    return 0;
}

/* Rebuilds the accumulator from the window and returns the online top. */
static size_t online_list(run_recs *r, const run_config *cfg, const model *m, const state_user *u,
                          int64_t now_ms, size_t n) {
    size_t n_ex = 0;
    for (uint32_t i = 0; i < u->n_events; i++) {
        r->win_ids[i] = state_user_item(u, &u->events[i]);
        r->win_lens[i] = u->events[i].item_len;
    }
    model_ids_find_many(m->items, r->win_ids, r->win_lens, u->n_events, r->win_idx);
    for (uint32_t i = 0; i < u->n_events; i++) {
        const state_event *e = &u->events[i];
        uint32_t idx = r->win_idx[i];
        if (idx == MODEL_NONE) continue; /* an item newer than the model */
        r->win[n_ex] = (model_online_event){idx, (codec_event_type)e->type, e->weight, e->ts_ms};
        /* the window's known items and their ALS confidence, for fold_in */
        float w = e->weight >= 0 ? e->weight : cfg->online.type_weight[e->type];
        r->conf[n_ex] = 1.0f + m->alpha * w;
        r->exclude[n_ex++] = idx;
    }
    r->n_known = n_ex;
    model_online_rebuild(r->acc, m, &cfg->online, r->win, n_ex);
    size_t k = model_online_top(r->acc, &cfg->online, now_ms, r->exclude, n_ex, n, r->on_items,
                                r->on_scores);
    for (size_t i = 0; i < k; i++) r->on_names[i] = model_ids_name(m->items, r->on_items[i]);
    return k;
}

/* The user's offline list, seen items left out unless include_seen. */
static size_t offline_list(run_recs *r, const run_config *cfg, const model_offline *o,
                           const char *user_id, const state_user *u, size_t n) {
    const model_offline_list *l = o ? model_offline_get(o, user_id) : NULL;
    size_t k = 0;
    for (uint32_t i = 0; l && i < l->n && k < n; i++) {
        if (!cfg->online.include_seen && in_history(r, u, l->item_ids[i])) continue;
        r->off_names[k] = l->item_ids[i];
        r->off_scores[k++] = l->scores[i];
    }
    return k;
}

/* The popular list, seen items left out unless include_seen: the model's,
 * or the caller's (a replay counts popularity live). */
static size_t popular_list(run_recs *r, const run_config *cfg, const model *m, const state_user *u,
                           const model_candidates *given, size_t n) {
    size_t k = 0, avail = given ? given->n : m->n_popular;
    for (size_t i = 0; i < avail && k < n; i++) {
        const char *name = given ? given->item_ids[i] : model_ids_name(m->items, m->popular[i]);
        int seen = cfg->online.include_seen ? 0
                   : given                  ? in_history(r, u, name)
                                            : model_item_set_has(&r->known, m->popular[i]);
        if (seen) continue;
        r->pop_names[k] = name;
        r->pop_scores[k++] = given ? given->scores[i] : m->popular_score[i];
    }
    return k;
}

/* ==== Re-ranking by the folded-in user vector (--blend rerank) ==== */

typedef struct rerank_ctx {
    const model *m;
    const float *user_vec;
} rerank_ctx;

static float rerank_score(const char *item_id, void *opaque) {
    const rerank_ctx *x = opaque;
    uint32_t idx = model_item_index(x->m, item_id);
    return idx == MODEL_NONE ? -1e30f : model_dot(x->m, x->user_vec, idx);
}

/* Solves the user's ALS vector from their window (confidence 1 + alpha * w,
 * as training weighs interactions; online_list left the window's known
 * items and their confidence in r->exclude and r->conf), once per
 * run_recs_sources. Returns 0, or -1 when nothing in the window is known to
 * the model or the system is singular. */
static int fold_in(run_recs *r, const model *m) {
    if (r->vec_state) return r->vec_state > 0 ? 0 : -1;
    if (m->factors > r->cap_vec) {
        r->user_vec = util_realloc(r->user_vec, m->factors * sizeof(float));
        r->cap_vec = m->factors;
    }
    size_t n = r->n_known;
    int ok = n && model_foldin(m, r->exclude, r->conf, n, r->user_vec) == 0;
    r->vec_state = ok ? 1 : -1;
    return ok ? 0 : -1;
}

/* The newest event time of the window: online scores are decayed to it, so
 * a replay of the same events gives the same scores (the ranking does not
 * depend on the reference time at all: every term scales alike). */
static int64_t window_now(const state_user *u, int64_t trigger_ts) {
    int64_t now = trigger_ts;
    for (uint32_t i = 0; i < u->n_events; i++)
        if (u->events[i].ts_ms > now) now = u->events[i].ts_ms;
    return now;
}

void run_recs_sources(run_recs *r, const run_config *cfg, const reload_view *v, const char *user_id,
                      const state_user *u, int64_t trigger_ts, size_t n,
                      const model_candidates *popular) {
    reserve(r, n, u->n_events ? u->n_events : 1);
    r->vec_state = 0;
    r->fold_done = 0;
    r->src_n = n;
    r->win_bloom_ready = 0;
    size_t k = online_list(r, cfg, v->model, u, window_now(u, trigger_ts), n);
    /* the window's known items (online_list), for popular_list */
    model_item_set_init(&r->known, r->exclude, r->n_known);
    r->src[CODEC_SOURCE_ONLINE] = (model_candidates){r->on_names, r->on_scores, k};
    k = offline_list(r, cfg, v->offline, user_id, u, n);
    r->src[CODEC_SOURCE_OFFLINE] = (model_candidates){r->off_names, r->off_scores, k};
    k = popular_list(r, cfg, v->model, u, popular, n);
    r->src[CODEC_SOURCE_POPULAR] = (model_candidates){r->pop_names, r->pop_scores, k};
}

/* The folded-in vector's best n items of the catalogue, into r->fold_*
 * (their own buffers: r->src's online list stays for the next blend), once
 * per run_recs_sources. Returns the count, 0 when the user cannot be
 * folded in. */
static size_t fold_list(run_recs *r, const run_config *cfg, const reload_view *v,
                        const state_user *u, size_t n) {
    if (r->fold_done) return r->fold_n;
    r->fold_done = 1;
    r->fold_n = 0;
    if (fold_in(r, v->model) != 0) return 0;
    /* r->exclude holds the window's known items (online_list). */
    size_t n_ex = cfg->online.include_seen ? 0 : r->n_known;
    r->fold_n =
        model_foldin_top(v->model, r->user_vec, r->exclude, n_ex, n, r->fold_items, r->fold_scores);
    for (size_t i = 0; i < r->fold_n; i++)
        r->fold_names[i] = model_ids_name(v->model->items, r->fold_items[i]);
    return r->fold_n;
}

/* RERANK with rerank_foldin: the online candidates and the user vector's
 * own best items, alternately, duplicates dropped, so the re-ranking can
 * pick what neither the neighbours nor the offline list proposed. */
static model_candidates online_and_foldin(run_recs *r, size_t nf) {
    const model_candidates *on = &r->src[CODEC_SOURCE_ONLINE];
    size_t k = 0;
    for (size_t i = 0; i < on->n || i < nf; i++)
        for (int s = 0; s < 2; s++) {
            const char *id =
                s ? (i < nf ? r->fold_names[i] : NULL) : (i < on->n ? on->item_ids[i] : NULL);
            int dup = !id;
            for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(r->mix_names[j], id);
            if (dup) continue;
            r->mix_names[k] = id;
            r->mix_scores[k++] = s ? r->fold_scores[i] : on->scores[i];
        }
    return (model_candidates){r->mix_names, r->mix_scores, k};
}

size_t run_recs_blend(run_recs *r, const run_config *cfg, const model_blend_params *bp,
                      const reload_view *v, const state_user *u) {
    model_blend_params p = *bp;
    if (p.n > r->cap_lists) p.n = (uint32_t)r->cap_lists;
    rerank_ctx rx = {v->model, NULL};
    model_candidates src[CODEC_SOURCES];
    memcpy(src, r->src, sizeof(src));
    if (p.strategy == MODEL_BLEND_RERANK && fold_in(r, v->model) == 0) {
        rx.user_vec = r->user_vec;
        p.rerank = rerank_score;
        p.rerank_opaque = &rx;
        size_t nf = p.rerank_foldin ? fold_list(r, cfg, v, u, r->src_n) : 0;
        if (nf) src[CODEC_SOURCE_ONLINE] = online_and_foldin(r, nf);
    }
    return model_blend(&p, src, r->items);
}

size_t run_recs_foldin(run_recs *r, const run_config *cfg, const reload_view *v,
                       const state_user *u, size_t n) {
    model_candidates src[CODEC_SOURCES];
    memcpy(src, r->src, sizeof(src));
    if (n > r->src_n) n = r->src_n;
    size_t k = fold_list(r, cfg, v, u, n);
    src[CODEC_SOURCE_ONLINE] = (model_candidates){r->fold_names, r->fold_scores, k < n ? k : n};
    model_blend_params p;
    model_blend_params_default(&p);
    p.strategy = MODEL_BLEND_ONLINE;
    p.n = (uint32_t)n;
    return model_blend(&p, src, r->items);
}

int run_recs_compute(run_recs *r, const run_config *cfg, const model_blend_params *bp,
                     const char *variant, const reload_view *v, const char *user_id, state_user *u,
                     int64_t trigger_ts, char *errstr, size_t errstr_size) {
    run_recs_sources(r, cfg, v, user_id, u, trigger_ts, bp->n, NULL);
    size_t n_items = run_recs_blend(r, cfg, bp, v, u);

    int64_t now = util_now_ms();
    codec_recs recs = {user_id, r->items,   n_items, v->model_version, v->offline_version,
                       variant, trigger_ts, now};
    if (codec_encode_recs(&recs, cfg->output_format, cfg->schema_id, &r->buf, errstr, errstr_size))
        return -1;
    for (size_t i = 0; i < n_items; i++)
        r->pub[i] = (state_pub_in){r->items[i].item_id, r->items[i].item_len,
                                   (uint8_t)r->items[i].source, r->items[i].score};
    state_user_set_published(u, r->pub, n_items, variant, now);
    return 0;
}

size_t run_recs_published(run_recs *r, const state_user *u, const codec_rec_item **out) {
    size_t bytes = 0, n = u->n_published;
    for (size_t i = 0; i < n; i++) bytes += u->published[i].item_len + 1u;
    if (n > r->cap_prev) {
        r->prev = util_realloc(r->prev, n * sizeof(*r->prev));
        r->cap_prev = n;
    }
    if (bytes > r->cap_prev_ids) {
        r->prev_ids = util_realloc(r->prev_ids, bytes);
        r->cap_prev_ids = bytes;
    }
    char *p = r->prev_ids;
    for (size_t i = 0; i < n; i++) {
        const state_pub *sp = &u->published[i];
        memcpy(p, state_user_pub_item(u, sp), sp->item_len);
        p[sp->item_len] = 0;
        r->prev[i] = (codec_rec_item){p, sp->score, (codec_source)sp->source, sp->item_len};
        p += sp->item_len + 1;
    }
    *out = r->prev;
    return n;
}
