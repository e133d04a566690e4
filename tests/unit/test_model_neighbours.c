/* The neighbour index against brute force (every pair's cosine, full
 * sort), short rows padded, zero vectors harmless, thread count without
 * effect; and popularity with and without time decay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "model.h"
#include "test_model_fixture.h"

static float *random_factors(uint32_t n, uint32_t f, uint64_t seed) {
    float *y = malloc((size_t)n * f * sizeof(float));
    fx_state = seed;
    for (size_t i = 0; i < (size_t)n * f; i++) y[i] = (float)fx_rand(2001) / 1000.0f - 1.0f;
    return y;
}

static double cosine(const float *a, const float *b, uint32_t f) {
    double d = 0, na = 0, nb = 0;
    for (uint32_t i = 0; i < f; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0 && nb > 0 ? d / sqrt(na * nb) : 0;
}

static void test_matches_brute_force(void **state) {
    /* More items than one sgemm chunk (8192), so chunking is exercised. */
    const uint32_t n = 9000, f = 16, k = 10;
    float *y = random_factors(n, f, 99);
    uint32_t *idx = malloc((size_t)n * k * sizeof(uint32_t));
    float *sim = malloc((size_t)n * k * sizeof(float));
    char err[256];
    assert_int_equal(model_neighbours_build(y, n, f, k, 2, idx, sim, err, sizeof(err)), 0);
    const uint32_t probes[] = {0, 1, 255, 256, 4097, 8191, 8192, 8999};
    for (size_t p = 0; p < sizeof(probes) / sizeof(probes[0]); p++) {
        uint32_t i = probes[p];
        /* Brute force: the k-th best similarity bounds what must be there. */
        double best[10];
        for (uint32_t j = 0; j < k; j++) best[j] = -2;
        for (uint32_t o = 0; o < n; o++) {
            if (o == i) continue;
            double c = cosine(y + (size_t)i * f, y + (size_t)o * f, f);
            if (c <= best[k - 1]) continue;
            uint32_t at = k - 1;
            while (at > 0 && best[at - 1] < c) {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = c;
        }
        for (uint32_t j = 0; j < k; j++) {
            uint32_t o = idx[(size_t)i * k + j];
            assert_true(o < n && o != i);
            assert_true(fabs(sim[(size_t)i * k + j] - best[j]) < 1e-4);
            assert_true(fabs(cosine(y + (size_t)i * f, y + (size_t)o * f, f) - best[j]) < 1e-4);
            if (j) assert_true(sim[(size_t)i * k + j] <= sim[(size_t)i * k + j - 1]);
        }
    }
    free(y);
    free(idx);
    free(sim);
}

static void test_short_rows_padded_and_zero_vectors(void **state) {
    const uint32_t n = 4, f = 3, k = 6;
    float y[12] = {1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0}; /* item 3 is all zero */
    uint32_t idx[24];
    float sim[24];
    char err[256];
    assert_int_equal(model_neighbours_build(y, n, f, k, 1, idx, sim, err, sizeof(err)), 0);
    assert_int_equal(idx[0], 1); /* same direction as item 0 */
    assert_true(fabs(sim[0] - 1.0f) < 1e-6);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < 3; j++) assert_true(idx[i * k + j] < n && idx[i * k + j] != i);
        for (uint32_t j = 3; j < k; j++) {
            assert_int_equal(idx[i * k + j], MODEL_NONE);
            assert_true(sim[i * k + j] == 0.0f);
        }
    }
    for (uint32_t j = 0; j < 3; j++) assert_true(sim[3 * k + j] == 0.0f);
}

static void test_threads_do_not_change_results(void **state) {
    const uint32_t n = 3000, f = 8, k = 20;
    float *y = random_factors(n, f, 5);
    uint32_t *a = malloc((size_t)n * k * 4), *b = malloc((size_t)n * k * 4);
    float *sa = malloc((size_t)n * k * 4), *sb = malloc((size_t)n * k * 4);
    char err[256];
    assert_int_equal(model_neighbours_build(y, n, f, k, 1, a, sa, err, sizeof(err)), 0);
    assert_int_equal(model_neighbours_build(y, n, f, k, 3, b, sb, err, sizeof(err)), 0);
    assert_memory_equal(a, b, (size_t)n * k * 4);
    assert_memory_equal(sa, sb, (size_t)n * k * 4);
    free(y);
    free(a);
    free(b);
    free(sa);
    free(sb);
}

static void test_popularity_plain_and_decayed(void **state) {
    model_dataset *ds = model_dataset_new();
    const int64_t day = 86400000, now = 100 * day;
    /* i0: 5 listens long ago; i1: 3 listens today; i2: 1 like (weight 3) today. */
    for (int e = 0; e < 5; e++) fx_event(ds, e, 0, CODEC_EVENT_LISTEN, now - 30 * day);
    for (int e = 0; e < 3; e++) fx_event(ds, e, 1, CODEC_EVENT_LISTEN, now);
    fx_event(ds, 9, 2, CODEC_EVENT_LIKE, now);
    float tw[CODEC_EVENT_TYPES] = {1.0f, 0.5f, 3.0f};
    uint32_t items[4];
    float scores[4];
    uint32_t got = model_popularity(ds, tw, 0, now, 4, items, scores);
    assert_int_equal(got, 3);
    assert_int_equal(items[0], 0);
    assert_true(fabs(scores[0] - 5.0f) < 1e-6);
    assert_int_equal(items[1], 1); /* ties 3 = 3: lower index first */
    assert_int_equal(items[2], 2);
    got = model_popularity(ds, tw, day, now, 2, items, scores);
    assert_int_equal(got, 2);
    assert_int_equal(items[0], 1);
    assert_int_equal(items[1], 2);
    /* A 30-day half-life halves the old item's weight exactly. */
    got = model_popularity(ds, tw, 30 * day, now, 3, items, scores);
    assert_int_equal(items[2], 0);
    assert_true(fabs(scores[2] - 2.5f) < 1e-5);
    model_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_brute_force),
        cmocka_unit_test(test_short_rows_padded_and_zero_vectors),
        cmocka_unit_test(test_threads_do_not_change_results),
        cmocka_unit_test(test_popularity_plain_and_decayed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
