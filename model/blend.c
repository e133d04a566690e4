/* Blending: one list per user from the online, offline and popular sources.
 *
 * Every strategy ends by filling from the popular list, so a user with no
 * history and no offline list still gets a full list: nobody sees nothing.
 * Lists are short (tens of items), so duplicates are found by a linear scan
 * of what was already taken rather than by a hash set. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "model.h"
#include "util.h"

#define BLEND_POOL_MAX 1024 /* candidates merged at most (three lists of n) */

static const char *const strategy_names[] = {"interleave", "weighted", "online",
                                             "offline",    "popular",  "rerank"};

void model_blend_params_default(model_blend_params *p) {
    memset(p, 0, sizeof(*p));
    p->strategy = MODEL_BLEND_INTERLEAVE;
    for (int s = 0; s < CODEC_SOURCES; s++) p->weight[s] = 1.0f;
    p->n = 20;
}

int model_blend_strategy_parse(const char *s) {
    for (int i = 0; i <= MODEL_BLEND_RERANK; i++)
        if (!strcasecmp(s, strategy_names[i])) return i;
    return -1;
}

const char *model_blend_strategy_name(model_blend_strategy s) {
    return (unsigned)s <= MODEL_BLEND_RERANK ? strategy_names[s] : "unknown";
}

/* A short hash of an id, compared before the strings: the same item may
 * come from different id tables (model, offline file), so pointers cannot
 * be compared, and a scan of strcmp calls cost more than the rest of a
 * blend. */
static uint32_t id_hash(const char *s, size_t len) {
    return (uint32_t)util_hash64(s, len, 0);
}

typedef struct out_list {
    codec_rec_item *items;
    size_t n, max;
    uint32_t hash[BLEND_POOL_MAX];
} out_list;

static int taken(const out_list *o, const char *id, uint32_t h) {
    for (size_t i = 0; i < o->n; i++)
        if (o->hash[i] == h && !strcmp(o->items[i].item_id, id)) return 1;
    return 0;
}

static void put(out_list *o, codec_rec_item it, uint32_t h) {
    o->hash[o->n] = h;
    o->items[o->n++] = it;
}

/* Appends the source's candidate i unless it is there already. */
static void take(out_list *o, const model_candidates *c, size_t i, codec_source src) {
    if (o->n >= o->max) return;
    const char *id = c->item_ids[i];
    size_t len = strlen(id); /* once: the list carries it to the encoders */
    uint32_t h = id_hash(id, len);
    if (!taken(o, id, h)) put(o, (codec_rec_item){id, c->scores[i], src, (uint32_t)len}, h);
}

static void take_all(out_list *o, const model_candidates *src, codec_source s) {
    for (size_t i = 0; i < src[s].n && o->n < o->max; i++) take(o, &src[s], i, s);
}

static void interleave(out_list *o, const model_candidates *src) {
    const model_candidates *on = &src[CODEC_SOURCE_ONLINE], *off = &src[CODEC_SOURCE_OFFLINE];
    for (size_t i = 0; (i < on->n || i < off->n) && o->n < o->max; i++) {
        if (i < on->n) take(o, on, i, CODEC_SOURCE_ONLINE);
        if (i < off->n) take(o, off, i, CODEC_SOURCE_OFFLINE);
    }
}

/* ==== Scored merge (WEIGHTED, RERANK) ==== */

typedef struct scored {
    const char *item_id;
    uint32_t len;     /* strlen(item_id) */
    uint32_t hash;    /* id_hash(item_id) */
    float score;      /* the merged score: the sort key */
    float shown;      /* the score published (RERANK: the dot product) */
    float best;       /* the largest single-source contribution */
    codec_source src; /* the source of that contribution */
} scored;

static scored *find_scored(scored *pool, size_t n, const char *id, uint32_t h) {
    for (size_t i = 0; i < n; i++)
        if (pool[i].hash == h && !strcmp(pool[i].item_id, id)) return &pool[i];
    return NULL;
}

/* RERANK: the caller's score (the folded-in vector's dot product), put on a
 * common scale per list (z-score over the pool, since dot products vary
 * from user to user), plus rerank_mix times the rank merge, so a candidate
 * both the user vector and a source rank high comes first. rerank_mix 0 is
 * the user vector's order alone. */
