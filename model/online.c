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

/* The map: one slot per item of the model, found by the item's index
 * alone (no hashing, no probing), live only when stamped with the map's
 * generation. The entries are dense, in the order items arrived, so the
 * top-n scan reads them front to back. */
typedef struct slot {
    uint32_t gen; /* live only when equal to the map's generation */
    uint32_t pos; /* its entry */
} slot;

typedef struct entry {
    double score;
    uint32_t item;
} entry;

struct model_online {
    slot *slots; /* n_slots of them, indexed by item */
    entry *ent;  /* used of them, room for n_slots */
    uint32_t n_slots, used, gen;
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

model_online *model_online_new(void) {
    model_online *acc = util_calloc(1, sizeof(*acc));
    acc->gen = 1;
    return acc;
}

void model_online_free(model_online *acc) {
    if (!acc) return;
    free(acc->slots);
    free(acc->ent);
    free(acc);
}

/* A new generation empties the map in O(1); slots are cleared for real only
 * when the counter wraps. */
void model_online_reset(model_online *acc) {
    acc->used = 0;
    acc->anchored = 0;
    if (++acc->gen == 0) {
        memset(acc->slots, 0, (size_t)acc->n_slots * sizeof(slot));
        acc->gen = 1;
    }
}

/* Slots for every item of the model: the map is sized by the first model
 * it meets and grows if a later one has more items. Entries never move. */
static void reserve(model_online *acc, uint32_t n_items) {
    if (n_items <= acc->n_slots) return;
    acc->slots = util_realloc(acc->slots, (size_t)n_items * sizeof(slot));
    memset(acc->slots + acc->n_slots, 0, (size_t)(n_items - acc->n_slots) * sizeof(slot));
    acc->ent = util_realloc(acc->ent, (size_t)n_items * sizeof(entry));
    acc->n_slots = n_items;
}

/* The item's entry, a new one (score 0) if it had none. */
static entry *get(model_online *acc, uint32_t item) {
    slot *s = &acc->slots[item];
    if (s->gen != acc->gen) {
        *s = (slot){acc->gen, acc->used};
        acc->ent[acc->used] = (entry){0.0, item};
        return &acc->ent[acc->used++];
    }
    return &acc->ent[s->pos];
}

static double exponent(const model_online_params *p, int64_t from_ms, int64_t to_ms) {
    if (p->half_life_ms <= 0) return 0.0;
    return (double)(to_ms - from_ms) / (double)p->half_life_ms;
}

static void rebase(model_online *acc, const model_online_params *p, int64_t new_anchor) {
    double f = exp2(exponent(p, new_anchor, acc->anchor_ms));
    for (uint32_t i = 0; i < acc->used; i++) acc->ent[i].score *= f;
    acc->anchor_ms = new_anchor;
}

static uint32_t k_of(const model *m, const model_online_params *p) {
    return p->k < m->k ? p->k : m->k;
}

/* Adds term * sim to each of the item's neighbours. */
static void spread(model_online *acc, const model *m, uint32_t k, uint32_t item, double term,
                   int sign) {
    const uint32_t *nbr = m->nbr_idx + (size_t)item * m->k;
    const float *sim = m->nbr_sim + (size_t)item * m->k;
    for (uint32_t i = 0; i < k && nbr[i] != MODEL_NONE; i++) {
        entry *e = get(acc, nbr[i]);
        double d = term * sim[i], v = e->score + d;
        /* Removing the only evidence for an item must leave exactly 0, not a
         * rounding residue that would rank it as a (tiny) candidate. */
        if (sign < 0 && fabs(v) <= 1e-9 * fabs(d)) v = 0.0;
        e->score = v;
    }
}

static double weight_of(const model_online_params *p, codec_event_type type, float weight) {
    return weight >= 0 ? weight : p->type_weight[type];
}

/* Whether an event adds anything: an item the model has, a known type. */
static int counts(const model *m, uint32_t item, codec_event_type type) {
    return item < m->n_items && (unsigned)type < CODEC_EVENT_TYPES;
}

void model_online_add(model_online *acc, const model *m, const model_online_params *p,
                      uint32_t item, codec_event_type type, float weight, int64_t ts_ms, int sign) {
    if (!counts(m, item, type)) return;
    reserve(acc, m->n_items);
    if (!acc->anchored) {
        acc->anchor_ms = ts_ms;
        acc->anchored = 1;
    } else if (exponent(p, acc->anchor_ms, ts_ms) > REBASE_EXPONENT) {
        rebase(acc, p, ts_ms);
    }
    double term = sign * weight_of(p, type, weight) * exp2(exponent(p, acc->anchor_ms, ts_ms));
    spread(acc, m, k_of(m, p), item, term, sign);
}

/* The window's terms merged per item, in the order items first appear:
 * a repeated item spreads over its neighbours once. Anchored at the newest
 * event, so no exponent is positive and none can overflow. */
typedef struct merged {
    uint32_t item;
    double term;
} merged;

static size_t merge_window(const model *m, const model_online_params *p,
                           const model_online_event *ev, size_t n, int64_t anchor, merged *out,
                           uint32_t *table, uint32_t mask) {
    size_t d = 0;
    memset(table, 0xff, ((size_t)mask + 1) * sizeof(*table));
    for (size_t i = 0; i < n; i++) {
        if (!counts(m, ev[i].item, ev[i].type)) continue;
        double term =
            weight_of(p, ev[i].type, ev[i].weight) * exp2(exponent(p, anchor, ev[i].ts_ms));
        uint32_t h = (ev[i].item * 2654435761u) & mask;
        while (table[h] != UINT32_MAX && out[table[h]].item != ev[i].item) h = (h + 1) & mask;
        if (table[h] == UINT32_MAX) {
            table[h] = (uint32_t)d;
            out[d++] = (merged){ev[i].item, 0.0};
        }
        out[table[h]].term += term;
    }
    return d;
}

/* The model's neighbour lists (8 MB for 20 000 items) are mostly out of
 * cache when a user comes round again: in perf, a quarter of the rebuild's
 * samples sat on the load of a list's first index. The next item's lists
 * are fetched while this one's are spread. */
static void prefetch_neighbours(const model *m, uint32_t k, uint32_t item) {
    const char *idx = (const char *)(m->nbr_idx + (size_t)item * m->k);
    const char *sim = (const char *)(m->nbr_sim + (size_t)item * m->k);
    for (size_t off = 0; off < k * sizeof(uint32_t); off += 64) {
        __builtin_prefetch(idx + off);
        __builtin_prefetch(sim + off);
    }
}

void model_online_rebuild(model_online *acc, const model *m, const model_online_params *p,
                          const model_online_event *ev, size_t n) {
    model_online_reset(acc);
    int64_t anchor = 0;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (!counts(m, ev[i].item, ev[i].type) || (any && ev[i].ts_ms <= anchor)) continue;
        anchor = ev[i].ts_ms;
        any = 1;
    }
    if (!any) return;
    reserve(acc, m->n_items);
    acc->anchor_ms = anchor;
    acc->anchored = 1;
    size_t size = 16; /* the merge's table: at most half full */
    while (size < 2 * n) size *= 2;
    merged stack_m[64], *mg = n <= 64 ? stack_m : util_malloc(n * sizeof(*mg));
    uint32_t stack_t[128], *table = size <= 128 ? stack_t : util_malloc(size * sizeof(*table));
    size_t d = merge_window(m, p, ev, n, anchor, mg, table, (uint32_t)(size - 1));
    uint32_t k = k_of(m, p);
    for (size_t i = 0; i < d; i++) {
        if (i + 1 < d) prefetch_neighbours(m, k, mg[i + 1].item);
        spread(acc, m, k, mg[i].item, mg[i].term, +1);
    }
    if (mg != stack_m) free(mg);
    if (table != stack_t) free(table);
}

