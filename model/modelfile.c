/* The model file: what `train` hands the processor. One header, then the
 * arrays the processor serves from, in the order it needs them:
 *
 *   header (144 bytes, little-endian; layout in docs/model.md)
 *   item factors   n_items x factors  float32
 *   Gram matrix    factors x factors  float32   (Y^T Y, for fold-in)
 *   neighbour idx  n_items x k        uint32    (MODEL_NONE padded)
 *   neighbour sim  n_items x k        float32
 *   popular idx    n_popular          uint32
 *   popular score  n_popular          float32
 *   item ids       n_items x (uint16 length, bytes)
 *
 * The header carries its own XXH3 checksum and one of the payload, so any
 * flipped bit is caught; the payload size must match the file length, so
 * any truncation is caught. The file is written to path.tmp, fsynced and
 * renamed over path, then the directory is fsynced: a reader sees the old
 * file or the new one, never half of one. Loading reads the file into one
 * allocation and points the arrays into it after checking every index. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model_int.h"
#include "util.h"

#define MF_MAGIC       "RSMODEL\0"
#define MF_VERSION     1u
#define MF_HEADER      144u
#define MF_MAX_FACTORS 1024u
#define MF_MAX_K       100000u
#define MF_MAX_ITEMS   (1u << 30)

/* Header offsets. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_HEADER_SIZE = 12,
    OFF_N_ITEMS = 16,
    OFF_FACTORS = 20,
    OFF_K = 24,
    OFF_N_POPULAR = 28,
    OFF_REG = 32,
    OFF_ALPHA = 36,
    OFF_CREATED = 40,
    OFF_PAYLOAD_SIZE = 48,
    OFF_PAYLOAD_SUM = 56,
    OFF_IDS_SIZE = 64,
    OFF_MODEL_VERSION = 72, /* 64 bytes, NUL-padded */
    OFF_HEADER_SUM = 136
};

/* The format is little-endian on disk; every host we build for is too,
 * and load refuses to run anywhere else rather than misread. */
