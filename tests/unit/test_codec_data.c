/* The data-driven decoder cases: every file in tests/data/events/bad/ must
 * fail with the reason EXPECTED names (and every file there must be named),
 * every file in good/ must decode and survive a JSON round trip. The same
 * files are produced through kcat by the stream-processor tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static char data_dir[1024];

static void find_data_dir(void) {
    char src[1024];
    snprintf(src, sizeof(src), "%s", __FILE__); /* tests/unit/test_codec_data.c */
    snprintf(data_dir, sizeof(data_dir), "%s/../data/events", dirname(src));
}

static size_t read_file(const char *dir, const char *name, char *buf, size_t cap) {
    char path[2048];
    if (snprintf(path, sizeof(path), "%s/%s/%s", data_dir, dir, name) >= (int)sizeof(path))
        fail_msg("path too long: %s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

typedef struct {
    char name[256], reason[64];
    int seen;
} expected;

static int load_expected(expected *ex, int cap) {
    char path[2048], line[512];
    snprintf(path, sizeof(path), "%s/bad/EXPECTED", data_dir);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    int n = 0;
    while (fgets(line, sizeof(line), f) && n < cap) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "%255s %63s", ex[n].name, ex[n].reason) == 2) ex[n++].seen = 0;
    }
    fclose(f);
    return n;
}

static void test_bad_files(void **state) {
    static expected ex[256];
    static char buf[65536];
    int n = load_expected(ex, 256);
    assert_true(n >= 20);
    codec_decoder *dec = codec_decoder_new();
    int failures = 0;
    for (int i = 0; i < n; i++) {
        size_t len = read_file("bad", ex[i].name, buf, sizeof(buf));
        codec_event ev;
        char detail[256] = "";
        codec_err e = codec_decode_event(dec, buf, len, &ev, detail, sizeof(detail));
        if (strcmp(codec_err_reason(e), ex[i].reason)) {
            print_error("%s: got %s (%s), want %s\n", ex[i].name, codec_err_reason(e), detail,
                        ex[i].reason);
            failures++;
        }
        ex[i].seen = 1;
    }
    /* every file in bad/ is listed, so no case goes untested */
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/bad", data_dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "EXPECTED")) continue;
        int listed = 0;
        for (int i = 0; i < n; i++) listed |= !strcmp(ex[i].name, de->d_name);
        if (!listed) print_error("%s is not in EXPECTED\n", de->d_name), failures++;
    }
    closedir(d);
    codec_decoder_free(dec);
    assert_int_equal(failures, 0);
}

static void test_good_files(void **state) {
    static char buf[65536];
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/good", data_dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    codec_decoder *dec = codec_decoder_new();
    codec_buf json = {0};
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        size_t len = read_file("good", de->d_name, buf, sizeof(buf));
        codec_event ev, back;
        char detail[256] = "", err[256];
        if (codec_decode_event(dec, buf, len, &ev, detail, sizeof(detail)))
            fail_msg("%s: %s", de->d_name, detail);
        assert_int_equal(codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &json, err, sizeof(err)), 0);
        assert_int_equal(
            codec_decode_event(dec, json.data, json.len, &back, detail, sizeof(detail)), CODEC_OK);
        assert_string_equal(ev.user_id, back.user_id);
        assert_true(ev.ts_ms == back.ts_ms);
        files++;
    }
    closedir(d);
    codec_buf_free(&json);
    codec_decoder_free(dec);
    assert_true(files >= 5);
}

int main(void) {
    find_data_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_good_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
