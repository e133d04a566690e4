/* metrics: the registry of recstream's metrics and its Prometheus text
 * exposition. Counters and gauges with labels live in one table (defs[]);
 * every labelled metric is a dense array of relaxed atomics indexed by its
 * label values, so the processing thread updates without locks and the HTTP
 * thread reads whenever it likes. Histograms, the lag table, the model info
 * strings and the per-variant user estimate (HyperLogLog) are rendered by
 * their own small functions below. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util.h"

const unsigned metrics_ab_k[METRICS_AB_KS] = {5, 10};

/* ==== The table ==== */

typedef enum {
    DIM_TYPE,
    DIM_REASON,
    DIM_VARIANT,
    DIM_SOURCE,
    DIM_K,
    DIM_FILE,
    DIM_RESULT,
    DIM__COUNT
} dim;

static const char *const dim_label[DIM__COUNT] = {"type", "reason", "variant", "source",
                                                  "k",    "file",   "result"};

typedef enum {
    M_EVENTS_CONSUMED,
    M_EVENTS_INVALID,
    M_DLQ,
    M_PUBLISHED,
    M_PUBLISH_FAILED,
    M_RELOADS,
    M_ASSIGNED,
    M_ROCKSDB,
    M_MODEL_ITEMS,
    M_OFFLINE_USERS,
    M_AB_EXPOSURES,
    M_AB_ITEM_EXPOSURES,
    M_AB_HITS,
    M__COUNT
} metric_id;

typedef struct metric_def {
    const char *name;
    const char *type; /* "counter" or "gauge" (gauges hold an int64) */
    const char *help;
    int n_dims;
    dim dims[3];
} metric_def;

static const metric_def defs[M__COUNT] = {
    [M_EVENTS_CONSUMED] = {"recstream_events_consumed_total",
                           "counter",
                           "Valid events applied to state, by event type.",
                           1,
                           {DIM_TYPE}},
    [M_EVENTS_INVALID] = {"recstream_events_invalid_total",
                          "counter",
                          "Messages that failed to decode or validate, by reason.",
                          1,
                          {DIM_REASON}},
    [M_DLQ] = {"recstream_dlq_messages_total",
               "counter",
               "Messages produced to the dead-letter topic.",
               0,
               {0}},
    [M_PUBLISHED] = {"recstream_recommendations_published_total",
                     "counter",
                     "Recommendations records delivered to the output topic, by A/B variant.",
                     1,
                     {DIM_VARIANT}},
    [M_PUBLISH_FAILED] = {"recstream_publish_failures_total",
                          "counter",
                          "Recommendations records whose delivery failed.",
                          0,
                          {0}},
    [M_RELOADS] = {"recstream_reloads_total",
                   "counter",
                   "Model and offline-list reload attempts, by file and result.",
                   2,
                   {DIM_FILE, DIM_RESULT}},
    [M_ASSIGNED] = {"recstream_assigned_partitions",
                    "gauge",
                    "Input partitions currently assigned to this instance.",
                    0,
                    {0}},
    [M_ROCKSDB] = {"recstream_rocksdb_size_bytes",
                   "gauge",
                   "Approximate size of the RocksDB state store on disk.",
                   0,
                   {0}},
    [M_MODEL_ITEMS] =
        {"recstream_model_items", "gauge", "Items in the model being served.", 0, {0}},
    [M_OFFLINE_USERS] = {"recstream_offline_users",
                         "gauge",
                         "Users with an offline list in the file being served.",
                         0,
                         {0}},
    [M_AB_EXPOSURES] = {"recstream_ab_exposures_total",
                        "counter",
                        "Published lists evaluated by the user's next event, by variant.",
                        1,
                        {DIM_VARIANT}},
    [M_AB_ITEM_EXPOSURES] = {"recstream_ab_item_exposures_total",
                             "counter",
                             "Items shown in the top-k of evaluated lists, by variant, source "
                             "and k.",
                             3,
                             {DIM_VARIANT, DIM_SOURCE, DIM_K}},
    [M_AB_HITS] = {"recstream_ab_hits_total",
                   "counter",
                   "Events whose item was in the top-k last published to the user, by variant, "
                   "source of the hit item and k.",
                   3,
                   {DIM_VARIANT, DIM_SOURCE, DIM_K}},
};

