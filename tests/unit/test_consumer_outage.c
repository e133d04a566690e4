/* Failures the processor must ride out without losing or doubling state:
 * the broker going down mid-stream, and output records that finally fail
 * (the batch is rolled back and re-read, never half-persisted). The mock
 * cluster can be faulted only in the process that owns it, hence an
 * in-process test. */
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
    char dir[512], state_dir[600], model_path[600];
} world;

static world *new_world(const char *name) {
    static world w;
    const char *topics[] = {"events", "recommendations", "events.dlq"};
    char err[512];
    memset(&w, 0, sizeof(w));
    fx_dir(w.dir, sizeof(w.dir), name);
    snprintf(w.state_dir, sizeof(w.state_dir), "%s/state", w.dir);
    snprintf(w.model_path, sizeof(w.model_path), "%s/model.bin", w.dir);
    fx_model(w.model_path, 30, 7, NULL);
    w.broker = producer_broker_start(PARTS, topics, 3, err, sizeof(err));
    assert_non_null(w.broker);
    w.brokers = producer_broker_bootstraps(w.broker);
    return &w;
}

static void proc_config(fx_proc *p, const world *w) {
    memset(p, 0, sizeof(*p));
    run_config_default(&p->cfg);
    p->cfg.brokers = w->brokers;
    p->cfg.state_dir = w->state_dir;
    p->cfg.model_path = w->model_path;
    p->cfg.reload_interval_ms = 0;
    p->cfg.batch_timeout_ms = 50;
    p->cfg.retry_backoff_ms = 200;
}

static int count_cb(int32_t partition, const char *user_id, size_t len, const state_user *u,
                    state_dec_result dec, void *opaque) {
    *(uint64_t *)opaque += u->n_events;
    return 0;
}

/* Events in all histories, and the sum of stored offsets. */
static void stored(const world *w, uint64_t *events, int64_t *offsets) {
    char err[512];
    state_store *s = fx_store_read(w->state_dir);
    assert_non_null(s);
    *events = 0;
    *offsets = 0;
    assert_int_equal(state_foreach_user(s, -1, count_cb, events, err, sizeof(err)), 0);
    for (int p = 0; p < PARTS; p++) {
        int64_t next = 0;
        if (state_get_offset(s, "events", p, &next, err, sizeof(err)) == 1) *offsets += next;
    }
    state_close(s);
}

/* n events over 8 users (history H = 50 keeps them all). */
static void produce(const world *w, int from, int n) {
    producer_out *o = fx_producer(w->brokers);
    for (int i = from; i < from + n; i++) {
        char user[16], item[16];
        snprintf(user, sizeof(user), "user%d", i % 8);
        snprintf(item, sizeof(item), "i%d", i % 30);
        fx_event(o, "events", user, item, "LISTEN", 1700000000000LL + i);
    }
    assert_int_equal(producer_out_flush(o, 30000), 0);
    producer_out_destroy(o);
}

static void test_broker_down_and_back(void **st) {
    world *w = new_world("consumer-outage");
    fx_proc p;
    proc_config(&p, w);
    fx_proc_start(&p);
    produce(w, 0, 40);
    assert_int_equal(fx_proc_wait(&p, 40, 0, 20000), 0);

    /* down for 3 s while events keep coming (the producer buffers them) */
    producer_out *o = fx_producer(w->brokers);
    assert_int_equal(producer_broker_set_down(w->broker, 1, 1), 0);
    for (int i = 40; i < 100; i++) {
        char user[16];
        snprintf(user, sizeof(user), "user%d", i % 8);
        fx_event(o, "events", user, "i1", "VIEW", 1700000000000LL + i);
    }
    fx_sleep_ms(3000);
    assert_int_equal(fx_proc_live(&p).applied, 40); /* nothing moved while down */
    assert_int_equal(producer_broker_set_down(w->broker, 1, 0), 0);
    assert_int_equal(producer_out_flush(o, 30000), 0);
    producer_out_destroy(o);
    assert_int_equal(fx_proc_wait(&p, 100, 0, 30000), 0);
    fx_sleep_ms(300);
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_int_equal(p.stats.applied, 100);
    uint64_t events;
    int64_t offsets;
    stored(w, &events, &offsets);
    assert_int_equal(events, 100);
    assert_int_equal(offsets, 100);
    producer_broker_stop(w->broker);
}

/* Produce requests of the processor's first batch fail for good: nothing
 * of that batch may be persisted; it is re-read and applied once. */
