/* codec: decoding Recommendations (JSON, raw or framed Avro) for the readers
 * of the output topic: tests, `demo`, `inspect`. Every Avro length and item
 * count is checked against the bytes present before it is used. */
#include "codec_int.h"
#include "util.h"

#include <jansson.h>
#include <string.h>

/* ==== Avro ==== */

typedef struct {
    codec_avro_cur c;
    codec_recs_owned *r;
    char *detail;
    size_t detail_size;
} recs_reader;

static codec_err avro_fail(recs_reader *rr, codec_err e, const char *field) {
    return codec_fail(e, rr->detail, rr->detail_size, "%s Avro in field %s",
                      e == CODEC_ERR_TRUNCATED ? "truncated" : "malformed", field);
}

static codec_err avro_string(recs_reader *rr, const char *field, const char **dst) {
    const char *s;
    size_t len;
    codec_err e = codec_avro_read_str(&rr->c, &s, &len);
    if (e) return avro_fail(rr, e, field);
    if (!util_utf8_valid(s, len))
        return codec_fail(CODEC_ERR_UTF8, rr->detail, rr->detail_size, "%s is not UTF-8", field);
    *dst = codec_recs_owned_str(rr->r, s, len);
    return CODEC_OK;
}

static codec_err avro_item(recs_reader *rr, codec_rec_item *it) {
    codec_err e;
    int64_t src;
    if ((e = avro_string(rr, "items.item_id", &it->item_id))) return e;
    if ((e = codec_avro_read_float(&rr->c, &it->score))) return avro_fail(rr, e, "items.score");
    if ((e = codec_avro_read_long(&rr->c, &src))) return avro_fail(rr, e, "items.source");
    if (src < 0 || src >= CODEC_SOURCES)
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, rr->detail, rr->detail_size,
                          "items.source index %lld is out of range", (long long)src);
    it->source = (codec_source)src;
    return CODEC_OK;
}

/* Reads the array's blocks; an item takes at least 6 bytes, which bounds
 * the count before anything is allocated. */
static codec_err avro_items(recs_reader *rr) {
    size_t n = 0, cap = 0;
    codec_rec_item *items = NULL;
    codec_err e = CODEC_OK;
    for (;;) {
        int64_t count, bytes;
        if ((e = codec_avro_read_long(&rr->c, &count))) break;
        if (count == 0) break;
        if (count < 0 && (e = codec_avro_read_long(&rr->c, &bytes))) break;
        uint64_t k = count < 0 ? (uint64_t)0 - (uint64_t)count : (uint64_t)count;
        if (k > (uint64_t)(rr->c.end - rr->c.p) / 6) {
            e = CODEC_ERR_TRUNCATED;
            break;
        }
        if (n + k > cap) cap = n + k, items = util_realloc(items, cap * sizeof(*items));
        for (uint64_t i = 0; i < k && !e; i++) e = avro_item(rr, &items[n++]);
        if (e) break;
    }
    codec_rec_item *dst = e ? NULL : codec_recs_owned_items(rr->r, n);
    if (dst && n) memcpy(dst, items, n * sizeof(*items));
    free(items);
    if (e == CODEC_ERR_TRUNCATED || e == CODEC_ERR_BAD_VALUE) return avro_fail(rr, e, "items");
    return e;
}

codec_err codec_avro_decode_recs(const uint8_t *buf, size_t len, codec_recs_owned *r, char *detail,
                                 size_t detail_size) {
    recs_reader rr = {{buf, buf + len}, r, detail, detail_size};
    codec_recs *v = codec_recs_owned_view(r);
    codec_err e;
    if ((e = avro_string(&rr, "user_id", &v->user_id))) return e;
    if ((e = avro_items(&rr))) return e;
    if ((e = avro_string(&rr, "model_version", &v->model_version))) return e;
    if ((e = avro_string(&rr, "offline_version", &v->offline_version))) return e;
    if ((e = avro_string(&rr, "variant", &v->variant))) return e;
    if ((e = codec_avro_read_long(&rr.c, &v->trigger_ts))) return avro_fail(&rr, e, "trigger_ts");
    if ((e = codec_avro_read_long(&rr.c, &v->generated_ts)))
        return avro_fail(&rr, e, "generated_ts");
    if (rr.c.p != rr.c.end)
        return codec_fail(CODEC_ERR_TRAILING, detail, detail_size,
                          "%zu bytes left after the Avro record", (size_t)(rr.c.end - rr.c.p));
    return CODEC_OK;
}

