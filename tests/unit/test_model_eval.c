/* Evaluation: metrics on hand-computed rankings, both splits on a tiny log,
 * the full ranking (seen and cold items left out, same figures for any
 * thread count), its speed, and ALS beating popularity on synthetic data. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "util.h"

#define EPS 1e-9

/* ==== Metrics of one list ==== */

static model_eval_metrics list_at(const uint32_t *ranked, uint32_t n, const uint32_t *rel,
                                  uint32_t n_rel, uint32_t k) {
    model_eval_metrics m = {0};
    model_eval_list(ranked, n, rel, n_rel, k, &m);
    return m;
}

static void test_list_metrics(void **state) {
    const uint32_t ranked[] = {5, 3, 9, 1, 7};
    const uint32_t rel[] = {1, 3}; /* hits at ranks 2 and 4 */
    model_eval_metrics m = list_at(ranked, 5, rel, 2, 5);
    assert_float_equal(m.hr, 1, EPS);
    assert_float_equal(m.precision, 0.4, EPS);
    assert_float_equal(m.recall, 1, EPS);
    double dcg = 1 / log2(3) + 1 / log2(5), idcg = 1 + 1 / log2(3);
    assert_float_equal(m.ndcg, dcg / idcg, EPS);
    assert_float_equal(m.ndcg, 0.650921, 1e-6);
    assert_float_equal(m.map, (1.0 / 2 + 2.0 / 4) / 2, EPS);

    m = list_at(ranked, 5, rel, 2, 3); /* one hit, at rank 2 */
    assert_float_equal(m.precision, 1.0 / 3, EPS);
    assert_float_equal(m.recall, 0.5, EPS);
    assert_float_equal(m.ndcg, (1 / log2(3)) / idcg, EPS);
    assert_float_equal(m.map, 0.25, EPS);

    m = list_at(ranked, 5, rel, 2, 1); /* no hit */
    assert_float_equal(m.hr + m.precision + m.recall + m.ndcg + m.map, 0, EPS);
}

static void test_list_metrics_edges(void **state) {
    /* More relevant items than k: the ideal list is k hits long. */
    const uint32_t ranked[] = {5, 3, 9, 1, 7};
    const uint32_t many[] = {1, 3, 5, 7, 8, 9};
    model_eval_metrics m = list_at(ranked, 5, many, 6, 2);
    assert_float_equal(m.ndcg, 1, EPS);
    assert_float_equal(m.map, 1, EPS);
    assert_float_equal(m.recall, 2.0 / 6, EPS);
    /* A list shorter than k still divides precision by k. */
    const uint32_t one[] = {4};
    m = list_at(one, 1, one, 1, 5);
    assert_float_equal(m.precision, 0.2, EPS);
    assert_float_equal(m.ndcg, 1, EPS);
    assert_float_equal(m.map, 1, EPS);
}

/* ==== Splits ==== */

static void add(model_dataset *ds, const char *user, const char *item, int64_t ts) {
    codec_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.user_len = (uint16_t)strlen(user);
    ev.item_len = (uint16_t)strlen(item);
    memcpy(ev.user_id, user, ev.user_len + 1);
    memcpy(ev.item_id, item, ev.item_len + 1);
    ev.type = CODEC_EVENT_LISTEN;
    ev.ts_ms = ts;
    model_dataset_add(ds, &ev);
}

/* A: a b c b (b last), B: a, C: d a. Users and items in first-seen order:
 * A=0 B=1 C=2, a=0 b=1 c=2 d=3. Not in time order in the log. */
static model_dataset *tiny_log(void) {
    model_dataset *ds = model_dataset_new();
    add(ds, "A", "a", 1);
    add(ds, "A", "b", 2);
    add(ds, "A", "b", 4);
    add(ds, "A", "c", 3);
    add(ds, "B", "a", 5);
    add(ds, "C", "d", 6);
    add(ds, "C", "a", 7);
    return ds;
}

