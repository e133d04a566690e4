/* state: the processor's durable memory, a RocksDB store under --state-dir.
 *
 * It keeps, per user, the last H events and the top-k list last published to
 * them, and per consumed topic-partition the next offset to read. A poll
 * batch reads its users with one multi-get and writes their records together
 * with the new offsets in ONE RocksDB write batch, so state and position can
 * never disagree: after a crash at any instant, resuming from the stored
 * offsets applies every event to state exactly once.
 *
 * Keys are scoped by the INPUT partition (the Kafka partition the user's
 * events come from), so one partition's users and offsets can be listed,
 * dropped, exported and imported as a unit when partitions move between
 * instances. See docs/state.md for the key layout, the record encoding and
 * the RocksDB tuning.
 *
 * Thread safety: one writer thread (the processor); state_stats may be
 * called from any thread. Records (state_user) belong to their caller. */
#ifndef RECSTREAM_STATE_H
#define RECSTREAM_STATE_H

#include <stddef.h>
#include <stdint.h>

/* Sources of a published item; the values equal codec.h's codec_source. */
#define STATE_SOURCE_ONLINE  0
#define STATE_SOURCE_OFFLINE 1
#define STATE_SOURCE_POPULAR 2

#define STATE_H_MAX 10000 /* upper bound on the history length */

/* ---- Options. */
typedef struct state_options {
    uint32_t history_len;     /* H: events kept per user (default 50) */
    uint32_t published_max;   /* published items kept per user (default 20) */
    uint32_t block_cache_mb;  /* LRU block cache (default 64) */
    uint32_t write_buffer_mb; /* memtable size (default 16), 3 of them */
    const char *compression;  /* "lz4" (default), "zstd", "snappy", "none" */
    int sync_writes;          /* fsync the WAL on every commit (default 0);
                               * the WAL is always on: without sync a commit
                               * survives a process crash, not a power loss */
    int64_t idle_ttl_ms;      /* users idle longer are expired (0 = never) */
    int read_only;            /* open without the lock, beside a writer */
} state_options;

void state_options_default(state_options *o);

/* ---- One user's record, in memory. Item ids live in the record's arena;
 * read them with state_user_item / state_user_pub_item. */
typedef struct state_event {
    uint32_t item_off; /* into u->arena */
    uint16_t item_len;
    uint8_t type;  /* codec_event_type: 0 LISTEN, 1 VIEW, 2 LIKE */
    float weight;  /* explicit weight, or < 0 for none */
    int64_t ts_ms; /* event time */
} state_event;

typedef struct state_pub {
    uint32_t item_off; /* into u->arena */
    uint16_t item_len;
    uint8_t source; /* STATE_SOURCE_* */
    float score;
} state_pub;

typedef struct state_user {
    state_event *events; /* oldest first */
    uint32_t n_events, cap_events;
    state_pub *published; /* the list last published, best first */
    uint32_t n_published, cap_published;
    int64_t published_ts_ms; /* when it was published (0: never) */
    char variant[32];        /* A/B arm of that list, NUL-terminated */
    int64_t last_seen_ms;    /* wall clock of the last write (set by commit) */
    char *arena;             /* item id bytes, not NUL-terminated */
    uint32_t arena_len, arena_cap, arena_live;
    state_event evicted; /* the event that last fell out of the window */
} state_user;

state_user *state_user_new(void);
void state_user_free(state_user *u);
void state_user_clear(state_user *u);
/* Makes dst what decoding src's encoding would give: the same window and
 * published list, a compacted arena, nothing evicted. A direct copy,
 * several times cheaper than encoding and decoding. */
void state_user_copy(state_user *dst, const state_user *src);

static inline const char *state_user_item(const state_user *u, const state_event *e) {
    return u->arena + e->item_off;
}
static inline const char *state_user_pub_item(const state_user *u, const state_pub *p) {
    return u->arena + p->item_off;
}

/* Appends an event (newest last) and keeps at most h of them. Returns 1 and
 * fills *evicted when the oldest event fell out of the window (the online
 * scorer subtracts it); its item id stays readable with state_user_item(u,
 * evicted) until the next call that modifies u. Returns 0 otherwise.
 * evicted may be NULL. */
int state_user_push_event(state_user *u, const char *item, size_t len, uint8_t type, int64_t ts_ms,
                          float weight, uint32_t h, state_event *evicted);

/* Replaces the published list (at most published_max items are stored). */
typedef struct state_pub_in {
    const char *item;
    size_t len;
    uint8_t source;
    float score;
} state_pub_in;
void state_user_set_published(state_user *u, const state_pub_in *items, size_t n,
                              const char *variant, int64_t ts_ms);

/* 1 when item is in the published list (an online hit); *source gets its
 * source. */
int state_user_published_find(const state_user *u, const char *item, size_t len, uint8_t *source);

/* ---- Record encoding (exposed for tests, the fuzzer and inspect).
 * Returns STATE_DEC_OK or a reason; on failure u is left empty. */
typedef enum {
    STATE_DEC_OK = 0,
    STATE_DEC_CORRUPT = 1,         /* truncated or malformed */
    STATE_DEC_UNKNOWN_VERSION = 2, /* written by a newer format */
} state_dec_result;

#define STATE_FORMAT_VERSION 1

/* Appends the encoding of u to *buf (grown with util_realloc). */
void state_user_encode(const state_user *u, char **buf, size_t *len, size_t *cap);
state_dec_result state_user_decode(const void *buf, size_t len, state_user *u);

