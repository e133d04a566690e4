/* model: everything recstream knows about items and users, and nothing of
 * Kafka or RocksDB.
 *
 *  - id tables (string id <-> dense index);
 *  - datasets of interactions read from files or handed in by the caller;
 *  - implicit-feedback ALS (Hu, Koren, Volinsky 2008) on OpenBLAS;
 *  - the item neighbour index (top-K cosine, blocked sgemm);
 *  - popularity; offline per-user lists (Avro container file);
 *  - the model file: versioned, checksummed, atomic, fully validated on load;
 *  - fold-in of a user vector from recent items;
 *  - the online scorer (decayed neighbour scores, updated per event) and the
 *    blender of online, offline and popular lists;
 *  - the synthetic event generator and offline evaluation metrics.
 *
 * Errors are returned as -1 with a message in errstr; nothing here prints
 * except through the progress callbacks the caller supplies. */
#ifndef RECSTREAM_MODEL_H
#define RECSTREAM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define MODEL_NONE UINT32_MAX /* "no item": empty neighbour slot, unknown id */

/* ==== Id tables ==== */

/* Interns strings to dense indices 0..n-1 in first-seen order. */
typedef struct model_ids model_ids;
model_ids *model_ids_new(void);
void model_ids_free(model_ids *ids);
uint32_t model_ids_intern(model_ids *ids, const char *id, size_t len);
uint32_t model_ids_find(const model_ids *ids, const char *id, size_t len); /* or MODEL_NONE */
/* out[i] = model_ids_find(ids, id[i], len[i]) for i < n, with the table's
 * memory for a run of ids fetched before any of them is compared. */
void model_ids_find_many(const model_ids *ids, const char *const *id, const size_t *len, size_t n,
                         uint32_t *out);
const char *model_ids_name(const model_ids *ids, uint32_t idx);
uint32_t model_ids_count(const model_ids *ids);

/* ==== Datasets ==== */

typedef struct model_interaction {
    uint32_t user, item;
    int64_t ts_ms;
    float weight; /* explicit weight, or < 0 when the event had none */
    uint8_t type; /* codec_event_type */
} model_interaction;

typedef struct model_dataset {
    model_ids *users, *items;
    model_interaction *rows;
    size_t n, cap;
} model_dataset;

model_dataset *model_dataset_new(void);
void model_dataset_free(model_dataset *ds);
void model_dataset_add(model_dataset *ds, const codec_event *ev);
/* Reads a whole event file. Bad lines are skipped and counted in *n_bad
 * (the first few are reported through warn_cb), or under strict the first
 * one fails the read with its line number in errstr. */
typedef void (*model_warn_cb)(const char *msg, void *opaque);
int model_dataset_read_file(model_dataset *ds, const char *path, const codec_file_opts *opts,
                            int strict, size_t *n_bad, model_warn_cb warn_cb, void *opaque,
                            char *errstr, size_t errstr_size);
/* Sorts rows by event time (stable), as evaluation splits need. */
void model_dataset_sort_by_time(model_dataset *ds);

/* ==== ALS training ==== */

typedef enum { MODEL_SOLVER_CG = 0, MODEL_SOLVER_CHOLESKY = 1 } model_solver;

typedef struct model_als_params {
    uint32_t factors;                     /* default 64 */
    uint32_t iterations;                  /* default 15 */
    float regularization;                 /* lambda, default 0.01 */
    float alpha;                          /* confidence = 1 + alpha * r, default 40 */
    int log_confidence;                   /* confidence = 1 + alpha * log(1 + r / eps) */
    float log_eps;                        /* default 1 */
    model_solver solver;                  /* default CG */
    uint32_t cg_steps;                    /* default 3 */
    uint64_t seed;                        /* default 42 */
    int threads;                          /* 0: all cores */
    float type_weight[CODEC_EVENT_TYPES]; /* default LISTEN 1, VIEW 0.5, LIKE 3 */
} model_als_params;

void model_als_params_default(model_als_params *p);

/* Called after each iteration with the training loss (the implicit ALS
 * objective over all cells, computed without densifying). */
typedef void (*model_progress_cb)(uint32_t iteration, double loss, double seconds, void *opaque);