static void assert_test_items(const model_split *s, uint32_t u, const uint32_t *want, uint32_t n) {
    assert_int_equal(s->test_ptr[u + 1] - s->test_ptr[u], n);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(s->test_items[s->test_ptr[u] + i], want[i]);
}

static void test_split_leave_last_out(void **state) {
    model_dataset *ds = tiny_log();
    model_split s;
    char err[256];
    assert_int_equal(model_split_leave_last_out(ds, 1, &s, err, sizeof(err)), 0);
    assert_int_equal(s.test_users, 2); /* A and C; B has one item only */
    assert_int_equal(s.test_rows, 3);  /* A's two b rows, C's a */
    assert_int_equal(s.train.n, 4);
    assert_ptr_equal(s.train.users, ds->users);
    const uint32_t a_b[] = {1}, c_a[] = {0};
    assert_test_items(&s, 0, a_b, 1);
    assert_test_items(&s, 1, NULL, 0);
    assert_test_items(&s, 2, c_a, 1);
    assert_int_equal(s.cold_item[1], 1); /* b only ever held out */
    assert_int_equal(s.cold_item[0], 0);
    assert_int_equal(s.test_cold_items, 1);
    for (size_t r = 0; r < s.train.n; r++) /* no held-out pair in training */
        assert_false(s.train.rows[r].user == 0 && s.train.rows[r].item == 1);
    model_split_free(&s);

    assert_int_equal(model_split_leave_last_out(ds, 2, &s, err, sizeof(err)), 0);
    const uint32_t a_bc[] = {1, 2};
    assert_test_items(&s, 0, a_bc, 2);
    assert_int_equal(s.test_users, 1); /* C has only two items */
    model_split_free(&s);
    assert_int_equal(model_split_leave_last_out(ds, 0, &s, err, sizeof(err)), -1);
    model_dataset_free(ds);
}

static void test_split_time(void **state) {
    model_dataset *ds = tiny_log();
    assert_int_equal(model_split_time_cut(ds, 0.3), 5);
    assert_int_equal(model_split_time_cut(ds, 0.0), 8); /* nothing held out */
    model_split s;
    char err[256];
    assert_int_equal(model_split_time(ds, 4, &s, err, sizeof(err)), 0);
    /* A's b at 4 was seen in training (at 2): not a test item; B and C have
     * nothing in training: cold users, not ranked. */
    assert_int_equal(s.test_rows, 4);
    assert_int_equal(s.test_users, 0);
    assert_int_equal(s.cold_users, 2);
    model_split_free(&s);
    assert_int_equal(model_split_time(ds, 3, &s, err, sizeof(err)), 0);
    const uint32_t a_c[] = {2};
    assert_test_items(&s, 0, a_c, 1);
    assert_int_equal(s.test_users, 1);
    model_split_free(&s);
    model_dataset_free(ds);
}

/* ==== Full ranking ==== */

/* Users u0..u3 with items i0..i5. Each user's last item is held out. Item
 * i5 appears only as a held-out item, so it is cold. */
static model_dataset *rank_log(void) {
    model_dataset *ds = model_dataset_new();
    const char *log[][2] = {{"u0", "i0"}, {"u0", "i1"}, {"u0", "i2"}, {"u1", "i1"},
                            {"u1", "i3"}, {"u1", "i4"}, {"u2", "i2"}, {"u2", "i0"},
                            {"u2", "i5"}, {"u3", "i4"}, {"u3", "i3"}};
    for (int i = 0; i < 11; i++) add(ds, log[i][0], log[i][1], i);
    return ds;
}

