/* `recstream demo`: the README's first command. One process shows the whole
 * system on the embedded broker in about a minute: synthetic history is
 * generated and an ALS model plus offline lists are trained from it, the
 * real processor (run_processor, the loop of `recstream run`) starts on a
 * thread, live events of the same synthetic users flow in at a fixed rate
 * (with one malformed message for the dead-letter topic), and the demo reads
 * the recommendations topic back like any downstream consumer: it prints a
 * few sample users' lists each time they change, then a summary. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_int.h"
#include "commands.h"

#define DEMO_MAX_SAMPLES 10
#define DEMO_RECENT      16   /* live events remembered per sample user */
#define DEMO_SHOW        5    /* items printed per sample list */
#define DEMO_JOIN_WAIT_S 60   /* longest wait for the processor to join its group */
#define DEMO_WARMUP_MS   1000 /* latency counts from the first batch + this */

typedef struct demo_opts {
    int64_t duration_ms, users, items, train_events, rate, samples, partitions, factors, iterations;
    const char *work_dir;
    char suffix[32];
} demo_opts;

typedef struct demo_cli {
    run_cli rc;
    demo_opts o;
} demo_cli;

/* The processor thread and what its batches report. */
typedef struct demo_proc {
    run_config cfg;
    volatile sig_atomic_t stop;
    volatile int done;
    volatile int64_t first_batch_ms; /* wall clock of the first persisted batch */
    volatile uint64_t processed;     /* applied + dead-lettered */
    int rc;
    run_stats st;
    char err[512];
} demo_proc;

typedef struct demo_sample {
    char user[CODEC_ID_MAX + 1];
    int known;                       /* in the training data (has an offline list) */
    codec_event recent[DEMO_RECENT]; /* the user's last live events, a ring */
    unsigned n_recent;
    char shown[512]; /* item ids of the last printed list */
    int updates;
} demo_sample;

/* What the demo's own reader of the recommendations topic saw. */
typedef struct demo_seen {
    demo_sample s[DEMO_MAX_SAMPLES];
    size_t n_samples, max_samples;
    int new_sampled;  /* one sample user is new to the model */
    model_ids *users; /* distinct users with a list (used as a set) */
    uint64_t records, undecodable, by_source[CODEC_SOURCES];
    double *lat; /* arrival - trigger_ts, ms, after the join and warm-up */
    size_t n_lat, cap_lat;
    int64_t t0_mono;
} demo_seen;

/* ==== Model ==== */

static void demo_train_progress(uint32_t it, double loss, double secs, void *opaque) {
    (void)opaque;
    printf("  ALS iteration %u: loss %.4g (%.0f ms)\n", it, loss, secs * 1e3);
    fflush(stdout);
}

/* Trains on ds and writes model.bin and offline.avro into the work dir. */
static int demo_train(const demo_cli *d, const model_dataset *ds, char *model_path,
                      char *offline_path, size_t path_size, char *errstr, size_t errsz) {
    const demo_opts *o = &d->o;
    model_als_params p;
    model_als_params_default(&p);
    p.factors = (uint32_t)o->factors;
    p.iterations = (uint32_t)o->iterations;
    model_als als = {0};
    model *m = NULL;
    char version[64];
    snprintf(model_path, path_size, "%s/model.bin", o->work_dir);
    snprintf(offline_path, path_size, "%s/offline.avro", o->work_dir);
    snprintf(version, sizeof(version), "offline-demo-%s", o->suffix);
    int64_t t0 = util_mono_ns();
    int rc = model_als_train(ds, &p, demo_train_progress, NULL, &als, errstr, errsz);
    if (!rc) rc = model_build(ds, &als, &p, (uint32_t)d->rc.neighbours, 100, 0, &m, errstr, errsz);
    if (!rc) rc = model_save(m, model_path, errstr, errsz);
    if (!rc)
        rc = model_offline_write(offline_path, ds, &als, (uint32_t)d->rc.n, version, 0, errstr,
                                 errsz);
    if (!rc)
        printf("model %s: %u items, %u factors, K = %u; offline lists for %u users (%.1f s)\n",
               m->version, m->n_items, m->factors, m->k, als.n_users,
               (double)(util_mono_ns() - t0) / 1e9);
    model_free(m);
    model_als_free(&als);
    return rc;
}