static const char *const type_label[CODEC_EVENT_TYPES] = {"listen", "view", "like"};
static const char *const source_label[CODEC_SOURCES] = {"online", "offline", "popular"};
static const char *const file_label[2] = {"model", "offline"};
static const char *const result_label[2] = {"error", "ok"};

/* ==== Histograms ==== */

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60,  300};
static const double batch_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double batch_size_bounds[] = {1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define HIST_MAX_BOUNDS 16

typedef struct hist {
    const char *name, *help;
    const double *bounds;
    size_t n_bounds;
    double scale;                                 /* sum is kept as an integer of value * scale */
    _Atomic uint64_t counts[HIST_MAX_BOUNDS + 1]; /* per bucket, last = +Inf */
    _Atomic uint64_t sum_scaled;
} hist;

enum { H_LATENCY, H_BATCH, H_BATCH_SIZE, H__COUNT };

/* ==== HyperLogLog: distinct users per variant, lock-free ==== */

#define HLL_BITS 12
#define HLL_REGS (1u << HLL_BITS)

/* ==== Lag table ==== */

#define LAG_MAX 1024
typedef struct lag_entry {
    char topic[128];
    int32_t partition;
    int64_t lag;
    int mark; /* seen in the current stats document */
} lag_entry;

struct metrics {
    size_t n_variants;
    char variant[METRICS_MAX_VARIANTS][64];
    size_t offset[M__COUNT]; /* first cell of each metric in cells[] */
    _Atomic uint64_t *cells;
    size_t n_cells;
    hist hists[H__COUNT];
    _Atomic uint8_t hll[METRICS_MAX_VARIANTS][HLL_REGS];
    _Atomic int64_t heartbeat_ns, health_timeout_ms, created_ns;

    pthread_mutex_t lock; /* guards everything below */
    char model_version[128], offline_version[128];
    int64_t model_created_ms, offline_created_ms;
    lag_entry lag[LAG_MAX];
    size_t n_lag;

    /* metrics_log_line's previous snapshot (one caller thread). */
    int64_t prev_ns;
    uint64_t prev_consumed, prev_published;
    uint64_t prev_latency[HIST_MAX_BOUNDS + 1];
};

static size_t dim_size(const metrics *m, dim d) {
    switch (d) {
    case DIM_TYPE:
        return CODEC_EVENT_TYPES;
    case DIM_REASON:
        return CODEC_ERR__COUNT;
    case DIM_VARIANT:
        return m->n_variants;
    case DIM_SOURCE:
        return CODEC_SOURCES;
    case DIM_K:
        return METRICS_AB_KS;
    case DIM_FILE:
        return 2;
    case DIM_RESULT:
        return 2;
    default:
        return 1;
    }
}

static const char *dim_value(const metrics *m, dim d, size_t i, char *buf, size_t size) {
    switch (d) {
    case DIM_TYPE:
        return type_label[i];
    case DIM_REASON:
        return codec_err_reason((codec_err)i);
    case DIM_VARIANT:
        return m->variant[i];
    case DIM_SOURCE:
        return source_label[i];
    case DIM_K:
        snprintf(buf, size, "%u", metrics_ab_k[i]);
        return buf;
    case DIM_FILE:
        return file_label[i];
    case DIM_RESULT:
        return result_label[i];
    default:
        return "";
    }
}

static size_t metric_cells(const metrics *m, metric_id id) {
    size_t n = 1;
    for (int d = 0; d < defs[id].n_dims; d++) n *= dim_size(m, defs[id].dims[d]);
    return n;
}

static void hist_init(hist *h, const char *name, const char *help, const double *bounds, size_t n,
                      double scale) {
    h->name = name;
    h->help = help;
    h->bounds = bounds;
    h->n_bounds = n;
    h->scale = scale;
}

metrics *metrics_new(const char *const *variant_names, size_t n_variants) {
    metrics *m = util_calloc(1, sizeof(*m));
    if (n_variants > METRICS_MAX_VARIANTS) n_variants = METRICS_MAX_VARIANTS;
    if (n_variants == 0 || !variant_names) {
        n_variants = 1;
        snprintf(m->variant[0], sizeof(m->variant[0]), "default");
    } else {
        for (size_t i = 0; i < n_variants; i++)
            snprintf(m->variant[i], sizeof(m->variant[i]), "%s", variant_names[i]);
    }
    m->n_variants = n_variants;
    for (int id = 0; id < M__COUNT; id++) {
        m->offset[id] = m->n_cells;
        m->n_cells += metric_cells(m, (metric_id)id);
    }
    m->cells = util_calloc(m->n_cells, sizeof(*m->cells));
#define NB(a) (sizeof(a) / sizeof(*(a)))
    hist_init(&m->hists[H_LATENCY], "recstream_event_to_publish_latency_seconds",
              "Seconds from an event's Kafka timestamp to its recommendations being produced.",
              latency_bounds, NB(latency_bounds), 1e9);
    hist_init(&m->hists[H_BATCH], "recstream_batch_duration_seconds",
              "Wall time of one batch: decode, state, scoring, write, produce.", batch_bounds,
              NB(batch_bounds), 1e9);
    hist_init(&m->hists[H_BATCH_SIZE], "recstream_batch_events", "Messages per batch.",
              batch_size_bounds, NB(batch_size_bounds), 1);
#undef NB
    pthread_mutex_init(&m->lock, NULL);
    int64_t now = util_mono_ns();
    atomic_store(&m->heartbeat_ns, now);
    atomic_store(&m->created_ns, now);
    atomic_store(&m->health_timeout_ms, 30000);
    m->prev_ns = now;
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m->cells);
    free(m);
}

