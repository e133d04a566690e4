/* Offline lists: every user's top-N items by the ALS score x_u . y_i, the
 * items they already have left out, in an Avro object container file of
 * schemas/offline_list.avsc that any Avro tool can read.
 *
 * Scoring is the neighbour index's pattern: a block of users times a chunk
 * of all items by one sgemm, a bounded heap per user, blocks over threads.
 *
 * The container is written here rather than by avro-c's file writer
 * because avro-c cannot put user metadata in the header, and the version
 * belongs there: "recstream.version", plus "recstream.users" (the record
 * count, so a file cut at a block boundary is caught) and
 * "recstream.checksum" (XXH3 of everything after the header, so a flipped
 * byte is caught; the Avro format has no checksum of its own for the null
 * codec). The reader below checks all three, every block's sync marker and
 * every record, and refuses the file otherwise. */
#define _GNU_SOURCE /* memmem */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_int.h"
#include "util.h"

#define OFF_USERS   256u  /* users per task */
#define OFF_COLS    8192u /* items per sgemm */
#define OFF_RECORDS 4096  /* records per Avro block */

/* ==== Scoring ==== */

typedef struct seen_items {
    uint64_t *ptr; /* per user, into item */
    uint32_t *item;
} seen_items;

static void seen_build(const model_dataset *ds, uint32_t n_users, seen_items *s) {
    s->ptr = util_calloc((size_t)n_users + 1, sizeof(uint64_t));
    for (size_t i = 0; i < ds->n; i++) s->ptr[ds->rows[i].user + 1]++;
    for (uint32_t u = 0; u < n_users; u++) s->ptr[u + 1] += s->ptr[u];
    uint64_t *fill = util_malloc(((size_t)n_users + 1) * sizeof(uint64_t));
    memcpy(fill, s->ptr, ((size_t)n_users + 1) * sizeof(uint64_t));
    s->item = util_malloc(ds->n * sizeof(uint32_t) + 1);
    for (size_t i = 0; i < ds->n; i++) s->item[fill[ds->rows[i].user]++] = ds->rows[i].item;
    free(fill);
}

typedef struct top_ctx {
    const model_als *als;
    const seen_items *seen;
    uint32_t n;
    float *scratch;  /* per worker: OFF_USERS x OFF_COLS */
    uint32_t *idx;   /* n_users x n */
    float *score;    /* n_users x n */
    uint32_t *count; /* per user */
} top_ctx;

static void top_task(size_t task, int worker, void *arg) {
    const top_ctx *c = arg;
    const model_als *a = c->als;
    uint32_t u0 = (uint32_t)task * OFF_USERS, f = a->factors;
    uint32_t rows = a->n_users - u0 < OFF_USERS ? a->n_users - u0 : OFF_USERS;
    float *s = c->scratch + (size_t)worker * OFF_USERS * OFF_COLS;
    mi_topk heaps[OFF_USERS];
    for (uint32_t i = 0; i < rows; i++)
        mi_topk_init(&heaps[i], c->n, c->score + (size_t)(u0 + i) * c->n,
                     c->idx + (size_t)(u0 + i) * c->n);
    for (uint32_t c0 = 0; c0 < a->n_items; c0 += OFF_COLS) {
        uint32_t cols = a->n_items - c0 < OFF_COLS ? a->n_items - c0 : OFF_COLS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)f, 1.0f,
                    a->user_factors + (size_t)u0 * f, (int)f, a->item_factors + (size_t)c0 * f,
                    (int)f, 0.0f, s, (int)cols);
        for (uint32_t i = 0; i < rows; i++) {
            float *row = s + (size_t)i * cols;
            const seen_items *sn = c->seen;
            for (uint64_t j = sn->ptr[u0 + i]; j < sn->ptr[u0 + i + 1]; j++)
                if (sn->item[j] >= c0 && sn->item[j] - c0 < cols) row[sn->item[j] - c0] = -INFINITY;
            float floor = mi_topk_floor(&heaps[i]);
            for (uint32_t j = 0; j < cols; j++) {
                if (row[j] < floor || row[j] == -INFINITY || isnan(row[j])) continue;
                mi_topk_push(&heaps[i], row[j], c0 + j);
                floor = mi_topk_floor(&heaps[i]);
            }
        }
    }
    for (uint32_t i = 0; i < rows; i++) c->count[u0 + i] = mi_topk_finish(&heaps[i]);
}

/* ==== Avro encoding ==== */

