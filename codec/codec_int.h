/* codec internals shared by the codec's source files: error helpers, id
 * validation, growable-buffer appends, the bounds-checked Avro cursor and
 * the per-form entry points that codec.h's public functions dispatch to.
 * Not part of the module's contract: nothing outside codec/ includes it. */
#ifndef RECSTREAM_CODEC_INT_H
#define RECSTREAM_CODEC_INT_H

#include "codec.h"

#include <stdarg.h>
#include <string.h>

/* ---- Errors: sets detail (may be NULL) and returns err. */
codec_err codec_fail(codec_err err, char *detail, size_t detail_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* errstr-style helper for the int-returning functions: always returns -1. */
int codec_errstr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks an id (1..CODEC_ID_MAX bytes of UTF-8 without NUL); field names
 * it in the detail. codec_id_set also copies it into dst (CODEC_ID_MAX + 1
 * bytes, NUL-terminated). */
codec_err codec_id_check(const char *field, const char *s, size_t len, char *detail,
                         size_t detail_size);
codec_err codec_id_set(const char *field, const char *s, size_t len, char *dst, uint16_t *dst_len,
                       char *detail, size_t detail_size);

/* Parses ISO-8601 UTC/offset time "2026-11-22T22:30:00[.123][Z|+01:00]"
 * into epoch milliseconds. Returns 0, or -1 when malformed. */
int codec_iso8601_parse(const char *s, size_t len, int64_t *ms);

/* ---- Growable buffer. */
void codec_buf_reserve(codec_buf *b, size_t extra);
void codec_buf_put_i64(codec_buf *b, int64_t v); /* v in decimal, without printf */
void codec_buf_put_float(codec_buf *b, float v); /* codec_float_fmt's digits */
/* Inline: the encoders append many short pieces, most of constant length,
 * which the compiler then copies without a call. */
static inline void codec_buf_put(codec_buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) codec_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static inline void codec_buf_putc(codec_buf *b, char c) {
    if (b->len + 1 > b->cap) codec_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

/* ---- Avro binary primitives (zigzag varints, little-endian floats). */
typedef struct codec_avro_cur {
    const uint8_t *p, *end;
} codec_avro_cur;

/* Each returns CODEC_OK, CODEC_ERR_TRUNCATED or CODEC_ERR_BAD_VALUE (a
 * varint longer than 10 bytes). */
codec_err codec_avro_read_long(codec_avro_cur *c, int64_t *out);
codec_err codec_avro_read_float(codec_avro_cur *c, float *out);
/* Reads a string/bytes length and checks it against the bytes left; on
 * success *s points into the input. */
codec_err codec_avro_read_str(codec_avro_cur *c, const char **s, size_t *len);

void codec_avro_put_long(codec_buf *b, int64_t v);
void codec_avro_put_float(codec_buf *b, float v);
void codec_avro_put_str(codec_buf *b, const char *s, size_t len);
void codec_frame_put(codec_buf *b, int32_t schema_id);

/* ---- Per-form event codecs. */
typedef struct codec_json_defaults {
    int has_type; /* a missing "type" takes default_type */
    codec_event_type default_type;
    int has_ts; /* a missing "ts" takes default_ts */
    int64_t default_ts;
} codec_json_defaults;

codec_err codec_json_decode_event(const char *buf, size_t len, const codec_json_defaults *defs,
                                  codec_event *out, char *detail, size_t detail_size);
/* The same, through jansson alone, never the flat-object scanner: the two
 * paths must agree, which the unit tests and the fuzzer check. */
codec_err codec_json_decode_event_general(const char *buf, size_t len,
                                          const codec_json_defaults *defs, codec_event *out,
                                          char *detail, size_t detail_size);
int codec_json_encode_event(const codec_event *ev, codec_buf *out, char *errstr,
                            size_t errstr_size);
/* Decodes a raw Avro UserEvent written with schemas/user_event.avsc. */
codec_err codec_avro_decode_event(const uint8_t *buf, size_t len, codec_event *out, char *detail,
                                  size_t detail_size);
int codec_avro_encode_event(const codec_event *ev, codec_buf *out, char *errstr,
                            size_t errstr_size);
/* Shared checks of decoded scalar fields, whatever the form. */
codec_err codec_event_check_values(const codec_event *ev, char *detail, size_t detail_size);

/* ---- Recommendations. */
int codec_json_encode_recs(const codec_recs *r, codec_buf *out, char *errstr, size_t errstr_size);
int codec_avro_encode_recs(const codec_recs *r, codec_buf *out, char *errstr, size_t errstr_size);
codec_recs_owned *codec_recs_owned_new(void);
/* Takes a copy of s (len bytes) owned by r; returns it NUL-terminated. */
const char *codec_recs_owned_str(codec_recs_owned *r, const char *s, size_t len);
codec_rec_item *codec_recs_owned_items(codec_recs_owned *r, size_t n);
codec_recs *codec_recs_owned_view(codec_recs_owned *r);
codec_err codec_json_decode_recs(const char *buf, size_t len, codec_recs_owned *r, char *detail,
                                 size_t detail_size);
codec_err codec_avro_decode_recs(const uint8_t *buf, size_t len, codec_recs_owned *r, char *detail,
                                 size_t detail_size);

/* Appends s as a quoted JSON string (escapes quotes, backslashes and
 * control characters; UTF-8 passes through). */
void codec_json_put_str(codec_buf *b, const char *s, size_t len);

/* Formats a float as the shortest of %.6g..%.9g that reads back exactly. */
int codec_float_fmt(char *dst, size_t size, float v);

/* Skips leading JSON whitespace; returns the first other byte or -1. */
int codec_first_nonblank(const uint8_t *buf, size_t len);

#endif
