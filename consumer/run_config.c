/* The processor's settings: defaults, and the one option table that `run`,
 * `demo` and `bench` share, so the three commands accept the same flags with
 * the same bounds and the same meaning. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "run.h"

void run_config_default(run_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->group_id = "recstream";
    cfg->events_topic = "events";
    cfg->output_topic = "recommendations";
    cfg->dlq_topic = "events.dlq";
    cfg->state_dir = "recstream-state";
    cfg->reload_interval_ms = 5000;
    cfg->batch_size = 2000;
    cfg->max_inflight_batches = RUN_MAX_INFLIGHT_DEFAULT;
    cfg->batch_timeout_ms = 100;
    cfg->offset_reset = "earliest";
    cfg->output_format = CODEC_FORMAT_JSON;
    cfg->history = 50;
    model_online_params_default(&cfg->online);
    cfg->blend.strategy = MODEL_BLEND_INTERLEAVE;
    for (int s = 0; s < CODEC_SOURCES; s++) cfg->blend.weight[s] = 1.0f;
    cfg->blend.n = 20;
    cfg->variant = "default";
    cfg->retry_backoff_ms = 1000;
}

void run_cli_init(run_cli *rc) {
    memset(rc, 0, sizeof(*rc));
    run_config_default(&rc->cfg);
    rc->batch_size = rc->cfg.batch_size;
    rc->max_inflight = rc->cfg.max_inflight_batches;
    rc->history = rc->cfg.history;
    rc->neighbours = rc->cfg.online.k;
    rc->n = rc->cfg.blend.n;
    rc->half_life_ms = rc->cfg.online.half_life_ms;
    for (int t = 0; t < CODEC_EVENT_TYPES; t++) rc->weight[t] = rc->cfg.online.type_weight[t];
    for (int s = 0; s < CODEC_SOURCES; s++) rc->blend_weight[s] = rc->cfg.blend.weight[s];
    rc->format = "json";
    rc->blend = "interleave";
    rc->kconf = producer_kconf_new();
    ab_init(&rc->ab);
}

void run_cli_free(run_cli *rc) {
    producer_kconf_free(rc->kconf);
    rc->kconf = NULL;
    rc->cfg.kconf = NULL;
}

#define S(name, target, arg, help)                                                                 \
    { name, 0, UTIL_OPT_STRING, target, 0, 0, 0, 0, NULL, arg, help }
#define I(name, target, lo, hi, help)                                                              \
    { name, 0, UTIL_OPT_INT, target, lo, hi, 0, 0, NULL, "N", help }
#define D(name, target, help)                                                                      \
    { name, 0, UTIL_OPT_DURATION, target, 0, 0, 0, 0, NULL, "TIME", help }
#define W(name, target, help)                                                                      \
    { name, 0, UTIL_OPT_DOUBLE, target, 0, 0, 0, 1e6, NULL, "W", help }

void run_cli_reword(util_opt *opts, size_t n, const char *name, const char *help) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) opts[i].help = help;
}

size_t run_cli_opts(run_cli *rc, util_opt *out, size_t cap) {
    run_config *c = &rc->cfg;
    const util_opt opts[] = {
        S("brokers", &c->brokers, "HOST:PORT",
          "Kafka bootstrap servers (default: start an embedded broker)"),
        S("group", &c->group_id, "ID", "consumer group id (default recstream)"),
        S("events-topic", &c->events_topic, "TOPIC", "input topic (default events)"),
        S("output-topic", &c->output_topic, "TOPIC", "output topic (default recommendations)"),
        S("dlq-topic", &c->dlq_topic, "TOPIC", "dead-letter topic (default events.dlq)"),
        S("state-dir", &c->state_dir, "DIR", "RocksDB state directory (default recstream-state)"),
        S("model", &c->model_path, "FILE", "model file from `recstream train` (required)"),
        S("offline", &c->offline_path, "FILE", "offline lists file (optional)"),
        D("reload-interval", &c->reload_interval_ms,
          "how often to check model/offline files for changes (default 5s; 0 = never)"),
        S("output-format", &rc->format, "FMT", "json | avro | avro-framed (default json)"),
        I("schema-id", &rc->schema_id, 0, INT32_MAX,
          "schema id for avro-framed output without --schema-registry"),
        S("schema-registry", &c->schema_registry, "URL",
          "Schema Registry (http[s]://host:8081): registers the output schema, fetches writer "
          "schemas of framed inputs"),
        I("history", &rc->history, 1, 10000, "events kept per user (default 50)"),
        I("neighbours", &rc->neighbours, 1, 10000, "neighbours per event item (default 50)"),
        D("half-life", &rc->half_life_ms, "decay half-life of an event's weight (default 1d)"),
        W("weight-listen", &rc->weight[CODEC_EVENT_LISTEN], "weight of a LISTEN event"),
        W("weight-view", &rc->weight[CODEC_EVENT_VIEW], "weight of a VIEW event"),
        W("weight-like", &rc->weight[CODEC_EVENT_LIKE], "weight of a LIKE event"),
        {"include-seen", 0, UTIL_OPT_FLAG, &rc->include_seen, 0, 0, 0, 0, NULL, NULL,
         "keep items already in the history among online candidates"},
        S("blend", &rc->blend, "HOW",
          "interleave | weighted | online | offline | popular | rerank (default interleave)"),
        W("blend-weight-online", &rc->blend_weight[CODEC_SOURCE_ONLINE],
          "weight of online (weighted)"),
        W("blend-weight-offline", &rc->blend_weight[CODEC_SOURCE_OFFLINE],
          "weight of offline (weighted)"),
        W("blend-weight-popular", &rc->blend_weight[CODEC_SOURCE_POPULAR],
          "weight of popular (weighted)"),
        W("rerank-mix", &rc->rerank_mix,
          "rerank: weight of the sources' rank merge beside the user vector (default 0)"),
        {"rerank-foldin", 0, UTIL_OPT_FLAG, &rc->rerank_foldin, 0, 0, 0, 0, NULL, NULL,
         "rerank: also consider the user vector's best items of the whole catalogue"},
        I("n", &rc->n, 1, 1000, "items per published list (default 20)"),
        I("batch-size", &rc->batch_size, 1, 100000, "max events per batch (default 2000)"),
        I("max-inflight-batches", &rc->max_inflight, 1, RUN_MAX_INFLIGHT_MAX,
          "batches processed ahead of their acknowledgements (default 64)"),
        D("batch-timeout", &c->batch_timeout_ms, "max wait to fill a batch (default 100ms)"),
        S("offset-reset", &c->offset_reset, "WHERE",
          "start of partitions the state store never saw: earliest | latest (default earliest)"),
        {"variant", 0, UTIL_OPT_FUNC, &rc->ab, 0, 0, 0, 0, ab_opt_variant, "SPEC",
         "A/B arm name=A,share=0.5,blend=weighted,w.online=2,n=20 (repeatable; default: one arm "
         "'default' with --blend)"},
        {"experiment-salt", 0, UTIL_OPT_FUNC, &rc->ab, 0, 0, 0, 0, ab_opt_salt, "SALT",
         "salt of the stable user-to-variant assignment"},
        I("metrics-port", &rc->metrics_port, 0, 65535,
          "HTTP /metrics, /healthz, /readyz (0 = off, the default)"),
        S("metrics-bind", &c->metrics_bind, "ADDR",
          "address of the metrics endpoint (default 127.0.0.1; 0.0.0.0 in a container)"),
        {"X", 'X', UTIL_OPT_FUNC, rc->kconf, 0, 0, 0, 0, producer_kconf_opt, "KEY=VALUE",
         "librdkafka property (repeatable); -X list, -X dump"},
        S("log-level", &rc->log_level, "LEVEL", "error | warn | info | debug (default info)"),
    };
    size_t n = sizeof(opts) / sizeof(*opts);
    if (n > cap) n = cap;
    memcpy(out, opts, n * sizeof(*opts));
    return n;
}

/* 1 when s is an IPv4 or IPv6 address (what the metrics server can bind). */
static int is_ip(const char *s) {
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Without --variant, the one arm "default" blends as --blend says. */
static int finish_ab(run_cli *rc, const util_cli *cli) {
    char err[256];
    if (rc->ab.n == 0) {
        ab_variant *v = &rc->ab.variants[rc->ab.n++];
        memset(v, 0, sizeof(*v));
        snprintf(v->name, sizeof(v->name), "%s", rc->cfg.variant);
        v->share = 1.0;
        v->blend = rc->cfg.blend;
    }
    if (ab_finish(&rc->ab, rc->cfg.blend.n, err, sizeof(err)))
        return util_cli_error(cli, "--variant: %s", err);
    rc->cfg.ab = &rc->ab;
    return 0;
}

int run_cli_finish(run_cli *rc, const util_cli *cli) {
    run_config *c = &rc->cfg;
    int fmt = codec_format_parse(rc->format), blend = model_blend_strategy_parse(rc->blend);
    if (fmt < 0) return util_cli_error(cli, "--output-format: expected json, avro or avro-framed");
    if (blend < 0) return util_cli_error(cli, "--blend: unknown strategy '%s'", rc->blend);
    if (strcmp(c->offset_reset, "earliest") && strcmp(c->offset_reset, "latest"))
        return util_cli_error(cli, "--offset-reset: expected earliest or latest");
    if (rc->log_level) {
        int lv = util_log_level_parse(rc->log_level);
        if (lv < 0) return util_cli_error(cli, "--log-level: expected error, warn, info or debug");
        util_log_set_level((util_log_level)lv);
    }
    if (rc->half_life_ms <= 0) return util_cli_error(cli, "--half-life: must be positive");
    if (c->batch_timeout_ms <= 0) return util_cli_error(cli, "--batch-timeout: must be positive");
    if (c->metrics_bind && !is_ip(c->metrics_bind))
        return util_cli_error(cli,
                              "--metrics-bind: expected an IP address such as 127.0.0.1 or ::");
    if (!c->schema_registry)
        c->schema_registry = producer_kconf_get(rc->kconf, "schema.registry.url");
    if (fmt == CODEC_FORMAT_AVRO_FRAMED && !rc->schema_id && !c->schema_registry)
        return util_cli_error(cli,
                              "--output-format avro-framed needs --schema-registry or --schema-id");
    c->output_format = (codec_format)fmt;
    c->schema_id = (int32_t)rc->schema_id;
    c->blend.strategy = (model_blend_strategy)blend;
    c->blend.n = (uint32_t)rc->n;
    for (int s = 0; s < CODEC_SOURCES; s++) c->blend.weight[s] = (float)rc->blend_weight[s];
    c->blend.rerank_mix = (float)rc->rerank_mix;
    c->blend.rerank_foldin = rc->rerank_foldin;
    c->online.k = (uint32_t)rc->neighbours;
    c->online.half_life_ms = rc->half_life_ms;
    c->online.include_seen = rc->include_seen;
    for (int t = 0; t < CODEC_EVENT_TYPES; t++) c->online.type_weight[t] = (float)rc->weight[t];
    c->history = (uint32_t)rc->history;
    c->batch_size = (int)rc->batch_size;
    c->max_inflight_batches = (int)rc->max_inflight;
    c->metrics_port = (int)rc->metrics_port;
    c->kconf = rc->kconf;
    return finish_ab(rc, cli);
}