/* ==== Updates ==== */

static void cell_add(metrics *m, metric_id id, size_t idx, uint64_t n) {
    atomic_fetch_add_explicit(&m->cells[m->offset[id] + idx], n, memory_order_relaxed);
}

static void cell_set(metrics *m, metric_id id, size_t idx, int64_t v) {
    atomic_store_explicit(&m->cells[m->offset[id] + idx], (uint64_t)v, memory_order_relaxed);
}

static uint64_t cell_get(const metrics *m, metric_id id, size_t idx) {
    return atomic_load_explicit(&m->cells[m->offset[id] + idx], memory_order_relaxed);
}

/* Index of (variant, source, k) in the 3-dimensional AB metrics. */
static size_t vsk(size_t variant, codec_source src, size_t k_index) {
    return (variant * CODEC_SOURCES + (size_t)src) * METRICS_AB_KS + k_index;
}

void metrics_event_consumed(metrics *m, codec_event_type type) {
    if ((unsigned)type < CODEC_EVENT_TYPES) cell_add(m, M_EVENTS_CONSUMED, (size_t)type, 1);
}

void metrics_event_invalid(metrics *m, codec_err reason) {
    if ((unsigned)reason < CODEC_ERR__COUNT) cell_add(m, M_EVENTS_INVALID, (size_t)reason, 1);
}

void metrics_dlq_produced(metrics *m) {
    cell_add(m, M_DLQ, 0, 1);
}

void metrics_published(metrics *m, size_t variant) {
    if (variant < m->n_variants) cell_add(m, M_PUBLISHED, variant, 1);
}

void metrics_publish_failed(metrics *m) {
    cell_add(m, M_PUBLISH_FAILED, 0, 1);
}

static void hist_observe(hist *h, double v) {
    if (!(v >= 0)) v = 0; /* clock skew or NaN: count it in the first bucket */
    size_t b = 0;
    while (b < h->n_bounds && v > h->bounds[b]) b++;
    atomic_fetch_add_explicit(&h->counts[b], 1, memory_order_relaxed);
    double scaled = v * h->scale;
    uint64_t add = scaled >= 1.8e19 ? UINT64_MAX / 2 : (uint64_t)(scaled + 0.5);
    atomic_fetch_add_explicit(&h->sum_scaled, add, memory_order_relaxed);
}

void metrics_observe_latency(metrics *m, double seconds) {
    hist_observe(&m->hists[H_LATENCY], seconds);
}

void metrics_observe_batch(metrics *m, double seconds, size_t n_events) {
    hist_observe(&m->hists[H_BATCH], seconds);
    hist_observe(&m->hists[H_BATCH_SIZE], (double)n_events);
}

