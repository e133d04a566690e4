/* producer_registry against tests/registry_fixture.py (a stand-in for the
 * Schema Registry's REST calls, started here on a free 127.0.0.1 port):
 * register and look up subjects, fetch schemas by id, errors that say what
 * happened without credentials, bounded waits on a silent server, and the
 * decoder resolving an evolved writer schema fetched through the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "producer.h"
#include "util.h"

typedef struct fixture {
    pid_t pid;
    char url[64];
} fixture;

/* Starts the fixture registry (extra: --user-info, or NULL) and waits for its port. */
static void fixture_start(fixture *f, const char *user_info) {
    const char *dir = getenv("TESTS_DIR"), *tmp = getenv("TEST_TMPDIR");
    char script[512], port_file[512];
    assert_non_null(dir);
    snprintf(script, sizeof(script), "%s/registry_fixture.py", dir);
    snprintf(port_file, sizeof(port_file), "%s/registry-%d-%ld.port", tmp ? tmp : "/tmp",
             (int)getpid(), (long)time(NULL) ^ (long)(intptr_t)f);
    if (tmp) mkdir(tmp, 0755); /* ctest does not create it */
    unlink(port_file);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        if (user_info)
            execlp("python3", "python3", script, "--port-file", port_file, "--first-id", "100",
                   "--user-info", user_info, (char *)NULL);
        else
            execlp("python3", "python3", script, "--port-file", port_file, "--first-id", "100",
                   (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 100 && !port; i++) {
        FILE *pf = fopen(port_file, "r");
        if (pf) {
            if (fscanf(pf, "%d", &port) != 1) port = 0;
            fclose(pf);
        }
        if (!port) usleep(50000);
    }
    assert_true(port > 0);
    unlink(port_file);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", port);
}

static void fixture_stop(fixture *f) {
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
}

static const char *schema_a = "{\"type\":\"record\",\"name\":\"A\",\"fields\":["
                              "{\"name\":\"x\",\"type\":\"long\"}]}";

static producer_registry *client(const char *url, const char *kv1, const char *kv2) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    if (kv1) assert_int_equal(producer_kconf_opt(kv1, kc, err, sizeof(err)), 0);
    if (kv2) assert_int_equal(producer_kconf_opt(kv2, kc, err, sizeof(err)), 0);
    producer_registry *r = producer_registry_new(url, kc, err, sizeof(err));
    assert_non_null(r);
    producer_kconf_free(kc); /* the client copies what it needs */
    return r;
}

static void test_register_and_lookup(void **state) {
    fixture f;
    fixture_start(&f, NULL);
    producer_registry *r = client(f.url, NULL, NULL);
    char err[512];
    int32_t id = -1, id2 = -1;
    assert_int_equal(producer_registry_subject_id(r, "recs-value", schema_a, &id, err, sizeof(err)),
                     0);
    assert_int_equal(id, 100);
    /* registering an equal schema again gives the same id */
    assert_int_equal(producer_registry_subject_id(r, "recs-value", schema_a, &id2, err, 512), 0);
    assert_int_equal(id2, 100);
    /* auto.register=false only looks up: found under recs-value, not under other-value */
    producer_registry *ro = client(f.url, "schema.registry.auto.register=false", NULL);
    id2 = -1;
    assert_int_equal(producer_registry_subject_id(ro, "recs-value", schema_a, &id2, err, 512), 0);
    assert_int_equal(id2, 100);
    assert_int_equal(producer_registry_subject_id(ro, "other-value", schema_a, &id2, err, 512), -1);
    assert_non_null(strstr(err, "404"));
    assert_non_null(strstr(err, "auto.register"));
    producer_registry_free(ro);
    producer_registry_free(r);
    fixture_stop(&f);
}

static void test_schema_by_id(void **state) {
    fixture f;
    fixture_start(&f, NULL);
    producer_registry *r = client(f.url, NULL, NULL);
    char err[512], *json = NULL;
    int32_t id;
    assert_int_equal(producer_registry_subject_id(r, "t-value", schema_a, &id, err, 512), 0);
    assert_int_equal(producer_registry_schema_by_id(r, id, &json, err, sizeof(err)), 1);
    assert_string_equal(json, schema_a);
    free(json);
    json = NULL;
    assert_int_equal(producer_registry_schema_by_id(r, 4242, &json, err, sizeof(err)), 0);
    assert_null(json);
    assert_non_null(strstr(err, "404"));
    assert_non_null(strstr(err, "40403"));
    producer_registry_free(r);
    fixture_stop(&f);
}

