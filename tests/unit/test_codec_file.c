/* Event files: TSV (MovieLens u.data as it ships), CSV with a header and
 * quotes, JSON lines with defaults, and bad lines that are reported with
 * their path and number while reading goes on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"

static char path[512];

static const char *write_file(const char *name, const char *text) {
    const char *dir = getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static codec_file_reader *open_ok(const char *p, codec_file_format fmt, const char *cols,
                                  int header, int64_t scale) {
    codec_file_opts o = {fmt, cols, header, scale, CODEC_EVENT_VIEW};
    char err[256] = "";
    codec_file_reader *r = codec_file_open(p, &o, err, sizeof(err));
    if (!r) fail_msg("open %s: %s", p, err);
    return r;
}

static void test_movielens(void **state) {
    const char *p = write_file("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
                                         "22\t377\t1\t878887116\n");
    codec_file_reader *r = open_ok(p, codec_file_format_guess(p), "user,item,weight,ts", 0, 1000);
    codec_event ev;
    char err[256];
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_string_equal(ev.user_id, "196");
    assert_string_equal(ev.item_id, "242");
    assert_true(ev.has_weight && ev.weight == 3.0f);
    assert_true(ev.ts_ms == 881250949000LL);
    assert_int_equal(ev.type, CODEC_EVENT_VIEW);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_string_equal(ev.user_id, "22");
    assert_int_equal(codec_file_line(r), 3);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 0);
    codec_file_close(r);
}

static void test_csv_header_quotes(void **state) {
    const char *p =
        write_file("ev.csv", "user,item,type,ts,duration\r\n"
                             "\"u,1\",\"i \"\"x\"\"\",listen,2023-11-14T22:13:20Z,30\r\n"
                             "\r\n"
                             "u2,i2,LIKE,17,\r\n");
    assert_int_equal(codec_file_format_guess(p), CODEC_FILE_CSV);
    codec_file_reader *r = open_ok(p, CODEC_FILE_CSV, "user,item,type,ts,duration", 1, 1);
    codec_event ev;
    char err[256] = "";
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_string_equal(ev.user_id, "u,1");
    assert_string_equal(ev.item_id, "i \"x\"");
    assert_int_equal(ev.type, CODEC_EVENT_LISTEN);
    assert_true(ev.ts_ms == 1700000000000LL);
    assert_true(ev.has_duration && ev.duration_ms == 30);
    /* an empty duration is not a number: line 4 is bad, named by number */
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), -1);
    char want[600];
    snprintf(want, sizeof(want), "%s:4: bad_value", p);
    assert_memory_equal(err, want, strlen(want));
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 0);
    codec_file_close(r);
}

static void test_bad_lines_go_on(void **state) {
    const char *p = write_file("bad.tsv", "u1\ti1\tview\t10\n"
                                          "\ti2\tview\t11\n"
                                          "u3\ti3\tshare\t12\n"
                                          "u4\ti4\tview\tsoon\n"
                                          "u5\ti5\n"
                                          "u6\ti6\tlike\t-3\n"
                                          "u7\t\xff\tlike\t3\n"
                                          "u8\ti8\tlike\t13\textra\n");
    codec_file_reader *r = open_ok(p, CODEC_FILE_TSV, NULL, 0, 1);
    static const char *want[] = {NULL,
                                 ":2: id_empty",
                                 ":3: unknown_type",
                                 ":4: bad_value",
                                 ":5: missing_field",
                                 ":6: bad_value",
                                 ":7: invalid_utf8",
                                 NULL};
    codec_event ev;
    char err[256];
    for (int i = 0; i < 8; i++) {
        int rc = codec_file_next(r, &ev, err, sizeof(err));
        if (!want[i]) {
            assert_int_equal(rc, 1);
            continue;
        }
        assert_int_equal(rc, -1);
        if (!strstr(err, want[i])) fail_msg("line %d: %s lacks %s", i + 1, err, want[i]);
    }
    assert_string_equal(ev.user_id, "u8");
    assert_true(ev.ts_ms == 13);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 0);
    codec_file_close(r);
}

static void test_jsonl_defaults(void **state) {
    const char *p =
        write_file("ev.jsonl", "{\"user_id\":\"a\",\"item_id\":\"b\"}\n"
                               "{\"user_id\":\"a\",\"item_id\":\"c\",\"type\":\"like\",\"ts\":99}\n"
                               "not json\n");
    assert_int_equal(codec_file_format_guess(p), CODEC_FILE_JSONL);
    codec_file_opts o = {CODEC_FILE_JSONL, NULL, 0, 1, CODEC_EVENT_LISTEN};
    char err[256];
    codec_file_reader *r = codec_file_open(p, &o, err, sizeof(err));
    assert_non_null(r);
    codec_event ev;
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_int_equal(ev.type, CODEC_EVENT_LISTEN);
    assert_true(ev.ts_ms == 1); /* no ts: the line number */
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_int_equal(ev.type, CODEC_EVENT_LIKE);
    assert_true(ev.ts_ms == 99);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":3: not_json"));
    codec_file_close(r);
}

static void test_no_ts_column(void **state) {
    const char *p = write_file("pairs.tsv", "a\tx\nb\ty\n");
    codec_file_reader *r = open_ok(p, CODEC_FILE_TSV, "user,item", 0, 1);
    codec_event ev;
    char err[256];
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_int_equal(codec_file_next(r, &ev, err, sizeof(err)), 1);
    assert_true(ev.ts_ms == 2);
    codec_file_close(r);
}

static void test_open_errors(void **state) {
    codec_file_opts o = {CODEC_FILE_TSV, "user,item,rating", 0, 1, CODEC_EVENT_VIEW};
    char err[256] = "";
    assert_null(codec_file_open("/dev/null", &o, err, sizeof(err)));
    assert_non_null(strstr(err, "rating"));
    o.columns = "user,user,item";
    assert_null(codec_file_open("/dev/null", &o, err, sizeof(err)));
    o.columns = "item,ts";
    assert_null(codec_file_open("/dev/null", &o, err, sizeof(err)));
    o.columns = NULL;
    assert_null(codec_file_open("/nonexistent/events.tsv", &o, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/events.tsv"));
    assert_int_equal(codec_file_format_guess("x.TSV"), CODEC_FILE_TSV);
    assert_int_equal(codec_file_format_guess("u.data"), CODEC_FILE_TSV);
    assert_int_equal(codec_file_format_guess("x.ndjson"), CODEC_FILE_JSONL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_movielens),       cmocka_unit_test(test_csv_header_quotes),
        cmocka_unit_test(test_bad_lines_go_on), cmocka_unit_test(test_jsonl_defaults),
        cmocka_unit_test(test_no_ts_column),    cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
