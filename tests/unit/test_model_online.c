/* The online scorer: the incremental accumulator (add each event, subtract
 * the one that leaves the window) must rank exactly as a recompute of the
 * formula over the window, over many random histories; plus decay, type
 * weights, seen-item exclusion and rebasing across many half-lives. The
 * whole-window rebuild (repeated items merged) must rank alike too. */
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

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* A model with only what the scorer reads: k random distinct neighbours per
 * item (never itself), similarities in [-0.2, 1), some short rows. */
static model *random_model(uint32_t n_items, uint32_t k) {
    model *m = util_calloc(1, sizeof(*m));
    m->n_items = n_items;
    m->k = k;
    m->items = model_ids_new();
    m->nbr_idx = util_malloc((size_t)n_items * k * sizeof(uint32_t));
    m->nbr_sim = util_malloc((size_t)n_items * k * sizeof(float));
    for (uint32_t i = 0; i < n_items; i++) {
        char name[16];
        model_ids_intern(m->items, name, (size_t)snprintf(name, sizeof(name), "i%u", i));
        uint32_t filled = rnd(5) ? k : rnd(k);
        for (uint32_t j = 0; j < k; j++) {
            uint32_t *row = m->nbr_idx + (size_t)i * k;
            if (j >= filled) {
                row[j] = MODEL_NONE, m->nbr_sim[(size_t)i * k + j] = 0;
                continue;
            }
            uint32_t c;
            int dup;
            do {
                c = rnd(n_items);
                dup = c == i;
                for (uint32_t q = 0; q < j; q++) dup |= row[q] == c;
            } while (dup);
            row[j] = c;
            m->nbr_sim[(size_t)i * k + j] = (float)rnd(1200) / 1000.0f - 0.2f;
        }
    }
    return m;
}

typedef struct ev {
    uint32_t item;
    codec_event_type type;
    float weight;
    int64_t ts;
} ev;

static void params(model_online_params *p, uint32_t k, int64_t half_life) {
    model_online_params_default(p);
    p->k = k;
    p->half_life_ms = half_life;
}

/* Same items in the same order, except that neighbours whose scores agree
 * to 1e-6 may trade places. */
static void assert_same_ranking(const uint32_t *a, const float *sa, size_t na, const uint32_t *b,
                                const float *sb, size_t nb) {
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        double tol = 1e-6 * fmax(fabs(sa[i]), fabs(sb[i])) + 1e-30;
        assert_true(fabs(sa[i] - sb[i]) <= tol);
        if (a[i] == b[i]) continue;
        int found = 0; /* a tie: b's item must sit nearby with the same score */
        for (size_t j = 0; j < nb; j++)
            if (b[j] == a[i]) found = fabs(sb[j] - sa[i]) <= tol;
        assert_true(found);
    }
}

static void recompute(model_online *acc, const model *m, const model_online_params *p,
                      const ev *win, size_t n) {
    model_online_reset(acc);
    for (size_t i = 0; i < n; i++)
        model_online_add(acc, m, p, win[i].item, win[i].type, win[i].weight, win[i].ts, +1);
}

static void one_history(const model *m, uint32_t H, int64_t half_life, int wide_gaps) {
    model_online_params p;
    params(&p, 1 + rnd(m->k), half_life);
    p.include_seen = rnd(2);
    model_online *inc = model_online_new(), *ref = model_online_new(), *reb = model_online_new();
    model_online_event wev[64];
    ev win[64];
    size_t n = 0;
    int64_t ts = 1700000000000LL;
    uint32_t top_a[30], top_b[30], ex[64];
    float sc_a[30], sc_b[30];
    for (int step = 0; step < 120; step++) {
        ts += wide_gaps && !rnd(10) ? (int64_t)rnd(400) * half_life : rnd((uint32_t)half_life * 3);
        ev e = {rnd(m->n_items), (codec_event_type)rnd(3), rnd(4) ? -1.0f : (float)rnd(5), ts};
        if (n == H) { /* the oldest leaves the window */
            model_online_add(inc, m, &p, win[0].item, win[0].type, win[0].weight, win[0].ts, -1);
            memmove(win, win + 1, (n - 1) * sizeof(*win));
            n--;
        }
        win[n++] = e;
        model_online_add(inc, m, &p, e.item, e.type, e.weight, e.ts, +1);
        recompute(ref, m, &p, win, n);
        for (size_t i = 0; i < n; i++) ex[i] = win[i].item;
        size_t want = 1 + rnd(30);
        size_t na = model_online_top(inc, &p, ts, ex, n, want, top_a, sc_a);
        size_t nb = model_online_top(ref, &p, ts, ex, n, want, top_b, sc_b);
        assert_same_ranking(top_a, sc_a, na, top_b, sc_b, nb);
        /* the window rebuilt at once, its repeated items merged */
        for (size_t i = 0; i < n; i++)
            wev[i] = (model_online_event){win[i].item, win[i].type, win[i].weight, win[i].ts};
        model_online_rebuild(reb, m, &p, wev, n);
        na = model_online_top(reb, &p, ts, ex, n, want, top_a, sc_a);
        assert_same_ranking(top_a, sc_a, na, top_b, sc_b, nb);
        for (size_t i = 0; i < na && !p.include_seen; i++)
            for (size_t j = 0; j < n; j++) assert_int_not_equal(top_a[i], win[j].item);
    }
    model_online_free(inc);
    model_online_free(ref);
    model_online_free(reb);
}

