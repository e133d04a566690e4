/* The online scorer: decayed neighbour scores of a user's recent items.
 *
 * score(j, now) = sum_e w_e * 2^(-(now - ts_e)/h) * sim(item_e, j)
 *              = 2^(-(now - anchor)/h) * S(j),
 *   S(j)       = sum_e w_e * 2^((ts_e - anchor)/h) * sim(item_e, j).
 *
 * S does not depend on `now`, so one event adds (or, leaving the window,
 * subtracts) exactly its own k terms and the ranking at any time equals a
 * recompute over the whole window. The common factor never changes a
 * ranking; it only makes the published scores the formula's values. When
 * events run far past the anchor the exponents would overflow, so the map
 * is rebased: every S multiplied by 2^((old - new)/h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

#define REBASE_EXPONENT 60.0 /* 2^60: far from double's range, rebased rarely */

typedef struct slot {
    uint32_t item;
    uint32_t gen; /* live only when equal to the map's generation */
    double score;
} slot;

struct model_online {
    slot *slots;
    uint32_t *live; /* indices of this generation's slots, so scans touch only them */
    uint32_t mask, used, gen;
    int64_t anchor_ms;
    int anchored;
};

void model_online_params_default(model_online_params *p) {
    memset(p, 0, sizeof(*p));
    p->k = 50;
    p->half_life_ms = 86400000;
    p->type_weight[CODEC_EVENT_LISTEN] = 1.0f;
    p->type_weight[CODEC_EVENT_VIEW] = 0.5f;
    p->type_weight[CODEC_EVENT_LIKE] = 3.0f;
}

static void alloc_slots(model_online *acc, uint32_t size) {
    acc->slots = util_calloc(size, sizeof(slot));
    acc->live = util_malloc((size / 2 + 1) * sizeof(uint32_t)); /* grow() keeps used <= size/2 */
    acc->mask = size - 1;
    acc->used = 0;
    acc->gen = 1;
}

model_online *model_online_new(void) {
    model_online *acc = util_calloc(1, sizeof(*acc));
    alloc_slots(acc, 4096);
    return acc;
}

void model_online_free(model_online *acc) {
    if (!acc) return;
    free(acc->slots);
    free(acc->live);
    free(acc);
}

/* A new generation empties the map in O(1); slots are cleared for real only
 * when the counter wraps. */
void model_online_reset(model_online *acc) {
    acc->used = 0;
    acc->anchored = 0;
    if (++acc->gen == 0) {
        memset(acc->slots, 0, ((size_t)acc->mask + 1) * sizeof(slot));
        acc->gen = 1;
    }
}

static slot *find(model_online *acc, uint32_t item) {
    uint32_t h = (item * 2654435761u) & acc->mask;
    for (;;) {
        slot *s = &acc->slots[h];
        if (s->gen != acc->gen || s->item == item) return s;
        h = (h + 1) & acc->mask;
    }
}

static slot *insert(model_online *acc, uint32_t item, double score) {
    slot *s = find(acc, item);
    *s = (slot){item, acc->gen, score};
    acc->live[acc->used++] = (uint32_t)(s - acc->slots);
    return s;
}

static void grow(model_online *acc) {
    slot *old = acc->slots;
    uint32_t *old_live = acc->live, n = acc->used;
    alloc_slots(acc, (acc->mask + 1) * 2);
    for (uint32_t i = 0; i < n; i++) insert(acc, old[old_live[i]].item, old[old_live[i]].score);
    free(old);
    free(old_live);
}

static double exponent(const model_online_params *p, int64_t from_ms, int64_t to_ms) {
    if (p->half_life_ms <= 0) return 0.0;
    return (double)(to_ms - from_ms) / (double)p->half_life_ms;
}

static void rebase(model_online *acc, const model_online_params *p, int64_t new_anchor) {
    double f = exp2(exponent(p, new_anchor, acc->anchor_ms));
    for (uint32_t i = 0; i < acc->used; i++) acc->slots[acc->live[i]].score *= f;
    acc->anchor_ms = new_anchor;
}

