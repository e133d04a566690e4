/* run: the stream processor behind `recstream run`, callable in process so
 * that `demo` and `bench` run exactly the same loop as the command.
 *
 * One call, run_processor(), joins the consumer group on the events topic,
 * consumes in batches, applies each batch to the state store (histories and
 * the offsets that produced them in one RocksDB write batch), publishes one
 * Recommendations record per touched user, and returns when *stop becomes
 * non-zero (after finishing the batch, flushing, persisting and leaving the
 * group) or on a fatal error. Model and offline-list files are reloaded in
 * the background while it runs.
 *
 * The option table helpers below give `run`, `demo` and `bench` the same
 * flags with the same defaults and checks. */
#ifndef RECSTREAM_RUN_H
#define RECSTREAM_RUN_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ab.h"
#include "codec.h"
#include "metrics.h"
#include "model.h"
#include "producer.h"
#include "util.h"

/* Counters of one run_processor() call; also handed to on_batch. */
typedef struct run_stats {
    uint64_t batches;  /* batches persisted */
    uint64_t consumed; /* messages taken into batches (again when re-read) */
    uint64_t applied;  /* valid events applied to state */
    uint64_t by_type[CODEC_EVENT_TYPES];
    uint64_t invalid; /* messages sent to the dead-letter topic */
    uint64_t invalid_by_reason[CODEC_ERR__COUNT];
    uint64_t published;         /* Recommendations records delivered */
    uint64_t published_bytes;   /* their values' bytes, as handed to the producer
                                   (a retried batch's records count again) */
    uint64_t delivery_failures; /* records that finally failed (batch retried) */
    uint64_t batch_retries;     /* batches rolled back and re-read */
    uint64_t reloads;           /* model or offline files swapped in */
    uint64_t reload_failures;   /* files refused by validation */
    uint64_t rebalances;        /* assignments and revocations handled */
    /* Where the loop thread's time goes (monotonic ns, all batches incl.
     * rolled-back ones), for `recstream bench`'s cost split. */
    uint64_t ns_gather;     /* waiting for and taking messages (from the
                               first batch on: not the group join) */
    uint64_t ns_decode;     /* decoding messages, dead letters */
    uint64_t ns_state;      /* multi-get, record updates, the write batch */
    uint64_t ns_scoring;    /* online scores, blend, encoding the list and the record */
    uint64_t ns_produce;    /* handing records to the producer */
    uint64_t ns_wait;       /* waiting for acknowledgements and commits: a
                               full pipeline, the drain at a stop or a revoke */
    int64_t first_event_ns; /* util_mono_ns() when the first event was taken
                               (0: none yet): where the group join ends */
    char model_version[64]; /* in use at the last batch */
    char offline_version[64];
} run_stats;

#define RUN_MAX_INFLIGHT_DEFAULT 64
#define RUN_MAX_INFLIGHT_MAX     1024

typedef void (*run_batch_cb)(const run_stats *stats, void *opaque);