static void rerank(const model_blend_params *p, scored *pool, size_t n) {
    double sum = 0, sq = 0;
    size_t known = 0; /* the moments are over the items the model knows */
    float dot[BLEND_POOL_MAX];
    for (size_t i = 0; i < n; i++) {
        dot[i] = p->rerank(pool[i].item_id, p->rerank_opaque);
        if (dot[i] < -1e29f) continue; /* unknown to the model: scored below all */
        sum += dot[i], sq += (double)dot[i] * dot[i], known++;
    }
    double mean = known ? sum / (double)known : 0;
    double var = known ? sq / (double)known - mean * mean : 0;
    double sd = var > 1e-12 ? sqrt(var) : 1;
    for (size_t i = 0; i < n; i++) {
        double z = dot[i] < -1e29f ? -10.0 : (dot[i] - mean) / sd;
        pool[i].score = (float)(z + p->rerank_mix * pool[i].score);
        pool[i].shown = dot[i];
    }
}

/* Each source adds weight / (rank + 1): a rank-based merge, so sources with
 * scores on different scales (cosine sums, dot products, counts) mix fairly.
 * The item keeps the source that contributed most. */
static size_t pool_weighted(const model_blend_params *p, const model_candidates *src, scored *pool,
                            size_t cap) {
    size_t n = 0;
    for (int s = 0; s < CODEC_SOURCES; s++) {
        for (size_t i = 0; i < src[s].n; i++) {
            float c = p->weight[s] / (float)(i + 1);
            const char *id = src[s].item_ids[i];
            size_t len = strlen(id);
            uint32_t h = id_hash(id, len);
            scored *e = find_scored(pool, n, id, h);
            if (!e) {
                if (n == cap) break;
                e = &pool[n++];
                *e = (scored){id, (uint32_t)len, h, 0, 0, -1, (codec_source)s};
            }
            e->score += c;
            if (c > e->best) e->best = c, e->src = (codec_source)s;
        }
    }
    for (size_t i = 0; i < n; i++) pool[i].shown = pool[i].score;
    if (p->strategy == MODEL_BLEND_RERANK && p->rerank) rerank(p, pool, n);
    return n;
}

static void sort_scored(scored *pool, size_t n) {
    for (size_t i = 1; i < n; i++) { /* insertion sort: n is small, and it is stable */
        scored t = pool[i];
        size_t j = i;
        for (; j > 0 && pool[j - 1].score < t.score; j--) pool[j] = pool[j - 1];
        pool[j] = t;
    }
}

static void merged(const model_blend_params *p, out_list *o, const model_candidates *src) {
    scored pool[BLEND_POOL_MAX];
    size_t n = pool_weighted(p, src, pool, BLEND_POOL_MAX);
    sort_scored(pool, n);
    for (size_t i = 0; i < n && o->n < o->max; i++)
        if (!taken(o, pool[i].item_id, pool[i].hash))
            put(o, (codec_rec_item){pool[i].item_id, pool[i].shown, pool[i].src, pool[i].len},
                pool[i].hash);
}

size_t model_blend(const model_blend_params *p, const model_candidates src[CODEC_SOURCES],
                   codec_rec_item *out) {
    out_list o;
    o.items = out, o.n = 0, o.max = p->n < BLEND_POOL_MAX ? p->n : BLEND_POOL_MAX;
    switch (p->strategy) {
    case MODEL_BLEND_INTERLEAVE:
        interleave(&o, src);
        break;
    case MODEL_BLEND_WEIGHTED:
    case MODEL_BLEND_RERANK:
        merged(p, &o, src);
        break;
    case MODEL_BLEND_ONLINE:
        take_all(&o, src, CODEC_SOURCE_ONLINE);
        break;
    case MODEL_BLEND_OFFLINE:
        take_all(&o, src, CODEC_SOURCE_OFFLINE);
        break;
    case MODEL_BLEND_POPULAR:
        break;
    }
    take_all(&o, src, CODEC_SOURCE_POPULAR);
    return o.n;
}
