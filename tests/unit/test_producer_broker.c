/* The embedded broker and the output publisher over real TCP: produce keyed
 * messages with headers, read them back with topic_read, check the murmur2
 * partitioner places keys where Java clients would, ride out backpressure,
 * see deliveries fail while the broker is down and succeed after, and learn
 * a topic's partitions ahead of the first send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "producer.h"
#include "topic_read.h"
#include "util.h"

#define PARTS 3

/* Kafka's murmur2 (Utils.murmur2 + toPositive), as the Java partitioner. */
static int32_t java_partition(const char *key, int n_parts) {
    const uint32_t m = 0x5bd1e995;
    size_t len = strlen(key);
    uint32_t h = 0x9747b28c ^ (uint32_t)len;
    const unsigned char *d = (const unsigned char *)key;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = d[i] | d[i + 1] << 8 | d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h = h * m ^ k;
    }
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)d[i + 2] << 16; /* fall through */
    case 2:
        h ^= (uint32_t)d[i + 1] << 8; /* fall through */
    case 1:
        h ^= d[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)((h & 0x7fffffff) % (uint32_t)n_parts);
}

typedef struct dr_log {
    int ok, failed;
    uintptr_t opaque_sum;
} dr_log;

static void on_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *cb_opaque) {
    dr_log *l = cb_opaque;
    if (err)
        l->failed++;
    else
        l->ok++;
    l->opaque_sum += (uintptr_t)msg_opaque;
}

typedef struct seen {
    int n, bad_partition, bad_header, bad_value;
} seen;

static int on_msg(const rd_kafka_message_t *m, void *opaque) {
    seen *s = opaque;
    char key[64], want[96];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
    snprintf(want, sizeof(want), "value-of-%s", key);
    if (m->len != strlen(want) || memcmp(m->payload, want, m->len)) s->bad_value++;
    if (m->partition != java_partition(key, PARTS)) s->bad_partition++;
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vlen;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, "origin", &v, &vlen) ||
        vlen != 4 || memcmp(v, "test", 4))
        s->bad_header++;
    s->n++;
    return 0;
}

static producer_broker *start(void) {
    char err[256];
    const char *topics[] = {"events", "other"};
    producer_broker *b = producer_broker_start(PARTS, topics, 2, err, sizeof(err));
    if (!b) fail_msg("%s", err);
    assert_non_null(strstr(producer_broker_bootstraps(b), "127.0.0.1:"));
    return b;
}

static void send_keyed(producer_out *o, int from, int to) {
    char key[32], val[64], err[256];
    producer_header hdr = {"origin", "test", 4};
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        snprintf(val, sizeof(val), "value-of-%s", key);
        assert_int_equal(producer_out_send(o, "events", key, strlen(key), val, strlen(val), &hdr, 1,
                                           (void *)(uintptr_t)(i + 1), err, sizeof(err)),
                         0);
    }
}