static void test_rank_hand_factors(void **state) {
    model_dataset *ds = rank_log();
    model_split s;
    char err[256];
    assert_int_equal(model_split_leave_last_out(ds, 1, &s, err, sizeof(err)), 0);
    assert_int_equal(s.test_users, 4);
    /* One-hot item factors, so a user's score of item j is user[j]. Seen
     * and cold items get the highest scores and must still be left out. */
    float items[36] = {0};
    for (int j = 0; j < 6; j++) items[j * 6 + j] = 1;
    float users[4][6] = {
        {9, 9, 0.1f, 0.5f, 0.4f, 9},    /* u0: test i2 at rank 3 of i3 i4 i2 */
        {0.2f, 9, 0.1f, 9, 0.3f, 9},    /* u1: test i4 at rank 1 */
        {9, 0.3f, 9, 0.2f, 0.1f, 9},    /* u2: test i5 is cold: a miss */
        {0.3f, 0.2f, 0.1f, 0.4f, 9, 9}, /* u3: test i3 at rank 1 */
    };
    model_als als = {.n_users = 4,
                     .n_items = 6,
                     .factors = 6,
                     .user_factors = &users[0][0],
                     .item_factors = items};
    const uint32_t ks[] = {1, 3};
    model_eval_result r;
    assert_int_equal(model_eval_run(&s, model_score_als, &als, ks, 2, 2, &r, err, sizeof(err)), 0);
    assert_int_equal(r.users, 4);
    assert_int_equal(r.n_k, 2);
    assert_float_equal(r.at[0].hr, 2.0 / 4, EPS);
    assert_float_equal(r.at[1].hr, 3.0 / 4, EPS);
    assert_float_equal(r.at[1].precision, (3.0 / 3) / 4, EPS);
    assert_float_equal(r.at[1].ndcg, (1 + 1 + 1 / log2(4)) / 4, EPS);
    assert_float_equal(r.at[1].map, (1 + 1 + 1.0 / 3) / 4, EPS);
    /* top-1 lists: u0 i3, u1 i4, u2 i1, u3 i3 -> 3 of the 5 warm items. */
    assert_float_equal(r.at[0].coverage, 3.0 / 5, EPS);
    model_split_free(&s);
    model_dataset_free(ds);
}

static model_dataset *synth_log(uint32_t n, uint32_t users, uint32_t items, uint64_t seed) {
    model_synth_params p;
    model_synth_params_default(&p);
    p.users = users;
    p.items = items;
    p.clusters = 20;
    p.seed = seed;
    p.expected_events = n;
    model_synth *g = model_synth_new(&p);
    model_dataset *ds = model_dataset_new();
    codec_event ev;
    for (uint32_t i = 0; i < n; i++) {
        model_synth_next(g, &ev);
        model_dataset_add(ds, &ev);
    }
    model_synth_free(g);
    return ds;
}

static void test_popularity_threads_agree(void **state) {
    model_dataset *ds = synth_log(30000, 1500, 800, 3);
    model_split s;
    char err[256];
    assert_int_equal(model_split_leave_last_out(ds, 2, &s, err, sizeof(err)), 0);
    assert_true(s.test_users > 500);
    float tw[CODEC_EVENT_TYPES] = {1, 0.5f, 3};
    float *pop = malloc(s.n_items * sizeof(float));
    model_eval_popularity(&s.train, tw, s.n_items, pop);
    const uint32_t ks[] = {5, 10, 20};
    model_eval_result one, two;
    assert_int_equal(model_eval_run(&s, model_score_static, pop, ks, 3, 1, &one, err, 256), 0);
    assert_int_equal(model_eval_run(&s, model_score_static, pop, ks, 3, 2, &two, err, 256), 0);
    assert_int_equal(one.users, s.test_users);
    assert_memory_equal(one.at, two.at, sizeof(one.at));
    for (int q = 0; q < 3; q++) {
        const model_eval_metrics *m = &one.at[q];
        assert_true(m->hr > 0 && m->hr <= 1);
        assert_true(m->precision <= m->hr && m->ndcg <= m->hr && m->map <= m->hr);
        assert_true(m->coverage > 0 && m->coverage <= 1);
        if (q) assert_true(m->hr >= one.at[q - 1].hr && m->coverage >= one.at[q - 1].coverage);
    }
    free(pop);
    model_split_free(&s);
    model_dataset_free(ds);
}