static void test_incremental_equals_recompute(void **st) {
    (void)st;
    model *m = random_model(300, 12);
    for (int h = 0; h < 150; h++) one_history(m, 1 + rnd(20), 3600000, 0);
    model_free(m);
}

/* Few items, long windows: most windows repeat items, which the rebuild
 * merges before spreading them. */
static void test_rebuild_merges_repeated_items(void **st) {
    (void)st;
    model *m = random_model(25, 10);
    for (int h = 0; h < 80; h++) one_history(m, 10 + rnd(40), 3600000, 0);
    model_free(m);
}

static void test_rebase_over_many_half_lives(void **st) {
    (void)st;
    model *m = random_model(100, 8);
    for (int h = 0; h < 60; h++) one_history(m, 2 + rnd(10), 1000, 1);
    model_free(m);
}

/* A hand-made graph where the answer is known. */
static model *line_model(void) {
    model *m = random_model(4, 2);
    uint32_t idx[] = {1, 2, 0, 3, 0, 3, 1, 2}; /* 0:{1,2} 1:{0,3} 2:{0,3} 3:{1,2} */
    float sim[] = {0.9f, 0.5f, 0.9f, 0.4f, 0.5f, 0.8f, 0.4f, 0.8f};
    memcpy(m->nbr_idx, idx, sizeof(idx));
    memcpy(m->nbr_sim, sim, sizeof(sim));
    return m;
}

static void test_formula_values(void **st) {
    (void)st;
    model *m = line_model();
    model_online_params p;
    params(&p, 2, 1000);
    model_online *acc = model_online_new();
    /* LISTEN (w 1) on item 0 at t=0; LIKE (w 3) on item 3 at t=1000. */
    model_online_add(acc, m, &p, 0, CODEC_EVENT_LISTEN, -1, 0, +1);
    model_online_add(acc, m, &p, 3, CODEC_EVENT_LIKE, -1, 1000, +1);
    uint32_t items[4];
    float s[4];
    size_t n = model_online_top(acc, &p, 1000, NULL, 0, 4, items, s);
    /* now = 1000: item 1 = 0.5*0.9 + 3*0.4 = 1.65; item 2 = 0.5*0.5 + 3*0.8 = 2.65 */
    assert_int_equal(n, 2);
    assert_int_equal(items[0], 2);
    assert_float_equal(s[0], 2.65, 1e-5);
    assert_int_equal(items[1], 1);
    assert_float_equal(s[1], 1.65, 1e-5);
    /* One half-life later every score halves. */
    n = model_online_top(acc, &p, 2000, NULL, 0, 4, items, s);
    assert_float_equal(s[0], 1.325, 1e-5);
    /* An explicit weight replaces the type's. */
    model_online_reset(acc);
    model_online_add(acc, m, &p, 0, CODEC_EVENT_LIKE, 0.5f, 0, +1);
    n = model_online_top(acc, &p, 0, NULL, 0, 4, items, s);
    assert_int_equal(items[0], 1);
    assert_float_equal(s[0], 0.45, 1e-6);
    /* Seen items are left out unless include_seen. */
    uint32_t seen[] = {1};
    n = model_online_top(acc, &p, 0, seen, 1, 4, items, s);
    assert_int_equal(n, 1);
    assert_int_equal(items[0], 2);
    p.include_seen = 1;
    assert_int_equal(model_online_top(acc, &p, 0, seen, 1, 4, items, s), 2);
    /* Removing the only event leaves no candidate at all. */
    model_online_add(acc, m, &p, 0, CODEC_EVENT_LIKE, 0.5f, 0, -1);
    assert_int_equal(model_online_top(acc, &p, 0, NULL, 0, 4, items, s), 0);
    /* Unknown items and out-of-range types are ignored. */
    model_online_add(acc, m, &p, MODEL_NONE, CODEC_EVENT_LIKE, -1, 0, +1);
    assert_int_equal(model_online_top(acc, &p, 0, NULL, 0, 4, items, s), 0);
    model_online_free(acc);
    model_free(m);
}

static void test_older_event_weighs_less(void **st) {
    (void)st;
    model *m = line_model();
    model_online_params p;
    params(&p, 2, 1000);
    model_online *acc = model_online_new();
    /* Same weight on items 1 and 2 (both lead to 0 and 3): 2 is newer. */
    model_online_add(acc, m, &p, 0, CODEC_EVENT_LISTEN, -1, 0, +1);    /* 1: .9, 2: .5 */
    model_online_add(acc, m, &p, 3, CODEC_EVENT_LISTEN, -1, 5000, +1); /* 1: .4, 2: .8 */
    uint32_t items[4];
    float s[4];
    model_online_top(acc, &p, 5000, NULL, 0, 4, items, s);
    assert_int_equal(items[0], 2);
    model_online_free(acc);
    model_free(m);
}

