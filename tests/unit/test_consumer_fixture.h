/* Shared helpers of the processor's tests (tests/unit/test_consumer_*.c):
 * scratch directories, small real model files, producing to and reading
 * from the embedded broker, and running run_processor on a thread.
 * Header-only (static functions) because each test is one executable. */
#ifndef TEST_CONSUMER_FIXTURE_H
#define TEST_CONSUMER_FIXTURE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "model.h"
#include "producer.h"
#include "run.h"
#include "state.h"

/* Each test uses some of these. */
#define FX_FN static __attribute__((unused))

FX_FN void fx_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A fresh directory TEST_TMPDIR/<name>-<pid>; the path is static storage
 * of the caller (buf). */
FX_FN const char *fx_dir(char *buf, size_t size, const char *name) {
    const char *base = getenv("TEST_TMPDIR");
    if (!base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(buf, size, "%s/%s-%d", base, name, (int)getpid());
    char cmd[1200];
    if (snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", buf, buf) >= (int)sizeof(cmd) ||
        system(cmd))
        abort();
    return buf;
}

/* The processor's store in dir, opened read-only to check what it holds
 * (while nothing writes it); NULL, with the reason printed, if it cannot. */
FX_FN state_store *fx_store_read(const char *dir) {
    state_options o;
    state_options_default(&o);
    o.read_only = 1;
    state_store *s = NULL;
    char err[512];
    if (state_open(dir, &o, &s, err, sizeof(err))) fprintf(stderr, "fx_store_read: %s\n", err);
    return s;
}

/* A real model file of n_items items "i0".."i<n-1>", from random factors
 * (seeded) and a dataset in which users "u0".."u19" touched items. Returns
 * its version in version[64]. */
FX_FN void fx_model(const char *path, uint32_t n_items, uint64_t seed, char *version) {
    model_dataset *ds = model_dataset_new();
    srand((unsigned)seed);
    for (uint32_t u = 0; u < 20; u++)
        for (uint32_t j = 0; j < 10; j++) {
            codec_event e = {0};
            e.user_len = (uint16_t)snprintf(e.user_id, sizeof(e.user_id), "u%u", u);
            e.item_len = (uint16_t)snprintf(e.item_id, sizeof(e.item_id), "i%u",
                                            (unsigned)(rand() % (int)n_items));
            e.type = CODEC_EVENT_LISTEN;
            e.ts_ms = 1700000000000LL + u * 100 + j;
            model_dataset_add(ds, &e);
        }
    /* every item must be in the id table, in index order i0, i1, ... */
    for (uint32_t i = 0; i < n_items; i++) {
        char id[16];
        model_ids_intern(ds->items, id, (size_t)snprintf(id, sizeof(id), "i%u", i));
    }
    model_als als = {0};
    model_als_params p;
    model_als_params_default(&p);
    p.factors = 8;
    als.factors = 8;
    als.n_users = model_ids_count(ds->users);
    als.n_items = model_ids_count(ds->items);
    als.user_factors = calloc((size_t)als.n_users * 8, sizeof(float));
    als.item_factors = calloc((size_t)als.n_items * 8, sizeof(float));
    for (size_t i = 0; i < (size_t)als.n_items * 8; i++)
        als.item_factors[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)als.n_users * 8; i++)
        als.user_factors[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    model *m = NULL;
    char err[512];
    if (model_build(ds, &als, &p, 10, 50, 0, &m, err, sizeof(err)) ||
        model_save(m, path, err, sizeof(err))) {
        fprintf(stderr, "fx_model: %s\n", err);
        abort();
    }
    if (version) snprintf(version, 64, "%s", m->version);
    model_free(m);
    free(als.user_factors);
    free(als.item_factors);
    model_dataset_free(ds);
}

/* ---- Producing. */
FX_FN producer_out *fx_producer(const char *brokers) {
    char err[512];
    producer_kconf *kc = producer_kconf_new(); /* not kept by the producer */
    producer_out *o = producer_out_new(kc, brokers, NULL, NULL, err, sizeof(err));
    producer_kconf_free(kc);
    if (!o) fprintf(stderr, "fx_producer: %s\n", err), abort();
    return o;
}

FX_FN void fx_send(producer_out *o, const char *topic, const char *key, const void *val,
                   size_t len) {
    char err[512];
    if (producer_out_send(o, topic, key, key ? strlen(key) : 0, val, len, NULL, 0, NULL, err,
                          sizeof(err)))
        fprintf(stderr, "fx_send: %s\n", err), abort();
}

/* One JSON event, as a person types it into kcat. */
FX_FN void fx_event(producer_out *o, const char *topic, const char *user, const char *item,
                    const char *type, int64_t ts) {
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\"user_id\":\"%s\",\"item_id\":\"%s\",\"type\":\"%s\",\"ts\":%lld}", user,
                     item, type, (long long)ts);
    fx_send(o, topic, user, buf, (size_t)n);
}

