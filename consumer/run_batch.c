/* One batch of the processor, the unit of exactly-once:
 *
 *   decode every message (bad ones to the dead-letter topic)
 *   -> group the events by (input partition, user), in offset order
 *   -> read those users' records (one multi-get)
 *   -> append each user's events, recompute and publish their list
 *   -> wait until every record of the batch is acknowledged
 *   -> ONE RocksDB write batch: the users' records + each partition's next
 *      offset.
 *
 * If any record of the batch finally fails, nothing is written: the batch's
 * partitions are sought back to where the batch started and re-read after a
 * backoff. The state store therefore only ever holds offsets whose events
 * are applied and whose outputs are acknowledged; outputs may repeat after
 * a failure or a crash, which a keyed, compacted output topic absorbs
 * (each record is the user's whole current list). */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "run_int.h"

/* Delivery-report opaques: the dead-letter marker, or DR_RECS + variant. */
#define DR_DLQ  ((void *)1)
#define DR_RECS 16u

/* How long a stopping processor keeps waiting for acknowledgements before
 * it gives the batch up (it is then re-read at the next start). */
#define STOP_GRACE_MS 10000

/* Counters of the batch, added to the run's only when it is persisted. */
typedef struct batch_counts {
    uint64_t applied, by_type[CODEC_EVENT_TYPES], invalid, invalid_by_reason[CODEC_ERR__COUNT];
} batch_counts;

/* A user touched by the batch: events[first, first + n) of the sorted run. */
typedef struct batch_user {
    run_event **ev;
    size_t n;
} batch_user;

void run_batch_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *opaque) {
    run_ctx *c = opaque;
    if (err) {
        c->batch_failed++;
        c->batch_last_err = err;
        c->stats.delivery_failures++;
        log_error("run: %s record not delivered: %s",
                  msg_opaque == DR_DLQ ? "dead-letter" : "output", rd_kafka_err2str(err));
        metrics_publish_failed(c->m);
    } else if (msg_opaque != DR_DLQ) {
        c->stats.published++;
        metrics_published(c->m, (uintptr_t)msg_opaque - DR_RECS);
    }
}

static void note_part(run_ctx *c, int32_t partition, int64_t offset) {
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i].partition == partition) {
            if (offset < c->parts[i].first) c->parts[i].first = offset;
            if (offset + 1 > c->parts[i].next) c->parts[i].next = offset + 1;
            return;
        }
    c->parts[c->n_parts++] = (run_part){partition, offset, offset + 1};
}

/* Decodes c->msgs into c->events, sending bad ones to the dead-letter topic,
 * and frees the messages. */
static void decode_all(run_ctx *c, batch_counts *bc) {
    c->n_events = c->n_parts = 0;
    for (size_t i = 0; i < c->n_msgs; i++) {
        rd_kafka_message_t *m = c->msgs[i];
        note_part(c, m->partition, m->offset);
        run_event *re = &c->events[c->n_events];
        char detail[256] = "", err[256];
        codec_err ce =
            codec_decode_event(c->dec, m->payload, m->len, &re->ev, detail, sizeof(detail));
        if (ce == CODEC_OK) {
            re->partition = m->partition;
            re->offset = m->offset;
            re->msg_ts_ms = rd_kafka_message_timestamp(m, NULL);
            c->n_events++;
            continue;
        }
        bc->invalid++;
        bc->invalid_by_reason[ce]++;
        metrics_event_invalid(c->m, ce);
        log_warn("run: %s [%" PRId32 "] offset %" PRId64 " to the dead-letter topic: %s (%s)",
                 rd_kafka_topic_name(m->rkt), m->partition, m->offset, codec_err_reason(ce),
                 detail);
        if (dlq_send(c->out, c->cfg->dlq_topic, m, codec_err_reason(ce), detail, DR_DLQ, err,
                     sizeof(err))) {
            log_error("run: dead-letter topic %s: %s", c->cfg->dlq_topic, err);
            c->batch_failed++;
        } else {
            metrics_dlq_produced(c->m);
        }
    }
    for (size_t i = 0; i < c->n_msgs; i++) rd_kafka_message_destroy(c->msgs[i]);
    c->n_msgs = 0;
}

