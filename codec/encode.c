/* codec: the public encode entry points and codec_decode_recs, which pick
 * the form and add or strip the Schema-Registry frame. */
#include "codec_int.h"

#include <string.h>

/* Validates an event before it is written, so that nothing we publish is
 * something our own decoder would reject. A zero length with a non-empty
 * string means the caller filled the id with strcpy: take its strlen. */
static int check_id(const char *field, const char *s, uint16_t len, char *errstr,
                    size_t errstr_size) {
    size_t n = len ? len : strnlen(s, CODEC_ID_MAX + 1);
    char tmp[CODEC_ID_MAX + 1], detail[160];
    uint16_t tmp_len;
    if (n > CODEC_ID_MAX || codec_id_set(field, s, n, tmp, &tmp_len, detail, sizeof(detail)))
        return codec_errstr(errstr, errstr_size, "%s",
                            n > CODEC_ID_MAX ? "id over the limit of 256 bytes" : detail);
    return 0;
}

static int check_event(const codec_event *ev, codec_event *fixed, char *errstr,
                       size_t errstr_size) {
    char detail[160];
    if (check_id("user_id", ev->user_id, ev->user_len, errstr, errstr_size) ||
        check_id("item_id", ev->item_id, ev->item_len, errstr, errstr_size))
        return -1;
    if ((unsigned)ev->type >= CODEC_EVENT_TYPES)
        return codec_errstr(errstr, errstr_size, "event type %d is out of range", (int)ev->type);
    if (codec_event_check_values(ev, detail, sizeof(detail)))
        return codec_errstr(errstr, errstr_size, "%s", detail);
    *fixed = *ev;
    if (!fixed->user_len) fixed->user_len = (uint16_t)strlen(ev->user_id);
    if (!fixed->item_len) fixed->item_len = (uint16_t)strlen(ev->item_id);
    return 0;
}

int codec_encode_event(const codec_event *ev, codec_format fmt, int32_t schema_id, codec_buf *out,
                       char *errstr, size_t errstr_size) {
    codec_event e;
    codec_buf_reset(out);
    if (check_event(ev, &e, errstr, errstr_size)) return -1;
    switch (fmt) {
    case CODEC_FORMAT_JSON:
        return codec_json_encode_event(&e, out, errstr, errstr_size);
    case CODEC_FORMAT_AVRO_FRAMED:
        codec_frame_put(out, schema_id); /* fall through */
    case CODEC_FORMAT_AVRO:
        return codec_avro_encode_event(&e, out, errstr, errstr_size);
    }
    return codec_errstr(errstr, errstr_size, "unknown format %d", (int)fmt);
}

int codec_encode_recs(const codec_recs *recs, codec_format fmt, int32_t schema_id, codec_buf *out,
                      char *errstr, size_t errstr_size) {
    codec_buf_reset(out);
    int rc;
    switch (fmt) {
    case CODEC_FORMAT_JSON:
        return codec_json_encode_recs(recs, out, errstr, errstr_size);
    case CODEC_FORMAT_AVRO_FRAMED:
        codec_frame_put(out, schema_id);
        if ((rc = codec_avro_encode_recs(recs, out, errstr, errstr_size))) codec_buf_reset(out);
        return rc;
    case CODEC_FORMAT_AVRO:
        return codec_avro_encode_recs(recs, out, errstr, errstr_size);
    }
    return codec_errstr(errstr, errstr_size, "unknown format %d", (int)fmt);
}

/* A blank length byte (0x20, 0x0a) before an id starting with '{' makes raw
 * Avro look like JSON: when such text does not parse, try Avro. */
static codec_err decode_recs_json_or_avro(const uint8_t *p, size_t len, codec_recs_owned **r,
                                          char *detail, size_t detail_size) {
    codec_err e = codec_json_decode_recs((const char *)p, len, *r, detail, detail_size);
    if (e != CODEC_ERR_NOT_JSON || p[0] == '{') return e;
    codec_recs_owned *avro = codec_recs_owned_new();
    char avro_detail[8];
    if (codec_avro_decode_recs(p, len, avro, avro_detail, sizeof(avro_detail)) == CODEC_OK) {
        codec_recs_free(*r);
        *r = avro;
        return CODEC_OK;
    }
    codec_recs_free(avro);
    return e;
}

/* Same detection rule as for events. The frame's schema id is not looked
 * up: Recommendations has one schema, ours. */
codec_err codec_decode_recs(const void *buf, size_t len, codec_recs_owned **out, char *detail,
                            size_t detail_size) {
    const uint8_t *p = buf;
    *out = NULL;
    if (!buf || len == 0) return codec_fail(CODEC_ERR_EMPTY, detail, detail_size, "empty message");
    codec_recs_owned *r = codec_recs_owned_new();
    codec_err e;
    if (p[0] == 0x00 && len >= 5)
        e = codec_avro_decode_recs(p + 5, len - 5, r, detail, detail_size);
    else if (codec_first_nonblank(p, len) == '{')
        e = decode_recs_json_or_avro(p, len, &r, detail, detail_size);
    else
        e = codec_avro_decode_recs(p, len, r, detail, detail_size);
    if (e)
        codec_recs_free(r);
    else
        *out = r;
    return e;
}
