/* The metrics registry, its Prometheus exposition (parsed back line by line),
 * lag from librdkafka statistics, the distinct-user estimate, the stats log
 * line, and the HTTP endpoint on an ephemeral port, fetched with libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ab.h"
#include "metrics.h"
#include "util.h"

static const char *const two[] = {"control", "online"};

/* The value of the sample `name` whose labels are exactly `labels`
 * ("a=x,b=y", "" for none); NAN when absent. */
static double sample(const char *text, const char *name, const char *labels) {
    char *copy = util_strdup(text), *save = NULL;
    double found = NAN;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        ab_prom_sample s;
        int rc = ab_prom_parse_line(l, &s);
        assert_true(rc >= 0);
        if (rc == 0 || strcmp(s.name, name)) continue;
        char got[512] = "";
        for (size_t i = 0; i < s.n_labels; i++) {
            size_t n = strlen(got);
            snprintf(got + n, sizeof(got) - n, "%s%s=%s", i ? "," : "", s.label[i], s.value_of[i]);
        }
        if (!strcmp(got, labels)) found = s.value;
    }
    free(copy);
    return found;
}

static char *render(metrics *m) {
    size_t len;
    char *t = metrics_render(m, &len);
    assert_int_equal(strlen(t), len);
    return t;
}

static void test_counters_render_and_parse_back(void **state) {
    metrics *m = metrics_new(two, 2);
    metrics_event_consumed(m, CODEC_EVENT_LIKE);
    metrics_event_consumed(m, CODEC_EVENT_LIKE);
    metrics_event_consumed(m, CODEC_EVENT_VIEW);
    metrics_event_invalid(m, CODEC_ERR_UNKNOWN_TYPE);
    metrics_event_invalid(m, (codec_err)999); /* out of range: ignored, not a crash */
    metrics_dlq_produced(m);
    metrics_published(m, 1);
    metrics_published(m, 7); /* no such variant */
    metrics_reload(m, METRICS_FILE_OFFLINE, 0);
    metrics_reload(m, METRICS_FILE_MODEL, 1);
    metrics_set_rocksdb_size(m, 123456789);
    char *t = render(m);
    assert_true(sample(t, "recstream_events_consumed_total", "type=like") == 2);
    assert_true(sample(t, "recstream_events_consumed_total", "type=view") == 1);
    assert_true(sample(t, "recstream_events_consumed_total", "type=listen") == 0);
    char want[64];
    snprintf(want, sizeof(want), "reason=%s", codec_err_reason(CODEC_ERR_UNKNOWN_TYPE));
    assert_true(sample(t, "recstream_events_invalid_total", want) == 1);
    assert_true(sample(t, "recstream_dlq_messages_total", "") == 1);
    assert_true(sample(t, "recstream_recommendations_published_total", "variant=online") == 1);
    assert_true(sample(t, "recstream_recommendations_published_total", "variant=control") == 0);
    assert_true(sample(t, "recstream_reloads_total", "file=offline,result=error") == 1);
    assert_true(sample(t, "recstream_reloads_total", "file=model,result=ok") == 1);
    assert_true(sample(t, "recstream_rocksdb_size_bytes", "") == 123456789);
    /* Every family has HELP and TYPE before its samples. */
    assert_non_null(strstr(t, "# HELP recstream_events_consumed_total "));
    assert_non_null(strstr(t, "# TYPE recstream_events_consumed_total counter\n"));
    assert_non_null(strstr(t, "# TYPE recstream_event_to_publish_latency_seconds histogram\n"));
    free(t);
    metrics_free(m);
}

