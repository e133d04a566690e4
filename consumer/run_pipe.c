/* The pipeline of pending batches: what lets the processor work on batch
 * N+1 while batch N's outputs are still being acknowledged, without giving
 * up the exactly-once rule of the state store.
 *
 *   batch N processed -> its write batch (records + offsets) held here
 *   -> later batches processed meanwhile, reading a user's record through
 *      the pending batches first (newest wins), then the store
 *   -> when every record of a batch and of all earlier ones is
 *      acknowledged, its write batch goes to the writer thread
 *      (run_write.c), which commits strictly in order, so the store only
 *      ever holds a prefix of the stream; the batch (and its overlay)
 *      stays here until its commit is done
 *   -> when a record of batch N finally fails: N and every later batch are
 *      discarded (none of them reached the store), the partitions are
 *      sought back to where the earliest discarded batch started them, and
 *      consuming resumes after the backoff.
 *
 * Records name their batch by the delivery opaque (sequence number, DLQ
 * flag, A/B variant), so late reports of a discarded batch are recognised
 * and ignored. Apart from the commits, everything runs on the loop thread:
 * delivery reports are served by producer_out_poll/send, which the loop
 * calls. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run_int.h"

/* Opaque layout: seq << 8 | DLQ flag (0x80) | variant (< 0x80). */
#define OPQ_DLQ     0x80u
#define OPQ_VARIANT 0x7fu
_Static_assert(sizeof(uintptr_t) >= 8, "the delivery opaque carries a 56-bit sequence");
_Static_assert(AB_MAX_VARIANTS <= OPQ_VARIANT, "the delivery opaque carries the variant");

void run_pipe_init(run_ctx *c) {
    c->pend = util_calloc((size_t)c->cfg->max_inflight_batches + 1, sizeof(*c->pend));
    c->next_seq = 1;
    c->writer = run_writer_start();
}

static void pend_free(run_pend *p) {
    for (size_t i = 0; i < p->n_users; i++) {
        free(p->users[i].id);
        state_user_free(p->users[i].rec);
    }
    free(p->users);
    free(p->index);
    free(p->parts);
    state_batch_free(p->wb);
    run_commit_free(p->commit);
    memset(p, 0, sizeof(*p));
}

void run_pipe_free(run_ctx *c) {
    if (c->writer) run_writer_idle(c->writer);
    for (size_t i = 0; i < c->n_pend; i++) pend_free(&c->pend[i]);
    free(c->pend);
    free(c->seek);
    run_writer_stop(c->writer);
    c->writer = NULL;
    c->pend = NULL;
    c->seek = NULL;
    c->n_pend = c->n_seek = 0;
}

run_pend *run_pipe_push(run_ctx *c) {
    run_pend *p = &c->pend[c->n_pend++];
    memset(p, 0, sizeof(*p));
    p->seq = c->next_seq++;
    return p;
}

void *run_pipe_opaque(const run_pend *p, int dlq, size_t variant) {
    return (void *)(uintptr_t)(p->seq << 8 | (dlq ? OPQ_DLQ : 0) | (variant & OPQ_VARIANT));
}

static run_pend *find_seq(run_ctx *c, uint64_t seq) {
    for (size_t i = 0; i < c->n_pend; i++)
        if (c->pend[i].seq == seq) return &c->pend[i];
    return NULL; /* discarded: its late reports change nothing */
}

void run_pipe_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *opaque) {
    run_ctx *c = opaque;
    uintptr_t v = (uintptr_t)msg_opaque;
    run_pend *p = find_seq(c, v >> 8);
    if (p && p->outstanding) p->outstanding--;
    if (err) {
        c->stats.delivery_failures++;
        log_error("run: %s record not delivered: %s", v & OPQ_DLQ ? "dead-letter" : "output",
                  rd_kafka_err2str(err));
        metrics_publish_failed(c->m);
        if (p && !p->failed)
            snprintf(p->why, sizeof(p->why), "%s", rd_kafka_err2str(err)), p->failed = 1;
    } else if (!(v & OPQ_DLQ)) {
        c->stats.published++;
        metrics_published(c->m, v & OPQ_VARIANT);
    }
}

/* ==== The overlay ==== */

uint64_t run_user_hash(int32_t partition, const char *id, size_t len) {
    return util_hash64(id, len, (uint64_t)(uint32_t)partition);
}

/* A hash index: a lookup per touched user and pending batch is one probe,
 * where a binary search over the users took ~8 string compares. */
void run_pipe_index(run_pend *p) {
    size_t size = 16;
    while (size < 2 * p->n_users) size *= 2;
    p->index = util_malloc(size * sizeof(*p->index));
    memset(p->index, 0xff, size * sizeof(*p->index));
    p->index_mask = size - 1;
    for (size_t i = 0; i < p->n_users; i++) {
        size_t h = p->users[i].hash & p->index_mask;
        while (p->index[h] != UINT32_MAX) h = (h + 1) & p->index_mask;
        p->index[h] = (uint32_t)i;
    }
}

