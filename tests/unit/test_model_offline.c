/* Offline lists: the file holds each user's best unseen items by x_u . y_i
 * (checked by brute force), carries its version, is a real Avro container
 * that avro-c's own reader accepts, and is refused when truncated or
 * corrupted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <avro.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "test_model_fixture.h"

#define TOP_N 10

typedef struct fixture {
    model_dataset *ds;
    model_als als;
    char path[512];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TEST_TMPDIR");
    if (!tmp) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(fx->path, sizeof(fx->path), "%s/test_model_offline.%d.avro", tmp, (int)getpid());
    /* More users than one scoring block (256) and items than... a few. */
    fx->ds = fx_clustered(700, 150, 5, 12, 8);
    model_als_params p;
    model_als_params_default(&p);
    p.factors = 8;
    p.iterations = 5;
    char err[256];
    if (model_als_train(fx->ds, &p, NULL, NULL, &fx->als, err, sizeof(err)) != 0) return -1;
    if (model_offline_write(fx->path, fx->ds, &fx->als, TOP_N, "als-test-1", 2, err, sizeof(err)) !=
        0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    unlink(fx->path);
    model_als_free(&fx->als);
    model_dataset_free(fx->ds);
    free(fx);
    return 0;
}

static float score(const model_als *a, uint32_t u, uint32_t i) {
    float s = 0;
    for (uint32_t k = 0; k < a->factors; k++)
        s += a->user_factors[(size_t)u * a->factors + k] *
             a->item_factors[(size_t)i * a->factors + k];
    return s;
}

static void test_lists_are_best_unseen(void **state) {
    fixture *fx = *state;
    model_offline *o = NULL;
    char err[512];
    assert_int_equal(model_offline_load(fx->path, &o, err, sizeof(err)), 0);
    assert_string_equal(model_offline_version(o), "als-test-1");
    assert_int_equal(model_offline_users(o), fx->als.n_users);
    assert_null(model_offline_get(o, "nobody"));
    unsigned char *seen = malloc(fx->als.n_items);
    for (uint32_t u = 0; u < fx->als.n_users; u += 13) {
        const char *uid = model_ids_name(fx->ds->users, u);
        const model_offline_list *l = model_offline_get(o, uid);
        assert_non_null(l);
        assert_int_equal(l->n, TOP_N);
        memset(seen, 0, fx->als.n_items);
        for (size_t r = 0; r < fx->ds->n; r++)
            if (fx->ds->rows[r].user == u) seen[fx->ds->rows[r].item] = 1;
        /* The best unseen score by brute force. */
        float best = -INFINITY;
        for (uint32_t i = 0; i < fx->als.n_items; i++)
            if (!seen[i] && score(&fx->als, u, i) > best) best = score(&fx->als, u, i);
        assert_true(fabsf(l->scores[0] - best) <= 1e-5f * fabsf(best) + 1e-6f);
        for (uint32_t j = 0; j < l->n; j++) {
            uint32_t i = model_ids_find(fx->ds->items, l->item_ids[j], strlen(l->item_ids[j]));
            assert_int_not_equal(i, MODEL_NONE);
            assert_false(seen[i]);
            assert_true(fabsf(l->scores[j] - score(&fx->als, u, i)) < 1e-4f);
            if (j) assert_true(l->scores[j] <= l->scores[j - 1]);
        }
    }
    free(seen);
    model_offline_free(o);
}

static void test_avro_c_reads_the_file(void **state) {
    fixture *fx = *state;
    avro_file_reader_t reader;
    assert_int_equal(avro_file_reader(fx->path, &reader), 0);
    avro_schema_t schema = avro_file_reader_get_writer_schema(reader);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t rec;
    avro_generic_value_new(iface, &rec);
    uint32_t records = 0;
    while (avro_file_reader_read_value(reader, &rec) == 0) {
        avro_value_t field;
        const char *uid;
        size_t n;
        assert_int_equal(avro_value_get_by_name(&rec, "user_id", &field, NULL), 0);
        assert_int_equal(avro_value_get_string(&field, &uid, &n), 0);
        assert_string_equal(uid, model_ids_name(fx->ds->users, records));
        assert_int_equal(avro_value_get_by_name(&rec, "items", &field, NULL), 0);
        size_t items;
        avro_value_get_size(&field, &items);
        assert_int_equal(items, TOP_N);
        records++;
    }
    assert_int_equal(records, fx->als.n_users);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    avro_file_reader_close(reader);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_corruptions_refused(void **state) {
    fixture *fx = *state;
    FILE *f = fopen(fx->path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *good = malloc(size), *b = malloc(size);
    assert_int_equal(fread(good, 1, size, f), size);
    fclose(f);
    char bad[600];
    snprintf(bad, sizeof(bad), "%s.bad", fx->path);
    const size_t cuts[] = {0, 3, 50, 700, size / 2, size - 17, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        write_bytes(bad, good, cuts[i]);
        model_offline *o = NULL;
        char err[512] = "";
        assert_int_equal(model_offline_load(bad, &o, err, sizeof(err)), -1);
        assert_null(o);
        assert_non_null(strstr(err, bad));
    }
    const size_t flips[] = {0, size / 3, size / 2, size - 5};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(b, good, size);
        b[flips[i]] ^= 0x04;
        write_bytes(bad, b, size);
        model_offline *o = NULL;
        char err[512] = "";
        assert_int_equal(model_offline_load(bad, &o, err, sizeof(err)), -1);
        if (flips[i] == 0)
            assert_non_null(strstr(err, "Avro"));
        else
            assert_non_null(strstr(err, "checksum"));
    }
    model_offline *o = NULL;
    char err[512];
    assert_int_equal(model_offline_load("/nonexistent/x.avro", &o, err, sizeof(err)), -1);
    unlink(bad);
    free(good);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_are_best_unseen),
        cmocka_unit_test(test_avro_c_reads_the_file),
        cmocka_unit_test(test_corruptions_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
