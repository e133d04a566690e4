/* bench_latency: event-to-publish latency of the real processor under a
 * fixed offered rate. A thread offers events at --rate, each stamped with
 * its produce time as event time; the processor publishes each touched
 * user's list with trigger_ts = that user's last event time; this file
 * consumes the output topic and takes arrival minus trigger_ts. Event times
 * are whole milliseconds, so a figure may be up to 1 ms high. Records
 * triggered before the processor's first batch plus BENCH_WARMUP_MS (group
 * join backlog) are left out. The output record's CreateTime (stamped when
 * the processor hands it to librdkafka) gives a second measure, event to
 * produced, which leaves out the output's linger, broker and reader.
 *
 * The floor run puts a bare loop in the processor's place (floor_thread):
 * one empty list published per event, same topics, same clients, same
 * collector, so that the processor's figures can be read against what this
 * broker and these clients cost by themselves. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "bench_int.h"

/* After the processor's first batch: the backlog of the group join is
 * worked off before latencies count. */
#define BENCH_WARMUP_MS 3000

typedef struct lat_run {
    const bench_opts *o;
    run_config cfg;
    volatile sig_atomic_t stop_proc;
    volatile int offer_done, proc_done;
    volatile int64_t first_batch_ms; /* wall clock of the processor's first batch */
    volatile uint64_t applied;
    uint64_t offered;
    double offer_secs;
    int proc_rc, offer_rc;
    char proc_err[512], offer_err[512];
} lat_run;

static double now_ms_frac(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

static void on_batch(const run_stats *st, void *opaque) {
    lat_run *l = opaque;
    if (!l->first_batch_ms) l->first_batch_ms = util_now_ms();
    l->applied = st->applied + st->invalid;
}

static void *proc_thread(void *arg) {
    lat_run *l = arg;
    l->proc_rc = run_processor(&l->cfg, &l->stop_proc, NULL, l->proc_err, sizeof(l->proc_err));
    l->proc_done = 1;
    return NULL;
}

/* One event: its user's empty list, trigger_ts = the event's time. */
static int floor_publish(lat_run *l, producer_out *out, codec_decoder *dec, codec_buf *buf,
                         const rd_kafka_message_t *m) {
    codec_event ev;
    char detail[128];
    if (m->err || codec_decode_event(dec, m->payload, m->len, &ev, detail, sizeof(detail)))
        return 0;
    codec_recs r = {ev.user_id, NULL, 0, "", "", "floor", ev.ts_ms, util_now_ms()};
    if (codec_encode_recs(&r, CODEC_FORMAT_JSON, 0, buf, l->proc_err, sizeof(l->proc_err)) ||
        producer_out_send(out, l->cfg.output_topic, ev.user_id, ev.user_len, buf->data, buf->len,
                          NULL, 0, NULL, l->proc_err, sizeof(l->proc_err)))
        return -1;
    if (!l->first_batch_ms) l->first_batch_ms = util_now_ms();
    l->applied++;
    return 0;
}

static void *floor_thread(void *arg) {
    lat_run *l = arg;
    char group[96];
    snprintf(group, sizeof(group), "bench-floor-%s", l->o->suffix);
    producer_out *out = producer_out_new(l->cfg.kconf, l->cfg.brokers, NULL, NULL, l->proc_err,
                                         sizeof(l->proc_err));
    rd_kafka_t *rk =
        out ? bench_group_consumer(l->cfg.kconf, l->cfg.brokers, group, l->cfg.events_topic,
                                   l->proc_err, sizeof(l->proc_err))
            : NULL;
    codec_decoder *dec = codec_decoder_new();
    codec_buf buf = {0};
    int rc = rk ? 0 : -1;
    while (!rc && !l->stop_proc) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) rc = floor_publish(l, out, dec, &buf, m), rd_kafka_message_destroy(m);
        producer_out_poll(out, 0);
    }
    if (out) producer_out_flush(out, 10000);
    if (rk) rd_kafka_consumer_close(rk), rd_kafka_destroy(rk);
    producer_out_destroy(out);
    codec_decoder_free(dec);
    codec_buf_free(&buf);
    l->proc_rc = rc;
    l->proc_done = 1;
    return NULL;
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    nanosleep(&ts, NULL);
}

/* Offers events at o->rate for o->latency_s seconds (paced per event
 * against the schedule, so a late moment is caught up, not dropped). */