static const run_pend_user *pend_find(const run_pend *p, int32_t partition, const char *id,
                                      size_t len, uint64_t hash) {
    for (size_t h = hash & p->index_mask; p->index[h] != UINT32_MAX; h = (h + 1) & p->index_mask) {
        const run_pend_user *u = &p->users[p->index[h]];
        if (u->hash == hash && u->partition == partition && u->len == len &&
            !memcmp(u->id, id, len))
            return u;
    }
    return NULL;
}

const state_user *run_pipe_lookup(const run_ctx *c, int32_t partition, const char *id, size_t len,
                                  uint64_t hash) {
    for (size_t i = c->n_pend; i-- > 0;) {
        if (!c->pend[i].sealed) continue; /* the batch being built */
        const run_pend_user *u = pend_find(&c->pend[i], partition, id, len, hash);
        if (u) return u->rec;
    }
    return NULL;
}

/* ==== Writing in order, discarding on failure ==== */

static void seek_note(run_ctx *c, int32_t partition, int64_t offset) {
    for (size_t i = 0; i < c->n_seek; i++)
        if (c->seek[i].partition == partition) {
            if (offset < c->seek[i].first) c->seek[i].first = offset;
            return;
        }
    if (c->n_seek == c->cap_seek) {
        c->cap_seek = c->cap_seek ? 2 * c->cap_seek : 16;
        c->seek = util_realloc(c->seek, c->cap_seek * sizeof(*c->seek));
    }
    c->seek[c->n_seek++] = (run_part){partition, offset, offset};
}

void run_pipe_forget(run_ctx *c, int32_t partition) {
    for (size_t i = 0; i < c->n_seek; i++)
        if (c->seek[i].partition == partition) {
            c->seek[i] = c->seek[--c->n_seek];
            return;
        }
}

static void finish_oldest(run_ctx *c);

/* Discards pend[from..]: their state never reached the store; where each of
 * their partitions started is noted for the seek-back. */
static void discard_from(run_ctx *c, size_t from, const char *why) {
    /* A commit in flight may still land: wait for the writer, and let what
     * it wrote leave as written (re-reading it would apply it twice). A
     * commit that failed takes every later batch with it, so that the
     * writer, which refused them, may write again afterwards. */
    run_writer_idle(c->writer);
    while (c->n_pend && c->pend[0].commit && run_commit_status(c->pend[0].commit, NULL) > 0) {
        finish_oldest(c);
        if (from) from--;
    }
    char commit_why[256];
    if (c->n_pend && c->pend[0].commit) { /* its commit failed */
        run_commit_status(c->pend[0].commit, &why);
        snprintf(commit_why, sizeof(commit_why), "%s", why);
        why = commit_why;
        from = 0;
    }
    if (from >= c->n_pend) return;
    size_t events = 0;
    for (size_t i = from; i < c->n_pend; i++) {
        run_pend *p = &c->pend[i];
        for (size_t j = 0; j < p->n_parts; j++)
            seek_note(c, p->parts[j].partition, p->parts[j].first);
        events += p->n_events;
        c->stats.batch_retries++;
        pend_free(p);
    }
    log_error("run: %zu batches (%zu events) not persisted (%s); they will be re-read",
              c->n_pend - from, events, why);
    c->n_pend = from;
    c->need_seek = 1;
}

void run_pipe_discard_all(run_ctx *c, const char *why) {
    if (c->n_pend) discard_from(c, 0, why);
}

/* Stores the persisted offsets for the group's advisory commit (lag tools,
 * kafka-consumer-groups); the store, not these, decides where to resume. */
static void store_group_offsets(run_ctx *c, const run_pend *p) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)p->n_parts);
    for (size_t i = 0; i < p->n_parts; i++)
        if (run_is_assigned(c, p->parts[i].partition))
            rd_kafka_topic_partition_list_add(l, c->cfg->events_topic, p->parts[i].partition)
                ->offset = p->parts[i].next;
    if (l->cnt) rd_kafka_offsets_store(c->rk, l); /* best effort: a revoked one fails */
    rd_kafka_topic_partition_list_destroy(l);
}

static void add_counts(run_stats *s, const run_counts *bc) {
    s->applied += bc->applied;
    s->invalid += bc->invalid;
    for (int t = 0; t < CODEC_EVENT_TYPES; t++) s->by_type[t] += bc->by_type[t];
    for (int r = 0; r < CODEC_ERR__COUNT; r++) s->invalid_by_reason[r] += bc->invalid_by_reason[r];
    s->batches++;
}

