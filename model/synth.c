/* Synthetic user events with the structure real streams have, so that
 * training, evaluation, the processor and the benchmarks have something to
 * find and something to measure:
 *
 *  - items carry a global Zipf popularity over a random rank order;
 *  - every item belongs to one of `clusters` taste clusters and every user
 *    has a current cluster; an event comes from the user's cluster with
 *    probability in_cluster (Zipf over the item's rank inside the cluster),
 *    otherwise from the global Zipf;
 *  - users have a Zipf activity and emit sessions: several events close in
 *    time, a few sessions interleaved, with repeats of the session's items;
 *  - at each session start a user moves to another cluster with probability
 *    drift;
 *  - the last new_user_share of users and new_item_share of items arrive
 *    spread over the later 70% of expected_events; a new user starts a
 *    session on arrival and a new item is "fresh" (boosted in its cluster)
 *    for a while after release;
 *  - in-cluster events are more often LIKE, out-of-cluster ones more often
 *    VIEW, so event types carry signal.
 *
 * Sampling is O(1) per event (Vose alias tables, xoshiro256**), so the
 * generator runs at millions of events per second and never limits a
 * benchmark. Deterministic for a seed: no global state, no rand(). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

#define SYNTH_SLOTS         8    /* sessions in progress at once */
#define SYNTH_RECENT        4    /* items a session may repeat */
#define SYNTH_FRESH         4    /* recently released items kept per cluster */
#define SYNTH_FRESH_P       0.15 /* chance an in-cluster pick is a fresh item */
#define SYNTH_REPEAT_P      0.15 /* chance an event repeats a session item */
#define SYNTH_SESSION_MEAN  6.0  /* mean events per session */
#define SYNTH_USER_ZIPF     0.7  /* user activity exponent */
#define SYNTH_ARRIVAL_START 0.3  /* arrivals begin at this share of expected_events */

