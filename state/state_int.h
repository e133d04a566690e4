/* state/state_int.h: what the files of state/ share and nobody else sees:
 * the store struct and the key layout.
 *
 * Keys (all big-endian, so RocksDB's bytewise order groups a partition):
 *   'm' "format"                       store format version (u8)
 *   'p' BE32(partition) 'u' user_id    a user's record (record.c encoding)
 *   'p' BE32(partition) 'o' topic      next offset: u8 version, BE64 offset
 * Everything of one input partition lies in ['p' P, 'p' P+1). */
#ifndef RECSTREAM_STATE_INT_H
#define RECSTREAM_STATE_INT_H

#include <rocksdb/c.h>
#include <stdatomic.h>

#include "state.h"

#define STATE_KEY_META   'm'
#define STATE_KEY_PART   'p'
#define STATE_SUB_USER   'u'
#define STATE_SUB_OFFSET 'o'
#define STATE_PREFIX_LEN 5 /* 'p' + BE32 */
#define STATE_KEY_MAX    (STATE_PREFIX_LEN + 1 + 65536)

struct state_store {
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf; /* "default": for batched multi-get */
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_cache_t *cache;
    rocksdb_compactionfilter_t *cfilter;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    state_options o;
    _Atomic uint64_t users_read, users_found, decode_failed, unknown_version;
    _Atomic uint64_t expired_on_read, expired_compacted, batches, commit_ns;
};

/* Writes the 5-byte partition prefix; returns its length. */
size_t state_key_prefix(char *out, int32_t partition);
/* Builds prefix + sub + name into out (at least STATE_KEY_MAX bytes). */
size_t state_key(char *out, int32_t partition, char sub, const char *name, size_t len);
/* Reads the partition of a 'p' key; -1 when the key is not one. */
int64_t state_key_partition(const char *key, size_t len);
/* The last-seen time stored in a record, without decoding it all;
 * -1 when unreadable. */
int state_record_last_seen(const char *val, size_t len, int64_t *out);
/* 1 when a record last seen at last_seen_ms has expired at now_ms. */
int state_is_expired(const state_store *s, int64_t last_seen_ms, int64_t now_ms);

#endif
