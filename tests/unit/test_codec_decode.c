/* Decoding UserEvents in each accepted form, the malformed inputs of every
 * kind, the JSON scanner agreeing with jansson, and reading foreign writer schemas (extra fields,
 * missing optional fields, new enum symbols) through the Schema-Registry frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_int.h"
#include "util.h"

static codec_err decode(codec_decoder *dec, const void *buf, size_t len, codec_event *ev) {
    char detail[256] = "";
    codec_err e = codec_decode_event(dec, buf, len, ev, detail, sizeof(detail));
    assert_true(e == CODEC_OK || detail[0] != '\0'); /* every failure explains itself */
    return e;
}

static codec_err decode_str(codec_decoder *dec, const char *s, codec_event *ev) {
    return decode(dec, s, strlen(s), ev);
}

static void test_json_full(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    assert_int_equal(
        decode_str(dec,
                   " {\"user_id\":\"u1\",\"item_id\":\"\xc3\xa9t\xc3\xa9\",\"type\":\"listen\","
                   "\"ts\":1700000000123,\"duration_ms\":31000,\"weight\":2.5,\"extra\":[1]}\n",
                   &ev),
        CODEC_OK);
    assert_string_equal(ev.user_id, "u1");
    assert_int_equal(ev.user_len, 2);
    assert_string_equal(ev.item_id, "\xc3\xa9t\xc3\xa9");
    assert_int_equal(ev.item_len, 5);
    assert_int_equal(ev.type, CODEC_EVENT_LISTEN);
    assert_true(ev.ts_ms == 1700000000123LL);
    assert_true(ev.has_duration && ev.duration_ms == 31000);
    assert_true(ev.has_weight && ev.weight == 2.5f);
    codec_decoder_free(dec);
}

static void test_json_optional_and_iso(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    assert_int_equal(decode_str(dec,
                                "{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"Like\","
                                "\"ts\":\"2023-11-14T22:13:20.5Z\",\"duration_ms\":null}",
                                &ev),
                     CODEC_OK);
    assert_int_equal(ev.type, CODEC_EVENT_LIKE);
    assert_true(ev.ts_ms == 1700000000500LL);
    assert_false(ev.has_duration);
    assert_false(ev.has_weight);
    assert_int_equal(decode_str(dec,
                                "{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\","
                                "\"ts\":\"2023-11-15T00:13:20+02:00\"}",
                                &ev),
                     CODEC_OK);
    assert_true(ev.ts_ms == 1700000000000LL);
    codec_decoder_free(dec);
}

typedef struct {
    const char *json;
    codec_err want;
} json_case;

static void test_json_malformed(void **state) {
    static const json_case cases[] = {
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\"", CODEC_ERR_NOT_JSON},
        {"{user_id: 1}", CODEC_ERR_NOT_JSON},
        {"hello", CODEC_ERR_NOT_JSON},
        {"   ", CODEC_ERR_NOT_JSON},
        {"{\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_MISSING_FIELD},
        {"{\"user_id\":\"u\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_MISSING_FIELD},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"ts\":1}", CODEC_ERR_MISSING_FIELD},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\"}", CODEC_ERR_MISSING_FIELD},
        {"{\"user_id\":7,\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_FIELD_TYPE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":3,\"ts\":1}", CODEC_ERR_FIELD_TYPE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1.5}",
         CODEC_ERR_FIELD_TYPE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1,\"weight\":\"x\"}",
         CODEC_ERR_FIELD_TYPE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1,\"duration_ms\":1.5}",
         CODEC_ERR_FIELD_TYPE},
        {"{\"user_id\":\"\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_ID_EMPTY},
        {"{\"user_id\":\"u\",\"item_id\":\"\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_ID_EMPTY},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"SHARE\",\"ts\":1}",
         CODEC_ERR_UNKNOWN_TYPE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":-1}", CODEC_ERR_BAD_VALUE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":\"yesterday\"}",
         CODEC_ERR_BAD_VALUE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1,\"weight\":-1}",
         CODEC_ERR_BAD_VALUE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1,\"duration_ms\":-5}",
         CODEC_ERR_BAD_VALUE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1,\"weight\":1e39}",
         CODEC_ERR_BAD_VALUE},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1} x", CODEC_ERR_TRAILING},
        {"{\"user_id\":\"u\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}{}", CODEC_ERR_TRAILING},
        {"{\"user_id\":\"\xff\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", CODEC_ERR_UTF8},
        {"{\"user_id\":\"a\\u0000b\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}",
         CODEC_ERR_UTF8},
        {"{\"user_id\":\"u\",\"user_id\":\"v\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}",
         CODEC_ERR_NOT_JSON},
    };
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        codec_err e = decode_str(dec, cases[i].json, &ev);
        if (e != cases[i].want)
            fail_msg("case %zu %s: got %s, want %s", i, cases[i].json, codec_err_reason(e),
                     codec_err_reason(cases[i].want));
    }
    assert_int_equal(decode(dec, "", 0, &ev), CODEC_ERR_EMPTY);
    codec_decoder_free(dec);
}

