/* `recstream produce`: publishes UserEvents, keyed by user id, from TSV/CSV/
 * JSON-lines files or from the synthetic generator, at an optional rate, with
 * a progress line and every delivery report checked. Exit 1 when any event
 * was not delivered (as kcat does), 2 on a bad flag. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "producer.h"
#include "util.h"

/* ==== Settings ==== */

typedef struct produce_cfg {
    const char *brokers, *topic, *output_format, *log_level, *schema_registry;
    producer_file_flags file;
    producer_synth_flags synth;
    int64_t synthetic, schema_id, partitions;
    int64_t start_ms, mean_gap_ms, progress_ms, flush_ms;
    double rate;
    producer_kconf *kc;
} produce_cfg;

/* Resolved from the strings after parsing. */
typedef struct produce_plan {
    codec_file_opts file;
    int file_format_given; /* else guessed per file from its name */
    codec_format out_format;
} produce_plan;

#define UNSET -1

static const char about[] =
    "Publishes UserEvents to a topic, keyed by user id, from event files (TSV, CSV or JSON\n"
    "lines; '-' is stdin) or from the synthetic generator (--synthetic N: users with taste\n"
    "clusters over Zipf-popular items). Without --brokers it starts the embedded broker in\n"
    "this process and prints its address first (it goes away when produce exits: useful for\n"
    "benchmarks; use `recstream broker` to keep one). -X key=value and unknown -c FILE keys\n"
    "go to librdkafka. The partitioner is murmur2_random (as Java clients) unless -X\n"
    "partitioner=... says otherwise. Exit 1 if any event was not delivered.\n"
    "Examples:\n"
    "  recstream produce -b localhost:9092 --columns user,item,weight,ts --ts-unit s u.data\n"
    "  recstream produce -b $addr --synthetic 100000 --rate 5000 --output-format avro";

static int set_log_level(const util_cli *cli, const char *s) {
    if (!s) return 0;
    int l = util_log_level_parse(s);
    if (l < 0) return util_cli_error(cli, "--log-level: unknown '%s'", s), -1;
    util_log_set_level((util_log_level)l);
    return 0;
}

/* Checks that need more than one flag, and turns strings into enums. */
static int resolve(const util_cli *cli, const produce_cfg *c, int n_pos, produce_plan *p) {
    memset(p, 0, sizeof(*p));
    if (c->synthetic == UNSET && !n_pos)
        return util_cli_error(cli, "give event files or --synthetic N (see --help)"), -1;
    if (c->synthetic != UNSET && n_pos)
        return util_cli_error(cli, "give either event files or --synthetic, not both"), -1;
    if (producer_file_resolve(cli, &c->file, NULL, &p->file)) return -1;
    p->file_format_given = c->file.format != NULL;
    int f = codec_format_parse(c->output_format);
    if (f < 0)
        return util_cli_error(cli, "--output-format: expected json, avro or avro-framed, not '%s'",
                              c->output_format),
               -1;
    p->out_format = (codec_format)f;
    if (p->out_format == CODEC_FORMAT_AVRO_FRAMED && c->schema_id == UNSET && !c->schema_registry &&
        !producer_kconf_get(c->kc, "schema.registry.url"))
        return util_cli_error(cli, "--output-format avro-framed needs --schema-registry or "
                                   "--schema-id"),
               -1;
    return set_log_level(cli, c->log_level);
}

/* ==== Sources: files one after another, or the generator ==== */

typedef struct source {
    model_synth *synth;
    int64_t synth_left;
    char **paths;
    int n_paths, next_path;
    codec_file_reader *file;
    const produce_plan *plan;
    int strict;
    uint64_t bad_lines;
} source;

static model_synth *synth_new(const produce_cfg *c) {
    model_synth_params sp;
    producer_synth_params(&c->synth, &sp);
    if (c->start_ms != UNSET) sp.start_ms = c->start_ms;
    if (c->mean_gap_ms != UNSET) sp.mean_gap_ms = c->mean_gap_ms;
    log_info("synthetic events: %u users, %u items, %u clusters, zipf %.2f, seed %llu", sp.users,
             sp.items, sp.clusters, sp.zipf_s, (unsigned long long)sp.seed);
    return model_synth_new(&sp);
}