/* ==== Processor thread ==== */

static void demo_on_batch(const run_stats *st, void *opaque) {
    demo_proc *p = opaque;
    if (!p->first_batch_ms) p->first_batch_ms = util_now_ms();
    p->processed = st->applied + st->invalid;
}

static void *demo_proc_thread(void *arg) {
    demo_proc *p = arg;
    p->rc = run_processor(&p->cfg, &p->stop, &p->st, p->err, sizeof(p->err));
    p->done = 1;
    return NULL;
}

/* ==== Reading the recommendations topic ==== */

static demo_sample *demo_find_sample(demo_seen *seen, const char *user) {
    for (size_t i = 0; i < seen->n_samples; i++)
        if (!strcmp(seen->s[i].user, user)) return &seen->s[i];
    return NULL;
}

/* The event a list answers: the one whose time is the list's trigger_ts. */
static const codec_event *demo_trigger(const demo_sample *s, int64_t trigger_ts) {
    unsigned n = s->n_recent < DEMO_RECENT ? s->n_recent : DEMO_RECENT;
    for (unsigned i = 1; i <= n; i++) {
        const codec_event *ev = &s->recent[(s->n_recent - i) % DEMO_RECENT];
        if (ev->ts_ms == trigger_ts) return ev;
    }
    return NULL;
}

static void demo_print_list(demo_seen *seen, demo_sample *s, const codec_recs *r) {
    char ids[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < r->n_items && i < DEMO_SHOW; i++)
        len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s ", r->items[i].item_id);
    if (!strcmp(ids, s->shown) || len >= sizeof(ids)) return; /* unchanged at the top */
    memcpy(s->shown, ids, sizeof(ids));
    s->updates++;
    const codec_event *ev = demo_trigger(s, r->trigger_ts);
    printf("[%4.1fs] user %s (%s) after %s %s:\n", (double)(util_mono_ns() - seen->t0_mono) / 1e9,
           s->user, s->known ? "known user" : "new user",
           ev ? codec_event_type_name(ev->type) : "event", ev ? ev->item_id : "?");
    for (size_t i = 0; i < r->n_items && i < DEMO_SHOW; i++)
        printf("           %zu. %-10s %9.4f  %s\n", i + 1, r->items[i].item_id,
               (double)r->items[i].score, codec_source_name(r->items[i].source));
    fflush(stdout);
}

static void demo_record(demo_seen *seen, const rd_kafka_message_t *m, int64_t join_ms) {
    codec_recs_owned *owned = NULL;
    char detail[256];
    if (codec_decode_recs(m->payload, m->len, &owned, detail, sizeof(detail)) != CODEC_OK) {
        seen->undecodable++;
        return;
    }
    const codec_recs *r = codec_recs_view(owned);
    int64_t now = util_now_ms();
    seen->records++;
    model_ids_intern(seen->users, r->user_id, strlen(r->user_id));
    for (size_t i = 0; i < r->n_items; i++)
        if ((unsigned)r->items[i].source < CODEC_SOURCES) seen->by_source[r->items[i].source]++;
    /* The backlog of the group join is worked off first; it says nothing
     * of the steady state. */
    if (join_ms && r->trigger_ts >= join_ms + DEMO_WARMUP_MS) {
        if (seen->n_lat == seen->cap_lat) {
            seen->cap_lat = seen->cap_lat ? seen->cap_lat * 2 : 1024;
            seen->lat = util_realloc(seen->lat, seen->cap_lat * sizeof(double));
        }
        seen->lat[seen->n_lat++] = (double)(now - r->trigger_ts);
    }
    demo_sample *s = demo_find_sample(seen, r->user_id);
    if (s) demo_print_list(seen, s, r);
    codec_recs_free(owned);
}

static int demo_poll_output(demo_seen *seen, rd_kafka_t *rk, int timeout_ms, int64_t join_ms) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout_ms);
    if (!m) return 0;
    if (!m->err) demo_record(seen, m, join_ms);
    rd_kafka_message_destroy(m);
    return 1;
}