static void test_failed_delivery_rolls_back(void **st) {
    world *w = new_world("consumer-rollback");
    produce(w, 0, 24);
    rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE};
    producer_broker_push_errors(w->broker, 0 /* Produce */, 2, errs);
    fx_proc p;
    proc_config(&p, w);
    fx_proc_start(&p);
    assert_int_equal(fx_proc_wait(&p, 24, 0, 30000), 0);
    fx_sleep_ms(300);
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_true(p.stats.delivery_failures >= 1);
    assert_true(p.stats.batch_retries >= 1);
    assert_int_equal(p.stats.applied, 24);
    uint64_t events;
    int64_t offsets;
    stored(w, &events, &offsets);
    assert_int_equal(events, 24);
    assert_int_equal(offsets, 24);
    producer_broker_stop(w->broker);
}

/* Each user's history must be exactly one clean pass over the events of
 * produce(w, 0, n): user k holds events k, k + 8, k + 16, ... in order. */
static int history_cb(int32_t partition, const char *user_id, size_t len, const state_user *u,
                      state_dec_result dec, void *opaque) {
    int n = *(int *)opaque, k = atoi(user_id + 4);
    assert_int_equal(dec, STATE_DEC_OK);
    assert_int_equal(u->n_events, n / 8);
    for (uint32_t j = 0; j < u->n_events; j++) {
        int i = k + 8 * (int)j;
        char item[16];
        snprintf(item, sizeof(item), "i%d", i % 30);
        assert_int_equal(u->events[j].ts_ms, 1700000000000LL + i);
        assert_int_equal(u->events[j].item_len, strlen(item));
        assert_memory_equal(state_user_item(u, &u->events[j]), item, strlen(item));
    }
    return 0;
}

static void check_histories(const world *w, int n) {
    char err[512];
    state_store *s = fx_store_read(w->state_dir);
    assert_non_null(s);
    assert_int_equal(state_foreach_user(s, -1, history_cb, &n, err, sizeof(err)), 0);
    state_close(s);
}

/* A record of an in-flight batch finally fails while later batches are
 * pending (small batches, slow acknowledgements): that batch and every later
 * one are discarded and re-read, earlier ones are kept, and the store ends
 * up holding every event exactly once, each user's history in order, and
 * offsets at the end of the topic. */
static void test_failure_with_batches_in_flight(void **st) {
    enum { N = 320 };
    world *w = new_world("consumer-inflight");
    produce(w, 0, N);
    assert_int_equal(producer_broker_set_rtt(w->broker, 1, 100), 0);
    fx_proc p;
    proc_config(&p, w);
    p.cfg.batch_size = 8;
    p.cfg.max_inflight_batches = 8;
    fx_proc_start(&p);
    assert_int_equal(fx_proc_wait(&p, 24, 0, 30000), 0);
    run_stats before = fx_proc_live(&p);
    rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE};
    producer_broker_push_errors(w->broker, 0 /* Produce */, 1, errs);
    assert_int_equal(fx_proc_wait(&p, N, 0, 60000), 0);
    fx_sleep_ms(300);
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_true(before.applied < N); /* the failure came mid-stream */
    assert_true(p.stats.delivery_failures >= 1);
    assert_true(p.stats.batch_retries >= 2); /* the failed batch and later ones */
    assert_int_equal(p.stats.applied, N);
    uint64_t events;
    int64_t offsets;
    stored(w, &events, &offsets);
    assert_int_equal(events, N);
    assert_int_equal(offsets, N);
    check_histories(w, N);
    producer_broker_stop(w->broker);
}

/* Batches that hold many events of each user, interleaved with other
 * users' and over both partitions: each history is stored in offset order. */
static void test_batch_of_interleaved_users(void **st) {
    enum { N = 320 };
    (void)st;
    world *w = new_world("consumer-interleaved");
    produce(w, 0, N); /* all queued before the processor starts: full batches */
    fx_proc p;
    proc_config(&p, w);
    p.cfg.batch_size = 100;
    fx_proc_start(&p);
    assert_int_equal(fx_proc_wait(&p, N, 0, 30000), 0);
    assert_int_equal(fx_proc_stop(&p), 0);
    assert_int_equal(p.stats.applied, N);
    assert_true(p.stats.batches <= 8); /* so most batches held 100 events */
    check_histories(w, N);
    producer_broker_stop(w->broker);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_down_and_back),
        cmocka_unit_test(test_failed_delivery_rolls_back),
        cmocka_unit_test(test_failure_with_batches_in_flight),
        cmocka_unit_test(test_batch_of_interleaved_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