/* ---- Reading a whole topic from the beginning. Messages are copied:
 * librdkafka's own must be destroyed before the reader is. */
typedef struct fx_msg {
    char *key, *payload;
    size_t key_len, len;
    int32_t partition;
    rd_kafka_headers_t *headers; /* NULL when none */
} fx_msg;

typedef struct fx_msgs {
    fx_msg **m;
    size_t n;
} fx_msgs;

FX_FN fx_msg *fx_copy(rd_kafka_message_t *m) {
    fx_msg *c = calloc(1, sizeof(*c));
    c->key = malloc(m->key_len + 1);
    if (m->key_len) memcpy(c->key, m->key, m->key_len);
    c->key[m->key_len] = 0;
    c->key_len = m->key_len;
    c->payload = malloc(m->len + 1);
    if (m->len) memcpy(c->payload, m->payload, m->len);
    c->payload[m->len] = 0;
    c->len = m->len;
    c->partition = m->partition;
    rd_kafka_message_detach_headers(m, &c->headers);
    rd_kafka_message_destroy(m);
    return c;
}

/* Reads topic's partitions [0, parts) from the beginning until `want`
 * messages arrived or timeout_ms passed, then up to one more (to see
 * duplicates) within 300 ms. */
FX_FN fx_msgs fx_read(const char *brokers, const char *topic, int parts, size_t want,
                      int timeout_ms) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "fx-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    fx_msgs r = {calloc(want + 2, sizeof(fx_msg *)), 0};
    int64_t end = util_now_ms() + timeout_ms, grace = 0;
    while (r.n < want + 1) {
        int64_t now = util_now_ms();
        if (now > end || (grace && now > grace)) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        r.m[r.n++] = fx_copy(m);
        if (r.n == want) grace = util_now_ms() + 300;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return r;
}

FX_FN void fx_msgs_free(fx_msgs *r) {
    for (size_t i = 0; i < r->n; i++) {
        if (r->m[i]->headers) rd_kafka_headers_destroy(r->m[i]->headers);
        free(r->m[i]->key);
        free(r->m[i]->payload);
        free(r->m[i]);
    }
    free(r->m);
    r->m = NULL;
    r->n = 0;
}

/* ---- The processor on a thread. */
typedef struct fx_proc {
    run_config cfg;
    volatile sig_atomic_t stop;
    pthread_t thread;
    int rc;
    run_stats stats;
    char err[512];
    pthread_mutex_t mu;
    run_stats live; /* copied by on_batch */
    producer_kconf *kc;
} fx_proc;

FX_FN void fx_on_batch(const run_stats *s, void *opaque) {
    fx_proc *p = opaque;
    pthread_mutex_lock(&p->mu);
    p->live = *s;
    pthread_mutex_unlock(&p->mu);
}

FX_FN void *fx_proc_main(void *arg) {
    fx_proc *p = arg;
    p->rc = run_processor(&p->cfg, &p->stop, &p->stats, p->err, sizeof(p->err));
    return NULL;
}

/* Starts p (p->cfg must be filled). */
FX_FN void fx_proc_start(fx_proc *p) {
    p->stop = 0;
    memset(&p->live, 0, sizeof(p->live));
    pthread_mutex_init(&p->mu, NULL);
    p->cfg.on_batch = fx_on_batch;
    p->cfg.on_batch_opaque = p;
    if (!p->cfg.kconf) {
        char err[256];
        p->kc = producer_kconf_new();
        const char *dbg = getenv("FX_KAFKA_DEBUG");
        if (dbg) producer_kconf_set(p->kc, "debug", dbg, err, sizeof(err));
        if (dbg) util_log_set_level(UTIL_LOG_DEBUG);
        if (dbg) producer_kconf_set(p->kc, "log_level", "7", err, sizeof(err));
        producer_kconf_set(p->kc, "session.timeout.ms", "6000", err, sizeof(err));
        producer_kconf_set(p->kc, "max.poll.interval.ms", "7000", err, sizeof(err));
        p->cfg.kconf = p->kc;
    }
    pthread_create(&p->thread, NULL, fx_proc_main, p);
}

FX_FN run_stats fx_proc_live(fx_proc *p) {
    pthread_mutex_lock(&p->mu);
    run_stats s = p->live;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Waits until `applied` events (valid + invalid) were persisted, or timeout. */
FX_FN int fx_proc_wait(fx_proc *p, uint64_t applied, uint64_t invalid, int timeout_ms) {
    int64_t end = util_now_ms() + timeout_ms;
    while (util_now_ms() < end) {
        run_stats s = fx_proc_live(p);
        if (s.applied >= applied && s.invalid >= invalid) return 0;
        fx_sleep_ms(50);
    }
    return -1;
}

FX_FN int fx_proc_stop(fx_proc *p) {
    p->stop = 1;
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    producer_kconf_free(p->kc);
    p->kc = NULL;
    p->cfg.kconf = NULL;
    if (p->rc) fprintf(stderr, "run_processor: %s\n", p->err);
    return p->rc;
}

#endif
