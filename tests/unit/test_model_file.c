/* The model file: a built model round-trips exactly; truncation at any of
 * several points, a flipped byte anywhere, a wrong magic and a future
 * format version are all refused with a message saying why; the file is
 * replaced atomically. Also fold-in: for a user of the training data it
 * reproduces the ALS user solve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "test_model_fixture.h"
#include "util.h"

typedef struct fixture {
    model_dataset *ds;
    model_als_params p;
    model_als als;
    model *m;
    char path[512];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TEST_TMPDIR");
    if (!tmp) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(fx->path, sizeof(fx->path), "%s/test_model_file.%d.bin", tmp, (int)getpid());
    fx->ds = fx_clustered(400, 200, 5, 15, 21);
    model_als_params_default(&fx->p);
    fx->p.factors = 12;
    fx->p.iterations = 6;
    fx->p.regularization = 0.1f;
    fx->p.solver = MODEL_SOLVER_CHOLESKY;
    char err[256];
    if (model_als_train(fx->ds, &fx->p, NULL, NULL, &fx->als, err, sizeof(err)) != 0) return -1;
    if (model_build(fx->ds, &fx->als, &fx->p, 10, 25, 0, &fx->m, err, sizeof(err)) != 0) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    unlink(fx->path);
    model_free(fx->m);
    model_als_free(&fx->als);
    model_dataset_free(fx->ds);
    free(fx);
    return 0;
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*size);
    assert_int_equal(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, size, f), size);
    fclose(f);
}

/* Loading must fail, and the message must contain want. */
static void refused(const char *path, const char *want) {
    model *m = NULL;
    char err[512] = "";
    assert_int_equal(model_load(path, &m, err, sizeof(err)), -1);
    assert_null(m);
    if (!strstr(err, want)) fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_round_trip(void **state) {
    fixture *fx = *state;
    const model *a = fx->m;
    char err[512];
    assert_int_equal(model_save(a, fx->path, err, sizeof(err)), 0);
    assert_int_equal(access(fx->path, F_OK), 0);
    model *b = NULL;
    assert_int_equal(model_load(fx->path, &b, err, sizeof(err)), 0);
    assert_string_equal(a->version, b->version);
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(a->n_items, b->n_items);
    assert_int_equal(a->factors, b->factors);
    assert_int_equal(a->k, b->k);
    assert_int_equal(a->n_popular, 25);
    assert_int_equal(a->n_popular, b->n_popular);
    assert_true(a->regularization == b->regularization && a->alpha == b->alpha);
    size_t nf = (size_t)a->n_items * a->factors, nk = (size_t)a->n_items * a->k;
    assert_memory_equal(a->item_factors, b->item_factors, nf * 4);
    assert_memory_equal(a->gram, b->gram, (size_t)a->factors * a->factors * 4);
    assert_memory_equal(a->nbr_idx, b->nbr_idx, nk * 4);
    assert_memory_equal(a->nbr_sim, b->nbr_sim, nk * 4);
    assert_memory_equal(a->popular, b->popular, a->n_popular * 4);
    assert_memory_equal(a->popular_score, b->popular_score, a->n_popular * 4);
    for (uint32_t i = 0; i < a->n_items; i++) {
        const char *name = model_ids_name(a->items, i);
        assert_string_equal(name, model_ids_name(b->items, i));
        assert_int_equal(model_item_index(b, name), i);
    }
    assert_int_equal(model_item_index(b, "no-such-item"), MODEL_NONE);
    assert_non_null(strstr(b->version, "als-"));
    model_free(b);
}

static void test_corruptions_refused(void **state) {
    fixture *fx = *state;
    char err[512];
    assert_int_equal(model_save(fx->m, fx->path, err, sizeof(err)), 0);
    size_t size;
    unsigned char *good = slurp(fx->path, &size);
    char bad[600];
    snprintf(bad, sizeof(bad), "%s.bad", fx->path);
    /* Truncations: empty, inside the magic, inside the header, just after
     * it, in the factors, in the id table, one byte short. */
    const size_t cuts[] = {0, 5, 100, 144, 145, 1000, size / 2, size - 3, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        spit(bad, good, cuts[i]);
        refused(bad, cuts[i] < 8 ? "magic" : cuts[i] < 144 ? "truncated" : "truncated");
    }
    /* One flipped bit anywhere: header fields, payload, id table. */
    const size_t flips[] = {9, 17, 40, 80, 137, 150, size / 3, size - 2};
    unsigned char *b = malloc(size);
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(b, good, size);
        b[flips[i]] ^= 0x10;
        spit(bad, b, size);
        refused(bad, flips[i] == 9 ? "version" : "checksum");
    }
    memcpy(b, good, size);
    b[0] = 'X';
    spit(bad, b, size);
    refused(bad, "magic");
    memcpy(b, good, size);
    b[8] = 2; /* format version 2 */
    spit(bad, b, size);
    refused(bad, "format version 2");
    /* Appended garbage is as wrong as missing bytes. */
    unsigned char *longer = malloc(size + 4);
    memcpy(longer, good, size);
    memset(longer + size, 0, 4);
    spit(bad, longer, size + 4);
    refused(bad, "truncated");
    refused("/nonexistent/model.bin", "/nonexistent/model.bin");
    unlink(bad);
    free(longer);
    free(b);
    free(good);
}

