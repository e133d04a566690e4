/* state/store.c: opening the RocksDB store with the tuning this workload
 * wants, batch reads (multi-get), atomic batch writes of records + offsets,
 * stored offsets, idle-user expiry on read and in compactions, and stats.
 * docs/state.md gives the reasons for each setting. */
#include <stdlib.h>
#include <string.h>

#include "state_int.h"
#include "util.h"

#define STORE_FORMAT 1 /* key layout version, kept under 'm' "format" */

void state_options_default(state_options *o) {
    memset(o, 0, sizeof(*o));
    o->history_len = 50;
    o->published_max = 20;
    o->block_cache_mb = 64;
    o->write_buffer_mb = 16;
    o->compression = "lz4";
}

/* ==== Keys ==== */

size_t state_key_prefix(char *out, int32_t partition) {
    uint32_t p = (uint32_t)partition;
    out[0] = STATE_KEY_PART;
    out[1] = (char)(p >> 24);
    out[2] = (char)(p >> 16);
    out[3] = (char)(p >> 8);
    out[4] = (char)p;
    return STATE_PREFIX_LEN;
}

size_t state_key(char *out, int32_t partition, char sub, const char *name, size_t len) {
    size_t n = state_key_prefix(out, partition);
    out[n++] = sub;
    if (len > 65536) len = 65536;
    memcpy(out + n, name, len);
    return n + len;
}

int64_t state_key_partition(const char *key, size_t len) {
    if (len < STATE_PREFIX_LEN + 1 || key[0] != STATE_KEY_PART) return -1;
    const uint8_t *k = (const uint8_t *)key;
    return (int64_t)((uint32_t)k[1] << 24 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 8 | k[4]);
}

int state_is_expired(const state_store *s, int64_t last_seen_ms, int64_t now_ms) {
    return s->o.idle_ttl_ms > 0 && last_seen_ms > 0 && now_ms - last_seen_ms > s->o.idle_ttl_ms;
}

/* ==== Compaction filter: drops idle users' records, keeps everything else. */

static unsigned char ttl_filter(void *st, int level, const char *key, size_t klen, const char *val,
                                size_t vlen, char **nv, size_t *nvlen, unsigned char *changed) {
    state_store *s = st;
    int64_t seen;
    *changed = 0;
    if (klen <= STATE_PREFIX_LEN || key[0] != STATE_KEY_PART ||
        key[STATE_PREFIX_LEN] != STATE_SUB_USER)
        return 0;
    if (state_record_last_seen(val, vlen, &seen) || !state_is_expired(s, seen, util_now_ms()))
        return 0;
    atomic_fetch_add(&s->expired_compacted, 1);
    return 1;
}

static const char *ttl_filter_name(void *st) {
    return "recstream.idle_ttl";
}

/* RocksDB calls the destructor unconditionally; the store outlives it. */
static void ttl_filter_destroy(void *st) {}

/* ==== Open and close ==== */

static int compression_parse(const char *name) {
    static const struct {
        const char *name;
        int type;
    } kinds[] = {{"none", rocksdb_no_compression},
                 {"snappy", rocksdb_snappy_compression},
                 {"lz4", rocksdb_lz4_compression},
                 {"zstd", rocksdb_zstd_compression}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(name, kinds[i].name) == 0) return kinds[i].type;
    return -1;
}

#define STORE_LEVELS 7 /* RocksDB's default num_levels, which we keep */

