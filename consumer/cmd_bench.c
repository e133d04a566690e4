/* `recstream bench`: the end-to-end benchmark of issue 9. On the embedded
 * broker (or --brokers) it pre-produces a synthetic stream, trains a model on
 * it (or takes --model), runs the real processor (run_processor, state on
 * disk) over the stream, and in the same run measures the transport bound
 * (consume one, produce one, nothing else) before and after it, so the
 * ratio is meaningful on a noisy machine; --runs N repeats the processor
 * and the bound after it, and reports medians. One more bound publishes
 * the processor's output instead (the ceiling its lists leave). Then
 * fixed-rate runs give event-to-publish latency and its floor (a bare loop).
 * Reports throughput, ratio, latency quantiles, peak RSS, RocksDB bytes
 * written per event (the process's block-layer writes during the run, which
 * only RocksDB makes then), the CPU each loop took and the embedded broker's
 * share of it, and the loop's time split, as text or --json. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_int.h"
#include "commands.h"

/* A phase's CPU seconds: the whole process's and the embedded broker's
 * thread's (0 with --brokers). */
typedef struct cpu_mark {
    double process, broker;
} cpu_mark;

typedef struct tput_result {
    double events_per_s, wall_s, join_s;
    cpu_mark cpu;
    uint64_t applied, write_bytes, state_dir_bytes;
    run_stats st;
} tput_result;

#define BENCH_RUNS_MAX 9

typedef struct bench_report {
    double produce_s, train_s;
    int runs;                                    /* processor runs, each between two bounds */
    double bound_runs[BENCH_RUNS_MAX + 1];       /* before, between and after them */
    cpu_mark bound_cpu_runs[BENCH_RUNS_MAX + 1]; /* the CPU of each bound */
    tput_result tp_runs[BENCH_RUNS_MAX];         /* in order */
    double ratio_runs[BENCH_RUNS_MAX];           /* each over the mean of its two bounds */
    double bound_eps, events_per_s, ratio;       /* medians of the runs */
    cpu_mark bound_cpu;                          /* the medians of bound_cpu_runs */
    const tput_result *tp; /* the run of median throughput (the lower one of an even count) */
    bench_shape out_shape; /* the median run's output, for the output-matched bound */
    double out_bound_eps;
    cpu_mark out_bound_cpu;
    int embedded;                 /* the broker is ours: its thread's CPU is measured */
    bench_latency lat, floor_lat; /* the processor's; the bare loop's */
    int lat_done;
    long max_rss_kb;
    char model[512];
} bench_report;

/* ==== Throughput phase ==== */

typedef struct tput_run {
    run_config cfg;
    uint64_t target;
    volatile sig_atomic_t stop;
    volatile int done;                  /* run_processor returned */
    int64_t t_first, t_last;            /* first and last batch persisted */
    uint64_t taken_first, applied_last; /* events taken by t_first, persisted by t_last */
    int rc;
    run_stats st;
    char err[512];
} tput_run;

/* Every persisted batch. The clock starts at the first batch persisted,
 * past the start-up (the group join, the output producer's first
 * connection), and counts only the events taken after it: those taken
 * before were processed while the first batch awaited its
 * acknowledgements, outside the clock (counting them overstated the rate
 * by up to the pipeline's 64 batches, and a stream shorter than that gave
 * millions of events a second). */
static void tput_batch(const run_stats *st, void *opaque) {
    tput_run *t = opaque;
    uint64_t done = st->applied + st->invalid;
    t->t_last = util_mono_ns(), t->applied_last = done;
    if (!t->t_first) t->t_first = t->t_last, t->taken_first = st->consumed;
    if (done >= t->target) t->stop = 1;
}

/* Events per second after the start-up (bench_rate), from the first batch
 * persisted; t->st holds the first event's time once run_processor returned. */
static double tput_rate(const tput_run *t) {
    return bench_rate(t->applied_last, t->taken_first, t->t_first, t->st.first_event_ns, t->t_last);
}

static void *tput_thread(void *arg) {
    tput_run *t = arg;
    t->rc = run_processor(&t->cfg, &t->stop, &t->st, t->err, sizeof(t->err));
    t->done = 1;
    return NULL;
}

/* Bytes this process has caused to be written to storage so far. */
static uint64_t proc_write_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "write_bytes: %llu", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* One line of a file of this process's /proc, "" if it cannot be read. */
static void proc_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)size, f)) buf[0] = 0;
    if (f) fclose(f);
}