/* Each sample's family (name minus _bucket/_sum/_count) was TYPE'd first. */
static void test_exposition_is_well_formed(void **state) {
    metrics *m = metrics_new(two, 2);
    metrics_set_model(m, "als-\"quoted\"\\v1", util_now_ms() - 5000, 10);
    metrics_set_lag(m, "events", 3, 42);
    char *t = render(m), *copy = util_strdup(t), *save = NULL;
    char typed[64][96];
    size_t n_typed = 0, n_samples = 0;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(l, "# TYPE ", 7)) {
            sscanf(l + 7, "%95s", typed[n_typed++]);
            continue;
        }
        ab_prom_sample s;
        int rc = ab_prom_parse_line(l, &s);
        assert_int_not_equal(rc, -1);
        if (rc == 0) continue;
        n_samples++;
        int ok = 0;
        for (size_t i = 0; i < n_typed && !ok; i++) {
            size_t k = strlen(typed[i]);
            ok = !strncmp(s.name, typed[i], k) &&
                 (!s.name[k] || !strcmp(s.name + k, "_bucket") || !strcmp(s.name + k, "_sum") ||
                  !strcmp(s.name + k, "_count"));
        }
        if (!ok) fail_msg("sample %s has no # TYPE before it", s.name);
    }
    assert_true(n_samples > 50);
    /* The escaped version label parses back to the original. */
    assert_true(sample(t, "recstream_model_info", "version=als-\"quoted\"\\v1") == 1);
    double age = sample(t, "recstream_model_age_seconds", "");
    assert_true(age >= 4.9 && age < 60);
    assert_true(sample(t, "recstream_model_items", "") == 10);
    assert_true(sample(t, "recstream_consumer_lag", "topic=events,partition=3") == 42);
    free(copy);
    free(t);
    metrics_free(m);
}

static void test_histogram_buckets_sum_count(void **state) {
    metrics *m = metrics_new(NULL, 0);
    const double obs[] = {0.0005, 0.003, 0.003, 0.2, 7, 1000, -1};
    double sum = 0;
    for (size_t i = 0; i < sizeof(obs) / sizeof(*obs); i++) {
        metrics_observe_latency(m, obs[i]);
        sum += obs[i] > 0 ? obs[i] : 0;
    }
    metrics_observe_batch(m, 0.02, 500);
    char *t = render(m);
    const char *h = "recstream_event_to_publish_latency_seconds";
    char name[128];
    snprintf(name, sizeof(name), "%s_bucket", h);
    assert_true(sample(t, name, "le=0.001") == 2); /* 0.0005 and the clamped -1 */
    assert_true(sample(t, name, "le=0.005") == 4);
    assert_true(sample(t, name, "le=0.25") == 5);
    assert_true(sample(t, name, "le=10") == 6);
    assert_true(sample(t, name, "le=300") == 6);
    assert_true(sample(t, name, "le=+Inf") == 7);
    snprintf(name, sizeof(name), "%s_count", h);
    assert_true(sample(t, name, "") == 7);
    snprintf(name, sizeof(name), "%s_sum", h);
    assert_true(fabs(sample(t, name, "") - sum) < 1e-6);
    assert_true(sample(t, "recstream_batch_duration_seconds_bucket", "le=0.025") == 1);
    assert_true(sample(t, "recstream_batch_duration_seconds_bucket", "le=0.01") == 0);
    assert_true(sample(t, "recstream_batch_events_bucket", "le=500") == 1);
    assert_true(sample(t, "recstream_batch_events_sum", "") == 500);
    assert_true(!isnan(sample(t, "recstream_ab_users", "variant=default")));
    free(t);
    metrics_free(m);
}

static void test_quantile(void **state) {
    const double bounds[] = {1, 2, 4};
    const uint64_t counts[] = {0, 100, 0, 0}; /* all in (1, 2] */
    assert_true(fabs(metrics_hist_quantile(bounds, counts, 3, 0.5) - 1.5) < 1e-9);
    assert_true(fabs(metrics_hist_quantile(bounds, counts, 3, 0.99) - 1.99) < 1e-9);
    const uint64_t tail[] = {90, 0, 0, 10}; /* 10% above the highest bound */
    assert_true(metrics_hist_quantile(bounds, tail, 3, 0.99) == 4);
    assert_true(fabs(metrics_hist_quantile(bounds, tail, 3, 0.45) - 0.5) < 1e-9);
    const uint64_t none[] = {0, 0, 0, 0};
    assert_true(isnan(metrics_hist_quantile(bounds, none, 3, 0.99)));
}

