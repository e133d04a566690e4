/* Unit tests of the RocksDB store (real RocksDB on disk under TEST_TMPDIR):
 * multi-get, batches that carry records and offsets together (also across a
 * SIGKILL of the writer), reopening, corrupt records on disk. */
#include <pthread.h>
#include <rocksdb/c.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"

static char dir[512];

static int setup(void **st) {
    const char *tmp = getenv("TEST_TMPDIR");
    static int n;
    snprintf(dir, sizeof(dir), "%s/state_store_%d_%d", tmp ? tmp : "/tmp", (int)getpid(), n++);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && rm -rf '%s'", tmp ? tmp : "/tmp", dir);
    return system(cmd);
}

static int teardown(void **st) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static state_store *open_store(void) {
    state_options o;
    state_options_default(&o);
    o.block_cache_mb = 8;
    o.write_buffer_mb = 4;
    state_store *s = NULL;
    char err[256];
    int rc = state_open(dir, &o, &s, err, sizeof(err));
    if (rc) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

static state_user *get1(state_store *s, int32_t part, const char *id) {
    const char *ids[1] = {id};
    size_t lens[1] = {strlen(id)};
    state_user *out[1];
    char err[256];
    assert_int_equal(state_multi_get(s, &part, ids, lens, 1, out, err, sizeof(err)), 0);
    return out[0];
}

static void test_multi_get_missing_and_found(void **st) {
    state_store *s = open_store();
    state_batch *b = state_batch_new(s);
    state_user *u = state_user_new();
    state_user_push_event(u, "song", 4, 0, 5, -1.0f, 50, NULL);
    state_batch_put_user(b, 3, "alice", 5, u);
    char err[256];
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
    state_user_free(u);

    const char *ids[3] = {"bob", "alice", "alice"};
    size_t lens[3] = {3, 5, 5};
    int32_t parts[3] = {3, 3, 4}; /* alice under partition 4 is another key */
    state_user *out[3];
    assert_int_equal(state_multi_get(s, parts, ids, lens, 3, out, err, sizeof(err)), 0);
    assert_int_equal(out[0]->n_events, 0);
    assert_int_equal(out[1]->n_events, 1);
    assert_memory_equal(state_user_item(out[1], &out[1]->events[0]), "song", 4);
    assert_true(out[1]->last_seen_ms > 0);
    assert_int_equal(out[2]->n_events, 0);
    for (int i = 0; i < 3; i++) state_user_free(out[i]);
    state_stats stats;
    state_get_stats(s, &stats);
    assert_int_equal(stats.users_read, 3);
    assert_int_equal(stats.users_found, 1);
    assert_int_equal(stats.batches, 1);
    state_close(s);
}

static void test_batch_carries_offsets(void **st) {
    state_store *s = open_store();
    char err[256];
    int64_t next = -1;
    assert_int_equal(state_get_offset(s, "events", 0, &next, err, sizeof(err)), 0);
    state_batch *b = state_batch_new(s);
    state_user *u = state_user_new();
    state_user_push_event(u, "i", 1, 0, 5, -1.0f, 50, NULL);
    state_batch_put_user(b, 0, "u1", 2, u);
    state_batch_set_offset(b, "events", 0, 42);
    assert_int_equal(state_batch_count(b), 2);
    /* Before the commit, neither is visible. */
    assert_int_equal(state_get_offset(s, "events", 0, &next, err, sizeof(err)), 0);
    state_user *r = get1(s, 0, "u1");
    assert_int_equal(r->n_events, 0);
    state_user_free(r);
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
    /* A batch freed without commit writes nothing. */
    b = state_batch_new(s);
    state_batch_put_user(b, 0, "u2", 2, u);
    state_batch_set_offset(b, "events", 0, 99);
    state_batch_free(b);
    state_user_free(u);
    state_close(s);

    s = open_store(); /* reopen: the WAL replays both */
    assert_int_equal(state_get_offset(s, "events", 0, &next, err, sizeof(err)), 1);
    assert_int_equal(next, 42);
    r = get1(s, 0, "u1");
    assert_int_equal(r->n_events, 1);
    state_user_free(r);
    r = get1(s, 0, "u2");
    assert_int_equal(r->n_events, 0);
    state_user_free(r);
    state_close(s);
}

/* A child commits batch after batch, each appending one event to user "k"
 * (ts = its sequence number) and storing offset = events so far; it is
 * SIGKILLed mid-stream. After reopening, the history must end exactly at the
 * stored offset: no event lost, none applied twice. The child reports its
 * first commit through a pipe, and the kill comes a while after that: a
 * fixed delay from the fork was sometimes too short for a sanitizer build
 * on a busy machine to open the store at all. */
static void test_atomic_across_sigkill(void **st) {
    for (int round = 0; round < 3; round++) {
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(ready[0]);
            state_store *s = open_store();
            char err[256];
            for (int64_t i = 0;; i++) {
                state_user *u = get1(s, 1, "k");
                int64_t next = 0;
                state_get_offset(s, "t", 1, &next, err, sizeof(err));
                char item[32];
                snprintf(item, sizeof(item), "e%lld", (long long)next);
                state_user_push_event(u, item, strlen(item), 0, next, -1.0f, 50, NULL);
                state_batch *b = state_batch_new(s);
                state_batch_put_user(b, 1, "k", 1, u);
                state_batch_set_offset(b, "t", 1, next + 1);
                if (state_batch_commit(b, err, sizeof(err))) _exit(3);
                state_batch_free(b);
                state_user_free(u);
                if (i == 0 && (write(ready[1], "c", 1) != 1 || close(ready[1]) != 0)) _exit(4);
            }
        }
        close(ready[1]);
        char c;
        ssize_t got = read(ready[0], &c, 1); /* 1 once the first batch is committed */
        close(ready[0]);
        if (got == 1) usleep(50000 + 50000 * round);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_int_equal(got, 1);
        assert_true(WIFSIGNALED(status));
        state_store *s = open_store();
        char err[256];
        int64_t next = 0;
        assert_int_equal(state_get_offset(s, "t", 1, &next, err, sizeof(err)), 1);
        state_user *u = get1(s, 1, "k");
        assert_true(next > 0);
        /* The window holds exactly the last min(next, 50) events. */
        assert_int_equal(u->n_events, next < 50 ? next : 50);
        for (uint32_t i = 0; i < u->n_events; i++)
            assert_int_equal(u->events[i].ts_ms, next - u->n_events + i);
        state_user_free(u);
        state_close(s);
    }
}