static rd_kafka_t *demo_reader(const demo_cli *d, char *errstr, size_t errsz) {
    char group[96], why[512];
    snprintf(group, sizeof(group), "demo-reader-%s", d->o.suffix);
    rd_kafka_conf_t *conf = bench_client_conf(d->rc.kconf, d->rc.cfg.brokers, group, errstr, errsz);
    if (!conf) return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errsz, "recommendations reader: %s", why);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, d->rc.cfg.output_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    return rk;
}

/* ==== Live events ==== */

typedef struct demo_live {
    producer_out *out;
    model_synth *synth;
    const model_dataset *train; /* to tell known users from new ones */
    codec_buf buf;
    uint64_t produced, malformed;
} demo_live;

static void demo_track(demo_seen *seen, const demo_live *l, const codec_event *ev) {
    demo_sample *s = demo_find_sample(seen, ev->user_id);
    if (!s && seen->n_samples < seen->max_samples) {
        int known = model_ids_find(l->train->users, ev->user_id, ev->user_len) != MODEL_NONE;
        /* Keep the last place for a user the model has never seen. */
        if (known && seen->max_samples > 1 && seen->n_samples == seen->max_samples - 1 &&
            !seen->new_sampled)
            return;
        s = &seen->s[seen->n_samples++];
        memcpy(s->user, ev->user_id, (size_t)ev->user_len + 1);
        s->known = known;
        seen->new_sampled |= !known;
    }
    if (s) s->recent[s->n_recent++ % DEMO_RECENT] = *ev;
}

static int demo_send_event(const demo_cli *d, demo_live *l, demo_seen *seen, char *errstr,
                           size_t errsz) {
    codec_event ev;
    model_synth_next(l->synth, &ev);
    ev.ts_ms = util_now_ms(); /* live: event time is now, so latency is measurable */
    if (codec_encode_event(&ev, CODEC_FORMAT_JSON, 0, &l->buf, errstr, errsz)) return -1;
    demo_track(seen, l, &ev);
    if (producer_out_send(l->out, d->rc.cfg.events_topic, ev.user_id, ev.user_len, l->buf.data,
                          l->buf.len, NULL, 0, NULL, errstr, errsz))
        return -1;
    l->produced++;
    return 0;
}

/* What an operator's typo looks like: no item_id. */
static int demo_send_malformed(const demo_cli *d, demo_live *l, const demo_seen *seen, char *errstr,
                               size_t errsz) {
    static const char bad[] = "{\"user_id\":\"demo-typo\",\"type\":\"LISTEN\"}";
    printf("[%4.1fs] sent one malformed event (no item_id): it goes to %s\n",
           (double)(util_mono_ns() - seen->t0_mono) / 1e9, d->rc.cfg.dlq_topic);
    fflush(stdout);
    l->malformed++;
    return producer_out_send(l->out, d->rc.cfg.events_topic, "demo-typo", 9, bad, sizeof(bad) - 1,
                             NULL, 0, NULL, errstr, errsz);
}

/* Produces at o->rate until the duration ends (or Ctrl-C), printing the
 * sample users' lists as the processor republishes them. The duration
 * counts from the processor's first batch, so a slow group join (a few
 * seconds on the embedded broker) does not eat the live phase; a join that
 * takes over DEMO_JOIN_WAIT_S ends it anyway. */
static int demo_live_phase(const demo_cli *d, demo_proc *p, demo_live *l, demo_seen *seen,
                           rd_kafka_t *rk, char *err, size_t errsz) {
    const demo_opts *o = &d->o;
    int64_t t0 = util_mono_ns(), gap = 1000000000 / o->rate, next = t0;
    int64_t end = t0 + (o->duration_ms + DEMO_JOIN_WAIT_S * 1000) * 1000000, joined = 0;
    int64_t progress = t0 + 10 * (int64_t)1000000000;
    int malformed_sent = 0;
    while (!util_stop_requested && !p->done) {
        int64_t now = util_mono_ns();
        if (!joined && p->first_batch_ms) joined = now, end = now + o->duration_ms * 1000000;
        if (now >= end) break;
        for (; next <= now; next += gap)
            if (demo_send_event(d, l, seen, err, errsz)) return -1;
        if (!malformed_sent && joined && now >= joined + (end - joined) / 3) {
            if (demo_send_malformed(d, l, seen, err, errsz)) return -1;
            malformed_sent = 1;
        }
        producer_out_poll(l->out, 0);
        for (int i = 0; i < 1000 && demo_poll_output(seen, rk, 0, p->first_batch_ms); i++) {
        }
        demo_poll_output(seen, rk, 5, p->first_batch_ms);
        if (now >= progress) {
            printf("[%4.1fs] %" PRIu64 " events produced, %" PRIu64 " processed, %" PRIu64
                   " lists read back\n",
                   (double)(now - seen->t0_mono) / 1e9, l->produced + l->malformed,
                   (uint64_t)p->processed, seen->records);
            fflush(stdout);
            progress += 10 * (int64_t)1000000000;
        }
    }
    return 0;
}

