/* Encoding UserEvent and Recommendations in every form: round trips through
 * our decoders, byte-for-byte equality with avro-c writing the embedded
 * schemas (so the hand-written Avro cannot drift from schemas/ *.avsc), and
 * the refusals (ids over the limit, NaN scores). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_int.h"

static codec_event sample_event(int with_optionals) {
    codec_event ev;
    memset(&ev, 0, sizeof(ev));
    strcpy(ev.user_id, "user \"quoted\" \\ \xe2\x82\xac\n");
    ev.user_len = (uint16_t)strlen(ev.user_id);
    strcpy(ev.item_id, "item-42");
    ev.item_len = 7;
    ev.type = CODEC_EVENT_LIKE;
    ev.ts_ms = 1700000000123LL;
    if (with_optionals) {
        ev.has_duration = 1, ev.duration_ms = 215000;
        ev.has_weight = 1, ev.weight = 0.1f;
    }
    return ev;
}

static void assert_event_equal(const codec_event *a, const codec_event *b) {
    assert_string_equal(a->user_id, b->user_id);
    assert_int_equal(a->user_len, b->user_len);
    assert_string_equal(a->item_id, b->item_id);
    assert_int_equal(a->item_len, b->item_len);
    assert_int_equal(a->type, b->type);
    assert_true(a->ts_ms == b->ts_ms);
    assert_int_equal(a->has_duration, b->has_duration);
    if (a->has_duration) assert_true(a->duration_ms == b->duration_ms);
    assert_int_equal(a->has_weight, b->has_weight);
    if (a->has_weight) assert_true(a->weight == b->weight);
}

static void test_event_round_trip(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_buf buf = {0};
    char err[256], detail[256];
    for (int opt = 0; opt < 2; opt++)
        for (int fmt = CODEC_FORMAT_JSON; fmt <= CODEC_FORMAT_AVRO_FRAMED; fmt++) {
            codec_event ev = sample_event(opt), back;
            assert_int_equal(codec_encode_event(&ev, fmt, 77, &buf, err, sizeof(err)), 0);
            assert_int_equal(
                codec_decode_event(dec, buf.data, buf.len, &back, detail, sizeof(detail)),
                CODEC_OK);
            assert_event_equal(&ev, &back);
            if (fmt == CODEC_FORMAT_AVRO_FRAMED)
                assert_memory_equal(buf.data, "\x00\x00\x00\x00\x4d", 5);
            if (fmt == CODEC_FORMAT_JSON) assert_null(memchr(buf.data, '\n', buf.len));
        }
    codec_buf_free(&buf);
    codec_decoder_free(dec);
}

static void test_event_json_text(void **state) {
    codec_buf buf = {0};
    char err[256];
    codec_event ev = sample_event(1);
    strcpy(ev.user_id, "u1"), ev.user_len = 2;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &buf, err, sizeof(err)), 0);
    assert_int_equal(buf.len,
                     strlen("{\"user_id\":\"u1\",\"item_id\":\"item-42\",\"type\":\"LIKE\","
                            "\"ts\":1700000000123,\"duration_ms\":215000,\"weight\":0.1}"));
    assert_memory_equal(buf.data,
                        "{\"user_id\":\"u1\",\"item_id\":\"item-42\",\"type\":\"LIKE\","
                        "\"ts\":1700000000123,\"duration_ms\":215000,\"weight\":0.1}",
                        buf.len);
    codec_buf_free(&buf);
}

static void test_event_refused(void **state) {
    codec_buf buf = {0};
    char err[256] = "";
    codec_event ev = sample_event(0);
    ev.user_len = 0, ev.user_id[0] = 0;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
    ev = sample_event(0);
    ev.type = (codec_event_type)5;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &buf, err, sizeof(err)), -1);
    ev = sample_event(0);
    ev.has_weight = 1, ev.weight = NAN;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &buf, err, sizeof(err)), -1);
    ev = sample_event(0);
    ev.user_len = 300;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), -1);
    /* an id filled by strcpy without its length is taken by strlen */
    ev = sample_event(0);
    strcpy(ev.item_id, "abc"), ev.item_len = 0;
    assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), 0);
    codec_buf_free(&buf);
}