void metrics_heartbeat(metrics *m) {
    atomic_store_explicit(&m->heartbeat_ns, util_mono_ns(), memory_order_relaxed);
}

void metrics_set_health_timeout_ms(metrics *m, int64_t timeout_ms) {
    atomic_store_explicit(&m->health_timeout_ms, timeout_ms, memory_order_relaxed);
}

void metrics_set_assigned_partitions(metrics *m, int n) {
    cell_set(m, M_ASSIGNED, 0, n);
}

void metrics_set_rocksdb_size(metrics *m, uint64_t bytes) {
    cell_set(m, M_ROCKSDB, 0, (int64_t)bytes);
}

void metrics_set_model(metrics *m, const char *version, int64_t created_ms, uint32_t n_items) {
    pthread_mutex_lock(&m->lock);
    snprintf(m->model_version, sizeof(m->model_version), "%s", version ? version : "");
    m->model_created_ms = created_ms;
    pthread_mutex_unlock(&m->lock);
    cell_set(m, M_MODEL_ITEMS, 0, n_items);
}

void metrics_set_offline(metrics *m, const char *version, int64_t created_ms, uint32_t n_users) {
    pthread_mutex_lock(&m->lock);
    snprintf(m->offline_version, sizeof(m->offline_version), "%s", version ? version : "");
    m->offline_created_ms = created_ms;
    pthread_mutex_unlock(&m->lock);
    cell_set(m, M_OFFLINE_USERS, 0, n_users);
}

void metrics_reload(metrics *m, metrics_file file, int ok) {
    if ((unsigned)file > METRICS_FILE_OFFLINE) return;
    cell_add(m, M_RELOADS, (size_t)file * 2 + (ok ? 1 : 0), 1);
}

/* ==== A/B ==== */

void metrics_ab_user(metrics *m, size_t variant, const char *user_id, size_t len) {
    if (variant >= m->n_variants) return;
    /* A seed of its own, so that the estimate is independent of the
     * assignment hash (which decided this user's variant). */
    uint64_t h = util_hash64(user_id, len, 0x9e3779b97f4a7c15ull);
    uint32_t reg = (uint32_t)(h >> (64 - HLL_BITS));
    uint64_t rest = h << HLL_BITS;
    uint8_t rho = rest ? (uint8_t)(__builtin_clzll(rest) + 1) : (uint8_t)(64 - HLL_BITS + 1);
    _Atomic uint8_t *r = &m->hll[variant][reg];
    uint8_t cur = atomic_load_explicit(r, memory_order_relaxed);
    while (rho > cur && !atomic_compare_exchange_weak_explicit(r, &cur, rho, memory_order_relaxed,
                                                               memory_order_relaxed)) {
    }
}

double metrics_ab_users_estimate(const metrics *m, size_t variant) {
    double sum = 0;
    size_t zeros = 0;
    for (uint32_t j = 0; j < HLL_REGS; j++) {
        uint8_t v = atomic_load_explicit(&m->hll[variant][j], memory_order_relaxed);
        sum += ldexp(1.0, -(int)v);
        zeros += v == 0;
    }
    double mm = HLL_REGS, alpha = 0.7213 / (1 + 1.079 / mm);
    double e = alpha * mm * mm / sum;
    if (e <= 2.5 * mm && zeros) e = mm * log(mm / (double)zeros); /* linear counting */
    return e;
}

void metrics_ab_exposure(metrics *m, size_t variant) {
    if (variant < m->n_variants) cell_add(m, M_AB_EXPOSURES, variant, 1);
}

void metrics_ab_item_exposures(metrics *m, size_t variant, codec_source src, size_t k_index,
                               uint64_t n) {
    if (variant < m->n_variants && (unsigned)src < CODEC_SOURCES && k_index < METRICS_AB_KS)
        cell_add(m, M_AB_ITEM_EXPOSURES, vsk(variant, src, k_index), n);
}

void metrics_ab_hit(metrics *m, size_t variant, codec_source src, size_t k_index) {
    if (variant < m->n_variants && (unsigned)src < CODEC_SOURCES && k_index < METRICS_AB_KS)
        cell_add(m, M_AB_HITS, vsk(variant, src, k_index), 1);
}

/* ==== Lag ==== */