/* 2,000 users against 20,000 items with 64 factors: a fifth of the brief's
 * 10k x 20k case, which must take seconds, so this must take about one. */
static void test_rank_speed(void **state) {
    const uint32_t U = 2000, I = 20000, F = 64;
    model_dataset *ds = model_dataset_new();
    char u[16], it[16];
    for (uint32_t i = 0; i < I; i++) { /* every item warm */
        snprintf(u, sizeof(u), "u%u", i % U);
        snprintf(it, sizeof(it), "i%u", i);
        add(ds, u, it, i);
    }
    for (uint32_t x = 0; x < U; x++) {
        snprintf(u, sizeof(u), "u%u", x);
        snprintf(it, sizeof(it), "i%u", (x * 7919u) % I);
        add(ds, u, it, I + x);
    }
    model_split s;
    char err[256];
    assert_int_equal(model_split_leave_last_out(ds, 1, &s, err, sizeof(err)), 0);
    float *uf = malloc((size_t)U * F * sizeof(float)), *itf = malloc((size_t)I * F * sizeof(float));
    uint64_t x = 1;
    for (size_t i = 0; i < (size_t)U * F; i++)
        uf[i] = (float)((x = x * 6364136223846793005ULL + 1) >> 40) / (1 << 24);
    for (size_t i = 0; i < (size_t)I * F; i++)
        itf[i] = (float)((x = x * 6364136223846793005ULL + 1) >> 40) / (1 << 24);
    model_als als = {
        .n_users = U, .n_items = I, .factors = F, .user_factors = uf, .item_factors = itf};
    const uint32_t ks[] = {5, 10, 20};
    model_eval_result r;
    assert_int_equal(model_eval_run(&s, model_score_als, &als, ks, 3, 0, &r, err, 256), 0);
    assert_true(r.users > 1900);
    printf("# ranked %u users x %u items in %.2f s\n", r.users, I, r.seconds);
    assert_true(r.seconds < 8.0);
    free(uf);
    free(itf);
    model_split_free(&s);
    model_dataset_free(ds);
}

/* ==== ALS against popularity on clustered synthetic data ==== */

static void test_als_beats_popularity(void **state) {
    model_dataset *ds = synth_log(60000, 2000, 1000, 11);
    model_split s;
    char err[256];
    assert_int_equal(model_split_leave_last_out(ds, 1, &s, err, sizeof(err)), 0);
    model_als_params p;
    model_als_params_default(&p);
    p.factors = 32;
    p.iterations = 8;
    model_als als;
    assert_int_equal(model_als_train(&s.train, &p, NULL, NULL, &als, err, sizeof(err)), 0);
    const uint32_t ks[] = {10};
    model_eval_result ra, rp;
    assert_int_equal(model_eval_run(&s, model_score_als, &als, ks, 1, 0, &ra, err, 256), 0);
    float *pop = malloc(s.n_items * sizeof(float));
    model_eval_popularity(&s.train, p.type_weight, s.n_items, pop);
    assert_int_equal(model_eval_run(&s, model_score_static, pop, ks, 1, 0, &rp, err, 256), 0);
    printf("# HR@10 ALS %.4f popularity %.4f (%u users)\n", ra.at[0].hr, rp.at[0].hr, ra.users);
    assert_true(ra.at[0].hr > 2 * rp.at[0].hr); /* about 0.40 against 0.16 */
    assert_true(ra.at[0].coverage > rp.at[0].coverage);
    free(pop);
    model_als_free(&als);
    model_split_free(&s);
    model_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_metrics),
        cmocka_unit_test(test_list_metrics_edges),
        cmocka_unit_test(test_split_leave_last_out),
        cmocka_unit_test(test_split_time),
        cmocka_unit_test(test_rank_hand_factors),
        cmocka_unit_test(test_popularity_threads_agree),
        cmocka_unit_test(test_rank_speed),
        cmocka_unit_test(test_als_beats_popularity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