/* avro-c writing a record of the embedded schema, the reference encoder. */
static avro_value_iface_t *iface_of(const char *json, avro_schema_t *s) {
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), s), 0);
    return avro_generic_class_from_schema(*s);
}

static size_t avro_c_write(avro_value_t *v, char *out, size_t cap) {
    avro_writer_t w = avro_writer_memory(out, (int64_t)cap);
    assert_int_equal(avro_value_write(w, v), 0);
    size_t n = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    return n;
}

static void set_opt_long(avro_value_t *rec, const char *name, int has, int64_t v) {
    avro_value_t f, br;
    avro_value_get_by_name(rec, name, &f, NULL);
    avro_value_set_branch(&f, has, &br);
    if (has)
        avro_value_set_long(&br, v);
    else
        avro_value_set_null(&br);
}

static void test_event_matches_avro_c(void **state) {
    avro_schema_t s;
    avro_value_iface_t *iface = iface_of(codec_schema_user_event(), &s);
    codec_buf buf = {0};
    char err[256], ref[1024];
    for (int opt = 0; opt < 2; opt++) {
        codec_event ev = sample_event(opt);
        avro_value_t rec, f, br;
        avro_generic_value_new(iface, &rec);
        avro_value_get_by_name(&rec, "user_id", &f, NULL);
        avro_value_set_string_len(&f, ev.user_id, ev.user_len + 1u);
        avro_value_get_by_name(&rec, "item_id", &f, NULL);
        avro_value_set_string(&f, ev.item_id);
        avro_value_get_by_name(&rec, "type", &f, NULL);
        avro_value_set_enum(&f, ev.type);
        avro_value_get_by_name(&rec, "ts", &f, NULL);
        avro_value_set_long(&f, ev.ts_ms);
        set_opt_long(&rec, "duration_ms", ev.has_duration, ev.duration_ms);
        avro_value_get_by_name(&rec, "weight", &f, NULL);
        avro_value_set_branch(&f, ev.has_weight, &br);
        if (ev.has_weight)
            avro_value_set_float(&br, ev.weight);
        else
            avro_value_set_null(&br);
        size_t n = avro_c_write(&rec, ref, sizeof(ref));
        assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), 0);
        assert_int_equal(buf.len, n);
        assert_memory_equal(buf.data, ref, n);
        avro_value_decref(&rec);
    }
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    codec_buf_free(&buf);
}

/* The first id's length is carried (as the blend does), the others counted
 * by the encoder (0). */
static const codec_rec_item items[] = {
    {"song-1", 0.75f, CODEC_SOURCE_ONLINE, 6},
    {"song-\"2\"", 1e-7f, CODEC_SOURCE_OFFLINE, 0},
    {"\xe6\x97\xa5\xe6\x9c\xac", 3.0f, CODEC_SOURCE_POPULAR, 0},
};

static codec_recs sample_recs(size_t n) {
    codec_recs r = {"user-1",        items,          n, "model-3", "offline-2", "B",
                    1700000000000LL, 1700000000456LL};
    return r;
}

static void assert_recs_equal(const codec_recs *a, const codec_recs *b) {
    assert_string_equal(a->user_id, b->user_id);
    assert_int_equal(a->n_items, b->n_items);
    for (size_t i = 0; i < a->n_items; i++) {
        assert_string_equal(a->items[i].item_id, b->items[i].item_id);
        assert_true(a->items[i].score == b->items[i].score);
        assert_int_equal(a->items[i].source, b->items[i].source);
    }
    assert_string_equal(a->model_version, b->model_version);
    assert_string_equal(a->offline_version, b->offline_version);
    assert_string_equal(a->variant, b->variant);
    assert_true(a->trigger_ts == b->trigger_ts);
    assert_true(a->generated_ts == b->generated_ts);
}

