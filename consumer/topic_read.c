/* topic_read: one pass over a topic, beginning to the high watermarks taken at
 * the start. Partitions are assigned by hand (no group membership, no
 * commits); a partition is done when a message at or past its end mark
 * arrives or librdkafka reports its end (which also covers a last offset
 * taken by a transaction marker or removed by compaction). */
#include <stdlib.h>
#include <string.h>

#include "topic_read.h"
#include "util.h"

typedef struct reader {
    rd_kafka_t *rk;
    int n_parts;
    int64_t *end; /* per partition: high watermark at start; -1 when done */
    int remaining;
} reader;

static rd_kafka_t *consumer_new(const producer_kconf *kc, const char *brokers, char *errstr,
                                size_t errstr_size) {
    rd_kafka_conf_t *conf = producer_kconf_build(kc, brokers, errstr, errstr_size);
    if (!conf) return NULL;
    char why[512];
    if (!producer_kconf_get(kc, "group.id"))
        rd_kafka_conf_set(conf, "group.id", "recstream-topic-read", why, sizeof(why));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof(why));
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, sizeof(why));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof(why));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, errstr_size, "kafka consumer: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk; /* conf now owned by rk */
}

static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                           size_t errstr_size) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    int n = -1;
    if (!err && md->topic_cnt == 1) err = md->topics[0].err;
    if (err)
        snprintf(errstr, errstr_size, "topic %s: metadata: %s", topic, rd_kafka_err2str(err));
    else
        n = md->topics[0].partition_cnt;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* Takes the end marks and assigns every non-empty partition from its start. */
static int assign_all(reader *r, const char *topic, int timeout_ms, char *errstr,
                      size_t errstr_size) {
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(r->n_parts);
    for (int p = 0; p < r->n_parts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(r->rk, topic, p, &lo, &hi, timeout_ms);
        if (err) {
            snprintf(errstr, errstr_size, "topic %s [%d]: watermarks: %s", topic, p,
                     rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(parts);
            return -1;
        }
        r->end[p] = hi > lo ? hi : -1;
        if (hi <= lo) continue;
        r->remaining++;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(r->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) snprintf(errstr, errstr_size, "topic %s: assign: %s", topic, rd_kafka_err2str(err));
    return err ? -1 : 0;
}

static void partition_done(reader *r, int32_t p) {
    if (p < 0 || p >= r->n_parts || r->end[p] < 0) return;
    r->end[p] = -1;
    r->remaining--;
}

/* Errors that mean the read cannot succeed; others are logged and ridden out
 * (librdkafka reconnects) until the idle timeout. */
static int is_fatal(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || err == RD_KAFKA_RESP_ERR__FATAL ||
           err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE;
}

static int64_t consume(reader *r, int idle_timeout_ms, topic_read_fn fn, void *opaque, char *errstr,
                       size_t errstr_size) {
    int64_t n = 0;
    int idle = 0, stop = 0;
    while (r->remaining > 0 && !stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 100);
        if (!m) {
            if ((idle += 100) < idle_timeout_ms) continue;
            snprintf(errstr, errstr_size, "no message for %d ms with %d partition(s) unfinished",
                     idle_timeout_ms, r->remaining);
            return -1;
        }
        idle = 0;
        int32_t p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            partition_done(r, p);
        } else if (m->err) {
            if (is_fatal(m->err)) {
                snprintf(errstr, errstr_size, "%s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                return -1;
            }
            log_warn("reading topic: %s", rd_kafka_message_errstr(m));
        } else if (p >= 0 && p < r->n_parts && r->end[p] >= 0 && m->offset < r->end[p]) {
            n++;
            stop = fn(m, opaque);
            if (m->offset + 1 >= r->end[p]) partition_done(r, p);
        }
        rd_kafka_message_destroy(m);
    }
    return n;
}

int64_t topic_read_all(const producer_kconf *kc, const char *brokers, const char *topic,
                       int idle_timeout_ms, topic_read_fn fn, void *opaque, char *errstr,
                       size_t errstr_size) {
    reader r = {0};
    if (!(r.rk = consumer_new(kc, brokers, errstr, errstr_size))) return -1;
    int64_t n = -1;
    r.n_parts = partition_count(r.rk, topic, idle_timeout_ms, errstr, errstr_size);
    if (r.n_parts >= 0) {
        r.end = util_calloc((size_t)r.n_parts + 1, sizeof(int64_t));
        if (!assign_all(&r, topic, idle_timeout_ms, errstr, errstr_size))
            n = consume(&r, idle_timeout_ms, fn, opaque, errstr, errstr_size);
    }
    rd_kafka_consumer_close(r.rk);
    rd_kafka_destroy(r.rk);
    free(r.end);
    return n;
}
