/* The synthetic generator: deterministic for a seed, ids in range, time
 * increasing, the cluster structure a recommender should find, new users
 * and items absent early and present later, event types tied to taste. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"

static uint32_t id_num(const char *id, char prefix) {
    assert_int_equal(id[0], prefix);
    assert_true(strlen(id) >= 7);
    char *end;
    unsigned long v = strtoul(id + 1, &end, 10);
    assert_int_equal(*end, '\0');
    return (uint32_t)v;
}

static model_synth_params small_params(void) {
    model_synth_params p;
    model_synth_params_default(&p);
    p.users = 2000;
    p.items = 1000;
    p.clusters = 10;
    p.seed = 7;
    return p;
}

static void test_deterministic(void **state) {
    model_synth_params p = small_params();
    model_synth *a = model_synth_new(&p), *b = model_synth_new(&p);
    p.seed = 8;
    model_synth *c = model_synth_new(&p);
    codec_event ea, eb, ec;
    int differ = 0;
    for (int i = 0; i < 20000; i++) {
        model_synth_next(a, &ea);
        model_synth_next(b, &eb);
        model_synth_next(c, &ec);
        assert_string_equal(ea.user_id, eb.user_id);
        assert_string_equal(ea.item_id, eb.item_id);
        assert_int_equal(ea.type, eb.type);
        assert_int_equal(ea.ts_ms, eb.ts_ms);
        differ += strcmp(ea.item_id, ec.item_id) != 0;
    }
    assert_true(differ > 10000); /* another seed is another stream */
    model_synth_free(a);
    model_synth_free(b);
    model_synth_free(c);
}

static void test_ids_and_time(void **state) {
    model_synth_params p = small_params();
    p.mean_gap_ms = 20;
    model_synth *s = model_synth_new(&p);
    codec_event ev;
    int64_t prev = p.start_ms;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        model_synth_next(s, &ev);
        assert_true(id_num(ev.user_id, 'u') < p.users);
        assert_true(id_num(ev.item_id, 'i') < p.items);
        assert_int_equal(ev.user_len, strlen(ev.user_id));
        assert_int_equal(ev.item_len, strlen(ev.item_id));
        assert_true(ev.type <= CODEC_EVENT_LIKE);
        assert_true(ev.ts_ms >= prev);
        prev = ev.ts_ms;
    }
    double mean_gap = (double)(prev - p.start_ms) / n;
    assert_true(mean_gap > 19.0 && mean_gap < 21.0);
    model_synth_free(s);
}

/* Share of events whose item lies in the user's current cluster. */
static double in_cluster_share(double in_cluster, double like_share[2]) {
    model_synth_params p = small_params();
    p.in_cluster = in_cluster;
    p.drift = 0;
    model_synth *s = model_synth_new(&p);
    codec_event ev;
    int hits = 0, n = 50000, likes[2] = {0, 0}, count[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        model_synth_next(s, &ev);
        uint32_t u = id_num(ev.user_id, 'u'), it = id_num(ev.item_id, 'i');
        int in = model_synth_user_cluster(s, u) == model_synth_item_cluster(s, it);
        hits += in;
        count[in]++;
        likes[in] += ev.type == CODEC_EVENT_LIKE;
    }
    for (int k = 0; k < 2; k++) like_share[k] = count[k] ? (double)likes[k] / count[k] : 0;
    model_synth_free(s);
    return (double)hits / n;
}

static void test_cluster_structure(void **state) {
    double likes[2];
    double strong = in_cluster_share(0.8, likes);
    assert_true(strong > 0.75 && strong < 0.9);
    assert_true(likes[1] > 2 * likes[0]); /* taste shows in the event type */
    double none = in_cluster_share(0.0, likes);
    assert_true(none < 0.25); /* about 1 / clusters, plus repeats */
}

static void test_drift_moves_users(void **state) {
    model_synth_params p = small_params();
    p.drift = 0.5;
    model_synth *s = model_synth_new(&p);
    uint32_t before[2000];
    for (uint32_t u = 0; u < p.users; u++) before[u] = model_synth_user_cluster(s, u);
    codec_event ev;
    for (int i = 0; i < 50000; i++) model_synth_next(s, &ev);
    int moved = 0;
    for (uint32_t u = 0; u < p.users; u++) moved += before[u] != model_synth_user_cluster(s, u);
    assert_true(moved > 200);
    model_synth_free(s);
}

static void test_new_users_and_items_arrive_late(void **state) {
    model_synth_params p = small_params();
    p.new_user_share = 0.2;
    p.new_item_share = 0.2;
    p.expected_events = 100000;
    model_synth *s = model_synth_new(&p);
    uint32_t old_users = 1600, old_items = 800;
    assert_int_equal(model_synth_users_live(s), old_users);
    assert_int_equal(model_synth_items_live(s), old_items);
    static unsigned char seen_user[2000], seen_item[1000];
    memset(seen_user, 0, sizeof(seen_user));
    memset(seen_item, 0, sizeof(seen_item));
    codec_event ev;
    for (int i = 0; i < 100000; i++) {
        model_synth_next(s, &ev);
        uint32_t u = id_num(ev.user_id, 'u'), it = id_num(ev.item_id, 'i');
        if (i < 30000) { /* the first 30% knows only the original catalogue */
            assert_true(u < old_users);
            assert_true(it < old_items);
        }
        assert_true(u < model_synth_users_live(s));
        assert_true(it < model_synth_items_live(s));
        seen_user[u] = seen_item[it] = 1;
    }
    int new_users = 0, new_items = 0;
    for (uint32_t u = old_users; u < p.users; u++) new_users += seen_user[u];
    for (uint32_t it = old_items; it < p.items; it++) new_items += seen_item[it];
    assert_true(new_users >= 350); /* arrivals happen, nearly all by the end */
    assert_true(new_items >= 150);
    model_synth_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_ids_and_time),
        cmocka_unit_test(test_cluster_structure),
        cmocka_unit_test(test_drift_moves_users),
        cmocka_unit_test(test_new_users_and_items_arrive_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
