/* One batch of the processor, the unit of exactly-once:
 *
 *   decode every message (bad ones to the dead-letter topic)
 *   -> group the events by (input partition, user), in offset order
 *   -> read those users' records: the newest pending batch's copy when an
 *      earlier batch still awaiting acknowledgements touched the user, else
 *      the store's (one multi-get for the rest)
 *   -> append each user's events, recompute and publish their list
 *      (the store's reads, the lists and the records' encoding run on
 *      two threads, run_par.c)
 *   -> build ONE RocksDB write batch (the users' records + each
 *      partition's next offset) and hand it to the pipeline (run_pipe.c),
 *      which commits it once every record of the batch is acknowledged,
 *      after every earlier batch.
 *
 * A batch that cannot be built (store unreadable, a record refused by the
 * producer) is marked failed; the pipeline then discards it and every
 * later batch and re-reads them. The state store therefore only ever holds
 * offsets whose events are applied and whose outputs are acknowledged;
 * outputs may repeat after a failure or a crash, which a keyed, compacted
 * output topic absorbs (each record is the user's whole current list). */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "run_int.h"

/* A user touched by the batch: ev[0, n), in offset order. */
typedef struct batch_user {
    run_event **ev;
    size_t n;
    uint64_t hash; /* run_user_hash */
} batch_user;

static void fail(run_pend *p, const char *why) {
    if (p->failed) return;
    p->failed = 1;
    snprintf(p->why, sizeof(p->why), "%.255s", why);
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
static void decode_all(run_ctx *c, run_pend *p) {
    run_counts *bc = &p->counts;
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
        p->outstanding++;
        if (dlq_send(c->out, c->cfg->dlq_topic, m, codec_err_reason(ce), detail,
                     run_pipe_opaque(p, 1, 0), err, sizeof(err))) {
            log_error("run: dead-letter topic %s: %s", c->cfg->dlq_topic, err);
            p->outstanding--;
            fail(p, err);
        } else {
            metrics_dlq_produced(c->m);
        }
    }
    for (size_t i = 0; i < c->n_msgs; i++) rd_kafka_message_destroy(c->msgs[i]);
    c->n_msgs = 0;
}

/* A user's key in the grouping: (partition, id). */
static int same_user(const run_event *a, const run_event *b) {
    return a->partition == b->partition && a->ev.user_len == b->ev.user_len &&
           !memcmp(a->ev.user_id, b->ev.user_id, a->ev.user_len);
}

/* Numbers the events' users in order of first appearance (uid[i] for event
 * i) through an open-addressing table; fills first[] with each user's first
 * event and hash[] with its key's hash. Returns the number of users. */
static size_t number_users(const run_ctx *c, uint32_t *uid, const run_event **first,
                           uint64_t *hash) {
    size_t size = 16;
    while (size < 2 * c->n_events) size *= 2;
    uint32_t *slot = util_malloc(size * sizeof(*slot));
    memset(slot, 0xff, size * sizeof(*slot));
    size_t n = 0;
    for (size_t i = 0; i < c->n_events; i++) {
        const run_event *e = &c->events[i];
        uint64_t k = run_user_hash(e->partition, e->ev.user_id, e->ev.user_len);
        size_t h = k & (size - 1);
        while (slot[h] != UINT32_MAX && !same_user(first[slot[h]], e)) h = (h + 1) & (size - 1);
        if (slot[h] == UINT32_MAX) {
            slot[h] = (uint32_t)n;
            first[n] = e;
            hash[n++] = k;
        }
        uid[i] = slot[h];
    }
    free(slot);
    return n;
}

static void sort_by_offset(run_event **ev, size_t n) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ev[j - 1]->offset > ev[j]->offset; j--) {
            run_event *t = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = t;
        }
}

/* A user in the order of the store's keys: (partition, id bytewise, a
 * prefix first). The id's first 8 bytes, big-endian and zero-padded, order
 * as the bytes do, so nearly every comparison is of two integers. */
typedef struct user_order {
    int32_t partition;
    uint64_t head;
    const run_event *first;
    uint32_t uid;
} user_order;

static uint64_t id_head(const char *id, size_t len) {
    uint64_t h = 0;
    for (size_t i = 0; i < 8; i++) h = h << 8 | (i < len ? (uint8_t)id[i] : 0);
    return h;
}