/* Both JSON paths on one input: the same verdict and the same event. */
static void assert_paths_agree(const char *buf, size_t len) {
    codec_event a, b;
    char da[256] = "", db[256] = "";
    codec_err ea = codec_json_decode_event(buf, len, NULL, &a, da, sizeof(da));
    codec_err eb = codec_json_decode_event_general(buf, len, NULL, &b, db, sizeof(db));
    if (ea != eb)
        fail_msg("%.*s: scanner %s (%s), jansson %s (%s)", (int)len, buf, codec_err_reason(ea), da,
                 codec_err_reason(eb), db);
    if (ea) return;
    assert_string_equal(a.user_id, b.user_id);
    assert_string_equal(a.item_id, b.item_id);
    assert_int_equal(a.type, b.type);
    assert_int_equal(a.ts_ms, b.ts_ms);
    assert_int_equal(a.has_duration, b.has_duration);
    assert_int_equal(a.has_duration ? a.duration_ms : 0, b.has_duration ? b.duration_ms : 0);
    assert_int_equal(a.has_weight, b.has_weight);
    assert_true(!a.has_weight || a.weight == b.weight);
}

/* The flat-object scanner takes the common events without jansson; on
 * everything near its edges it must say what jansson says. Inputs the
 * scanner leaves to jansson (escapes, nesting, ...) are in the list too:
 * they check the hand-over. */
static void test_json_scanner_agrees(void **state) {
    (void)state;
    static const char *cases[] = {
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        " \t\r\n{ \"user_id\" : \"u1\" , \"item_id\" : \"i1\" , \"type\" : \"view\" , \"ts\" : 2 } "
        "\n",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LIKE\",\"ts\":\"2026-11-22T22:30:00Z\","
        "\"duration_ms\":null,\"weight\":null}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LIKE\",\"ts\":3,\"duration_ms\":-0,"
        "\"weight\":2.5e-1,\"extra\":\"x\",\"n\":-12.5E+3}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,}", /* trailing , */
        "{\"user_id\":\"u1\" \"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",  /* missing , */
        "{\"user_id\":\"u1\",,\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":-}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":01}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1.}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":.5}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1e}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1.5}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":999999999999999999}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":9999999999999999999}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":99999999999999999999}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"weight\":1e400}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"weight\":1e-400}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"weight\":-1}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"weight\":true}",
        "{\"user_id\":\"u\\u0031\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_\\u0069d\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"\xc3\xa9\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"\xc3\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u\t1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"x\":{\"a\":[1]}}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1,\"x\":nul}",
        "{\"user_id\":\"u1\",\"user_id\":\"u2\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"x\":1,\"item_id\":\"i1\",\"x\":2,\"user_id\":\"u1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1} {}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"PLAY\",\"ts\":1}",
        "{\"user_id\":\"\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":5,\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":-5}",
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":\"yesterday\"}",
        "{}",
        "{",
        "[]",
        "{\"a\"}",
        "{\"a\":}",
        "{:1}",
        "{1:1}",
        "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_paths_agree(cases[i], strlen(cases[i]));
    /* Bytes a NUL ends early for strlen: the whole buffer counts. */
    static const char nul[] =
        "{\"user_id\":\"u1\",\"item_id\":\"i1\",\"type\":\"LISTEN\",\"ts\":1}\0";
    assert_paths_agree(nul, sizeof(nul) - 1);

    /* Every single-byte change of a full event, each to a few telling
     * bytes: a syntax slip anywhere must get jansson's verdict. */
    static const char base[] = "{\"user_id\":\"u1\",\"item_id\":\"i-22\",\"type\":\"LIKE\","
                               "\"ts\":1700000000000,\"duration_ms\":30,\"weight\":0.75}";
    static const char subst[] = " ,:{}[]\"\\-+.eE019nulx\x01\x80";
    char buf[sizeof(base)];
    for (size_t at = 0; at < sizeof(base) - 1; at++)
        for (size_t j = 0; j < sizeof(subst) - 1; j++) {
            memcpy(buf, base, sizeof(base));
            buf[at] = subst[j];
            assert_paths_agree(buf, sizeof(base) - 1);
            assert_paths_agree(buf, at); /* and every prefix */
        }
}

