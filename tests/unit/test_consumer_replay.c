/* run_replay (`eval --replay`'s engine) on a small synthetic log with
 * drifting users and late arrivals: the counts add up, metrics are shares
 * that grow with k, the results do not depend on the number of threads, a
 * variant configured like a built-in strategy scores exactly like it, new
 * users are scored (on popular items) and the online sources beat chance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "run_replay.h"

typedef struct world {
    model_dataset *ds;
    size_t first;
    model *m;
    reload_view v;
    run_config cfg;
} world;

/* The first part with its own id tables, as the command trains. */
static model_dataset *head_of(const model_dataset *ds, size_t first) {
    model_dataset *t = model_dataset_new();
    for (size_t i = 0; i < first; i++) {
        const model_interaction *r = &ds->rows[i];
        codec_event e = {0};
        const char *u = model_ids_name(ds->users, r->user),
                   *it = model_ids_name(ds->items, r->item);
        e.user_len = (uint16_t)snprintf(e.user_id, sizeof(e.user_id), "%s", u);
        e.item_len = (uint16_t)snprintf(e.item_id, sizeof(e.item_id), "%s", it);
        e.type = (codec_event_type)r->type;
        e.ts_ms = r->ts_ms;
        model_dataset_add(t, &e);
    }
    return t;
}

static int setup(void **st) {
    static world w;
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.users = 300, sp.items = 150, sp.clusters = 5, sp.drift = 0.2, sp.expected_events = 12000;
    model_synth *g = model_synth_new(&sp);
    w.ds = model_dataset_new();
    codec_event ev;
    for (int i = 0; i < 12000; i++) model_synth_next(g, &ev), model_dataset_add(w.ds, &ev);
    model_synth_free(g);
    model_dataset_sort_by_time(w.ds);
    w.first = 9000;
    model_dataset *train = head_of(w.ds, w.first);
    model_als_params ap;
    model_als_params_default(&ap);
    ap.factors = 8, ap.iterations = 5, ap.threads = 1;
    model_als als;
    char err[256];
    if (model_als_train(train, &ap, NULL, NULL, &als, err, sizeof(err)) ||
        model_build(train, &als, &ap, 20, 50, 0, &w.m, err, sizeof(err)))
        return fprintf(stderr, "%s\n", err), -1;
    model_als_free(&als);
    model_dataset_free(train);
    w.v = (reload_view){w.m, NULL, w.m->version, "none", {0}};
    run_config_default(&w.cfg);
    w.cfg.history = 20;
    w.cfg.online.k = 20;
    *st = &w;
    return 0;
}

static int teardown(void **st) {
    world *w = *st;
    model_free(w->m);
    model_dataset_free(w->ds);
    return 0;
}

static void replay(world *w, run_replay_params *p, run_replay_result *res) {
    char err[256];
    assert_int_equal(run_replay(p, &w->v, w->ds, w->first, res, err, sizeof(err)), 0);
}

static const run_replay_row *row(const run_replay_result *r, const char *name) {
    for (size_t s = 0; s < r->n_rows; s++)
        if (!strcmp(r->rows[s].name, name)) return &r->rows[s];
    fail_msg("no row %s", name);
    return NULL;
}

static void test_counts_and_ranges(void **st) {
    world *w = *st;
    static run_replay_params p;
    run_replay_params_default(&p, &w->cfg);
    static run_replay_result r;
    replay(w, &p, &r);
    assert_int_equal(r.trained, w->first);
    assert_int_equal(r.replayed, w->ds->n - w->first);
    assert_int_equal(r.scored + r.repeats, r.replayed);
    assert_true(r.scored > 0 && r.cold_users > 0);
    assert_int_equal(r.n_rows, 9);
    assert_int_equal(r.n_k, 3);
    for (size_t s = 0; s < r.n_rows; s++)
        for (uint32_t q = 0; q < r.n_k; q++) {
            const run_replay_row *x = &r.rows[s];
            assert_true(x->hr[q] >= 0 && x->hr[q] <= 1);
            assert_true(x->ndcg[q] >= 0 && x->ndcg[q] <= x->hr[q] + 1e-12);
            assert_true(x->coverage[q] >= 0 && x->coverage[q] <= 1);
            if (q) {
                assert_true(x->hr[q] >= x->hr[q - 1]);
                assert_true(x->coverage[q] >= x->coverage[q - 1]);
            }
        }
    /* every strategy's list is full, so all have hits; the item-based ones
     * beat a random list of 10 of 150 items */
    assert_true(row(&r, "popular")->hr[1] > 0);
    assert_true(row(&r, "online")->hr[1] > 10.0 / 150);
    assert_true(row(&r, "foldin")->hr[1] > 10.0 / 150);
    assert_true(r.events_per_s > 0);
}

/* The thread split changes who computes, never what. */
static void test_threads_do_not_change_results(void **st) {
    world *w = *st;
    static run_replay_params p;
    static run_replay_result one, three;
    run_replay_params_default(&p, &w->cfg);
    p.popular_half_life_ms = 3600000;
    p.threads = 1;
    replay(w, &p, &one);
    p.threads = 3;
    replay(w, &p, &three);
    assert_int_equal(three.threads, 3);
    assert_int_equal(one.scored, three.scored);
    assert_int_equal(one.repeats, three.repeats);
    assert_memory_equal(one.rows, three.rows, sizeof(one.rows));
    assert_memory_equal(one.bandit_weights, three.bandit_weights, sizeof(one.bandit_weights));
}

/* A variant configured as the built-in interleave gets the same row; the
 * model's popular list differs from the live one. */
static void test_variant_and_popular_source(void **st) {
    world *w = *st;
    static run_replay_params p;
    static run_replay_result r, rm;
    run_replay_params_default(&p, &w->cfg);
    model_blend_params b;
    model_blend_params_default(&b);
    assert_int_equal(run_replay_add(&p, "variant:copy", RUN_REPLAY_BLEND, &b), 0);
    replay(w, &p, &r);
    const run_replay_row *a = row(&r, "interleave"), *c = row(&r, "variant:copy");
    assert_memory_equal(a->hr, c->hr, sizeof(a->hr));
    assert_memory_equal(a->coverage, c->coverage, sizeof(a->coverage));
    p.popular_model = 1;
    replay(w, &p, &rm);
    assert_int_equal(rm.scored, r.scored);
    assert_memory_equal(row(&rm, "online")->hr, row(&r, "online")->hr, sizeof(a->hr));
    const run_replay_row *pl = row(&r, "popular"), *pm = row(&rm, "popular");
    assert_true(memcmp(pl->hr, pm->hr, sizeof(pl->hr)) ||
                memcmp(pl->coverage, pm->coverage, sizeof(pl->coverage)));
    /* bad parameters are refused with a reason */
    p.ks[p.n_k - 1] = 300;
    char err[256] = "";
    assert_int_equal(run_replay(&p, &w->v, w->ds, w->first, &r, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_ranges),
        cmocka_unit_test(test_threads_do_not_change_results),
        cmocka_unit_test(test_variant_and_popular_source),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
