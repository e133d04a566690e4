/* `recstream train`: ALS training from an event file or a whole Kafka topic.
 * Reads the interactions (bad lines or messages skipped and counted, or
 * fatal under --strict), trains implicit ALS with progress and loss per
 * iteration on stderr, builds the item neighbour index and the popularity
 * list, and writes the model file and the offline lists file atomically.
 * The summary goes to stdout. Exit 1 on a run-time failure, 2 on a bad
 * flag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model.h"
#include "producer.h"
#include "topic_read.h"
#include "util.h"

/* ==== Settings ==== */

typedef struct train_cfg {
    const char *input, *topic, *brokers, *model_out, *offline_out, *log_level;
    producer_file_flags file;
    cmd_als_flags als;
    int64_t seed, threads, neighbours, popular, offline_n, half_life_ms, idle_timeout_ms;
    double w_listen, w_view, w_like;
    producer_kconf *kc;
} train_cfg;

typedef struct train_plan {
    codec_file_opts file;
    model_als_params als;
} train_plan;

static const char about[] =
    "Trains implicit-feedback ALS (Hu, Koren, Volinsky 2008) on OpenBLAS from an event file\n"
    "(--input; TSV, CSV or JSON lines) or from a whole Kafka topic (--topic, read from the\n"
    "beginning to its current end). Writes the model file (item factors, top-K neighbours,\n"
    "popular items, Gram matrix for fold-in) and the offline lists (per-user top-N, an Avro\n"
    "container file), each atomically, for `recstream run` to hot-reload. Progress and the\n"
    "training loss per iteration go to stderr, a summary to stdout. Bad input lines are\n"
    "skipped and counted (the first few are shown), or stop the run under --strict.\n"
    "Examples:\n"
    "  recstream train --input events.tsv\n"
    "  recstream train --input u.data --columns user,item,weight,ts --ts-unit s\n"
    "  recstream train --topic events --brokers localhost:9092 --model-out m.bin";

static int resolve(const util_cli *cli, const train_cfg *c, int n_pos, train_plan *p) {
    if (n_pos) return util_cli_error(cli, "unexpected argument; the input goes in --input"), -1;
    if (!c->input == !c->topic)
        return util_cli_error(cli, "give either --input FILE or --topic TOPIC"), -1;
    if (c->log_level) {
        int lvl = util_log_level_parse(c->log_level);
        if (lvl < 0)
            return util_cli_error(cli, "--log-level: expected error, warn, info or debug"), -1;
        util_log_set_level((util_log_level)lvl);
    }
    if (producer_file_resolve(cli, &c->file, c->input, &p->file)) return -1;
    model_als_params *a = &p->als;
    if (cmd_als_params(cli, &c->als, a)) return -1;
    a->seed = (uint64_t)c->seed;
    a->threads = (int)c->threads;
    a->type_weight[CODEC_EVENT_LISTEN] = (float)c->w_listen;
    a->type_weight[CODEC_EVENT_VIEW] = (float)c->w_view;
    a->type_weight[CODEC_EVENT_LIKE] = (float)c->w_like;
    return 0;
}

/* ==== Reading ==== */

static void warn_line(const char *msg, void *opaque) {
    (void)opaque;
    log_warn("skipping bad input line: %s", msg);
}

typedef struct topic_sink {
    model_dataset *ds;
    codec_decoder *dec;
    int strict;
    size_t bad;
    char first_error[512];
} topic_sink;

static int on_message(const rd_kafka_message_t *m, void *opaque) {
    topic_sink *s = opaque;
    codec_event ev;
    char detail[256];
    codec_err e = codec_decode_event(s->dec, m->payload, m->len, &ev, detail, sizeof(detail));
    if (e == CODEC_OK) {
        model_dataset_add(s->ds, &ev);
        return 0;
    }
    s->bad++;
    if (s->bad == 1)
        snprintf(s->first_error, sizeof(s->first_error), "%s [%d] offset %lld: %s: %s",
                 rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                 codec_err_reason(e), detail);
    if (s->bad <= 5 && !s->strict) log_warn("skipping bad message: %s", s->first_error);
    return s->strict; /* stop at the first bad message under --strict */
}