typedef struct model_als {
    uint32_t n_users, n_items, factors;
    float *user_factors; /* n_users x factors, row-major */
    float *item_factors; /* n_items x factors, row-major */
} model_als;

int model_als_train(const model_dataset *ds, const model_als_params *p, model_progress_cb progress,
                    void *opaque, model_als *out, char *errstr, size_t errstr_size);
void model_als_free(model_als *als);

/* ==== Neighbours and popularity ==== */

/* Top-K cosine neighbours of every item (itself excluded), by blocked sgemm
 * over normalised factors and a partial sort. nbr_idx/nbr_sim hold n_items*K
 * entries, best first; short rows are padded with MODEL_NONE / 0. */
int model_neighbours_build(const float *item_factors, uint32_t n_items, uint32_t factors,
                           uint32_t k, int threads, uint32_t *nbr_idx, float *nbr_sim, char *errstr,
                           size_t errstr_size);

/* The n most popular items by summed weight, each interaction decayed by
 * 2^(-(now - ts) / half_life) when half_life_ms > 0. Returns the count. */
uint32_t model_popularity(const model_dataset *ds, const float type_weight[CODEC_EVENT_TYPES],
                          int64_t half_life_ms, int64_t now_ms, uint32_t n, uint32_t *items,
                          float *scores);

/* ==== The model file ==== */

/* A loaded model: everything the processor serves from. Read-only after
 * load, so any number of threads may read it; the processor swaps whole
 * models by pointer. */
typedef struct model {
    char version[64]; /* e.g. "als-20261122T223000Z-1a2b3c4d" */
    int64_t created_ms;
    uint32_t n_items, factors, k;
    float regularization, alpha; /* what fold-in needs from training */
    model_ids *items;            /* item id <-> index */
    float *item_factors;         /* n_items x factors */
    uint32_t *nbr_idx;           /* n_items x k, MODEL_NONE padded */
    float *nbr_sim;              /* n_items x k */
    uint32_t n_popular;
    uint32_t *popular; /* best first */
    float *popular_score;
    float *gram;   /* factors x factors: item_factors^T item_factors */
    void *backing; /* allocation or mapping behind the arrays */
    size_t backing_size;
} model;

/* Builds a servable model from a training result (neighbours, popularity,
 * Gram matrix); the id table is copied. */
int model_build(const model_dataset *ds, const model_als *als, const model_als_params *p,
                uint32_t k, uint32_t n_popular, int64_t popularity_half_life_ms, model **out,
                char *errstr, size_t errstr_size);
/* Writes to path.tmp, fsyncs, renames: readers see the old or the new file. */
int model_save(const model *m, const char *path, char *errstr, size_t errstr_size);
/* Validates magic, format version, sizes, checksum, id table and every
 * index; a file that fails any check is refused with a clear errstr. */
int model_load(const char *path, model **out, char *errstr, size_t errstr_size);
void model_free(model *m);
uint32_t model_item_index(const model *m, const char *item_id); /* or MODEL_NONE */

/* ==== Fold-in ==== */

/* The ALS user vector for a short list of items with confidences, solving
 * (Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x = Y_u^T C_u p_u with the
 * model's Gram matrix. user_vec has m->factors floats. */
int model_foldin(const model *m, const uint32_t *items, const float *confidence, size_t n,
                 float *user_vec);
float model_dot(const model *m, const float *user_vec, uint32_t item);
/* The n items with the largest dot product with user_vec, best first,
 * items in exclude left out. Returns the count. */
size_t model_foldin_top(const model *m, const float *user_vec, const uint32_t *exclude,
                        size_t n_exclude, size_t n, uint32_t *items, float *scores);

/* ==== Offline lists ==== */

typedef struct model_offline model_offline;

typedef struct model_offline_list {
    uint32_t n;
    const char *const *item_ids;
    const float *scores;
} model_offline_list;

/* Top-n per user from the user factors, items the user already has left
 * out, written as an Avro object container of schemas/offline_list.avsc
 * (atomically; the version goes into the file's metadata). */
int model_offline_write(const char *path, const model_dataset *ds, const model_als *als, uint32_t n,
                        const char *version, int threads, char *errstr, size_t errstr_size);
