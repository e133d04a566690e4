/* Group membership of the processor: the rebalance callback and the
 * seek-back after discarded batches.
 *
 * The state store, not the group's committed offsets, decides where a
 * partition resumes: on assignment each partition's start offset is read
 * from RocksDB and written into the partition list before it is assigned
 * (librdkafka 2.0.2 cannot seek a partition that is not assigned yet).
 * Partitions the store never saw start at --offset-reset, explicitly, so a
 * fresh state directory never silently inherits a group's committed offsets
 * and misses the events before them. */
#include <inttypes.h>
#include <string.h>

#include "run_int.h"

int run_is_assigned(const run_ctx *c, int32_t partition) {
    for (size_t i = 0; i < c->n_assigned; i++)
        if (c->assigned[i] == partition) return 1;
    return 0;
}

static void assigned_add(run_ctx *c, int32_t partition) {
    if (run_is_assigned(c, partition)) return;
    if (c->n_assigned == c->cap_assigned) {
        c->cap_assigned = c->cap_assigned ? 2 * c->cap_assigned : 16;
        c->assigned = util_realloc(c->assigned, c->cap_assigned * sizeof(int32_t));
    }
    c->assigned[c->n_assigned++] = partition;
}

static void assigned_remove(run_ctx *c, int32_t partition) {
    for (size_t i = 0; i < c->n_assigned; i++)
        if (c->assigned[i] == partition) {
            c->assigned[i] = c->assigned[--c->n_assigned];
            return;
        }
}

/* Messages already gathered for a partition we no longer own must not be
 * applied: a later assignment re-reads them from the stored offset. */
static void drop_held(run_ctx *c) {
    size_t k = 0;
    for (size_t i = 0; i < c->n_msgs; i++) {
        if (run_is_assigned(c, c->msgs[i]->partition))
            c->msgs[k++] = c->msgs[i];
        else
            rd_kafka_message_destroy(c->msgs[i]);
    }
    c->n_msgs = k;
}

/* Sets each partition's start offset from the store. */
static void set_start_offsets(run_ctx *c, rd_kafka_topic_partition_list_t *parts) {
    int64_t reset =
        strcmp(c->cfg->offset_reset, "latest") ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t next = 0;
        char err[256];
        int rc = state_get_offset(c->store, p->topic, p->partition, &next, err, sizeof(err));
        if (rc < 0)
            log_error("run: reading the stored offset of %s [%" PRId32 "]: %s", p->topic,
                      p->partition, err);
        p->offset = rc == 1 ? next : reset;
        run_pipe_forget(c, p->partition); /* the store decides */
        log_info("run: assigned %s [%" PRId32 "] from %s %" PRId64, p->topic, p->partition,
                 rc == 1 ? "stored offset" : "offset-reset", rc == 1 ? next : (int64_t)-1);
        if (!strcmp(p->topic, c->cfg->events_topic)) assigned_add(c, p->partition);
    }
}

/* Pending batches are settled before the assignment changes, so the next
 * owner of a partition reads a store that holds whole batches only: written
 * when acknowledged, discarded otherwise (and when the assignment was lost,
 * another member may already be writing from the stored offsets). */
static void settle_pending(run_ctx *c) {
    if (rd_kafka_assignment_lost(c->rk)) {
        log_warn("run: assignment lost (session timed out); state stays at its stored offsets");
        run_pipe_discard_all(c, "assignment lost");
    } else if (c->n_pend) {
        log_info("run: revoke: writing %zu pending batches first", c->n_pend);
        run_pipe_drain(c, RUN_STOP_GRACE_MS);
    }
}

static void on_revoke(run_ctx *c, rd_kafka_topic_partition_list_t *parts, int cooperative) {
    settle_pending(c);
    if (!cooperative) c->n_assigned = 0;
    for (int i = 0; i < parts->cnt; i++) {
        assigned_remove(c, parts->elems[i].partition);
        run_pipe_forget(c, parts->elems[i].partition);
        log_info("run: revoked %s [%" PRId32 "]", parts->elems[i].topic, parts->elems[i].partition);
    }
    drop_held(c);
    rd_kafka_error_t *e = cooperative ? rd_kafka_incremental_unassign(c->rk, parts) : NULL;
    if (!cooperative) rd_kafka_assign(c->rk, NULL);
    if (e) {
        log_error("run: incremental unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

void run_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque) {
    run_ctx *c = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    c->stats.rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        set_start_offsets(c, parts);
        rd_kafka_error_t *e = NULL;
        rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            r = rd_kafka_assign(rk, parts);
        if (e || r) {
            log_error("run: assign: %s", e ? rd_kafka_error_string(e) : rd_kafka_err2str(r));
            if (e) rd_kafka_error_destroy(e);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(c, parts, cooperative);
    } else {
        log_error("run: rebalance error: %s", rd_kafka_err2str(err));
        run_pipe_discard_all(c, "rebalance error");
        c->n_assigned = 0;
        c->n_seek = 0;
        drop_held(c);
        rd_kafka_assign(rk, NULL);
    }
}

int run_seek_back(run_ctx *c) {
    int failed = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->n_seek);
    for (size_t i = 0; i < c->n_seek; i++) {
        if (!run_is_assigned(c, c->seek[i].partition)) continue;
        rd_kafka_topic_partition_list_add(l, c->cfg->events_topic, c->seek[i].partition)->offset =
            c->seek[i].first;
    }
    /* Timeout -1: the seek is local and quick, and 2.0.2 mis-scales finite
     * timeouts (fixed in 2.1.0). */
    rd_kafka_error_t *e = l->cnt ? rd_kafka_seek_partitions(c->rk, l, -1) : NULL;
    if (e) {
        log_error("run: seeking back: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        failed = 1;
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err) {
            log_error("run: seeking back [%" PRId32 "]: %s", l->elems[i].partition,
                      rd_kafka_err2str(l->elems[i].err));
            failed = 1;
        }
    rd_kafka_topic_partition_list_destroy(l);
    return failed ? -1 : 0;
}