static const char stats1[] =
    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"topics\":{"
    "\"events\":{\"topic\":\"events\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"desired\":true,\"hi_offset\":1000,\"ls_offset\":1000,"
    "\"lo_offset\":0,\"app_offset\":900,\"consumer_lag\":100},"
    "\"1\":{\"partition\":1,\"desired\":true,\"hi_offset\":50,\"ls_offset\":40,"
    "\"lo_offset\":0,\"app_offset\":-1001,\"consumer_lag\":-1},"
    "\"2\":{\"partition\":2,\"desired\":false,\"hi_offset\":70,\"ls_offset\":70,"
    "\"app_offset\":-1001},"
    "\"-1\":{\"partition\":-1,\"desired\":false,\"hi_offset\":-1}}}}}";
static const char stats2[] =
    "{\"topics\":{\"events\":{\"partitions\":{"
    "\"1\":{\"partition\":1,\"desired\":true,\"hi_offset\":60,\"ls_offset\":60,"
    "\"app_offset\":55}}}}}";

static void test_lag_from_rdkafka_stats(void **state) {
    metrics *m = metrics_new(NULL, 0);
    char err[256];
    assert_int_equal(metrics_rdkafka_stats(m, stats1, strlen(stats1), err, sizeof(err)), 0);
    char *t = render(m);
    assert_true(sample(t, "recstream_consumer_lag", "topic=events,partition=0") == 100);
    assert_true(sample(t, "recstream_consumer_lag", "topic=events,partition=1") == 40);
    assert_true(isnan(sample(t, "recstream_consumer_lag", "topic=events,partition=2")));
    free(t);
    /* Partition 0 was revoked: gone from the next document, gone here. */
    assert_int_equal(metrics_rdkafka_stats(m, stats2, strlen(stats2), err, sizeof(err)), 0);
    t = render(m);
    assert_true(isnan(sample(t, "recstream_consumer_lag", "topic=events,partition=0")));
    assert_true(sample(t, "recstream_consumer_lag", "topic=events,partition=1") == 5);
    free(t);
    assert_int_equal(metrics_rdkafka_stats(m, "{nope", 5, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "statistics JSON"));
    metrics_remove_partition(m, "events", 1);
    t = render(m);
    assert_true(isnan(sample(t, "recstream_consumer_lag", "topic=events,partition=1")));
    free(t);
    metrics_free(m);
}

static void test_users_estimate(void **state) {
    metrics *m = metrics_new(two, 2);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(id, sizeof(id), "user-%d", i);
        metrics_ab_user(m, 0, id, (size_t)n);
        metrics_ab_user(m, 0, id, (size_t)n); /* repeats do not count */
        if (i < 37) metrics_ab_user(m, 1, id, (size_t)n);
    }
    double big = metrics_ab_users_estimate(m, 0), small = metrics_ab_users_estimate(m, 1);
    assert_true(fabs(big - 20000) / 20000 < 0.05);
    assert_true(fabs(small - 37) < 2);
    metrics_free(m);
}

