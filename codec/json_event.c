/* codec: the JSON form of UserEvent, what a person types into kcat.
 *
 * Decoding has two paths that share one reading of the fields (get_field):
 *  - nearly every event is a flat object of a few ASCII strings and
 *    numbers; a strict scanner of exactly that subset reads it in place,
 *    with no allocation (scan_flat);
 *  - anything else (escapes, non-ASCII text, nesting, true/false,
 *    duplicate keys, bad syntax) goes to jansson, which builds a tree and is
 *    the judge of every syntax error. It costs several times the scanner
 *    (bench_codec), which is why the scanner exists.
 * libjsmn was tried for the first path and not kept: it accepts trailing
 * and missing commas and a bare '-', so it would need this scanner's
 * checks anyway. Keys the decoder does not know are ignored so that
 * producers may add fields. Encoding is written by hand: it is a fixed,
 * flat object. */
#include "codec_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Encoding ==== */

void codec_json_put_str(codec_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    codec_buf_reserve(b, len + 2);
    codec_buf_putc(b, '"');
    size_t run = 0; /* bytes that need no escape, copied at once */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        codec_buf_put(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', (char)c, 0};
        size_t n = 2;
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\t')
            esc[1] = 't';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], n = 6;
        }
        codec_buf_put(b, esc, n);
    }
    codec_buf_put(b, s + run, len - run);
    codec_buf_putc(b, '"');
}

int codec_json_encode_event(const codec_event *ev, codec_buf *out, char *errstr,
                            size_t errstr_size) {
    codec_buf_put(out, "{\"user_id\":", 11);
    codec_json_put_str(out, ev->user_id, ev->user_len);
    codec_buf_put(out, ",\"item_id\":", 11);
    codec_json_put_str(out, ev->item_id, ev->item_len);
    const char *type = codec_event_type_name(ev->type);
    codec_buf_put(out, ",\"type\":\"", 9);
    codec_buf_put(out, type, strlen(type));
    codec_buf_put(out, "\",\"ts\":", 7);
    codec_buf_put_i64(out, ev->ts_ms);
    if (ev->has_duration) {
        codec_buf_put(out, ",\"duration_ms\":", 15);
        codec_buf_put_i64(out, ev->duration_ms);
    }
    if (ev->has_weight) {
        codec_buf_put(out, ",\"weight\":", 10);
        codec_buf_put_float(out, ev->weight);
    }
    codec_buf_putc(out, '}');
    return 0;
}

/* ==== Decoding: one reading of the fields for both paths ==== */

enum { F_USER = 1, F_ITEM = 2, F_TYPE = 4, F_TS = 8 };

/* A field's value as either path found it. */
typedef enum { JV_STRING, JV_INT, JV_REAL, JV_NULL, JV_OTHER } jv_kind;
typedef struct jv {
    jv_kind kind;
    const char *s; /* JV_STRING: not NUL-terminated on the fast path */
    size_t len;
    int64_t i; /* JV_INT */
    double d;  /* JV_REAL */
} jv;

static int clip(size_t len) {
    return len < 40 ? (int)len : 40;
}

static codec_err wrong_type(const char *key, const char *want, char *detail, size_t detail_size) {
    return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "%s must be %s", key, want);
}

static codec_err get_id(const char *key, const jv *v, char *dst, uint16_t *dst_len, char *detail,
                        size_t detail_size) {
    if (v->kind != JV_STRING) return wrong_type(key, "a string", detail, detail_size);
    return codec_id_set(key, v->s, v->len, dst, dst_len, detail, detail_size);
}

static codec_err get_type(const jv *v, codec_event *out, char *detail, size_t detail_size) {
    if (v->kind != JV_STRING)
        return wrong_type("type", "a string (LISTEN, VIEW or LIKE)", detail, detail_size);
    int t = codec_event_type_parse(v->s, v->len);
    if (t < 0)
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size,
                          "type \"%.*s\" is not LISTEN, VIEW or LIKE", clip(v->len), v->s);
    out->type = (codec_event_type)t;
    return CODEC_OK;
}

static codec_err get_ts(const jv *v, codec_event *out, char *detail, size_t detail_size) {
    if (v->kind == JV_INT) {
        out->ts_ms = v->i;
        return CODEC_OK;
    }
    if (v->kind == JV_STRING) {
        if (codec_iso8601_parse(v->s, v->len, &out->ts_ms))
            return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                              "ts \"%.*s\" is not ISO-8601 (2026-11-22T22:30:00Z)", clip(v->len),
                              v->s);
        return CODEC_OK;
    }
    return wrong_type("ts", "integer milliseconds or an ISO-8601 string", detail, detail_size);
}

static codec_err get_duration(const jv *v, codec_event *out, char *detail, size_t detail_size) {
    if (v->kind == JV_NULL) return CODEC_OK;
    if (v->kind != JV_INT)
        return wrong_type("duration_ms", "an integer or null", detail, detail_size);
    out->has_duration = 1;
    out->duration_ms = v->i;
    return CODEC_OK;
}

