/* run_replay: next-event evaluation of the processor's own code path, on a
 * time-ordered log, without Kafka (`recstream eval --replay`).
 *
 * The log's first part has trained the model the view serves from. The
 * replay first applies those training events to the users' windows and the
 * live popularity (no scoring: a processor that consumed them would hold the
 * same state), then replays the rest event by event. Before each event it
 * asks, for every strategy, what the user's list is at that moment (the
 * window before the event, run_recs_sources / run_recs_blend as the
 * processor calls them) and records the rank of the event's item in it;
 * then the event is appended to the window (state_user_push_event, as the
 * processor does) and counted in the live popularity and the bandit.
 *
 * Users are kept in memory, one state_user record each (the record the
 * state module stores in RocksDB). */
#ifndef RECSTREAM_RUN_REPLAY_H
#define RECSTREAM_RUN_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "ab.h"
#include "model.h"
#include "reload.h"
#include "run.h"

#define RUN_REPLAY_MAX_STRATEGIES (9 + AB_MAX_VARIANTS)
#define RUN_REPLAY_MAX_K          MODEL_EVAL_MAX_K
#define RUN_REPLAY_NAME_MAX       48 /* "variant:" and an A/B name */
#define RUN_REPLAY_SEGMENTS       4  /* bandit segments: window of 0, 1-4, 5-19, 20+ events */

typedef enum {
    RUN_REPLAY_BLEND = 0,  /* model_blend with the strategy's params (popular,
                              offline, online, interleave, ...) */
    RUN_REPLAY_FOLDIN = 1, /* the folded-in vector over the whole catalogue */
    RUN_REPLAY_BANDIT = 2  /* WEIGHTED with weights learned from hits */
} run_replay_kind;

typedef struct run_replay_strategy {
    char name[RUN_REPLAY_NAME_MAX];
    run_replay_kind kind;
    model_blend_params blend;
} run_replay_strategy;

typedef struct run_replay_params {
    const run_config *cfg; /* history H, online params (k, half-life, weights, include_seen) */
    run_replay_strategy strategies[RUN_REPLAY_MAX_STRATEGIES];
    size_t n_strategies;
    uint32_t ks[RUN_REPLAY_MAX_K], n_k; /* ascending; lists are max(ks) long */
    int popular_model;                  /* 1: the model's popular list (as `run` serves);
                                           0 (default): counted live over the log */
    int64_t popular_half_life_ms;       /* live popularity decay; 0 = plain counts */
    double bandit_explore;              /* UCB bonus factor, default 0.1 */
    int threads;                        /* users split over this many threads (default 1) */
} run_replay_params;

/* The built-in strategies: popular, offline, online, foldin, interleave,
 * weighted, rerank (mix 1), bandit; lists of n = 20; ks 5, 10, 20. */
void run_replay_params_default(run_replay_params *p, const run_config *cfg);
/* Adds a strategy (e.g. an A/B variant). -1 when full. */
int run_replay_add(run_replay_params *p, const char *name, run_replay_kind kind,
                   const model_blend_params *blend);

typedef struct run_replay_row {
    char name[RUN_REPLAY_NAME_MAX];
    double hr[RUN_REPLAY_MAX_K], ndcg[RUN_REPLAY_MAX_K], coverage[RUN_REPLAY_MAX_K];
} run_replay_row;

typedef struct run_replay_result {
    uint64_t trained;             /* events applied before the replay */
    uint64_t replayed;            /* events replayed */
    uint64_t scored;              /* of which counted (the others repeat a window item) */
    uint64_t repeats;             /* skipped: the item was in the user's window */
    uint64_t cold_users;          /* scored events of users with an empty window */
    uint64_t unknown_item;        /* scored events whose item the model does not know */
    double seconds, events_per_s; /* wall clock of the replay (not the warm-up) */
    double cpu_seconds;           /* CPU time of all its threads */
    int threads;                  /* that ran the replay */
    uint32_t n_k, ks[RUN_REPLAY_MAX_K];
    size_t n_rows;
    run_replay_row rows[RUN_REPLAY_MAX_STRATEGIES];
    float bandit_weights[RUN_REPLAY_SEGMENTS][CODEC_SOURCES]; /* at the end */
} run_replay_result;

/* Replays ds->rows[first..] (ds sorted by time) after applying
 * ds->rows[..first) to state. v serves the model (and offline lists)
 * trained on the first part; its item ids are matched to ds's by name.
 * HR@k: share of scored events whose item is in the top k; NDCG@k: the mean
 * of 1/log2(rank + 2) over them (one relevant item); coverage@k: distinct
 * items shown in any top k over the items of the whole log. */
int run_replay(const run_replay_params *p, const reload_view *v, const model_dataset *ds,
               size_t first, run_replay_result *out, char *errstr, size_t errstr_size);

#endif