static int cmp_event(const void *a, const void *b) {
    const run_event *x = *(run_event *const *)a, *y = *(run_event *const *)b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    int d = strcmp(x->ev.user_id, y->ev.user_id);
    if (d) return d;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sorts pointers to the events by (partition, user, offset) and cuts them
 * into users. Returns the number of users. */
static size_t group_users(run_ctx *c, run_event **sorted, batch_user *users) {
    for (size_t i = 0; i < c->n_events; i++) sorted[i] = &c->events[i];
    qsort(sorted, c->n_events, sizeof(*sorted), cmp_event);
    size_t n = 0;
    for (size_t i = 0; i < c->n_events; i++) {
        if (n && users[n - 1].ev[0]->partition == sorted[i]->partition &&
            !strcmp(users[n - 1].ev[0]->ev.user_id, sorted[i]->ev.user_id)) {
            users[n - 1].n++;
            continue;
        }
        users[n++] = (batch_user){&sorted[i], 1};
    }
    return n;
}

/* Counts the A/B exposure and hit of an event against the list the user
 * saw (the one last published), before the event changes the state. */
static void evaluate(run_ctx *c, size_t variant, const state_user *u, const codec_event *e) {
    const codec_rec_item *prev;
    size_t n = run_recs_published(&c->recs, u, &prev);
    ab_record_event(c->m, variant, e->user_id, e->user_len, prev, n, e->item_id);
}

static void observe_latency(run_ctx *c, const batch_user *bu) {
    double now = (double)util_now_ms();
    for (size_t j = 0; j < bu->n; j++)
        if (bu->ev[j]->msg_ts_ms > 0)
            metrics_observe_latency(c->m, (now - (double)bu->ev[j]->msg_ts_ms) / 1000.0);
}

/* Applies one user's events to their record and publishes their new list. */
static void apply_user(run_ctx *c, const reload_view *v, const batch_user *bu, state_user *u,
                       batch_counts *bc) {
    const codec_event *last = NULL;
    int64_t t_state = util_mono_ns();
    size_t variant = ab_assign(c->ab, bu->ev[0]->ev.user_id, bu->ev[0]->ev.user_len);
    const ab_variant *av = &c->ab->variants[variant];
    for (size_t j = 0; j < bu->n; j++) {
        const codec_event *e = &bu->ev[j]->ev;
        evaluate(c, variant, u, e);
        state_user_push_event(u, e->item_id, e->item_len, (uint8_t)e->type, e->ts_ms,
                              e->has_weight ? e->weight : -1.0f, c->cfg->history, NULL);
        metrics_event_consumed(c->m, e->type);
        bc->applied++;
        bc->by_type[e->type]++;
        last = e;
    }
    char err[256];
    int64_t t_score = util_mono_ns();
    c->stats.ns_state += (uint64_t)(t_score - t_state);
    if (run_recs_compute(&c->recs, c->cfg, &av->blend, av->name, v, last->user_id, u, last->ts_ms,
                         err, sizeof(err))) {
        log_error("run: user %s: encoding the recommendations: %s", last->user_id, err);
        return;
    }
    int64_t t_send = util_mono_ns();
    c->stats.ns_scoring += (uint64_t)(t_send - t_score);
    int sent = producer_out_send(c->out, c->cfg->output_topic, last->user_id, last->user_len,
                                 c->recs.buf.data, c->recs.buf.len, NULL, 0,
                                 (void *)(uintptr_t)(DR_RECS + variant), err, sizeof(err));
    c->stats.ns_produce += (uint64_t)(util_mono_ns() - t_send);
    if (sent) {
        log_error("run: output topic %s: %s", c->cfg->output_topic, err);
        c->batch_failed++;
        return;
    }
    observe_latency(c, bu);
}

/* Reads the users' records, applies and publishes. recs[i] must be freed
 * by the caller. Returns 0, or -1 when the store cannot be read. */
static int apply_all(run_ctx *c, const reload_view *v, batch_user *users, size_t n,
                     state_user **recs, batch_counts *bc, char *errstr, size_t errsz) {
    int32_t *parts = util_malloc((n ? n : 1) * sizeof(*parts));
    const char **ids = util_malloc((n ? n : 1) * sizeof(*ids));
    size_t *lens = util_malloc((n ? n : 1) * sizeof(*lens));
    for (size_t i = 0; i < n; i++) {
        parts[i] = users[i].ev[0]->partition;
        ids[i] = users[i].ev[0]->ev.user_id;
        lens[i] = users[i].ev[0]->ev.user_len;
    }
    int64_t t0 = util_mono_ns();
    int rc = n ? state_multi_get(c->store, parts, ids, lens, n, recs, errstr, errsz) : 0;
    c->stats.ns_state += (uint64_t)(util_mono_ns() - t0);
    for (size_t i = 0; rc == 0 && i < n; i++) apply_user(c, v, &users[i], recs[i], bc);
    free(parts);
    free(ids);
    free(lens);
    return rc;
}

/* Serves delivery reports until the batch's records are all acknowledged
 * or failed. Returns 0, or -1 when a stop request ran out of patience. */
static int wait_deliveries(run_ctx *c) {
    int64_t give_up = 0, t0 = util_mono_ns();
    int rc = 0;
    while (producer_out_flush(c->out, 100) > 0) {
        if (!*c->stop) continue;
        int64_t now = util_now_ms();
        if (!give_up) give_up = now + STOP_GRACE_MS;
        if (now > give_up) {
            rc = -1;
            break;
        }
    }
    c->stats.ns_wait += (uint64_t)(util_mono_ns() - t0);
    return rc;
}

/* One write batch: every touched user and every partition's next offset. */
static int persist(run_ctx *c, batch_user *users, state_user **recs, size_t n, char *errstr,
                   size_t errsz) {
    int64_t t0 = util_mono_ns();
    state_batch *b = state_batch_new(c->store);
    for (size_t i = 0; i < n; i++) {
        const codec_event *e = &users[i].ev[0]->ev;
        state_batch_put_user(b, users[i].ev[0]->partition, e->user_id, e->user_len, recs[i]);
    }
    for (size_t i = 0; i < c->n_parts; i++)
        state_batch_set_offset(b, c->cfg->events_topic, c->parts[i].partition, c->parts[i].next);
    int rc = state_batch_commit(b, errstr, errsz);
    state_batch_free(b);
    c->stats.ns_state += (uint64_t)(util_mono_ns() - t0);
    return rc;
}

/* Stores the persisted offsets for the group's advisory commit (lag tools,
 * kafka-consumer-groups); the store, not these, decides where to resume. */
static void store_group_offsets(run_ctx *c) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->n_parts);
    for (size_t i = 0; i < c->n_parts; i++)
        if (run_is_assigned(c, c->parts[i].partition))
            rd_kafka_topic_partition_list_add(l, c->cfg->events_topic, c->parts[i].partition)
                ->offset = c->parts[i].next;
    if (l->cnt) rd_kafka_offsets_store(c->rk, l); /* best effort: a revoked one fails */
    rd_kafka_topic_partition_list_destroy(l);
}