/* Caller holds the lock. */
static lag_entry *lag_find(metrics *m, const char *topic, int32_t partition, int create) {
    for (size_t i = 0; i < m->n_lag; i++)
        if (m->lag[i].partition == partition && !strcmp(m->lag[i].topic, topic)) return &m->lag[i];
    if (!create || m->n_lag == LAG_MAX) return NULL;
    lag_entry *e = &m->lag[m->n_lag++];
    snprintf(e->topic, sizeof(e->topic), "%s", topic);
    e->partition = partition;
    e->lag = 0;
    return e;
}

void metrics_set_lag(metrics *m, const char *topic, int32_t partition, int64_t lag) {
    pthread_mutex_lock(&m->lock);
    lag_entry *e = lag_find(m, topic, partition, 1);
    if (e) e->lag = lag < 0 ? 0 : lag;
    pthread_mutex_unlock(&m->lock);
}

void metrics_remove_partition(metrics *m, const char *topic, int32_t partition) {
    pthread_mutex_lock(&m->lock);
    lag_entry *e = lag_find(m, topic, partition, 0);
    if (e) *e = m->lag[--m->n_lag];
    pthread_mutex_unlock(&m->lock);
}

static int64_t json_i64(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Lag of one partition of a librdkafka stats document, or -1 when unknown:
 * the end the consumer may read to (last stable offset, which equals the
 * high watermark without transactions) minus the application's position. */
static int64_t stats_partition_lag(json_t *p) {
    json_t *desired = json_object_get(p, "desired");
    if (!json_is_true(desired)) return -1;
    int64_t end = json_i64(p, "ls_offset");
    if (end < 0) end = json_i64(p, "hi_offset");
    int64_t pos = json_i64(p, "app_offset");
    if (end >= 0 && pos >= 0) return end > pos ? end - pos : 0;
    int64_t lag = json_i64(p, "consumer_lag");
    if (lag >= 0) return lag;
    /* Assigned, nothing consumed yet: everything up to the end is lag. */
    int64_t lo = json_i64(p, "lo_offset");
    return end >= 0 && lo >= 0 ? end - lo : -1;
}

/* Marks and updates the partitions of one topic; caller holds the lock. */
static void stats_topic(metrics *m, const char *topic, json_t *t) {
    json_t *parts = json_object_get(t, "partitions");
    const char *key;
    json_t *p;
    json_object_foreach(parts, key, p) {
        int64_t part;
        if (util_parse_i64(key, 0, INT32_MAX, &part)) continue; /* "-1": UA partition */
        int64_t lag = stats_partition_lag(p);
        if (lag < 0) continue;
        lag_entry *e = lag_find(m, topic, (int32_t)part, 1);
        if (!e) continue;
        e->lag = lag;
        e->mark = 1;
    }
}

int metrics_rdkafka_stats(metrics *m, const char *json, size_t len, char *errstr,
                          size_t errstr_size) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "statistics JSON: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    json_t *topics = json_object_get(root, "topics");
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_lag; i++) m->lag[i].mark = 0;
    const char *name;
    json_t *t;
    json_object_foreach(topics, name, t) stats_topic(m, name, t);
    for (size_t i = 0; i < m->n_lag;)
        if (!m->lag[i].mark)
            m->lag[i] = m->lag[--m->n_lag];
        else
            i++;
    pthread_mutex_unlock(&m->lock);
    json_decref(root);
    return 0;
}

/* ==== Readiness and liveness ==== */

int metrics_alive(metrics *m) {
    int64_t age_ns = util_mono_ns() - atomic_load_explicit(&m->heartbeat_ns, memory_order_relaxed);
    return age_ns <= atomic_load_explicit(&m->health_timeout_ms, memory_order_relaxed) * 1000000;
}

int metrics_ready(metrics *m, char *buf, size_t size) {
    int have_model;
    pthread_mutex_lock(&m->lock);
    have_model = m->model_version[0] != 0;
    pthread_mutex_unlock(&m->lock);
    if (!have_model) return snprintf(buf, size, "no model loaded"), 0;
    if ((int64_t)cell_get(m, M_ASSIGNED, 0) <= 0)
        return snprintf(buf, size, "no partitions assigned"), 0;
    snprintf(buf, size, "ready");
    return 1;
}

/* ==== Exposition ==== */

