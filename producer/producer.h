/* producer: recstream's Kafka foundation and its output side.
 *
 * - producer_kconf: librdkafka settings gathered from -X key=value and from
 *   the keys of a -c FILE that name no recstream option, validated one by one
 *   so that a bad key or value is one clear line (exit 2), logged with
 *   secrets redacted.
 * - producer_broker: the embedded broker (librdkafka's mock cluster), a real
 *   Kafka protocol peer on 127.0.0.1 that kcat and any client can use, with
 *   thin fault-injection wrappers for tests. The mock API is experimental;
 *   all of it lives in producer/broker.c.
 * - producer_out: the output publisher (keyed produce with the murmur2
 *   partitioner, delivery reports counted and handed back per message,
 *   backpressure on a full queue).
 * - producer_registry: a Confluent Schema Registry client (libcurl +
 *   jansson): subject ids for framing outputs, writer schemas by id for
 *   decoding framed inputs.
 * - producer_file_* / producer_synth_*: the flags of the commands that read
 *   event files or generate events (produce, train, eval), shared.
 * - producer_cmd_produce: the `recstream produce` command.
 *
 * Errors: functions return -1 (or NULL) and write one line to errstr. */
#ifndef RECSTREAM_PRODUCER_H
#define RECSTREAM_PRODUCER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "model.h"
#include "util.h"

/* The partitioner of every recstream producer: Java clients' murmur2, so a
 * user lands on the same partition whoever produced the event. */
#define PRODUCER_PARTITIONER "murmur2_random"

/* ==== Kafka client configuration ==== */

typedef struct producer_kconf producer_kconf;

producer_kconf *producer_kconf_new(void);
void producer_kconf_free(producer_kconf *kc);

/* Sets one librdkafka property, checked at once against librdkafka (a
 * scratch configuration), so a bad key or value fails here. A later set of
 * the same key replaces the earlier one. */
int producer_kconf_set(producer_kconf *kc, const char *key, const char *value, char *errstr,
                       size_t errstr_size);

/* util_opt_fn for "-X key=value" (opaque: the producer_kconf). "-X list"
 * and "-X dump" record a request to print the properties; see
 * producer_kconf_show. */
int producer_kconf_opt(const char *kv, void *kconf, char *errstr, size_t errstr_size);

/* util_cli.unknown_key for -c FILE lines naming no recstream option; gets
 * "key=value" (opaque: the producer_kconf). Same rules as -X. */
int producer_kconf_file_key(const char *kv, void *kconf, char *errstr, size_t errstr_size);

/* The value set for key, or NULL. Keys under "schema.registry." are kept
 * here for recstream's Schema Registry client and never go to librdkafka;
 * producer_kconf_set refuses those the client does not know. */
const char *producer_kconf_get(const producer_kconf *kc, const char *key);

/* When -X list (property table) or -X dump (effective configuration, secrets
 * redacted) was given: prints it to out and returns 1 (the command then
 * exits 0). Returns 0 otherwise. */
int producer_kconf_show(const producer_kconf *kc, FILE *out);

/* A new librdkafka configuration: bootstrap.servers = brokers when brokers is
 * non-NULL (else from -X), then every stored key in order. Returns NULL with
 * errstr ("-X key: reason") on failure. The caller owns the result. */
rd_kafka_conf_t *producer_kconf_build(const producer_kconf *kc, const char *brokers, char *errstr,
                                      size_t errstr_size);

/* Logs the user-supplied settings at info level, one line, secrets shown as
 * "[redacted]" (util_is_secret_key). what names the client ("output"). */
void producer_kconf_log(const producer_kconf *kc, const char *what);

/* ==== Embedded broker (librdkafka mock cluster) ==== */

typedef struct producer_broker producer_broker;

#define PRODUCER_BROKER_DEFAULT_PARTITIONS 4

/* Starts a one-broker mock cluster on 127.0.0.1 (random port) and creates
 * each topic with `partitions` partitions. Returns NULL with errstr. */
producer_broker *producer_broker_start(int partitions, const char *const *topics, size_t n_topics,
                                       char *errstr, size_t errstr_size);
/* Same with n_brokers brokers (ids 1..n_brokers), for fault-injection tests. */
producer_broker *producer_broker_start_cluster(int n_brokers, int partitions,
                                               const char *const *topics, size_t n_topics,
                                               char *errstr, size_t errstr_size);