/* ==== JSON ==== */

static codec_err json_str(json_t *obj, const char *key, codec_recs_owned *r, const char **dst,
                          char *detail, size_t detail_size) {
    json_t *v = json_object_get(obj, key);
    if (!v) return codec_fail(CODEC_ERR_MISSING_FIELD, detail, detail_size, "%s is missing", key);
    if (!json_is_string(v))
        return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "%s must be a string", key);
    *dst = codec_recs_owned_str(r, json_string_value(v), json_string_length(v));
    return CODEC_OK;
}

static codec_err json_int(json_t *obj, const char *key, int64_t *dst, char *detail,
                          size_t detail_size) {
    json_t *v = json_object_get(obj, key);
    if (!v) return codec_fail(CODEC_ERR_MISSING_FIELD, detail, detail_size, "%s is missing", key);
    if (!json_is_integer(v))
        return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "%s must be an integer", key);
    *dst = json_integer_value(v);
    return CODEC_OK;
}

static codec_err json_item(json_t *o, codec_recs_owned *r, codec_rec_item *it, char *detail,
                           size_t detail_size) {
    if (!json_is_object(o))
        return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "items[] must be objects");
    codec_err e = json_str(o, "item_id", r, &it->item_id, detail, detail_size);
    if (e) return e;
    json_t *score = json_object_get(o, "score"), *src = json_object_get(o, "source");
    if (!score || !src)
        return codec_fail(CODEC_ERR_MISSING_FIELD, detail, detail_size,
                          "items[] need score and source");
    if (!json_is_number(score) || !json_is_string(src))
        return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size,
                          "items[].score must be a number and source a string");
    it->score = (float)json_number_value(score);
    const char *s = json_string_value(src);
    for (int i = 0; i < CODEC_SOURCES; i++)
        if (!strcmp(s, codec_source_name((codec_source)i))) return it->source = i, CODEC_OK;
    return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size,
                      "items[].source \"%.40s\" is unknown", s);
}

static codec_err json_recs(json_t *root, codec_recs_owned *r, char *detail, size_t detail_size) {
    codec_recs *v = codec_recs_owned_view(r);
    codec_err e;
    if (!json_is_object(root))
        return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "not a JSON object");
    if ((e = json_str(root, "user_id", r, &v->user_id, detail, detail_size))) return e;
    json_t *items = json_object_get(root, "items");
    if (!json_is_array(items))
        return codec_fail(items ? CODEC_ERR_FIELD_TYPE : CODEC_ERR_MISSING_FIELD, detail,
                          detail_size, "items must be an array");
    codec_rec_item *it = codec_recs_owned_items(r, json_array_size(items));
    for (size_t i = 0; i < json_array_size(items); i++)
        if ((e = json_item(json_array_get(items, i), r, &it[i], detail, detail_size))) return e;
    if ((e = json_str(root, "model_version", r, &v->model_version, detail, detail_size))) return e;
    if ((e = json_str(root, "offline_version", r, &v->offline_version, detail, detail_size)))
        return e;
    if ((e = json_str(root, "variant", r, &v->variant, detail, detail_size))) return e;
    if ((e = json_int(root, "trigger_ts", &v->trigger_ts, detail, detail_size))) return e;
    return json_int(root, "generated_ts", &v->generated_ts, detail, detail_size);
}

codec_err codec_json_decode_recs(const char *buf, size_t len, codec_recs_owned *r, char *detail,
                                 size_t detail_size) {
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, 0, &jerr);
    if (!root)
        return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size, "JSON: %s at byte %d", jerr.text,
                          jerr.position);
    codec_err e = json_recs(root, r, detail, detail_size);
    json_decref(root);
    return e;
}
