/* codec: the event decoder object, form detection and Schema-Registry
 * framing. Knows writer schemas by id; a writer schema equal to ours takes
 * the hand-written fast path (avro_event.c), any other goes through an
 * avro-c resolver (avro_resolve.c). */
#include "codec_int.h"
#include "codec_resolve.h"
#include "util.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct writer_entry {
    int32_t id;
    codec_resolver *res; /* NULL: read with our own schema */
    int64_t retry_at;    /* > 0: unknown to the registry; ask again after this */
    char *error;         /* why messages with this id fail (CODEC_ERR_SCHEMA), or NULL */
} writer_entry;

struct codec_decoder {
    avro_schema_t reader;
    writer_entry *writers;
    size_t n_writers, cap_writers;
    codec_schema_fetch_cb fetch;
    void *fetch_opaque;
    /* After the fetcher could not ask (-1), no id is asked for until then:
     * a stream of many new ids during an outage must not cost one timeout
     * each, nor an entry each. */
    int64_t fetch_down_until;
    char *fetch_down_error;
};

codec_decoder *codec_decoder_new(void) {
    codec_decoder *dec = util_calloc(1, sizeof(*dec));
    const char *json = codec_schema_user_event();
    if (avro_schema_from_json_length(json, strlen(json), &dec->reader)) {
        /* The schema is compiled in: failing here is a build defect. */
        log_error("codec: embedded user_event.avsc does not parse: %s", avro_strerror());
        abort();
    }
    return dec;
}

void codec_decoder_free(codec_decoder *dec) {
    if (!dec) return;
    for (size_t i = 0; i < dec->n_writers; i++) {
        codec_resolver_free(dec->writers[i].res);
        free(dec->writers[i].error);
    }
    free(dec->writers);
    free(dec->fetch_down_error);
    avro_schema_decref(dec->reader);
    free(dec);
}

void codec_decoder_set_fetcher(codec_decoder *dec, codec_schema_fetch_cb cb, void *opaque) {
    dec->fetch = cb;
    dec->fetch_opaque = opaque;
}

static writer_entry *find_writer(codec_decoder *dec, int32_t id) {
    for (size_t i = 0; i < dec->n_writers; i++)
        if (dec->writers[i].id == id) return &dec->writers[i];
    return NULL;
}

static writer_entry *put_writer(codec_decoder *dec, int32_t id) {
    writer_entry *w = find_writer(dec, id);
    if (w) {
        codec_resolver_free(w->res);
        free(w->error);
        *w = (writer_entry){.id = id};
        return w;
    }
    if (dec->n_writers == dec->cap_writers) {
        dec->cap_writers = dec->cap_writers ? dec->cap_writers * 2 : 8;
        dec->writers = util_realloc(dec->writers, dec->cap_writers * sizeof(*dec->writers));
    }
    w = &dec->writers[dec->n_writers++];
    *w = (writer_entry){.id = id};
    return w;
}

/* 1 when json is our reader schema (same canonical form), 0 otherwise. */
static int is_reader_schema(codec_decoder *dec, const char *json) {
    avro_schema_t s;
    if (avro_schema_from_json_length(json, strlen(json), &s)) return 0;
    int same = avro_schema_equal(s, dec->reader);
    avro_schema_decref(s);
    return same;
}

int codec_decoder_add_writer_schema(codec_decoder *dec, int32_t schema_id, const char *schema_json,
                                    char *errstr, size_t errstr_size) {
    codec_resolver *res = NULL;
    if (!is_reader_schema(dec, schema_json)) {
        res = codec_resolver_new(schema_json, errstr, errstr_size);
        if (!res) return -1;
    }
    put_writer(dec, schema_id)->res = res;
    return 0;
}

/* Adds the fetched schema for id, or remembers why it cannot be used. */
static writer_entry *learn_writer(codec_decoder *dec, int32_t id, const char *json) {
    char errstr[256];
    if (codec_decoder_add_writer_schema(dec, id, json, errstr, sizeof(errstr)) == 0)
        return find_writer(dec, id);
    writer_entry *w = put_writer(dec, id);
    w->error = util_strdup(errstr);
    return w;
}

/* The fetcher's answer for id (1, 0, -1 as codec_schema_fetch_cb), or -1
 * without asking while an earlier "could not ask" is fresh. */
static int ask_fetcher(codec_decoder *dec, int32_t id, char **json, char *errstr,
                       size_t errstr_size) {
    int64_t now = util_now_ms();
    if (now < dec->fetch_down_until)
        return snprintf(errstr, errstr_size, "%s", dec->fetch_down_error), -1;
    int found = dec->fetch(id, dec->fetch_opaque, json, errstr, errstr_size);
    if (found == -1) {
        dec->fetch_down_until = now + CODEC_FETCH_RETRY_FAILED_MS;
        free(dec->fetch_down_error);
        dec->fetch_down_error = util_strdup(errstr);
    }
    return found;
}

/* Forgets every failed id (they would be asked again anyway) once there are
 * CODEC_FETCH_FAILED_MAX of them; ids with a schema are kept. */
