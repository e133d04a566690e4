/* run_int: what the processor's files share (run.c the loop, run_rebalance.c
 * the group membership, run_batch.c one batch, run_recs.c one user's list).
 * Not a public header: only consumer/run*.c include it. */
#ifndef RECSTREAM_RUN_INT_H
#define RECSTREAM_RUN_INT_H

#include <librdkafka/rdkafka.h>

#include "ab.h"
#include "codec.h"
#include "metrics.h"
#include "model.h"
#include "producer.h"
#include "reload.h"
#include "run.h"
#include "state.h"

/* A decoded event of the batch being processed. */
typedef struct run_event {
    codec_event ev;
    int32_t partition;
    int64_t offset;
    int64_t msg_ts_ms; /* the Kafka message timestamp, for the latency metric */
} run_event;

/* Where one partition of the batch starts and ends. */
typedef struct run_part {
    int32_t partition;
    int64_t first; /* offset of the batch's first message: where to seek back */
    int64_t next;  /* offset after its last message: what to persist */
} run_part;

/* Scratch of run_recs_compute, reused for every user. */
typedef struct run_recs {
    model_online *acc;
    uint32_t *exclude, *on_items;
    float *on_scores, *pop_scores, *off_scores;
    const char **on_names, **pop_names, **off_names;
    codec_rec_item *items;
    uint32_t *fold_items; /* run_recs_foldin's list */
    float *fold_scores;
    const char **fold_names;
    size_t fold_n, src_n;   /* fold_* entries; the n the sources were made with */
    int fold_done;          /* fold_* computed for the current sources */
    const char **mix_names; /* online and fold-in candidates for rerank_foldin */
    float *mix_scores;
    state_pub_in *pub;
    size_t cap_exclude, cap_lists;
    float *conf, *user_vec; /* fold-in for the rerank blend */
    size_t cap_vec;
    int vec_state; /* user_vec for the current sources: 0 not solved, 1 solved, -1 failed */
    model_candidates src[CODEC_SOURCES]; /* set by run_recs_sources */
    size_t n_known;                      /* window items the model knows, in exclude[] */
    uint64_t win_bloom[16];              /* the window's item ids, a Bloom filter (run_recs.c) */
    codec_rec_item *prev;                /* run_recs_published */
    char *prev_ids;
    size_t cap_prev, cap_prev_ids;
    codec_buf buf;
} run_recs;

typedef struct run_ctx {
    const run_config *cfg;       /* &cfg_copy */
    run_config cfg_copy;         /* the caller's, with the registry's output schema id */
    producer_registry *registry; /* NULL without a Schema Registry */
    volatile sig_atomic_t *stop;
    rd_kafka_t *rk; /* the consumer */
    producer_out *out;
    state_store *store;
    reload *rl;
    codec_decoder *dec;
    run_stats stats;
    int fatal;            /* a fatal client error: leave the loop */
    metrics *m;           /* cfg->metrics or own_metrics */
    metrics *own_metrics; /* made here when the caller gave none */
    metrics_http *http;   /* when cfg->metrics_port > 0 */
    const ab_config *ab;  /* cfg->ab or ab_local */
    ab_config ab_local;
    int64_t next_log_ms; /* of the periodic stats line */

    /* The events-topic partitions assigned to us, kept by the rebalance
     * callback (it runs inside rd_kafka_consumer_poll, on the loop thread). */
    int32_t *assigned;
    size_t n_assigned, cap_assigned;

    /* The batch being gathered or processed. */
    rd_kafka_message_t **msgs;
    size_t n_msgs;
    run_event *events;
    size_t n_events;
    run_part *parts;
    size_t n_parts;

    /* Deliveries of the current batch that failed (set by the callback). */
    uint64_t batch_failed;
    rd_kafka_resp_err_t batch_last_err;

    run_recs recs;
} run_ctx;

/* run_rebalance.c */
void run_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque);
int run_is_assigned(const run_ctx *c, int32_t partition);
/* Seeks every partition of the batch back to its first offset. Returns -1
 * when a seek failed (the batch's events would be skipped). */
int run_seek_back(run_ctx *c);

/* run_batch.c: processes c->msgs (taking ownership of them). Returns 0 when
 * persisted, 1 when rolled back (to be re-read; c->fatal is set when even
 * that failed). */
int run_batch_process(run_ctx *c, char *errstr, size_t errstr_size);
/* The delivery-report callback of the output producer (opaque: run_ctx). */
void run_batch_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *opaque);

/* run_recs.c */
void run_recs_init(run_recs *r);
void run_recs_free(run_recs *r);
/* Computes the user's list from their history u (online neighbours of their
 * recent items, their offline list, popular items; blended by cfg), encodes
 * it into r->buf, and records it in u as the published list. now_ms is the
 * event time the online scores are decayed to. Returns 0 or -1 (encode). */
int run_recs_compute(run_recs *r, const run_config *cfg, const model_blend_params *bp,
                     const char *variant, const reload_view *v, const char *user_id, state_user *u,
                     int64_t trigger_ts, char *errstr, size_t errstr_size);
/* The steps of run_recs_compute, for callers that blend one user's sources
 * several ways (`eval --replay`):
 * run_recs_sources fills r->src with the online list (the window's
 * neighbours, decayed to the newest event), the offline list and the
 * popular list, n each, the window's items left out unless include_seen.
 * popular NULL: the model's list; else the caller's (best first).
 * run_recs_blend merges r->src by bp into r->items (RERANK folds the user's
 * window in, once per run_recs_sources) and returns the count (<= the n
 * the sources were made with).
 * run_recs_foldin puts the folded-in vector's best n items of the whole
 * catalogue, filled with popular ones, into r->items. */
void run_recs_sources(run_recs *r, const run_config *cfg, const reload_view *v, const char *user_id,
                      const state_user *u, int64_t trigger_ts, size_t n,
                      const model_candidates *popular);
size_t run_recs_blend(run_recs *r, const run_config *cfg, const model_blend_params *bp,
                      const reload_view *v, const state_user *u);
size_t run_recs_foldin(run_recs *r, const run_config *cfg, const reload_view *v,
                       const state_user *u, size_t n);
/* The list last published to u as codec items (for A/B hit counting);
 * valid until the next call. */
size_t run_recs_published(run_recs *r, const state_user *u, const codec_rec_item **out);

#endif