/* Re-seals a mutated file (payload and header checksums recomputed), so
 * the structural checks behind the checksums get their turn. */
static void reseal(unsigned char *b, size_t size) {
    uint64_t h = util_hash64(b + 144, size - 144, 0);
    memcpy(b + 56, &h, 8);
    h = util_hash64(b, 136, 0);
    memcpy(b + 136, &h, 8);
}

static void test_structural_checks_behind_checksums(void **state) {
    fixture *fx = *state;
    const model *m = fx->m;
    char err[512];
    assert_int_equal(model_save(m, fx->path, err, sizeof(err)), 0);
    size_t size;
    unsigned char *good = slurp(fx->path, &size);
    unsigned char *b = malloc(size);
    char bad[600];
    snprintf(bad, sizeof(bad), "%s.bad", fx->path);
    size_t off_factors = 144, off_nbr = off_factors + (size_t)m->n_items * m->factors * 4 +
                                        (size_t)m->factors * m->factors * 4;
    size_t off_pop = off_nbr + 2 * (size_t)m->n_items * m->k * 4;
    size_t off_ids = off_pop + 2 * (size_t)m->n_popular * 4;
    uint32_t v = m->n_items;
    float nan = NAN;
    struct {
        size_t at;
        const void *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {off_nbr + 4, &v, 4, "out of range"}, /* neighbour index = n_items */
        {off_pop, &v, 4, "out of range"},     /* popular index = n_items */
        {off_factors + 8, &nan, 4, "NaN"},    /* a factor */
        {off_ids + 2, "i1", 2, "duplicate"},  /* first id "i0" -> "i1" */
        {off_ids + 2, "\xff", 1, "UTF-8"},    /* first id not UTF-8 */
        {off_ids, "\0\0", 2, "bad length"},   /* zero-length id */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(b, good, size);
        memcpy(b + cases[i].at, cases[i].bytes, cases[i].n);
        reseal(b, size);
        spit(bad, b, size);
        refused(bad, cases[i].want);
    }
    /* A real neighbour after a padding slot is refused too. */
    memcpy(b, good, size);
    uint32_t none = MODEL_NONE;
    memcpy(b + off_nbr, &none, 4);
    reseal(b, size);
    spit(bad, b, size);
    refused(bad, "out of range");
    /* And the unmodified, resealed file still loads (the offsets are right). */
    memcpy(b, good, size);
    reseal(b, size);
    spit(bad, b, size);
    model *ok = NULL;
    assert_int_equal(model_load(bad, &ok, err, sizeof(err)), 0);
    model_free(ok);
    unlink(bad);
    free(b);
    free(good);
}

static void test_save_replaces_atomically(void **state) {
    fixture *fx = *state;
    char err[512];
    assert_int_equal(model_save(fx->m, fx->path, err, sizeof(err)), 0);
    assert_int_equal(model_save(fx->m, fx->path, err, sizeof(err)), 0);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
    assert_int_equal(access(tmp, F_OK), -1); /* no temp file left behind */
    assert_int_equal(model_save(fx->m, "/nonexistent-dir/m.bin", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nonexistent-dir"));
}

/* Trained with the exact solver, items then users: a user's factors are
 * the solve against the final item factors, which fold-in must redo. */
static void test_foldin_reproduces_user_solve(void **state) {
    fixture *fx = *state;
    const model *m = fx->m;
    float vec[64];
    uint32_t checked = 0;
    for (uint32_t u = 0; u < fx->als.n_users; u += 37) {
        uint32_t items[64];
        float conf[64];
        size_t n = 0;
        for (size_t r = 0; r < fx->ds->n && n < 64; r++) {
            const model_interaction *row = &fx->ds->rows[r];
            if (row->user != u) continue;
            items[n] = row->item;
            conf[n++] = 1.0f + fx->p.alpha * fx->p.type_weight[row->type];
        }
        assert_int_equal(model_foldin(m, items, conf, n, vec), 0);
        const float *want = fx->als.user_factors + (size_t)u * m->factors;
        double num = 0, den = 0;
        for (uint32_t k = 0; k < m->factors; k++) {
            num += (vec[k] - want[k]) * (vec[k] - want[k]);
            den += want[k] * want[k];
        }
        assert_true(sqrt(num) <= 1e-3 * sqrt(den) + 1e-6);
        float d = model_dot(m, vec, items[0]);
        float e = 0;
        for (uint32_t k = 0; k < m->factors; k++)
            e += want[k] * m->item_factors[(size_t)items[0] * m->factors + k];
        assert_true(fabsf(d - e) < 1e-3f * fabsf(e) + 1e-5f);
        checked++;
    }
    assert_true(checked > 5);
    assert_true(model_dot(m, vec, MODEL_NONE) == 0.0f);
    /* No items: the zero vector. */
    assert_int_equal(model_foldin(m, NULL, NULL, 0, vec), 0);
    for (uint32_t k = 0; k < m->factors; k++) assert_true(vec[k] == 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corruptions_refused),
        cmocka_unit_test(test_structural_checks_behind_checksums),
        cmocka_unit_test(test_save_replaces_atomically),
        cmocka_unit_test(test_foldin_reproduces_user_solve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
