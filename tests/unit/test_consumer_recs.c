/* One user's list (run_recs_compute): never empty, history items left out,
 * sources marked, versions and times in the encoded record, and the list
 * remembered in the user's state as the one published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "reload.h"
#include "run_int.h"
#include "test_consumer_fixture.h"

typedef struct world {
    char dir[512], path[600], version[64];
    reload *rl;
    reload_view v;
    run_config cfg;
    run_recs r;
} world;

static int setup(void **st) {
    static world w;
    char err[512];
    fx_dir(w.dir, sizeof(w.dir), "consumer-recs");
    snprintf(w.path, sizeof(w.path), "%s/model.bin", w.dir);
    fx_model(w.path, 40, 11, w.version);
    w.rl = reload_start(w.path, NULL, 0, NULL, err, sizeof(err));
    if (!w.rl) return fprintf(stderr, "%s\n", err), -1;
    reload_acquire(w.rl, &w.v);
    run_config_default(&w.cfg);
    w.cfg.blend.n = 10;
    run_recs_init(&w.r);
    *st = &w;
    return 0;
}

static int teardown(void **st) {
    world *w = *st;
    run_recs_free(&w->r);
    reload_release(w->rl, &w->v);
    reload_stop(w->rl);
    return 0;
}

static const codec_recs *compute(world *w, state_user *u, const char *user, int64_t trigger,
                                 codec_recs_owned **owned) {
    char err[256], detail[256];
    assert_int_equal(run_recs_compute(&w->r, &w->cfg, &w->cfg.blend, "armA", &w->v, user, u,
                                      trigger, err, sizeof(err)),
                     0);
    assert_int_equal(codec_decode_recs(w->r.buf.data, w->r.buf.len, owned, detail, sizeof(detail)),
                     CODEC_OK);
    return codec_recs_view(*owned);
}

static void test_empty_user_gets_popular(void **st) {
    world *w = *st;
    state_user *u = state_user_new();
    codec_recs_owned *o;
    const codec_recs *r = compute(w, u, "nobody", 1700000000000LL, &o);
    assert_true(r->n_items > 0);
    for (size_t i = 0; i < r->n_items; i++)
        assert_int_equal(r->items[i].source, CODEC_SOURCE_POPULAR);
    assert_string_equal(r->user_id, "nobody");
    assert_string_equal(r->model_version, w->version);
    assert_string_equal(r->offline_version, "none");
    assert_string_equal(r->variant, "armA");
    codec_recs_free(o);
    /* the Avro forms carry the same record */
    w->cfg.output_format = CODEC_FORMAT_AVRO_FRAMED;
    w->cfg.schema_id = 42;
    r = compute(w, u, "nobody", 1700000000000LL, &o);
    assert_int_equal((unsigned char)w->r.buf.data[0], 0);
    assert_true(r->n_items > 0);
    assert_string_equal(r->model_version, w->version);
    codec_recs_free(o);
    w->cfg.output_format = CODEC_FORMAT_JSON;
    state_user_free(u);
}