static void configure(state_store *s, int compression) {
    const state_options *o = &s->o;
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, !o->read_only);
    rocksdb_options_increase_parallelism(s->opts, 2);
    rocksdb_options_set_write_buffer_size(s->opts, (size_t)o->write_buffer_mb << 20);
    rocksdb_options_set_max_write_buffer_number(s->opts, 3);
    rocksdb_options_set_max_total_wal_size(s->opts, (uint64_t)o->write_buffer_mb * 3 << 20);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(s->opts, 1);
    rocksdb_options_set_compression(s->opts, compression);
    /* L0 uncompressed: its files are the flushes, short-lived (compacted
     * away once four pile up), and compressing them was a third to three
     * quarters of the flush thread's CPU (docs/state.md). With dynamic level
     * bytes the list's [1] is the base level, and the rest follow it. */
    int per_level[STORE_LEVELS] = {rocksdb_no_compression};
    for (int i = 1; i < STORE_LEVELS; i++) per_level[i] = compression;
    rocksdb_options_set_compression_per_level(s->opts, per_level, STORE_LEVELS);
    rocksdb_options_set_keep_log_file_num(s->opts, 3);
    /* Most users a batch reads are in no memtable; the filter spares each
     * of them a skip-list search per memtable (docs/state.md). */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->opts, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(s->opts, 1);

    s->topts = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru((size_t)o->block_cache_mb << 20);
    rocksdb_block_based_options_set_block_cache(s->topts, s->cache);
    rocksdb_block_based_options_set_block_size(s->topts, 4096);
    /* Now owned by the table options. */
    rocksdb_block_based_options_set_filter_policy(s->topts,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->topts, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(s->topts, 1);
    rocksdb_block_based_options_set_format_version(s->topts, 5);
    rocksdb_options_set_block_based_table_factory(s->opts, s->topts);

    if (o->idle_ttl_ms > 0) {
        s->cfilter =
            rocksdb_compactionfilter_create(s, ttl_filter_destroy, ttl_filter, ttl_filter_name);
        rocksdb_options_set_compaction_filter(s->opts, s->cfilter);
    }
    s->ropts = rocksdb_readoptions_create();
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, (unsigned char)(o->sync_writes != 0));
}

/* Refuses a store whose key layout is newer than this binary's; records a
 * fresh store's layout version. */
static int check_format(state_store *s, char *errstr, size_t errstr_size) {
    static const char key[] = "mformat";
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(s->db, s->ropts, key, sizeof(key) - 1, &vlen, &err);
    if (err) {
        snprintf(errstr, errstr_size, "reading store format: %s", err);
        rocksdb_free(err);
        return -1;
    }
    int rc = 0;
    if (v && (vlen != 1 || (uint8_t)v[0] > STORE_FORMAT)) {
        snprintf(errstr, errstr_size, "state store has format %d, this build reads up to %d",
                 vlen ? (int)(uint8_t)v[0] : 0, STORE_FORMAT);
        rc = -1;
    } else if (!v && !s->o.read_only) {
        char f = STORE_FORMAT;
        rocksdb_put(s->db, s->wopts, key, sizeof(key) - 1, &f, 1, &err);
        if (err) {
            snprintf(errstr, errstr_size, "writing store format: %s", err);
            rocksdb_free(err);
            rc = -1;
        }
    }
    rocksdb_free(v);
    return rc;
}

