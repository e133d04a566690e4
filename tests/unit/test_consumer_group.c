/* Two processors in one consumer group (cooperative-sticky): the partitions
 * are split between them, every event is applied by exactly one of them,
 * and each store holds offsets only for the partitions it owned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "state.h"
#include "test_consumer_fixture.h"

#define PARTS  4
#define EVENTS 400

static int count_cb(int32_t partition, const char *user_id, size_t len, const state_user *u,
                    state_dec_result dec, void *opaque) {
    *(uint64_t *)opaque += u->n_events;
    return 0;
}

/* Events in the store's histories; owned[p] = 1 for partitions with an offset. */
static uint64_t stored(const char *dir, int owned[PARTS], int64_t *offsets) {
    char err[512];
    state_store *s = fx_store_read(dir);
    assert_non_null(s);
    uint64_t n = 0;
    assert_int_equal(state_foreach_user(s, -1, count_cb, &n, err, sizeof(err)), 0);
    for (int p = 0; p < PARTS; p++) {
        int64_t next = 0;
        owned[p] = state_get_offset(s, "events", p, &next, err, sizeof(err)) == 1;
        if (owned[p]) *offsets += next;
    }
    state_close(s);
    return n;
}

/* A test's directory (dir[512]), a model in it (model[600]) and a broker
 * with the processor's three topics. */
static producer_broker *start_world(const char *name, char *dir, char *model) {
    const char *topics[] = {"events", "recommendations", "events.dlq"};
    char err[512];
    fx_dir(dir, 512, name);
    snprintf(model, 600, "%s/model.bin", dir);
    fx_model(model, 30, 3, NULL);
    producer_broker *b = producer_broker_start(PARTS, topics, 3, err, sizeof(err));
    assert_non_null(b);
    return b;
}

/* Whether every member holds partitions and a model: with cooperative-sticky
 * the second member is given partitions only after the first has revoked
 * them, so this is the group settled. A fixed sleep was too short under
 * the sanitizers on a loaded machine. */
static int all_ready(metrics *const *m, int n) {
    char why[128];
    for (int i = 0; i < n; i++)
        if (!metrics_ready(m[i], why, sizeof(why))) return 0;
    return 1;
}

static void test_two_members_split_the_work(void **st) {
    char dir[512], model[600], sd[2][600];
    producer_broker *b = start_world("consumer-group", dir, model);
    fx_proc p[2];
    const char *variant = "default";
    metrics *m[2] = {metrics_new(&variant, 1), metrics_new(&variant, 1)};
    for (int i = 0; i < 2; i++) {
        snprintf(sd[i], sizeof(sd[i]), "%s/state%d", dir, i);
        memset(&p[i], 0, sizeof(p[i]));
        run_config_default(&p[i].cfg);
        p[i].cfg.brokers = producer_broker_bootstraps(b);
        p[i].cfg.state_dir = sd[i];
        p[i].cfg.model_path = model;
        p[i].cfg.reload_interval_ms = 0;
        p[i].cfg.batch_timeout_ms = 50;
        p[i].cfg.metrics = m[i];
        fx_proc_start(&p[i]);
    }
    int64_t settle = util_now_ms() + 60000;
    while (!all_ready(m, 2) && util_now_ms() < settle) fx_sleep_ms(100);
    assert_true(all_ready(m, 2));
    producer_out *o = fx_producer(producer_broker_bootstraps(b));
    for (int i = 0; i < EVENTS; i++) {
        char user[16];
        snprintf(user, sizeof(user), "g%d", i % 40);
        fx_event(o, "events", user, "i2", "LISTEN", 1700000000000LL + i);
    }
    assert_int_equal(producer_out_flush(o, 10000), 0);
    producer_out_destroy(o);
    int64_t end = util_now_ms() + 20000;
    while (fx_proc_live(&p[0]).applied + fx_proc_live(&p[1]).applied < EVENTS &&
           util_now_ms() < end)
        fx_sleep_ms(50);
    fx_sleep_ms(300);
    for (int i = 0; i < 2; i++) assert_int_equal(fx_proc_stop(&p[i]), 0);
    assert_int_equal(p[0].stats.applied + p[1].stats.applied, EVENTS);
    assert_true(p[0].stats.applied > 0 && p[1].stats.applied > 0);

    int owned[2][PARTS];
    int64_t offsets = 0;
    uint64_t events = stored(sd[0], owned[0], &offsets) + stored(sd[1], owned[1], &offsets);
    assert_int_equal(events, EVENTS);
    assert_int_equal(offsets, EVENTS);
    for (int q = 0; q < PARTS; q++) assert_false(owned[0][q] && owned[1][q]);
    for (int i = 0; i < 2; i++) metrics_free(m[i]);
    producer_broker_stop(b);
}