static void add_counts(run_stats *s, const batch_counts *bc) {
    s->applied += bc->applied;
    s->invalid += bc->invalid;
    for (int t = 0; t < CODEC_EVENT_TYPES; t++) s->by_type[t] += bc->by_type[t];
    for (int r = 0; r < CODEC_ERR__COUNT; r++) s->invalid_by_reason[r] += bc->invalid_by_reason[r];
    s->batches++;
}

/* Rolls a failed batch back: nothing was written, so re-reading from where
 * it started re-applies exactly these events. */
static void roll_back(run_ctx *c, const char *why) {
    log_error("run: batch of %zu events not persisted (%s); re-reading it in %" PRId64 " ms",
              c->n_events, why, c->cfg->retry_backoff_ms);
    c->stats.batch_retries++;
    if (run_seek_back(c)) {
        /* Going on would skip the batch; a restart resumes from the store. */
        log_error("run: cannot seek back to the batch's start; stopping so that a restart "
                  "resumes from the stored offsets");
        c->fatal = 1;
        return;
    }
    for (int64_t t = 0; t < c->cfg->retry_backoff_ms && !*c->stop; t += 50) {
        producer_out_poll(c->out, 0);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int run_batch_process(run_ctx *c, char *errstr, size_t errsz) {
    int64_t t0 = util_mono_ns();
    batch_counts bc = {0};
    reload_view v;
    reload_acquire(c->rl, &v);
    c->batch_failed = 0;
    decode_all(c, &bc);
    int64_t t_dec = util_mono_ns();
    c->stats.ns_decode += (uint64_t)(t_dec - t0);
    run_event **sorted = util_malloc((c->n_events + 1) * sizeof(*sorted));
    batch_user *users = util_malloc((c->n_events + 1) * sizeof(*users));
    size_t n = group_users(c, sorted, users);
    state_user **recs = util_calloc(n + 1, sizeof(*recs));
    int rc = apply_all(c, &v, users, n, recs, &bc, errstr, errsz);
    if (wait_deliveries(c)) {
        log_warn("run: stopping with %d records unacknowledged; the batch will be re-read",
                 producer_out_outstanding(c->out));
        rc = 1;
    } else if (rc < 0) {
        roll_back(c, errstr);
        rc = 1;
    } else if (c->batch_failed) {
        roll_back(c, rd_kafka_err2str(c->batch_last_err));
        rc = 1;
    } else if (persist(c, users, recs, n, errstr, errsz)) {
        roll_back(c, errstr);
        rc = 1;
    } else {
        store_group_offsets(c);
        add_counts(&c->stats, &bc);
        snprintf(c->stats.model_version, sizeof(c->stats.model_version), "%s", v.model_version);
        snprintf(c->stats.offline_version, sizeof(c->stats.offline_version), "%s",
                 v.offline_version);
    }
    for (size_t i = 0; i < n; i++) state_user_free(recs[i]);
    free(recs);
    free(users);
    free(sorted);
    reload_release(c->rl, &v);
    metrics_observe_batch(c->m, (double)(util_mono_ns() - t0) / 1e9, c->n_events);
    return rc;
}