static void test_json_id_limits(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    char id[300], json[512];
    memset(id, 'x', sizeof(id));
    snprintf(json, sizeof(json),
             "{\"user_id\":\"%.256s\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", id);
    assert_int_equal(decode_str(dec, json, &ev), CODEC_OK);
    assert_int_equal(ev.user_len, 256);
    snprintf(json, sizeof(json),
             "{\"user_id\":\"%.257s\",\"item_id\":\"i\",\"type\":\"VIEW\",\"ts\":1}", id);
    assert_int_equal(decode_str(dec, json, &ev), CODEC_ERR_ID_TOO_LONG);
    codec_decoder_free(dec);
}

/* ---- Avro built by hand, byte by byte, so the tests do not trust our encoder. */

static size_t zz(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) p[n++] = (uint8_t)(z | 0x80), z >>= 7;
    p[n++] = (uint8_t)z;
    return n;
}

static size_t avro_event(uint8_t *p, const char *user, const char *item, int64_t type, int64_t ts) {
    size_t n = 0;
    n += zz(p + n, (int64_t)strlen(user));
    memcpy(p + n, user, strlen(user)), n += strlen(user);
    n += zz(p + n, (int64_t)strlen(item));
    memcpy(p + n, item, strlen(item)), n += strlen(item);
    n += zz(p + n, type);
    n += zz(p + n, ts);
    return n;
}

static void test_avro_raw(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    uint8_t buf[64];
    size_t n = avro_event(buf, "user-1", "item-9", 2, 1700000000123LL);
    buf[n++] = 2; /* duration: branch 1 */
    n += zz(buf + n, 4500);
    buf[n++] = 2; /* weight: branch 1, 1.5f little-endian */
    memcpy(buf + n, "\x00\x00\xc0\x3f", 4), n += 4;
    assert_int_equal(decode(dec, buf, n, &ev), CODEC_OK);
    assert_string_equal(ev.user_id, "user-1");
    assert_string_equal(ev.item_id, "item-9");
    assert_int_equal(ev.type, CODEC_EVENT_LIKE);
    assert_true(ev.ts_ms == 1700000000123LL);
    assert_true(ev.has_duration && ev.duration_ms == 4500);
    assert_true(ev.has_weight && ev.weight == 1.5f);
    /* length byte 0x0a is a JSON blank: an id starting with '{' is still Avro */
    n = avro_event(buf, "{\"a\":", "i", 0, 1);
    buf[n++] = 0, buf[n++] = 0;
    assert_int_equal(buf[0], '\n');
    assert_int_equal(decode(dec, buf, n, &ev), CODEC_OK);
    assert_string_equal(ev.user_id, "{\"a\":");
    assert_int_equal(decode_str(dec, "\n{\"user_id\":", &ev), CODEC_ERR_NOT_JSON);
    codec_decoder_free(dec);
}