/* CPU seconds of the embedded broker's thread (librdkafka names it
 * rdk:mock): its schedstat's time on a CPU, in nanoseconds. The thread
 * lives as long as the broker, so a difference of two readings is the
 * broker's share of a phase, which tells its cost from the clients' and
 * ours. 0 when there is no such thread (--brokers). */
static double broker_cpu_seconds(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    double sum = 0;
    while (d && (e = readdir(d))) {
        char path[300], line[128];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        proc_line(path, line, sizeof(line));
        if (strcmp(line, "rdk:mock\n")) continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
        proc_line(path, line, sizeof(line));
        sum += strtod(line, NULL) / 1e9;
    }
    if (d) closedir(d);
    return sum;
}

static cpu_mark cpu_now(void) {
    return (cpu_mark){cpu_seconds(), broker_cpu_seconds()};
}

static cpu_mark cpu_since(cpu_mark a) {
    cpu_mark b = cpu_now();
    return (cpu_mark){b.process - a.process, b.broker - a.broker};
}

static uint64_t dir_bytes(const char *dir) {
    char cmd[1200], out[64] = "";
    snprintf(cmd, sizeof(cmd), "du -sb '%s' 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (p && !fgets(out, sizeof(out), p)) out[0] = 0;
    if (p) pclose(p);
    return strtoull(out, NULL, 10);
}

/* One processor run over the whole topic; run (1, 2, ...) makes its group
 * and state directory its own. */
static int run_throughput(const bench_opts *o, const run_config *base, int run, tput_result *r,
                          char *errstr, size_t errsz) {
    tput_run *t = util_calloc(1, sizeof(*t));
    char group[96], dir[1100];
    snprintf(group, sizeof(group), "bench-tput-%s-%d", o->suffix, run);
    snprintf(dir, sizeof(dir), "%s/state-throughput-%d", o->work_dir, run);
    t->cfg = *base;
    t->cfg.group_id = group;
    t->cfg.state_dir = dir;
    t->cfg.on_batch = tput_batch;
    t->cfg.on_batch_opaque = t;
    t->target = (uint64_t)o->events;
    uint64_t wb0 = proc_write_bytes();
    cpu_mark cpu0 = cpu_now();
    int64_t t0 = util_mono_ns(), limit = t0 + (int64_t)900 * 1000000000;
    pthread_t th;
    pthread_create(&th, NULL, tput_thread, t);
    while (!t->stop && !t->done && util_mono_ns() < limit) usleep(20000);
    t->stop = 1;
    pthread_join(th, NULL);
    r->wall_s = (double)(util_mono_ns() - t0) / 1e9;
    r->cpu = cpu_since(cpu0);
    r->write_bytes = proc_write_bytes() - wb0;
    r->state_dir_bytes = dir_bytes(dir);
    r->st = t->st;
    r->applied = t->st.applied + t->st.invalid;
    int64_t t_event = t->st.first_event_ns;
    r->join_s = t_event ? (double)(t_event - t0) / 1e9 : 0;
    r->events_per_s = tput_rate(t);
    if (t_event && t->t_first)
        log_info("bench: run %d: first event %.2f s after the start, first batch persisted %.3f s "
                 "later with %" PRIu64 " events taken",
                 run, r->join_s, (double)(t->t_first - t_event) / 1e9, t->taken_first);
    int rc = 0;
    if (t->rc)
        rc = -1, snprintf(errstr, errsz, "processor: %s", t->err);
    else if (r->applied < t->target)
        rc = -1, snprintf(errstr, errsz, "processor applied %" PRIu64 " of %" PRIu64 " events",
                          r->applied, t->target);
    free(t);
    return rc;
}

/* ==== Model ==== */

static void train_progress(uint32_t it, double loss, double secs, void *opaque) {
    (void)opaque;
    log_info("bench: ALS iteration %u: loss %.4g, %.2f s", it, loss, secs);
}

static int train_model(const bench_opts *o, const model_dataset *ds, uint32_t k, char *path,
                       size_t path_size, double *secs, char *errstr, size_t errsz) {
    model_als_params p;
    model_als_params_default(&p);
    p.factors = (uint32_t)o->factors;
    p.iterations = (uint32_t)o->iterations;
    model_als als = {0};
    model *m = NULL;
    int64_t t0 = util_mono_ns();
    snprintf(path, path_size, "%s/model.bin", o->work_dir);
    int rc = model_als_train(ds, &p, train_progress, NULL, &als, errstr, errsz);
    if (!rc) rc = model_build(ds, &als, &p, k, 100, 0, &m, errstr, errsz);
    if (!rc) rc = model_save(m, path, errstr, errsz);
    *secs = (double)(util_mono_ns() - t0) / 1e9;
    model_free(m);
    model_als_free(&als);
    return rc;
}

/* ==== Report ==== */

/* The loop's stages as the split reports them: JSON key, text label. */
#define SPLIT_STAGES 6
static const char *const split_key[SPLIT_STAGES] = {"gather",  "decode",  "state",
                                                    "scoring", "produce", "wait_acks"};
static const char *const split_label[SPLIT_STAGES] = {
    "gather", "decode", "state", "scoring", "produce", "waiting for acks and commits"};

/* Each stage's time per event (us) and share of the loop's time. */
static void split(const run_stats *s, uint64_t n, double us[SPLIT_STAGES],
                  double share[SPLIT_STAGES]) {
    const uint64_t ns[SPLIT_STAGES] = {s->ns_gather,  s->ns_decode,  s->ns_state,
                                       s->ns_scoring, s->ns_produce, s->ns_wait};
    double all = 0;
    for (int i = 0; i < SPLIT_STAGES; i++) all += (double)ns[i];
    for (int i = 0; i < SPLIT_STAGES; i++) {
        us[i] = n ? (double)ns[i] / 1e3 / (double)n : 0;
        share[i] = all > 0 ? (double)ns[i] / all : 0;
    }
}

static json_t *latency_json(const bench_opts *o, const bench_latency *l) {
    return json_pack("{s:I,s:f,s:I,s:f,s:f,s:f,s:f,s:f,s:f}", "offered_rate", (json_int_t)o->rate,
                     "achieved_rate", l->achieved_rate, "samples", (json_int_t)l->samples, "p50_ms",
                     l->p50_ms, "p95_ms", l->p95_ms, "p99_ms", l->p99_ms, "max_ms", l->max_ms,
                     "produced_p50_ms", l->produced_p50_ms, "produced_p99_ms", l->produced_p99_ms);
}

/* x over y, 0 when y is not positive. */
static double over(double x, double y) {
    return y > 0 ? x / y : 0;
}

/* The bound's CPU over the median processor run's: the throughput ratio
 * both would reach if CPU alone limited them. */
static double cpu_ratio(const bench_report *r) {
    return over(r->bound_cpu.process, r->tp->cpu.process);
}

/* What one published list weighs: the broker's and the clients' share of
 * the cost grows with it (JSON lists are ~4x Avro's, BENCHMARKS.md). */
static double bytes_per_record(const run_stats *s) {
    return s->published ? (double)s->published_bytes / (double)s->published : 0;
}

/* The embedded broker's CPU seconds; null with --brokers, where its
 * thread is in another process. */
static json_t *broker_cpu_json(const bench_report *r, double seconds) {
    return r->embedded ? json_real(seconds) : json_null();
}

static json_t *output_bound_json(const bench_report *r) {
    return json_pack(
        "{s:f,s:f,s:o,s:I,s:f,s:f,s:f,s:f}", "events_per_s", r->out_bound_eps, "cpu_s",
        r->out_bound_cpu.process, "broker_cpu_s", broker_cpu_json(r, r->out_bound_cpu.broker),
        "bytes_per_record", (json_int_t)r->out_shape.bytes, "records_per_event",
        r->out_shape.records_per_event, "of_transport_bound", over(r->out_bound_eps, r->bound_eps),
        "cpu_of_transport_bound", over(r->bound_cpu.process, r->out_bound_cpu.process),
        "processor_ratio", over(r->events_per_s, r->out_bound_eps));
}

static json_t *reals(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static const double *eps_of(const bench_report *r, double *eps) {
    for (int i = 0; i < r->runs; i++) eps[i] = r->tp_runs[i].events_per_s;
    return eps;
}

static json_t *report_json(const bench_opts *o, const bench_report *r, int batch_size) {
    const run_stats *s = &r->tp->st;
    double eps[BENCH_RUNS_MAX];
    uint64_t n = r->tp->applied;
    double us[SPLIT_STAGES], sh[SPLIT_STAGES];
    split(s, n, us, sh);
    json_t *stages = json_object();
    for (int i = 0; i < SPLIT_STAGES; i++)
        json_object_set_new(stages, split_key[i],
                            json_pack("{s:f,s:f}", "us_per_event", us[i], "share", sh[i]));
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:f,s:f}", "events", (json_int_t)o->events,
                          "users", (json_int_t)o->users, "items", (json_int_t)o->items,
                          "partitions", (json_int_t)o->partitions, "factors",
                          (json_int_t)o->factors, "batch_size", (json_int_t)batch_size, "model",
                          r->model, "produce_s", r->produce_s, "train_s", r->train_s);
    json_object_set_new(j, "runs", json_integer(r->runs));
    json_object_set_new(j, "throughput_events_per_s", json_real(r->events_per_s));
    json_object_set_new(j, "throughput_runs", reals(eps_of(r, eps), r->runs));
    json_object_set_new(j, "transport_bound_events_per_s", json_real(r->bound_eps));
    json_object_set_new(j, "transport_bound_runs", reals(r->bound_runs, r->runs + 1));
    json_object_set_new(j, "ratio", json_real(r->ratio));
    json_object_set_new(j, "ratio_runs", reals(r->ratio_runs, r->runs));
    json_object_set_new(j, "processor_wall_s", json_real(r->tp->wall_s));
    json_object_set_new(j, "processor_join_s", json_real(r->tp->join_s));
    json_object_set_new(j, "process_cpu_s", json_real(r->tp->cpu.process));
    json_object_set_new(j, "broker_cpu_s", broker_cpu_json(r, r->tp->cpu.broker));
    json_object_set_new(j, "transport_bound_cpu_s", json_real(r->bound_cpu.process));
    json_object_set_new(j, "transport_bound_broker_cpu_s", broker_cpu_json(r, r->bound_cpu.broker));
    json_object_set_new(j, "cpu_ratio", json_real(cpu_ratio(r)));
    json_object_set_new(j, "output_bound", output_bound_json(r));
    json_object_set_new(j, "applied", json_integer((json_int_t)n));
    json_object_set_new(j, "published", json_integer((json_int_t)s->published));
    json_object_set_new(j, "published_bytes_per_record", json_real(bytes_per_record(s)));
    json_object_set_new(j, "batches", json_integer((json_int_t)s->batches));
    json_object_set_new(j, "rocksdb_write_bytes_per_event",
                        json_real(n ? (double)r->tp->write_bytes / (double)n : 0));
    json_object_set_new(j, "state_dir_bytes", json_integer((json_int_t)r->tp->state_dir_bytes));
    json_object_set_new(j, "peak_rss_mb", json_real((double)r->max_rss_kb / 1024.0));
    json_object_set_new(j, "time_split", stages);
    if (r->lat_done) {
        json_object_set_new(j, "latency", latency_json(o, &r->lat));
        json_object_set_new(j, "latency_floor", latency_json(o, &r->floor_lat));
    }
    return j;
}