/* ==== Top-n selection: the best n seen so far ==== */

#define TOP_SORTED_MAX 64 /* longer lists are selected with a heap */

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

void model_item_set_init(model_item_set *x, const uint32_t *items, size_t n) {
    x->items = items;
    x->n = n;
    memset(x->bits, 0, sizeof(x->bits));
    for (size_t i = 0; i < n; i++) x->bits[(items[i] >> 6) & 15] |= 1ULL << (items[i] & 63);
}

int model_item_set_has(const model_item_set *x, uint32_t item) {
    if (!(x->bits[(item >> 6) & 15] & (1ULL << (item & 63)))) return 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->items[i] == item) return 1;
    return 0;
}

/* Puts c into the run top[0..*k), kept best first and at most n long, by
 * moving worse entries down one place. For the usual n (20) this is a
 * short, predictable loop, where a heap's sift-down took several
 * mispredicted branches per level: sift_down alone was 3.5% of the
 * processor's samples. */
static void insert_sorted(cand *top, size_t *k, size_t n, cand c) {
    size_t i = *k < n ? (*k)++ : n - 1;
    for (; i > 0 && better(&c, &top[i - 1]); i--) top[i] = top[i - 1];
    top[i] = c;
}

static void insert_heap(cand *heap, size_t *k, size_t n, cand c) {
    if (*k < n) {
        heap[(*k)++] = c;
        if (*k == n)
            for (size_t j = n / 2; j-- > 0;) sift_down(heap, n, j);
    } else {
        heap[0] = c;
        sift_down(heap, n, 0);
    }
}