static void forget_failed(codec_decoder *dec) {
    size_t failed = 0, kept = 0;
    for (size_t i = 0; i < dec->n_writers; i++) failed += dec->writers[i].retry_at > 0;
    if (failed < CODEC_FETCH_FAILED_MAX) return;
    for (size_t i = 0; i < dec->n_writers; i++) {
        writer_entry *w = &dec->writers[i];
        if (w->retry_at > 0) {
            free(w->error);
            continue;
        }
        dec->writers[kept++] = *w;
    }
    dec->n_writers = kept;
}

/* Asks for id and records the outcome. An id the registry does not know is
 * kept until retry_at, so that a stream of such messages costs one request
 * per period, not one each. NULL with errstr when the registry could not be
 * asked (ask_fetcher then holds off every id for a while). */
static writer_entry *fetch_writer(codec_decoder *dec, int32_t id, char *errstr,
                                  size_t errstr_size) {
    char *json = NULL;
    errstr[0] = 0;
    int found = ask_fetcher(dec, id, &json, errstr, errstr_size);
    if (found == 1 && json) {
        writer_entry *w = learn_writer(dec, id, json);
        free(json);
        return w;
    }
    free(json);
    if (found == -1) return NULL;
    forget_failed(dec);
    writer_entry *w = put_writer(dec, id);
    w->error = util_strdup(errstr[0] ? errstr : "no writer schema for this id");
    w->retry_at = util_now_ms() + CODEC_FETCH_RETRY_UNKNOWN_MS;
    return w;
}

/* Finds or learns the writer for id; NULL with *err set when unusable. A
 * schema that does not resolve is remembered for good: ids never change
 * meaning in a registry, and asking again for every message would flood it.
 * Without a fetcher an unknown id is read with our own schema. */
static writer_entry *writer_for(codec_decoder *dec, int32_t id, codec_err *err, char *detail,
                                size_t detail_size) {
    writer_entry *w = find_writer(dec, id);
    if (!w && !dec->fetch) w = put_writer(dec, id);
    if (!w || (w->retry_at && util_now_ms() >= w->retry_at)) {
        char why[256];
        if (!(w = fetch_writer(dec, id, why, sizeof(why)))) {
            *err = codec_fail(CODEC_ERR_SCHEMA_UNAVAILABLE, detail, detail_size, "schema id %d: %s",
                              (int)id, why);
            return NULL;
        }
    }
    if (!w->error) return w;
    *err = codec_fail(CODEC_ERR_SCHEMA, detail, detail_size, "schema id %d: %s", (int)id, w->error);
    return NULL;
}

static codec_err decode_framed(codec_decoder *dec, const uint8_t *p, size_t len, codec_event *out,
                               char *detail, size_t detail_size) {
    int32_t id =
        (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]);
    codec_err err = CODEC_OK;
    writer_entry *w = writer_for(dec, id, &err, detail, detail_size);
    if (!w) return err;
    if (w->res) return codec_resolver_decode(w->res, p + 5, len - 5, out, detail, detail_size);
    return codec_avro_decode_event(p + 5, len - 5, out, detail, detail_size);
}

/* Printable text that is neither JSON nor Avro is far more often a person's
 * typo in kcat than a corrupt Avro record: say "not_json" for it. */
static int looks_like_text(const uint8_t *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return 0;
    return util_utf8_valid((const char *)p, len);
}

/* JSON parse failures after leading blanks: the message may be raw Avro
 * whose length byte is a blank (0x20 or 0x0a) and whose id starts with '{'.
 * A raw UserEvent is never valid JSON (its enum byte is 0x00, 0x02 or 0x04,
 * which JSON forbids), so trying Avro second cannot misread JSON. */
static int json_parse_failed(codec_err e) {
    return e == CODEC_ERR_NOT_JSON || e == CODEC_ERR_UTF8 || e == CODEC_ERR_TRAILING;
}

static codec_err decode_json_or_avro(const uint8_t *p, size_t len, codec_event *out, char *detail,
                                     size_t detail_size) {
    codec_err e = codec_json_decode_event((const char *)p, len, NULL, out, detail, detail_size);
    if (p[0] == '{' || !json_parse_failed(e)) return e;
    char avro_detail[8];
    if (codec_avro_decode_event(p, len, out, avro_detail, sizeof(avro_detail)) == CODEC_OK)
        return CODEC_OK;
    return e;
}

codec_err codec_decode_event(codec_decoder *dec, const void *buf, size_t len, codec_event *out,
                             char *detail, size_t detail_size) {
    const uint8_t *p = buf;
    if (len == 0 || !buf) return codec_fail(CODEC_ERR_EMPTY, detail, detail_size, "empty message");
    if (p[0] == 0x00 && len >= 5) return decode_framed(dec, p, len, out, detail, detail_size);
    if (codec_first_nonblank(p, len) == '{')
        return decode_json_or_avro(p, len, out, detail, detail_size);
    codec_err e = codec_avro_decode_event(p, len, out, detail, detail_size);
    if (e && looks_like_text(p, len))
        return codec_fail(CODEC_ERR_NOT_JSON, detail, detail_size,
                          "text that is not a JSON object (and not Avro)");
    return e;
}