/* The accumulator is sized by the first model it meets; a later, larger
 * model (a reload) must grow it and score as a fresh one does. */
static void test_grows_with_the_model(void **st) {
    (void)st;
    model *small = line_model(), *m = random_model(20000, 50);
    model_online_params p;
    params(&p, 50, 3600000);
    model_online *acc = model_online_new(), *fresh = model_online_new();
    model_online_add(acc, small, &p, 0, CODEC_EVENT_LISTEN, -1, 0, +1);
    model_online_reset(acc);
    for (uint32_t i = 0; i < 400; i++) {
        uint32_t item = rnd(20000);
        model_online_add(acc, m, &p, item, CODEC_EVENT_VIEW, -1, 1000 * i, +1);
        model_online_add(fresh, m, &p, item, CODEC_EVENT_VIEW, -1, 1000 * i, +1);
    }
    uint32_t items[300], want_items[300];
    float s[300], want_s[300];
    size_t n = model_online_top(acc, &p, 400000, NULL, 0, 300, items, s);
    assert_int_equal(n, 300);
    for (size_t i = 1; i < n; i++) assert_true(s[i - 1] >= s[i]);
    size_t want = model_online_top(fresh, &p, 400000, NULL, 0, 300, want_items, want_s);
    assert_int_equal(n, want);
    assert_memory_equal(items, want_items, n * sizeof(*items));
    model_online_free(acc);
    model_online_free(fresh);
    model_free(small);
    model_free(m);
}

typedef struct ref_cand {
    double score;
    uint32_t item;
} ref_cand;

static int ref_order(const void *a, const void *b) {
    const ref_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* Top-n against a sort of every candidate, scored here from the formula,
 * for n on both sides of where selection switches from a sorted run to a
 * heap (64), filled or not, with seen items excluded. */
static void test_top_equals_full_sort(void **st) {
    (void)st;
    const uint32_t n_items = 3000, k = 50, h = 40;
    model *m = random_model(n_items, k);
    model_online_params p;
    params(&p, k, 3600000);
    model_online *acc = model_online_new();
    double *score = util_calloc(n_items, sizeof(*score));
    ref_cand *ref = util_malloc(n_items * sizeof(*ref));
    uint32_t seen[40], items[3000];
    float s[3000];
    /* 3000: more than there are candidates, so the list never fills */
    const size_t sizes[] = {1, 2, 7, 20, 63, 64, 65, 100, 400, 3000};
    for (int round = 0; round < 20; round++) {
        model_online_reset(acc);
        memset(score, 0, n_items * sizeof(*score));
        for (uint32_t e = 0; e < h; e++) {
            seen[e] = rnd(n_items);
            int64_t ts = 1000 * (int64_t)e;
            model_online_add(acc, m, &p, seen[e], CODEC_EVENT_LISTEN, -1, ts, +1);
            double w = exp2((double)(ts - 1000 * (int64_t)(h - 1)) / (double)p.half_life_ms);
            for (uint32_t j = 0; j < k; j++) {
                uint32_t c = m->nbr_idx[(size_t)seen[e] * k + j];
                if (c != MODEL_NONE) score[c] += w * m->nbr_sim[(size_t)seen[e] * k + j];
            }
        }
        size_t n_ref = 0;
        for (uint32_t i = 0; i < n_items; i++) {
            int excluded = 0;
            for (uint32_t e = 0; e < h; e++) excluded |= seen[e] == i;
            if (score[i] > 1e-9 && !excluded) ref[n_ref++] = (ref_cand){score[i], i};
        }
        qsort(ref, n_ref, sizeof(*ref), ref_order);
        for (size_t z = 0; z < sizeof(sizes) / sizeof(*sizes); z++) {
            size_t want = sizes[z], got = model_online_top(acc, &p, 1000 * (int64_t)(h - 1), seen,
                                                           h, want, items, s);
            assert_int_equal(got, want < n_ref ? want : n_ref);
            for (size_t i = 0; i < got; i++) {
                assert_true(fabs(s[i] - ref[i].score) <= 1e-5 * fabs(ref[i].score));
                if (items[i] != ref[i].item) /* only a near tie may trade places */
                    assert_true(fabs(ref[i].score - s[i]) <= 1e-6 * fabs(s[i]));
            }
        }
    }
    free(score);
    free(ref);
    model_online_free(acc);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formula_values),
        cmocka_unit_test(test_older_event_weighs_less),
        cmocka_unit_test(test_incremental_equals_recompute),
        cmocka_unit_test(test_rebuild_merges_repeated_items),
        cmocka_unit_test(test_rebase_over_many_half_lives),
        cmocka_unit_test(test_grows_with_the_model),
        cmocka_unit_test(test_top_equals_full_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
