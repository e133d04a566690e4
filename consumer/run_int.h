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

/* Counters of a batch, added to the run's only when it is persisted. */
typedef struct run_counts {
    uint64_t applied, by_type[CODEC_EVENT_TYPES], invalid, invalid_by_reason[CODEC_ERR__COUNT];
} run_counts;

/* A user's record as a pending batch will write it: the overlay that later
 * batches read through before the store (newest pending batch wins). */
typedef struct run_pend_user {
    int32_t partition;
    char *id; /* owned, NUL-terminated */
    size_t len;
    uint64_t hash;   /* run_user_hash of (partition, id) */
    state_user *rec; /* owned */
} run_pend_user;

typedef struct run_commit run_commit;

/* A batch whose outputs are produced and whose write batch (records +
 * offsets) waits for their acknowledgements (run_pipe.c). */
typedef struct run_pend {
    uint64_t seq;         /* names the batch in its records' delivery opaques */
    int sealed;           /* every record of the batch handed to the producer */
    uint64_t outstanding; /* records handed over and not yet reported */
    int failed;           /* a record finally failed, or the batch could not be built */
    char why[256];        /* the first failure */
    state_batch *wb;      /* held until outstanding reaches 0, then handed to */
    run_commit *commit;   /* the writer (run_write.c) */
    run_part *parts;      /* where each partition of the batch starts and ends */
    size_t n_parts;
    run_pend_user *users; /* in the store's key order, as group_users cuts them */
    size_t n_users;
    uint32_t *index; /* open addressing over users by hash (UINT32_MAX: empty) */
    size_t index_mask;
    run_counts counts;
    size_t n_events;
    char model_version[64], offline_version[64];
} run_pend;

/* Scratch of run_recs_compute, reused for every user. */
typedef struct run_recs {
    model_online *acc;
    model_online_event *win; /* the window's known events, for the rebuild */
    const char **win_ids;    /* the window's item ids, their lengths, model indices */
    size_t *win_lens;
    uint32_t *win_idx;
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
    int win_bloom_ready;                 /* win_bloom made for the current sources */
    model_item_set known;                /* exclude[0, n_known) as a set */
    codec_rec_item *prev;                /* run_recs_published */
    char *prev_ids;
    size_t cap_prev, cap_prev_ids;
    codec_buf buf;
} run_recs;

/* run_par.c: a parallel for on the loop thread (worker 0) and one helper
 * thread (worker 1); fn(ctx, i, worker) for i in [0, n), in any order.
 * Fewer than min indices run on the loop thread alone: below some size
 * waking the helper costs more than it saves. */
#define RUN_PAR_WORKERS   2
#define RUN_PAR_MIN_USERS 8 /* users to score: ~20 us each */
typedef struct run_par run_par;
typedef void (*run_par_fn)(void *ctx, size_t i, int worker);
run_par *run_par_start(void);
void run_par_stop(run_par *p);
void run_par_for(run_par *p, size_t n, size_t min, run_par_fn fn, void *ctx);

/* run_write.c: commits write batches in order on a thread of its own. */
typedef struct run_writer run_writer;
run_writer *run_writer_start(void);
void run_writer_stop(run_writer *w);
/* Queues wb (taken) behind the batches handed before it. */
run_commit *run_writer_submit(run_writer *w, state_batch *wb);
/* 0 while queued or being written, 1 written, -1 not written (*why). */
int run_commit_status(const run_commit *j, const char **why);
/* Frees a commit whose status is no longer 0. */
void run_commit_free(run_commit *j);
/* Waits until every commit handed over is done; after a failure, later
 * ones are refused until this is called. */
void run_writer_idle(run_writer *w);

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
    /* Each touched user's list and record (run_batch.c), kept with their
     * buffers from batch to batch. */
    struct batch_out *outs;
    size_t n_outs;

    /* Pending batches, oldest first (run_pipe.c); at most
     * cfg->max_inflight_batches + 1 (the one being built). */
    run_pend *pend;
    size_t n_pend;
    uint64_t next_seq;
    /* Where to seek back after batches were discarded: per partition the
     * first offset not persisted (run_part.first). */
    run_part *seek;
    size_t n_seek, cap_seek;
    int need_seek;
    int64_t backoff_until_ms; /* no consuming before this (after a rollback) */

    run_recs recs[RUN_PAR_WORKERS]; /* scoring scratch per worker; [0] the loop's */
    run_par *par;
    run_writer *writer;
} run_ctx;

/* How long a stopping or revoked processor waits for pending batches'
 * acknowledgements before it gives them up (they are re-read from the
 * store's offsets, here or by the partition's next owner). */
#define RUN_STOP_GRACE_MS 10000

/* run_rebalance.c */
void run_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque);
int run_is_assigned(const run_ctx *c, int32_t partition);
/* Seeks every assigned partition of c->seek back to its offset. Returns -1
 * when a seek failed (the events there would be skipped). */
int run_seek_back(run_ctx *c);

/* run_batch.c: processes c->msgs (taking ownership of them) into a new
 * pending batch: decoded, applied (reading through the pending batches),
 * its outputs produced, its write batch held. Failures mark it failed;
 * run_pipe_serve rolls it back. */
void run_batch_process(run_ctx *c);
void run_batch_free(run_ctx *c);

/* run_pipe.c: the pending batches. */
void run_pipe_init(run_ctx *c);
void run_pipe_free(run_ctx *c);
/* A new pending batch (the newest), with a fresh sequence number. */
run_pend *run_pipe_push(run_ctx *c);
/* The delivery opaque of a record of batch p: DLQ flag and A/B variant. */
void *run_pipe_opaque(const run_pend *p, int dlq, size_t variant);
/* The delivery-report callback of the output producer (opaque: run_ctx). */
void run_pipe_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *opaque);
/* The key of a user's record in the batch's grouping and the pending
 * batches' indexes. */
uint64_t run_user_hash(int32_t partition, const char *id, size_t len);
/* Indexes p->users (filled) for run_pipe_lookup. */
void run_pipe_index(run_pend *p);
/* The newest sealed pending record of the user, or NULL; hash is
 * run_user_hash of the other three. */
const state_user *run_pipe_lookup(const run_ctx *c, int32_t partition, const char *id, size_t len,
                                  uint64_t hash);
/* Writes the acknowledged batches in order; discards a failed batch and
 * every later one (c->need_seek is then set). Never blocks. */
void run_pipe_serve(run_ctx *c);
/* Serves delivery reports until fewer than max_inflight_batches are
 * pending (or a stop, a failure). */
void run_pipe_wait_room(run_ctx *c);
/* Serves until nothing is pending or grace_ms passed; what is still pending
 * then is discarded (re-read from the store's offsets later). */
void run_pipe_drain(run_ctx *c, int64_t grace_ms);
/* Discards every pending batch (their state never reaches the store). */
void run_pipe_discard_all(run_ctx *c, const char *why);
/* Forgets a partition's seek-back (it is revoked, or assigned from the
 * store's offset). */
void run_pipe_forget(run_ctx *c, int32_t partition);
/* After a discard: drops the gathered messages, seeks back, starts the
 * backoff (c->fatal when the seek fails). */
void run_pipe_rollback(run_ctx *c);
/* 1 while backing off after a rollback (it serves deliveries meanwhile). */
int run_pipe_backoff(run_ctx *c);

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