/* ---- The store. */
typedef struct state_store state_store;

int state_open(const char *dir, const state_options *opts, state_store **out, char *errstr,
               size_t errstr_size);
void state_close(state_store *s);
const state_options *state_get_options(const state_store *s);

/* Reads n users at once. out[i] receives a new record (free each with
 * state_user_free); users not stored, expired, or whose record fails to
 * decode come back empty (the last two are counted in state_stats). Each
 * user is looked up under its own input partition partitions[i]. Several
 * threads may read at once (the processor splits a batch's reads in two). */
int state_multi_get(state_store *s, const int32_t *partitions, const char *const *user_ids,
                    const size_t *lens, size_t n, state_user **out, char *errstr,
                    size_t errstr_size);

/* A write batch: users and offsets, committed atomically by one
 * rocksdb_write. */
typedef struct state_batch state_batch;
state_batch *state_batch_new(state_store *s);
/* The wall clock stamped as last_seen_ms on users put (default: now at
 * state_batch_new); tests use it to age users. */
void state_batch_set_now(state_batch *b, int64_t now_ms);
void state_batch_put_user(state_batch *b, int32_t partition, const char *user_id, size_t len,
                          const state_user *u);
/* state_batch_put_user in two steps, so that the encoding can run on other
 * threads: state_batch_encode_user only reads the batch (its clock and the
 * store's options) and leaves the record in *buf[0, *len) (*buf grown with
 * util_realloc, so one buffer serves many users); state_batch_put_encoded
 * adds the bytes. */
void state_batch_encode_user(const state_batch *b, const state_user *u, char **buf, size_t *len,
                             size_t *cap);
void state_batch_put_encoded(state_batch *b, int32_t partition, const char *user_id, size_t len,
                             const char *value, size_t value_len);
void state_batch_delete_user(state_batch *b, int32_t partition, const char *user_id, size_t len);
void state_batch_set_offset(state_batch *b, const char *topic, int32_t partition,
                            int64_t next_offset);
size_t state_batch_count(const state_batch *b); /* operations so far */
int state_batch_commit(state_batch *b, char *errstr, size_t errstr_size);
void state_batch_free(state_batch *b);

/* Returns 1 and sets *next when stored, 0 when never stored, -1 on error. */
int state_get_offset(state_store *s, const char *topic, int32_t partition, int64_t *next,
                     char *errstr, size_t errstr_size);

/* ---- Iteration (inspect, export, sweeps). partition < 0 means all.
 * Callbacks return 0 to go on, non-zero to stop (that value is returned).
 * A record that fails to decode is passed with dec != STATE_DEC_OK and an
 * empty u. */
typedef int (*state_user_cb)(int32_t partition, const char *user_id, size_t len,
                             const state_user *u, state_dec_result dec, void *opaque);
int state_foreach_user(state_store *s, int32_t partition, state_user_cb cb, void *opaque,
                       char *errstr, size_t errstr_size);
typedef int (*state_offset_cb)(const char *topic, int32_t partition, int64_t next_offset,
                               void *opaque);
int state_foreach_offset(state_store *s, int32_t partition, state_offset_cb cb, void *opaque,
                         char *errstr, size_t errstr_size);

/* ---- Partitions as units. */
/* The partitions holding any key, ascending; *parts is util_malloc'd. */
int state_partition_list(state_store *s, int32_t **parts, size_t *n, char *errstr,
                         size_t errstr_size);
/* Users stored under one partition. */
int state_partition_count_users(state_store *s, int32_t partition, uint64_t *users, char *errstr,
                                size_t errstr_size);
/* Removes every user and offset of the partition in one write. */
int state_partition_drop(state_store *s, int32_t partition, char *errstr, size_t errstr_size);
/* Writes the partition's users and offsets to path (a versioned file with a
 * checksum, written to a temp file and renamed; format in docs/state.md). */
int state_partition_export(state_store *s, int32_t partition, const char *path, uint64_t *records,
                           char *errstr, size_t errstr_size);
/* Verifies the whole file, drops the partition's current keys, then writes
 * the file's; offsets are written last, so an interrupted import leaves the
 * partition without offsets (retry the import). *partition gets the file's. */
int state_partition_import(state_store *s, const char *path, int32_t *partition, uint64_t *records,
                           char *errstr, size_t errstr_size);

/* ---- Idle users. Users whose last_seen_ms is older than idle_ttl_ms are
 * read back empty at once, and removed by a compaction filter during
 * RocksDB's compactions; state_expire_sweep deletes them now. */
int state_expire_sweep(state_store *s, int64_t now_ms, uint64_t *removed, char *errstr,
                       size_t errstr_size);
/* Full manual compaction (tests, after a drop). */
void state_compact(state_store *s);

/* ---- Stats for /metrics. */
typedef struct state_stats {
    uint64_t users_read;        /* multi-get keys */
    uint64_t users_found;       /* of which stored and decoded */
    uint64_t decode_failed;     /* corrupt records replaced by empty ones */
    uint64_t unknown_version;   /* records of a newer format replaced */
    uint64_t expired_on_read;   /* idle users read back empty */
    uint64_t expired_compacted; /* removed by the compaction filter */
    uint64_t batches;           /* commits */
    uint64_t commit_ns;         /* total time in rocksdb_write */
    uint64_t approx_bytes;      /* live SST + memtable bytes (estimate) */
} state_stats;
void state_get_stats(state_store *s, state_stats *out);

#endif