static void test_log_line(void **state) {
    metrics *m = metrics_new(two, 2);
    for (int i = 0; i < 100; i++) {
        metrics_event_consumed(m, CODEC_EVENT_LISTEN);
        metrics_observe_latency(m, i < 98 ? 0.004 : 2.0);
    }
    metrics_set_lag(m, "events", 0, 7);
    metrics_set_lag(m, "events", 1, 5);
    metrics_ab_exposure(m, 0);
    metrics_ab_exposure(m, 1);
    metrics_ab_hit(m, 1, CODEC_SOURCE_POPULAR, 1);
    char line[256];
    metrics_log_line(m, line, sizeof(line));
    assert_non_null(strstr(line, "lag=12 "));
    assert_non_null(strstr(line, "hit@10=0.5000"));
    double p99 = 0;
    const char *p = strstr(line, "p99=");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "p99=%lfs", &p99), 1);
    assert_true(p99 > 1 && p99 <= 2.5); /* the 2 s tail, within its bucket */
    /* The next line measures only what came since: no latency, no events. */
    metrics_log_line(m, line, sizeof(line));
    assert_non_null(strstr(line, "events/s=0.0 "));
    assert_non_null(strstr(line, "p99=- "));
    metrics_free(m);
}

/* Lock-free updates from a second thread lose nothing while scraping. */
static void *hammer(void *arg) {
    metrics *m = arg;
    for (int i = 0; i < 200000; i++) {
        metrics_event_consumed(m, CODEC_EVENT_VIEW);
        metrics_observe_batch(m, 0.001, 1);
    }
    return NULL;
}

static void test_concurrent_updates(void **state) {
    metrics *m = metrics_new(NULL, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, hammer, m);
    for (int i = 0; i < 20; i++) free(metrics_render(m, NULL));
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    char *t = render(m);
    assert_true(sample(t, "recstream_events_consumed_total", "type=view") == 400000);
    assert_true(sample(t, "recstream_batch_duration_seconds_count", "") == 400000);
    free(t);
    metrics_free(m);
}

/* ==== HTTP ==== */

typedef struct resp {
    long status;
    char body[1 << 16];
    size_t len;
    char type[128];
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *opaque) {
    resp *r = opaque;
    size_t k = size * n;
    if (r->len + k >= sizeof(r->body)) k = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    return size * n;
}

static void get(int port, const char *path, const char *method, resp *r) {
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->type, sizeof(r->type), "%s", ct ? ct : "");
    curl_easy_cleanup(c);
}

static void test_http_endpoints(void **state) {
    metrics *m = metrics_new(two, 2);
    char err[256];
    metrics_http *h = metrics_http_start(m, 0, NULL, err, sizeof(err));
    assert_non_null(h);
    int port = metrics_http_port(h);
    assert_true(port > 0);
    static resp r;
    metrics_event_consumed(m, CODEC_EVENT_LISTEN);
    get(port, "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.type, "version=0.0.4"));
    assert_true(sample(r.body, "recstream_events_consumed_total", "type=listen") == 1);
    metrics_event_consumed(m, CODEC_EVENT_LISTEN);
    get(port, "/metrics", NULL, &r);
    assert_true(sample(r.body, "recstream_events_consumed_total", "type=listen") == 2);

    get(port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    get(port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "no model loaded"));
    metrics_set_model(m, "v1", util_now_ms(), 3);
    get(port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "no partitions assigned"));
    metrics_set_assigned_partitions(m, 4);
    get(port, "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);

    metrics_set_health_timeout_ms(m, 50);
    usleep(120 * 1000);
    get(port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 503);
    metrics_heartbeat(m);
    get(port, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);

    get(port, "/nope", NULL, &r);
    assert_int_equal(r.status, 404);
    get(port, "/metrics", "POST", &r);
    assert_int_equal(r.status, 405);

    /* The port is taken now: a second server fails with a clear error. */
    assert_null(metrics_http_start(m, port, "127.0.0.1", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot listen"));
    assert_null(metrics_http_start(m, 0, "localhost:x", err, sizeof(err)));
    assert_non_null(strstr(err, "not an IP address"));
    metrics_http_stop(h);
    metrics_free(m);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_render_and_parse_back),
        cmocka_unit_test(test_exposition_is_well_formed),
        cmocka_unit_test(test_histogram_buckets_sum_count),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_lag_from_rdkafka_stats),
        cmocka_unit_test(test_users_estimate),
        cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_http_endpoints),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
