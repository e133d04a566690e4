/* bench_stream: the input side of `recstream bench`: topics, the
 * pre-produced synthetic stream, and the transport bound (a bare
 * consume-one-produce-one loop over the same broker, the ceiling any
 * processor on it can reach, measured in the same run so that the ratio
 * means something on a noisy machine; or that loop publishing records
 * shaped as the processor's lists). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_int.h"

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr, size_t errsz) {
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) == RD_KAFKA_CONF_OK) return 0;
    snprintf(errstr, errsz, "%s=%s: %s", k, v, why);
    return -1;
}

rd_kafka_conf_t *bench_client_conf(const producer_kconf *kc, const char *brokers, const char *group,
                                   char *errstr, size_t errsz) {
    rd_kafka_conf_t *conf = producer_kconf_build(kc, brokers, errstr, errsz);
    if (!conf || !group) return conf;
    /* The processor's own fetch settings, so that the bound is comparable. */
    if (set(conf, "group.id", group, errstr, errsz) ||
        set(conf, "auto.offset.reset", "earliest", errstr, errsz) ||
        set(conf, "enable.partition.eof", "false", errstr, errsz) ||
        run_consumer_defaults(conf, kc, errstr, errsz)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* Asks the broker for each topic's metadata until every one has partitions;
 * a broker with auto-creation on creates them on that request, with its own
 * default partition count, which lands in *partitions. */
static int auto_create(rd_kafka_t *rk, const char *const *topics, size_t n, int *partitions,
                       char *errstr, size_t errsz) {
    for (size_t i = 0; i < n; i++) {
        int cnt = 0;
        char why[256];
        for (int tries = 1; producer_topic_partitions(rk, topics[i], 5000, &cnt, why, sizeof(why));
             tries++) {
            if (tries == 20)
                return snprintf(errstr, errsz, "topic %s was not auto-created (%s)", topics[i],
                                why),
                       -1;
            usleep(500000); /* a new topic's leaders take a moment */
        }
        if (i > 0 && cnt != *partitions)
            return snprintf(errstr, errsz, "auto-created topic %s has %d partitions, %s %d",
                            topics[i], cnt, topics[0], *partitions),
                   -1;
        *partitions = cnt;
    }
    return 0;
}

/* CreateTopics; NULL on success, else why not (in why). */
static const char *admin_create_topics(rd_kafka_t *rk, const char *const *topics, size_t n,
                                       int partitions, char *why, size_t whysz) {
    rd_kafka_NewTopic_t *nt[8];
    for (size_t i = 0; i < n; i++)
        nt[i] = rd_kafka_NewTopic_new(topics[i], partitions, -1, why, whysz);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(ao, 10000, why, whysz);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, n, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const char *fail = NULL;
    if (!ev) {
        fail = "no answer in 30 s";
    } else if (rd_kafka_event_error(ev)) {
        snprintf(why, whysz, "%s", rd_kafka_event_error_string(ev));
        fail = why;
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt && !fail; i++) {
            if (!rd_kafka_topic_result_error(res[i])) continue;
            snprintf(why, whysz, "%s: %s", rd_kafka_topic_result_name(res[i]),
                     rd_kafka_topic_result_error_string(res[i]));
            fail = why;
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy_array(nt, n);
    return fail;
}

/* Through the admin API; when the broker cannot create topics that way (the
 * embedded broker run as `recstream broker` never finds a controller for
 * admin requests), through auto-creation. */
static int admin_create(const char *brokers, const producer_kconf *kc, const char *const *topics,
                        size_t n, int *partitions, char *errstr, size_t errsz) {
    rd_kafka_conf_t *conf = bench_client_conf(kc, brokers, NULL, errstr, errsz);
    if (!conf) return -1;
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return snprintf(errstr, errsz, "admin client: %s", why), -1;
    }
    int rc = 0;
    const char *fail = admin_create_topics(rk, topics, n, *partitions, why, sizeof(why));
    if (fail) {
        log_warn("bench: creating topics: %s; relying on the broker's auto-creation", fail);
        char aerr[512];
        rc = auto_create(rk, topics, n, partitions, aerr, sizeof(aerr));
        if (rc)
            snprintf(errstr, errsz, "creating topics: %s; %s", fail, aerr);
        else
            log_warn("bench: topics auto-created with %d partitions each", *partitions);
    }
    rd_kafka_destroy(rk);
    return rc;
}

int bench_create_topics(producer_broker *b, const char *brokers, const producer_kconf *kc,
                        const char *const *topics, size_t n, int *partitions, char *errstr,
                        size_t errsz) {
    if (!b) return admin_create(brokers, kc, topics, n, partitions, errstr, errsz);
    for (size_t i = 0; i < n; i++)
        if (producer_broker_create_topic(b, topics[i], *partitions, errstr, errsz)) return -1;
    return 0;
}

/* Whether the broker still holds every event produced to topic: one that
 * keeps only so much per partition (the embedded broker, ~5 MiB) drops the
 * oldest, and the runs would then wait for events that never come. */
static int check_kept(rd_kafka_t *rk, const char *topic, int partitions, int64_t events,
                      char *errstr, size_t errsz) {
    int64_t kept = 0, dropped = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e)
            return snprintf(errstr, errsz, "offsets of %s [%d]: %s", topic, p, rd_kafka_err2str(e)),
                   -1;
        kept += hi - lo, dropped += lo;
    }
    if (dropped || kept != events)
        return snprintf(errstr, errsz,
                        "the broker holds %lld of the %lld events produced to %s (it dropped the "
                        "oldest %lld): more partitions (--partitions; an auto-created topic "
                        "takes the broker's count) or fewer --events",
                        (long long)kept, (long long)events, topic, (long long)dropped),
               -1;
    return 0;
}