typedef struct obuf {
    uint8_t *d;
    size_t len, cap;
} obuf;

static void ob_put(obuf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->d = util_realloc(b->d, b->cap);
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

static void ob_long(obuf *b, int64_t v) {
    uint64_t z = util_zigzag(v);
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = z & 0x7f;
        z >>= 7;
        if (z) tmp[n] |= 0x80;
        n++;
    } while (z);
    ob_put(b, tmp, n);
}

static void ob_str(obuf *b, const char *s, size_t n) {
    ob_long(b, (int64_t)n);
    ob_put(b, s, n);
}

static void ob_record(obuf *b, const char *user, const model_ids *items, const uint32_t *idx,
                      const float *score, uint32_t n) {
    ob_str(b, user, strlen(user));
    if (n) {
        ob_long(b, n);
        for (uint32_t j = 0; j < n; j++) {
            const char *name = model_ids_name(items, idx[j]);
            ob_str(b, name, strlen(name));
            ob_put(b, &score[j], 4); /* Avro floats are little-endian IEEE */
        }
    }
    ob_long(b, 0);
}

static void ob_meta(obuf *b, const char *key, const char *value) {
    ob_str(b, key, strlen(key));
    ob_str(b, value, strlen(value));
}

/* Blocks of records, each followed by the sync marker. */
static uint32_t encode_blocks(obuf *out, const model_dataset *ds, const top_ctx *c,
                              const uint8_t sync[16]) {
    obuf blk = {0};
    uint32_t in_block = 0, users = 0;
    for (uint32_t u = 0; u <= c->als->n_users; u++) {
        int last = u == c->als->n_users;
        if (!last && c->count[u] > 0) {
            ob_record(&blk, model_ids_name(ds->users, u), ds->items, c->idx + (size_t)u * c->n,
                      c->score + (size_t)u * c->n, c->count[u]);
            in_block++;
            users++;
        }
        if (in_block && (in_block == OFF_RECORDS || last)) {
            ob_long(out, in_block);
            ob_long(out, (int64_t)blk.len);
            ob_put(out, blk.d, blk.len);
            ob_put(out, sync, 16);
            blk.len = 0;
            in_block = 0;
        }
    }
    free(blk.d);
    return users;
}

int model_offline_write(const char *path, const model_dataset *ds, const model_als *als, uint32_t n,
                        const char *version, int threads, char *errstr, size_t errstr_size) {
    if (als->n_users != model_ids_count(ds->users) || als->n_items != model_ids_count(ds->items)) {
        snprintf(errstr, errstr_size, "offline: training result does not match the dataset");
        return -1;
    }
    if (!version || !*version || strlen(version) > 256) {
        snprintf(errstr, errstr_size, "offline: a version string is required");
        return -1;
    }
    int t = mi_threads(threads);
    seen_items seen;
    seen_build(ds, als->n_users, &seen);
    top_ctx c = {als,
                 &seen,
                 n,
                 util_malloc((size_t)t * OFF_USERS * OFF_COLS * sizeof(float)),
                 util_malloc((size_t)als->n_users * n * sizeof(uint32_t) + 1),
                 util_malloc((size_t)als->n_users * n * sizeof(float) + 1),
                 util_calloc((size_t)als->n_users + 1, sizeof(uint32_t))};
    if (n > 0) mi_parallel_for(t, (als->n_users + OFF_USERS - 1) / OFF_USERS, top_task, &c);
    free(c.scratch);
    free(seen.ptr);
    free(seen.item);
    uint8_t sync[16];
    uint64_t h1 = util_hash64(version, strlen(version), 1),
             h2 = util_hash64(version, strlen(version), 2);
    memcpy(sync, &h1, 8);
    memcpy(sync + 8, &h2, 8);
    obuf body = {0}, file = {0};
    uint32_t users = encode_blocks(&body, ds, &c, sync);
    free(c.idx);
    free(c.score);
    free(c.count);
    char users_s[32], sum_s[32];
    snprintf(users_s, sizeof(users_s), "%u", users);
    snprintf(sum_s, sizeof(sum_s), "%016llx",
             (unsigned long long)util_hash64(body.d ? body.d : (uint8_t *)"", body.len, 0));
    ob_put(&file, "Obj\x01", 4);
    ob_long(&file, 5);
    ob_meta(&file, "avro.schema", codec_schema_offline_list());
    ob_meta(&file, "avro.codec", "null");
    ob_meta(&file, "recstream.version", version);
    ob_meta(&file, "recstream.users", users_s);
    ob_meta(&file, "recstream.checksum", sum_s);
    ob_long(&file, 0);
    ob_put(&file, sync, 16);
    mi_part parts[2] = {{file.d, file.len}, {body.d, body.len}};
    int rc = model_write_atomic(path, parts, 2, errstr, errstr_size);
    free(file.d);
    free(body.d);
    return rc;
}