typedef struct run_config {
    const char *brokers;        /* bootstrap servers; required by run_processor */
    const char *group_id;       /* consumer group, default "recstream" */
    const char *events_topic;   /* default "events" */
    const char *output_topic;   /* default "recommendations" */
    const char *dlq_topic;      /* default "events.dlq" */
    const char *state_dir;      /* RocksDB directory, default "recstream-state" */
    const char *model_path;     /* required: the processor serves from a model */
    const char *offline_path;   /* optional offline lists file */
    int64_t reload_interval_ms; /* file check period, default 5000; 0 disables */
    int batch_size;             /* max messages per batch, default 2000 */
    int max_inflight_batches;   /* batches processed and awaiting their
                                   acknowledgements before the loop waits,
                                   default RUN_MAX_INFLIGHT_DEFAULT */
    int64_t batch_timeout_ms;   /* max wait to fill a batch, default 100 */
    const char *offset_reset;   /* partitions the store never saw: "earliest" (default)
                                   or "latest" */
    codec_format output_format; /* default JSON */
    int32_t schema_id;          /* for CODEC_FORMAT_AVRO_FRAMED without a registry */
    /* Schema Registry base URL, or NULL (then -X schema.registry.url, if
     * set). With one, framed inputs of unknown ids are decoded with the
     * writer schema fetched from it, and avro-framed outputs carry the id of
     * the Recommendations schema under "<output_topic>-value". */
    const char *schema_registry;
    uint32_t history;           /* H: events kept per user, default 50 */
    model_online_params online; /* k, half-life, type weights, include_seen */
    model_blend_params blend;   /* strategy, weights, n (used when ab is NULL) */
    const char *variant;        /* variant name when ab is NULL, "default" */
    const ab_config *ab;        /* finished A/B variants, or NULL: one variant */
    /* Metrics registry to update (caller-owned, e.g. for demo/bench to read),
     * or NULL: run_processor makes its own. */
    metrics *metrics;
    int metrics_port;         /* HTTP metrics/health port; 0 = off */
    const char *metrics_bind; /* address to listen on; NULL = 127.0.0.1 */
    int64_t retry_backoff_ms; /* wait before re-reading a failed batch, default 1000 */
    /* librdkafka settings (-X, -c) for the consumer and the output producer;
     * never modified or freed by run_processor. NULL: defaults. */
    const producer_kconf *kconf;
    run_batch_cb on_batch; /* optional, after each persisted batch (loop thread) */
    void *on_batch_opaque;
} run_config;

/* Fills every field with its default (brokers, model_path, kconf NULL). */
void run_config_default(run_config *cfg);

/* The processor's fetch settings (fetch wait, prefetch queue) for those
 * -X does not set; bench gives its transport bound the same, so that the
 * two are comparable. Returns 0, or -1 (errstr). */
int run_consumer_defaults(rd_kafka_conf_t *conf, const producer_kconf *kc, char *errstr,
                          size_t errsz);

/* Runs the processor until *stop is non-zero (e.g. set by a signal handler)
 * or a fatal error. Returns 0 after a clean shutdown, -1 with errstr when it
 * could not start (bad config, unreadable model, state store unavailable,
 * topic missing) or failed fatally. stats_out (optional) receives the final
 * counters. Thread-compatible: several processors may run in one process. */
int run_processor(const run_config *cfg, volatile sig_atomic_t *stop, run_stats *stats_out,
                  char *errstr, size_t errstr_size);

/* ==== Shared flags of run, demo and bench ==== */

/* Raw option values as the util_cli table writes them; run_cli_finish turns
 * them into cfg. Embed one in a command's own option state. */
typedef struct run_cli {
    run_config cfg;
    int64_t batch_size, max_inflight, history, neighbours, metrics_port, n, schema_id, half_life_ms;
    double weight[CODEC_EVENT_TYPES], blend_weight[CODEC_SOURCES];
    int include_seen, rerank_foldin;
    double rerank_mix;
    const char *format, *blend, *log_level;
    ab_config ab;          /* --variant SPEC, --experiment-salt */
    producer_kconf *kconf; /* owned; -X and unknown -c keys land here */
} run_cli;

#define RUN_CLI_MAX_OPTS 40

void run_cli_init(run_cli *rc);
/* Writes the processor's options into out (cap >= RUN_CLI_MAX_OPTS) and
 * returns how many; a command appends its own after them. */
size_t run_cli_opts(run_cli *rc, util_opt *out, size_t cap);
/* Rewords the help of option name among opts[0..n) (a command for which a
 * shared flag means something else, like --model for demo and bench). */
void run_cli_reword(util_opt *opts, size_t n, const char *name, const char *help);
/* For util_cli: set .unknown_key = producer_kconf_file_key and
 * .unknown_opaque = rc->kconf, so -c keys naming no option go to librdkafka.
 *
 * Checks and converts the parsed values into rc->cfg (cfg.kconf = rc->kconf).
 * Returns 0, or 2 after printing one line through util_cli_error. */
int run_cli_finish(run_cli *rc, const util_cli *cli);
void run_cli_free(run_cli *rc);

#endif