static int open_next(source *s, char *err, size_t errsz) {
    const char *path = s->paths[s->next_path++];
    codec_file_opts o = s->plan->file;
    if (!s->plan->file_format_given) o.format = codec_file_format_guess(path);
    if (!(s->file = codec_file_open(path, &o, err, errsz))) return -1;
    log_info("reading %s", path);
    return 0;
}

/* 1 with *ev filled, 0 at the end, -1 on a fatal error (err set). */
static int source_next(source *s, codec_event *ev, char *err, size_t errsz) {
    if (s->synth) {
        if (s->synth_left-- <= 0) return 0;
        model_synth_next(s->synth, ev);
        return 1;
    }
    for (;;) {
        if (!s->file) {
            if (s->next_path == s->n_paths) return 0;
            if (open_next(s, err, errsz)) return -1;
        }
        int rc = codec_file_next(s->file, ev, err, errsz);
        if (rc == 1) return 1;
        if (rc == 0) {
            codec_file_close(s->file);
            s->file = NULL;
            continue;
        }
        if (s->strict) return -1;
        if (s->bad_lines++ < 10) log_warn("skipping %s", err);
    }
}

static void source_close(source *s) {
    if (s->file) codec_file_close(s->file);
    model_synth_free(s->synth);
}

/* ==== Rate limiting: a token bucket holding at most 50 ms of events ==== */

typedef struct bucket {
    double rate, tokens, burst;
    int64_t last_ns;
} bucket;

static void bucket_init(bucket *b, double rate) {
    b->rate = rate;
    b->burst = rate * 0.05 > 1 ? rate * 0.05 : 1;
    b->tokens = 1;
    b->last_ns = util_mono_ns();
}

/* Waits for one token, serving delivery reports meanwhile. */
static void bucket_take(bucket *b, producer_out *out) {
    if (b->rate <= 0) return;
    for (;;) {
        int64_t now = util_mono_ns();
        b->tokens += (double)(now - b->last_ns) * b->rate / 1e9;
        if (b->tokens > b->burst) b->tokens = b->burst;
        b->last_ns = now;
        if (b->tokens >= 1 || util_stop_requested) break;
        int wait_ms = (int)((1 - b->tokens) * 1000 / b->rate) + 1;
        producer_out_poll(out, wait_ms < 100 ? wait_ms : 100);
    }
    b->tokens -= 1;
}

/* ==== The produce loop ==== */

typedef struct run {
    producer_out *out;
    const produce_cfg *cfg;
    const produce_plan *plan;
    int64_t start_ns, last_progress_ns;
    uint64_t send_errors;
} run;

static void progress(run *r, int final) {
    producer_out_stats st = producer_out_get_stats(r->out);
    double secs = (double)(util_mono_ns() - r->start_ns) / 1e9;
    double rate = secs > 0 ? (double)st.sent / secs : 0;
    if (final)
        log_info("produced %llu event(s) to %s in %.1f s (%.0f ev/s): delivered %llu, failed "
                 "%llu, not sent %llu",
                 (unsigned long long)st.sent, r->cfg->topic, secs, rate,
                 (unsigned long long)st.delivered, (unsigned long long)st.failed,
                 (unsigned long long)r->send_errors);
    else
        log_info("progress: sent %llu, delivered %llu, failed %llu, %.0f ev/s",
                 (unsigned long long)st.sent, (unsigned long long)st.delivered,
                 (unsigned long long)st.failed, rate);
}

