/* codec: the Recommendations record in JSON and raw Avro, both directions.
 *
 * Encoding is on the processor's hot path (one record per user update), so
 * both forms are written by hand into the reused codec_buf. Decoding is for
 * tests, `demo` and `inspect`: it copies strings into storage owned by a
 * codec_recs_owned, checking every Avro length against the input first. */
#include "codec_int.h"
#include "util.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct codec_recs_owned {
    codec_recs view;
    codec_rec_item *items;
    char **strs; /* every string the view points to */
    size_t n_strs, cap_strs;
};

/* ==== Owned storage ==== */

codec_recs_owned *codec_recs_owned_new(void) {
    codec_recs_owned *r = util_calloc(1, sizeof(*r));
    r->view.user_id = r->view.model_version = r->view.offline_version = r->view.variant = "";
    return r;
}

const char *codec_recs_owned_str(codec_recs_owned *r, const char *s, size_t len) {
    if (r->n_strs == r->cap_strs) {
        r->cap_strs = r->cap_strs ? r->cap_strs * 2 : 16;
        r->strs = util_realloc(r->strs, r->cap_strs * sizeof(*r->strs));
    }
    return r->strs[r->n_strs++] = util_strndup(s, len);
}

codec_rec_item *codec_recs_owned_items(codec_recs_owned *r, size_t n) {
    free(r->items);
    r->items = util_calloc(n ? n : 1, sizeof(*r->items));
    r->view.items = r->items;
    r->view.n_items = n;
    return r->items;
}

codec_recs *codec_recs_owned_view(codec_recs_owned *r) {
    return &r->view;
}

const codec_recs *codec_recs_view(const codec_recs_owned *r) {
    return &r->view;
}

void codec_recs_free(codec_recs_owned *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_strs; i++) free(r->strs[i]);
    free(r->strs);
    free(r->items);
    free(r);
}

/* ==== Encoding ==== */

static const char *str_or_empty(const char *s) {
    return s ? s : "";
}

/* Carried by the blend, so a list's ids are not counted again by every
 * check and encoder (strlen was ~1.8% of the processor's samples, most of
 * it on the same ids). */
size_t codec_rec_item_len(const codec_rec_item *it) {
    return it->item_len ? it->item_len : strlen(str_or_empty(it->item_id));
}

static int check_recs(const codec_recs *r, char *errstr, size_t errstr_size) {
    char detail[128];
    const char *u = str_or_empty(r->user_id);
    if (codec_id_check("user_id", u, strlen(u), detail, sizeof(detail)))
        return codec_errstr(errstr, errstr_size, "%s", detail);
    for (size_t i = 0; i < r->n_items; i++) {
        const codec_rec_item *it = &r->items[i];
        const char *s = str_or_empty(it->item_id);
        if (codec_id_check("item_id", s, codec_rec_item_len(it), detail, sizeof(detail)))
            return codec_errstr(errstr, errstr_size, "item %zu: %s", i, detail);
        if (!isfinite(it->score))
            return codec_errstr(errstr, errstr_size, "item %zu: score is not finite", i);
        if ((unsigned)it->source >= CODEC_SOURCES)
            return codec_errstr(errstr, errstr_size, "item %zu: source %d is out of range", i,
                                (int)it->source);
    }
    return 0;
}

static void json_key_str(codec_buf *b, const char *key, const char *s) {
    codec_buf_put(b, key, strlen(key));
    codec_json_put_str(b, s, strlen(s));
}

int codec_json_encode_recs(const codec_recs *r, codec_buf *out, char *errstr, size_t errstr_size) {
    if (check_recs(r, errstr, errstr_size)) return -1;
    json_key_str(out, "{\"user_id\":", r->user_id);
    codec_buf_put(out, ",\"items\":[", 10);
    for (size_t i = 0; i < r->n_items; i++) {
        const codec_rec_item *it = &r->items[i];
        if (i) codec_buf_putc(out, ',');
        codec_buf_put(out, "{\"item_id\":", 11);
        codec_json_put_str(out, it->item_id, codec_rec_item_len(it));
        codec_buf_put(out, ",\"score\":", 9);
        codec_buf_put_float(out, it->score);
        const char *src = codec_source_name(it->source);
        codec_buf_put(out, ",\"source\":\"", 11);
        codec_buf_put(out, src, strlen(src));
        codec_buf_put(out, "\"}", 2);
    }
    json_key_str(out, "],\"model_version\":", str_or_empty(r->model_version));
    json_key_str(out, ",\"offline_version\":", str_or_empty(r->offline_version));
    json_key_str(out, ",\"variant\":", str_or_empty(r->variant));
    codec_buf_put(out, ",\"trigger_ts\":", 14);
    codec_buf_put_i64(out, r->trigger_ts);
    codec_buf_put(out, ",\"generated_ts\":", 16);
    codec_buf_put_i64(out, r->generated_ts);
    codec_buf_putc(out, '}');
    return 0;
}

static void avro_cstr(codec_buf *b, const char *s) {
    codec_avro_put_str(b, s, strlen(s));
}

int codec_avro_encode_recs(const codec_recs *r, codec_buf *out, char *errstr, size_t errstr_size) {
    if (check_recs(r, errstr, errstr_size)) return -1;
    avro_cstr(out, r->user_id);
    if (r->n_items) { /* one block of n items, then the 0 terminator */
        codec_avro_put_long(out, (int64_t)r->n_items);
        for (size_t i = 0; i < r->n_items; i++) {
            codec_avro_put_str(out, r->items[i].item_id, codec_rec_item_len(&r->items[i]));
            codec_avro_put_float(out, r->items[i].score);
            codec_avro_put_long(out, r->items[i].source);
        }
    }
    codec_avro_put_long(out, 0);
    avro_cstr(out, str_or_empty(r->model_version));
    avro_cstr(out, str_or_empty(r->offline_version));
    avro_cstr(out, str_or_empty(r->variant));
    codec_avro_put_long(out, r->trigger_ts);
    codec_avro_put_long(out, r->generated_ts);
    return 0;
}
