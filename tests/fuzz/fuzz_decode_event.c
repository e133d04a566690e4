/* libFuzzer target for the codec's decoders: codec_decode_event on any
 * bytes (JSON, raw Avro, framed Avro with our schema and, under schema id 7,
 * a foreign writer schema resolved by avro-c), and codec_decode_recs.
 * Whatever decodes must re-encode in every form and decode to the same
 * value, so the fuzzer also checks the encoders; and the JSON decoder's
 * flat-object scanner must give what jansson alone gives. Built with clang by
 * tests/fuzz/CMakeLists.txt; crash inputs go to tests/fuzz/regressions/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_int.h"

#define FOREIGN_ID 7

static const char *writer_v2 =
    "{\"type\":\"record\",\"name\":\"UserEvent\",\"namespace\":\"io.recstream\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"item_id\",\"type\":\"string\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
    "\"symbols\":[\"SHARE\",\"LIKE\",\"LISTEN\",\"VIEW\"],\"default\":\"VIEW\"}},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\","
    "\"items\":[\"null\",\"int\",\"double\",\"boolean\",\"bytes\"]}}},"
    "{\"name\":\"client\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"duration_ms\",\"type\":[\"null\",\"int\"],\"default\":null}]}";

static codec_decoder *dec;
static codec_buf buf;

/* Freed at exit so that LeakSanitizer's exit check sees only real leaks:
 * avro-c keeps the strings of the last resolved record where LSan's pointer
 * scan does not find them, and reported them as leaked while they were
 * still held by the decoder. */
static void release(void) {
    codec_decoder_free(dec);
    codec_buf_free(&buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[256];
    (void)argc;
    (void)argv;
    dec = codec_decoder_new();
    atexit(release);
    if (codec_decoder_add_writer_schema(dec, FOREIGN_ID, writer_v2, err, sizeof(err))) {
        fprintf(stderr, "fuzz: writer schema: %s\n", err);
        abort();
    }
    return 0;
}

static void check_same(const codec_event *a, const codec_event *b, const char *form) {
    int same = a->user_len == b->user_len && !memcmp(a->user_id, b->user_id, a->user_len) &&
               a->item_len == b->item_len && !memcmp(a->item_id, b->item_id, a->item_len) &&
               a->type == b->type && a->ts_ms == b->ts_ms && a->has_duration == b->has_duration &&
               (!a->has_duration || a->duration_ms == b->duration_ms) &&
               a->has_weight == b->has_weight && (!a->has_weight || a->weight == b->weight);
    if (!same) {
        fprintf(stderr, "fuzz: %s round trip changed the event\n", form);
        abort();
    }
}

static void round_trip_event(const codec_event *ev) {
    static const char *names[] = {"json", "avro", "avro-framed"};
    char err[256], detail[256];
    for (int fmt = CODEC_FORMAT_JSON; fmt <= CODEC_FORMAT_AVRO_FRAMED; fmt++) {
        codec_event back;
        if (codec_encode_event(ev, (codec_format)fmt, 1, &buf, err, sizeof(err))) {
            fprintf(stderr, "fuzz: a decoded event does not encode as %s: %s\n", names[fmt], err);
            abort();
        }
        codec_err e = codec_decode_event(dec, buf.data, buf.len, &back, detail, sizeof(detail));
        if (e) {
            fprintf(stderr, "fuzz: re-encoded %s does not decode: %s\n", names[fmt], detail);
            abort();
        }
        check_same(ev, &back, names[fmt]);
    }
}

static void round_trip_recs(const codec_recs *r) {
    char err[256], detail[256];
    for (int fmt = CODEC_FORMAT_JSON; fmt <= CODEC_FORMAT_AVRO_FRAMED; fmt++) {
        /* Decoded recs may hold what the encoder refuses (empty ids): fine. */
        if (codec_encode_recs(r, (codec_format)fmt, 1, &buf, err, sizeof(err))) continue;
        codec_recs_owned *back = NULL;
        if (codec_decode_recs(buf.data, buf.len, &back, detail, sizeof(detail))) {
            fprintf(stderr, "fuzz: re-encoded recs do not decode: %s\n", detail);
            abort();
        }
        const codec_recs *b = codec_recs_view(back);
        int same = !strcmp(r->user_id, b->user_id) && r->n_items == b->n_items &&
                   r->trigger_ts == b->trigger_ts && !strcmp(r->variant, b->variant);
        for (size_t i = 0; same && i < r->n_items; i++)
            same = !strcmp(r->items[i].item_id, b->items[i].item_id) &&
                   r->items[i].score == b->items[i].score &&
                   r->items[i].source == b->items[i].source;
        codec_recs_free(back);
        if (!same) {
            fprintf(stderr, "fuzz: recs round trip changed the record\n");
            abort();
        }
    }
}

/* Both JSON paths: the same verdict and, when it is OK, the same event. */
static void check_json_paths(const uint8_t *data, size_t size) {
    codec_event a, b;
    char da[256] = "", db[256] = "";
    codec_err ea = codec_json_decode_event((const char *)data, size, NULL, &a, da, sizeof(da));
    codec_err eb =
        codec_json_decode_event_general((const char *)data, size, NULL, &b, db, sizeof(db));
    if (ea != eb) {
        fprintf(stderr, "fuzz: JSON scanner says %s (%s), jansson %s (%s)\n", codec_err_reason(ea),
                da, codec_err_reason(eb), db);
        abort();
    }
    if (ea == CODEC_OK) check_same(&a, &b, "JSON scanner against jansson");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    codec_event ev;
    char detail[256];
    check_json_paths(data, size);
    codec_err e = codec_decode_event(dec, data, size, &ev, detail, sizeof(detail));
    if (e == CODEC_OK)
        round_trip_event(&ev);
    else if (e < 0 || e >= CODEC_ERR__COUNT || !detail[0])
        abort(); /* every error explains */
    codec_recs_owned *r = NULL;
    if (codec_decode_recs(data, size, &r, detail, sizeof(detail)) == CODEC_OK) {
        round_trip_recs(codec_recs_view(r));
        codec_recs_free(r);
    }
    return 0;
}
