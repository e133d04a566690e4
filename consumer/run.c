/* The processor's main loop: set up the clients, gather a batch, hand it to
 * run_batch.c, repeat until asked to stop; then leave cleanly.
 *
 * Threads: everything here runs on the caller's thread (consumer polls,
 * rebalance callbacks, delivery reports, RocksDB writes), except that the
 * users' lists of a batch are scored on it and on one helper thread
 * (run_par.c). librdkafka's own threads do the network I/O; reload.c's
 * thread loads new model files. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "run_int.h"

/* ==== Set-up and tear-down ==== */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                    size_t errsz) {
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return 0;
    snprintf(errstr, errsz, "consumer %s=%s: %s", key, value, why);
    return -1;
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    run_ctx *c = opaque;
    char err[256];
    if (metrics_rdkafka_stats(c->m, json, len, err, sizeof(err)))
        log_debug("run: consumer statistics: %s", err);
    return 0; /* librdkafka frees json */
}

/* Fetching, where -X does not say otherwise:
 * - The embedded broker holds an empty fetch for the whole wait (real
 *   brokers answer as soon as data arrives): keep it short for latency.
 * - librdkafka 2.0 stops fetching once queued.min.messages (100 000) are
 *   queued, counted over the whole consumer queue, and does not fetch
 *   again at once when the queue drains (2.1 made that pause a setting,
 *   fetch.queue.backoff.ms, 1 s by default); at 120 000 events/s the
 *   statistics showed ~20 fetches a second with empty seconds between, and
 *   the loop waited for input a third of its time. The queue is therefore
 *   bounded by bytes alone (16 MB, ~160 000 JSON events), which also keeps
 *   prefetch memory fixed. */