void model_online_add(model_online *acc, const model *m, const model_online_params *p,
                      uint32_t item, codec_event_type type, float weight, int64_t ts_ms, int sign) {
    if (item >= m->n_items || (unsigned)type >= CODEC_EVENT_TYPES) return;
    if (!acc->anchored) {
        acc->anchor_ms = ts_ms;
        acc->anchored = 1;
    } else if (exponent(p, acc->anchor_ms, ts_ms) > REBASE_EXPONENT) {
        rebase(acc, p, ts_ms);
    }
    double w = weight >= 0 ? weight : p->type_weight[type];
    double term = sign * w * exp2(exponent(p, acc->anchor_ms, ts_ms));
    uint32_t k = p->k < m->k ? p->k : m->k;
    const uint32_t *nbr = m->nbr_idx + (size_t)item * m->k;
    const float *sim = m->nbr_sim + (size_t)item * m->k;
    /* Room for k new items first (at most half the slots in use keeps
     * probes short), so that no slot moves inside the loop. */
    while ((acc->used + k) * 2 > acc->mask) grow(acc);
    for (uint32_t i = 0; i < k && nbr[i] != MODEL_NONE; i++) {
        slot *s = find(acc, nbr[i]);
        if (s->gen != acc->gen) {
            *s = (slot){nbr[i], acc->gen, 0.0};
            acc->live[acc->used++] = (uint32_t)(s - acc->slots);
        }
        double d = term * sim[i], v = s->score + d;
        /* Removing the only evidence for an item must leave exactly 0, not a
         * rounding residue that would rank it as a (tiny) candidate. */
        if (sign < 0 && fabs(v) <= 1e-9 * fabs(d)) v = 0.0;
        s->score = v;
    }
}

/* ==== Top-n selection: a min-heap of the best n seen so far ==== */

typedef struct cand {
    double score;
    uint32_t item;
} cand;

/* Better: higher score, then lower index, so ties rank the same every time. */
static int better(const cand *a, const cand *b) {
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

static void sift_down(cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(&h[w], &h[l])) w = l;
        if (r < n && better(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The excluded items (the user's window, ~50): a 1024-bit filter answers
 * "not excluded" at once for nearly every candidate, a scan the rest. */
typedef struct excl {
    const uint32_t *items;
    size_t n;
    uint64_t bits[16];
} excl;

static void excl_init(excl *x, const uint32_t *items, size_t n) {
    x->items = items;
    x->n = n;
    memset(x->bits, 0, sizeof(x->bits));
    for (size_t i = 0; i < n; i++) x->bits[(items[i] >> 6) & 15] |= 1ULL << (items[i] & 63);
}

static int excluded(const excl *x, uint32_t item) {
    if (!(x->bits[(item >> 6) & 15] & (1ULL << (item & 63)))) return 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->items[i] == item) return 1;
    return 0;
}

size_t model_online_top(const model_online *acc, const model_online_params *p, int64_t now_ms,
                        const uint32_t *exclude, size_t n_exclude, size_t n, uint32_t *items,
                        float *scores) {
    if (!n || !acc->used) return 0;
    excl ex;
    excl_init(&ex, exclude, p->include_seen ? 0 : n_exclude);
    cand heap_stack[256], *heap = heap_stack; /* on the stack for the usual n */
    if (n > 256) heap = util_malloc(n * sizeof(*heap));
    size_t k = 0;
    for (uint32_t i = 0; i < acc->used; i++) {
        const slot *s = &acc->slots[acc->live[i]];
        /* Only positive evidence recommends. */
        if (!(s->score > 0.0)) continue;
        cand c = {s->score, s->item};
        /* The exclusion test runs only for a candidate that would enter
         * the heap: once it is full, nearly all candidates lose to its
         * worst entry at the first comparison. */
        if (k == n && !better(&c, &heap[0])) continue;
        if (excluded(&ex, s->item)) continue;
        if (k < n) {
            heap[k++] = c;
            if (k == n)
                for (size_t j = n / 2; j-- > 0;) sift_down(heap, n, j);
        } else {
            heap[0] = c;
            sift_down(heap, n, 0);
        }
    }
    if (k < n) /* never filled: make it a heap for the sort below */
        for (size_t j = k / 2; j-- > 0;) sift_down(heap, k, j);
    /* Heap sort: the worst goes to the end each time, best first remains. */
    for (size_t m = k; m > 1; m--) {
        cand t = heap[0];
        heap[0] = heap[m - 1];
        heap[m - 1] = t;
        sift_down(heap, m - 1, 0);
    }
    double decay = exp2(-exponent(p, acc->anchor_ms, now_ms));
    for (size_t i = 0; i < k; i++) {
        items[i] = heap[i].item;
        scores[i] = (float)(heap[i].score * decay);
    }
    if (heap != heap_stack) free(heap);
    return k;
}
