/* bench_int: what the files of `recstream bench` share (cmd_bench.c the
 * command and report, bench_stream.c the synthetic stream and the transport
 * bound, bench_latency.c the fixed-rate latency run). Not a public header. */
#ifndef RECSTREAM_BENCH_INT_H
#define RECSTREAM_BENCH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "producer.h"
#include "run.h"

typedef struct bench_opts {
    int64_t events, users, items, partitions, rate, factors, iterations, latency_s, runs;
    int quick, json;
    const char *work_dir;
    char suffix[32]; /* makes topic and group names unique to this run */
} bench_opts;

/* Topics of one bench run, *partitions each; created on the embedded broker
 * or, with --brokers, through the admin API, or failing that by the broker's
 * auto-creation, which picks the count itself and sets *partitions. */
int bench_create_topics(producer_broker *b, const char *brokers, const producer_kconf *kc,
                        const char *const *topics, size_t n, int *partitions, char *errstr,
                        size_t errsz);

/* Produces o->events synthetic JSON events keyed by user to topic and waits
 * for them all; adds them to ds when ds is non-NULL (training data). */
int bench_produce_stream(const bench_opts *o, const char *brokers, const producer_kconf *kc,
                         const char *topic, model_dataset *ds, double *seconds, char *errstr,
                         size_t errsz);

/* Events per second of a run that took n events, n_start of them by
 * t_start, its first output acknowledged, and ended at t_end: over the
 * events taken after t_start, so that neither the processor nor a bound
 * counts its start-up (the group join, the producer's first connection).
 * A stream taken whole by t_start is timed from its first event (t_first),
 * the start-up included. 0 when there is nothing to time. */
double bench_rate(uint64_t n, uint64_t n_start, int64_t t_start, int64_t t_first, int64_t t_end);

/* What a bound publishes: records of bytes bytes, records_per_event of
 * them per event consumed (spread evenly). The transport bound's is one
 * 1-byte record per event; the output-matched bound's the processor's
 * lists, as many and as heavy: what the broker and the clients cost for
 * the processor's output alone. */
typedef struct bench_shape {
    size_t bytes;
    double records_per_event;
} bench_shape;

/* The transport bound: consume every event of topic, produce to out_topic
 * as shape says (NULL: one 1-byte record per event), nothing else.
 * events/s over the events taken after the first record is acknowledged.
 * run (1, 2, ...) makes its consumer group its own, so that each run
 * reads the whole topic. */
int bench_transport_bound(const bench_opts *o, const char *brokers, const producer_kconf *kc,
                          const char *topic, const char *out_topic, int run,
                          const bench_shape *shape, double *events_per_s, char *errstr,
                          size_t errsz);

typedef struct bench_latency {
    uint64_t offered, samples;
    double p50_ms, p95_ms, p99_ms, max_ms, achieved_rate;
    /* event time to the output record's creation (its CreateTime): what
     * the processor adds, without the output's linger, broker and reader */
    double produced_p50_ms, produced_p99_ms;
} bench_latency;

/* Runs the processor (cfg: brokers, model, events and output topics set by
 * the caller; state dir and group are its own) while a thread offers events
 * at o->rate for o->latency_s seconds, consumes the output topic, and
 * reports output arrival minus input produce time. With bare_loop set, a bare
 * loop takes the processor's place: it consumes each event and publishes an
 * empty list for it, so the same measure gives what the broker and the
 * clients alone cost (the latency floor of this broker). */
int bench_run_latency(const bench_opts *o, const run_config *cfg, int bare_loop, bench_latency *out,
                      char *errstr, size_t errsz);

/* A consumer of topic in group, subscribed, with the processor's fetch
 * settings (bench_client_conf). */
rd_kafka_t *bench_group_consumer(const producer_kconf *kc, const char *brokers, const char *group,
                                 const char *topic, char *errstr, size_t errsz);

/* A consumer or producer conf for the bench's own clients. */
rd_kafka_conf_t *bench_client_conf(const producer_kconf *kc, const char *brokers, const char *group,
                                   char *errstr, size_t errsz);

#endif
