/* Live counters for replaying a stream: popularity counted as events
 * arrive, and per-source weights learned from hits (a bandit over the
 * blend's sources).
 *
 * Popularity decays like the online score: each event adds
 * w * 2^((ts - anchor) / half_life), a common factor of every item, so the
 * order never depends on "now" and an increment touches one item. The top
 * list is kept sorted as it goes: counts only grow (in anchored terms), so
 * an item can only enter the list by its own increment. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

#define REBASE_EXP 60.0 /* rebase before 2^exponent nears double's range */

struct model_popular_live {
    int64_t half_life_ms, anchor_ms;
    int anchored;
    double *count; /* per item, scaled to anchor_ms */
    int32_t *pos;  /* per item: index in top, or -1 */
    uint32_t n_items, cap_items;
    uint32_t *top; /* best first */
    float *top_score;
    uint32_t n_top, max_top;
};

model_popular_live *model_popular_live_new(int64_t half_life_ms, uint32_t n) {
    model_popular_live *p = util_calloc(1, sizeof(*p));
    p->half_life_ms = half_life_ms;
    p->max_top = n ? n : 1;
    p->top = util_malloc(p->max_top * sizeof(*p->top));
    p->top_score = util_malloc(p->max_top * sizeof(float));
    return p;
}

void model_popular_live_free(model_popular_live *p) {
    if (!p) return;
    free(p->count);
    free(p->pos);
    free(p->top);
    free(p->top_score);
    free(p);
}

static void grow(model_popular_live *p, uint32_t item) {
    if (item < p->n_items) return;
    if (item >= p->cap_items) {
        uint32_t cap = p->cap_items ? p->cap_items : 1024;
        while (cap <= item) cap *= 2;
        p->count = util_realloc(p->count, cap * sizeof(double));
        p->pos = util_realloc(p->pos, cap * sizeof(int32_t));
        p->cap_items = cap;
    }
    for (uint32_t i = p->n_items; i <= item; i++) p->count[i] = 0, p->pos[i] = -1;
    p->n_items = item + 1;
}

/* The weight of an event at ts in anchored terms, rebasing when needed. */
static double scaled(model_popular_live *p, double w, int64_t ts_ms) {
    if (p->half_life_ms <= 0) return w;
    if (!p->anchored) p->anchor_ms = ts_ms, p->anchored = 1;
    double e = (double)(ts_ms - p->anchor_ms) / (double)p->half_life_ms;
    if (e > REBASE_EXP) {
        double f = exp2(-e);
        for (uint32_t i = 0; i < p->n_items; i++) p->count[i] *= f;
        p->anchor_ms = ts_ms;
        e = 0;
    }
    return w * exp2(e);
}

/* Moves top[i] towards the front while it beats its predecessor. */
static void bubble(model_popular_live *p, uint32_t i) {
    while (i > 0 && p->count[p->top[i - 1]] < p->count[p->top[i]]) {
        uint32_t a = p->top[i - 1], b = p->top[i];
        p->top[i - 1] = b, p->top[i] = a;
        p->pos[b] = (int32_t)(i - 1), p->pos[a] = (int32_t)i;
        i--;
    }
}

void model_popular_live_add(model_popular_live *p, uint32_t item, float weight, int64_t ts_ms) {
    if (item == MODEL_NONE || !(weight > 0)) return;
    grow(p, item);
    p->count[item] += scaled(p, weight, ts_ms);
    if (p->pos[item] >= 0) return bubble(p, (uint32_t)p->pos[item]);
    uint32_t i = p->n_top;
    if (i == p->max_top) {
        i = p->max_top - 1;
        if (p->count[p->top[i]] >= p->count[item]) return;
        p->pos[p->top[i]] = -1;
    } else {
        p->n_top++;
    }
    p->top[i] = item;
    p->pos[item] = (int32_t)i;
    bubble(p, i);
}

uint32_t model_popular_live_top(model_popular_live *p, const uint32_t **items,
                                const float **scores) {
    for (uint32_t i = 0; i < p->n_top; i++) p->top_score[i] = (float)p->count[p->top[i]];
    *items = p->top;
    *scores = p->top_score;
    return p->n_top;
}

/* ==== Source weights learned from hits ====
 *
 * Partial feedback, as the processor has it: a source is credited only for
 * the slots it filled in the list the user was shown, and for a hit when the
 * user's next item stood in one of them. Each (segment, source) arm keeps
 * those counts; its weight is the hit rate per slot plus an upper
 * confidence bonus (UCB1), so a source that got few slots is still tried.
 * A segment with little data borrows the global rate as a prior worth
 * PRIOR_SLOTS slots. */

#define PRIOR_SLOTS 50.0

struct model_bandit {
    uint32_t segments;
    double *slots, *hits; /* (segments + 1) x CODEC_SOURCES; the last row is global */
    double explore;
};

model_bandit *model_bandit_new(uint32_t segments, double explore) {
    model_bandit *b = util_calloc(1, sizeof(*b));
    b->segments = segments ? segments : 1;
    size_t n = (size_t)(b->segments + 1) * CODEC_SOURCES;
    b->slots = util_calloc(n, sizeof(double));
    b->hits = util_calloc(n, sizeof(double));
    b->explore = explore;
    return b;
}

void model_bandit_free(model_bandit *b) {
    if (!b) return;
    free(b->slots);
    free(b->hits);
    free(b);
}

void model_bandit_record(model_bandit *b, uint32_t segment, const uint32_t slots[CODEC_SOURCES],
                         int hit_source) {
    if (segment >= b->segments) segment = b->segments - 1;
    double *rs = b->slots + (size_t)segment * CODEC_SOURCES;
    double *rh = b->hits + (size_t)segment * CODEC_SOURCES;
    double *gs = b->slots + (size_t)b->segments * CODEC_SOURCES;
    double *gh = b->hits + (size_t)b->segments * CODEC_SOURCES;
    for (int s = 0; s < CODEC_SOURCES; s++) rs[s] += slots[s], gs[s] += slots[s];
    if (hit_source >= 0 && hit_source < CODEC_SOURCES) rh[hit_source] += 1, gh[hit_source] += 1;
}

void model_bandit_weights(const model_bandit *b, uint32_t segment, float w[CODEC_SOURCES]) {
    if (segment >= b->segments) segment = b->segments - 1;
    const double *rs = b->slots + (size_t)segment * CODEC_SOURCES;
    const double *rh = b->hits + (size_t)segment * CODEC_SOURCES;
    const double *gs = b->slots + (size_t)b->segments * CODEC_SOURCES;
    const double *gh = b->hits + (size_t)b->segments * CODEC_SOURCES;
    double total = 1;
    for (int s = 0; s < CODEC_SOURCES; s++) total += rs[s];
    for (int s = 0; s < CODEC_SOURCES; s++) {
        double prior = (gh[s] + 1) / (gs[s] + 2);
        double n = rs[s] + PRIOR_SLOTS;
        double mean = (rh[s] + PRIOR_SLOTS * prior) / n;
        w[s] = (float)(mean + b->explore * sqrt(2 * log(total) / n));
    }
}