typedef struct sbuf {
    char *d;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->d + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 1;
        b->d = util_realloc(b->d, b->cap);
    }
}

/* Label values escaped as the text format asks: backslash, quote, newline. */
static void sb_label(sbuf *b, const char *name, const char *value, int first) {
    sb_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            sb_printf(b, "\\\\");
        else if (*p == '"')
            sb_printf(b, "\\\"");
        else if (*p == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static void sb_header(sbuf *b, const char *name, const char *type, const char *help) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_def(const metrics *m, metric_id id, sbuf *b) {
    const metric_def *d = &defs[id];
    sb_header(b, d->name, d->type, d->help);
    size_t n = metric_cells(m, id);
    for (size_t idx = 0; idx < n; idx++) {
        uint64_t v = cell_get(m, id, idx);
        size_t rem = idx;
        size_t pos[3] = {0, 0, 0};
        int skip = 0;
        for (int k = d->n_dims - 1; k >= 0; k--) {
            size_t s = dim_size(m, d->dims[k]);
            pos[k] = rem % s;
            rem /= s;
            skip |= d->dims[k] == DIM_REASON && pos[k] == CODEC_OK; /* not a failure */
        }
        if (skip) continue;
        sb_printf(b, "%s", d->name);
        for (int k = 0; k < d->n_dims; k++) {
            char tmp[16];
            sb_printf(b, k ? "" : "{");
            sb_label(b, dim_label[d->dims[k]], dim_value(m, d->dims[k], pos[k], tmp, sizeof(tmp)),
                     k == 0);
        }
        if (d->n_dims) sb_printf(b, "}");
        if (!strcmp(d->type, "gauge"))
            sb_printf(b, " %lld\n", (long long)(int64_t)v);
        else
            sb_printf(b, " %llu\n", (unsigned long long)v);
    }
}

static void render_hist(const hist *h, sbuf *b) {
    sb_header(b, h->name, "histogram", h->help);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n_bounds)
            sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
                      (unsigned long long)cum);
        else
            sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, (unsigned long long)cum);
    }
    double sum = (double)atomic_load_explicit(&h->sum_scaled, memory_order_relaxed) / h->scale;
    sb_printf(b, "%s_sum %.9g\n%s_count %llu\n", h->name, sum, h->name, (unsigned long long)cum);
}

static void render_info(metrics *m, sbuf *b) {
    int64_t now = util_now_ms();
    pthread_mutex_lock(&m->lock);
    const char *names[2] = {"model", "offline"};
    const char *versions[2] = {m->model_version, m->offline_version};
    int64_t created[2] = {m->model_created_ms, m->offline_created_ms};
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof(name), "recstream_%s_info", names[i]);
        sb_header(b, name, "gauge",
                  i ? "The offline lists file being served (value 1), by version."
                    : "The model being served (value 1), by version.");
        if (versions[i][0]) {
            sb_printf(b, "%s{", name);
            sb_label(b, "version", versions[i], 1);
            sb_printf(b, "} 1\n");
        }
        snprintf(name, sizeof(name), "recstream_%s_age_seconds", names[i]);
        sb_header(b, name, "gauge",
                  i ? "Seconds since the offline lists file being served was written."
                    : "Seconds since the model being served was created.");
        if (versions[i][0] && created[i] > 0)
            sb_printf(b, "%s %.3f\n", name, (double)(now - created[i]) / 1000.0);
    }
    sb_header(b, "recstream_consumer_lag", "gauge",
              "Messages between this instance's position and the end of each assigned partition.");
    for (size_t i = 0; i < m->n_lag; i++) {
        char part[16];
        snprintf(part, sizeof(part), "%d", m->lag[i].partition);
        sb_printf(b, "recstream_consumer_lag{");
        sb_label(b, "topic", m->lag[i].topic, 1);
        sb_label(b, "partition", part, 0);
        sb_printf(b, "} %lld\n", (long long)m->lag[i].lag);
    }
    pthread_mutex_unlock(&m->lock);
}

static void render_ab_users(const metrics *m, sbuf *b) {
    sb_header(b, "recstream_ab_users", "gauge",
              "Distinct users seen per variant since start (HyperLogLog estimate, ~1.6% error).");
    for (size_t v = 0; v < m->n_variants; v++) {
        sb_printf(b, "recstream_ab_users{");
        sb_label(b, "variant", m->variant[v], 1);
        sb_printf(b, "} %.0f\n", metrics_ab_users_estimate(m, v));
    }
}