static void test_history_items_left_out(void **st) {
    world *w = *st;
    state_user *u = state_user_new();
    const char *items[] = {"i1", "i2", "i3", "unknown-item"};
    for (int i = 0; i < 4; i++)
        state_user_push_event(u, items[i], strlen(items[i]), CODEC_EVENT_LISTEN,
                              1700000000000LL + i, -1.0f, 50, NULL);
    codec_recs_owned *o;
    const codec_recs *r = compute(w, u, "alice", 1700000000003LL, &o);
    assert_int_equal(r->n_items, 10);
    int online = 0;
    for (size_t i = 0; i < r->n_items; i++) {
        for (int k = 0; k < 4; k++) assert_string_not_equal(r->items[i].item_id, items[k]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(r->items[i].item_id, r->items[j].item_id);
        online += r->items[i].source == CODEC_SOURCE_ONLINE;
    }
    assert_true(online > 0);
    assert_int_equal(r->trigger_ts, 1700000000003LL);
    assert_true(r->generated_ts >= util_now_ms() - 60000);
    /* remembered as published, in order */
    assert_int_equal(u->n_published, r->n_items);
    for (size_t i = 0; i < r->n_items; i++) {
        const state_pub *p = &u->published[i];
        assert_int_equal(p->item_len, strlen(r->items[i].item_id));
        assert_memory_equal(state_user_pub_item(u, p), r->items[i].item_id, p->item_len);
        assert_int_equal(p->source, r->items[i].source);
    }
    const codec_rec_item *prev;
    assert_int_equal(run_recs_published(&w->r, u, &prev), r->n_items);
    assert_string_equal(prev[0].item_id, r->items[0].item_id);
    assert_string_equal(u->variant, "armA");
    codec_recs_free(o);

    /* --include-seen lets history items back among online candidates */
    w->cfg.online.include_seen = 1;
    state_user_push_event(u, "i1", 2, CODEC_EVENT_LIKE, 1700000000009LL, -1.0f, 50, NULL);
    r = compute(w, u, "alice", 1700000000009LL, &o);
    assert_true(r->n_items > 0);
    w->cfg.online.include_seen = 0;
    codec_recs_free(o);
    state_user_free(u);
}

/* The popular list skips the window's items too (asked by model index):
 * a user who listened to the five most popular items is offered the next
 * ones, in the model's order. */
static void test_popular_skips_history(void **st) {
    world *w = *st;
    const model *m = w->v.model;
    assert_true(m->n_popular >= 10);
    state_user *u = state_user_new();
    for (uint32_t i = 0; i < 5; i++) {
        const char *id = model_ids_name(m->items, m->popular[i]);
        state_user_push_event(u, id, strlen(id), CODEC_EVENT_VIEW, 1700000000000LL + i, -1.0f, 50,
                              NULL);
    }
    model_blend_strategy was = w->cfg.blend.strategy;
    w->cfg.blend.strategy = MODEL_BLEND_POPULAR;
    codec_recs_owned *o;
    const codec_recs *r = compute(w, u, "carol", 1700000000004LL, &o);
    assert_true(r->n_items >= 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(r->items[i].item_id, model_ids_name(m->items, m->popular[5 + i]));
    codec_recs_free(o);
    w->cfg.blend.strategy = was;
    state_user_free(u);
}

/* --blend rerank: candidates ordered by the folded-in user vector. */
static void test_rerank(void **st) {
    world *w = *st;
    state_user *u = state_user_new();
    const char *items[] = {"i4", "i5", "i6"};
    for (int i = 0; i < 3; i++)
        state_user_push_event(u, items[i], 2, CODEC_EVENT_LIKE, 1700000000000LL + i, -1.0f, 50,
                              NULL);
    model_blend_params bp = w->cfg.blend;
    bp.strategy = MODEL_BLEND_RERANK;
    char err[256], detail[256];
    assert_int_equal(run_recs_compute(&w->r, &w->cfg, &bp, "rr", &w->v, "bob", u, 1700000000002LL,
                                      err, sizeof(err)),
                     0);
    codec_recs_owned *o;
    assert_int_equal(codec_decode_recs(w->r.buf.data, w->r.buf.len, &o, detail, sizeof(detail)),
                     CODEC_OK);
    const codec_recs *r = codec_recs_view(o);
    assert_int_equal(r->n_items, 10);
    /* the scores are the user vector's dot products, best first */
    float vec[64];
    uint32_t idx[3];
    float conf[3];
    for (int i = 0; i < 3; i++) {
        idx[i] = model_item_index(w->v.model, items[i]);
        conf[i] = 1.0f + w->v.model->alpha * w->cfg.online.type_weight[CODEC_EVENT_LIKE];
    }
    assert_true(w->v.model->factors <= 64);
    assert_int_equal(model_foldin(w->v.model, idx, conf, 3, vec), 0);
    for (size_t i = 0; i < r->n_items; i++) {
        uint32_t j = model_item_index(w->v.model, r->items[i].item_id);
        float want = model_dot(w->v.model, vec, j);
        assert_true(r->items[i].score > want - 1e-3f && r->items[i].score < want + 1e-3f);
        if (i) assert_true(r->items[i].score <= r->items[i - 1].score + 1e-6f);
    }
    codec_recs_free(o);
    state_user_free(u);
}

/* The steps the replay calls: run_recs_foldin between two blends leaves the
 * sources alone (it once overwrote the online list it shares buffers with),
 * and its list is the fold-in ranking, window items left out. */
static void test_steps_keep_sources(void **st) {
    world *w = *st;
    state_user *u = state_user_new();
    const char *items[] = {"i4", "i5", "i6", "i7"};
    for (int i = 0; i < 4; i++)
        state_user_push_event(u, items[i], 2, CODEC_EVENT_LIKE, 1700000000000LL + i, -1.0f, 50,
                              NULL);
    model_blend_params bp = w->cfg.blend;
    bp.strategy = MODEL_BLEND_ONLINE;
    run_recs_sources(&w->r, &w->cfg, &w->v, "carol", u, 1700000000004LL, bp.n, NULL);
    size_t n1 = run_recs_blend(&w->r, &w->cfg, &bp, &w->v, u);
    char before[10][16];
    for (size_t i = 0; i < n1; i++) snprintf(before[i], 16, "%s", w->r.items[i].item_id);
    size_t nf = run_recs_foldin(&w->r, &w->cfg, &w->v, u, bp.n);
    assert_int_equal(nf, bp.n);
    for (size_t i = 0; i < nf; i++)
        for (int j = 0; j < 4; j++) assert_string_not_equal(w->r.items[i].item_id, items[j]);
    size_t n2 = run_recs_blend(&w->r, &w->cfg, &bp, &w->v, u);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n2; i++) assert_string_equal(before[i], w->r.items[i].item_id);
    state_user_free(u);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_user_gets_popular),
        cmocka_unit_test(test_history_items_left_out),
        cmocka_unit_test(test_popular_skips_history),
        cmocka_unit_test(test_rerank),
        cmocka_unit_test(test_steps_keep_sources),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