int state_open(const char *dir, const state_options *opts, state_store **out, char *errstr,
               size_t errstr_size) {
    state_options def;
    if (!opts) {
        state_options_default(&def);
        opts = &def;
    }
    *out = NULL;
    int compression = compression_parse(opts->compression ? opts->compression : "lz4");
    if (compression < 0) {
        snprintf(errstr, errstr_size, "unknown compression \"%s\" (none, snappy, lz4, zstd)",
                 opts->compression);
        return -1;
    }
    if (opts->history_len == 0 || opts->history_len > STATE_H_MAX) {
        snprintf(errstr, errstr_size, "history length must be 1..%d", STATE_H_MAX);
        return -1;
    }
    state_store *s = util_calloc(1, sizeof(*s));
    s->o = *opts;
    s->o.compression = NULL; /* the caller's string; not kept */
    if (s->o.block_cache_mb == 0) s->o.block_cache_mb = 8;
    if (s->o.write_buffer_mb == 0) s->o.write_buffer_mb = 4;
    configure(s, compression);
    char *err = NULL;
    /* Opened by column family only to get the default family's handle,
     * which the batched multi-get needs. */
    const char *cf_names[1] = {"default"};
    const rocksdb_options_t *cf_opts[1] = {s->opts};
    s->db = opts->read_only
                ? rocksdb_open_for_read_only_column_families(s->opts, dir, 1, cf_names, cf_opts,
                                                             &s->cf, 0, &err)
                : rocksdb_open_column_families(s->opts, dir, 1, cf_names, cf_opts, &s->cf, &err);
    if (err) {
        snprintf(errstr, errstr_size, "opening state store %s: %s", dir, err);
        rocksdb_free(err);
        state_close(s);
        return -1;
    }
    if (check_format(s, errstr, errstr_size)) {
        state_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void state_close(state_store *s) {
    if (!s) return;
    if (s->cf) rocksdb_column_family_handle_destroy(s->cf);
    if (s->db) rocksdb_close(s->db); /* flushes nothing: the WAL holds it */
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
    if (s->opts) rocksdb_options_destroy(s->opts);
    if (s->topts) rocksdb_block_based_options_destroy(s->topts);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    if (s->cfilter) rocksdb_compactionfilter_destroy(s->cfilter);
    free(s);
}

const state_options *state_get_options(const state_store *s) {
    return &s->o;
}

/* ==== Reads ==== */

/* Turns one stored value into out, counting what happened to it. */
static void load_value(state_store *s, const char *val, size_t vlen, int64_t now, state_user *out) {
    if (!val) return;
    state_dec_result r = state_user_decode(val, vlen, out);
    if (r == STATE_DEC_CORRUPT) {
        atomic_fetch_add(&s->decode_failed, 1);
    } else if (r == STATE_DEC_UNKNOWN_VERSION) {
        atomic_fetch_add(&s->unknown_version, 1);
    } else if (state_is_expired(s, out->last_seen_ms, now)) {
        atomic_fetch_add(&s->expired_on_read, 1);
        state_user_clear(out);
    } else {
        atomic_fetch_add(&s->users_found, 1);
    }
}

typedef struct mg_key {
    const char *key;
    size_t len;
    size_t idx; /* position in the caller's arrays */
} mg_key;

static int mg_key_cmp(const void *a, const void *b) {
    const mg_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Keys are sorted here so that RocksDB's batched MultiGet can probe filters
 * and read blocks in order (faster than the per-key rocksdb_multi_get). */
int state_multi_get(state_store *s, const int32_t *partitions, const char *const *user_ids,
                    const size_t *lens, size_t n, state_user **out, char *errstr,
                    size_t errstr_size) {
    if (n == 0) return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += STATE_PREFIX_LEN + 1 + lens[i];
    char *keybuf = util_malloc(total);
    mg_key *mk = util_malloc(n * sizeof(*mk));
    const char **keys = util_malloc(n * sizeof(*keys));
    size_t *klens = util_malloc(n * sizeof(*klens));
    rocksdb_pinnableslice_t **vals = util_calloc(n, sizeof(*vals));
    char **errs = util_calloc(n, sizeof(*errs));
    char *k = keybuf;
    for (size_t i = 0; i < n; i++) {
        mk[i].key = k;
        mk[i].len = state_key(k, partitions[i], STATE_SUB_USER, user_ids[i], lens[i]);
        mk[i].idx = i;
        k += mk[i].len;
    }
    qsort(mk, n, sizeof(*mk), mg_key_cmp);
    for (size_t i = 0; i < n; i++) {
        keys[i] = mk[i].key;
        klens[i] = mk[i].len;
    }
    rocksdb_batched_multi_get_cf(s->db, s->ropts, s->cf, n, keys, klens, vals, errs, 1);
    int rc = 0;
    int64_t now = util_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (errs[i] && rc == 0) {
            snprintf(errstr, errstr_size, "multi-get: %s", errs[i]);
            rc = -1;
        }
        state_user *u = out[mk[i].idx] = state_user_new();
        if (vals[i]) {
            size_t vlen = 0;
            const char *v = rocksdb_pinnableslice_value(vals[i], &vlen);
            load_value(s, v, vlen, now, u);
            rocksdb_pinnableslice_destroy(vals[i]);
        }
        rocksdb_free(errs[i]);
    }
    atomic_fetch_add(&s->users_read, n);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            state_user_free(out[i]);
            out[i] = NULL;
        }
    }
    free(keybuf);
    free(mk);
    free(keys);
    free(klens);
    free(vals);
    free(errs);
    return rc;
}

int state_get_offset(state_store *s, const char *topic, int32_t partition, int64_t *next,
                     char *errstr, size_t errstr_size) {
    char key[STATE_KEY_MAX];
    size_t klen = state_key(key, partition, STATE_SUB_OFFSET, topic, strlen(topic));
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(s->db, s->ropts, key, klen, &vlen, &err);
    if (err) {
        snprintf(errstr, errstr_size, "reading offset: %s", err);
        rocksdb_free(err);
        return -1;
    }
    if (!v) return 0;
    int rc = 1;
    if (vlen != 9 || v[0] != 1) {
        snprintf(errstr, errstr_size, "stored offset of %s [%d] is malformed", topic, partition);
        rc = -1;
    } else {
        uint64_t x = 0;
        for (int i = 1; i < 9; i++) x = x << 8 | (uint8_t)v[i];
        *next = (int64_t)x;
    }
    rocksdb_free(v);
    return rc;
}