/* The oldest pending batch is written: it leaves the pipeline. */
static void finish_oldest(run_ctx *c) {
    run_pend *p = &c->pend[0];
    store_group_offsets(c, p);
    add_counts(&c->stats, &p->counts);
    snprintf(c->stats.model_version, sizeof(c->stats.model_version), "%s", p->model_version);
    snprintf(c->stats.offline_version, sizeof(c->stats.offline_version), "%s", p->offline_version);
    pend_free(p);
    memmove(&c->pend[0], &c->pend[1], --c->n_pend * sizeof(*c->pend));
    if (c->cfg->on_batch) {
        c->stats.reloads = reload_count(c->rl);
        c->stats.reload_failures = reload_failures(c->rl);
        c->cfg->on_batch(&c->stats, c->cfg->on_batch_opaque);
    }
}

/* Written batches leave, oldest first; a batch the writer could not write
 * is discarded with every later one (discard_from logs its commit's
 * reason). */
static void finish_written(run_ctx *c) {
    while (c->n_pend && c->pend[0].commit) {
        int st = run_commit_status(c->pend[0].commit, NULL);
        if (st == 0) return;
        if (st < 0) {
            discard_from(c, 0, "its commit failed");
            return;
        }
        finish_oldest(c);
    }
}

void run_pipe_serve(run_ctx *c) {
    for (size_t i = 0; i < c->n_pend; i++)
        if (c->pend[i].failed) {
            char why[sizeof(c->pend[i].why)];
            memcpy(why, c->pend[i].why, sizeof(why));
            discard_from(c, i, why);
            return;
        }
    /* Hand every acknowledged batch over, in order; none after one that is
     * not. */
    for (size_t i = 0; i < c->n_pend && c->pend[i].sealed && !c->pend[i].outstanding; i++)
        if (!c->pend[i].commit) {
            c->pend[i].commit = run_writer_submit(c->writer, c->pend[i].wb);
            c->pend[i].wb = NULL;
        }
    finish_written(c);
}

/* How long to wait for deliveries: briefly while a commit is in flight,
 * whose end no delivery report announces. */
static int wait_ms(const run_ctx *c) {
    return c->n_pend && c->pend[0].commit ? 1 : 100;
}

/* ==== Waiting ==== */

void run_pipe_wait_room(run_ctx *c) {
    int64_t t0 = util_mono_ns();
    size_t max = (size_t)c->cfg->max_inflight_batches;
    while (c->n_pend >= max && !*c->stop && !c->fatal && !c->need_seek) {
        producer_out_poll(c->out, wait_ms(c));
        run_pipe_serve(c);
    }
    c->stats.ns_wait += (uint64_t)(util_mono_ns() - t0);
}

void run_pipe_drain(run_ctx *c, int64_t grace_ms) {
    int64_t t0 = util_mono_ns(), give_up = util_now_ms() + grace_ms;
    run_pipe_serve(c);
    while (c->n_pend && util_now_ms() < give_up) {
        producer_out_poll(c->out, wait_ms(c));
        run_pipe_serve(c);
    }
    c->stats.ns_wait += (uint64_t)(util_mono_ns() - t0);
    if (!c->n_pend) return;
    log_warn("run: %d records unacknowledged after %" PRId64 " ms; their batches will be re-read",
             producer_out_outstanding(c->out), grace_ms);
    run_pipe_discard_all(c, "acknowledgements did not come in time");
}

/* ==== Rolling back ==== */

/* Gathered messages lie beyond the discarded batches: drop them too, and
 * seek their partitions back to the first of them at the latest. */
static void drop_gathered(run_ctx *c) {
    for (size_t i = 0; i < c->n_msgs; i++) {
        seek_note(c, c->msgs[i]->partition, c->msgs[i]->offset);
        rd_kafka_message_destroy(c->msgs[i]);
    }
    c->n_msgs = 0;
}

void run_pipe_rollback(run_ctx *c) {
    drop_gathered(c);
    c->need_seek = 0;
    c->backoff_until_ms = util_now_ms() + c->cfg->retry_backoff_ms;
    int failed = run_seek_back(c);
    c->n_seek = 0;
    if (failed) {
        /* Going on would skip those events; a restart resumes from the store. */
        log_error("run: cannot seek back to the first event not persisted; stopping so that a "
                  "restart resumes from the stored offsets");
        c->fatal = 1;
    }
}

int run_pipe_backoff(run_ctx *c) {
    if (util_now_ms() >= c->backoff_until_ms) return 0;
    producer_out_poll(c->out, 50); /* earlier batches may still complete */
    run_pipe_serve(c);
    if (c->need_seek) run_pipe_rollback(c);
    return 1;
}