static void *offer_thread(void *arg) {
    lat_run *l = arg;
    const bench_opts *o = l->o;
    producer_out *out = producer_out_new(l->cfg.kconf, l->cfg.brokers, NULL, NULL, l->offer_err,
                                         sizeof(l->offer_err));
    if (!out) return l->offer_rc = -1, l->offer_done = 1, NULL;
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.users = (uint32_t)o->users;
    sp.items = (uint32_t)o->items;
    sp.seed = 4242;
    model_synth *s = model_synth_new(&sp);
    codec_buf buf = {0};
    codec_event ev;
    int64_t t0 = util_mono_ns(), t_measure = 0;
    double gap_ns = 1e9 / (double)o->rate;
    for (uint64_t i = 0; l->offer_rc == 0 && !l->proc_done; i++) {
        /* Offer through the group join and warm-up, then latency_s more. */
        if (!t_measure && l->first_batch_ms) t_measure = l->first_batch_ms + BENCH_WARMUP_MS;
        if (t_measure && util_now_ms() >= t_measure + o->latency_s * 1000) break;
        int64_t due = t0 + (int64_t)((double)i * gap_ns), ahead = due - util_mono_ns();
        if (ahead > 200000) sleep_ns(ahead);
        model_synth_next(s, &ev);
        ev.ts_ms = util_now_ms();
        l->offer_rc =
            codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &buf, l->offer_err, sizeof(l->offer_err));
        if (!l->offer_rc)
            l->offer_rc =
                producer_out_send(out, l->cfg.events_topic, ev.user_id, ev.user_len, buf.data,
                                  buf.len, NULL, 0, NULL, l->offer_err, sizeof(l->offer_err));
        producer_out_poll(out, 0);
        l->offered = i + 1;
    }
    l->offer_secs = (double)(util_mono_ns() - t0) / 1e9;
    producer_out_flush(out, 30000);
    codec_buf_free(&buf);
    model_synth_free(s);
    producer_out_destroy(out);
    l->offer_done = 1;
    return NULL;
}

/* The output topic's partitions, assigned directly (no group to join). */
static rd_kafka_t *out_consumer(const lat_run *l, char *errstr, size_t errsz) {
    rd_kafka_conf_t *conf =
        bench_client_conf(l->cfg.kconf, l->cfg.brokers, "bench-lat-out", errstr, errsz);
    if (!conf) return NULL;
    /* The embedded broker holds an empty fetch for the whole wait. */
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", NULL, 0);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errsz, "output consumer: %s", why);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new((int)l->o->partitions);
    for (int32_t p = 0; p < (int32_t)l->o->partitions; p++)
        rd_kafka_topic_partition_list_add(t, l->cfg.output_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    return rk;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(const double *v, size_t n, double q) {
    size_t i = (size_t)ceil(q * (double)n);
    return v[i ? i - 1 : 0];
}

/* Collects latencies until the offered events are all applied and one more
 * second has passed (or a time limit). */
static size_t collect(lat_run *l, rd_kafka_t *rk, double **lat_out, double **prod_out) {
    size_t n = 0, cap = 4096;
    double *lat = util_malloc(cap * sizeof(*lat)), *prod = util_malloc(cap * sizeof(*prod));
    int64_t end = 0, limit = util_mono_ns() + (int64_t)(l->o->latency_s + 180) * 1000000000;
    while (util_mono_ns() < limit && !l->proc_done && (!end || util_mono_ns() < end)) {
        if (!end && l->offer_done && l->applied >= l->offered) end = util_mono_ns() + 1000000000;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) continue;
        codec_recs_owned *r = NULL;
        char detail[128];
        double arrival = now_ms_frac();
        if (!m->err && codec_decode_recs(m->payload, m->len, &r, detail, sizeof(detail)) == 0) {
            int64_t trig = codec_recs_view(r)->trigger_ts;
            if (l->first_batch_ms && trig >= l->first_batch_ms + BENCH_WARMUP_MS) {
                if (n == cap) {
                    cap *= 2;
                    lat = util_realloc(lat, cap * sizeof(*lat));
                    prod = util_realloc(prod, cap * sizeof(*prod));
                }
                prod[n] = (double)(rd_kafka_message_timestamp(m, NULL) - trig);
                lat[n++] = arrival - (double)trig;
            }
        }
        codec_recs_free(r);
        rd_kafka_message_destroy(m);
    }
    *lat_out = lat;
    *prod_out = prod;
    return n;
}

int bench_run_latency(const bench_opts *o, const run_config *cfg, int bare_loop, bench_latency *out,
                      char *errstr, size_t errsz) {
    lat_run *l = util_calloc(1, sizeof(*l));
    l->o = o;
    l->cfg = *cfg;
    l->cfg.on_batch = on_batch;
    l->cfg.on_batch_opaque = l;
    rd_kafka_t *rk = out_consumer(l, errstr, errsz);
    if (!rk) return free(l), -1;
    pthread_t tp, to;
    pthread_create(&tp, NULL, bare_loop ? floor_thread : proc_thread, l);
    pthread_create(&to, NULL, offer_thread, l);
    double *lat, *prod;
    size_t n = collect(l, rk, &lat, &prod);
    pthread_join(to, NULL);
    l->stop_proc = 1;
    pthread_join(tp, NULL);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    int rc = 0;
    if (l->offer_rc)
        rc = -1, snprintf(errstr, errsz, "offering events: %s", l->offer_err);
    else if (l->proc_rc)
        rc = -1,
        snprintf(errstr, errsz, "%s: %s", bare_loop ? "floor loop" : "processor", l->proc_err);
    else if (!n)
        rc = -1, snprintf(errstr, errsz, "no output record arrived after warm-up");
    if (n) {
        qsort(lat, n, sizeof(*lat), cmp_double);
        qsort(prod, n, sizeof(*prod), cmp_double);
        *out = (bench_latency){l->offered,
                               n,
                               quantile(lat, n, 0.50),
                               quantile(lat, n, 0.95),
                               quantile(lat, n, 0.99),
                               lat[n - 1],
                               l->offer_secs > 0 ? (double)l->offered / l->offer_secs : 0,
                               quantile(prod, n, 0.50),
                               quantile(prod, n, 0.99)};
    }
    free(lat);
    free(prod);
    free(l);
    return rc;
}
