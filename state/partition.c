/* state/partition.c: the store seen by partition: iteration over users and
 * offsets, listing, dropping, exporting and importing one input partition's
 * keys as a unit, and the idle-user sweep.
 *
 * Export file (all integers big-endian):
 *   "RSSTPART" | u32 file version (1) | u32 partition |
 *   records { u32 klen, key, u32 vlen, value } ... |
 *   u32 0xFFFFFFFF (end mark) | u64 record count | u64 XXH3-64 of every
 *   byte before it.
 * Keys are stored verbatim, so an import restores the partition exactly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "state_int.h"
#include "util.h"

#define EXPORT_MAGIC       "RSSTPART"
#define EXPORT_VERSION     1
#define EXPORT_END         0xFFFFFFFFu
#define IMPORT_CHUNK_BYTES (32u << 20) /* one write batch per this much */

/* ==== Iteration ==== */

typedef int (*kv_cb)(const char *key, size_t klen, const char *val, size_t vlen, void *opaque);

/* Calls cb for every key starting with prefix (plen bytes), in order. */
static int scan_prefix(state_store *s, const char *prefix, size_t plen, kv_cb cb, void *opaque,
                       char *errstr, size_t errstr_size) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(k, klen, v, vlen, opaque)) != 0) break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) {
        snprintf(errstr, errstr_size, "scanning state: %s", err);
        rocksdb_free(err);
        rc = -1;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* The key range of a partition, or of all partitions when partition < 0. */
static size_t part_prefix(char *out, int32_t partition) {
    if (partition < 0) {
        out[0] = STATE_KEY_PART;
        return 1;
    }
    return state_key_prefix(out, partition);
}

typedef struct user_scan {
    state_user_cb cb;
    void *opaque;
    state_user *u;
} user_scan;

static int user_kv(const char *k, size_t klen, const char *v, size_t vlen, void *opaque) {
    user_scan *us = opaque;
    if (klen <= STATE_PREFIX_LEN || k[STATE_PREFIX_LEN] != STATE_SUB_USER) return 0;
    state_dec_result r = state_user_decode(v, vlen, us->u);
    return us->cb((int32_t)state_key_partition(k, klen), k + STATE_PREFIX_LEN + 1,
                  klen - STATE_PREFIX_LEN - 1, us->u, r, us->opaque);
}

int state_foreach_user(state_store *s, int32_t partition, state_user_cb cb, void *opaque,
                       char *errstr, size_t errstr_size) {
    char prefix[STATE_PREFIX_LEN];
    user_scan us = {cb, opaque, state_user_new()};
    int rc =
        scan_prefix(s, prefix, part_prefix(prefix, partition), user_kv, &us, errstr, errstr_size);
    state_user_free(us.u);
    return rc;
}

typedef struct offset_scan {
    state_offset_cb cb;
    void *opaque;
} offset_scan;

static int offset_kv(const char *k, size_t klen, const char *v, size_t vlen, void *opaque) {
    offset_scan *os = opaque;
    if (klen <= STATE_PREFIX_LEN || k[STATE_PREFIX_LEN] != STATE_SUB_OFFSET) return 0;
    if (vlen != 9 || v[0] != 1) return 0; /* malformed: state_get_offset reports it */
    uint64_t x = 0;
    for (int i = 1; i < 9; i++) x = x << 8 | (uint8_t)v[i];
    char topic[512];
    size_t tlen = klen - STATE_PREFIX_LEN - 1;
    if (tlen >= sizeof(topic)) tlen = sizeof(topic) - 1;
    memcpy(topic, k + STATE_PREFIX_LEN + 1, tlen);
    topic[tlen] = '\0';
    return os->cb(topic, (int32_t)state_key_partition(k, klen), (int64_t)x, os->opaque);
}

int state_foreach_offset(state_store *s, int32_t partition, state_offset_cb cb, void *opaque,
                         char *errstr, size_t errstr_size) {
    char prefix[STATE_PREFIX_LEN];
    offset_scan os = {cb, opaque};
    return scan_prefix(s, prefix, part_prefix(prefix, partition), offset_kv, &os, errstr,
                       errstr_size);
}

/* ==== Listing and counting ==== */

int state_partition_list(state_store *s, int32_t **parts, size_t *n, char *errstr,
                         size_t errstr_size) {
    *parts = NULL;
    *n = 0;
    size_t cap = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ropts);
    char seek[STATE_PREFIX_LEN];
    size_t slen = part_prefix(seek, -1);
    /* Jump from partition to partition instead of walking every key. */
    for (rocksdb_iter_seek(it, seek, slen); rocksdb_iter_valid(it);) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        int64_t p = state_key_partition(k, klen);
        if (p < 0) break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *parts = util_realloc(*parts, cap * sizeof(**parts));
        }
        (*parts)[(*n)++] = (int32_t)p;
        if (p >= INT32_MAX) break;
        rocksdb_iter_seek(it, seek, state_key_prefix(seek, (int32_t)(p + 1)));
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err) {
        snprintf(errstr, errstr_size, "listing partitions: %s", err);
        rocksdb_free(err);
        free(*parts);
        *parts = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

static int count_kv(const char *k, size_t klen, const char *v, size_t vlen, void *opaque) {
    (*(uint64_t *)opaque)++;
    return 0;
}

int state_partition_count_users(state_store *s, int32_t partition, uint64_t *users, char *errstr,
                                size_t errstr_size) {
    char prefix[STATE_PREFIX_LEN + 1];
    size_t plen = state_key_prefix(prefix, partition);
    prefix[plen++] = STATE_SUB_USER;
    *users = 0;
    return scan_prefix(s, prefix, plen, count_kv, users, errstr, errstr_size);
}

/* ==== Drop ==== */

static void drop_range(rocksdb_writebatch_t *wb, int32_t partition) {
    char lo[STATE_PREFIX_LEN], hi[STATE_PREFIX_LEN];
    state_key_prefix(lo, partition);
    size_t hlen = STATE_PREFIX_LEN;
    if (partition == INT32_MAX) {
        hi[0] = STATE_KEY_PART + 1; /* everything after the last partition */
        hlen = 1;
    } else {
        state_key_prefix(hi, partition + 1);
    }
    rocksdb_writebatch_delete_range(wb, lo, STATE_PREFIX_LEN, hi, hlen);
}

static int write_batch(state_store *s, rocksdb_writebatch_t *wb, const char *what, char *errstr,
                       size_t errstr_size) {
    char *err = NULL;
    rocksdb_write(s->db, s->wopts, wb, &err);
    if (!err) return 0;
    snprintf(errstr, errstr_size, "%s: %s", what, err);
    rocksdb_free(err);
    return -1;
}

int state_partition_drop(state_store *s, int32_t partition, char *errstr, size_t errstr_size) {
    if (partition < 0) {
        snprintf(errstr, errstr_size, "partition must be >= 0");
        return -1;
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    drop_range(wb, partition);
    int rc = write_batch(s, wb, "dropping partition", errstr, errstr_size);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* ==== Export ==== */

typedef struct exporter {
    FILE *f;
    XXH3_state_t *h;
    uint64_t records;
    int failed;
} exporter;

static void ex_write(exporter *e, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, e->f) != n) e->failed = 1;
    XXH3_64bits_update(e->h, p, n);
}

static void ex_u32(exporter *e, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ex_write(e, b, 4);
}

static void ex_u64(exporter *e, uint64_t v) {
    ex_u32(e, (uint32_t)(v >> 32));
    ex_u32(e, (uint32_t)v);
}

static int export_kv(const char *k, size_t klen, const char *v, size_t vlen, void *opaque) {
    exporter *e = opaque;
    ex_u32(e, (uint32_t)klen);
    ex_write(e, k, klen);
    ex_u32(e, (uint32_t)vlen);
    ex_write(e, v, vlen);
    e->records++;
    return e->failed;
}

int state_partition_export(state_store *s, int32_t partition, const char *path, uint64_t *records,
                           char *errstr, size_t errstr_size) {
    if (partition < 0) {
        snprintf(errstr, errstr_size, "partition must be >= 0");
        return -1;
    }
    size_t tlen = strlen(path) + 8;
    char *tmp = util_malloc(tlen);
    snprintf(tmp, tlen, "%s.tmp", path);
    exporter e = {fopen(tmp, "wb"), XXH3_createState(), 0, 0};
    if (!e.f) {
        snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
        XXH3_freeState(e.h);
        free(tmp);
        return -1;
    }
    XXH3_64bits_reset(e.h);
    ex_write(&e, EXPORT_MAGIC, 8);
    ex_u32(&e, EXPORT_VERSION);
    ex_u32(&e, (uint32_t)partition);
    char prefix[STATE_PREFIX_LEN];
    int rc = scan_prefix(s, prefix, state_key_prefix(prefix, partition), export_kv, &e, errstr,
                         errstr_size);
    ex_u32(&e, EXPORT_END);
    ex_u64(&e, e.records);
    uint64_t sum = XXH3_64bits_digest(e.h);
    ex_u64(&e, sum);
    if (fflush(e.f) != 0 || fsync(fileno(e.f)) != 0) e.failed = 1;
    if (fclose(e.f) != 0) e.failed = 1;
    if (rc == 0 && e.failed) {
        snprintf(errstr, errstr_size, "writing %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(errstr, errstr_size, "renaming %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc) remove(tmp);
    if (rc == 0 && records) *records = e.records;
    XXH3_freeState(e.h);
    free(tmp);
    return rc;
}