/* ==== Random numbers ==== */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static inline double rng_unit(rng *r) { /* [0, 1) */
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static inline uint32_t rng_below(rng *r, uint32_t n) { /* Lemire, bias < 2^-32 */
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ==== Alias tables (Vose) ==== */

typedef struct alias {
    uint32_t n;
    float *prob;
    uint32_t *other;
} alias;

static void alias_build(alias *a, const double *w, uint32_t n) {
    a->n = n;
    a->prob = util_malloc((size_t)n * sizeof(float));
    a->other = util_malloc((size_t)n * sizeof(uint32_t));
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += w[i];
    double *p = util_malloc((size_t)n * sizeof(double));
    uint32_t *small = util_malloc((size_t)n * sizeof(uint32_t));
    uint32_t *large = util_malloc((size_t)n * sizeof(uint32_t));
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        p[i] = w[i] * n / sum;
        if (p[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        a->prob[s] = (float)p[s];
        a->other[s] = l;
        p[l] -= 1.0 - p[s];
        if (p[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) a->prob[large[--nl]] = 1.0f, a->other[large[nl]] = large[nl];
    while (ns) a->prob[small[--ns]] = 1.0f, a->other[small[ns]] = small[ns];
    free(p);
    free(small);
    free(large);
}

static inline uint32_t alias_draw(const alias *a, rng *r) {
    uint64_t x = rng_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * (uint64_t)a->n) >> 32);
    float u = (float)(x & 0xffffff) * 0x1.0p-24f;
    return u < a->prob[i] ? i : a->other[i];
}

static void alias_free(alias *a) {
    free(a->prob);
    free(a->other);
}

/* ==== Generator state ==== */

typedef struct session {
    uint32_t user, left;
    uint32_t recent[SYNTH_RECENT];
    uint32_t n_recent, recent_pos;
} session;

typedef struct cluster {
    uint32_t n; /* items in the cluster, best global rank first */
    uint32_t *items;
    alias pick; /* Zipf over the rank inside the cluster */
    uint32_t fresh[SYNTH_FRESH];
    uint64_t fresh_at[SYNTH_FRESH];
    uint32_t n_fresh, fresh_pos;
} cluster;

struct model_synth {
    model_synth_params p;
    rng r;
    uint64_t horizon, fresh_for, emitted;
    double t_ms; /* time since start_ms, continuous */
    uint32_t old_users, old_items;
    uint32_t users_live, items_live; /* users/items arrived so far */
    uint64_t next_user_at, next_item_at;
    uint32_t *user_cluster;
    uint32_t *item_cluster;
    cluster *clusters;
    alias item_pick, user_pick;
    session slot[SYNTH_SLOTS];
};

void model_synth_params_default(model_synth_params *p) {
    memset(p, 0, sizeof(*p));
    p->users = 10000;
    p->items = 2000;
    p->clusters = 20;
    p->zipf_s = 1.0;
    p->in_cluster = 0.8;
    p->drift = 0.02;
    p->new_user_share = 0.1;
    p->new_item_share = 0.1;
    p->start_ms = 1793491200000LL; /* 2026-11-01T00:00:00Z */
    p->mean_gap_ms = 50;
    p->seed = 42;
    p->expected_events = 0;
}

/* Where the k-th of n late arrivals happens: spread evenly over the later
 * part of the horizon. */
static uint64_t arrival_at(const model_synth *s, uint32_t k, uint32_t n) {
    double first = SYNTH_ARRIVAL_START * (double)s->horizon;
    return (uint64_t)(first + (double)(k + 1) / (n + 1) * ((double)s->horizon - first));
}

static void shuffle(uint32_t *a, uint32_t n, rng *r) {
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Zipf weights over a random rank order; returns the rank order too. */
static void zipf_alias(alias *a, uint32_t n, double s, rng *r, uint32_t *order) {
    double *w = util_malloc((size_t)n * sizeof(double));
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    shuffle(order, n, r);
    for (uint32_t rank = 0; rank < n; rank++) w[order[rank]] = pow(rank + 1.0, -s);
    alias_build(a, w, n);
    free(w);
}

static void build_clusters(model_synth *s, const uint32_t *item_order) {
    uint32_t C = s->p.clusters, I = s->p.items;
    s->clusters = util_calloc(C, sizeof(cluster));
    s->item_cluster = util_malloc((size_t)I * sizeof(uint32_t));
    /* Every cluster gets at least one item, the rest are uniform. */
    for (uint32_t i = 0; i < I; i++) s->item_cluster[i] = i < C ? i : rng_below(&s->r, C);
    for (uint32_t i = 0; i < I; i++) s->clusters[s->item_cluster[i]].n++;
    for (uint32_t c = 0; c < C; c++) {
        s->clusters[c].items = util_malloc(s->clusters[c].n * sizeof(uint32_t));
        s->clusters[c].n = 0;
    }
    for (uint32_t rank = 0; rank < I; rank++) { /* best global rank first */
        cluster *cl = &s->clusters[s->item_cluster[item_order[rank]]];
        cl->items[cl->n++] = item_order[rank];
    }
    for (uint32_t c = 0; c < C; c++) {
        cluster *cl = &s->clusters[c];
        double *w = util_malloc(cl->n * sizeof(double));
        for (uint32_t k = 0; k < cl->n; k++) w[k] = pow(k + 1.0, -s->p.zipf_s);
        alias_build(&cl->pick, w, cl->n);
        free(w);
    }
}

model_synth *model_synth_new(const model_synth_params *p) {
    model_synth *s = util_calloc(1, sizeof(*s));
    s->p = *p;
    if (s->p.users < 1) s->p.users = 1;
    if (s->p.items < 1) s->p.items = 1;
    if (s->p.clusters < 1) s->p.clusters = 1;
    if (s->p.clusters > s->p.items) s->p.clusters = s->p.items;
    if (s->p.mean_gap_ms < 0) s->p.mean_gap_ms = 0;
    rng_seed(&s->r, p->seed);
    s->horizon = p->expected_events ? p->expected_events : 20ULL * s->p.users;
    s->fresh_for = s->horizon / 10 + 1;
    double nu = fmin(fmax(p->new_user_share, 0), 0.9), ni = fmin(fmax(p->new_item_share, 0), 0.9);
    s->old_users = s->p.users - (uint32_t)(nu * s->p.users);
    s->old_items = s->p.items - (uint32_t)(ni * s->p.items);
    if (!s->old_users) s->old_users = 1;
    if (!s->old_items) s->old_items = 1;
    s->users_live = s->old_users;
    s->items_live = s->old_items;

    uint32_t *order = util_malloc((size_t)s->p.items * sizeof(uint32_t));
    zipf_alias(&s->item_pick, s->p.items, s->p.zipf_s, &s->r, order);
    build_clusters(s, order);
    free(order);
    order = util_malloc((size_t)s->p.users * sizeof(uint32_t));
    zipf_alias(&s->user_pick, s->p.users, SYNTH_USER_ZIPF, &s->r, order);
    free(order);
    s->user_cluster = util_malloc((size_t)s->p.users * sizeof(uint32_t));
    for (uint32_t u = 0; u < s->p.users; u++) s->user_cluster[u] = rng_below(&s->r, s->p.clusters);

    s->next_user_at =
        s->users_live < s->p.users ? arrival_at(s, 0, s->p.users - s->old_users) : UINT64_MAX;
    s->next_item_at =
        s->items_live < s->p.items ? arrival_at(s, 0, s->p.items - s->old_items) : UINT64_MAX;
    return s;
}

void model_synth_free(model_synth *s) {
    if (!s) return;
    for (uint32_t c = 0; c < s->p.clusters; c++) {
        free(s->clusters[c].items);
        alias_free(&s->clusters[c].pick);
    }
    free(s->clusters);
    free(s->item_cluster);
    free(s->user_cluster);
    alias_free(&s->item_pick);
    alias_free(&s->user_pick);
    free(s);
}

/* ==== Arrivals and sessions ==== */

static void release_items(model_synth *s) {
    while (s->emitted >= s->next_item_at) {
        uint32_t item = s->items_live++;
        cluster *cl = &s->clusters[s->item_cluster[item]];
        cl->fresh[cl->fresh_pos] = item;
        cl->fresh_at[cl->fresh_pos] = s->emitted;
        cl->fresh_pos = (cl->fresh_pos + 1) % SYNTH_FRESH;
        if (cl->n_fresh < SYNTH_FRESH) cl->n_fresh++;
        s->next_item_at = s->items_live < s->p.items ? arrival_at(s, s->items_live - s->old_items,
                                                                  s->p.items - s->old_items)
                                                     : UINT64_MAX;
    }
}

/* The next session's user: a newly arrived user if one is due, else one of
 * the users already live, by activity. */
static uint32_t session_user(model_synth *s) {
    if (s->emitted >= s->next_user_at) {
        uint32_t u = s->users_live++;
        s->next_user_at = s->users_live < s->p.users ? arrival_at(s, s->users_live - s->old_users,
                                                                  s->p.users - s->old_users)
                                                     : UINT64_MAX;
        return u;
    }
    for (;;) {
        uint32_t u = alias_draw(&s->user_pick, &s->r);
        if (u < s->users_live) return u;
    }
}

static void session_start(model_synth *s, session *se) {
    se->user = session_user(s);
    se->n_recent = se->recent_pos = 0;
    /* Geometric length with the configured mean, at least one event. */
    double u = rng_unit(&s->r);
    se->left = 1 + (uint32_t)(log1p(-u) / log1p(-1.0 / SYNTH_SESSION_MEAN));
    if (s->p.clusters > 1 && rng_unit(&s->r) < s->p.drift) {
        uint32_t c = rng_below(&s->r, s->p.clusters - 1);
        s->user_cluster[se->user] = c >= s->user_cluster[se->user] ? c + 1 : c;
    }
}

/* ==== Item choice ==== */

static uint32_t pick_global(model_synth *s) {
    for (;;) {
        uint32_t i = alias_draw(&s->item_pick, &s->r);
        if (i < s->items_live) return i;
    }
}

static int pick_fresh(model_synth *s, cluster *cl, uint32_t *item) {
    if (!cl->n_fresh || rng_unit(&s->r) >= SYNTH_FRESH_P) return 0;
    uint32_t k = rng_below(&s->r, cl->n_fresh);
    if (s->emitted - cl->fresh_at[k] > s->fresh_for) return 0;
    *item = cl->fresh[k];
    return 1;
}

/* An item of the cluster by its in-cluster rank; a few draws may land on
 * items not yet released, then fall back to the global popularity. */
static uint32_t pick_in_cluster(model_synth *s, cluster *cl) {
    uint32_t item;
    if (pick_fresh(s, cl, &item)) return item;
    for (int tries = 0; tries < 8; tries++) {
        item = cl->items[alias_draw(&cl->pick, &s->r)];
        if (item < s->items_live) return item;
    }
    return pick_global(s);
}

/* LIKE is likelier for the user's own taste, VIEW for everything else. */
static codec_event_type pick_type(model_synth *s, int in_cluster, int repeat) {
    double u = rng_unit(&s->r);
    if (repeat) return u < 0.7 ? CODEC_EVENT_LISTEN : u < 0.9 ? CODEC_EVENT_LIKE : CODEC_EVENT_VIEW;
    if (in_cluster)
        return u < 0.55 ? CODEC_EVENT_LISTEN : u < 0.8 ? CODEC_EVENT_LIKE : CODEC_EVENT_VIEW;
    return u < 0.45 ? CODEC_EVENT_LISTEN : u < 0.5 ? CODEC_EVENT_LIKE : CODEC_EVENT_VIEW;
}

/* "u000123": fixed-width zero padding to six digits, wider when needed. */
static uint16_t format_id(char *out, char prefix, uint32_t v) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    int len = 0;
    out[len++] = prefix;
    for (int k = n; k < 6; k++) out[len++] = '0';
    while (n) out[len++] = digits[--n];
    out[len] = '\0';
    return (uint16_t)len;
}

void model_synth_next(model_synth *s, codec_event *out) {
    release_items(s);
    session *se = &s->slot[rng_below(&s->r, SYNTH_SLOTS)];
    if (!se->left) session_start(s, se);
    se->left--;

    uint32_t item;
    int in_cluster = 0, repeat = 0;
    if (se->n_recent && rng_unit(&s->r) < SYNTH_REPEAT_P) {
        item = se->recent[rng_below(&s->r, se->n_recent)];
        repeat = 1;
    } else if (rng_unit(&s->r) < s->p.in_cluster) {
        item = pick_in_cluster(s, &s->clusters[s->user_cluster[se->user]]);
        in_cluster = 1;
    } else {
        item = pick_global(s);
    }
    if (!repeat) {
        se->recent[se->recent_pos] = item;
        se->recent_pos = (se->recent_pos + 1) % SYNTH_RECENT;
        if (se->n_recent < SYNTH_RECENT) se->n_recent++;
    }

    if (s->p.mean_gap_ms > 0) s->t_ms += -log1p(-rng_unit(&s->r)) * (double)s->p.mean_gap_ms;
    out->user_len = format_id(out->user_id, 'u', se->user);
    out->item_len = format_id(out->item_id, 'i', item);
    out->type = pick_type(s, in_cluster, repeat);
    out->ts_ms = s->p.start_ms + (int64_t)s->t_ms;
    out->has_duration = 0;
    out->duration_ms = 0;
    out->has_weight = 0;
    out->weight = 0;
    s->emitted++;
}

/* ==== Introspection ==== */

uint32_t model_synth_item_cluster(const model_synth *s, uint32_t item) {
    return item < s->p.items ? s->item_cluster[item] : MODEL_NONE;
}

uint32_t model_synth_user_cluster(const model_synth *s, uint32_t user) {
    return user < s->p.users ? s->user_cluster[user] : MODEL_NONE;
}

uint32_t model_synth_users_live(const model_synth *s) {
    return s->users_live;
}

uint32_t model_synth_items_live(const model_synth *s) {
    return s->items_live;
}