char *metrics_render(metrics *m, size_t *len) {
    sbuf b = {util_malloc(16384), 0, 16384};
    b.d[0] = 0;
    for (int id = 0; id < M__COUNT; id++) render_def(m, (metric_id)id, &b);
    for (int h = 0; h < H__COUNT; h++) render_hist(&m->hists[h], &b);
    render_info(m, &b);
    render_ab_users(m, &b);
    sb_header(&b, "recstream_up_seconds", "gauge", "Seconds since the metrics were created.");
    sb_printf(&b, "recstream_up_seconds %.3f\n",
              (double)(util_mono_ns() - atomic_load(&m->created_ns)) / 1e9);
    if (len) *len = b.len;
    return b.d;
}

/* ==== The stats log line ==== */

double metrics_hist_quantile(const double *bounds, const uint64_t *counts, size_t n_bounds,
                             double q) {
    uint64_t total = 0;
    for (size_t i = 0; i <= n_bounds; i++) total += counts[i];
    if (!total) return NAN;
    double rank = q * (double)total, cum = 0;
    for (size_t i = 0; i <= n_bounds; i++) {
        if (cum + (double)counts[i] >= rank && counts[i]) {
            if (i == n_bounds) return bounds[n_bounds - 1]; /* +Inf: the highest bound */
            double lo = i ? bounds[i - 1] : 0;
            return lo + (bounds[i] - lo) * (rank - cum) / (double)counts[i];
        }
        cum += (double)counts[i];
    }
    return bounds[n_bounds - 1];
}

static uint64_t sum_cells(const metrics *m, metric_id id) {
    uint64_t s = 0;
    size_t n = metric_cells(m, id);
    for (size_t i = 0; i < n; i++) s += cell_get(m, id, i);
    return s;
}

/* Hits at k (index 1 = k 10) over all variants and sources. */
static uint64_t hits_at(const metrics *m, size_t k_index) {
    uint64_t s = 0;
    for (size_t v = 0; v < m->n_variants; v++)
        for (int src = 0; src < CODEC_SOURCES; src++)
            s += cell_get(m, M_AB_HITS, vsk(v, (codec_source)src, k_index));
    return s;
}

void metrics_log_line(metrics *m, char *buf, size_t size) {
    int64_t now = util_mono_ns();
    double secs = (double)(now - m->prev_ns) / 1e9;
    if (secs <= 0) secs = 1e-9;
    uint64_t consumed = sum_cells(m, M_EVENTS_CONSUMED), published = sum_cells(m, M_PUBLISHED);
    const hist *h = &m->hists[H_LATENCY];
    uint64_t diff[HIST_MAX_BOUNDS + 1];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        uint64_t c = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        diff[i] = c - m->prev_latency[i];
        m->prev_latency[i] = c;
    }
    double p99 = metrics_hist_quantile(h->bounds, diff, h->n_bounds, 0.99);
    int64_t lag = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_lag; i++) lag += m->lag[i].lag;
    pthread_mutex_unlock(&m->lock);
    uint64_t exposures = sum_cells(m, M_AB_EXPOSURES);
    char p99s[32], hit[32];
    if (isnan(p99))
        snprintf(p99s, sizeof(p99s), "-");
    else
        snprintf(p99s, sizeof(p99s), "%.3fs", p99);
    if (exposures)
        snprintf(hit, sizeof(hit), "%.4f", (double)hits_at(m, 1) / (double)exposures);
    else
        snprintf(hit, sizeof(hit), "-");
    snprintf(buf, size,
             "events/s=%.1f published/s=%.1f invalid=%llu lag=%lld p99=%s hit@10=%s "
             "exposures=%llu",
             (double)(consumed - m->prev_consumed) / secs,
             (double)(published - m->prev_published) / secs,
             (unsigned long long)sum_cells(m, M_EVENTS_INVALID), (long long)lag, p99s, hit,
             (unsigned long long)exposures);
    m->prev_ns = now;
    m->prev_consumed = consumed;
    m->prev_published = published;
}
