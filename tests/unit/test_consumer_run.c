/* The processor end to end, in process, on the embedded broker: events in,
 * one Recommendations record per touched user out, bad messages to the
 * dead-letter topic with their reason, state and offsets persisted together
 * so a restart applies nothing twice and loses nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "state.h"
#include "test_consumer_fixture.h"

#define PARTS 2

typedef struct world {
    producer_broker *broker;
    const char *brokers;
    char dir[512], state_dir[600], model_path[600], version[64];
} world;

static int setup(void **st) {
    static world w;
    const char *topics[] = {"events", "recommendations", "events.dlq"};
    char err[512];
    fx_dir(w.dir, sizeof(w.dir), "consumer-run");
    snprintf(w.state_dir, sizeof(w.state_dir), "%s/state", w.dir);
    snprintf(w.model_path, sizeof(w.model_path), "%s/model.bin", w.dir);
    fx_model(w.model_path, 40, 1, w.version);
    w.broker = producer_broker_start(PARTS, topics, 3, err, sizeof(err));
    if (!w.broker) return fprintf(stderr, "%s\n", err), -1;
    w.brokers = producer_broker_bootstraps(w.broker);
    *st = &w;
    return 0;
}

static int teardown(void **st) {
    world *w = *st;
    producer_broker_stop(w->broker);
    return 0;
}

static void proc_config(fx_proc *p, const world *w) {
    memset(p, 0, sizeof(*p));
    run_config_default(&p->cfg);
    p->cfg.brokers = w->brokers;
    p->cfg.state_dir = w->state_dir;
    p->cfg.model_path = w->model_path;
    p->cfg.reload_interval_ms = 0;
    p->cfg.batch_timeout_ms = 50;
    p->cfg.retry_backoff_ms = 100;
}

/* Sum of the stored offsets of the events topic. */
static int64_t stored_offsets(const world *w) {
    char err[512];
    state_store *s = fx_store_read(w->state_dir);
    assert_non_null(s);
    int64_t sum = 0;
    for (int p = 0; p < PARTS; p++) {
        int64_t next = 0;
        if (state_get_offset(s, "events", p, &next, err, sizeof(err)) == 1) sum += next;
    }
    state_close(s);
    return sum;
}

/* Total events in every user's stored history. */
static int count_cb(int32_t partition, const char *user_id, size_t len, const state_user *u,
                    state_dec_result dec, void *opaque) {
    *(uint64_t *)opaque += u->n_events;
    return 0;
}

static uint64_t stored_events(const world *w) {
    char err[512];
    state_store *s = fx_store_read(w->state_dir);
    assert_non_null(s);
    uint64_t n = 0;
    assert_int_equal(state_foreach_user(s, -1, count_cb, &n, err, sizeof(err)), 0);
    state_close(s);
    return n;
}

/* Checks one output record: keyed by its user, a non-empty list with
 * sources, the model's version. Returns the user's index in users[]. */
static void check_output(const world *w, const fx_msg *m) {
    codec_recs_owned *r = NULL;
    char detail[256];
    assert_int_equal(codec_decode_recs(m->payload, m->len, &r, detail, sizeof(detail)), CODEC_OK);
    const codec_recs *v = codec_recs_view(r);
    assert_int_equal(m->key_len, strlen(v->user_id));
    assert_memory_equal(m->key, v->user_id, m->key_len);
    assert_true(v->n_items > 0);
    for (size_t i = 0; i < v->n_items; i++) assert_true(v->items[i].source <= CODEC_SOURCE_POPULAR);
    assert_string_equal(v->model_version, w->version);
    assert_string_equal(v->variant, "default");
    assert_true(v->trigger_ts >= 1700000000000LL);
    assert_true(v->generated_ts > 0);
    codec_recs_free(r);
}

