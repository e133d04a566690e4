/* Live counters of the replay and the fold-in ranking: the live popular
 * list equals a brute-force decayed count after every event (also across
 * rebasing), the bandit's weights follow the sources' hit rates per slot,
 * and model_foldin_top equals a full sort of the dot products with the
 * excluded items left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"
#include "util.h"

static uint64_t rng = 2463534242ULL;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* After every event, the live top 10 of 40 items (half-life 1000 ms, events
 * up to 500 half-lives apart so the anchor is rebased) is the brute-force
 * top 10 of sum w 2^-(now - ts)/h, ties aside. */
static void test_popular_live_matches_brute_force(void **st) {
    (void)st;
    enum { ITEMS = 40, TOP = 10, EVENTS = 3000 };
    model_popular_live *p = model_popular_live_new(1000, TOP);
    int64_t ts[EVENTS];
    uint32_t item[EVENTS];
    float w[EVENTS];
    int64_t now = 0;
    for (int e = 0; e < EVENTS; e++) {
        now += rnd(50) == 0 ? 500000 : rnd(400);
        ts[e] = now, item[e] = rnd(ITEMS), w[e] = 0.5f + (float)rnd(4);
        model_popular_live_add(p, item[e], w[e], ts[e]);
        double sum[ITEMS] = {0};
        for (int j = 0; j <= e; j++) sum[item[j]] += w[j] * exp2(-(double)(now - ts[j]) / 1000.0);
        const uint32_t *top;
        const float *sc;
        uint32_t n = model_popular_live_top(p, &top, &sc);
        uint32_t distinct = 0;
        for (int i = 0; i < ITEMS; i++) distinct += sum[i] > 0;
        assert_int_equal(n, distinct < TOP ? distinct : TOP);
        for (uint32_t i = 1; i < n; i++) assert_true(sum[top[i - 1]] >= sum[top[i]] * (1 - 1e-9));
        /* nothing outside the list beats its last item */
        double last = sum[top[n - 1]];
        for (int i = 0; i < ITEMS; i++) {
            int in = 0;
            for (uint32_t q = 0; q < n; q++) in |= top[q] == (uint32_t)i;
            if (!in) assert_true(sum[i] <= last * (1 + 1e-9));
        }
    }
    model_popular_live_free(p);
}

/* Without decay the scores are plain sums. */
static void test_popular_live_plain_counts(void **st) {
    (void)st;
    model_popular_live *p = model_popular_live_new(0, 3);
    model_popular_live_add(p, 7, 1, 0);
    model_popular_live_add(p, 2, 1, 1000000);
    model_popular_live_add(p, 2, 1, 2000000);
    model_popular_live_add(p, 9, 5, 3000000);
    model_popular_live_add(p, 4, 0, 3000000); /* no weight: not counted */
    const uint32_t *top;
    const float *sc;
    assert_int_equal(model_popular_live_top(p, &top, &sc), 3);
    assert_int_equal(top[0], 9);
    assert_int_equal(top[1], 2);
    assert_int_equal(top[2], 7);
    assert_float_equal(sc[1], 2.0f, 1e-6);
    model_popular_live_free(p);
}

/* A source whose slots are hit more often ends with the larger weight, per
 * segment; with no data all weights are equal. */
static void test_bandit_follows_hit_rates(void **st) {
    (void)st;
    model_bandit *b = model_bandit_new(2, 0.0);
    float w[CODEC_SOURCES];
    model_bandit_weights(b, 0, w);
    assert_float_equal(w[0], w[1], 1e-6);
    assert_float_equal(w[1], w[2], 1e-6);
    for (int i = 0; i < 2000; i++) {
        uint32_t slots[CODEC_SOURCES] = {10, 10, 0};
        /* segment 0: online hit 20% of lists, offline 5%; segment 1: reversed */
        model_bandit_record(b, 0, slots, i % 5 == 0 ? 0 : i % 20 == 1 ? 1 : -1);
        model_bandit_record(b, 1, slots, i % 5 == 0 ? 1 : i % 20 == 1 ? 0 : -1);
    }
    model_bandit_weights(b, 0, w);
    assert_true(w[0] > 2 * w[1]);
    model_bandit_weights(b, 1, w);
    assert_true(w[1] > 2 * w[0]);
    /* a segment out of range reads the last one */
    float w2[CODEC_SOURCES];
    model_bandit_weights(b, 9, w2);
    assert_memory_equal(w, w2, sizeof(w));
    model_bandit_free(b);
    /* exploration raises an arm that got no slots */
    b = model_bandit_new(1, 1.0);
    uint32_t slots[CODEC_SOURCES] = {10, 10, 0};
    for (int i = 0; i < 100; i++) model_bandit_record(b, 0, slots, -1);
    model_bandit_weights(b, 0, w);
    assert_true(w[2] > w[0]);
    model_bandit_free(b);
}

/* model_foldin_top: the n best dot products of the catalogue, excluded
 * items left out, for factor counts with and without a vector tail. */
static void test_foldin_top_is_a_full_sort(void **st) {
    (void)st;
    uint32_t fs[] = {8, 13, 32};
    for (size_t c = 0; c < 3; c++) {
        uint32_t f = fs[c], n_items = 600;
        model m;
        memset(&m, 0, sizeof(m));
        m.n_items = n_items, m.factors = f;
        m.item_factors = util_malloc((size_t)n_items * f * sizeof(float));
        for (size_t i = 0; i < (size_t)n_items * f; i++)
            m.item_factors[i] = (float)rnd(2001) / 1000.0f - 1.0f;
        float v[32];
        for (uint32_t i = 0; i < f; i++) v[i] = (float)rnd(2001) / 1000.0f - 1.0f;
        uint32_t ex[3] = {rnd(n_items), rnd(n_items), rnd(n_items)};
        uint32_t items[20];
        float scores[20];
        size_t k = model_foldin_top(&m, v, ex, 3, 20, items, scores);
        assert_int_equal(k, 20);
        for (size_t i = 0; i < k; i++) {
            assert_true(items[i] != ex[0] && items[i] != ex[1] && items[i] != ex[2]);
            assert_float_equal(scores[i], model_dot(&m, v, items[i]), 1e-4);
            if (i) assert_true(scores[i] <= scores[i - 1]);
        }
        /* every item not returned (nor excluded) scores at most the last */
        for (uint32_t j = 0; j < n_items; j++) {
            int in = j == ex[0] || j == ex[1] || j == ex[2];
            for (size_t i = 0; i < k; i++) in |= items[i] == j;
            if (!in) assert_true(model_dot(&m, v, j) <= scores[k - 1] + 1e-5f);
        }
        free(m.item_factors);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_popular_live_matches_brute_force),
        cmocka_unit_test(test_popular_live_plain_counts),
        cmocka_unit_test(test_bandit_follows_hit_rates),
        cmocka_unit_test(test_foldin_top_is_a_full_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