/* ==== Loading ==== */

struct model_offline {
    char version[257];
    model_ids *users, *items;
    model_offline_list *lists; /* per user index */
    const char **item_ptr;     /* all lists' item ids, back to back */
    uint32_t *item_idx;
    float *scores;
    size_t n_entries, cap;
};

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int rd_long(rd *r, int64_t *out) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return -1;
}

static int rd_str(rd *r, const char **s, size_t *n) {
    int64_t len;
    if (rd_long(r, &len) != 0 || len < 0 || len > r->end - r->p) return -1;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

static int id_ok(const char *s, size_t n) {
    return n >= 1 && n <= CODEC_ID_MAX && util_utf8_valid(s, n);
}

static void add_entry(model_offline *o, uint32_t item, float score) {
    if (o->n_entries == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->item_idx = util_realloc(o->item_idx, o->cap * sizeof(uint32_t));
        o->scores = util_realloc(o->scores, o->cap * sizeof(float));
    }
    o->item_idx[o->n_entries] = item;
    o->scores[o->n_entries++] = score;
}

/* One OfflineList record; its list's start is kept in lists[u].n until
 * the arrays stop moving (see finish). */
static const char *read_record(rd *r, model_offline *o, size_t *lists_cap) {
    const char *s;
    size_t n;
    if (rd_str(r, &s, &n) != 0) return "truncated user_id";
    if (!id_ok(s, n)) return "bad user_id";
    uint32_t u = model_ids_intern(o->users, s, n);
    if (u + 1 != model_ids_count(o->users)) return "duplicate user_id";
    if (u >= *lists_cap) {
        *lists_cap = *lists_cap ? *lists_cap * 2 : 1024;
        o->lists = util_realloc(o->lists, *lists_cap * sizeof(*o->lists));
    }
    size_t start = o->n_entries;
    for (;;) {
        int64_t count, bytes;
        if (rd_long(r, &count) != 0) return "truncated item array";
        if (count == 0) break;
        if (count < 0) { /* a block with its byte size, per the spec */
            if (count == INT64_MIN || rd_long(r, &bytes) != 0) return "bad item array";
            count = -count;
        }
        if (count > r->end - r->p) return "item array longer than its block";
        for (int64_t j = 0; j < count; j++) {
            float score;
            if (rd_str(r, &s, &n) != 0 || r->end - r->p < 4) return "truncated item";
            if (!id_ok(s, n)) return "bad item_id";
            memcpy(&score, r->p, 4);
            r->p += 4;
            if (!isfinite(score)) return "score is not finite";
            add_entry(o, model_ids_intern(o->items, s, n), score);
        }
    }
    o->lists[u].n = (uint32_t)(o->n_entries - start);
    o->lists[u].item_ids = (const char *const *)(uintptr_t)start; /* fixed up in finish */
    return NULL;
}

static void finish(model_offline *o) {
    o->item_ptr = util_malloc(o->n_entries * sizeof(char *) + 1);
    for (size_t i = 0; i < o->n_entries; i++)
        o->item_ptr[i] = model_ids_name(o->items, o->item_idx[i]);
    for (uint32_t u = 0; u < model_ids_count(o->users); u++) {
        size_t start = (size_t)(uintptr_t)o->lists[u].item_ids;
        o->lists[u].item_ids = o->item_ptr + start;
        o->lists[u].scores = o->scores + start;
    }
    free(o->item_idx);
    o->item_idx = NULL;
}

typedef struct header {
    const char *schema, *codec, *version, *users, *checksum;
    size_t schema_n, codec_n, version_n, users_n, checksum_n;
    uint8_t sync[16];
} header;

static void meta_take(header *h, const char *k, size_t kn, const char *v, size_t vn) {
#define TAKE(name, field)                                                                          \
    if (kn == strlen(name) && !memcmp(k, name, kn)) {                                              \
        h->field = v;                                                                              \
        h->field##_n = vn;                                                                         \
    }
    TAKE("avro.schema", schema)
    TAKE("avro.codec", codec)
    TAKE("recstream.version", version)
    TAKE("recstream.users", users)
    TAKE("recstream.checksum", checksum)
#undef TAKE
}

static const char *read_header(rd *r, header *h) {
    memset(h, 0, sizeof(*h));
    if (r->end - r->p < 4 || memcmp(r->p, "Obj\x01", 4) != 0) return "not an Avro container file";
    r->p += 4;
    for (;;) {
        int64_t count, bytes;
        if (rd_long(r, &count) != 0) return "truncated header";
        if (count == 0) break;
        if (count < 0) {
            if (count == INT64_MIN || rd_long(r, &bytes) != 0) return "truncated header";
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            const char *k, *v;
            size_t kn, vn;
            if (rd_str(r, &k, &kn) != 0 || rd_str(r, &v, &vn) != 0) return "truncated header";
            meta_take(h, k, kn, v, vn);
        }
    }
    if (r->end - r->p < 16) return "truncated header";
    memcpy(h->sync, r->p, 16);
    r->p += 16;
    if (!h->schema || !memmem(h->schema, h->schema_n, "OfflineList", 11))
        return "not an offline lists file (schema is not OfflineList)";
    if (h->codec && !(h->codec_n == 4 && !memcmp(h->codec, "null", 4)))
        return "unsupported Avro codec (only null)";
    if (!h->version || !h->users || !h->checksum)
        return "missing recstream.version/users/checksum metadata";
    if (h->version_n == 0 || h->version_n > 256 || !util_utf8_valid(h->version, h->version_n))
        return "bad recstream.version";
    return NULL;
}

static const char *read_body(rd *r, const header *h, model_offline *o) {
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%016llx",
             (unsigned long long)util_hash64(r->p, (size_t)(r->end - r->p), 0));
    if (h->checksum_n != 16 || memcmp(tmp, h->checksum, 16) != 0)
        return "checksum mismatch (corrupt or truncated file)";
    size_t lists_cap = 0;
    while (r->p < r->end) {
        int64_t count, bytes;
        if (rd_long(r, &count) != 0 || rd_long(r, &bytes) != 0) return "truncated block header";
        if (count <= 0 || bytes <= 0 || bytes > r->end - r->p) return "bad block size";
        rd blk = {r->p, r->p + bytes};
        for (int64_t i = 0; i < count; i++) {
            const char *why = read_record(&blk, o, &lists_cap);
            if (why) return why;
        }
        if (blk.p != blk.end) return "block has trailing bytes";
        r->p += bytes;
        if (r->end - r->p < 16 || memcmp(r->p, h->sync, 16) != 0) return "bad sync marker";
        r->p += 16;
    }
    snprintf(tmp, sizeof(tmp), "%u", model_ids_count(o->users));
    if (h->users_n != strlen(tmp) || memcmp(tmp, h->users, h->users_n) != 0)
        return "record count differs from recstream.users (truncated?)";
    return NULL;
}

