/* producer_out: the output publisher. One librdkafka producer with the
 * murmur2 partitioner (a user's records land where Java producers put them),
 * delivery reports counted and handed back per message so the caller can tell
 * which batch a record belonged to, and backpressure instead of failure when
 * the local queue is full. */
#include <stdlib.h>
#include <string.h>

#include "producer.h"
#include "util.h"

struct producer_out {
    rd_kafka_t *rk;
    producer_out_dr_fn dr;
    void *dr_opaque;
    producer_out_stats st;
    rd_kafka_resp_err_t logged_err; /* last error logged, to log each kind once */
};

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    producer_out *o = opaque;
    if (m->err) {
        o->st.failed++;
        o->st.last_err = m->err;
        if (m->err != o->logged_err) {
            log_warn("delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                     rd_kafka_err2str(m->err));
            o->logged_err = m->err;
        }
    } else {
        o->st.delivered++;
    }
    if (o->dr) o->dr(m->_private, m->err, o->dr_opaque);
}

producer_out *producer_out_new(const producer_kconf *kc, const char *brokers, producer_out_dr_fn dr,
                               void *dr_opaque, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = producer_kconf_build(kc, brokers, errstr, errstr_size);
    if (!conf) return NULL;
    char why[512];
    if (!producer_kconf_get(kc, "partitioner"))
        rd_kafka_conf_set(conf, "partitioner", PRODUCER_PARTITIONER, why, sizeof(why));
    producer_out *o = util_calloc(1, sizeof(*o));
    o->dr = dr;
    o->dr_opaque = dr_opaque;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, o);
    o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!o->rk) {
        snprintf(errstr, errstr_size, "kafka producer: %s", why);
        rd_kafka_conf_destroy(conf);
        free(o);
        return NULL;
    }
    return o; /* conf now owned by o->rk */
}

int producer_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
                              char *errstr, size_t errstr_size) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return snprintf(errstr, errstr_size, "topic %s: %s", topic,
                        rd_kafka_err2str(rd_kafka_last_error())),
               -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (!err && md->topic_cnt == 1 && md->topics[0].err) err = md->topics[0].err;
    if (!err && (md->topic_cnt != 1 || md->topics[0].partition_cnt <= 0))
        err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (!err) *partitions = md->topics[0].partition_cnt;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (err) snprintf(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(err));
    return err ? -1 : 0;
}

int producer_out_prepare(producer_out *o, const char *topic, int timeout_ms, char *errstr,
                         size_t errstr_size) {
    int partitions;
    return producer_topic_partitions(o->rk, topic, timeout_ms, &partitions, errstr, errstr_size);
}

static rd_kafka_headers_t *headers_new(const producer_header *hdrs, size_t n) {
    if (!n) return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, (ssize_t)hdrs[i].len);
    return h;
}

int producer_out_send(producer_out *o, const char *topic, const void *key, size_t keylen,
                      const void *value, size_t len, const producer_header *hdrs, size_t n_hdrs,
                      void *msg_opaque, char *errstr, size_t errstr_size) {
    rd_kafka_headers_t *h = headers_new(hdrs, n_hdrs);
    rd_kafka_vu_t vu[6] = {
        {.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
        {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, keylen}},
        {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)value, len}},
        {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
        {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = msg_opaque},
        {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = h},
    };
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_produceva(o->rk, vu, h ? 6 : 5);
        if (!e) {
            o->st.sent++;
            rd_kafka_poll(o->rk, 0);
            return 0; /* headers now owned by the message */
        }
        rd_kafka_resp_err_t err = rd_kafka_error_code(e);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_error_destroy(e);
            rd_kafka_poll(o->rk, 100); /* let deliveries drain the queue */
            continue;
        }
        snprintf(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (h) rd_kafka_headers_destroy(h);
        return -1;
    }
}

int producer_out_poll(producer_out *o, int timeout_ms) {
    return rd_kafka_poll(o->rk, timeout_ms);
}

int producer_out_flush(producer_out *o, int timeout_ms) {
    rd_kafka_flush(o->rk, timeout_ms);
    return rd_kafka_outq_len(o->rk);
}

int producer_out_outstanding(const producer_out *o) {
    return rd_kafka_outq_len(o->rk);
}

producer_out_stats producer_out_get_stats(const producer_out *o) {
    return o->st;
}

rd_kafka_t *producer_out_rk(producer_out *o) {
    return o->rk;
}

void producer_out_destroy(producer_out *o) {
    if (!o) return;
    /* Purged messages get their delivery report (failed) before the end. */
    rd_kafka_purge(o->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(o->rk, 0);
    rd_kafka_destroy(o->rk);
    free(o);
}