/* Lets the processor catch up with everything produced, reads the last
 * lists, then stops it (it finishes its batch, flushes and persists). */
static void demo_drain(demo_proc *p, demo_live *l, demo_seen *seen, rd_kafka_t *rk) {
    producer_out_flush(l->out, 10000);
    uint64_t want = l->produced + l->malformed;
    int64_t limit = util_mono_ns() + 20 * (int64_t)1000000000;
    while (!p->done && p->processed < want && util_mono_ns() < limit && !util_stop_requested)
        demo_poll_output(seen, rk, 50, p->first_batch_ms);
    int64_t idle_until = util_mono_ns() + 1500 * (int64_t)1000000;
    limit = util_mono_ns() + 10 * (int64_t)1000000000;
    while (util_mono_ns() < idle_until && util_mono_ns() < limit)
        if (demo_poll_output(seen, rk, 50, p->first_batch_ms))
            idle_until = util_mono_ns() + 1500 * (int64_t)1000000;
    p->stop = 1;
}

/* ==== Summary ==== */

static int demo_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double demo_quantile(const double *v, size_t n, double q) {
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void demo_summary(const demo_proc *p, const demo_live *l, demo_seen *seen,
                         double elapsed_s) {
    const run_stats *st = &p->st;
    uint64_t items = seen->by_source[0] + seen->by_source[1] + seen->by_source[2];
    qsort(seen->lat, seen->n_lat, sizeof(double), demo_cmp_double);
    printf("\nsummary (%.0f s)\n", elapsed_s);
    printf("  events produced       %" PRIu64 " (%" PRIu64 " malformed)\n",
           l->produced + l->malformed, l->malformed);
    printf("  events processed      %" PRIu64 " (LISTEN %" PRIu64 ", VIEW %" PRIu64
           ", LIKE %" PRIu64 ")\n",
           st->applied, st->by_type[CODEC_EVENT_LISTEN], st->by_type[CODEC_EVENT_VIEW],
           st->by_type[CODEC_EVENT_LIKE]);
    printf("  dead-lettered         %" PRIu64 "\n", st->invalid);
    printf("  users                 %u with recommendations\n", model_ids_count(seen->users));
    printf("  recommendations       %" PRIu64 " lists published, %" PRIu64
           " read back by this demo in %" PRIu64 " batches\n",
           st->published, seen->records, st->batches);
    if (items)
        printf("  sources               online %.0f%%, offline %.0f%%, popular %.0f%% of items\n",
               100.0 * (double)seen->by_source[CODEC_SOURCE_ONLINE] / (double)items,
               100.0 * (double)seen->by_source[CODEC_SOURCE_OFFLINE] / (double)items,
               100.0 * (double)seen->by_source[CODEC_SOURCE_POPULAR] / (double)items);
    printf("  latency               event to list read back: p50 %.0f ms, p95 %.0f ms, max %.0f "
           "ms (%zu lists after the group join + 1 s)\n",
           demo_quantile(seen->lat, seen->n_lat, 0.5), demo_quantile(seen->lat, seen->n_lat, 0.95),
           demo_quantile(seen->lat, seen->n_lat, 1.0), seen->n_lat);
    printf("  model version         %s\n", st->model_version[0] ? st->model_version : "-");
    printf("  offline version       %s\n", st->offline_version[0] ? st->offline_version : "-");
}

/* The A/B report of `recstream ab-report`, from the processor's metrics:
 * each list is judged by its user's next event (a hit at k when that item
 * was in the top k). */
static void demo_ab_summary(metrics *m) {
    size_t len;
    char *text = metrics_render(m, &len), err[256];
    ab_report r = {0};
    if (!ab_report_parse(text, len, &r, err, sizeof(err))) {
        printf("\nA/B: each list judged by its user's next event (recstream ab-report)\n");
        ab_report_print(&r, stdout);
    }
    free(text);
}

/* The processor's metrics, owned by the demo so that the summary can read
 * them after the processor has stopped. */
static metrics *demo_metrics(const run_config *cfg) {
    const char *names[AB_MAX_VARIANTS] = {cfg->variant ? cfg->variant : "default"};
    if (!cfg->ab) return metrics_new(names, 1);
    ab_variant_names(cfg->ab, names);
    return metrics_new(names, cfg->ab->n);
}

/* ==== The command ==== */

/* History: the first train_events events of the synthetic stream; the live
 * phase continues the same stream, so users keep their tastes and new users
 * and items arrive as the generator releases them. */
static model_dataset *demo_history(const demo_opts *o, model_synth *synth) {
    model_dataset *ds = model_dataset_new();
    codec_event ev;
    for (int64_t i = 0; i < o->train_events; i++) {
        model_synth_next(synth, &ev);
        model_dataset_add(ds, &ev);
    }
    printf("1/4 history: %" PRId64 " synthetic events of %u users over %u items\n", o->train_events,
           model_ids_count(ds->users), model_ids_count(ds->items));
    return ds;
}

static model_synth *demo_synth(const demo_opts *o) {
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.users = (uint32_t)o->users;
    sp.items = (uint32_t)o->items;
    sp.start_ms = util_now_ms() - o->train_events * sp.mean_gap_ms; /* history ends now */
    sp.seed = 7;
    return model_synth_new(&sp);
}

/* Trains, starts the processor, streams; p->st holds the final counters. */
static int demo_phases(demo_cli *d, demo_proc *p, demo_seen *seen, demo_live *l, char *err,
                       size_t errsz) {
    const demo_opts *o = &d->o;
    char model_path[1100], offline_path[1100], state_dir[1100], group[96];
    l->synth = demo_synth(o);
    model_dataset *ds = demo_history(o, l->synth);
    l->train = ds;
    printf("2/4 training ALS (%" PRId64 " factors, %" PRId64 " iterations)\n", o->factors,
           o->iterations);
    int rc = demo_train(d, ds, model_path, offline_path, sizeof(model_path), err, errsz);
    rd_kafka_t *rk = NULL;
    pthread_t th;
    int started = 0;
    if (!rc) {
        snprintf(state_dir, sizeof(state_dir), "%s/state", o->work_dir);
        snprintf(group, sizeof(group), "recstream-demo-%s", o->suffix);
        p->cfg = d->rc.cfg;
        p->cfg.model_path = model_path, p->cfg.offline_path = offline_path;
        /* Fresh ones unless given: a demo never resumes another run's state. */
        if (!strcmp(p->cfg.state_dir, "recstream-state")) p->cfg.state_dir = state_dir;
        if (!strcmp(p->cfg.group_id, "recstream")) p->cfg.group_id = group;
        p->cfg.offset_reset = "earliest";
        p->cfg.on_batch = demo_on_batch, p->cfg.on_batch_opaque = p;
        printf("3/4 processor started (state in %s, group %s)\n", p->cfg.state_dir,
               p->cfg.group_id);
        started = !pthread_create(&th, NULL, demo_proc_thread, p);
        if (!started) rc = -1, snprintf(err, errsz, "cannot start the processor thread");
    }
    if (!rc) rc = (rk = demo_reader(d, err, errsz)) ? 0 : -1;
    if (!rc) l->out = producer_out_new(d->rc.kconf, d->rc.cfg.brokers, NULL, NULL, err, errsz);
    if (!rc && !l->out) rc = -1;
    if (!rc) {
        printf("4/4 live events at %" PRId64 "/s for %.0f s once the processor has joined; %zu "
               "sample users' top %d as their lists change:\n",
               o->rate, (double)o->duration_ms / 1e3, seen->max_samples, DEMO_SHOW);
        fflush(stdout);
        rc = demo_live_phase(d, p, l, seen, rk, err, errsz);
    }
    if (started) {
        if (!rc && l->out) demo_drain(p, l, seen, rk);
        p->stop = 1;
        pthread_join(th, NULL);
        if (p->rc && !rc) rc = -1, snprintf(err, errsz, "processor: %s", p->err);
    }
    if (rk) rd_kafka_consumer_close(rk), rd_kafka_destroy(rk);
    model_dataset_free(ds);
    l->train = NULL;
    return rc;
}

static int demo_work_dir(demo_opts *o, char *tmp, size_t tmp_size) {
    if (o->work_dir) {
        if (mkdir(o->work_dir, 0777) && errno != EEXIST)
            return log_error("demo: --work-dir %s: %s", o->work_dir, strerror(errno)), -1;
        return 0;
    }
    const char *t = getenv("TMPDIR");
    snprintf(tmp, tmp_size, "%s/recstream-demo-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp)) return log_error("demo: cannot make a directory %s", tmp), -1;
    o->work_dir = tmp;
    return 0;
}

static int demo_main(demo_cli *d) {
    demo_opts *o = &d->o;
    snprintf(o->suffix, sizeof(o->suffix), "%ld-%lld", (long)getpid(), (long long)util_now_ms());
    char tmp[1024] = "", err[1024] = "";
    if (demo_work_dir(o, tmp, sizeof(tmp))) return 1;
    util_stop_on_signals();
    printf("recstream demo: synthetic events -> ALS model -> live processor -> recommendations\n");
    producer_broker *broker = NULL;
    if (!d->rc.cfg.brokers) {
        const char *topics[] = {d->rc.cfg.events_topic, d->rc.cfg.output_topic,
                                d->rc.cfg.dlq_topic};
        broker = producer_broker_start((int)o->partitions, topics, 3, err, sizeof(err));
        if (!broker) return log_error("demo: embedded broker: %s", err), 1;
        d->rc.cfg.brokers = producer_broker_bootstraps(broker);
        printf("embedded Kafka broker at %s (watch it: kcat -b %s -t %s -C)\n", d->rc.cfg.brokers,
               d->rc.cfg.brokers, d->rc.cfg.output_topic);
    }
    demo_proc *p = util_calloc(1, sizeof(*p));
    demo_seen *seen = util_calloc(1, sizeof(*seen));
    demo_live l = {0};
    seen->users = model_ids_new();
    seen->max_samples = (size_t)o->samples;
    seen->t0_mono = util_mono_ns();
    metrics *m = d->rc.cfg.metrics = demo_metrics(&d->rc.cfg);
    int rc = demo_phases(d, p, seen, &l, err, sizeof(err));
    if (rc) {
        log_error("demo: %s", err);
    } else {
        demo_summary(p, &l, seen, (double)(util_mono_ns() - seen->t0_mono) / 1e9);
        demo_ab_summary(m);
    }
    metrics_free(m);
    if (l.out) producer_out_flush(l.out, 5000), producer_out_destroy(l.out);
    codec_buf_free(&l.buf);
    model_synth_free(l.synth);
    model_ids_free(seen->users);
    free(seen->lat);
    free(seen);
    free(p);
    producer_broker_stop(broker);
    if (tmp[0]) {
        char cmd[1100];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (system(cmd)) log_warn("demo: could not remove %s", tmp);
    }
    return rc ? 1 : 0;
}

static const char about[] =
    "Shows the whole system in about a minute, on the embedded broker (or --brokers, where\n"
    "the events, recommendations and dead-letter topics must exist). It generates a synthetic\n"
    "history (users in taste clusters, a Zipf-popular catalogue), trains an ALS model and\n"
    "offline lists from it, starts the processor of `recstream run` in process, streams live\n"
    "events of the same users at --rate (and one malformed message, which goes to the\n"
    "dead-letter topic), reads the recommendations topic back and prints a few users' lists\n"
    "(item, score, source) each time they change, then a summary: events processed, users,\n"
    "lists published, dead letters, latency, model version. The flags of `recstream run`\n"
    "apply (--blend, --half-life, --neighbours, ...). Ctrl-C ends the live phase early.\n"
    "Example: recstream demo --duration 20s --blend weighted";

static size_t demo_opts_table(demo_cli *d, util_opt *opts, size_t cap) {
    size_t n = run_cli_opts(&d->rc, opts, cap);
    demo_opts *o = &d->o;
    const char *own = "not for the demo, which trains its own (see `recstream run`)";
    run_cli_reword(opts, n, "model", own); /* shared with run, but refused below */
    run_cli_reword(opts, n, "offline", own);
    const util_opt mine[] = {
        {"duration", 0, UTIL_OPT_DURATION, &o->duration_ms, 0, 0, 0, 0, NULL, "TIME",
         "length of the live phase (default 30s)"},
        {"rate", 0, UTIL_OPT_INT, &o->rate, 1, 100000, 0, 0, NULL, "N",
         "live events per second (default 200)"},
        {"users", 0, UTIL_OPT_INT, &o->users, 1, 10000000, 0, 0, NULL, "N",
         "synthetic users (default 2000)"},
        {"items", 0, UTIL_OPT_INT, &o->items, 2, 1000000, 0, 0, NULL, "N",
         "synthetic items (default 500)"},
        {"train-events", 0, UTIL_OPT_INT, &o->train_events, 100, 100000000, 0, 0, NULL, "N",
         "events of synthetic history the model is trained on (default 50000)"},
        {"samples", 0, UTIL_OPT_INT, &o->samples, 0, DEMO_MAX_SAMPLES, 0, 0, NULL, "N",
         "sample users whose lists are printed (default 3)"},
        {"partitions", 0, UTIL_OPT_INT, &o->partitions, 1, 256, 0, 0, NULL, "N",
         "partitions of the embedded broker's topics (default 4)"},
        {"factors", 0, UTIL_OPT_INT, &o->factors, 1, 1024, 0, 0, NULL, "N",
         "ALS factors (default 32)"},
        {"iterations", 0, UTIL_OPT_INT, &o->iterations, 1, 100, 0, 0, NULL, "N",
         "ALS iterations (default 8)"},
        {"work-dir", 0, UTIL_OPT_STRING, &o->work_dir, 0, 0, 0, 0, NULL, "DIR",
         "where the model, offline lists and state go (default: a temporary directory, removed "
         "after)"},
    };
    for (size_t i = 0; i < sizeof(mine) / sizeof(*mine) && n < cap; i++) opts[n++] = mine[i];
    return n;
}

int cmd_demo(int argc, char **argv) {
    static demo_cli d; /* the config points into it */
    run_cli_init(&d.rc);
    d.o = (demo_opts){.duration_ms = 30000,
                      .users = 2000,
                      .items = 500,
                      .train_events = 50000,
                      .rate = 200,
                      .samples = 3,
                      .partitions = 4,
                      .factors = 32,
                      .iterations = 8};
    util_opt opts[RUN_CLI_MAX_OPTS + 16];
    size_t n = demo_opts_table(&d, opts, sizeof(opts) / sizeof(*opts));
    const util_cli cli = {"recstream demo",        "[OPTIONS]", about, opts, n,
                          producer_kconf_file_key, d.rc.kconf};
    int n_pos = 0, code = util_cli_parse(&cli, argc, argv, &n_pos);
    if (code == 0 && n_pos) code = (util_cli_error(&cli, "unexpected argument '%s'", argv[1]), -1);
    if (code == 0 && d.o.duration_ms <= 0)
        code = (util_cli_error(&cli, "--duration: must be positive"), -1);
    if (code == 0 && producer_kconf_show(d.rc.kconf, stdout)) code = 1;
    /* The processor's per-batch log lines would drown the demo's own output. */
    if (code == 0 && !d.rc.log_level) util_log_set_level(UTIL_LOG_WARN);
    if (code == 0 && run_cli_finish(&d.rc, &cli)) code = -1;
    if (code == 0 && (d.rc.cfg.model_path || d.rc.cfg.offline_path))
        code = (util_cli_error(&cli, "--%s: the demo trains its own (use `recstream run`)",
                               d.rc.cfg.model_path ? "model" : "offline"),
                -1);
    int exit_code = code > 0 ? 0 : code < 0 ? 2 : demo_main(&d);
    run_cli_free(&d.rc);
    util_cli_free();
    return exit_code;
}
