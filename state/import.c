/* state/import.c: restores one partition from a file written by
 * state_partition_export (format in partition.c and docs/state.md).
 *
 * The whole file is verified (magic, version, every key inside the file's
 * partition, end mark, count, checksum) before anything is written; then the
 * partition's current keys are dropped and the file's written in batches of
 * about 32 MiB, offsets last, so an interrupted import leaves a partition
 * without offsets rather than one that looks complete. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "state_int.h"
#include "util.h"

#define EXPORT_MAGIC   "RSSTPART"
#define EXPORT_VERSION 1
#define EXPORT_END     0xFFFFFFFFu
#define CHUNK_BYTES    (32u << 20)
#define VALUE_MAX      (64u << 20) /* larger than any record we write */

typedef struct importer {
    FILE *f;
    XXH3_state_t *h;
    int32_t partition;
    uint64_t records;
    char *buf;
    size_t cap;
    /* Pass 2 only. */
    state_store *s;
    rocksdb_writebatch_t *users, *offsets;
    size_t pending;
} importer;

static int im_read(importer *im, void *p, size_t n, int hash) {
    if (n && fread(p, 1, n, im->f) != n) return -1;
    if (hash) XXH3_64bits_update(im->h, p, n);
    return 0;
}

static int im_u32(importer *im, uint32_t *v, int hash) {
    uint8_t b[4];
    if (im_read(im, b, 4, hash)) return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

static int im_u64(importer *im, uint64_t *v, int hash) {
    uint32_t hi, lo;
    if (im_u32(im, &hi, hash) || im_u32(im, &lo, hash)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

static int flush_users(importer *im, char *errstr, size_t errstr_size) {
    char *err = NULL;
    rocksdb_write(im->s->db, im->s->wopts, im->users, &err);
    rocksdb_writebatch_clear(im->users);
    im->pending = 0;
    if (!err) return 0;
    snprintf(errstr, errstr_size, "importing: %s", err);
    rocksdb_free(err);
    return -1;
}

/* One record: checks it, and in pass 2 queues it. */
static int im_record(importer *im, uint32_t klen, char *errstr, size_t errstr_size) {
    uint32_t vlen;
    if (klen <= STATE_PREFIX_LEN || klen > STATE_KEY_MAX) goto bad;
    if (klen > im->cap) im->buf = util_realloc(im->buf, im->cap = klen);
    if (im_read(im, im->buf, klen, 1)) goto bad;
    char sub = im->buf[STATE_PREFIX_LEN];
    if (state_key_partition(im->buf, klen) != im->partition ||
        (sub != STATE_SUB_USER && sub != STATE_SUB_OFFSET))
        goto bad;
    if (im_u32(im, &vlen, 1) || vlen > VALUE_MAX) goto bad;
    if (klen + vlen > im->cap) im->buf = util_realloc(im->buf, im->cap = klen + vlen);
    if (im_read(im, im->buf + klen, vlen, 1)) goto bad;
    im->records++;
    if (!im->s) return 0;
    rocksdb_writebatch_put(sub == STATE_SUB_USER ? im->users : im->offsets, im->buf, klen,
                           im->buf + klen, vlen);
    im->pending += klen + vlen;
    return im->pending >= CHUNK_BYTES ? flush_users(im, errstr, errstr_size) : 0;
bad:
    snprintf(errstr, errstr_size, "record %llu is malformed", (unsigned long long)im->records + 1);
    return -1;
}

/* Reads the whole file once; in pass 2 (im->s set) also writes it. */
static int im_pass(importer *im, char *errstr, size_t errstr_size) {
    char magic[8];
    uint32_t version, part, klen;
    uint64_t count, sum;
    rewind(im->f);
    XXH3_64bits_reset(im->h);
    im->records = 0;
    if (im_read(im, magic, 8, 1) || memcmp(magic, EXPORT_MAGIC, 8) != 0 ||
        im_u32(im, &version, 1) || im_u32(im, &part, 1)) {
        snprintf(errstr, errstr_size, "not a recstream partition export");
        return -1;
    }
    if (version != EXPORT_VERSION || part > INT32_MAX) {
        snprintf(errstr, errstr_size, "unsupported export version %u", version);
        return -1;
    }
    im->partition = (int32_t)part;
    for (;;) {
        if (im_u32(im, &klen, 1)) {
            snprintf(errstr, errstr_size, "truncated after %llu records",
                     (unsigned long long)im->records);
            return -1;
        }
        if (klen == EXPORT_END) break;
        if (im_record(im, klen, errstr, errstr_size)) return -1;
    }
    uint64_t want = 0;
    if (im_u64(im, &count, 1) || (want = XXH3_64bits_digest(im->h), im_u64(im, &sum, 0)) ||
        count != im->records || sum != want || fgetc(im->f) != EOF) {
        snprintf(errstr, errstr_size, "checksum or record count mismatch (corrupt file)");
        return -1;
    }
    return 0;
}

int state_partition_import(state_store *s, const char *path, int32_t *partition, uint64_t *records,
                           char *errstr, size_t errstr_size) {
    char sub[256];
    importer im = {0};
    im.f = fopen(path, "rb");
    if (!im.f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    im.h = XXH3_createState();
    int rc = im_pass(&im, sub, sizeof(sub));
    if (rc == 0) {
        im.s = s;
        im.users = rocksdb_writebatch_create();
        im.offsets = rocksdb_writebatch_create();
        rocksdb_writebatch_t *drop = rocksdb_writebatch_create();
        char lo[STATE_PREFIX_LEN], hi[STATE_PREFIX_LEN];
        state_key_prefix(lo, im.partition);
        size_t hlen = im.partition == INT32_MAX ? 1 : state_key_prefix(hi, im.partition + 1);
        if (im.partition == INT32_MAX) hi[0] = STATE_KEY_PART + 1;
        rocksdb_writebatch_delete_range(drop, lo, STATE_PREFIX_LEN, hi, hlen);
        char *err = NULL;
        rocksdb_write(s->db, s->wopts, drop, &err);
        rocksdb_writebatch_destroy(drop);
        if (err) {
            snprintf(sub, sizeof(sub), "dropping old keys: %s", err);
            rocksdb_free(err);
            rc = -1;
        }
        if (rc == 0) rc = im_pass(&im, sub, sizeof(sub));
        if (rc == 0) rc = flush_users(&im, sub, sizeof(sub));
        if (rc == 0) {
            rocksdb_writebatch_destroy(im.users);
            im.users = im.offsets; /* offsets last */
            im.offsets = NULL;
            rc = flush_users(&im, sub, sizeof(sub));
        }
        rocksdb_writebatch_destroy(im.users);
        if (im.offsets) rocksdb_writebatch_destroy(im.offsets);
    }
    if (rc)
        snprintf(errstr, errstr_size, "%s: %s", path, sub);
    else {
        if (partition) *partition = im.partition;
        if (records) *records = im.records;
    }
    fclose(im.f);
    XXH3_freeState(im.h);
    free(im.buf);
    return rc;
}
