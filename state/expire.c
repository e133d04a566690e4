/* state/expire.c: the explicit sweep of idle users. Reads already treat an
 * idle user as new and compactions drop such records (store.c); the sweep
 * removes them at once, for operators and tests, walking every partition and
 * deleting in batches so that memory stays bounded. */
#include <stdlib.h>
#include <string.h>

#include "state_int.h"
#include "util.h"

#define SWEEP_BATCH 10000

int state_expire_sweep(state_store *s, int64_t now_ms, uint64_t *removed, char *errstr,
                       size_t errstr_size) {
    *removed = 0;
    if (s->o.idle_ttl_ms <= 0) return 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, ro);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    char first = STATE_KEY_PART;
    char *err = NULL;
    for (rocksdb_iter_seek(it, &first, 1); rocksdb_iter_valid(it) && !err; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (k[0] != STATE_KEY_PART) break;
        if (klen <= STATE_PREFIX_LEN || k[STATE_PREFIX_LEN] != STATE_SUB_USER) continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        int64_t seen;
        if (state_record_last_seen(v, vlen, &seen) || !state_is_expired(s, seen, now_ms)) continue;
        rocksdb_writebatch_delete(wb, k, klen);
        (*removed)++;
        if (rocksdb_writebatch_count(wb) >= SWEEP_BATCH) {
            rocksdb_write(s->db, s->wopts, wb, &err);
            rocksdb_writebatch_clear(wb);
        }
    }
    if (!err) rocksdb_iter_get_error(it, &err);
    if (!err && rocksdb_writebatch_count(wb) > 0) rocksdb_write(s->db, s->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (!err) return 0;
    snprintf(errstr, errstr_size, "expiry sweep: %s", err);
    rocksdb_free(err);
    return -1;
}