static codec_err get_weight(const jv *v, codec_event *out, char *detail, size_t detail_size) {
    if (v->kind == JV_NULL) return CODEC_OK;
    if (v->kind != JV_INT && v->kind != JV_REAL)
        return wrong_type("weight", "a number or null", detail, detail_size);
    double w = v->kind == JV_INT ? (double)v->i : v->d;
    if (!(w >= 0.0 && w <= 3.4e38))
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                          "weight must be finite, >= 0 and fit a float (got %g)", w);
    out->has_weight = 1;
    out->weight = (float)w;
    return CODEC_OK;
}

static int key_is(const char *key, size_t len, const char *name) {
    return strlen(name) == len && !memcmp(key, name, len);
}

/* Fills out from one key; *seen gets the required-field bit. */
static codec_err get_field(const char *key, size_t klen, const jv *v, codec_event *out, int *seen,
                           char *detail, size_t detail_size) {
    if (key_is(key, klen, "user_id")) {
        *seen |= F_USER;
        return get_id("user_id", v, out->user_id, &out->user_len, detail, detail_size);
    }
    if (key_is(key, klen, "item_id")) {
        *seen |= F_ITEM;
        return get_id("item_id", v, out->item_id, &out->item_len, detail, detail_size);
    }
    if (key_is(key, klen, "type")) return *seen |= F_TYPE, get_type(v, out, detail, detail_size);
    if (key_is(key, klen, "ts")) return *seen |= F_TS, get_ts(v, out, detail, detail_size);
    if (key_is(key, klen, "duration_ms")) return get_duration(v, out, detail, detail_size);
    if (key_is(key, klen, "weight")) return get_weight(v, out, detail, detail_size);
    return CODEC_OK; /* unknown keys are allowed: producers may add fields */
}

static codec_err check_required(int seen, const codec_json_defaults *defs, codec_event *out,
                                char *detail, size_t detail_size) {
    static const char *names[] = {"user_id", "item_id", "type", "ts"};
    if (!(seen & F_TYPE) && defs && defs->has_type) out->type = defs->default_type, seen |= F_TYPE;
    if (!(seen & F_TS) && defs && defs->has_ts) out->ts_ms = defs->default_ts, seen |= F_TS;
    for (int i = 0; i < 4; i++)
        if (!(seen & (1 << i)))
            return codec_fail(CODEC_ERR_MISSING_FIELD, detail, detail_size,
                              "required field %s is missing", names[i]);
    return CODEC_OK;
}

/* ==== The fast path: a strict scanner of flat, plain-ASCII objects ==== */

#define FLAT_MAX_FIELDS 16

typedef struct flat_field {
    const char *key;
    size_t klen;
    jv v;
} flat_field;

typedef struct scan {
    const char *p, *end;
} scan;

static void skip_ws(scan *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

/* A string of printable ASCII without escapes (what jansson would read
 * byte for byte); -1 for anything else. */
static int scan_string(scan *sc, const char **s, size_t *len) {
    if (sc->p == sc->end || *sc->p != '"') return -1;
    const char *start = ++sc->p;
    for (; sc->p < sc->end; sc->p++) {
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            *s = start;
            *len = (size_t)(sc->p++ - start);
            return 0;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') return -1;
    }
    return -1;
}

static int is_digit(const scan *sc) {
    return sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9';
}

/* A JSON number: an integer of at most 18 digits (cannot overflow), or a
 * finite real; -1 for anything else. */
static int scan_number(scan *sc, jv *v) {
    const char *start = sc->p;
    int neg = sc->p < sc->end && *sc->p == '-';
    sc->p += neg;
    if (!is_digit(sc)) return -1;
    int64_t i = 0;
    size_t digits = 0;
    if (*sc->p == '0')
        sc->p++, digits = 1;
    else
        for (; is_digit(sc); sc->p++, digits++)
            if (digits < 18) i = i * 10 + (*sc->p - '0'); /* longer: refused below */
    int real = 0;
    if (sc->p < sc->end && *sc->p == '.') {
        sc->p++, real = 1;
        if (!is_digit(sc)) return -1;
        while (is_digit(sc)) sc->p++;
    }
    if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
        sc->p++, real = 1;
        if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-')) sc->p++;
        if (!is_digit(sc)) return -1;
        while (is_digit(sc)) sc->p++;
    }
    if (!real) {
        if (digits > 18) return -1;
        *v = (jv){.kind = JV_INT, .i = neg ? -i : i};
        return 0;
    }
    char tmp[64];
    size_t n = (size_t)(sc->p - start);
    if (n >= sizeof(tmp)) return -1;
    memcpy(tmp, start, n);
    tmp[n] = 0;
    *v = (jv){.kind = JV_REAL, .d = strtod(tmp, NULL)};
    return isfinite(v->d) ? 0 : -1;
}

static int scan_value(scan *sc, jv *v) {
    if (sc->p == sc->end) return -1;
    if (*sc->p == '"') {
        *v = (jv){.kind = JV_STRING};
        return scan_string(sc, &v->s, &v->len);
    }
    if ((size_t)(sc->end - sc->p) >= 4 && !memcmp(sc->p, "null", 4)) {
        sc->p += 4;
        *v = (jv){.kind = JV_NULL};
        return 0;
    }
    return scan_number(sc, v);
}