/* Writes raw bytes under a user's key, as a disk fault or a future build
 * would leave them. Key layout: 'p' BE32(partition) 'u' id. */
static void raw_put(const char *id, const char *val, size_t vlen) {
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, dir, &err);
    assert_null(err);
    char key[64] = {'p', 0, 0, 0, 2, 'u'};
    memcpy(key + 6, id, strlen(id));
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, key, 6 + strlen(id), val, vlen, &err);
    assert_null(err);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

static void test_corrupt_record_replaced(void **st) {
    state_close(open_store());
    raw_put("bad", "\x01\x02\x05zz", 5);  /* claims 5 events, has none */
    raw_put("future", "\x09whatever", 9); /* a newer format version */
    state_store *s = open_store();
    const char *ids[2] = {"bad", "future"};
    size_t lens[2] = {3, 6};
    int32_t parts[2] = {2, 2};
    state_user *out[2];
    char err[256];
    assert_int_equal(state_multi_get(s, parts, ids, lens, 2, out, err, sizeof(err)), 0);
    assert_int_equal(out[0]->n_events, 0);
    assert_int_equal(out[1]->n_events, 0);
    state_stats stats;
    state_get_stats(s, &stats);
    assert_int_equal(stats.decode_failed, 1);
    assert_int_equal(stats.unknown_version, 1);
    /* The processor writes a fresh record over it. */
    state_user_push_event(out[0], "x", 1, 0, 1, -1.0f, 50, NULL);
    state_batch *b = state_batch_new(s);
    state_batch_put_user(b, 2, "bad", 3, out[0]);
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
    state_user_free(out[0]);
    state_user_free(out[1]);
    state_user *r = get1(s, 2, "bad");
    assert_int_equal(r->n_events, 1);
    state_user_free(r);
    state_close(s);
}

/* The store keeps at most published_max items of a published list, the
 * best ones (the list is best first). */