/* Heap sort: the worst goes to the end each time, best first remains. */
static void heap_sort(cand *heap, size_t k) {
    for (size_t j = k / 2; j-- > 0;) sift_down(heap, k, j); /* a heap even if never filled */
    for (size_t m = k; m > 1; m--) {
        cand t = heap[0];
        heap[0] = heap[m - 1];
        heap[m - 1] = t;
        sift_down(heap, m - 1, 0);
    }
}

size_t model_online_top(const model_online *acc, const model_online_params *p, int64_t now_ms,
                        const uint32_t *exclude, size_t n_exclude, size_t n, uint32_t *items,
                        float *scores) {
    if (!n || !acc->used) return 0;
    model_item_set ex;
    model_item_set_init(&ex, exclude, p->include_seen ? 0 : n_exclude);
    cand top_stack[256], *top = top_stack; /* on the stack for the usual n */
    if (n > 256) top = util_malloc(n * sizeof(*top));
    /* A long list is a heap: moving entries down costs O(n) per insert. */
    int as_heap = n > TOP_SORTED_MAX;
    size_t k = 0, worst = as_heap ? 0 : n - 1; /* where the worst kept entry is, once full */
    /* Below it nothing can enter: 0 (only positive evidence recommends)
     * until the list is full, then its worst entry. One comparison turns
     * nearly every candidate away. */
    double floor = 0.0;
    for (uint32_t i = 0; i < acc->used; i++) {
        const entry *s = &acc->ent[i];
        if (s->score < floor || !(s->score > 0.0)) continue;
        cand c = {s->score, s->item};
        /* The exclusion test runs only for a candidate that would enter. */
        if (k == n && !better(&c, &top[worst])) continue;
        if (model_item_set_has(&ex, s->item)) continue;
        if (as_heap)
            insert_heap(top, &k, n, c);
        else
            insert_sorted(top, &k, n, c);
        if (k == n) floor = top[worst].score;
    }
    if (as_heap) heap_sort(top, k);
    double decay = exp2(-exponent(p, acc->anchor_ms, now_ms));
    for (size_t i = 0; i < k; i++) {
        items[i] = top[i].item;
        scores[i] = (float)(top[i].score * decay);
    }
    if (top != top_stack) free(top);
    return k;
}