static void latency_text(const char *what, const bench_latency *l) {
    printf("%-11s p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms at %.0f events/s offered "
           "(%" PRIu64 " samples); to produced: p50 %.1f ms, p99 %.1f ms\n",
           what, l->p50_ms, l->p95_ms, l->p99_ms, l->max_ms, l->achieved_rate, l->samples,
           l->produced_p50_ms, l->produced_p99_ms);
}

static void report_text(const bench_opts *o, const bench_report *r, int batch_size) {
    uint64_t n = r->tp->applied;
    printf("stream      %" PRId64 " events, %" PRId64 " users, %" PRId64 " items, %" PRId64
           " partitions (produced in %.1f s)\n",
           o->events, o->users, o->items, o->partitions, r->produce_s);
    printf("model       %s (%.1f s)\n", r->model, r->train_s);
    printf("throughput  %.0f events/s (processor, batch %d, state on disk; %.1f s wall incl. %.1f "
           "s group join)\n",
           r->events_per_s, batch_size, r->tp->wall_s, r->tp->join_s);
    if (r->runs > 1) {
        printf("runs        median of %d:", r->runs);
        for (int i = 0; i < r->runs; i++)
            printf("%s %.0f (%.2f)", i ? "," : "", r->tp_runs[i].events_per_s, r->ratio_runs[i]);
        printf(" events/s (ratio); the details below are of the median run\n");
    }
    printf("bound       %.0f events/s (consume + produce one record, same broker; median of",
           r->bound_eps);
    for (int i = 0; i <= r->runs; i++) printf(" %.0f", r->bound_runs[i]);
    printf(", before, between and after the processor's runs)\n");
    printf("ratio       %.2f of the transport bound\n", r->ratio);
    printf("ceiling     %.0f events/s: the bound publishing the processor's output (%.3f records "
           "of %zu bytes per event), %.2f of the bound (CPU %.2f); the processor at %.2f of it\n",
           r->out_bound_eps, r->out_shape.records_per_event, r->out_shape.bytes,
           over(r->out_bound_eps, r->bound_eps),
           over(r->bound_cpu.process, r->out_bound_cpu.process),
           over(r->events_per_s, r->out_bound_eps));
    if (r->lat_done) {
        latency_text("latency", &r->lat);
        latency_text("floor", &r->floor_lat);
    }
    printf("peak RSS    %.0f MB (whole process: embedded broker, model, RocksDB)\n",
           (double)r->max_rss_kb / 1024.0);
    printf("output      %" PRIu64 " lists published for %" PRIu64 " events, %.0f bytes each\n",
           r->tp->st.published, n, bytes_per_record(&r->tp->st));
    printf("rocksdb     %.0f bytes written per event; state dir %.1f MB\n",
           n ? (double)r->tp->write_bytes / (double)n : 0, (double)r->tp->state_dir_bytes / 1e6);
    printf("cpu         %.1f s process CPU over %.1f s wall; the bound %.1f s (median), %.2f of "
           "the processor's\n",
           r->tp->cpu.process, r->tp->wall_s, r->bound_cpu.process, cpu_ratio(r));
    if (r->embedded)
        printf("broker cpu  %.2f s of the processor's, %.2f s of the bound's, %.2f s of the "
               "ceiling's (the embedded broker's thread)\n",
               r->tp->cpu.broker, r->bound_cpu.broker, r->out_bound_cpu.broker);
    double us[SPLIT_STAGES], sh[SPLIT_STAGES];
    split(&r->tp->st, n, us, sh);
    printf("split      ");
    for (int i = 0; i < SPLIT_STAGES; i++)
        printf("%s %s %.1f us (%.0f%%)", i ? "," : "", split_label[i], us[i], 100 * sh[i]);
    printf(" per event\n");
}