int run_consumer_defaults(rd_kafka_conf_t *conf, const producer_kconf *kc, char *errstr,
                          size_t errsz) {
    static const char *const defaults[][2] = {
        {"fetch.wait.max.ms", "100"},
        {"queued.min.messages", "10000000"},
        {"queued.max.messages.kbytes", "16384"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (!producer_kconf_get(kc, defaults[i][0]) &&
            conf_set(conf, defaults[i][0], defaults[i][1], errstr, errsz))
            return -1;
    return 0;
}

/* Our consumer settings; a -X of the same key wins where that is safe. */
static int consumer_conf(run_ctx *c, const producer_kconf *kc, rd_kafka_conf_t *conf, char *errstr,
                         size_t errsz) {
    const run_config *cfg = c->cfg;
    int rc = conf_set(conf, "group.id", cfg->group_id, errstr, errsz);
    if (!rc && !producer_kconf_get(kc, "partition.assignment.strategy"))
        rc = conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr, errsz);
    /* Offsets are stored only after the state write (store_group_offsets). */
    if (!rc) rc = conf_set(conf, "enable.auto.offset.store", "false", errstr, errsz);
    if (!rc) rc = conf_set(conf, "auto.offset.reset", cfg->offset_reset, errstr, errsz);
    if (!rc) rc = conf_set(conf, "enable.partition.eof", "false", errstr, errsz);
    if (!rc) rc = run_consumer_defaults(conf, kc, errstr, errsz);
    /* librdkafka's statistics carry each partition's high watermark: lag. */
    if (!rc && !producer_kconf_get(kc, "statistics.interval.ms"))
        rc = conf_set(conf, "statistics.interval.ms", "5000", errstr, errsz);
    if (rc) return -1;
    rd_kafka_conf_set_rebalance_cb(conf, run_rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_opaque(conf, c);
    return 0;
}

static int open_consumer(run_ctx *c, const producer_kconf *kc, char *errstr, size_t errsz) {
    rd_kafka_conf_t *conf = producer_kconf_build(kc, c->cfg->brokers, errstr, errsz);
    if (!conf) return -1;
    if (consumer_conf(c, kc, conf, errstr, errsz)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    char why[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errsz, "consumer: %s", why);
        return -1;
    }
    /* conf is now owned by rk */
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, c->cfg->events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (err) {
        snprintf(errstr, errsz, "subscribing to %s: %s", c->cfg->events_topic,
                 rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* The A/B arms: the caller's, or one arm named cfg->variant with cfg->blend. */
static int open_ab(run_ctx *c, char *errstr, size_t errsz) {
    const run_config *cfg = c->cfg;
    c->ab = cfg->ab;
    if (c->ab) return 0;
    ab_init(&c->ab_local);
    ab_variant *v = &c->ab_local.variants[c->ab_local.n++];
    snprintf(v->name, sizeof(v->name), "%s", cfg->variant ? cfg->variant : "default");
    v->share = 1.0;
    v->blend = cfg->blend;
    c->ab = &c->ab_local;
    return ab_finish(&c->ab_local, cfg->blend.n, errstr, errsz);
}

/* The id of our Recommendations schema under "<output topic>-value"
 * (TopicNameStrategy), which frames every output. */
static int register_output(run_ctx *c, char *errstr, size_t errsz) {
    run_config *cfg = &c->cfg_copy;
    char why[512];
    int32_t id;
    if (producer_registry_topic_id(c->registry, cfg->output_topic, codec_schema_recommendations(),
                                   &id, why, sizeof(why)))
        return snprintf(errstr, errsz, "output schema: %s", why), -1;
    if (cfg->schema_id && cfg->schema_id != id)
        log_warn("run: --schema-id %d ignored: the registry has id %d for %s-value",
                 (int)cfg->schema_id, (int)id, cfg->output_topic);
    log_info("run: outputs framed with schema id %d (%s-value)", (int)id, cfg->output_topic);
    cfg->schema_id = id;
    return 0;
}

/* The Schema Registry, when configured: the decoder asks it for writer
 * schemas of unknown ids, and avro-framed outputs carry its id for ours. */
static int open_registry(run_ctx *c, const producer_kconf *kc, char *errstr, size_t errsz) {
    const run_config *cfg = c->cfg;
    if (!cfg->schema_registry) return 0; /* --schema-registry or -X schema.registry.url */
    c->registry = producer_registry_new(cfg->schema_registry, kc, errstr, errsz);
    if (!c->registry) return -1;
    codec_decoder_set_fetcher(c->dec, producer_registry_fetch_cb, c->registry);
    log_info("run: schema registry %s", producer_registry_url(c->registry));
    if (cfg->output_format != CODEC_FORMAT_AVRO_FRAMED) return 0;
    return register_output(c, errstr, errsz);
}

static int open_metrics(run_ctx *c, char *errstr, size_t errsz) {
    const char *names[AB_MAX_VARIANTS];
    ab_variant_names(c->ab, names);
    c->m = c->cfg->metrics;
    if (!c->m) c->m = c->own_metrics = metrics_new(names, c->ab->n);
    if (c->cfg->metrics_port <= 0) return 0;
    const char *bind = c->cfg->metrics_bind ? c->cfg->metrics_bind : "127.0.0.1";
    c->http = metrics_http_start(c->m, c->cfg->metrics_port, bind, errstr, errsz);
    if (!c->http) return -1;
    log_info("run: metrics on http://%s:%d/metrics", bind, metrics_http_port(c->http));
    return 0;
}

static int open_all(run_ctx *c, const producer_kconf *kc, char *errstr, size_t errsz) {
    const run_config *cfg = c->cfg;
    if (!cfg->brokers) return snprintf(errstr, errsz, "no brokers given"), -1;
    if (open_ab(c, errstr, errsz) || open_metrics(c, errstr, errsz)) return -1;
    state_options so;
    state_options_default(&so);
    so.history_len = cfg->history;
    so.published_max = cfg->blend.n;
    if (state_open(cfg->state_dir, &so, &c->store, errstr, errsz)) return -1;
    c->rl = reload_start(cfg->model_path, cfg->offline_path, cfg->reload_interval_ms, c->m, errstr,
                         errsz);
    if (!c->rl) return -1;
    c->dec = codec_decoder_new();
    if (open_registry(c, kc, errstr, errsz)) return -1;
    for (int w = 0; w < RUN_PAR_WORKERS; w++) run_recs_init(&c->recs[w]);
    c->par = run_par_start();
    size_t n = (size_t)cfg->batch_size;
    c->msgs = util_calloc(n, sizeof(*c->msgs));
    c->events = util_calloc(n, sizeof(*c->events));
    c->parts = util_calloc(n, sizeof(*c->parts));
    run_pipe_init(c);
    c->out = producer_out_new(kc, cfg->brokers, run_pipe_dr, c, errstr, errsz);
    if (!c->out || open_consumer(c, kc, errstr, errsz)) return -1;
    /* While the group join runs: the first lists then go out at once. */
    char why[512];
    if (producer_out_prepare(c->out, cfg->output_topic, 2000, why, sizeof(why)))
        log_warn("run: output %s", why);
    return 0;
}

/* Leaves the group (its last revoke runs in here), then frees everything. */
static void close_all(run_ctx *c) {
    for (size_t i = 0; i < c->n_msgs; i++) rd_kafka_message_destroy(c->msgs[i]);
    c->n_msgs = 0; /* before close: librdkafka waits for every message */
    if (c->rk) {
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
        if (err) log_warn("run: closing the consumer: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(c->rk);
    }
    if (c->out) {
        int left = producer_out_flush(c->out, 10000);
        if (left) log_warn("run: %d records still unacknowledged at exit", left);
        producer_out_destroy(c->out);
    }
    if (c->rl) {
        c->stats.reloads = reload_count(c->rl);
        c->stats.reload_failures = reload_failures(c->rl);
        reload_stop(c->rl);
    }
    run_pipe_free(c);
    run_batch_free(c);
    if (c->store) state_close(c->store);
    if (c->dec) codec_decoder_free(c->dec);
    producer_registry_free(c->registry);
    run_par_stop(c->par);
    for (int w = 0; w < RUN_PAR_WORKERS; w++) run_recs_free(&c->recs[w]);
    free(c->msgs);
    free(c->events);
    free(c->parts);
    free(c->assigned);
    if (c->http) metrics_http_stop(c->http);
    metrics_free(c->own_metrics);
}

/* ==== The loop ==== */

static void consumer_error(run_ctx *c, const rd_kafka_message_t *m) {
    char why[512];
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(c->rk, why, sizeof(why));
        log_error("run: fatal consumer error: %s", why);
        c->fatal = 1;
        return;
    }
    /* Transport errors and an absent broker are retried by librdkafka; we
     * only keep polling (with timeouts, so the loop never spins). */
    log_warn("run: consumer: %s", rd_kafka_message_errstr(m));
}

/* Fills c->msgs with up to batch_size messages of assigned events-topic
 * partitions: waits at most batch_timeout_ms for the first, then takes what
 * is already queued. With batches pending it waits at most 10 ms at a time
 * and returns empty-handed, so that acknowledged batches get written. */
static void gather(run_ctx *c) {
    int64_t most = c->n_pend ? 10 : 100;
    int64_t deadline = util_mono_ns() / 1000000 + c->cfg->batch_timeout_ms;
    while (c->n_msgs < (size_t)c->cfg->batch_size && !*c->stop && !c->fatal) {
        /* Once the batch has a message, take only what is already queued:
         * under load the queue is never empty and batches fill up; when the
         * stream is quiet an event is not held back for the timeout. (The
         * clock is read only before a wait: not once per message.) */
        int wait = 0;
        if (!c->n_msgs) {
            int64_t left = deadline - util_mono_ns() / 1000000;
            if (left <= 0) break;
            wait = left > most ? (int)most : (int)left;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (!m && (c->n_msgs || c->n_pend)) break;
        if (!m) continue;
        if (m->err) {
            consumer_error(c, m);
            rd_kafka_message_destroy(m);
        } else if (!run_is_assigned(c, m->partition) ||
                   strcmp(rd_kafka_topic_name(m->rkt), c->cfg->events_topic)) {
            rd_kafka_message_destroy(m);
        } else {
            if (!c->stats.first_event_ns) c->stats.first_event_ns = util_mono_ns();
            c->stats.consumed++;
            c->msgs[c->n_msgs++] = m;
        }
    }
}

/* Every 10 s: the one-line stats log and the store's size. */
static void periodic(run_ctx *c) {
    int64_t now = util_now_ms();
    metrics_heartbeat(c->m);
    metrics_set_assigned_partitions(c->m, (int)c->n_assigned);
    if (now < c->next_log_ms) return;
    char line[512];
    state_stats ss;
    state_get_stats(c->store, &ss);
    metrics_set_rocksdb_size(c->m, ss.approx_bytes);
    if (c->next_log_ms) {
        metrics_log_line(c->m, line, sizeof(line));
        log_info("stats: %s", line);
    }
    c->next_log_ms = now + 10000;
}

/* Batches are processed while earlier ones await their acknowledgements
 * (run_pipe.c); the loop waits only when max_inflight_batches are pending,
 * and after a failure seeks back and backs off. */
static void loop(run_ctx *c) {
    while (!*c->stop && !c->fatal) {
        if (run_pipe_backoff(c)) continue;
        int64_t t0 = util_mono_ns();
        gather(c); /* a revoke drains the pipeline in here */
        if (c->next_seq > 1) c->stats.ns_gather += (uint64_t)(util_mono_ns() - t0);
        producer_out_poll(c->out, 0);
        run_pipe_serve(c);
        periodic(c);
        if (c->need_seek) run_pipe_rollback(c);
        if (!c->n_msgs) continue;
        run_pipe_wait_room(c);
        if (c->need_seek) run_pipe_rollback(c);
        /* A batch gathered when the stop came is processed, then drained. */
        if (c->n_msgs && c->n_pend <= (size_t)c->cfg->max_inflight_batches) run_batch_process(c);
    }
    run_pipe_drain(c, RUN_STOP_GRACE_MS);
    if (c->need_seek) c->n_seek = 0, c->need_seek = 0; /* re-read at the next start */
}

int run_processor(const run_config *cfg, volatile sig_atomic_t *stop, run_stats *stats_out,
                  char *errstr, size_t errstr_size) {
    run_ctx *c = util_calloc(1, sizeof(*c));
    c->cfg_copy = *cfg;
    c->cfg = &c->cfg_copy;
    c->stop = stop;
    producer_kconf *own = cfg->kconf ? NULL : producer_kconf_new();
    const producer_kconf *kc = cfg->kconf ? cfg->kconf : own;
    producer_kconf_log(kc, "client");
    int rc = open_all(c, kc, errstr, errstr_size), started = rc == 0;
    if (started) {
        log_info("run: consuming %s as group %s; output %s, dead letters %s", cfg->events_topic,
                 cfg->group_id, cfg->output_topic, cfg->dlq_topic);
        loop(c);
        if (c->fatal) rc = -1, snprintf(errstr, errstr_size, "stopped on a fatal error (see log)");
    }
    close_all(c);
    if (started)
        log_info("run: stopped after %" PRIu64 " batches, %" PRIu64 " events applied, %" PRIu64
                 " invalid, %" PRIu64 " published",
                 c->stats.batches, c->stats.applied, c->stats.invalid, c->stats.published);
    if (stats_out) *stats_out = c->stats;
    free(c);
    producer_kconf_free(own);
    return rc;
}