static int host_is_little_endian(void) {
    uint32_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void put32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Bytes of the fixed-size arrays, or UINT64_MAX when the sizes are absurd. */
static uint64_t numeric_bytes(uint64_t n, uint64_t f, uint64_t k, uint64_t np) {
    if (n > MF_MAX_ITEMS || f > MF_MAX_FACTORS || k > MF_MAX_K || np > n) return UINT64_MAX;
    return 4 * (n * f + f * f + 2 * n * k + 2 * np);
}

void model_free(model *m) {
    if (!m) return;
    model_ids_free(m->items);
    if (m->backing) {
        free(m->backing);
    } else {
        free(m->item_factors);
        free(m->nbr_idx);
        free(m->nbr_sim);
        free(m->popular);
        free(m->popular_score);
        free(m->gram);
    }
    free(m);
}

uint32_t model_item_index(const model *m, const char *item_id) {
    return model_ids_find(m->items, item_id, strlen(item_id));
}

/* ==== Building ==== */

static void make_version(model *m) {
    time_t secs = (time_t)(m->created_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    uint64_t h = util_hash64(m->item_factors, (size_t)m->n_items * m->factors * sizeof(float),
                             (uint64_t)m->created_ms);
    snprintf(m->version, sizeof(m->version), "als-%s-%08x", when, (uint32_t)(h >> 32));
}

int model_build(const model_dataset *ds, const model_als *als, const model_als_params *p,
                uint32_t k, uint32_t n_popular, int64_t popularity_half_life_ms, model **out,
                char *errstr, size_t errstr_size) {
    *out = NULL;
    if (als->n_items != model_ids_count(ds->items) || als->factors != p->factors) {
        snprintf(errstr, errstr_size, "model: training result does not match the dataset");
        return -1;
    }
    model *m = util_calloc(1, sizeof(*m));
    m->n_items = als->n_items;
    m->factors = als->factors;
    m->k = k;
    m->regularization = p->regularization;
    m->alpha = p->alpha;
    m->created_ms = util_now_ms();
    m->items = model_ids_new();
    for (uint32_t i = 0; i < m->n_items; i++) {
        const char *name = model_ids_name(ds->items, i);
        model_ids_intern(m->items, name, strlen(name));
    }
    size_t cells = (size_t)m->n_items * m->factors;
    m->item_factors = util_malloc(cells * sizeof(float) + 1);
    memcpy(m->item_factors, als->item_factors, cells * sizeof(float));
    m->gram = util_malloc((size_t)m->factors * m->factors * sizeof(float));
    mi_gram(m->item_factors, m->n_items, m->factors, p->threads, m->gram);
    m->nbr_idx = util_malloc((size_t)m->n_items * k * sizeof(uint32_t) + 1);
    m->nbr_sim = util_malloc((size_t)m->n_items * k * sizeof(float) + 1);
    if (model_neighbours_build(m->item_factors, m->n_items, m->factors, k, p->threads, m->nbr_idx,
                               m->nbr_sim, errstr, errstr_size) != 0) {
        model_free(m);
        return -1;
    }
    /* Decay is measured from the newest event, not the wall clock, so a
     * replayed or old log still has a meaningful "recent". */
    int64_t now = INT64_MIN;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->rows[i].ts_ms > now) now = ds->rows[i].ts_ms;
    if (n_popular > m->n_items) n_popular = m->n_items;
    m->popular = util_malloc(n_popular * sizeof(uint32_t) + 1);
    m->popular_score = util_malloc(n_popular * sizeof(float) + 1);
    m->n_popular = model_popularity(ds, p->type_weight, popularity_half_life_ms, now, n_popular,
                                    m->popular, m->popular_score);
    make_version(m);
    *out = m;
    return 0;
}

/* ==== Saving ==== */

static uint8_t *append(uint8_t *p, const void *src, size_t n) {
    if (n) memcpy(p, src, n);
    return p + n;
}

static uint8_t *serialise(const model *m, size_t *size_out) {
    uint64_t ids = 0;
    for (uint32_t i = 0; i < m->n_items; i++) ids += 2 + strlen(model_ids_name(m->items, i));
    uint64_t payload = numeric_bytes(m->n_items, m->factors, m->k, m->n_popular) + ids;
    size_t size = MF_HEADER + payload;
    uint8_t *buf = util_calloc(1, size);
    uint8_t *p = buf + MF_HEADER;
    p = append(p, m->item_factors, (size_t)m->n_items * m->factors * 4);
    p = append(p, m->gram, (size_t)m->factors * m->factors * 4);
    p = append(p, m->nbr_idx, (size_t)m->n_items * m->k * 4);
    p = append(p, m->nbr_sim, (size_t)m->n_items * m->k * 4);
    p = append(p, m->popular, (size_t)m->n_popular * 4);
    p = append(p, m->popular_score, (size_t)m->n_popular * 4);
    for (uint32_t i = 0; i < m->n_items; i++) {
        const char *name = model_ids_name(m->items, i);
        uint16_t len = (uint16_t)strlen(name);
        p = append(p, &len, 2);
        p = append(p, name, len);
    }
    memcpy(buf + OFF_MAGIC, MF_MAGIC, 8);
    put32(buf + OFF_VERSION, MF_VERSION);
    put32(buf + OFF_HEADER_SIZE, MF_HEADER);
    put32(buf + OFF_N_ITEMS, m->n_items);
    put32(buf + OFF_FACTORS, m->factors);
    put32(buf + OFF_K, m->k);
    put32(buf + OFF_N_POPULAR, m->n_popular);
    memcpy(buf + OFF_REG, &m->regularization, 4);
    memcpy(buf + OFF_ALPHA, &m->alpha, 4);
    put64(buf + OFF_CREATED, (uint64_t)m->created_ms);
    put64(buf + OFF_PAYLOAD_SIZE, payload);
    put64(buf + OFF_PAYLOAD_SUM, util_hash64(buf + MF_HEADER, payload, 0));
    put64(buf + OFF_IDS_SIZE, ids);
    memcpy(buf + OFF_MODEL_VERSION, m->version, strnlen(m->version, 63));
    put64(buf + OFF_HEADER_SUM, util_hash64(buf, OFF_HEADER_SUM, 0));
    *size_out = size;
    return buf;
}

/* Shared with the offline lists writer: tmp file, fsync, rename, fsync dir. */
int model_write_atomic(const char *path, const mi_part *parts, size_t n_parts, char *errstr,
                       size_t errstr_size) {
    size_t tl = strlen(path) + 8;
    char *tmp = util_malloc(tl);
    snprintf(tmp, tl, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *step = "open";
    if (fd < 0) goto fail;
    step = "write";
    for (size_t i = 0; i < n_parts; i++)
        for (size_t done = 0; done < parts[i].size;) {
            ssize_t n = write(fd, (const char *)parts[i].data + done, parts[i].size - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) goto fail;
            done += (size_t)n;
        }
    step = "fsync";
    if (fsync(fd) != 0) goto fail;
    step = "close";
    int rc = close(fd);
    fd = -1;
    if (rc != 0) goto fail;
    step = "rename";
    if (rename(tmp, path) != 0) goto fail;
    char *dir_copy = util_strdup(path);
    int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir_copy);
    if (dfd >= 0) { /* the rename itself must survive a power cut */
        fsync(dfd);
        close(dfd);
    }
    free(tmp);
    return 0;
fail:
    snprintf(errstr, errstr_size, "%s: %s: %s", tmp, step, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int model_save(const model *m, const char *path, char *errstr, size_t errstr_size) {
    size_t size;
    uint8_t *buf = serialise(m, &size);
    mi_part part = {buf, size};
    int rc = model_write_atomic(path, &part, 1, errstr, errstr_size);
    free(buf);
    return rc;
}

/* ==== Loading ==== */

#define REFUSE(...)                                                                                \
    do {                                                                                           \
        snprintf(errstr, errstr_size, __VA_ARGS__);                                                \
        return -1;                                                                                 \
    } while (0)

static int check_header(const uint8_t *b, size_t size, const char *path, char *errstr,
                        size_t errstr_size) {
    if (size < 12 || memcmp(b, MF_MAGIC, 8) != 0)
        REFUSE("%s: not a recstream model file (bad magic)", path);
    uint32_t v = get32(b + OFF_VERSION);
    if (v != MF_VERSION)
        REFUSE("%s: model format version %u, this build reads version %u", path, v, MF_VERSION);
    if (size < MF_HEADER) REFUSE("%s: truncated header (%zu bytes)", path, size);
    if (util_hash64(b, OFF_HEADER_SUM, 0) != get64(b + OFF_HEADER_SUM))
        REFUSE("%s: header checksum mismatch (corrupt file)", path);
    if (get32(b + OFF_HEADER_SIZE) != MF_HEADER) REFUSE("%s: unexpected header size", path);
    uint64_t num = numeric_bytes(get32(b + OFF_N_ITEMS), get32(b + OFF_FACTORS), get32(b + OFF_K),
                                 get32(b + OFF_N_POPULAR));
    if (num == UINT64_MAX || get32(b + OFF_FACTORS) == 0)
        REFUSE("%s: implausible sizes in header", path);
    uint64_t ids = get64(b + OFF_IDS_SIZE), payload = get64(b + OFF_PAYLOAD_SIZE);
    if (ids > payload || num != payload - ids) REFUSE("%s: header sizes are inconsistent", path);
    if (size - MF_HEADER != payload)
        REFUSE("%s: file is %zu bytes, header promises %llu (truncated?)", path, size,
               (unsigned long long)(MF_HEADER + payload));
    if (util_hash64(b + MF_HEADER, payload, 0) != get64(b + OFF_PAYLOAD_SUM))
        REFUSE("%s: payload checksum mismatch (corrupt file)", path);
    const char *ver = (const char *)b + OFF_MODEL_VERSION;
    size_t vl = strnlen(ver, 64);
    if (vl == 0 || vl == 64 || !util_utf8_valid(ver, vl))
        REFUSE("%s: bad model version string", path);
    return 0;
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

static int check_ids(model *m, const uint8_t *p, uint64_t size, const char *path, char *errstr,
                     size_t errstr_size) {
    const uint8_t *end = p + size;
    for (uint32_t i = 0; i < m->n_items; i++) {
        uint16_t len;
        if (end - p < 2) REFUSE("%s: item id table is short", path);
        memcpy(&len, p, 2);
        p += 2;
        if (len == 0 || len > CODEC_ID_MAX || end - p < len)
            REFUSE("%s: item id %u has a bad length", path, i);
        if (!util_utf8_valid((const char *)p, len))
            REFUSE("%s: item id %u is not valid UTF-8", path, i);
        if (model_ids_intern(m->items, (const char *)p, len) != i)
            REFUSE("%s: item id %u is a duplicate", path, i);
        p += len;
    }
    if (p != end) REFUSE("%s: item id table has trailing bytes", path);
    return 0;
}

static int check_arrays(const model *m, const char *path, char *errstr, size_t errstr_size) {
    if (!all_finite(m->item_factors, (size_t)m->n_items * m->factors) ||
        !all_finite(m->gram, (size_t)m->factors * m->factors))
        REFUSE("%s: factors hold NaN or infinity", path);
    for (uint32_t i = 0; i < m->n_items; i++) {
        const uint32_t *row = m->nbr_idx + (size_t)i * m->k;
        int padded = 0;
        for (uint32_t j = 0; j < m->k; j++) {
            if (row[j] == MODEL_NONE)
                padded = 1;
            else if (padded || row[j] >= m->n_items)
                REFUSE("%s: neighbour %u of item %u is out of range", path, j, i);
        }
    }
    if (!all_finite(m->nbr_sim, (size_t)m->n_items * m->k) ||
        !all_finite(m->popular_score, m->n_popular))
        REFUSE("%s: scores hold NaN or infinity", path);
    for (uint32_t i = 0; i < m->n_popular; i++)
        if (m->popular[i] >= m->n_items) REFUSE("%s: popular item %u is out of range", path, i);
    return 0;
}

static uint8_t *read_all(const char *path, size_t *size, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        if (f) fclose(f);
        return NULL;
    }
    uint8_t *buf = util_malloc((size_t)st.st_size + 1);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        snprintf(errstr, errstr_size, "%s: short read", path);
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

int model_load(const char *path, model **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (!host_is_little_endian()) REFUSE("%s: model files need a little-endian host", path);
    size_t size;
    uint8_t *b = read_all(path, &size, errstr, errstr_size);
    if (!b) return -1;
    if (check_header(b, size, path, errstr, errstr_size) != 0) {
        free(b);
        return -1;
    }
    model *m = util_calloc(1, sizeof(*m));
    m->backing = b;
    m->backing_size = size;
    m->n_items = get32(b + OFF_N_ITEMS);
    m->factors = get32(b + OFF_FACTORS);
    m->k = get32(b + OFF_K);
    m->n_popular = get32(b + OFF_N_POPULAR);
    memcpy(&m->regularization, b + OFF_REG, 4);
    memcpy(&m->alpha, b + OFF_ALPHA, 4);
    m->created_ms = (int64_t)get64(b + OFF_CREATED);
    memcpy(m->version, b + OFF_MODEL_VERSION, 64);
    m->version[63] = 0;
    /* Every section is a multiple of 4 bytes after a 144-byte header, and
     * malloc aligns to 16, so the casts below are aligned. */
    uint8_t *p = b + MF_HEADER;
    m->item_factors = (float *)p;
    p += (size_t)m->n_items * m->factors * 4;
    m->gram = (float *)p;
    p += (size_t)m->factors * m->factors * 4;
    m->nbr_idx = (uint32_t *)p;
    p += (size_t)m->n_items * m->k * 4;
    m->nbr_sim = (float *)p;
    p += (size_t)m->n_items * m->k * 4;
    m->popular = (uint32_t *)p;
    p += (size_t)m->n_popular * 4;
    m->popular_score = (float *)p;
    p += (size_t)m->n_popular * 4;
    m->items = model_ids_new();
    if (check_ids(m, p, get64(b + OFF_IDS_SIZE), path, errstr, errstr_size) != 0 ||
        check_arrays(m, path, errstr, errstr_size) != 0 || !isfinite(m->regularization) ||
        !isfinite(m->alpha)) {
        if (!errstr[0] || !strstr(errstr, path))
            snprintf(errstr, errstr_size, "%s: bad training parameters", path);
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