/* ==== The command ==== */

static const char about[] =
    "Benchmarks the real processor end to end. Pre-produces a synthetic stream (by default 1M\n"
    "events over 100k users and 20k items, 32 partitions) to the embedded broker (or\n"
    "--brokers), trains a model on it (64 factors, K = 50; or --model FILE), runs the processor\n"
    "over it with state on disk, and measures in the same run the transport bound (consume each\n"
    "event, produce one small record, nothing else), the ratio, the CPU each took (and the\n"
    "embedded broker's thread's share of it), and the ceiling the processor's output leaves\n"
    "(that loop publishing lists as many and as heavy as the processor's). Then it offers\n"
    "events at --rate while the processor runs and reports event-to-publish latency (output\n"
    "arrival minus produce time). Also: peak RSS, RocksDB bytes written per event, and where\n"
    "the loop's time goes. The processor flags of `recstream run` apply. With --brokers it\n"
    "creates its topics, or lets the broker auto-create them.\n"
    "Example: recstream bench --json > bench.json";

typedef struct bench_cli {
    run_cli rc;
    bench_opts o;
} bench_cli;

static size_t bench_opts_table(bench_cli *b, util_opt *opts, size_t cap) {
    size_t n = run_cli_opts(&b->rc, opts, cap);
    run_cli_reword(opts, n, "model",
                   "model file from `recstream train` (default: train one on the stream)");
    bench_opts *o = &b->o;
    const util_opt mine[] = {
        {"events", 0, UTIL_OPT_INT, &o->events, 1, 100000000, 0, 0, NULL, "N",
         "events pre-produced for the throughput run (default 1000000)"},
        {"users", 0, UTIL_OPT_INT, &o->users, 1, 100000000, 0, 0, NULL, "N",
         "synthetic users (default 100000)"},
        {"items", 0, UTIL_OPT_INT, &o->items, 2, 10000000, 0, 0, NULL, "N",
         "synthetic items (default 20000)"},
        {"partitions", 0, UTIL_OPT_INT, &o->partitions, 1, 1024, 0, 0, NULL, "N",
         "partitions of the bench topics (default 32)"},
        {"rate", 0, UTIL_OPT_INT, &o->rate, 0, 10000000, 0, 0, NULL, "N",
         "offered events/s of the latency run (default 20000; 0 = skip it)"},
        {"latency-seconds", 0, UTIL_OPT_INT, &o->latency_s, 1, 3600, 0, 0, NULL, "N",
         "length of the latency run (default 10)"},
        {"runs", 0, UTIL_OPT_INT, &o->runs, 1, BENCH_RUNS_MAX, 0, 0, NULL, "N",
         "processor runs over the stream, each followed by a transport bound (and one before "
         "the first); medians reported (default 1, at most 9)"},
        {"factors", 0, UTIL_OPT_INT, &o->factors, 1, 1024, 0, 0, NULL, "N",
         "ALS factors of the trained model (default 64)"},
        {"iterations", 0, UTIL_OPT_INT, &o->iterations, 1, 100, 0, 0, NULL, "N",
         "ALS iterations of the trained model (default 2)"},
        {"work-dir", 0, UTIL_OPT_STRING, &o->work_dir, 0, 0, 0, 0, NULL, "DIR",
         "where the model and state go (default: a new directory under $TMPDIR, removed after)"},
        {"quick", 0, UTIL_OPT_FLAG, &o->quick, 0, 0, 0, 0, NULL, NULL,
         "tiny sizes for a smoke test (20k events, 2k users, 500 items, 4 partitions, 2 s)"},
        {"json", 0, UTIL_OPT_FLAG, &o->json, 0, 0, 0, 0, NULL, NULL, "one JSON object on stdout"},
    };
    for (size_t i = 0; i < sizeof(mine) / sizeof(*mine) && n < cap; i++) opts[n++] = mine[i];
    return n;
}

