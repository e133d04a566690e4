/* bench_state: events per second the state store sustains alone, doing per
 * batch what the processor does: group the batch's events by user, one
 * multi-get, append each event to the user's window (H = 50), replace the
 * published list (20 items), put every touched user and the partitions'
 * offsets in one write batch, commit. Users start with full windows (steady
 * state), so records are full size; the store is on disk with the default
 * tuning (64 MiB cache, 16 MiB x 3 write buffers, LZ4, WAL on, no sync).
 *   bench_state [--users N] [--batches N] [--batch N] [--dir DIR] [--sync]
 *               [--cache-mb N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "util.h"

#define PARTS 4
#define ITEMS 50000

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

typedef struct bench_cfg {
    uint32_t users, batches, batch;
    const char *dir;
    int sync;
    uint32_t cache_mb;
} bench_cfg;

static void die(const char *what, const char *err) {
    fprintf(stderr, "bench_state: %s: %s\n", what, err);
    exit(1);
}

static void user_name(uint32_t u, char *buf, size_t cap, size_t *len) {
    *len = (size_t)snprintf(buf, cap, "user-%07u", u);
}

static void fill_published(state_user *u, int64_t now) {
    static char names[20][16];
    state_pub_in pubs[20];
    for (int i = 0; i < 20; i++) {
        uint32_t it = (uint32_t)(next() % ITEMS);
        pubs[i].len = (size_t)snprintf(names[i], sizeof(names[i]), "item-%06u", it);
        pubs[i].item = names[i];
        pubs[i].source = (uint8_t)(i % 3);
        pubs[i].score = 1.0f / (float)(i + 1);
    }
    state_user_set_published(u, pubs, 20, "A", now);
}

static void push_random(state_user *u, int64_t ts) {
    char item[16];
    size_t len = (size_t)snprintf(item, sizeof(item), "item-%06u", (uint32_t)(next() % ITEMS));
    state_user_push_event(u, item, len, (uint8_t)(next() % 3), ts, -1.0f, 50, NULL);
}

/* Every user with a full window, written in batches of 1000. */
static void prefill(state_store *s, const bench_cfg *c) {
    char id[32], err[256];
    size_t len;
    state_batch *b = state_batch_new(s);
    state_user *u = state_user_new();
    for (uint32_t i = 0; i < c->users; i++) {
        state_user_clear(u);
        for (int e = 0; e < 50; e++) push_random(u, 1700000000000 + e);
        fill_published(u, 1700000000000);
        user_name(i, id, sizeof(id), &len);
        state_batch_put_user(b, (int32_t)(i % PARTS), id, len, u);
        if ((i + 1) % 1000 == 0 && state_batch_commit(b, err, sizeof(err))) die("prefill", err);
    }
    if (state_batch_commit(b, err, sizeof(err))) die("prefill", err);
    state_user_free(u);
    state_batch_free(b);
}

static double multiget_ms; /* total time in state_multi_get */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One batch; returns its duration in ms. */
static double one_batch(state_store *s, const bench_cfg *c, uint32_t *ev_users, int64_t *offset,
                        char (*ids)[32], const char **idp, size_t *lens, int32_t *parts,
                        state_user **recs) {
    int64_t t0 = util_mono_ns();
    for (uint32_t i = 0; i < c->batch; i++) ev_users[i] = (uint32_t)(next() % c->users);
    qsort(ev_users, c->batch, sizeof(*ev_users), cmp_u32); /* group by user */
    size_t n = 0;
    for (uint32_t i = 0; i < c->batch; i++) {
        if (n && ev_users[i] == ev_users[i - 1]) continue;
        user_name(ev_users[i], ids[n], sizeof(ids[n]), &lens[n]);
        idp[n] = ids[n];
        parts[n] = (int32_t)(ev_users[i] % PARTS);
        n++;
    }
    char err[256];
    int64_t g0 = util_mono_ns();
    if (state_multi_get(s, parts, idp, lens, n, recs, err, sizeof(err))) die("multi-get", err);
    multiget_ms += (double)(util_mono_ns() - g0) / 1e6;
    state_batch *b = state_batch_new(s);
    size_t r = 0;
    for (uint32_t i = 0; i < c->batch; i++) {
        if (i && ev_users[i] != ev_users[i - 1]) r++;
        push_random(recs[r], 1700000100000 + i);
        fill_published(recs[r], 1700000100000);
    }
    for (size_t i = 0; i < n; i++) {
        state_batch_put_user(b, parts[i], idp[i], lens[i], recs[i]);
        state_user_free(recs[i]);
    }
    for (int p = 0; p < PARTS; p++) {
        offset[p] += c->batch / PARTS;
        state_batch_set_offset(b, "events", p, offset[p]);
    }
    if (state_batch_commit(b, err, sizeof(err))) die("commit", err);
    state_batch_free(b);
    return (double)(util_mono_ns() - t0) / 1e6;
}

