/* Datasets: reading an event file skips and counts bad lines (reporting
 * only the first few, with line numbers) or fails at the first under
 * strict; ids are interned once; sorting by time is stable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"

static char path[512];

static int setup(void **state) {
    const char *tmp = getenv("TEST_TMPDIR");
    if (!tmp) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(path, sizeof(path), "%s/test_model_dataset.%d.tsv", tmp, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("u1\ti1\tLISTEN\t300\n", f);              /* 1 */
    fputs("u1\ti2\tVIEW\t100\n", f);                /* 2 */
    for (int i = 0; i < 7; i++) fputs("junk\n", f); /* 3..9: bad */
    fputs("u2\ti1\tLIKE\t100\n", f);                /* 10 */
    fputs("u2\ti3\tSHOUT\t5\n", f);                 /* 11: bad */
    fputs("u3\ti2\tlisten\t200\n", f);              /* 12 */
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    unlink(path);
    return 0;
}

typedef struct warnings {
    int n;
    char first[512];
} warnings;

static void on_warn(const char *msg, void *opaque) {
    warnings *w = opaque;
    if (w->n++ == 0) snprintf(w->first, sizeof(w->first), "%s", msg);
}

static void test_skip_and_count(void **state) {
    model_dataset *ds = model_dataset_new();
    codec_file_opts opts = {.format = CODEC_FILE_TSV, .ts_scale = 1};
    size_t bad = 0;
    warnings w = {0};
    char err[512];
    assert_int_equal(
        model_dataset_read_file(ds, path, &opts, 0, &bad, on_warn, &w, err, sizeof(err)), 0);
    assert_int_equal(ds->n, 4);
    assert_int_equal(bad, 8);
    assert_int_equal(w.n, 5); /* only the first few are reported */
    assert_non_null(strstr(w.first, ":3:"));
    assert_int_equal(model_ids_count(ds->users), 3);
    assert_int_equal(model_ids_count(ds->items), 2); /* i3 was only on a bad line */
    assert_int_equal(ds->rows[0].user, ds->rows[1].user);
    assert_int_equal(ds->rows[2].type, CODEC_EVENT_LIKE);
    assert_true(ds->rows[0].weight < 0); /* no explicit weight */
    model_dataset_free(ds);
}

static void test_strict_stops_with_line_number(void **state) {
    model_dataset *ds = model_dataset_new();
    codec_file_opts opts = {.format = CODEC_FILE_TSV, .ts_scale = 1};
    size_t bad = 0;
    char err[512] = "";
    assert_int_equal(
        model_dataset_read_file(ds, path, &opts, 1, &bad, NULL, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":3:"));
    assert_int_equal(bad, 1);
    model_dataset_free(ds);
    ds = model_dataset_new();
    assert_int_equal(model_dataset_read_file(ds, "/nonexistent/events.tsv", &opts, 0, &bad, NULL,
                                             NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/events.tsv"));
    model_dataset_free(ds);
}

static void test_sort_by_time_is_stable(void **state) {
    model_dataset *ds = model_dataset_new();
    codec_file_opts opts = {.format = CODEC_FILE_TSV, .ts_scale = 1};
    size_t bad;
    char err[512];
    assert_int_equal(
        model_dataset_read_file(ds, path, &opts, 0, &bad, NULL, NULL, err, sizeof(err)), 0);
    model_dataset_sort_by_time(ds);
    /* ts 100 (u1,i2), 100 (u2,i1) keep file order; then 200, 300. */
    assert_int_equal(ds->rows[0].ts_ms, 100);
    assert_string_equal(model_ids_name(ds->users, ds->rows[0].user), "u1");
    assert_string_equal(model_ids_name(ds->users, ds->rows[1].user), "u2");
    assert_int_equal(ds->rows[2].ts_ms, 200);
    assert_int_equal(ds->rows[3].ts_ms, 300);
    model_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skip_and_count),
        cmocka_unit_test(test_strict_stops_with_line_number),
        cmocka_unit_test(test_sort_by_time_is_stable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