static void test_recs_round_trip(void **state) {
    codec_buf buf = {0};
    char err[256], detail[256];
    for (size_t n = 0; n <= 3; n += 3)
        for (int fmt = CODEC_FORMAT_JSON; fmt <= CODEC_FORMAT_AVRO_FRAMED; fmt++) {
            codec_recs r = sample_recs(n);
            codec_recs_owned *back = NULL;
            assert_int_equal(codec_encode_recs(&r, fmt, 5, &buf, err, sizeof(err)), 0);
            assert_int_equal(codec_decode_recs(buf.data, buf.len, &back, detail, sizeof(detail)),
                             CODEC_OK);
            assert_recs_equal(&r, codec_recs_view(back));
            codec_recs_free(back);
            if (fmt != CODEC_FORMAT_JSON) {
                assert_int_equal(
                    codec_decode_recs(buf.data, buf.len - 1, &back, detail, sizeof(detail)),
                    CODEC_ERR_TRUNCATED);
                assert_null(back);
            }
        }
    codec_buf_free(&buf);
}

static void test_recs_json_is_json(void **state) {
    codec_buf buf = {0};
    char err[256];
    codec_recs r = sample_recs(3);
    assert_int_equal(codec_encode_recs(&r, CODEC_FORMAT_JSON, 0, &buf, err, sizeof(err)), 0);
    json_error_t jerr;
    json_t *root = json_loadb(buf.data, buf.len, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "variant")), "B");
    json_t *it = json_array_get(json_object_get(root, "items"), 1);
    assert_string_equal(json_string_value(json_object_get(it, "item_id")), "song-\"2\"");
    assert_string_equal(json_string_value(json_object_get(it, "source")), "OFFLINE");
    assert_true((float)json_number_value(json_object_get(it, "score")) == 1e-7f);
    json_decref(root);
    codec_buf_free(&buf);
}

static void test_recs_matches_avro_c(void **state) {
    avro_schema_t s;
    avro_value_iface_t *iface = iface_of(codec_schema_recommendations(), &s);
    codec_recs r = sample_recs(3);
    avro_value_t rec, f, arr, el;
    avro_generic_value_new(iface, &rec);
    avro_value_get_by_name(&rec, "user_id", &f, NULL);
    avro_value_set_string(&f, r.user_id);
    avro_value_get_by_name(&rec, "items", &arr, NULL);
    for (size_t i = 0; i < r.n_items; i++) {
        avro_value_append(&arr, &el, NULL);
        avro_value_get_by_name(&el, "item_id", &f, NULL);
        avro_value_set_string(&f, r.items[i].item_id);
        avro_value_get_by_name(&el, "score", &f, NULL);
        avro_value_set_float(&f, r.items[i].score);
        avro_value_get_by_name(&el, "source", &f, NULL);
        avro_value_set_enum(&f, r.items[i].source);
    }
    const char *strs[][2] = {{"model_version", r.model_version},
                             {"offline_version", r.offline_version},
                             {"variant", r.variant}};
    for (int i = 0; i < 3; i++) {
        avro_value_get_by_name(&rec, strs[i][0], &f, NULL);
        avro_value_set_string(&f, strs[i][1]);
    }
    avro_value_get_by_name(&rec, "trigger_ts", &f, NULL);
    avro_value_set_long(&f, r.trigger_ts);
    avro_value_get_by_name(&rec, "generated_ts", &f, NULL);
    avro_value_set_long(&f, r.generated_ts);
    char ref[1024], err[256];
    size_t n = avro_c_write(&rec, ref, sizeof(ref));
    codec_buf buf = {0};
    assert_int_equal(codec_encode_recs(&r, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), 0);
    assert_int_equal(buf.len, n);
    assert_memory_equal(buf.data, ref, n);
    codec_buf_free(&buf);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
}

