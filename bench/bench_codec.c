/* bench_codec: ns per event of the codec's hot paths (decode JSON, raw and
 * framed Avro; encode Recommendations as JSON and Avro), the per-message
 * work of `recstream run`. Usage: bench_codec [ITERATIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "util.h"

static long iters = 1000000;

static void report(const char *name, int64_t t0, long n) {
    printf("%-22s %8.1f ns/event\n", name, (double)(util_mono_ns() - t0) / (double)n);
}

static void bench_decode(codec_decoder *dec, const char *name, const void *buf, size_t len) {
    codec_event ev;
    char detail[256];
    for (long i = 0; i < iters / 10; i++) /* warm up */
        codec_decode_event(dec, buf, len, &ev, detail, sizeof(detail));
    int64_t t0 = util_mono_ns();
    for (long i = 0; i < iters; i++)
        if (codec_decode_event(dec, buf, len, &ev, detail, sizeof(detail))) {
            fprintf(stderr, "%s: %s\n", name, detail);
            exit(1);
        }
    report(name, t0, iters);
}

static void bench_encode_recs(const char *name, codec_format fmt, const codec_recs *r) {
    codec_buf buf = {0};
    char err[256];
    int64_t t0 = util_mono_ns();
    for (long i = 0; i < iters; i++)
        if (codec_encode_recs(r, fmt, 1, &buf, err, sizeof(err))) {
            fprintf(stderr, "%s: %s\n", name, err);
            exit(1);
        }
    report(name, t0, iters);
    codec_buf_free(&buf);
}

int main(int argc, char **argv) {
    if (argc > 1) iters = atol(argv[1]);
    if (iters <= 0) iters = 1000000;
    codec_event ev = {.user_id = "user-123456",
                      .item_id = "track-98765432",
                      .type = CODEC_EVENT_LISTEN,
                      .ts_ms = 1700000000123LL,
                      .has_duration = 1,
                      .duration_ms = 215000};
    ev.user_len = (uint16_t)strlen(ev.user_id);
    ev.item_len = (uint16_t)strlen(ev.item_id);
    codec_buf json = {0}, avro = {0}, framed = {0};
    char err[256];
    codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &json, err, sizeof(err));
    codec_encode_event(&ev, CODEC_FORMAT_AVRO, 0, &avro, err, sizeof(err));
    codec_encode_event(&ev, CODEC_FORMAT_AVRO_FRAMED, 1, &framed, err, sizeof(err));
    codec_decoder *dec = codec_decoder_new();
    codec_decoder_add_writer_schema(dec, 1, codec_schema_user_event(), err, sizeof(err));
    printf("iterations: %ld; event: %zu bytes JSON, %zu bytes Avro\n", iters, json.len, avro.len);
    bench_decode(dec, "decode json", json.data, json.len);
    bench_decode(dec, "decode avro", avro.data, avro.len);
    bench_decode(dec, "decode framed", framed.data, framed.len);

    codec_rec_item items[20];
    char ids[20][32];
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], sizeof(ids[i]), "track-%d", 1000 + i * 37);
        items[i] = (codec_rec_item){ids[i], 1.0f / (float)(i + 1), (codec_source)(i % 3),
                                    (uint32_t)strlen(ids[i])};
    }
    codec_recs r = {"user-123456",   items,          20, "m-20261122", "o-20261122", "A",
                    1700000000123LL, 1700000000456LL};
    printf("recommendations: 20 items\n");
    bench_encode_recs("encode recs json", CODEC_FORMAT_JSON, &r);
    bench_encode_recs("encode recs avro", CODEC_FORMAT_AVRO, &r);
    codec_decoder_free(dec);
    codec_buf_free(&json), codec_buf_free(&avro), codec_buf_free(&framed);
    return 0;
}