static void test_events_in_recommendations_out(void **st) {
    world *w = *st;
    fx_proc p;
    proc_config(&p, w);
    fx_proc_start(&p);
    producer_out *o = fx_producer(w->brokers);
    /* a known user (u1 is in the model's data), a new user, and two bad ones */
    for (int i = 0; i < 5; i++) fx_event(o, "events", "u1", "i3", "LISTEN", 1700000001000LL + i);
    fx_event(o, "events", "newbie", "i7", "like", 1700000002000LL);
    fx_send(o, "events", "bad", "{\"user_id\":\"x\"", 14);
    const char *bad2 = "{\"user_id\":\"x\",\"item_id\":\"y\",\"type\":\"BUY\",\"ts\":1}";
    fx_send(o, "events", "bad2", bad2, strlen(bad2));
    assert_int_equal(producer_out_flush(o, 10000), 0);
    assert_int_equal(fx_proc_wait(&p, 6, 2, 20000), 0);
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_int_equal(p.stats.applied, 6);
    assert_int_equal(p.stats.invalid, 2);
    assert_int_equal(p.stats.invalid_by_reason[CODEC_ERR_UNKNOWN_TYPE], 1);
    assert_int_equal(p.stats.by_type[CODEC_EVENT_LISTEN], 5);
    assert_int_equal(p.stats.by_type[CODEC_EVENT_LIKE], 1);
    assert_true(p.stats.published >= 2);

    fx_msgs out = fx_read(w->brokers, "recommendations", PARTS, p.stats.published, 10000);
    assert_int_equal(out.n, p.stats.published);
    int seen_u1 = 0, seen_new = 0;
    for (size_t i = 0; i < out.n; i++) {
        check_output(w, out.m[i]);
        seen_u1 |= out.m[i]->key_len == 2 && !memcmp(out.m[i]->key, "u1", 2);
        seen_new |= out.m[i]->key_len == 6 && !memcmp(out.m[i]->key, "newbie", 6);
    }
    assert_true(seen_u1 && seen_new);
    fx_msgs_free(&out);

    fx_msgs dlq = fx_read(w->brokers, "events.dlq", PARTS, 2, 10000);
    assert_int_equal(dlq.n, 2);
    for (size_t i = 0; i < dlq.n; i++) {
        rd_kafka_headers_t *h = dlq.m[i]->headers;
        const void *val;
        size_t len;
        assert_non_null(h);
        assert_int_equal(rd_kafka_header_get_last(h, "recstream.error", &val, &len), 0);
        assert_true(len > 0);
        assert_int_equal(rd_kafka_header_get_last(h, "recstream.topic", &val, &len), 0);
        assert_memory_equal(val, "events", 6);
        assert_int_equal(rd_kafka_header_get_last(h, "recstream.offset", &val, &len), 0);
        assert_true(dlq.m[i]->key_len >= 3 && !memcmp(dlq.m[i]->key, "bad", 3));
    }
    fx_msgs_free(&dlq);
    producer_out_destroy(o);

    /* persisted together: offsets cover all 8 messages, histories the 6 events */
    assert_int_equal(stored_offsets(w), 8);
    assert_int_equal(stored_events(w), 6);
}

/* A restart resumes at the stored offsets: nothing is applied twice, and
 * what arrives while it is down is applied once. */
static void test_restart_applies_once(void **st) {
    world *w = *st;
    uint64_t before = stored_events(w);
    producer_out *o = fx_producer(w->brokers);
    for (int i = 0; i < 10; i++) {
        char user[16];
        snprintf(user, sizeof(user), "r%d", i % 3);
        fx_event(o, "events", user, "i5", "VIEW", 1700000003000LL + i);
    }
    assert_int_equal(producer_out_flush(o, 10000), 0);
    producer_out_destroy(o);
    fx_proc p;
    proc_config(&p, w);
    fx_proc_start(&p);
    assert_int_equal(fx_proc_wait(&p, 10, 0, 20000), 0);
    fx_sleep_ms(500); /* time to (wrongly) re-read older events */
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_int_equal(p.stats.applied, 10);
    assert_int_equal(p.stats.invalid, 0);
    assert_int_equal(stored_events(w), before + 10);
    assert_int_equal(stored_offsets(w), 18);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_in_recommendations_out),
        cmocka_unit_test(test_restart_applies_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