static int read_input(const train_cfg *c, const train_plan *p, model_dataset *ds, size_t *bad) {
    char err[512];
    if (c->input) {
        if (model_dataset_read_file(ds, c->input, &p->file, c->file.strict, bad, warn_line, NULL,
                                    err, sizeof(err)) != 0) {
            log_error("%s", err);
            return -1;
        }
        return 0;
    }
    topic_sink s = {.ds = ds, .dec = codec_decoder_new(), .strict = c->file.strict};
    int64_t n = topic_read_all(c->kc, c->brokers, c->topic, (int)c->idle_timeout_ms, on_message, &s,
                               err, sizeof(err));
    codec_decoder_free(s.dec);
    *bad = s.bad;
    if (n < 0) {
        log_error("reading topic %s: %s", c->topic, err);
        return -1;
    }
    if (c->file.strict && s.bad) {
        log_error("bad message (--strict): %s", s.first_error);
        return -1;
    }
    return 0;
}

/* ==== Training and writing ==== */

static void on_iteration(uint32_t it, double loss, double secs, void *opaque) {
    const model_als_params *p = opaque;
    fprintf(stderr, "iteration %3u/%u  loss %.6f  %.2f s\n", it, p->iterations, loss, secs);
}

static int train(const train_cfg *c, const train_plan *p) {
    model_dataset *ds = model_dataset_new();
    size_t bad = 0;
    model_als als = {0};
    model *m = NULL;
    char err[512];
    int rc = 1;
    int64_t t0 = util_mono_ns();
    if (read_input(c, p, ds, &bad) != 0) goto out;
    log_info("read %zu interactions (%u users, %u items, %zu bad skipped) in %.1f s", ds->n,
             model_ids_count(ds->users), model_ids_count(ds->items), bad,
             (double)(util_mono_ns() - t0) / 1e9);
    int64_t t1 = util_mono_ns();
    if (model_als_train(ds, &p->als, on_iteration, (void *)&p->als, &als, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    int64_t t2 = util_mono_ns();
    if (model_build(ds, &als, &p->als, (uint32_t)c->neighbours, (uint32_t)c->popular,
                    c->half_life_ms, &m, err, sizeof(err)) != 0 ||
        model_save(m, c->model_out, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    int64_t t3 = util_mono_ns();
    if (model_offline_write(c->offline_out, ds, &als, (uint32_t)c->offline_n, m->version,
                            p->als.threads, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    int64_t t4 = util_mono_ns();
    printf("users           %u\n", als.n_users);
    printf("items           %u\n", als.n_items);
    printf("interactions    %zu\n", ds->n);
    printf("bad input       %zu skipped\n", bad);
    printf("training        %u iterations, %u factors, %s solver, %.2f s\n", p->als.iterations,
           p->als.factors, p->als.solver == MODEL_SOLVER_CG ? "cg" : "cholesky",
           (double)(t2 - t1) / 1e9);
    printf("model           %s (version %s, k=%u, %u popular; %.2f s)\n", c->model_out, m->version,
           m->k, m->n_popular, (double)(t3 - t2) / 1e9);
    printf("offline lists   %s (top %lld per user, version %s; %.2f s)\n", c->offline_out,
           (long long)c->offline_n, m->version, (double)(t4 - t3) / 1e9);
    rc = 0;
out:
    model_free(m);
    model_als_free(&als);
    model_dataset_free(ds);
    return rc;
}

int cmd_train(int argc, char **argv) {
    train_cfg c = {.file = PRODUCER_FILE_FLAGS_INIT,
                   .als = CMD_ALS_FLAGS_INIT,
                   .model_out = "model.bin",
                   .offline_out = "offline.avro",
                   .seed = 42,
                   .neighbours = 50,
                   .popular = 100,
                   .offline_n = 50,
                   .idle_timeout_ms = 10000,
                   .w_listen = 1,
                   .w_view = 0.5,
                   .w_like = 3};
    c.kc = producer_kconf_new();
    const util_opt head[] = {
        {"input", 'i', UTIL_OPT_STRING, &c.input, .arg = "FILE", .help = "event file ('-': stdin)"},
        {"topic", 't', UTIL_OPT_STRING, &c.topic, .arg = "TOPIC",
         .help = "read events from this topic, beginning to end, instead of a file"},
        {"brokers", 'b', UTIL_OPT_STRING, &c.brokers, .arg = "ADDR",
         .help = "bootstrap servers for --topic"},
        {"idle-timeout", 0, UTIL_OPT_DURATION, &c.idle_timeout_ms, .arg = "DUR",
         .help = "--topic: give up when no message comes for this long (10s)"},
        {"X", 'X', UTIL_OPT_FUNC, c.kc, .fn = producer_kconf_opt, .arg = "KEY=VALUE",
         .help = "librdkafka property for --topic (repeatable); -X list, -X dump"},
    };
    const util_opt tail[] = {
        {"seed", 0, UTIL_OPT_INT, &c.seed, 0, INT64_MAX, .arg = "N",
         .help = "seed of the factor initialisation (42)"},
        {"threads", 0, UTIL_OPT_INT, &c.threads, 0, 64, .arg = "N",
         .help = "worker threads (0: all cores)"},
        {"weight-listen", 0, UTIL_OPT_DOUBLE, &c.w_listen, .dmin = 0, .dmax = 1e6, .arg = "W",
         .help = "weight of a LISTEN event (1)"},
        {"weight-view", 0, UTIL_OPT_DOUBLE, &c.w_view, .dmin = 0, .dmax = 1e6, .arg = "W",
         .help = "weight of a VIEW event (0.5)"},
        {"weight-like", 0, UTIL_OPT_DOUBLE, &c.w_like, .dmin = 0, .dmax = 1e6, .arg = "W",
         .help = "weight of a LIKE event (3)"},
        {"neighbours", 'k', UTIL_OPT_INT, &c.neighbours, 1, 1000, .arg = "K",
         .help = "neighbours kept per item (50)"},
        {"popular", 0, UTIL_OPT_INT, &c.popular, 1, 100000, .arg = "N",
         .help = "popular items kept (100)"},
        {"popularity-half-life", 0, UTIL_OPT_DURATION, &c.half_life_ms, .arg = "DUR",
         .help = "decay popularity with this half-life, from the newest event (off)"},
        {"offline-n", 0, UTIL_OPT_INT, &c.offline_n, 1, 10000, .arg = "N",
         .help = "items per user in the offline lists (50)"},
        {"model-out", 'o', UTIL_OPT_STRING, &c.model_out, .arg = "FILE",
         .help = "model file to write (model.bin)"},
        {"offline-out", 0, UTIL_OPT_STRING, &c.offline_out, .arg = "FILE",
         .help = "offline lists file to write (offline.avro)"},
        /* The names `run` reads the same files by. */
        {"model", 0, UTIL_OPT_STRING, &c.model_out, .arg = "FILE", .help = "same as --model-out"},
        {"offline", 0, UTIL_OPT_STRING, &c.offline_out, .arg = "FILE",
         .help = "same as --offline-out"},
        {"log-level", 0, UTIL_OPT_STRING, &c.log_level, .arg = "LEVEL",
         .help = "error, warn, info (default) or debug"},
    };
    util_opt opts[sizeof(head) / sizeof(*head) + PRODUCER_FILE_OPTS + CMD_ALS_OPTS +
                  sizeof(tail) / sizeof(*tail)];
    size_t n = util_opts_add(opts, 0, head, sizeof(head) / sizeof(*head));
    n += producer_file_opts(&c.file, opts + n);
    n += cmd_als_opts(&c.als, opts + n);
    n = util_opts_add(opts, n, tail, sizeof(tail) / sizeof(*tail));
    const util_cli cli = {"recstream train",       "[OPTIONS]", about, opts, n,
                          producer_kconf_file_key, c.kc};
    int n_pos = 0, rc = util_cli_parse(&cli, argc, argv, &n_pos);
    train_plan plan;
    if (rc)
        rc = rc > 0 ? 0 : 2;
    else if (producer_kconf_show(c.kc, stdout))
        rc = 0;
    else if (resolve(&cli, &c, n_pos, &plan))
        rc = 2;
    else
        rc = train(&c, &plan);
    producer_kconf_free(c.kc);
    util_cli_free();
    return rc;
}