int bench_produce_stream(const bench_opts *o, const char *brokers, const producer_kconf *kc,
                         const char *topic, model_dataset *ds, double *seconds, char *errstr,
                         size_t errsz) {
    producer_out *out = producer_out_new(kc, brokers, NULL, NULL, errstr, errsz);
    if (!out) return -1;
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.users = (uint32_t)o->users;
    sp.items = (uint32_t)o->items;
    sp.expected_events = (uint64_t)o->events;
    model_synth *s = model_synth_new(&sp);
    codec_buf buf = {0};
    codec_event ev;
    int rc = 0;
    int64_t t0 = util_mono_ns();
    for (int64_t i = 0; i < o->events && rc == 0; i++) {
        model_synth_next(s, &ev);
        if (ds) model_dataset_add(ds, &ev);
        rc = codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &buf, errstr, errsz);
        if (!rc)
            rc = producer_out_send(out, topic, ev.user_id, ev.user_len, buf.data, buf.len, NULL, 0,
                                   NULL, errstr, errsz);
        if ((i & 1023) == 0) producer_out_poll(out, 0);
    }
    int left = producer_out_flush(out, 120000);
    producer_out_stats st = producer_out_get_stats(out);
    if (!rc && (left || st.failed))
        rc = -1, snprintf(errstr, errsz, "pre-producing: %d unacknowledged, %llu failed (%s)", left,
                          (unsigned long long)st.failed, rd_kafka_err2str(st.last_err));
    *seconds = (double)(util_mono_ns() - t0) / 1e9;
    if (!rc)
        rc = check_kept(producer_out_rk(out), topic, (int)o->partitions, o->events, errstr, errsz);
    codec_buf_free(&buf);
    model_synth_free(s);
    producer_out_destroy(out);
    return rc;
}

rd_kafka_t *bench_group_consumer(const producer_kconf *kc, const char *brokers, const char *group,
                                 const char *topic, char *errstr, size_t errsz) {
    rd_kafka_conf_t *conf = bench_client_conf(kc, brokers, group, errstr, errsz);
    if (!conf) return NULL;
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errsz, "consumer %s: %s", group, why);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    return rk;
}

double bench_rate(uint64_t n, uint64_t n_start, int64_t t_start, int64_t t_first, int64_t t_end) {
    if (t_start && n > n_start && t_end > t_start)
        return (double)(n - n_start) / ((double)(t_end - t_start) / 1e9);
    if (t_first && n > 1 && t_end > t_first) /* all taken before the start */
        return (double)(n - 1) / ((double)(t_end - t_first) / 1e9);
    return 0;
}

/* The first acknowledgement's time: the bound is timed as the processor is
 * (cmd_bench.c), from its first output acknowledged, over the events taken
 * after it, so that neither counts its producer's start-up. */
static void bound_dr(void *msg_opaque, rd_kafka_resp_err_t err, void *opaque) {
    int64_t *t_ack = opaque;
    (void)msg_opaque;
    if (!err && !*t_ack) *t_ack = util_mono_ns();
}

int bench_transport_bound(const bench_opts *o, const char *brokers, const producer_kconf *kc,
                          const char *topic, const char *out_topic, int run,
                          const bench_shape *shape, double *events_per_s, char *errstr,
                          size_t errsz) {
    int64_t t_ack = 0, n_ack = 0; /* events taken by the first acknowledgement */
    producer_out *out = producer_out_new(kc, brokers, bound_dr, &t_ack, errstr, errsz);
    if (!out) return -1;
    char why[512];
    if (producer_out_prepare(out, out_topic, 2000, why, sizeof(why)))
        log_warn("bench: transport bound's output %s", why);
    char group[96];
    snprintf(group, sizeof(group), "bench-bound-%s-%d", o->suffix, run);
    rd_kafka_t *rk = bench_group_consumer(kc, brokers, group, topic, errstr, errsz);
    if (!rk) return producer_out_destroy(out), -1;
    size_t bytes = shape ? shape->bytes : 1;
    double per_event = shape ? shape->records_per_event : 1;
    double due = 1 - per_event; /* the first event publishes: it starts the clock */
    char *value = util_malloc(bytes ? bytes : 1);
    memset(value, 'x', bytes);
    int64_t n = 0, t_first = 0, deadline = util_mono_ns() + (int64_t)600 * 1000000000;
    int rc = 0;
    while (n < o->events && rc == 0) {
        if (util_mono_ns() > deadline) {
            rc = -1,
            snprintf(errstr, errsz, "transport bound: only %lld events in 600 s", (long long)n);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            if (!n++) t_first = util_mono_ns();
            if ((due += per_event) >= 1) {
                due -= 1;
                rc = producer_out_send(out, out_topic, m->key, m->key_len, value, bytes, NULL, 0,
                                       NULL, errstr, errsz);
            }
            if ((n & 255) == 0) producer_out_poll(out, 0);
            if (t_ack && !n_ack) n_ack = n;
        }
        rd_kafka_message_destroy(m);
    }
    if (producer_out_flush(out, 60000) && !rc)
        rc = -1, snprintf(errstr, errsz, "transport bound: records unacknowledged");
    int64_t t_end = util_mono_ns();
    *events_per_s = bench_rate((uint64_t)n, (uint64_t)n_ack, t_ack, t_first, t_end);
    free(value);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    producer_out_destroy(out);
    return rc;
}