int model_offline_load(const char *path, model_offline **out, char *errstr, size_t errstr_size);
void model_offline_free(model_offline *o);
const char *model_offline_version(const model_offline *o);
uint32_t model_offline_users(const model_offline *o);
/* The user's list, or NULL when the file has none for them. */
const model_offline_list *model_offline_get(const model_offline *o, const char *user_id);

/* ==== Online scorer ==== */

/* score(j) = sum over events e of w(e) * 2^(-(now - ts_e)/half_life) * sim(item_e, j)
 * over the k nearest neighbours of each item_e. The accumulator keeps each
 * term scaled to a fixed anchor time, so adding (or, when an event leaves the
 * user's window, removing) one event touches only its k neighbours and the
 * ranking equals a recompute over the whole history. */
typedef struct model_online_params {
    uint32_t k;           /* neighbours per event, <= model k; default 50 */
    int64_t half_life_ms; /* default 1 day */
    float type_weight[CODEC_EVENT_TYPES];
    int include_seen; /* keep history items among candidates */
} model_online_params;

void model_online_params_default(model_online_params *p);

typedef struct model_online model_online;
model_online *model_online_new(void);
void model_online_free(model_online *acc);
void model_online_reset(model_online *acc);
/* weight < 0: use the type's weight. sign is +1 to add, -1 to remove. */
void model_online_add(model_online *acc, const model *m, const model_online_params *p,
                      uint32_t item, codec_event_type type, float weight, int64_t ts_ms, int sign);
/* One event of a user's window, for model_online_rebuild. weight < 0: the
 * type's weight. */
typedef struct model_online_event {
    uint32_t item;
    codec_event_type type;
    float weight;
    int64_t ts_ms;
} model_online_event;
/* Empties the map and adds the window's events: the same scores as a reset
 * and a model_online_add of each (up to rounding), but an item repeated in
 * the window spreads over its neighbours once. */
void model_online_rebuild(model_online *acc, const model *m, const model_online_params *p,
                          const model_online_event *ev, size_t n);
/* A few item indices (a user's window, tens of items): a 1024-bit filter
 * answers "not in the set" at once for nearly every other item, a scan of
 * the items the rest. The set points into items[]. */
typedef struct model_item_set {
    const uint32_t *items;
    size_t n;
    uint64_t bits[16];
} model_item_set;
void model_item_set_init(model_item_set *x, const uint32_t *items, size_t n);
int model_item_set_has(const model_item_set *x, uint32_t item);
/* The best n candidates at time now_ms, skipping the exclude[] items unless
 * include_seen; scores are the decayed values of the formula above. */
size_t model_online_top(const model_online *acc, const model_online_params *p, int64_t now_ms,
                        const uint32_t *exclude, size_t n_exclude, size_t n, uint32_t *items,
                        float *scores);

/* ==== Blending ==== */

typedef enum {
    MODEL_BLEND_INTERLEAVE = 0, /* online, offline alternately, then popular */
    MODEL_BLEND_WEIGHTED = 1,   /* rank-weighted merge by source weights */
    MODEL_BLEND_ONLINE = 2,
    MODEL_BLEND_OFFLINE = 3,
    MODEL_BLEND_POPULAR = 4,
    MODEL_BLEND_RERANK = 5 /* union re-ranked by the folded-in vector */
} model_blend_strategy;

typedef struct model_blend_params {
    model_blend_strategy strategy;
    float weight[CODEC_SOURCES]; /* per source, for WEIGHTED */
    uint32_t n;                  /* items per list, default 20 */
    /* RERANK: the score of a candidate (e.g. the folded-in user vector's dot
     * product); without it RERANK falls back to WEIGHTED. */
    float (*rerank)(const char *item_id, void *opaque);
    void *rerank_opaque;
    /* RERANK: the candidate's score is z(rerank) + rerank_mix * (its
     * WEIGHTED rank-merge score); 0 (default): the user vector alone. */
    float rerank_mix;
    /* RERANK: the caller adds the user vector's own best items of the whole
     * catalogue to the online candidates (a catalogue scan per list: the
     * replay's `rerank+foldin`; off by default). */
    int rerank_foldin;
} model_blend_params;