int model_offline_load(const char *path, model_offline **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(errstr, errstr_size, "%s: cannot open", path);
        if (f) fclose(f);
        return -1;
    }
    uint8_t *buf = util_malloc((size_t)st.st_size + 1);
    size_t size = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    model_offline *o = util_calloc(1, sizeof(*o));
    o->users = model_ids_new();
    o->items = model_ids_new();
    rd r = {buf, buf + size};
    header h;
    const char *why = read_header(&r, &h);
    if (!why) why = read_body(&r, &h, o);
    if (!why) {
        memcpy(o->version, h.version, h.version_n);
        o->version[h.version_n] = 0;
        finish(o);
    }
    free(buf);
    if (why) {
        snprintf(errstr, errstr_size, "%s: %s", path, why);
        model_offline_free(o);
        return -1;
    }
    *out = o;
    return 0;
}

void model_offline_free(model_offline *o) {
    if (!o) return;
    model_ids_free(o->users);
    model_ids_free(o->items);
    free(o->lists);
    free(o->item_ptr);
    free(o->item_idx);
    free(o->scores);
    free(o);
}

const char *model_offline_version(const model_offline *o) {
    return o->version;
}

uint32_t model_offline_users(const model_offline *o) {
    return model_ids_count(o->users);
}

const model_offline_list *model_offline_get(const model_offline *o, const char *user_id) {
    uint32_t u = model_ids_find(o->users, user_id, strlen(user_id));
    return u == MODEL_NONE ? NULL : &o->lists[u];
}