/* POSTs a fixture control request with the client's own transport (curl CLI). */
static void fixture_fail_next(const fixture *f, int status, int count) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "curl -sf -o /dev/null -XPOST -d '{\"status\":%d,\"count\":%d}' %s/_fixture/fail",
             status, count, f->url);
    assert_int_equal(system(cmd), 0);
}

static void test_server_errors_are_retryable(void **state) {
    fixture f;
    fixture_start(&f, NULL);
    producer_registry *r = client(f.url, NULL, NULL);
    char err[512], *json = NULL;
    int32_t id;
    assert_int_equal(producer_registry_subject_id(r, "t-value", schema_a, &id, err, 512), 0);
    fixture_fail_next(&f, 503, 1);
    assert_int_equal(producer_registry_schema_by_id(r, id, &json, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "503"));
    assert_int_equal(producer_registry_schema_by_id(r, id, &json, err, sizeof(err)), 1);
    free(json);
    producer_registry_free(r);
    fixture_stop(&f);
}

/* A listening socket on 127.0.0.1 that accepts connections but never
 * answers; its port in *port. Close it to make the port refuse. */
static int silent_server(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

/* A server that accepts connections but never answers: the request gives up
 * after schema.registry.request.timeout.ms, not never. */
static void test_silent_server_times_out(void **state) {
    int port, s = silent_server(&port);
    char url[64], err[512], *json = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    producer_registry *r = client(url, "schema.registry.request.timeout.ms=300", NULL);
    int64_t t0 = util_mono_ns();
    assert_int_equal(producer_registry_schema_by_id(r, 1, &json, err, sizeof(err)), -1);
    int64_t ms = (util_mono_ns() - t0) / 1000000;
    assert_true(ms >= 250 && ms < 3000);
    assert_non_null(strstr(err, "imeout"));
    producer_registry_free(r);
    close(s);
    /* nobody listening: refused at once, well within the 2 s timeout */
    producer_registry *gone = client(url, NULL, NULL);
    t0 = util_mono_ns();
    assert_int_equal(producer_registry_schema_by_id(gone, 1, &json, err, sizeof(err)), -1);
    assert_true((util_mono_ns() - t0) / 1000000 < 1000);
    producer_registry_free(gone);
}

static void test_basic_auth_and_no_leaks(void **state) {
    fixture f;
    fixture_start(&f, "app:s3cret-pw");
    char err[512], *json = NULL, url[128];
    int32_t id;
    producer_registry *anon = client(f.url, NULL, NULL);
    assert_int_equal(producer_registry_subject_id(anon, "t-value", schema_a, &id, err, 512), -1);
    assert_non_null(strstr(err, "401"));
    producer_registry_free(anon);
    producer_registry *r =
        client(f.url, "schema.registry.basic.auth.user.info=app:s3cret-pw", NULL);
    assert_int_equal(producer_registry_subject_id(r, "t-value", schema_a, &id, err, 512), 0);
    assert_int_equal(producer_registry_schema_by_id(r, 999, &json, err, sizeof(err)), 0);
    assert_null(strstr(err, "s3cret"));
    producer_registry_free(r);
    /* credentials in the URL work too, and are cut from every message */
    snprintf(url, sizeof(url), "http://app:s3cret-pw@%s", f.url + strlen("http://"));
    r = client(url, NULL, NULL);
    assert_null(strstr(producer_registry_url(r), "s3cret"));
    assert_null(strstr(producer_registry_url(r), "@")); /* the whole user part */
    assert_non_null(strstr(producer_registry_url(r), "http://127.0.0.1:"));
    assert_int_equal(producer_registry_subject_id(r, "t-value", schema_a, &id, err, 512), 0);
    assert_int_equal(producer_registry_schema_by_id(r, 999, &json, err, sizeof(err)), 0);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "127.0.0.1"));
    producer_registry_free(r);
    fixture_stop(&f);
}

/* Several URLs: one that does not answer is skipped for the next, and the
 * client stays with the one that answered (the second call does not wait
 * for the silent one's timeout again). */