/* Per partition of a store: events in its users' histories must equal its
 * stored next offset (every event of the partition so far, once), i.e. the
 * store holds whole batches only. Adds the offsets to next[]. */
static void check_whole_batches(const char *dir, int64_t next[PARTS]) {
    char err[512];
    state_store *s = fx_store_read(dir);
    assert_non_null(s);
    for (int p = 0; p < PARTS; p++) {
        uint64_t n = 0;
        int64_t off = 0;
        assert_int_equal(state_foreach_user(s, p, count_cb, &n, err, sizeof(err)), 0);
        if (state_get_offset(s, "events", p, &off, err, sizeof(err)) != 1) off = 0;
        assert_int_equal(n, off);
        if (off > next[p]) next[p] = off;
    }
    state_close(s);
}

static void start_member(fx_proc *p, const char *brokers, const char *state_dir,
                         const char *model) {
    memset(p, 0, sizeof(*p));
    run_config_default(&p->cfg);
    p->cfg.brokers = brokers;
    p->cfg.state_dir = state_dir;
    p->cfg.model_path = model;
    p->cfg.reload_interval_ms = 0;
    p->cfg.batch_timeout_ms = 50;
    p->cfg.batch_size = 8;
    p->cfg.max_inflight_batches = 4;
    fx_proc_start(p);
}

/* Events r<i % 256> at about 200/s until member q has
 * applied some (it joined and got partitions), then 100 more. */
static int produce_until_joined(const char *brokers, fx_proc *q) {
    producer_out *o = fx_producer(brokers);
    int i = 0, extra = -1;
    int64_t end = util_now_ms() + 60000;
    while (extra != 0 && util_now_ms() < end) {
        for (int j = 0; j < 10; j++, i++) {
            char user[16];
            snprintf(user, sizeof(user), "r%d", i % 256);
            fx_event(o, "events", user, "i2", "LISTEN", 1700000000000LL + i);
        }
        if (extra < 0 && fx_proc_live(q).applied > 0) extra = 10;
        if (extra > 0) extra--;
        fx_sleep_ms(50);
    }
    assert_int_equal(producer_out_flush(o, 10000), 0);
    producer_out_destroy(o);
    return i;
}

/* A second member joins while the first is streaming with batches pending
 * (small batches, slow acknowledgements, events still arriving): the first
 * drains them in its revoke, so each store holds, per partition, exactly
 * the events up to its stored offset, and the partitions' ends are all
 * reached by one store or the other. */
static void test_revoke_drains_pending_batches(void **st) {
    char dir[512], model[600], sd[2][600];
    producer_broker *b = start_world("consumer-revoke", dir, model);
    const char *brokers = producer_broker_bootstraps(b);
    assert_int_equal(producer_broker_set_rtt(b, 1, 100), 0);
    fx_proc p[2];
    for (int i = 0; i < 2; i++) snprintf(sd[i], sizeof(sd[i]), "%s/state%d", dir, i);
    start_member(&p[0], brokers, sd[0], model);
    fx_sleep_ms(4000); /* the first member has joined */
    start_member(&p[1], brokers, sd[1], model);
    int n = produce_until_joined(brokers, &p[1]);
    assert_true(n <= 50 * 256); /* histories (H = 50) keep every event */
    int64_t next[PARTS] = {0}, end = util_now_ms() + 60000, total = 0;
    while (total < n && util_now_ms() < end) { /* until every partition's end is stored */
        fx_sleep_ms(500);
        memset(next, 0, sizeof(next));
        for (int i = 0; i < 2; i++) check_whole_batches(sd[i], next);
        total = next[0] + next[1] + next[2] + next[3];
    }
    for (int i = 0; i < 2; i++) assert_int_equal(fx_proc_stop(&p[i]), 0);
    assert_true(p[0].stats.applied > 0 && p[1].stats.applied > 0);
    memset(next, 0, sizeof(next));
    for (int i = 0; i < 2; i++) check_whole_batches(sd[i], next);
    assert_int_equal(next[0] + next[1] + next[2] + next[3], n);
    producer_broker_stop(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_members_split_the_work),
        cmocka_unit_test(test_revoke_drains_pending_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