static void run(state_store *s, const bench_cfg *c) {
    uint32_t *ev_users = malloc(c->batch * sizeof(*ev_users));
    char(*ids)[32] = malloc(c->batch * sizeof(*ids));
    const char **idp = malloc(c->batch * sizeof(*idp));
    size_t *lens = malloc(c->batch * sizeof(*lens));
    int32_t *parts = malloc(c->batch * sizeof(*parts));
    state_user **recs = malloc(c->batch * sizeof(*recs));
    double *ms = malloc(c->batches * sizeof(*ms)), total = 0;
    int64_t offset[PARTS] = {0};
    for (uint32_t i = 0; i < c->batches; i++) {
        ms[i] = one_batch(s, c, ev_users, offset, ids, idp, lens, parts, recs);
        total += ms[i];
    }
    qsort(ms, c->batches, sizeof(*ms), cmp_dbl);
    state_stats st;
    state_get_stats(s, &st);
    printf("users %u, batches %u x %u events, sync %s, cache %u MiB\n", c->users, c->batches,
           c->batch, c->sync ? "on" : "off", c->cache_mb);
    printf("events/s %.0f  (batch ms: p50 %.2f  p99 %.2f  max %.2f; rocksdb_write avg %.2f "
           "ms, multi-get avg %.2f ms)\n",
           (double)c->batches * c->batch / (total / 1000), ms[c->batches / 2],
           ms[c->batches * 99 / 100], ms[c->batches - 1],
           (double)st.commit_ns / 1e6 / (double)st.batches, multiget_ms / c->batches);
    printf("store size ~%.1f MiB (%.0f bytes/user)\n", (double)st.approx_bytes / (1 << 20),
           (double)st.approx_bytes / c->users);
    free(ev_users);
    free(ids);
    free(idp);
    free(lens);
    free(parts);
    free(recs);
    free(ms);
}

int main(int argc, char **argv) {
    bench_cfg c = {100000, 400, 500, "/tmp/bench_state", 0, 64};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--users") && i + 1 < argc)
            c.users = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            c.batches = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            c.batch = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            c.dir = argv[++i];
        else if (!strcmp(argv[i], "--sync"))
            c.sync = 1;
        else if (!strcmp(argv[i], "--cache-mb") && i + 1 < argc)
            c.cache_mb = (uint32_t)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_state [--users N] [--batches N] [--batch N] "
                            "[--dir DIR] [--sync] [--cache-mb N]\n");
            return 2;
        }
    }
    if (!c.users || !c.batches || !c.batch) return 2;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c.dir);
    if (system(cmd) != 0) return 1;
    state_options o;
    state_options_default(&o);
    o.sync_writes = c.sync;
    o.block_cache_mb = c.cache_mb;
    state_store *s;
    char err[256];
    if (state_open(c.dir, &o, &s, err, sizeof(err))) die("open", err);
    int64_t t0 = util_mono_ns();
    prefill(s, &c);
    printf("prefill: %u users x 50 events in %.1f s\n", c.users,
           (double)(util_mono_ns() - t0) / 1e9);
    run(s, &c);
    state_close(s);
    if (system(cmd) != 0) return 1;
    return 0;
}
