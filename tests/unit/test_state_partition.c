/* Unit tests of partition-scoped state (real RocksDB under TEST_TMPDIR):
 * list, count, drop, export/import round trip into another store, a
 * corrupt export refused without touching the store, and idle-user expiry
 * (on read, by sweep, by the compaction filter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"

static char base[512], dir_a[600], dir_b[600], file[600];

static int setup(void **st) {
    const char *tmp = getenv("TEST_TMPDIR");
    static int n;
    snprintf(base, sizeof(base), "%s/state_part_%d_%d", tmp ? tmp : "/tmp", (int)getpid(), n++);
    snprintf(dir_a, sizeof(dir_a), "%s/a", base);
    snprintf(dir_b, sizeof(dir_b), "%s/b", base);
    snprintf(file, sizeof(file), "%s/p.export", base);
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", base, base);
    return system(cmd);
}

static int teardown(void **st) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd);
}

static state_store *open_at(const char *dir, int64_t ttl_ms) {
    state_options o;
    state_options_default(&o);
    o.block_cache_mb = 8;
    o.write_buffer_mb = 4;
    o.idle_ttl_ms = ttl_ms;
    state_store *s = NULL;
    char err[256];
    assert_int_equal(state_open(dir, &o, &s, err, sizeof(err)), 0);
    return s;
}

/* Users u<p>_<i> for i < n under partition p, each with i+1 events, and an
 * offset of 1000 + p for topic "events", stamped last-seen at now. */
static void fill(state_store *s, int32_t p, int n, int64_t now) {
    state_batch *b = state_batch_new(s);
    state_batch_set_now(b, now);
    char id[32], item[32];
    for (int i = 0; i < n; i++) {
        state_user *u = state_user_new();
        for (int e = 0; e <= i; e++) {
            snprintf(item, sizeof(item), "it%d", e);
            state_user_push_event(u, item, strlen(item), 0, e, -1.0f, 50, NULL);
        }
        snprintf(id, sizeof(id), "u%d_%d", p, i);
        state_batch_put_user(b, p, id, strlen(id), u);
        state_user_free(u);
    }
    state_batch_set_offset(b, "events", p, 1000 + p);
    char err[256];
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
}

static uint64_t users_in(state_store *s, int32_t p) {
    uint64_t n = 99;
    char err[256];
    assert_int_equal(state_partition_count_users(s, p, &n, err, sizeof(err)), 0);
    return n;
}

static int events_of(state_store *s, int32_t p, const char *id) {
    const char *ids[1] = {id};
    size_t lens[1] = {strlen(id)};
    state_user *out[1];
    char err[256];
    assert_int_equal(state_multi_get(s, &p, ids, lens, 1, out, err, sizeof(err)), 0);
    int n = (int)out[0]->n_events;
    state_user_free(out[0]);
    return n;
}