/* ==== Writes ==== */

struct state_batch {
    state_store *s;
    rocksdb_writebatch_t *wb;
    int64_t now;
    char *buf;
    size_t cap;
    size_t count;
};

state_batch *state_batch_new(state_store *s) {
    state_batch *b = util_calloc(1, sizeof(*b));
    b->s = s;
    b->wb = rocksdb_writebatch_create();
    b->now = util_now_ms();
    return b;
}

void state_batch_set_now(state_batch *b, int64_t now_ms) {
    b->now = now_ms;
}

void state_batch_encode_user(const state_batch *b, const state_user *u, char **buf, size_t *len,
                             size_t *cap) {
    state_user stamped = *u; /* shallow: only last_seen and the list cap differ */
    stamped.last_seen_ms = b->now;
    if (b->s->o.published_max && stamped.n_published > b->s->o.published_max)
        stamped.n_published = b->s->o.published_max; /* best first: keeps the top */
    *len = 0;
    state_user_encode(&stamped, buf, len, cap);
}

void state_batch_put_encoded(state_batch *b, int32_t partition, const char *user_id, size_t len,
                             const char *value, size_t value_len) {
    char key[STATE_KEY_MAX];
    size_t klen = state_key(key, partition, STATE_SUB_USER, user_id, len);
    rocksdb_writebatch_put(b->wb, key, klen, value, value_len);
    b->count++;
}

void state_batch_put_user(state_batch *b, int32_t partition, const char *user_id, size_t len,
                          const state_user *u) {
    size_t vlen;
    state_batch_encode_user(b, u, &b->buf, &vlen, &b->cap);
    state_batch_put_encoded(b, partition, user_id, len, b->buf, vlen);
}

void state_batch_delete_user(state_batch *b, int32_t partition, const char *user_id, size_t len) {
    char key[STATE_KEY_MAX];
    size_t klen = state_key(key, partition, STATE_SUB_USER, user_id, len);
    rocksdb_writebatch_delete(b->wb, key, klen);
    b->count++;
}

void state_batch_set_offset(state_batch *b, const char *topic, int32_t partition,
                            int64_t next_offset) {
    char key[STATE_KEY_MAX];
    size_t klen = state_key(key, partition, STATE_SUB_OFFSET, topic, strlen(topic));
    char v[9];
    v[0] = 1;
    for (int i = 0; i < 8; i++) v[1 + i] = (char)((uint64_t)next_offset >> (56 - 8 * i));
    rocksdb_writebatch_put(b->wb, key, klen, v, sizeof(v));
    b->count++;
}

size_t state_batch_count(const state_batch *b) {
    return b->count;
}

int state_batch_commit(state_batch *b, char *errstr, size_t errstr_size) {
    char *err = NULL;
    int64_t t0 = util_mono_ns();
    rocksdb_write(b->s->db, b->s->wopts, b->wb, &err);
    atomic_fetch_add(&b->s->commit_ns, (uint64_t)(util_mono_ns() - t0));
    if (err) {
        snprintf(errstr, errstr_size, "state commit: %s", err);
        rocksdb_free(err);
        return -1;
    }
    atomic_fetch_add(&b->s->batches, 1);
    rocksdb_writebatch_clear(b->wb);
    b->count = 0;
    return 0;
}

void state_batch_free(state_batch *b) {
    if (!b) return;
    rocksdb_writebatch_destroy(b->wb);
    free(b->buf);
    free(b);
}

/* ==== Stats ==== */

static uint64_t prop(state_store *s, const char *name) {
    uint64_t v = 0;
    return rocksdb_property_int(s->db, name, &v) == 0 ? v : 0;
}

void state_get_stats(state_store *s, state_stats *out) {
    out->users_read = atomic_load(&s->users_read);
    out->users_found = atomic_load(&s->users_found);
    out->decode_failed = atomic_load(&s->decode_failed);
    out->unknown_version = atomic_load(&s->unknown_version);
    out->expired_on_read = atomic_load(&s->expired_on_read);
    out->expired_compacted = atomic_load(&s->expired_compacted);
    out->batches = atomic_load(&s->batches);
    out->commit_ns = atomic_load(&s->commit_ns);
    out->approx_bytes =
        prop(s, "rocksdb.total-sst-files-size") + prop(s, "rocksdb.cur-size-all-mem-tables");
}

void state_compact(state_store *s) {
    rocksdb_compact_range(s->db, NULL, 0, NULL, 0);
}