static void test_published_capped(void **st) {
    state_options o;
    state_options_default(&o);
    o.published_max = 2;
    state_store *s = NULL;
    char err[256];
    assert_int_equal(state_open(dir, &o, &s, err, sizeof(err)), 0);
    state_user *u = state_user_new();
    state_pub_in pubs[3] = {{"a", 1, STATE_SOURCE_ONLINE, 3.0f},
                            {"b", 1, STATE_SOURCE_OFFLINE, 2.0f},
                            {"c", 1, STATE_SOURCE_POPULAR, 1.0f}};
    state_user_set_published(u, pubs, 3, "A", 77);
    state_batch *b = state_batch_new(s);
    state_batch_put_user(b, 0, "cap", 3, u);
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
    state_user_free(u);
    state_user *r = get1(s, 0, "cap");
    assert_int_equal(r->n_published, 2);
    assert_memory_equal(state_user_pub_item(r, &r->published[1]), "b", 1);
    assert_string_equal(r->variant, "A");
    assert_int_equal(r->published_ts_ms, 77);
    state_user_free(r);
    state_close(s);
}

/* The processor reads a batch's users on two threads at once, and encodes
 * records away from the batch (state_batch_encode_user, then
 * state_batch_put_encoded): both must come out as one thread and
 * state_batch_put_user would. Run it under -DRECSTREAM_TSAN=ON too. */
#define READERS_USERS 2000

typedef struct reader {
    state_store *s;
    int first, bad;
} reader;

static void *read_half(void *arg) {
    reader *r = arg;
    enum { N = READERS_USERS / 2 };
    static __thread char names[N][16];
    const char *ids[N];
    size_t lens[N];
    int32_t parts[N];
    state_user *out[N];
    char err[256];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            lens[i] = (size_t)snprintf(names[i], sizeof(names[i]), "u%d", r->first + i);
            ids[i] = names[i], parts[i] = (r->first + i) % 4;
        }
        if (state_multi_get(r->s, parts, ids, lens, N, out, err, sizeof(err))) r->bad++;
        for (int i = 0; i < N; i++) {
            char want[16];
            int len = snprintf(want, sizeof(want), "i%d", r->first + i);
            if (out[i]->n_events != 1 || out[i]->events[0].item_len != (size_t)len ||
                memcmp(state_user_item(out[i], &out[i]->events[0]), want, (size_t)len))
                r->bad++;
            state_user_free(out[i]);
        }
    }
    return NULL;
}

static void test_reads_from_two_threads(void **st) {
    state_store *s = open_store();
    state_batch *b = state_batch_new(s);
    char *buf = NULL, err[256];
    size_t len = 0, cap = 0;
    for (int i = 0; i < READERS_USERS; i++) {
        char id[16], item[16];
        int il = snprintf(id, sizeof(id), "u%d", i), tl = snprintf(item, sizeof(item), "i%d", i);
        state_user *u = state_user_new();
        state_user_push_event(u, item, (size_t)tl, 0, 1000 + i, -1.0f, 50, NULL);
        if (i % 2) { /* half through the two steps the processor uses */
            state_batch_encode_user(b, u, &buf, &len, &cap);
            state_batch_put_encoded(b, i % 4, id, (size_t)il, buf, len);
        } else {
            state_batch_put_user(b, i % 4, id, (size_t)il, u);
        }
        state_user_free(u);
    }
    assert_int_equal(state_batch_commit(b, err, sizeof(err)), 0);
    state_batch_free(b);
    free(buf);
    reader r[2] = {{s, 0, 0}, {s, READERS_USERS / 2, 0}};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_half, &r[1]), 0);
    read_half(&r[0]);
    pthread_join(th, NULL);
    assert_int_equal(r[0].bad + r[1].bad, 0);
    state_stats stats;
    state_get_stats(s, &stats);
    assert_int_equal(stats.users_read, 20 * READERS_USERS);
    assert_int_equal(stats.users_found, 20 * READERS_USERS);
    state_close(s);
}

static void test_bad_options(void **st) {
    state_options o;
    state_options_default(&o);
    o.compression = "brotli";
    state_store *s = NULL;
    char err[256];
    assert_int_equal(state_open(dir, &o, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "brotli"));
    assert_null(s);
    state_options_default(&o);
    o.read_only = 1; /* nothing there yet */
    assert_int_equal(state_open(dir, &o, &s, err, sizeof(err)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_multi_get_missing_and_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_carries_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_across_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_record_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_from_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
