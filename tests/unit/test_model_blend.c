/* Blending: each strategy's order, duplicates dropped, popular fill so that
 * nobody gets an empty list, and the source carried by every item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"

static const char *on_ids[] = {"a", "b", "c"};
static const float on_sc[] = {3, 2, 1};
static const char *off_ids[] = {"x", "b", "y"};
static const float off_sc[] = {.9f, .8f, .7f};
static const char *pop_ids[] = {"p", "a", "q", "r", "s"};
static const float pop_sc[] = {50, 40, 30, 20, 10};

static void sources(model_candidates src[CODEC_SOURCES], int on, int off) {
    src[CODEC_SOURCE_ONLINE] = (model_candidates){on_ids, on_sc, on ? 3 : 0};
    src[CODEC_SOURCE_OFFLINE] = (model_candidates){off_ids, off_sc, off ? 3 : 0};
    src[CODEC_SOURCE_POPULAR] = (model_candidates){pop_ids, pop_sc, 5};
}

/* "a:O b:F" style picture of a list, O online, F offline, P popular. */
static const char *picture(const codec_rec_item *it, size_t n) {
    static char buf[256];
    size_t p = 0;
    for (size_t i = 0; i < n; i++)
        p += (size_t)snprintf(buf + p, sizeof(buf) - p, "%s%s:%c", i ? " " : "", it[i].item_id,
                              "OFP"[it[i].source]);
    buf[p] = 0;
    return buf;
}

static size_t blend(model_blend_strategy s, int on, int off, uint32_t n, codec_rec_item *out) {
    model_blend_params p;
    model_blend_params_default(&p);
    p.strategy = s;
    p.n = n;
    model_candidates src[CODEC_SOURCES];
    sources(src, on, off);
    return model_blend(&p, src, out);
}

static void test_interleave(void **st) {
    (void)st;
    codec_rec_item out[20];
    size_t n = blend(MODEL_BLEND_INTERLEAVE, 1, 1, 8, out);
    assert_string_equal(picture(out, n), "a:O x:F b:O c:O y:F p:P q:P r:P");
}

static void test_single_sources_fill_with_popular(void **st) {
    (void)st;
    codec_rec_item out[20];
    size_t n = blend(MODEL_BLEND_ONLINE, 1, 1, 5, out);
    assert_string_equal(picture(out, n), "a:O b:O c:O p:P q:P");
    n = blend(MODEL_BLEND_OFFLINE, 1, 1, 4, out);
    assert_string_equal(picture(out, n), "x:F b:F y:F p:P");
    n = blend(MODEL_BLEND_POPULAR, 1, 1, 3, out);
    assert_string_equal(picture(out, n), "p:P a:P q:P");
}

static void test_nobody_gets_nothing(void **st) {
    (void)st;
    codec_rec_item out[20];
    for (int s = MODEL_BLEND_INTERLEAVE; s <= MODEL_BLEND_RERANK; s++) {
        size_t n = blend((model_blend_strategy)s, 0, 0, 3, out);
        assert_int_equal(n, 3);
        assert_int_equal(out[0].source, CODEC_SOURCE_POPULAR);
    }
    /* Asking for more than exists gives everything once. */
    assert_int_equal(blend(MODEL_BLEND_INTERLEAVE, 1, 1, 20, out), 9); /* a..c, x, y, p, q, r, s */
}

static void test_weighted(void **st) {
    (void)st;
    model_blend_params p;
    model_blend_params_default(&p);
    p.strategy = MODEL_BLEND_WEIGHTED;
    p.n = 4;
    p.weight[CODEC_SOURCE_POPULAR] = 0.1f;
    model_candidates src[CODEC_SOURCES];
    sources(src, 1, 1);
    codec_rec_item out[20];
    size_t n = model_blend(&p, src, out);
    /* a = 1 + .1/2, b = 1/2 + 1/2 (kept online: it came first), x = 1, c = 1/3 */
    assert_string_equal(picture(out, n), "a:O b:O x:F c:O");
    p.weight[CODEC_SOURCE_ONLINE] = 0.1f; /* offline dominates now */
    n = model_blend(&p, src, out);
    assert_string_equal(out[0].item_id, "x");
    assert_int_equal(out[0].source, CODEC_SOURCE_OFFLINE);
}

static float by_name(const char *id, void *opaque) {
    (void)opaque;
    return (float)id[0]; /* later letters rank higher */
}

static void test_rerank(void **st) {
    (void)st;
    model_blend_params p;
    model_blend_params_default(&p);
    p.strategy = MODEL_BLEND_RERANK;
    p.n = 3;
    p.rerank = by_name;
    model_candidates src[CODEC_SOURCES];
    sources(src, 1, 1);
    codec_rec_item out[20];
    size_t n = model_blend(&p, src, out);
    assert_string_equal(picture(out, n), "y:F x:F s:P");
}

static float known_ab(const char *id, void *opaque) {
    (void)opaque;
    return !strcmp(id, "a") ? 1.0f : !strcmp(id, "b") ? 0.0f : -1e30f; /* others unknown */
}

/* Items the model does not know are ranked last and must not move the
 * scale of the others: the z-scores are over the known items only. With
 * mix 4.5, b (rank merge 1, z -1) beats a (rank merge 0.5, z +1); counting
 * the 4 unknown items in the moments made a's z 2.24 and put it first. */
static void test_rerank_unknown_items_keep_the_scale(void **st) {
    (void)st;
    static const char *on[] = {"b", "a"}, *pop[] = {"u1", "u2", "u3", "u4"};
    static const float on_s[] = {2, 1}, pop_s[] = {4, 3, 2, 1};
    model_candidates src[CODEC_SOURCES] = {{on, on_s, 2}, {NULL, NULL, 0}, {pop, pop_s, 0}};
    model_blend_params p;
    model_blend_params_default(&p);
    p.strategy = MODEL_BLEND_RERANK;
    p.n = 2;
    p.rerank = known_ab;
    p.rerank_mix = 4.5f;
    codec_rec_item out[20];
    size_t n = model_blend(&p, src, out);
    assert_string_equal(picture(out, n), "b:O a:O");
    src[CODEC_SOURCE_POPULAR].n = 4;
    n = model_blend(&p, src, out);
    assert_string_equal(picture(out, n), "b:O a:O");
}

static void test_parse(void **st) {
    (void)st;
    assert_int_equal(model_blend_strategy_parse("Interleave"), MODEL_BLEND_INTERLEAVE);
    assert_int_equal(model_blend_strategy_parse("rerank"), MODEL_BLEND_RERANK);
    assert_int_equal(model_blend_strategy_parse("best"), -1);
    assert_string_equal(model_blend_strategy_name(MODEL_BLEND_OFFLINE), "offline");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleave),
        cmocka_unit_test(test_single_sources_fill_with_popular),
        cmocka_unit_test(test_nobody_gets_nothing),
        cmocka_unit_test(test_weighted),
        cmocka_unit_test(test_rerank),
        cmocka_unit_test(test_rerank_unknown_items_keep_the_scale),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