static int send_event(run *r, const codec_event *ev, codec_buf *buf) {
    char err[512];
    if (codec_encode_event(ev, r->plan->out_format, (int32_t)r->cfg->schema_id, buf, err,
                           sizeof(err))) {
        log_error("encoding event of user %s: %s", ev->user_id, err);
        return -1;
    }
    if (producer_out_send(r->out, r->cfg->topic, ev->user_id, ev->user_len, buf->data, buf->len,
                          NULL, 0, NULL, err, sizeof(err))) {
        if (r->send_errors++ < 10) log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Returns 0 when the source ended (or a signal came), -1 on a fatal source error. */
static int produce_all(run *r, source *src) {
    codec_buf buf = {0};
    codec_event ev;
    bucket b;
    char err[512];
    int rc;
    bucket_init(&b, r->cfg->rate);
    while (!util_stop_requested && (rc = source_next(src, &ev, err, sizeof(err))) == 1) {
        bucket_take(&b, r->out);
        send_event(r, &ev, &buf);
        int64_t now = util_mono_ns();
        if (now - r->last_progress_ns >= r->cfg->progress_ms * 1000000) {
            r->last_progress_ns = now;
            progress(r, 0);
        }
    }
    codec_buf_free(&buf);
    if (util_stop_requested)
        log_warn("interrupted: stopping early");
    else if (rc < 0)
        return log_error("%s", err), -1;
    return 0;
}

/* Flushes, reports, and picks the exit code. */
static int finish(run *r, int source_failed) {
    int left = producer_out_flush(r->out, (int)r->cfg->flush_ms);
    progress(r, 1);
    producer_out_stats st = producer_out_get_stats(r->out);
    if (left > 0)
        log_error("%d message(s) still undelivered after %lld ms", left,
                  (long long)r->cfg->flush_ms);
    if (st.failed)
        log_error("%llu event(s) could not be delivered (last error: %s)",
                  (unsigned long long)st.failed, rd_kafka_err2str(st.last_err));
    return source_failed || left > 0 || st.failed || r->send_errors ? 1 : 0;
}

/* With a registry and framed output: the id of our UserEvent schema under
 * "<topic>-value" (registered, or looked up with auto.register=false). */
static int registry_schema_id(produce_cfg *c, const produce_plan *plan) {
    const char *url =
        c->schema_registry ? c->schema_registry : producer_kconf_get(c->kc, "schema.registry.url");
    if (!url || plan->out_format != CODEC_FORMAT_AVRO_FRAMED) return 0;
    char err[512];
    producer_registry *r = producer_registry_new(url, c->kc, err, sizeof(err));
    int32_t id;
    int rc = r ? producer_registry_topic_id(r, c->topic, codec_schema_user_event(), &id, err,
                                            sizeof(err))
               : -1;
    if (rc)
        log_error("schema registry: %s", err);
    else
        log_info("framing with schema id %d (%s-value at %s)", (int)id, c->topic,
                 producer_registry_url(r));
    if (!rc) c->schema_id = id;
    producer_registry_free(r);
    return rc;
}

static int produce(produce_cfg *c, const produce_plan *plan, char **paths, int n_paths) {
    char err[512];
    producer_broker *broker = NULL;
    if (registry_schema_id(c, plan)) return 1;
    if (!c->brokers) {
        const char *topics[] = {c->topic};
        if (!(broker = producer_broker_start((int)c->partitions, topics, 1, err, sizeof(err))))
            return log_error("%s", err), 1;
        c->brokers = producer_broker_bootstraps(broker);
        printf("%s\n", c->brokers);
        fflush(stdout);
        log_info("embedded broker on %s (lives as long as this command)", c->brokers);
    }
    producer_kconf_log(c->kc, "producer");
    run r = {.cfg = c, .plan = plan};
    int rc = 1;
    if (!(r.out = producer_out_new(c->kc, c->brokers, NULL, NULL, err, sizeof(err)))) {
        log_error("%s", err);
        producer_broker_stop(broker);
        return 2;
    }
    source src = {.paths = paths, .n_paths = n_paths, .plan = plan, .strict = c->file.strict};
    if (c->synthetic != UNSET) {
        src.synth = synth_new(c);
        src.synth_left = c->synthetic;
    }
    r.start_ns = r.last_progress_ns = util_mono_ns();
    int failed = produce_all(&r, &src);
    rc = finish(&r, failed);
    if (src.bad_lines) log_warn("%llu input line(s) skipped", (unsigned long long)src.bad_lines);
    source_close(&src);
    producer_out_destroy(r.out);
    producer_broker_stop(broker);
    return rc;
}

int producer_cmd_produce(int argc, char **argv) {
    produce_cfg c = {.topic = "events",
                     .output_format = "json",
                     .file = PRODUCER_FILE_FLAGS_INIT,
                     .synth = PRODUCER_SYNTH_FLAGS_INIT,
                     .synthetic = UNSET,
                     .schema_id = UNSET,
                     .start_ms = UNSET,
                     .mean_gap_ms = UNSET,
                     .rate = 0,
                     .partitions = PRODUCER_BROKER_DEFAULT_PARTITIONS,
                     .progress_ms = 5000,
                     .flush_ms = 60000};
    c.kc = producer_kconf_new();
    const util_opt head[] = {
        {"brokers", 'b', UTIL_OPT_STRING, &c.brokers, .arg = "HOST:PORT,...",
         .help = "Kafka bootstrap servers (default: start the embedded broker)"},
        {"topic", 't', UTIL_OPT_STRING, &c.topic, .arg = "TOPIC", .help = "default events"},
        {"X", 'X', UTIL_OPT_FUNC, c.kc, .fn = producer_kconf_opt, .arg = "KEY=VALUE",
         .help = "librdkafka property (repeatable); -X list, -X dump"},
        {"synthetic", 'n', UTIL_OPT_INT, &c.synthetic, 0, INT64_MAX, .arg = "N",
         .help = "generate N synthetic events instead of reading files"},
    };
    const util_opt tail[] = {
        {"seed", 0, UTIL_OPT_INT, &c.synth.seed, 0, INT64_MAX, .arg = "N",
         .help = "generator seed"},
        {"start-ms", 0, UTIL_OPT_INT, &c.start_ms, 0, INT64_MAX, .arg = "MS",
         .help = "event time of the first synthetic event"},
        {"mean-gap-ms", 0, UTIL_OPT_INT, &c.mean_gap_ms, 0, INT64_MAX, .arg = "MS",
         .help = "mean event-time gap between synthetic events"},
        {"output-format", 'o', UTIL_OPT_STRING, &c.output_format, .arg = "FMT",
         .help = "json (default), avro or avro-framed"},
        {"schema-id", 0, UTIL_OPT_INT, &c.schema_id, 0, INT32_MAX, .arg = "ID",
         .help = "schema id for avro-framed without --schema-registry"},
        {"schema-registry", 0, UTIL_OPT_STRING, &c.schema_registry, .arg = "URL",
         .help = "Schema Registry: avro-framed uses the id of the UserEvent schema under "
                 "TOPIC-value (registered if new)"},
        {"rate", 'r', UTIL_OPT_DOUBLE, &c.rate, .dmin = 0, .dmax = 1e9, .arg = "EV/S",
         .help = "events per second (0: as fast as possible)"},
        {"partitions", 0, UTIL_OPT_INT, &c.partitions, 1, 10000, .arg = "N",
         .help = "partitions of the embedded broker's topic (4)"},
        {"progress-interval", 0, UTIL_OPT_DURATION, &c.progress_ms, .arg = "DUR",
         .help = "time between progress lines (5s)"},
        {"flush-timeout", 0, UTIL_OPT_DURATION, &c.flush_ms, .arg = "DUR",
         .help = "wait at the end for deliveries (60s)"},
        {"log-level", 0, UTIL_OPT_STRING, &c.log_level, .arg = "LEVEL",
         .help = "error, warn, info (default) or debug"},
    };
    util_opt opts[sizeof(head) / sizeof(*head) + PRODUCER_FILE_OPTS + PRODUCER_SYNTH_OPTS +
                  sizeof(tail) / sizeof(*tail)];
    size_t n = util_opts_add(opts, 0, head, sizeof(head) / sizeof(*head));
    n += producer_file_opts(&c.file, opts + n);
    n += producer_synth_opts(&c.synth, opts + n);
    n = util_opts_add(opts, n, tail, sizeof(tail) / sizeof(*tail));
    const util_cli cli = {
        "recstream produce", "[OPTIONS] [FILE...]", about, opts, n, producer_kconf_file_key, c.kc};
    int n_pos = 0, rc = util_cli_parse(&cli, argc, argv, &n_pos);
    produce_plan plan;
    if (rc)
        rc = rc > 0 ? 0 : 2;
    else if (producer_kconf_show(c.kc, stdout))
        rc = 0;
    else if (resolve(&cli, &c, n_pos, &plan))
        rc = 2;
    else {
        util_stop_on_signals();
        rc = produce(&c, &plan, argv + 1, n_pos);
    }
    producer_kconf_free(c.kc);
    util_cli_free();
    return rc;
}