/* "127.0.0.1:PORT[,...]": valid until producer_broker_stop. */
const char *producer_broker_bootstraps(const producer_broker *b);
int producer_broker_create_topic(producer_broker *b, const char *topic, int partitions,
                                 char *errstr, size_t errstr_size);
/* Fault injection. broker_id counts from 1. Return 0 or -1. */
int producer_broker_set_down(producer_broker *b, int32_t broker_id, int down);
int producer_broker_set_rtt(producer_broker *b, int32_t broker_id, int rtt_ms);
/* The next n requests of type api_key (RD_KAFKAP_Produce = 0, Fetch = 1,
 * ...) to any broker fail with errors[0..n-1]. */
void producer_broker_push_errors(producer_broker *b, int16_t api_key, size_t n,
                                 const rd_kafka_resp_err_t *errors);
void producer_broker_stop(producer_broker *b);

/* ==== Output publisher ==== */

typedef struct producer_out producer_out;

/* Called from producer_out_poll/flush (the caller's thread) once per
 * message: msg_opaque as given to producer_out_send, err is
 * RD_KAFKA_RESP_ERR_NO_ERROR when the broker acknowledged it. */
typedef void (*producer_out_dr_fn)(void *msg_opaque, rd_kafka_resp_err_t err, void *cb_opaque);

typedef struct producer_header {
    const char *name;
    const void *value;
    size_t len;
} producer_header;

typedef struct producer_out_stats {
    uint64_t sent;                /* accepted by producer_out_send */
    uint64_t delivered;           /* acknowledged by the broker */
    uint64_t failed;              /* delivery failed (after librdkafka's retries) */
    rd_kafka_resp_err_t last_err; /* last delivery error, or NO_ERROR */
} producer_out_stats;

/* A producer with partitioner=murmur2_random (unless -X partitioner= says
 * otherwise), kc's settings and bootstrap.servers=brokers. dr may be NULL.
 * Returns NULL with errstr ("-X key: reason", or the client's error). */
producer_out *producer_out_new(const producer_kconf *kc, const char *brokers, producer_out_dr_fn dr,
                               void *dr_opaque, char *errstr, size_t errstr_size);
/* Fetches topic's metadata now, waiting up to timeout_ms. librdkafka asks
 * for a topic it has not seen only on its one-second scan, so without this
 * the first records sent to it wait up to a second. Returns 0, or -1 with
 * errstr (no answer in time; the topic unknown): records are still sent
 * once the scan finds it. */
int producer_out_prepare(producer_out *o, const char *topic, int timeout_ms, char *errstr,
                         size_t errstr_size);
/* Asks rk's broker for topic's metadata (which, on a broker that
 * auto-creates topics, creates it), waiting up to timeout_ms; its partition
 * count into *partitions. Returns 0, or -1 with errstr (no answer in time;
 * the topic unknown or without partitions yet). */
int producer_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
                              char *errstr, size_t errstr_size);
/* Enqueues one message, keyed, to the default partitioner. On a full queue
 * it serves delivery reports and retries (backpressure) rather than fail.
 * Headers are copied. Returns 0, or -1 with errstr (unknown topic, message
 * too large, fatal client error). */
int producer_out_send(producer_out *o, const char *topic, const void *key, size_t keylen,
                      const void *value, size_t len, const producer_header *hdrs, size_t n_hdrs,
                      void *msg_opaque, char *errstr, size_t errstr_size);
/* Serves delivery reports; returns how many were served. */
int producer_out_poll(producer_out *o, int timeout_ms);
/* Waits up to timeout_ms for every message to be delivered or fail; returns
 * the number still outstanding (0 = all done). */
int producer_out_flush(producer_out *o, int timeout_ms);
int producer_out_outstanding(const producer_out *o);
producer_out_stats producer_out_get_stats(const producer_out *o);
rd_kafka_t *producer_out_rk(producer_out *o);
/* Destroys the client without flushing (flush first); messages still queued
 * are reported to dr as failed (purged). */
void producer_out_destroy(producer_out *o);

/* ==== Schema Registry client ==== */

typedef struct producer_registry producer_registry;