void model_blend_params_default(model_blend_params *p);
/* Parses "interleave", "weighted", "online", "offline", "popular", "rerank";
 * -1 if none. */
int model_blend_strategy_parse(const char *s);
const char *model_blend_strategy_name(model_blend_strategy s);

typedef struct model_candidates {
    const char *const *item_ids;
    const float *scores;
    size_t n;
} model_candidates;

/* Merges the three sources into out (at most p->n items, no duplicates,
 * items in exclude left out, filled with popular items so nobody gets an
 * empty list). Returns the count. */
size_t model_blend(const model_blend_params *p, const model_candidates src[CODEC_SOURCES],
                   codec_rec_item *out);

/* ==== Live counters (model/live.c), for replaying a stream ==== */

/* Popularity counted as events arrive, each decayed by
 * 2^(-(now - ts) / half_life) (half_life 0: plain sums); keeps the n most
 * popular items. Items are the caller's dense indices (any id table). */
typedef struct model_popular_live model_popular_live;
model_popular_live *model_popular_live_new(int64_t half_life_ms, uint32_t n);
void model_popular_live_free(model_popular_live *p);
void model_popular_live_add(model_popular_live *p, uint32_t item, float weight, int64_t ts_ms);
/* The current top, best first (scores relative to an internal anchor: only
 * their order means anything); valid until the next add. */
uint32_t model_popular_live_top(model_popular_live *p, const uint32_t **items,
                                const float **scores);

/* Per-source blend weights learned from hits, per user segment: each
 * (segment, source) counts the list slots the source filled and the hits
 * among them; a weight is the hit rate per slot (shrunk towards the global
 * rate) plus explore times a UCB1 bonus. */
typedef struct model_bandit model_bandit;
model_bandit *model_bandit_new(uint32_t segments, double explore);
void model_bandit_free(model_bandit *b);
/* One shown list: slots[s] items came from source s; hit_source is the
 * source of the item the user took next, or -1 for a miss. */
void model_bandit_record(model_bandit *b, uint32_t segment, const uint32_t slots[CODEC_SOURCES],
                         int hit_source);
void model_bandit_weights(const model_bandit *b, uint32_t segment, float w[CODEC_SOURCES]);

/* ==== Synthetic events ==== */

/* Users belong to taste clusters; each cluster prefers its own slice of a
 * Zipf-popular catalogue, so a recommender has real structure to find.
 * Interests drift, users come in sessions, and new users and items arrive
 * during the stream. Deterministic for a seed. */
typedef struct model_synth_params {
    uint32_t users;        /* default 10000 */
    uint32_t items;        /* default 2000 */
    uint32_t clusters;     /* default 20 */
    double zipf_s;         /* default 1.0 */
    double in_cluster;     /* share of events from the user's cluster, default 0.8 */
    double drift;          /* chance per session to move to another cluster */
    double new_user_share; /* share of users first seen late in the stream */
    double new_item_share; /* share of items released late in the stream */
    int64_t start_ms;      /* time of the first event */
    int64_t mean_gap_ms;   /* mean time between events of the whole stream */
    uint64_t seed;
    uint64_t expected_events; /* stream length over which new users and items
                                 arrive (from 30% of it on); 0: 20 per user */
} model_synth_params;

void model_synth_params_default(model_synth_params *p);
typedef struct model_synth model_synth;
model_synth *model_synth_new(const model_synth_params *p);
void model_synth_free(model_synth *s);
void model_synth_next(model_synth *s, codec_event *out);
/* The hidden truth behind the stream, for tests and evaluation: an item's
 * cluster, a user's current cluster, and how many users and items have
 * arrived so far (ids below these counts may appear). */
uint32_t model_synth_item_cluster(const model_synth *s, uint32_t item);
uint32_t model_synth_user_cluster(const model_synth *s, uint32_t user);
uint32_t model_synth_users_live(const model_synth *s);
uint32_t model_synth_items_live(const model_synth *s);

/* ==== Evaluation ==== */