static void bench_defaults(bench_cli *b) {
    run_cli_init(&b->rc);
    b->o = (bench_opts){.events = -1,
                        .users = -1,
                        .items = -1,
                        .partitions = -1,
                        .rate = 20000,
                        .factors = 64,
                        .iterations = 2,
                        .latency_s = -1,
                        .runs = 1};
}

/* --quick shrinks whatever was not given explicitly. */
static void bench_sizes(bench_opts *o) {
#define PICK(f, small, full)                                                                       \
    if (o->f < 0) o->f = o->quick ? (small) : (full)
    PICK(events, 20000, 1000000);
    PICK(users, 2000, 100000);
    PICK(items, 500, 20000);
    PICK(partitions, 4, 32);
    PICK(latency_s, 2, 10);
#undef PICK
    if (o->quick && o->rate == 20000) o->rate = 2000;
    snprintf(o->suffix, sizeof(o->suffix), "%ld-%lld", (long)getpid(), (long long)util_now_ms());
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[BENCH_RUNS_MAX + 1];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The medians of the runs, and the details (split, CPU, writes) of the run
 * whose throughput is the median (the lower middle one of an even count). */
static void summarize(bench_report *r) {
    double buf[BENCH_RUNS_MAX];
    const double *eps = eps_of(r, buf);
    r->events_per_s = median(eps, r->runs);
    r->ratio = median(r->ratio_runs, r->runs);
    r->bound_eps = median(r->bound_runs, r->runs + 1);
    int mid = 0;
    for (int i = 0; i < r->runs; i++) {
        int below = 0; /* runs ranked before run i */
        for (int j = 0; j < r->runs; j++) below += (j < i && eps[j] == eps[i]) || eps[j] < eps[i];
        if (below == (r->runs - 1) / 2) mid = i;
    }
    r->tp = &r->tp_runs[mid];
    double process[BENCH_RUNS_MAX + 1], broker[BENCH_RUNS_MAX + 1];
    for (int i = 0; i <= r->runs; i++)
        process[i] = r->bound_cpu_runs[i].process, broker[i] = r->bound_cpu_runs[i].broker;
    r->bound_cpu = (cpu_mark){median(process, r->runs + 1), median(broker, r->runs + 1)};
}

/* Transport bound number run (1, 2, ...), with the process CPU it took. */
static int bound_run(const bench_opts *o, const run_config *cfg, const char *tin,
                     const char *tbound, int run, bench_report *r, char *err, size_t errsz) {
    log_info("bench: transport bound over %s%s", tin, run > 1 ? " again" : "");
    cpu_mark cpu0 = cpu_now();
    int rc = bench_transport_bound(o, cfg->brokers, cfg->kconf, tin, tbound, run, NULL,
                                   &r->bound_runs[run - 1], err, errsz);
    r->bound_cpu_runs[run - 1] = cpu_since(cpu0);
    return rc;
}

/* The transport bound once more, publishing what the median processor run
 * published: as many records per event, each as heavy. The processor cannot
 * outrun it; its ratio to the transport bound is the most the target's
 * ratio can be on this broker with this output, whatever the processor's
 * own work costs. */
static int output_bound(const bench_opts *o, const run_config *cfg, const char *tin,
                        const char *tbound, bench_report *r, char *err, size_t errsz) {
    const run_stats *s = &r->tp->st;
    r->out_shape.bytes = (size_t)(bytes_per_record(s) + 0.5);
    r->out_shape.records_per_event =
        r->tp->applied ? (double)s->published / (double)r->tp->applied : 0;
    log_info("bench: output-matched bound over %s (%zu-byte records, %.3f per event)", tin,
             r->out_shape.bytes, r->out_shape.records_per_event);
    cpu_mark cpu0 = cpu_now();
    int rc = bench_transport_bound(o, cfg->brokers, cfg->kconf, tin, tbound, r->runs + 2,
                                   &r->out_shape, &r->out_bound_eps, err, errsz);
    r->out_bound_cpu = cpu_since(cpu0);
    return rc;
}

/* A transport bound, then each processor run followed by another: the
 * machine's load drifts, and every run is compared with the mean of the
 * two bounds around it. */
static int throughput_runs(const bench_opts *o, const run_config *cfg, const char *tin,
                           const char *tbound, bench_report *r, char *err, size_t errsz) {
    r->runs = (int)o->runs;
    if (bound_run(o, cfg, tin, tbound, 1, r, err, errsz)) return -1;
    for (int i = 0; i < r->runs; i++) {
        log_info("bench: processor over %s (run %d of %d)", tin, i + 1, r->runs);
        if (run_throughput(o, cfg, i + 1, &r->tp_runs[i], err, errsz)) return -1;
        if (bound_run(o, cfg, tin, tbound, i + 2, r, err, errsz)) return -1;
        double bound = (r->bound_runs[i] + r->bound_runs[i + 1]) / 2;
        r->ratio_runs[i] = over(r->tp_runs[i].events_per_s, bound);
    }
    summarize(r);
    return output_bound(o, cfg, tin, tbound, r, err, errsz);
}

/* Every phase in order; r is filled as far as it got. */
static int bench_phases(bench_cli *b, producer_broker *broker, bench_report *r, char *err,
                        size_t errsz) {
    bench_opts *o = &b->o;
    run_config cfg = b->rc.cfg;
    char tin[96], tout[96], tbound[96], tlin[96], tlout[96], tfin[96], tfout[96], tdlq[96];
    char model_path[1100];
    snprintf(tin, sizeof(tin), "bench-events-%s", o->suffix);
    snprintf(tout, sizeof(tout), "bench-recs-%s", o->suffix);
    snprintf(tbound, sizeof(tbound), "bench-bound-%s", o->suffix);
    snprintf(tlin, sizeof(tlin), "bench-lat-events-%s", o->suffix);
    snprintf(tlout, sizeof(tlout), "bench-lat-recs-%s", o->suffix);
    snprintf(tfin, sizeof(tfin), "bench-floor-events-%s", o->suffix);
    snprintf(tfout, sizeof(tfout), "bench-floor-recs-%s", o->suffix);
    snprintf(tdlq, sizeof(tdlq), "bench-dlq-%s", o->suffix);
    const char *topics[] = {tin, tout, tbound, tlin, tlout, tfin, tfout, tdlq};
    int partitions = (int)o->partitions;
    if (bench_create_topics(broker, cfg.brokers, cfg.kconf, topics, 8, &partitions, err, errsz))
        return -1;
    o->partitions = partitions;
    model_dataset *ds = cfg.model_path ? NULL : model_dataset_new();
    log_info("bench: producing %" PRId64 " events to %s", o->events, tin);
    int rc = bench_produce_stream(o, cfg.brokers, cfg.kconf, tin, ds, &r->produce_s, err, errsz);
    if (!rc && ds) {
        rc = train_model(o, ds, (uint32_t)b->rc.neighbours, model_path, sizeof(model_path),
                         &r->train_s, err, errsz);
        cfg.model_path = model_path;
    }
    model_dataset_free(ds);
    if (rc) return -1;
    snprintf(r->model, sizeof(r->model), "%s", cfg.model_path);
    cfg.events_topic = tin, cfg.output_topic = tout, cfg.dlq_topic = tdlq;
    cfg.reload_interval_ms = 0;
    cfg.offset_reset = "earliest";
    if (throughput_runs(o, &cfg, tin, tbound, r, err, errsz)) return -1;
    if (o->rate <= 0) return 0;
    log_info("bench: latency floor (a bare loop) at %" PRId64 " events/s for %" PRId64 " s",
             o->rate, o->latency_s);
    cfg.events_topic = tfin, cfg.output_topic = tfout;
    if (bench_run_latency(o, &cfg, 1, &r->floor_lat, err, errsz)) return -1;
    char group[96], dir[1100];
    snprintf(group, sizeof(group), "bench-lat-%s", o->suffix);
    snprintf(dir, sizeof(dir), "%s/state-latency", o->work_dir);
    cfg.group_id = group, cfg.state_dir = dir;
    cfg.events_topic = tlin, cfg.output_topic = tlout;
    log_info("bench: latency at %" PRId64 " events/s for %" PRId64 " s", o->rate, o->latency_s);
    if (bench_run_latency(o, &cfg, 0, &r->lat, err, errsz)) return -1;
    r->lat_done = 1;
    return 0;
}

static int bench_main(bench_cli *b) {
    bench_opts *o = &b->o;
    bench_sizes(o);
    char tmp[1024] = "";
    if (!o->work_dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp, sizeof(tmp), "%s/recstream-bench-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp)) return log_error("bench: cannot make a work directory in %s", tmp), 1;
        o->work_dir = tmp;
    } else if (mkdir(o->work_dir, 0777) && errno != EEXIST) {
        return log_error("bench: --work-dir %s: %s", o->work_dir, strerror(errno)), 1;
    }
    producer_broker *broker = NULL;
    char err[1024] = "";
    if (!b->rc.cfg.brokers) {
        broker = producer_broker_start((int)o->partitions, NULL, 0, err, sizeof(err));
        if (!broker) return log_error("bench: embedded broker: %s", err), 1;
        b->rc.cfg.brokers = producer_broker_bootstraps(broker);
    }
    bench_report *r = util_calloc(1, sizeof(*r));
    r->embedded = broker != NULL;
    int rc = bench_phases(b, broker, r, err, sizeof(err));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->max_rss_kb = ru.ru_maxrss;
    if (rc) {
        log_error("bench: %s", err);
    } else if (o->json) {
        json_t *j = report_json(o, r, b->rc.cfg.batch_size);
        /* 9 digits: with 6, a bound past a million events/s lost its units
         * (printed as 1288590) */
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        printf("\n");
        json_decref(j);
    } else {
        report_text(o, r, b->rc.cfg.batch_size);
    }
    free(r);
    producer_broker_stop(broker);
    if (tmp[0]) {
        char cmd[1100];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (system(cmd)) log_warn("bench: could not remove %s", tmp);
    }
    return rc ? 1 : 0;
}

int cmd_bench(int argc, char **argv) {
    static bench_cli b; /* the config points into it */
    bench_defaults(&b);
    util_opt opts[RUN_CLI_MAX_OPTS + 16];
    size_t n = bench_opts_table(&b, opts, sizeof(opts) / sizeof(*opts));
    const util_cli cli = {"recstream bench",       "[OPTIONS]", about, opts, n,
                          producer_kconf_file_key, b.rc.kconf};
    int n_pos = 0, code = util_cli_parse(&cli, argc, argv, &n_pos);
    if (code == 0 && n_pos) code = (util_cli_error(&cli, "unexpected argument '%s'", argv[1]), -1);
    if (code == 0 && producer_kconf_show(b.rc.kconf, stdout)) code = 1;
    if (code == 0 && run_cli_finish(&b.rc, &cli)) code = -1;
    int exit_code = code > 0 ? 0 : code < 0 ? 2 : bench_main(&b);
    run_cli_free(&b.rc);
    util_cli_free();
    return exit_code;
}