/* A client of the registry at url ("http[s]://[user:pass@]host:port", or
 * several comma-separated: one that gives no answer is skipped for the next,
 * each with its own timeout). kc
 * (may be NULL) supplies the schema.registry.* settings:
 *   basic.auth.user.info (user:password), ssl.ca.location,
 *   ssl.certificate.location, ssl.key.location, ssl.key.password,
 *   request.timeout.ms (whole request, default 2000), auto.register
 *   (default true; false: look the schema up, never register it).
 * No request is made here. Not thread-safe: one client per thread. Returns
 * NULL with errstr on a bad URL or setting. */
producer_registry *producer_registry_new(const char *url, const producer_kconf *kc, char *errstr,
                                         size_t errstr_size);
void producer_registry_free(producer_registry *r);
/* The URL(s) without credentials, for messages. */
const char *producer_registry_url(const producer_registry *r);
/* 1 when key is a schema.registry.* setting this client understands. */
int producer_registry_key_known(const char *key);

/* The id of schema_json under subject: registers it (POST
 * /subjects/{subject}/versions; an equal schema keeps its id), or with
 * auto.register=false looks it up (POST /subjects/{subject}). Returns 0, or
 * -1 with errstr (HTTP status and the registry's message). */
int producer_registry_subject_id(producer_registry *r, const char *subject, const char *schema_json,
                                 int32_t *id_out, char *errstr, size_t errstr_size);
/* The same for the values of topic under TopicNameStrategy: subject
 * "<topic>-value" (errstr names it). */
int producer_registry_topic_id(producer_registry *r, const char *topic, const char *schema_json,
                               int32_t *id_out, char *errstr, size_t errstr_size);

/* GET /schemas/ids/{id}. Returns 1 with *json_out (malloc'd), 0 when the
 * registry does not have it as an Avro schema (404, another schema type),
 * -1 when no usable answer came (timeout, refused, 5xx, 401/403). The
 * caller caches: codec's decoder keeps every id it learned. */
int producer_registry_schema_by_id(producer_registry *r, int32_t id, char **json_out, char *errstr,
                                   size_t errstr_size);

/* producer_registry_schema_by_id as a codec_schema_fetch_cb (opaque: the
 * producer_registry), for codec_decoder_set_fetcher. */
int producer_registry_fetch_cb(int32_t schema_id, void *opaque, char **json_out, char *errstr,
                               size_t errstr_size);

/* ==== Flags shared by produce, train and eval (cli_events.c) ==== */

/* Event files: --format --columns --header --ts-unit --default-type
 * --strict. Start from PRODUCER_FILE_FLAGS_INIT. */
typedef struct producer_file_flags {
    const char *format, *columns, *ts_unit, *default_type;
    int header, strict;
} producer_file_flags;
#define PRODUCER_FILE_FLAGS_INIT                                                                   \
    { .ts_unit = "ms", .default_type = "view" }
#define PRODUCER_FILE_OPTS 6

/* Writes the rows for f into out (room for PRODUCER_FILE_OPTS); returns
 * how many. */
size_t producer_file_opts(producer_file_flags *f, util_opt *out);
/* Checks the values after parsing and fills o. The format is --format's,
 * else guessed from path's name (TSV when path is NULL). Returns 0, or -1
 * after one util_cli_error line naming the flag. */
int producer_file_resolve(const util_cli *cli, const producer_file_flags *f, const char *path,
                          codec_file_opts *o);

/* The synthetic generator: --users --items --clusters --zipf --in-cluster
 * --drift --new-users --new-items (seed: the command's own --seed row,
 * which may seed more than the generator). Negative: the generator's
 * default. Start from PRODUCER_SYNTH_FLAGS_INIT. */
typedef struct producer_synth_flags {
    int64_t users, items, clusters, seed;
    double zipf, in_cluster, drift, new_users, new_items;
} producer_synth_flags;
#define PRODUCER_SYNTH_FLAGS_INIT                                                                  \
    { -1, -1, -1, -1, -1, -1, -1, -1, -1 }
#define PRODUCER_SYNTH_OPTS 8

size_t producer_synth_opts(producer_synth_flags *s, util_opt *out);
/* The generator's defaults with the given flags applied. */
void producer_synth_params(const producer_synth_flags *s, model_synth_params *sp);

/* ==== Commands ==== */

/* `recstream produce`. */
int producer_cmd_produce(int argc, char **argv);

#endif