static void test_avro_malformed(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    uint8_t buf[600];
    size_t n = avro_event(buf, "u", "i", 0, 5);
    buf[n++] = 0, buf[n++] = 0;
    assert_int_equal(decode(dec, buf, n, &ev), CODEC_OK);
    for (size_t cut = 1; cut < n; cut++) /* every truncation fails cleanly */
        assert_int_not_equal(decode(dec, buf, cut, &ev), CODEC_OK);
    assert_int_equal(decode(dec, buf, n - 1, &ev), CODEC_ERR_TRUNCATED);
    buf[n] = 7;
    assert_int_equal(decode(dec, buf, n + 1, &ev), CODEC_ERR_TRAILING);
    /* enum index 3 (and -1) is no symbol of ours */
    size_t m = avro_event(buf, "u", "i", 3, 5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_UNKNOWN_TYPE);
    m = avro_event(buf, "u", "i", -1, 5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_UNKNOWN_TYPE);
    /* negative ts, bad union branch, huge and negative string lengths */
    m = avro_event(buf, "u", "i", 0, -5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_BAD_VALUE);
    m = avro_event(buf, "u", "i", 0, 5);
    buf[m++] = 4, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_BAD_VALUE);
    m = zz(buf, INT64_MAX / 2);
    assert_int_equal(decode(dec, buf, m + 3, &ev), CODEC_ERR_TRUNCATED);
    m = zz(buf, -3);
    memcpy(buf + m, "abcdef", 6);
    assert_int_not_equal(decode(dec, buf, m + 6, &ev), CODEC_OK);
    memset(buf, 0xff, 12); /* varint longer than 10 bytes */
    assert_int_equal(decode(dec, buf, 12, &ev), CODEC_ERR_BAD_VALUE);
    /* an empty id, a 257-byte id, invalid UTF-8 */
    m = avro_event(buf, "u", "", 0, 5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_ID_EMPTY);
    char big[258];
    memset(big, 'b', 257), big[257] = 0;
    m = avro_event(buf, big, "i", 0, 5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_ID_TOO_LONG);
    m = avro_event(buf, "u\xc3", "i", 0, 5);
    buf[m++] = 0, buf[m++] = 0;
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_UTF8);
    /* NaN and negative weights */
    m = avro_event(buf, "u", "i", 0, 5);
    buf[m++] = 0, buf[m++] = 2;
    memcpy(buf + m, "\x00\x00\xc0\x7f", 4);
    assert_int_equal(decode(dec, buf, m + 4, &ev), CODEC_ERR_BAD_VALUE);
    memcpy(buf + m, "\x00\x00\x80\xbf", 4);
    assert_int_equal(decode(dec, buf, m + 4, &ev), CODEC_ERR_BAD_VALUE);
    codec_decoder_free(dec);
}

/* ---- Framed Avro and foreign writer schemas. */

static size_t frame(uint8_t *dst, int32_t id, const uint8_t *body, size_t n) {
    dst[0] = 0, dst[1] = (uint8_t)(id >> 24), dst[2] = (uint8_t)(id >> 16);
    dst[3] = (uint8_t)(id >> 8), dst[4] = (uint8_t)id;
    memcpy(dst + 5, body, n);
    return n + 5;
}