/* A train/test split. train borrows the source dataset's id tables, so user
 * and item indices agree everywhere (model_split_free never frees them; do
 * not pass &train to model_dataset_free). Per user, test holds the distinct
 * held-out items the user has no training interaction with (the items a
 * recommender of unseen items could get right), as CSR sorted by item. */
typedef struct model_split {
    model_dataset train;
    uint32_t n_users, n_items;
    uint64_t *train_ptr; /* n_users + 1: the user's distinct training items */
    uint32_t *train_items;
    uint32_t *test_ptr; /* n_users + 1 */
    uint32_t *test_items;
    uint8_t *cold_item;     /* n_items: 1 when the item has no training row */
    uint32_t test_users;    /* users with >= 1 test item and >= 1 training row */
    uint32_t cold_users;    /* users with test rows but no training row: skipped */
    size_t test_rows;       /* interactions held out of training */
    size_t test_cold_items; /* test items (summed over users) with no training row */
} model_split;

/* Leave-last-out: per user, the last n_last distinct items (by the time of
 * each item's last interaction; ties by log order) are held out with every
 * interaction of the user with them. Users with at most n_last distinct
 * items stay whole in training and are not tested. */
int model_split_leave_last_out(const model_dataset *ds, uint32_t n_last, model_split *out,
                               char *errstr, size_t errstr_size);
/* Global time split: interactions with ts_ms >= cut_ms are held out. */
int model_split_time(const model_dataset *ds, int64_t cut_ms, model_split *out, char *errstr,
                     size_t errstr_size);
/* The cut time that holds out about test_fraction of the interactions. */
int64_t model_split_time_cut(const model_dataset *ds, double test_fraction);
void model_split_free(model_split *s);

/* Scores every item for a block of users: out[b * n_items + j] is the
 * score of item j for users[b]. Called from several threads at once, on
 * disjoint blocks and buffers. */
typedef void (*model_score_fn)(const uint32_t *users, uint32_t n, uint32_t n_items, float *out,
                               void *opaque);
/* opaque: const model_als * (user factors x item factors, one sgemm). */
void model_score_als(const uint32_t *users, uint32_t n, uint32_t n_items, float *out, void *opaque);
/* opaque: const float * of n_items scores, the same for every user
 * (popularity). */
void model_score_static(const uint32_t *users, uint32_t n, uint32_t n_items, float *out,
                        void *opaque);
/* Popularity scores from a training set: summed interaction weights per
 * item, as model_popularity counts them without decay. */
void model_eval_popularity(const model_dataset *train, const float type_weight[CODEC_EVENT_TYPES],
                           uint32_t n_items, float *scores);

#define MODEL_EVAL_MAX_K 8

/* Averages over test users at one cut-off k (binary relevance): HR (any
 * relevant item in the top k), precision (hits / k), recall (hits / number
 * of relevant items), NDCG (DCG over the ideal DCG of min(relevant, k)
 * hits), MAP (precision at each hit summed over min(relevant, k)), and
 * coverage (distinct items in any top-k list over the items that can be
 * recommended, i.e. those with training interactions). */
typedef struct model_eval_metrics {
    uint32_t k;
    double hr, precision, recall, ndcg, map, coverage;
} model_eval_metrics;

typedef struct model_eval_result {
    uint32_t users; /* test users ranked */
    uint32_t n_k;
    model_eval_metrics at[MODEL_EVAL_MAX_K];
    double seconds;
} model_eval_result;

/* Adds one ranked list's hr, precision, recall, ndcg and map at k to m
 * (sums; the caller divides). relevant is sorted ascending. */
void model_eval_list(const uint32_t *ranked, uint32_t n_ranked, const uint32_t *relevant,
                     uint32_t n_relevant, uint32_t k, model_eval_metrics *m);
/* Ranks, for every test user, all items except the user's training items
 * and items without training rows, takes the top max(ks) by a partial
 * sort, and averages the metrics at each k. Users go in blocks to score()
 * on `threads` threads (0: all cores). */
int model_eval_run(const model_split *s, model_score_fn score, void *opaque, const uint32_t *ks,
                   uint32_t n_k, int threads, model_eval_result *out, char *errstr,
                   size_t errstr_size);

#endif
