/* Hot reload: a changed model file is swapped in, a file that fails
 * validation is refused and the old one stays, and a batch holding the old
 * model keeps it alive until it lets go (ASan would catch a use after free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "reload.h"
#include "test_consumer_fixture.h"

static void write_file(const char *path, const void *data, size_t len) {
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void test_swap_refuse_keep(void **st) {
    char dir[512], path[600], other[600], v1[64], v2[64], err[512];
    fx_dir(dir, sizeof(dir), "consumer-reload");
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    snprintf(other, sizeof(other), "%s/model2.bin", dir);
    fx_model(path, 30, 1, v1);
    fx_model(other, 30, 2, v2);
    assert_string_not_equal(v1, v2);

    reload *r = reload_start(path, NULL, 0, NULL, err, sizeof(err));
    assert_non_null(r);
    reload_view held;
    reload_acquire(r, &held);
    assert_string_equal(held.model_version, v1);
    assert_string_equal(held.offline_version, "none");
    assert_int_equal(reload_check_now(r), 0); /* unchanged */

    /* a corrupt file (one byte flipped in the middle) is refused */
    size_t len;
    char *good2 = read_file(other, &len);
    char *bad = malloc(len);
    memcpy(bad, good2, len);
    bad[len / 2] ^= 0x5a;
    write_file(path, bad, len);
    assert_int_equal(reload_check_now(r), 0);
    assert_int_equal(reload_failures(r), 1);
    assert_int_equal(reload_check_now(r), 0); /* the same bad file is not retried */
    assert_int_equal(reload_failures(r), 1);
    reload_view v;
    reload_acquire(r, &v);
    assert_string_equal(v.model_version, v1);
    reload_release(r, &v);

    /* a truncated one too */
    write_file(path, good2, len / 3);
    assert_int_equal(reload_check_now(r), 0);
    assert_int_equal(reload_failures(r), 2);

    /* a good new file is swapped in; the held view still reads the old one */
    write_file(path, good2, len);
    assert_int_equal(reload_check_now(r), 1);
    assert_int_equal(reload_count(r), 1);
    reload_acquire(r, &v);
    assert_string_equal(v.model_version, v2);
    reload_release(r, &v);
    assert_string_equal(held.model->version, v1);
    assert_true(held.model->n_items == 30);
    assert_true(model_item_index(held.model, "i3") != MODEL_NONE);
    reload_release(r, &held);
    reload_stop(r);
    free(bad);
    free(good2);
}

static void test_missing_or_bad_model_at_start(void **st) {
    char dir[512], path[600], err[512];
    fx_dir(dir, sizeof(dir), "consumer-reload-start");
    snprintf(path, sizeof(path), "%s/absent.bin", dir);
    assert_null(reload_start(path, NULL, 0, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "absent.bin"));
    write_file(path, "not a model", 11);
    assert_null(reload_start(path, NULL, 0, NULL, err, sizeof(err)));
    assert_null(reload_start(NULL, NULL, 0, NULL, err, sizeof(err)));
}

/* The background thread picks a new file up within a few intervals. */
static void test_thread_reloads(void **st) {
    char dir[512], path[600], other[600], v1[64], v2[64], err[512];
    fx_dir(dir, sizeof(dir), "consumer-reload-thread");
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    snprintf(other, sizeof(other), "%s/model2.bin", dir);
    fx_model(path, 20, 3, v1);
    fx_model(other, 20, 4, v2);
    reload *r = reload_start(path, NULL, 50, NULL, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(rename(other, path), 0);
    reload_view v = {0};
    for (int i = 0; i < 100; i++) {
        reload_acquire(r, &v);
        int done = !strcmp(v.model_version, v2);
        reload_release(r, &v);
        if (done) break;
        fx_sleep_ms(20);
    }
    assert_int_equal(reload_count(r), 1);
    reload_stop(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_refuse_keep),
        cmocka_unit_test(test_missing_or_bad_model_at_start),
        cmocka_unit_test(test_thread_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