static void test_framed_reader_schema(void **state) {
    codec_decoder *dec = codec_decoder_new();
    codec_event ev;
    uint8_t body[64], buf[80];
    size_t n = avro_event(body, "u", "i", 1, 42);
    body[n++] = 0, body[n++] = 0;
    size_t m = frame(buf, 12345, body, n);
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_OK); /* unknown id: our schema */
    assert_int_equal(ev.type, CODEC_EVENT_VIEW);
    assert_true(ev.ts_ms == 42);
    char err[256];
    assert_int_equal(
        codec_decoder_add_writer_schema(dec, 3, codec_schema_user_event(), err, sizeof(err)), 0);
    m = frame(buf, 3, body, n);
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_OK);
    assert_int_equal(decode(dec, buf, m - 1, &ev), CODEC_ERR_TRUNCATED);
    codec_decoder_free(dec);
}

/* A newer producer's schema: a new enum symbol SHARE, symbols reordered,
 * an extra optional field, and no weight field. */
static const char *writer_v2 =
    "{\"type\":\"record\",\"name\":\"UserEvent\",\"namespace\":\"io.recstream\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"item_id\",\"type\":\"string\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
    "\"symbols\":[\"SHARE\",\"LIKE\",\"LISTEN\",\"VIEW\"],\"default\":\"VIEW\"}},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"client\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"duration_ms\",\"type\":[\"null\",\"long\"],\"default\":null}]}";