static void test_list_and_drop(void **st) {
    state_store *s = open_at(dir_a, 0);
    fill(s, 0, 3, 1);
    fill(s, 7, 5, 1);
    fill(s, 300, 2, 1);
    int32_t *parts;
    size_t n;
    char err[256];
    assert_int_equal(state_partition_list(s, &parts, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0], 0);
    assert_int_equal(parts[1], 7);
    assert_int_equal(parts[2], 300);
    free(parts);
    assert_int_equal(users_in(s, 7), 5);
    assert_int_equal(users_in(s, 300), 2);

    assert_int_equal(state_partition_drop(s, 7, err, sizeof(err)), 0);
    assert_int_equal(users_in(s, 7), 0);
    int64_t next;
    assert_int_equal(state_get_offset(s, "events", 7, &next, err, sizeof(err)), 0);
    /* Neighbours untouched. */
    assert_int_equal(users_in(s, 0), 3);
    assert_int_equal(users_in(s, 300), 2);
    assert_int_equal(state_get_offset(s, "events", 300, &next, err, sizeof(err)), 1);
    assert_int_equal(next, 1300);
    assert_int_equal(state_partition_list(s, &parts, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    free(parts);
    state_close(s);
}

static void test_export_import_round_trip(void **st) {
    state_store *a = open_at(dir_a, 0);
    fill(a, 1, 40, 1);
    fill(a, 2, 10, 1);
    char err[256];
    uint64_t recs = 0;
    assert_int_equal(state_partition_export(a, 1, file, &recs, err, sizeof(err)), 0);
    assert_int_equal(recs, 41); /* 40 users + 1 offset */

    state_store *b = open_at(dir_b, 0);
    fill(b, 1, 3, 1); /* stale keys the import must replace */
    state_batch *bt = state_batch_new(b);
    state_user *u = state_user_new();
    state_batch_put_user(bt, 1, "stale", 5, u);
    state_user_free(u);
    assert_int_equal(state_batch_commit(bt, err, sizeof(err)), 0);
    state_batch_free(bt);
    int32_t part = -1;
    recs = 0;
    assert_int_equal(state_partition_import(b, file, &part, &recs, err, sizeof(err)), 0);
    assert_int_equal(part, 1);
    assert_int_equal(recs, 41);
    assert_int_equal(users_in(b, 1), 40);
    assert_int_equal(events_of(b, 1, "u1_39"), 40);
    assert_int_equal(events_of(b, 1, "stale"), 0);
    int64_t next;
    assert_int_equal(state_get_offset(b, "events", 1, &next, err, sizeof(err)), 1);
    assert_int_equal(next, 1001);
    assert_int_equal(users_in(b, 2), 0); /* only partition 1 moved */
    state_close(b);
    state_close(a);
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, at < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static void test_corrupt_export_refused(void **st) {
    state_store *a = open_at(dir_a, 0);
    fill(a, 4, 20, 1);
    char err[256];
    assert_int_equal(state_partition_export(a, 4, file, NULL, err, sizeof(err)), 0);
    long offsets[] = {100, -12, 3};
    for (size_t i = 0; i < 3; i++) {
        flip_byte(file, offsets[i]);
        err[0] = '\0';
        assert_int_equal(state_partition_import(a, file, NULL, NULL, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(users_in(a, 4), 20); /* untouched */
        flip_byte(file, offsets[i]);
    }
    assert_int_equal(truncate(file, 200), 0);
    assert_int_equal(state_partition_import(a, file, NULL, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "p.export"));
    assert_int_equal(users_in(a, 4), 20);
    state_close(a);
}

static void test_idle_users_expire(void **st) {
    const int64_t day = 86400000;
    int64_t now = 1800000000000; /* ahead of the wall clock: never idle */
    state_store *s = open_at(dir_a, day);
    fill(s, 0, 4, now);                           /* active */
    fill(s, 1, 3, 1000);                          /* idle since 1970 */
    assert_int_equal(events_of(s, 1, "u1_2"), 0); /* read back as new */
    assert_int_equal(events_of(s, 0, "u0_2"), 3);
    state_stats stats;
    state_get_stats(s, &stats);
    assert_int_equal(stats.expired_on_read, 1);
    assert_int_equal(users_in(s, 1), 3); /* still on disk... */
    uint64_t removed = 0;
    char err[256];
    assert_int_equal(state_expire_sweep(s, now, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 3); /* ...until the sweep */
    assert_int_equal(users_in(s, 1), 0);
    assert_int_equal(users_in(s, 0), 4);
    int64_t next;
    assert_int_equal(state_get_offset(s, "events", 1, &next, err, sizeof(err)), 1);

    /* The compaction filter drops idle users too, never offsets. */
    fill(s, 2, 5, 1000);
    state_compact(s);
    assert_int_equal(users_in(s, 2), 0);
    assert_int_equal(users_in(s, 0), 4);
    assert_int_equal(state_get_offset(s, "events", 2, &next, err, sizeof(err)), 1);
    state_get_stats(s, &stats);
    assert_int_equal(stats.expired_compacted, 5);
    state_close(s);

    /* Without a TTL nothing expires. */
    s = open_at(dir_a, 0);
    fill(s, 3, 2, 1000);
    state_compact(s);
    assert_int_equal(users_in(s, 3), 2);
    state_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_export_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_users_expire, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