static int scan_field(scan *sc, flat_field *f) {
    skip_ws(sc);
    if (scan_string(sc, &f->key, &f->klen)) return -1;
    skip_ws(sc);
    if (sc->p == sc->end || *sc->p++ != ':') return -1;
    skip_ws(sc);
    if (scan_value(sc, &f->v)) return -1;
    skip_ws(sc);
    return 0;
}

/* Reads the whole buffer as one flat object into f; returns the number of
 * fields, or -1 when it is not in the subset (jansson decides then). */
static int scan_flat(const char *buf, size_t len, flat_field *f) {
    scan sc = {buf, buf + len};
    skip_ws(&sc);
    if (sc.p == sc.end || *sc.p++ != '{') return -1;
    skip_ws(&sc);
    size_t n = 0;
    if (sc.p < sc.end && *sc.p == '}') {
        sc.p++;
    } else {
        for (;;) {
            if (n == FLAT_MAX_FIELDS || scan_field(&sc, &f[n])) return -1;
            for (size_t i = 0; i < n; i++) /* duplicates: jansson reports them */
                if (f[i].klen == f[n].klen && !memcmp(f[i].key, f[n].key, f[n].klen)) return -1;
            n++;
            if (sc.p == sc.end) return -1;
            if (*sc.p == '}') {
                sc.p++;
                break;
            }
            if (*sc.p++ != ',') return -1;
        }
    }
    skip_ws(&sc);
    return sc.p == sc.end ? (int)n : -1;
}

/* ==== The general path: jansson ==== */

static jv jv_of(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING:
        return (jv){.kind = JV_STRING, .s = json_string_value(v), .len = json_string_length(v)};
    case JSON_INTEGER:
        return (jv){.kind = JV_INT, .i = json_integer_value(v)};
    case JSON_REAL:
        return (jv){.kind = JV_REAL, .d = json_real_value(v)};
    case JSON_NULL:
        return (jv){.kind = JV_NULL};
    default:
        return (jv){.kind = JV_OTHER};
    }
}

static codec_err parse_error(const json_error_t *jerr, char *detail, size_t detail_size) {
    enum json_error_code code = json_error_code(jerr);
    if (code == json_error_invalid_utf8 || code == json_error_null_character)
        return codec_fail(CODEC_ERR_UTF8, detail, detail_size, "JSON: %s at byte %d", jerr->text,
                          jerr->position);
    if (code == json_error_premature_end_of_input)
        return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON ends early: %s",
                          jerr->text);
    if (code == json_error_duplicate_key)
        return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON: %s", jerr->text);
    return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON: %s at byte %d", jerr->text,
                      jerr->position);
}

static codec_err check_rest(const char *buf, size_t len, size_t used, char *detail,
                            size_t detail_size) {
    if (codec_first_nonblank((const uint8_t *)buf + used, len - used) < 0) return CODEC_OK;
    return codec_fail(CODEC_ERR_TRAILING, detail, detail_size,
                      "bytes after the JSON object, from byte %zu", used);
}

static codec_err decode_jansson(const char *buf, size_t len, codec_event *out, int *seen,
                                char *detail, size_t detail_size) {
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return parse_error(&jerr, detail, detail_size);
    codec_err e = check_rest(buf, len, (size_t)jerr.position, detail, detail_size);
    if (!e && !json_is_object(root))
        e = codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON value is not an object");
    const char *key;
    json_t *v;
    if (!e) json_object_foreach(root, key, v) {
            jv val = jv_of(v);
            if ((e = get_field(key, strlen(key), &val, out, seen, detail, detail_size))) break;
        }
    json_decref(root);
    return e;
}

static codec_err decode(const char *buf, size_t len, const codec_json_defaults *defs,
                        codec_event *out, int fast, char *detail, size_t detail_size) {
    flat_field f[FLAT_MAX_FIELDS];
    int n = fast ? scan_flat(buf, len, f) : -1, seen = 0;
    codec_err e = CODEC_OK;
    out->has_duration = out->has_weight = 0;
    if (n < 0)
        e = decode_jansson(buf, len, out, &seen, detail, detail_size);
    else
        for (int i = 0; i < n && !e; i++)
            e = get_field(f[i].key, f[i].klen, &f[i].v, out, &seen, detail, detail_size);
    if (!e) e = check_required(seen, defs, out, detail, detail_size);
    if (!e) e = codec_event_check_values(out, detail, detail_size);
    return e;
}

codec_err codec_json_decode_event(const char *buf, size_t len, const codec_json_defaults *defs,
                                  codec_event *out, char *detail, size_t detail_size) {
    return decode(buf, len, defs, out, 1, detail, detail_size);
}

codec_err codec_json_decode_event_general(const char *buf, size_t len,
                                          const codec_json_defaults *defs, codec_event *out,
                                          char *detail, size_t detail_size) {
    return decode(buf, len, defs, out, 0, detail, detail_size);
}
