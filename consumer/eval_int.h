/* eval_int: what `recstream eval`'s two files share (cmd_eval.c: flags,
 * the static split; cmd_eval_replay.c: --replay). Not a public header. */
#ifndef RECSTREAM_EVAL_INT_H
#define RECSTREAM_EVAL_INT_H

#include <jansson.h>
#include <stdint.h>

#include "ab.h"
#include "commands.h"
#include "codec.h"
#include "model.h"
#include "producer.h"

#define UNSET -1

/* ==== Settings ==== */

typedef struct eval_cfg {
    const char *input, *split, *ks, *type_weights, *json, *log_level;
    producer_file_flags file;
    producer_synth_flags synth; /* synth.seed also seeds ALS */
    cmd_als_flags als;
    int64_t synthetic, holdout, cut_time, threads;
    double test_fraction;
    /* --replay */
    const char *replay, *popular, *search, *strategies;
    int64_t history, neighbours, half_life_ms, popular_half_life_ms;
    double rerank_mix, bandit_explore, min_weight;
    int include_seen;
    ab_config variants;
} eval_cfg;

/* What the strings resolve to. */
typedef struct eval_plan {
    codec_file_opts file;
    int leave_last_out;
    uint32_t ks[MODEL_EVAL_MAX_K], n_k;
    model_als_params als;
} eval_plan;

/* The log of --input or --synthetic (NULL after logging the error). */
model_dataset *eval_load_log(const eval_cfg *c, const eval_plan *p, size_t *n_bad);
/* Writes doc to path ('-': stdout). */
int eval_write_json(const char *path, json_t *doc);

/* 1 when the comma-separated list names name. */
int eval_list_has(const char *list, const char *name);

/* cmd_eval_replay.c: `eval --replay`. Returns the exit code. */
int eval_replay_main(const eval_cfg *c, const eval_plan *p);

#endif
