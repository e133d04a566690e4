/* codec: Avro binary primitives and the raw Avro form of UserEvent.
 *
 * UserEvent is a tiny fixed schema, so its Avro binary form is read and
 * written by hand here instead of through avro-c's generic values: the hand
 * reader checks every length against the bytes actually present before
 * touching them (avro-c trusts declared lengths and allocates them), needs
 * no allocation, and is several times faster. avro-c is still used for
 * what it is good at: resolving a foreign writer schema (avro_resolve.c).
 * The field order below is schemas/user_event.avsc's; test_codec_encode
 * checks byte-for-byte equality with avro-c's encoder of the embedded schema,
 * so a schema change that this file misses fails the tests. */
#include "codec_int.h"
#include "util.h"

#include <math.h>
#include <string.h>

/* ==== Primitives ==== */

codec_err codec_avro_read_long(codec_avro_cur *c, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end) return CODEC_ERR_TRUNCATED;
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return CODEC_OK;
        }
    }
    return CODEC_ERR_BAD_VALUE; /* over 10 bytes: no valid long */
}

codec_err codec_avro_read_float(codec_avro_cur *c, float *out) {
    if (c->end - c->p < 4) return CODEC_ERR_TRUNCATED;
    uint32_t u = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
                 (uint32_t)c->p[3] << 24;
    memcpy(out, &u, 4);
    c->p += 4;
    return CODEC_OK;
}

codec_err codec_avro_read_str(codec_avro_cur *c, const char **s, size_t *len) {
    int64_t n;
    codec_err e = codec_avro_read_long(c, &n);
    if (e) return e;
    if (n < 0) return CODEC_ERR_BAD_VALUE;
    if ((uint64_t)n > (uint64_t)(c->end - c->p)) return CODEC_ERR_TRUNCATED;
    *s = (const char *)c->p;
    *len = (size_t)n;
    c->p += n;
    return CODEC_OK;
}

void codec_avro_put_long(codec_buf *b, int64_t v) {
    uint64_t z = util_zigzag(v);
    codec_buf_reserve(b, 10);
    while (z >= 0x80) {
        b->data[b->len++] = (char)(z | 0x80);
        z >>= 7;
    }
    b->data[b->len++] = (char)z;
}

void codec_avro_put_float(codec_buf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    codec_buf_put(b, le, 4);
}

void codec_avro_put_str(codec_buf *b, const char *s, size_t len) {
    codec_avro_put_long(b, (int64_t)len);
    codec_buf_put(b, s, len);
}

void codec_frame_put(codec_buf *b, int32_t schema_id) {
    uint32_t id = (uint32_t)schema_id;
    uint8_t hdr[5] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    codec_buf_put(b, hdr, 5);
}

/* ==== UserEvent ==== */

static codec_err read_fail(codec_err e, const char *field, char *detail, size_t detail_size) {
    if (e == CODEC_ERR_TRUNCATED)
        return codec_fail(e, detail, detail_size, "Avro input ends inside field %s", field);
    return codec_fail(e, detail, detail_size, "malformed Avro in field %s", field);
}

static codec_err read_id(codec_avro_cur *c, const char *field, char *dst, uint16_t *dst_len,
                         char *detail, size_t detail_size) {
    const char *s;
    size_t len;
    codec_err e = codec_avro_read_str(c, &s, &len);
    if (e == CODEC_ERR_BAD_VALUE)
        return codec_fail(e, detail, detail_size, "%s has a negative or malformed length", field);
    if (e) return read_fail(e, field, detail, detail_size);
    return codec_id_set(field, s, len, dst, dst_len, detail, detail_size);
}

/* A ["null", T] union: returns its branch (0 or 1) in *branch. */
static codec_err read_branch(codec_avro_cur *c, const char *field, int *branch, char *detail,
                             size_t detail_size) {
    int64_t idx;
    codec_err e = codec_avro_read_long(c, &idx);
    if (e) return read_fail(e, field, detail, detail_size);
    if (idx != 0 && idx != 1)
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                          "%s has union branch %lld, not 0 (null) or 1", field, (long long)idx);
    *branch = (int)idx;
    return CODEC_OK;
}

static codec_err read_optionals(codec_avro_cur *c, codec_event *out, char *detail,
                                size_t detail_size) {
    int branch;
    codec_err e = read_branch(c, "duration_ms", &branch, detail, detail_size);
    if (e) return e;
    out->has_duration = branch;
    if (branch && (e = codec_avro_read_long(c, &out->duration_ms)))
        return read_fail(e, "duration_ms", detail, detail_size);
    if ((e = read_branch(c, "weight", &branch, detail, detail_size))) return e;
    out->has_weight = branch;
    if (branch && (e = codec_avro_read_float(c, &out->weight)))
        return read_fail(e, "weight", detail, detail_size);
    return CODEC_OK;
}

codec_err codec_avro_decode_event(const uint8_t *buf, size_t len, codec_event *out, char *detail,
                                  size_t detail_size) {
    codec_avro_cur c = {buf, buf + len};
    codec_err e;
    if ((e = read_id(&c, "user_id", out->user_id, &out->user_len, detail, detail_size))) return e;
    if ((e = read_id(&c, "item_id", out->item_id, &out->item_len, detail, detail_size))) return e;
    int64_t type;
    if ((e = codec_avro_read_long(&c, &type))) return read_fail(e, "type", detail, detail_size);
    if (type < 0 || type >= CODEC_EVENT_TYPES)
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size,
                          "type enum index %lld is not one of 0..%d", (long long)type,
                          CODEC_EVENT_TYPES - 1);
    out->type = (codec_event_type)type;
    if ((e = codec_avro_read_long(&c, &out->ts_ms))) return read_fail(e, "ts", detail, detail_size);
    if ((e = read_optionals(&c, out, detail, detail_size))) return e;
    if (c.p != c.end)
        return codec_fail(CODEC_ERR_TRAILING, detail, detail_size,
                          "%zu bytes left after the Avro record", (size_t)(c.end - c.p));
    return codec_event_check_values(out, detail, detail_size);
}

int codec_avro_encode_event(const codec_event *ev, codec_buf *out, char *errstr,
                            size_t errstr_size) {
    codec_avro_put_str(out, ev->user_id, ev->user_len);
    codec_avro_put_str(out, ev->item_id, ev->item_len);
    codec_avro_put_long(out, ev->type);
    codec_avro_put_long(out, ev->ts_ms);
    codec_avro_put_long(out, ev->has_duration ? 1 : 0);
    if (ev->has_duration) codec_avro_put_long(out, ev->duration_ms);
    codec_avro_put_long(out, ev->has_weight ? 1 : 0);
    if (ev->has_weight) codec_avro_put_float(out, ev->weight);
    return 0;
}