/* Writes one writer_v2 record with avro-c itself, as a Java producer would. */
static size_t write_v2(uint8_t *buf, size_t cap, const char *user, int type_idx,
                       const char *client) {
    avro_schema_t s;
    assert_int_equal(avro_schema_from_json_length(writer_v2, strlen(writer_v2), &s), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f, br;
    avro_generic_value_new(iface, &rec);
    avro_value_get_by_name(&rec, "user_id", &f, NULL);
    avro_value_set_string(&f, user);
    avro_value_get_by_name(&rec, "item_id", &f, NULL);
    avro_value_set_string(&f, "song-1");
    avro_value_get_by_name(&rec, "type", &f, NULL);
    avro_value_set_enum(&f, type_idx);
    avro_value_get_by_name(&rec, "ts", &f, NULL);
    avro_value_set_long(&f, 1234);
    avro_value_get_by_name(&rec, "client", &f, NULL);
    avro_value_set_branch(&f, client ? 1 : 0, &br);
    if (client)
        avro_value_set_string(&br, client);
    else
        avro_value_set_null(&br);
    avro_value_get_by_name(&rec, "duration_ms", &f, NULL);
    avro_value_set_branch(&f, 1, &br);
    avro_value_set_long(&br, 777);
    avro_writer_t w = avro_writer_memory((char *)buf, (int64_t)cap);
    assert_int_equal(avro_value_write(w, &rec), 0);
    size_t n = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return n;
}

static void test_writer_schema_resolution(void **state) {
    codec_decoder *dec = codec_decoder_new();
    char err[256];
    assert_int_equal(codec_decoder_add_writer_schema(dec, 7, writer_v2, err, sizeof(err)), 0);
    uint8_t body[128], buf[160];
    codec_event ev;
    static const struct {
        int idx;
        codec_event_type want;
    } map[] = {{0, CODEC_EVENT_VIEW},
               {1, CODEC_EVENT_LIKE},
               {2, CODEC_EVENT_LISTEN},
               {3, CODEC_EVENT_VIEW}};
    for (int i = 0; i < 4; i++) {
        size_t n = write_v2(body, sizeof(body), "alice", map[i].idx, i % 2 ? "android" : NULL);
        size_t m = frame(buf, 7, body, n);
        assert_int_equal(decode(dec, buf, m, &ev), CODEC_OK);
        assert_string_equal(ev.user_id, "alice");
        assert_string_equal(ev.item_id, "song-1");
        assert_int_equal(ev.type, map[i].want);
        assert_true(ev.ts_ms == 1234);
        assert_true(ev.has_duration && ev.duration_ms == 777);
        assert_false(ev.has_weight); /* absent in the writer: its default, null */
        assert_int_equal(decode(dec, buf, m - 1, &ev), CODEC_ERR_TRUNCATED);
        buf[m] = 0;
        assert_int_equal(decode(dec, buf, m + 1, &ev), CODEC_ERR_TRAILING);
    }
    size_t n = write_v2(body, sizeof(body), "", 1, NULL);
    assert_int_equal(decode(dec, buf, frame(buf, 7, body, n), &ev), CODEC_ERR_ID_EMPTY);
    /* a huge declared string length must be rejected before avro-c sees it */
    n = write_v2(body, sizeof(body), "bob", 1, NULL);
    body[0] = 0xfe, body[1] = 0xff, body[2] = 0xff, body[3] = 0xff, body[4] = 0x0f;
    assert_int_equal(decode(dec, buf, frame(buf, 7, body, n), &ev), CODEC_ERR_TRUNCATED);
    codec_decoder_free(dec);
}

/* An older producer: no weight, duration as int, a map field we skip. */
static void test_writer_schema_promotion(void **state) {
    const char *w = "{\"type\":\"record\",\"name\":\"UserEvent\",\"fields\":["
                    "{\"name\":\"user_id\",\"type\":\"string\"},"
                    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"int\"}},"
                    "{\"name\":\"item_id\",\"type\":\"string\"},"
                    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
                    "\"symbols\":[\"LIKE\",\"VIEW\",\"LISTEN\"]}},"
                    "{\"name\":\"ts\",\"type\":\"int\"},"
                    "{\"name\":\"duration_ms\",\"type\":[\"null\",\"int\"]}]}";
    codec_decoder *dec = codec_decoder_new();
    char err[256];
    assert_int_equal(codec_decoder_add_writer_schema(dec, 9, w, err, sizeof(err)), 0);
    uint8_t body[64], buf[80];
    size_t n = 0;
    n += zz(body + n, 1), body[n++] = 'u';
    n += zz(body + n, 1), n += zz(body + n, 1), body[n++] = 'k', n += zz(body + n, 42);
    n += zz(body + n, 0); /* end of map */
    n += zz(body + n, 1), body[n++] = 'i';
    n += zz(body + n, 2); /* LISTEN in the writer's order */
    n += zz(body + n, 99);
    n += zz(body + n, 1), n += zz(body + n, 3000);
    codec_event ev;
    assert_int_equal(decode(dec, buf, frame(buf, 9, body, n), &ev), CODEC_OK);
    assert_string_equal(ev.user_id, "u");
    assert_string_equal(ev.item_id, "i");
    assert_int_equal(ev.type, CODEC_EVENT_LISTEN);
    assert_true(ev.ts_ms == 99);
    assert_true(ev.has_duration && ev.duration_ms == 3000);
    assert_false(ev.has_weight);
    body[1] = 0xff; /* a user id that is not UTF-8 is caught on this path too */
    assert_int_equal(decode(dec, buf, frame(buf, 9, body, n), &ev), CODEC_ERR_UTF8);
    codec_decoder_free(dec);
}

static void test_writer_schema_incompatible(void **state) {
    codec_decoder *dec = codec_decoder_new();
    char err[256] = "";
    const char *no_item = "{\"type\":\"record\",\"name\":\"UserEvent\",\"fields\":["
                          "{\"name\":\"user_id\",\"type\":\"string\"}]}";
    assert_int_equal(codec_decoder_add_writer_schema(dec, 8, no_item, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "item_id"));
    assert_int_equal(codec_decoder_add_writer_schema(dec, 8, "{not json", err, sizeof(err)), -1);
    assert_int_equal(codec_decoder_add_writer_schema(dec, 8, "\"string\"", err, sizeof(err)), -1);
    codec_decoder_free(dec);
}

typedef struct {
    int calls;
    const char *schema;
    int down; /* answer -1: the registry cannot be reached */
} fetch_state;

static int fetch(int32_t id, void *opaque, char **json, char *errstr, size_t errstr_size) {
    fetch_state *fs = opaque;
    fs->calls++;
    if (fs->down) return snprintf(errstr, errstr_size, "registry unreachable"), -1;
    if (id != 21 || !fs->schema) return snprintf(errstr, errstr_size, "not found"), 0;
    *json = strdup(fs->schema);
    return 1;
}

static void test_fetcher(void **state) {
    codec_decoder *dec = codec_decoder_new();
    fetch_state fs = {0, writer_v2, 0};
    codec_decoder_set_fetcher(dec, fetch, &fs);
    uint8_t body[128], buf[160];
    codec_event ev;
    size_t m = frame(buf, 21, body, write_v2(body, sizeof(body), "carol", 2, "ios"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(decode(dec, buf, m, &ev), CODEC_OK);
        assert_int_equal(ev.type, CODEC_EVENT_LISTEN);
    }
    assert_int_equal(fs.calls, 1); /* learned once, then cached */
    /* an id the registry does not know is a schema error, asked once per retry period */
    size_t n = avro_event(body, "u", "i", 0, 1);
    body[n++] = 0, body[n++] = 0;
    m = frame(buf, 22, body, n);
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(fs.calls, 2);
    /* a registry answer that does not resolve is a schema error */
    fs.schema = "{\"type\":\"record\",\"name\":\"X\",\"fields\":[]}";
    m = frame(buf, 21, body, n);
    codec_decoder *dec2 = codec_decoder_new();
    codec_decoder_set_fetcher(dec2, fetch, &fs);
    int calls = fs.calls;
    assert_int_equal(decode(dec2, buf, m, &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(decode(dec2, buf, m, &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(fs.calls, calls + 1); /* the failure is remembered */
    codec_decoder_free(dec2);
    codec_decoder_free(dec);
}

/* Without a fetcher an unknown id is read with our own schema. */
static void test_no_fetcher(void **state) {
    codec_decoder *dec = codec_decoder_new();
    uint8_t body[128], buf[160];
    codec_event ev;
    size_t n = avro_event(body, "u", "i", 0, 1);
    body[n++] = 0, body[n++] = 0;
    assert_int_equal(decode(dec, buf, frame(buf, 99, body, n), &ev), CODEC_OK);
    assert_string_equal(ev.user_id, "u");
    codec_decoder_free(dec);
}

/* A registry that cannot be reached: the message fails with its own reason
 * (to the DLQ), the fetcher is not asked again for every message, and once
 * the registry is back the id resolves. */
static void test_fetcher_unavailable(void **state) {
    codec_decoder *dec = codec_decoder_new();
    fetch_state fs = {0, writer_v2, 1};
    codec_decoder_set_fetcher(dec, fetch, &fs);
    uint8_t body[128], buf[160];
    codec_event ev;
    char detail[256];
    size_t m = frame(buf, 21, body, write_v2(body, sizeof(body), "carol", 2, "ios"));
    assert_int_equal(codec_decode_event(dec, buf, m, &ev, detail, sizeof(detail)),
                     CODEC_ERR_SCHEMA_UNAVAILABLE);
    assert_non_null(strstr(detail, "registry unreachable"));
    assert_string_equal(codec_err_reason(CODEC_ERR_SCHEMA_UNAVAILABLE), "schema_unavailable");
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_SCHEMA_UNAVAILABLE);
    assert_int_equal(fs.calls, 1);
    /* other new ids during the outage are not asked either: no timeout each */
    for (int32_t id = 30; id < 40; id++) {
        size_t k = frame(buf, id, body, write_v2(body, sizeof(body), "dave", 2, "ios"));
        assert_int_equal(decode(dec, buf, k, &ev), CODEC_ERR_SCHEMA_UNAVAILABLE);
    }
    assert_int_equal(fs.calls, 1);
    m = frame(buf, 21, body, write_v2(body, sizeof(body), "carol", 2, "ios"));
    fs.down = 0; /* back, but the failure is only retried after the period */
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_ERR_SCHEMA_UNAVAILABLE);
    codec_decoder_free(dec);
    dec = codec_decoder_new(); /* a fresh decoder asks at once */
    codec_decoder_set_fetcher(dec, fetch, &fs);
    assert_int_equal(decode(dec, buf, m, &ev), CODEC_OK);
    codec_decoder_free(dec);
}

/* Messages with ever new unknown ids do not grow the decoder without bound:
 * past CODEC_FETCH_FAILED_MAX failed ids they are forgotten, so the first
 * one is asked again (rather than answered from memory for 30 s), while a
 * known id stays learned. */
static void test_fetcher_failed_ids_bounded(void **state) {
    codec_decoder *dec = codec_decoder_new();
    fetch_state fs = {0, writer_v2, 0};
    codec_decoder_set_fetcher(dec, fetch, &fs);
    uint8_t body[128], buf[160];
    codec_event ev;
    size_t n = avro_event(body, "u", "i", 0, 1);
    body[n++] = 0, body[n++] = 0;
    uint8_t kbuf[160], kbody[128];
    size_t km = frame(kbuf, 21, kbody, write_v2(kbody, sizeof(kbody), "carol", 2, "ios"));
    assert_int_equal(decode(dec, kbuf, km, &ev), CODEC_OK);
    for (int32_t id = 1000; id < 1000 + CODEC_FETCH_FAILED_MAX; id++)
        assert_int_equal(decode(dec, buf, frame(buf, id, body, n), &ev), CODEC_ERR_SCHEMA);
    int calls = fs.calls;
    assert_int_equal(decode(dec, buf, frame(buf, 1000, body, n), &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(fs.calls, calls); /* still remembered */
    assert_int_equal(decode(dec, buf, frame(buf, 5000, body, n), &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(decode(dec, buf, frame(buf, 1000, body, n), &ev), CODEC_ERR_SCHEMA);
    assert_int_equal(fs.calls, calls + 2); /* 1000 was forgotten and asked again */
    assert_int_equal(decode(dec, kbuf, km, &ev), CODEC_OK);
    assert_int_equal(fs.calls, calls + 2); /* the known id was kept */
    codec_decoder_free(dec);
}

static void test_names(void **state) {
    assert_string_equal(codec_err_reason(CODEC_ERR_TRUNCATED), "truncated");
    assert_string_equal(codec_err_reason(CODEC_ERR_UNKNOWN_TYPE), "unknown_type");
    for (int e = 0; e < CODEC_ERR__COUNT; e++) assert_non_null(codec_err_reason((codec_err)e));
    assert_int_equal(codec_event_type_parse("lIsTeN", 6), CODEC_EVENT_LISTEN);
    assert_int_equal(codec_event_type_parse("VIEWS", 5), -1);
    assert_string_equal(codec_event_type_name(CODEC_EVENT_LIKE), "LIKE");
    assert_string_equal(codec_source_name(CODEC_SOURCE_POPULAR), "POPULAR");
    assert_int_equal(codec_format_parse("avro-framed"), CODEC_FORMAT_AVRO_FRAMED);
    assert_int_equal(codec_format_parse("xml"), -1);
    assert_non_null(strstr(codec_schema_user_event(), "\"UserEvent\""));
    assert_non_null(strstr(codec_schema_recommendations(), "\"Recommendations\""));
    assert_non_null(strstr(codec_schema_offline_list(), "\"OfflineList\""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_full),
        cmocka_unit_test(test_json_optional_and_iso),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_id_limits),
        cmocka_unit_test(test_json_scanner_agrees),
        cmocka_unit_test(test_avro_raw),
        cmocka_unit_test(test_avro_malformed),
        cmocka_unit_test(test_framed_reader_schema),
        cmocka_unit_test(test_writer_schema_resolution),
        cmocka_unit_test(test_writer_schema_promotion),
        cmocka_unit_test(test_writer_schema_incompatible),
        cmocka_unit_test(test_fetcher),
        cmocka_unit_test(test_no_fetcher),
        cmocka_unit_test(test_fetcher_unavailable),
        cmocka_unit_test(test_fetcher_failed_ids_bounded),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
