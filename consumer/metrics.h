/* metrics: the processor's counters, gauges and histograms, their Prometheus
 * text exposition, the HTTP endpoint (/metrics, /healthz, /readyz) and the
 * one-line stats log.
 *
 * The set of metrics is fixed (one table in metrics.c); labels come only from
 * small fixed sets (event type, invalid reason, A/B variant, item source, k,
 * reloaded file, result) plus topic/partition for lag, never user ids.
 *
 * Threads: the update functions are called by the processing thread (or any
 * thread) and use relaxed C11 atomics, so they never block; the HTTP thread
 * reads the same atomics. The few string-valued things (model version,
 * lag per partition) sit behind a mutex that is taken only when they change,
 * which is rare, and at scrape time. */
#ifndef RECSTREAM_METRICS_H
#define RECSTREAM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define METRICS_MAX_VARIANTS 8 /* A/B arms; ab.h uses the same bound */
#define METRICS_AB_KS        2 /* hit rate is measured at k = 5 and k = 10 (ascending) */
extern const unsigned metrics_ab_k[METRICS_AB_KS];

typedef struct metrics metrics;

/* Variant names become the values of the "variant" label; they are copied.
 * n_variants is 1..METRICS_MAX_VARIANTS. */
metrics *metrics_new(const char *const *variant_names, size_t n_variants);
void metrics_free(metrics *m);

/* ==== Updates from the processing loop ==== */

void metrics_event_consumed(metrics *m, codec_event_type type);
void metrics_event_invalid(metrics *m, codec_err reason);
void metrics_dlq_produced(metrics *m);
void metrics_published(metrics *m, size_t variant);
void metrics_publish_failed(metrics *m); /* delivery report with an error */
/* Seconds from the event's Kafka message timestamp to the moment its
 * recommendations were handed to the producer. */
void metrics_observe_latency(metrics *m, double seconds);
/* Wall time of one batch: consume, decode, state, score, write, produce. */
void metrics_observe_batch(metrics *m, double seconds, size_t n_events);

/* Liveness: call once per loop iteration (cheap: one relaxed store).
 * /healthz answers 200 while the last beat is younger than the timeout. */
void metrics_heartbeat(metrics *m);
void metrics_set_health_timeout_ms(metrics *m, int64_t timeout_ms); /* default 30 s */

void metrics_set_assigned_partitions(metrics *m, int n);

/* Consumer lag per partition: high watermark minus our position. The run
 * loop may set it directly, or feed librdkafka's statistics JSON (the
 * stats_cb payload; set statistics.interval.ms) to metrics_rdkafka_stats,
 * which reads every partition's hi_offset/ls_offset and app_offset.
 * Partitions not in a stats document are dropped from the table (revoked). */
void metrics_set_lag(metrics *m, const char *topic, int32_t partition, int64_t lag);
void metrics_remove_partition(metrics *m, const char *topic, int32_t partition);
int metrics_rdkafka_stats(metrics *m, const char *json, size_t len, char *errstr,
                          size_t errstr_size);

/* Side inputs. created_ms is when the file was made (model->created_ms; for
 * the offline lists the file's mtime); age gauges are computed at scrape. */
void metrics_set_model(metrics *m, const char *version, int64_t created_ms, uint32_t n_items);
void metrics_set_offline(metrics *m, const char *version, int64_t created_ms, uint32_t n_users);

typedef enum { METRICS_FILE_MODEL = 0, METRICS_FILE_OFFLINE = 1 } metrics_file;
void metrics_reload(metrics *m, metrics_file file, int ok);

void metrics_set_rocksdb_size(metrics *m, uint64_t bytes);

/* ==== A/B evaluation (ab.c calls these; see ab_record_event) ==== */

/* Counts the user in the variant's distinct-user estimate (HyperLogLog). */
void metrics_ab_user(metrics *m, size_t variant, const char *user_id, size_t len);
/* One published list was evaluated by the user's next event. */
void metrics_ab_exposure(metrics *m, size_t variant);
/* n items of a source stood in the top-k of an evaluated list. */
void metrics_ab_item_exposures(metrics *m, size_t variant, codec_source src, size_t k_index,
                               uint64_t n);
/* The event's item stood in the top-k, and came from src. */
void metrics_ab_hit(metrics *m, size_t variant, codec_source src, size_t k_index);

/* ==== Reading ==== */

/* The whole exposition in Prometheus text format 0.0.4. Returns a
 * malloc'd NUL-terminated string (free it) and its length in *len. */
char *metrics_render(metrics *m, size_t *len);

/* One line for the periodic stats log: rates since the previous call (the
 * first call measures from metrics_new), e.g.
 * "events/s=1520.3 published/s=1498.0 invalid=2 lag=120 p99=0.012s hit@10=0.081".
 * Call from one thread only. */
void metrics_log_line(metrics *m, char *buf, size_t size);

/* Readiness as /readyz sees it: 1 when partitions are assigned and a model
 * is loaded; otherwise 0 and a reason in buf. */
int metrics_ready(metrics *m, char *buf, size_t size);
int metrics_alive(metrics *m);

/* The variant's distinct-user estimate (what recstream_ab_users shows). */
double metrics_ab_users_estimate(const metrics *m, size_t variant);
/* The q-quantile of a histogram, interpolated within the bucket as
 * Prometheus's histogram_quantile does; counts are per bucket (not
 * cumulative), n_bounds + 1 of them, the last being +Inf. NAN when empty. */
double metrics_hist_quantile(const double *bounds, const uint64_t *counts, size_t n_bounds,
                             double q);

/* ==== HTTP endpoint (libmicrohttpd, internal polling thread) ==== */

typedef struct metrics_http metrics_http;

/* Listens on bind_addr:port ("127.0.0.1" by default when NULL; "0.0.0.0"
 * for all interfaces). Port 0 picks an ephemeral port (tests); the run
 * command treats --metrics-port 0 as "off" and does not call this. Returns
 * NULL with errstr on failure (port in use, bad address). */
metrics_http *metrics_http_start(metrics *m, int port, const char *bind_addr, char *errstr,
                                 size_t errstr_size);
int metrics_http_port(const metrics_http *h); /* the port actually bound */
void metrics_http_stop(metrics_http *h);

#endif