/* A carried id length encodes exactly as one the encoder counts. */
static void test_recs_carried_lengths(void **state) {
    (void)state;
    codec_rec_item counted[3], carried[3];
    for (int i = 0; i < 3; i++) {
        counted[i] = carried[i] = items[i];
        counted[i].item_len = 0;
        carried[i].item_len = (uint32_t)strlen(items[i].item_id);
    }
    char err[256];
    for (int fmt = CODEC_FORMAT_JSON; fmt <= CODEC_FORMAT_AVRO_FRAMED; fmt++) {
        codec_buf a = {0}, b = {0};
        codec_recs r = sample_recs(3);
        r.items = counted;
        assert_int_equal(codec_encode_recs(&r, fmt, 7, &a, err, sizeof(err)), 0);
        r.items = carried;
        assert_int_equal(codec_encode_recs(&r, fmt, 7, &b, err, sizeof(err)), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        codec_buf_free(&a);
        codec_buf_free(&b);
    }
}

static void test_recs_refused(void **state) {
    codec_buf buf = {0};
    char err[256] = "";
    codec_rec_item bad[] = {{"x", NAN, CODEC_SOURCE_ONLINE, 0}};
    codec_recs r = sample_recs(0);
    r.items = bad, r.n_items = 1;
    assert_int_equal(codec_encode_recs(&r, CODEC_FORMAT_JSON, 0, &buf, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "finite"));
    bad[0].score = 1, bad[0].item_id = "";
    assert_int_equal(codec_encode_recs(&r, CODEC_FORMAT_AVRO, 0, &buf, err, sizeof(err)), -1);
    r = sample_recs(0);
    r.user_id = NULL;
    assert_int_equal(codec_encode_recs(&r, CODEC_FORMAT_AVRO_FRAMED, 0, &buf, err, sizeof(err)),
                     -1);
    codec_recs_owned *back = (codec_recs_owned *)&buf;
    char detail[128];
    assert_int_equal(codec_decode_recs("", 0, &back, detail, sizeof(detail)), CODEC_ERR_EMPTY);
    assert_null(back);
    assert_int_equal(codec_decode_recs("{\"user_id\":1}", 13, &back, detail, sizeof(detail)),
                     CODEC_ERR_FIELD_TYPE);
    codec_buf_free(&buf);
}

/* Scores are written as the shortest decimal of 6 to 9 significant digits
 * that reads back as the same float: over random floats of every decade
 * the fast path covers and its edges, and a few exact texts. */
static void test_float_text(void **state) {
    (void)state;
    char out[64], slow[64];
    uint64_t r = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < 300000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        float v = (float)((double)(r >> 11) / 9007199254740992.0 * pow(10.0, (double)(i % 16) - 6));
        if (i % 7 == 0) v = nextafterf((float)pow(10.0, (double)(i % 16) - 6), i % 2 ? 0 : 1e10f);
        if (i % 5 == 0) v = -v;
        int n = codec_float_fmt(out, sizeof(out), v);
        assert_int_equal(n, (int)strlen(out));
        assert_true(strtof(out, NULL) == v);
        /* no more significant digits than the shortest %g that reads back */
        int prec = 6;
        for (; prec < 9; prec++) {
            snprintf(slow, sizeof(slow), "%.*g", prec, (double)v);
            if (strtof(slow, NULL) == v) break;
        }
        int digits = 0, leading = 1;
        for (const char *c = out; *c && *c != 'e'; c++) {
            if (*c < '0' || *c > '9') continue;
            if (leading && *c == '0') continue;
            leading = 0, digits++;
        }
        if (!strchr(out, 'e')) /* trailing integer zeros are not significant */
            for (const char *c = out + n - 1; c > out && *c == '0' && !strchr(out, '.'); c--)
                digits--;
        assert_true(digits <= prec);
    }
    const struct {
        float v;
        const char *text;
    } exact[] = {{0.1f, "0.1"},         {1.0f, "1"},     {100.0f, "100"},
                 {0.3f, "0.3"},         {-2.5f, "-2.5"}, {123456.7f, "123456.7"},
                 {0.00012f, "0.00012"}, {0.0f, "0"}};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        codec_float_fmt(out, sizeof(out), exact[i].v);
        assert_string_equal(out, exact[i].text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_round_trip),    cmocka_unit_test(test_event_json_text),
        cmocka_unit_test(test_event_refused),       cmocka_unit_test(test_event_matches_avro_c),
        cmocka_unit_test(test_recs_round_trip),     cmocka_unit_test(test_recs_json_is_json),
        cmocka_unit_test(test_recs_matches_avro_c), cmocka_unit_test(test_recs_carried_lengths),
        cmocka_unit_test(test_recs_refused),        cmocka_unit_test(test_float_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
