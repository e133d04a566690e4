/* codec: the JSON form of UserEvent, what a person types into kcat.
 *
 * Decoding uses jansson (one json_loadb per message; jansson allocates its
 * tree, the one allocation on the JSON path) and walks the object once,
 * ignoring keys it does not know so that producers may add fields. Encoding
 * is written by hand: it is a fixed, flat object. */
#include "codec_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
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
    char num[128];
    codec_buf_put(out, "{\"user_id\":", 11);
    codec_json_put_str(out, ev->user_id, ev->user_len);
    codec_buf_put(out, ",\"item_id\":", 11);
    codec_json_put_str(out, ev->item_id, ev->item_len);
    int n = snprintf(num, sizeof(num), ",\"type\":\"%s\",\"ts\":%" PRId64,
                     codec_event_type_name(ev->type), ev->ts_ms);
    codec_buf_put(out, num, (size_t)n);
    if (ev->has_duration) {
        n = snprintf(num, sizeof(num), ",\"duration_ms\":%" PRId64, ev->duration_ms);
        codec_buf_put(out, num, (size_t)n);
    }
    if (ev->has_weight) {
        codec_buf_put(out, ",\"weight\":", 10);
        n = codec_float_fmt(num, sizeof(num), ev->weight);
        codec_buf_put(out, num, (size_t)n);
    }
    codec_buf_putc(out, '}');
    return 0;
}

/* ==== Decoding ==== */

enum { F_USER = 1, F_ITEM = 2, F_TYPE = 4, F_TS = 8 };

static codec_err wrong_type(const char *key, const char *want, char *detail, size_t detail_size) {
    return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "%s must be %s", key, want);
}

static codec_err get_id(const char *key, json_t *v, char *dst, uint16_t *dst_len, char *detail,
                        size_t detail_size) {
    if (!json_is_string(v)) return wrong_type(key, "a string", detail, detail_size);
    return codec_id_set(key, json_string_value(v), json_string_length(v), dst, dst_len, detail,
                        detail_size);
}

static codec_err get_type(json_t *v, codec_event *out, char *detail, size_t detail_size) {
    if (!json_is_string(v))
        return wrong_type("type", "a string (LISTEN, VIEW or LIKE)", detail, detail_size);
    int t = codec_event_type_parse(json_string_value(v), json_string_length(v));
    if (t < 0)
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size,
                          "type \"%.40s\" is not LISTEN, VIEW or LIKE", json_string_value(v));
    out->type = (codec_event_type)t;
    return CODEC_OK;
}

static codec_err get_ts(json_t *v, codec_event *out, char *detail, size_t detail_size) {
    if (json_is_integer(v)) {
        out->ts_ms = json_integer_value(v);
        return CODEC_OK;
    }
    if (json_is_string(v)) {
        if (codec_iso8601_parse(json_string_value(v), json_string_length(v), &out->ts_ms))
            return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                              "ts \"%.40s\" is not ISO-8601 (2026-11-22T22:30:00Z)",
                              json_string_value(v));
        return CODEC_OK;
    }
    return wrong_type("ts", "integer milliseconds or an ISO-8601 string", detail, detail_size);
}

static codec_err get_duration(json_t *v, codec_event *out, char *detail, size_t detail_size) {
    if (json_is_null(v)) return CODEC_OK;
    if (!json_is_integer(v))
        return wrong_type("duration_ms", "an integer or null", detail, detail_size);
    out->has_duration = 1;
    out->duration_ms = json_integer_value(v);
    return CODEC_OK;
}

static codec_err get_weight(json_t *v, codec_event *out, char *detail, size_t detail_size) {
    if (json_is_null(v)) return CODEC_OK;
    if (!json_is_number(v)) return wrong_type("weight", "a number or null", detail, detail_size);
    double w = json_number_value(v);
    if (!(w >= 0.0 && w <= 3.4e38))
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                          "weight must be finite, >= 0 and fit a float (got %g)", w);
    out->has_weight = 1;
    out->weight = (float)w;
    return CODEC_OK;
}

/* Fills out from one key; *seen gets the required-field bit. */
static codec_err get_field(const char *key, json_t *v, codec_event *out, int *seen, char *detail,
                           size_t detail_size) {
    switch (key[0]) {
    case 'u':
        if (strcmp(key, "user_id")) break;
        *seen |= F_USER;
        return get_id(key, v, out->user_id, &out->user_len, detail, detail_size);
    case 'i':
        if (strcmp(key, "item_id")) break;
        *seen |= F_ITEM;
        return get_id(key, v, out->item_id, &out->item_len, detail, detail_size);
    case 't':
        if (!strcmp(key, "type")) return *seen |= F_TYPE, get_type(v, out, detail, detail_size);
        if (!strcmp(key, "ts")) return *seen |= F_TS, get_ts(v, out, detail, detail_size);
        break;
    case 'd':
        if (!strcmp(key, "duration_ms")) return get_duration(v, out, detail, detail_size);
        break;
    case 'w':
        if (!strcmp(key, "weight")) return get_weight(v, out, detail, detail_size);
        break;
    }
    return CODEC_OK; /* unknown keys are allowed: producers may add fields */
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

static codec_err check_rest(const char *buf, size_t len, size_t used, char *detail,
                            size_t detail_size) {
    if (codec_first_nonblank((const uint8_t *)buf + used, len - used) < 0) return CODEC_OK;
    return codec_fail(CODEC_ERR_TRAILING, detail, detail_size,
                      "bytes after the JSON object, from byte %zu", used);
}

codec_err codec_json_decode_event(const char *buf, size_t len, const codec_json_defaults *defs,
                                  codec_event *out, char *detail, size_t detail_size) {
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return parse_error(&jerr, detail, detail_size);
    codec_err e = check_rest(buf, len, (size_t)jerr.position, detail, detail_size);
    if (!e && !json_is_object(root))
        e = codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON value is not an object");
    out->has_duration = out->has_weight = 0;
    int seen = 0;
    const char *key;
    json_t *v;
    if (!e) json_object_foreach(root, key, v) {
            if ((e = get_field(key, v, out, &seen, detail, detail_size))) break;
        }
    json_decref(root);
    if (!e) e = check_required(seen, defs, out, detail, detail_size);
    if (!e) e = codec_event_check_values(out, detail, detail_size);
    return e;
}