static void test_roundtrip_and_partitioner(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    dr_log log = {0};
    char err[256];
    producer_out *o =
        producer_out_new(kc, producer_broker_bootstraps(b), on_dr, &log, err, sizeof(err));
    assert_non_null(o);
    send_keyed(o, 0, 50);
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(log.ok, 50);
    assert_int_equal(log.failed, 0);
    assert_int_equal(log.opaque_sum, 50 * 51 / 2); /* every opaque came back once */
    producer_out_stats st = producer_out_get_stats(o);
    assert_int_equal(st.sent, 50);
    assert_int_equal(st.delivered, 50);
    producer_out_destroy(o);

    seen s = {0};
    int64_t n = topic_read_all(kc, producer_broker_bootstraps(b), "events", 5000, on_msg, &s, err,
                               sizeof(err));
    if (n < 0) fail_msg("%s", err);
    assert_int_equal(n, 50);
    assert_int_equal(s.n, 50);
    assert_int_equal(s.bad_value, 0);
    assert_int_equal(s.bad_partition, 0);
    assert_int_equal(s.bad_header, 0);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

static void test_topic_read_unknown_and_empty(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    seen s = {0};
    /* An existing but empty topic ends at once with nothing read. */
    assert_int_equal(topic_read_all(kc, producer_broker_bootstraps(b), "other", 5000, on_msg, &s,
                                    err, sizeof(err)),
                     0);
    assert_int_equal(s.n, 0);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

static void test_backpressure_small_queue(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_set(kc, "queue.buffering.max.messages", "5", err, sizeof(err)),
                     0);
    dr_log log = {0};
    producer_out *o =
        producer_out_new(kc, producer_broker_bootstraps(b), on_dr, &log, err, sizeof(err));
    assert_non_null(o);
    send_keyed(o, 0, 300); /* far more than the queue holds: must wait, not fail */
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(log.ok, 300);
    producer_out_destroy(o);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

static void test_broker_down_then_up(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_set(kc, "message.timeout.ms", "2000", err, sizeof(err)), 0);
    /* Reconnect soon after the broker is back, within the message timeout. */
    assert_int_equal(producer_kconf_set(kc, "reconnect.backoff.max.ms", "200", err, sizeof(err)),
                     0);
    dr_log log = {0};
    producer_out *o =
        producer_out_new(kc, producer_broker_bootstraps(b), on_dr, &log, err, sizeof(err));
    assert_non_null(o);
    send_keyed(o, 0, 1);
    assert_int_equal(producer_out_flush(o, 5000), 0); /* connected, metadata known */
    assert_int_equal(producer_broker_set_down(b, 1, 1), 0);
    send_keyed(o, 1, 11);
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(log.failed, 10);
    assert_int_equal(producer_out_get_stats(o).failed, 10);
    assert_int_equal(producer_broker_set_down(b, 1, 0), 0);
    send_keyed(o, 11, 21);
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(log.ok, 11);
    producer_out_destroy(o);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

static void test_retriable_errors_are_retried(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    dr_log log = {0};
    producer_out *o =
        producer_out_new(kc, producer_broker_bootstraps(b), on_dr, &log, err, sizeof(err));
    assert_non_null(o);
    send_keyed(o, 0, 1);
    assert_int_equal(producer_out_flush(o, 5000), 0);
    rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                  RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT};
    producer_broker_push_errors(b, 0 /* Produce */, 2, errs);
    send_keyed(o, 1, 2);
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(log.ok, 2);
    assert_int_equal(log.failed, 0);
    producer_out_destroy(o);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

/* prepare learns a topic's partitions before the first send (and
 * producer_topic_partitions tells how many); with no broker to answer it
 * says which topic it could not learn. */
static void test_prepare(void **state) {
    producer_broker *b = start();
    producer_kconf *kc = producer_kconf_new();
    char err[256] = "";
    producer_out *o =
        producer_out_new(kc, producer_broker_bootstraps(b), NULL, NULL, err, sizeof(err));
    assert_non_null(o);
    assert_int_equal(producer_out_prepare(o, "events", 5000, err, sizeof(err)), 0);
    int parts = 0;
    assert_int_equal(
        producer_topic_partitions(producer_out_rk(o), "other", 5000, &parts, err, sizeof(err)), 0);
    assert_int_equal(parts, PARTS);
    assert_int_equal(producer_broker_set_down(b, 1, 1), 0);
    assert_int_equal(producer_out_prepare(o, "other", 500, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "topic other: "));
    producer_out_destroy(o);
    producer_kconf_free(kc);
    producer_broker_stop(b);
}

static void test_bad_start(void **state) {
    char err[256] = "";
    const char *topics[] = {"events"};
    assert_null(producer_broker_start(0, topics, 1, err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

int main(void) {
    util_log_set_level(UTIL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_partitioner),
        cmocka_unit_test(test_topic_read_unknown_and_empty),
        cmocka_unit_test(test_backpressure_small_queue),
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_broker_down_then_up),
        cmocka_unit_test(test_retriable_errors_are_retried),
        cmocka_unit_test(test_bad_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