static int cmp_order(const void *a, const void *b) {
    const user_order *x = a, *y = b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    if (x->head != y->head) return x->head < y->head ? -1 : 1;
    size_t lx = x->first->ev.user_len, ly = y->first->ev.user_len;
    int c = memcmp(x->first->ev.user_id, y->first->ev.user_id, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* Cuts the events into users, each user's events in offset order, the
 * users in the order of their keys in the store: the write batch's records
 * then go into the memtable in order, where each insert starts from the
 * previous one's place (unsorted, the skip-list inserts took 3.5-4.2%
 * of the processor's samples against 2.7%). Returns the number of users. */
static size_t group_users(run_ctx *c, run_event **sorted, batch_user *users) {
    size_t ne = c->n_events;
    uint32_t *uid = util_malloc((ne + 1) * sizeof(*uid));
    const run_event **first = util_malloc((ne + 1) * sizeof(*first));
    uint64_t *hash = util_malloc((ne + 1) * sizeof(*hash));
    size_t n = number_users(c, uid, first, hash);
    user_order *ord = util_malloc((n + 1) * sizeof(*ord));
    for (size_t u = 0; u < n; u++)
        ord[u] =
            (user_order){first[u]->partition, id_head(first[u]->ev.user_id, first[u]->ev.user_len),
                         first[u], (uint32_t)u};
    qsort(ord, n, sizeof(*ord), cmp_order);
    /* at[u]: the user's event count, then where its next event goes */
    size_t *at = util_calloc(n + 1, sizeof(*at));
    for (size_t i = 0; i < ne; i++) at[uid[i]]++;
    for (size_t r = 0, sum = 0; r < n; r++) {
        uint32_t u = ord[r].uid;
        users[r] = (batch_user){&sorted[sum], at[u], hash[u]};
        at[u] = sum;
        sum += users[r].n;
    }
    for (size_t i = 0; i < ne; i++) sorted[at[uid[i]]++] = &c->events[i];
    /* A partition's messages arrive in offset order: this pass normally moves nothing. */
    for (size_t r = 0; r < n; r++) sort_by_offset(users[r].ev, users[r].n);
    free(uid);
    free(first);
    free(hash);
    free(ord);
    free(at);
    return n;
}

static void observe_latency(run_ctx *c, const batch_user *bu) {
    double now = (double)util_now_ms();
    for (size_t j = 0; j < bu->n; j++)
        if (bu->ev[j]->msg_ts_ms > 0)
            metrics_observe_latency(c->m, (now - (double)bu->ev[j]->msg_ts_ms) / 1000.0);
}

/* Appends one user's events to their record, each first counted as an A/B
 * exposure (and hit) of the list the user saw: the one last published,
 * which stays the same for all of the batch's events of the user (the new
 * list is published after them). Returns the user's A/B variant. */
static size_t apply_events(run_ctx *c, const batch_user *bu, state_user *u, run_pend *p) {
    size_t variant = ab_assign(c->ab, bu->ev[0]->ev.user_id, bu->ev[0]->ev.user_len);
    const codec_rec_item *seen;
    size_t n_seen = run_recs_published(&c->recs[0], u, &seen);
    for (size_t j = 0; j < bu->n; j++) {
        const codec_event *e = &bu->ev[j]->ev;
        ab_record_event(c->m, variant, e->user_id, e->user_len, seen, n_seen, e->item_id,
                        e->item_len);
        state_user_push_event(u, e->item_id, e->item_len, (uint8_t)e->type, e->ts_ms,
                              e->has_weight ? e->weight : -1.0f, c->cfg->history, NULL);
        metrics_event_consumed(c->m, e->type);
        p->counts.applied++;
        p->counts.by_type[e->type]++;
    }
    return variant;
}

/* A user's new list and record: made on either worker, produced and put
 * into the write batch by the loop. Both buffers stay with the slot for
 * later batches: growing them afresh for every touched user was half a
 * million allocations per million events. */
typedef struct batch_out {
    size_t variant;
    int encoded; /* list holds the encoded list; 0 when encoding failed */
    codec_buf list;
    char *rec; /* the user's record as the write batch takes it */
    size_t rec_len, rec_cap;
} batch_out;

/* n slots, their buffers kept from earlier batches. */
static batch_out *outs_for(run_ctx *c, size_t n) {
    if (n > c->n_outs) {
        c->outs = util_realloc(c->outs, n * sizeof(*c->outs));
        memset(c->outs + c->n_outs, 0, (n - c->n_outs) * sizeof(*c->outs));
        c->n_outs = n;
    }
    for (size_t i = 0; i < n; i++) c->outs[i].encoded = 0;
    return c->outs;
}

void run_batch_free(run_ctx *c) {
    for (size_t i = 0; i < c->n_outs; i++) {
        codec_buf_free(&c->outs[i].list);
        free(c->outs[i].rec);
    }
    free(c->outs);
    c->outs = NULL;
    c->n_outs = 0;
}

typedef struct score_job {
    run_ctx *c;
    run_pend *p;
    const reload_view *v;
    const batch_user *users;
    state_user **recs;
    batch_out *out;
} score_job;

/* run_par_fn: touches only user i's record and output, worker's scratch. */
static void score_user(void *ctx, size_t i, int worker) {
    const score_job *j = ctx;
    run_ctx *c = j->c;
    run_recs *r = &c->recs[worker];
    const codec_event *last = &j->users[i].ev[j->users[i].n - 1]->ev;
    batch_out *o = &j->out[i];
    const ab_variant *av = &c->ab->variants[o->variant];
    char err[256];
    if (run_recs_compute(r, c->cfg, &av->blend, av->name, j->v, last->user_id, j->recs[i],
                         last->ts_ms, err, sizeof(err))) {
        log_error("run: user %s: encoding the recommendations: %s", last->user_id, err);
    } else { /* the list changes hands: the slot's old buffer is the worker's next */
        codec_buf t = o->list;
        o->list = r->buf;
        r->buf = t;
        o->encoded = 1;
    }
    state_batch_encode_user(j->p->wb, j->recs[i], &o->rec, &o->rec_len, &o->rec_cap);
}

static void send_user(run_ctx *c, const batch_user *bu, const batch_out *o, run_pend *p) {
    if (!o->encoded) return;
    const codec_event *last = &bu->ev[bu->n - 1]->ev;
    char err[256];
    p->outstanding++;
    if (producer_out_send(c->out, c->cfg->output_topic, last->user_id, last->user_len, o->list.data,
                          o->list.len, NULL, 0, run_pipe_opaque(p, 0, o->variant), err,
                          sizeof(err))) {
        log_error("run: output topic %s: %s", c->cfg->output_topic, err);
        p->outstanding--;
        fail(p, err);
        return;
    }
    c->stats.published_bytes += o->list.len;
    observe_latency(c, bu);
}

/* Applies the users' events, scores their lists and encodes their records
 * (in parallel), publishes the lists in the batch's order. */
static void apply_and_publish(run_ctx *c, run_pend *p, const reload_view *v,
                              const batch_user *users, size_t n, state_user **recs,
                              batch_out *out) {
    int64_t t0 = util_mono_ns();
    for (size_t i = 0; i < n; i++) out[i].variant = apply_events(c, &users[i], recs[i], p);
    int64_t t1 = util_mono_ns();
    score_job job = {c, p, v, users, recs, out};
    run_par_for(c->par, n, RUN_PAR_MIN_USERS, score_user, &job);
    int64_t t2 = util_mono_ns();
    for (size_t i = 0; i < n; i++) send_user(c, &users[i], &out[i], p);
    c->stats.ns_state += (uint64_t)(t1 - t0);
    c->stats.ns_scoring += (uint64_t)(t2 - t1);
    c->stats.ns_produce += (uint64_t)(util_mono_ns() - t2);
}

/* A copy of a pending batch's record, as the store will return it once
 * that batch is written (the published list capped alike). */
static state_user *copy_user(run_ctx *c, const state_user *u) {
    state_user *r = state_user_new();
    state_user_copy(r, u);
    uint32_t max = state_get_options(c->store)->published_max;
    if (max && r->n_published > max) r->n_published = max;
    return r;
}

/* The users missing from the pending batches, read in slices of
 * READ_SLICE by one multi-get each, the slices on both workers. */
#define READ_SLICE 16

typedef struct read_job {
    state_store *store;
    size_t n;
    const int32_t *parts;
    const char **ids;
    const size_t *lens;
    state_user **got;
    int *rc;
    char (*err)[256];
} read_job;

/* run_par_fn: slice i of the misses. */
static void read_slice(void *ctx, size_t i, int worker) {
    (void)worker;
    const read_job *j = ctx;
    size_t from = i * READ_SLICE, n = j->n - from < READ_SLICE ? j->n - from : READ_SLICE;
    j->rc[i] = state_multi_get(j->store, j->parts + from, j->ids + from, j->lens + from, n,
                               j->got + from, j->err[i], sizeof(j->err[i]));
}

/* Reads m users from the store into got[0, m). Returns 0, or -1 (errstr). */
static int read_store(run_ctx *c, const int32_t *parts, const char **ids, const size_t *lens,
                      size_t m, state_user **got, char *errstr, size_t errsz) {
    size_t slices = (m + READ_SLICE - 1) / READ_SLICE;
    int *rc = util_calloc(slices + 1, sizeof(*rc));
    char(*err)[256] = util_malloc((slices + 1) * sizeof(*err));
    read_job job = {c->store, m, parts, ids, lens, got, rc, err};
    run_par_for(c->par, slices, 2, read_slice, &job); /* from two slices: one each */
    int failed = 0;
    for (size_t i = 0; i < slices && !failed; i++)
        if (rc[i]) {
            snprintf(errstr, errsz, "%s", err[i]);
            failed = 1;
        }
    free(rc);
    free(err);
    return failed ? -1 : 0;
}

/* Fills recs[i] with each user's record: through the pending batches, then
 * the store for the others. Returns 0, or -1 (errstr). */
static int read_users(run_ctx *c, const batch_user *users, size_t n, state_user **recs,
                      char *errstr, size_t errsz) {
    size_t *miss = util_malloc((n ? n : 1) * sizeof(*miss)), m = 0;
    int32_t *parts = util_malloc((n ? n : 1) * sizeof(*parts));
    const char **ids = util_malloc((n ? n : 1) * sizeof(*ids));
    size_t *lens = util_malloc((n ? n : 1) * sizeof(*lens));
    state_user **got = util_calloc(n + 1, sizeof(*got));
    for (size_t i = 0; i < n; i++) {
        const run_event *e = users[i].ev[0];
        const state_user *o =
            run_pipe_lookup(c, e->partition, e->ev.user_id, e->ev.user_len, users[i].hash);
        if (o) {
            recs[i] = copy_user(c, o);
            continue;
        }
        miss[m] = i;
        parts[m] = e->partition;
        ids[m] = e->ev.user_id;
        lens[m++] = e->ev.user_len;
    }
    int rc = read_store(c, parts, ids, lens, m, got, errstr, errsz);
    for (size_t j = 0; j < m; j++) recs[miss[j]] = got[j];
    free(got);
    free(miss);
    free(parts);
    free(ids);
    free(lens);
    return rc;
}

/* Reads the users' records, applies and publishes. recs[i] must be freed
 * by the caller unless handed to the batch. Returns 0, or -1 (errstr). */
static int apply_all(run_ctx *c, run_pend *p, const reload_view *v, batch_user *users, size_t n,
                     state_user **recs, batch_out *out, char *errstr, size_t errsz) {
    int64_t t0 = util_mono_ns();
    int rc = read_users(c, users, n, recs, errstr, errsz);
    c->stats.ns_state += (uint64_t)(util_mono_ns() - t0);
    if (rc == 0) apply_and_publish(c, p, v, users, n, recs, out);
    return rc;
}

/* Builds the batch's write batch (every touched user, every partition's
 * next offset) and hands the records to it: they are the overlay that
 * later batches read through until it is written. */
static void seal(run_ctx *c, run_pend *p, batch_user *users, state_user **recs,
                 const batch_out *out, size_t n) {
    int64_t t0 = util_mono_ns();
    p->users = util_calloc(n + 1, sizeof(*p->users));
    for (size_t i = 0; i < n; i++) {
        const run_event *e = users[i].ev[0];
        state_batch_put_encoded(p->wb, e->partition, e->ev.user_id, e->ev.user_len, out[i].rec,
                                out[i].rec_len);
        p->users[i] = (run_pend_user){e->partition, util_strndup(e->ev.user_id, e->ev.user_len),
                                      e->ev.user_len, users[i].hash, recs[i]};
        recs[i] = NULL; /* now owned by the pending batch */
    }
    p->n_users = n;
    run_pipe_index(p);
    p->parts = util_malloc((c->n_parts + 1) * sizeof(*p->parts));
    memcpy(p->parts, c->parts, c->n_parts * sizeof(*p->parts));
    p->n_parts = c->n_parts;
    for (size_t i = 0; i < c->n_parts; i++)
        state_batch_set_offset(p->wb, c->cfg->events_topic, c->parts[i].partition,
                               c->parts[i].next);
    c->stats.ns_state += (uint64_t)(util_mono_ns() - t0);
}

void run_batch_process(run_ctx *c) {
    int64_t t0 = util_mono_ns();
    char err[512];
    reload_view v;
    reload_acquire(c->rl, &v);
    run_pend *p = run_pipe_push(c);
    decode_all(c, p);
    p->n_events = c->n_events;
    int64_t t_dec = util_mono_ns();
    c->stats.ns_decode += (uint64_t)(t_dec - t0);
    run_event **sorted = util_malloc((c->n_events + 1) * sizeof(*sorted));
    batch_user *users = util_malloc((c->n_events + 1) * sizeof(*users));
    size_t n = group_users(c, sorted, users);
    state_user **recs = util_calloc(n + 1, sizeof(*recs));
    batch_out *out = outs_for(c, n);
    p->wb = state_batch_new(c->store); /* its clock stamps the records */
    if (apply_all(c, p, &v, users, n, recs, out, err, sizeof(err))) fail(p, err);
    seal(c, p, users, recs, out, p->failed ? 0 : n);
    snprintf(p->model_version, sizeof(p->model_version), "%s", v.model_version);
    snprintf(p->offline_version, sizeof(p->offline_version), "%s", v.offline_version);
    p->sealed = 1;
    for (size_t i = 0; i < n; i++) state_user_free(recs[i]);
    free(recs);
    free(users);
    free(sorted);
    reload_release(c->rl, &v);
    metrics_observe_batch(c->m, (double)(util_mono_ns() - t0) / 1e9, c->n_events);
}