static void test_failover(void **state) {
    fixture f;
    fixture_start(&f, NULL);
    int port, s = silent_server(&port);
    char urls[160], err[512], *json = NULL;
    snprintf(urls, sizeof(urls), "http://127.0.0.1:%d/, %s", port, f.url);
    producer_registry *r = client(urls, "schema.registry.request.timeout.ms=300", NULL);
    assert_non_null(strstr(producer_registry_url(r), ","));
    int32_t id;
    int64_t t0 = util_mono_ns();
    assert_int_equal(producer_registry_subject_id(r, "t-value", schema_a, &id, err, 512), 0);
    assert_true((util_mono_ns() - t0) / 1000000 >= 250); /* waited for the silent one */
    t0 = util_mono_ns();
    assert_int_equal(producer_registry_schema_by_id(r, id, &json, err, sizeof(err)), 1);
    assert_true((util_mono_ns() - t0) / 1000000 < 250); /* went straight to the answering one */
    free(json);
    producer_registry_free(r);
    close(s);
    fixture_stop(&f);
    assert_null(producer_registry_new("http://a:1,ftp://b", NULL, err, sizeof(err)));
    assert_null(producer_registry_new(" , ", NULL, err, sizeof(err)));
}

static void test_bad_settings(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_opt("schema.registry.urll=http://x", kc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "schema.registry.urll"));
    assert_int_equal(producer_kconf_opt("schema.registry.request.timeout.ms=0", kc, err, 256), 0);
    assert_null(producer_registry_new("http://x:1", kc, err, sizeof(err)));
    assert_non_null(strstr(err, "timeout"));
    assert_null(producer_registry_new("ftp://x", NULL, err, sizeof(err)));
    assert_true(util_is_secret_key("schema.registry.basic.auth.user.info"));
    producer_kconf_free(kc);
}

/* ---- A framed event written with an evolved schema (an extra optional
 * field), decoded through the registry: what a newer Java producer sends. */

static const char *evolved =
    "{\"type\":\"record\",\"name\":\"UserEvent\",\"namespace\":\"io.recstream\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"item_id\",\"type\":\"string\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
    "\"symbols\":[\"LISTEN\",\"VIEW\",\"LIKE\"],\"default\":\"VIEW\"}},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"duration_ms\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"weight\",\"type\":[\"null\",\"float\"],\"default\":null},"
    "{\"name\":\"device\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

static size_t put_long(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) p[n++] = (uint8_t)(z | 0x80), z >>= 7;
    p[n++] = (uint8_t)z;
    return n;
}

static size_t put_str(uint8_t *p, const char *s) {
    size_t n = put_long(p, (int64_t)strlen(s));
    memcpy(p + n, s, strlen(s));
    return n + strlen(s);
}

static size_t framed_evolved(uint8_t *p, int32_t id) {
    size_t n = 0;
    p[n++] = 0;
    for (int i = 3; i >= 0; i--) p[n++] = (uint8_t)((uint32_t)id >> (8 * i));
    n += put_str(p + n, "u7");
    n += put_str(p + n, "song-3");
    n += put_long(p + n, 2); /* LIKE */
    n += put_long(p + n, 1700000000000);
    n += put_long(p + n, 1), n += put_long(p + n, 5000); /* duration_ms */
    n += put_long(p + n, 0);                             /* weight: null */
    n += put_long(p + n, 1), n += put_str(p + n, "tv");  /* device */
    return n;
}

static void test_decoder_fetches_evolved_schema(void **state) {
    fixture f;
    fixture_start(&f, NULL);
    producer_registry *r = client(f.url, NULL, NULL);
    char err[512];
    int32_t id;
    assert_int_equal(producer_registry_subject_id(r, "events-value", evolved, &id, err, 512), 0);
    codec_decoder *dec = codec_decoder_new();
    codec_decoder_set_fetcher(dec, producer_registry_fetch_cb, r);
    uint8_t buf[128];
    size_t n = framed_evolved(buf, id);
    codec_event ev;
    assert_int_equal(codec_decode_event(dec, buf, n, &ev, err, sizeof(err)), CODEC_OK);
    assert_string_equal(ev.user_id, "u7");
    assert_string_equal(ev.item_id, "song-3");
    assert_int_equal(ev.type, CODEC_EVENT_LIKE);
    assert_true(ev.ts_ms == 1700000000000);
    assert_true(ev.has_duration && ev.duration_ms == 5000);
    assert_false(ev.has_weight);
    /* an id the registry lacks is a schema error with the registry's word */
    n = framed_evolved(buf, id + 50);
    assert_int_equal(codec_decode_event(dec, buf, n, &ev, err, sizeof(err)), CODEC_ERR_SCHEMA);
    assert_non_null(strstr(err, "404"));
    codec_decoder_free(dec);
    producer_registry_free(r);
    fixture_stop(&f);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_lookup),
        cmocka_unit_test(test_schema_by_id),
        cmocka_unit_test(test_server_errors_are_retryable),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_basic_auth_and_no_leaks),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_decoder_fetches_evolved_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
