/* Id tables: interning gives dense indices in first-seen order, lookups find
 * exactly the interned strings (prefixes and other lengths are not found),
 * and the batched lookup of a window gives what one lookup at a time gives,
 * for runs longer than its prefetch run and with unknown ids mixed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "model.h"

#define N_IDS 5000

static void test_intern_and_find(void **state) {
    (void)state;
    model_ids *ids = model_ids_new();
    char name[32];
    for (uint32_t i = 0; i < N_IDS; i++) {
        int n = snprintf(name, sizeof(name), "item-%u", i);
        assert_int_equal(model_ids_intern(ids, name, (size_t)n), i);
    }
    assert_int_equal(model_ids_count(ids), N_IDS);
    assert_int_equal(model_ids_intern(ids, "item-7", 6), 7); /* already there */
    assert_int_equal(model_ids_find(ids, "item-123", 8), 123);
    assert_int_equal(model_ids_find(ids, "item-12", 7), 12);
    assert_int_equal(model_ids_find(ids, "item-123", 7), 12); /* a prefix is its own id */
    assert_int_equal(model_ids_find(ids, "item-99999", 10), MODEL_NONE);
    assert_string_equal(model_ids_name(ids, 4321), "item-4321");
    assert_null(model_ids_name(ids, N_IDS));
    model_ids_free(ids);
}

static void test_find_many_equals_find(void **state) {
    (void)state;
    model_ids *ids = model_ids_new();
    static char names[2 * N_IDS][32];
    static const char *x[2 * N_IDS];
    static size_t len[2 * N_IDS];
    static uint32_t out[2 * N_IDS];
    for (uint32_t i = 0; i < 2 * N_IDS; i++) {
        len[i] = (size_t)snprintf(names[i], sizeof(names[i]), "u%u", (i * 7919u) % (2 * N_IDS));
        if (i % 2) model_ids_intern(ids, names[i], len[i]); /* half of them unknown */
        x[i] = names[i];
    }
    /* lengths across the run size, 0 included */
    size_t sizes[] = {0, 1, 15, 16, 17, 50, 2 * N_IDS};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        memset(out, 0xab, sizeof(out));
        model_ids_find_many(ids, x, len, sizes[s], out);
        size_t unknown = 0;
        for (size_t i = 0; i < sizes[s]; i++) {
            assert_int_equal(out[i], model_ids_find(ids, x[i], len[i]));
            unknown += out[i] == MODEL_NONE;
        }
        assert_int_equal(unknown, (sizes[s] + 1) / 2); /* even positions were never interned */
        if (sizes[s] < 2 * N_IDS) assert_int_equal(out[sizes[s]], 0xabababab); /* no overrun */
    }
    model_ids_free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intern_and_find),
        cmocka_unit_test(test_find_many_equals_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
