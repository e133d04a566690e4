/* producer_kconf: -X and -c FILE settings reach librdkafka, bad ones fail
 * with the key named, schema.registry.* stays ours, and secrets never show in
 * -X dump or in the log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "producer.h"
#include "util.h"

static char *read_all(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void test_set_and_build(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256], val[64];
    size_t len = sizeof(val);
    assert_int_equal(producer_kconf_opt("linger.ms=7", kc, err, sizeof(err)), 0);
    assert_int_equal(producer_kconf_opt("linger.ms=9", kc, err, sizeof(err)), 0); /* replaces */
    assert_int_equal(producer_kconf_opt("bootstrap.servers=a:1", kc, err, sizeof(err)), 0);
    assert_string_equal(producer_kconf_get(kc, "linger.ms"), "9");
    rd_kafka_conf_t *conf = producer_kconf_build(kc, "b:2", err, sizeof(err));
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, "linger.ms", val, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "9");
    len = sizeof(val);
    rd_kafka_conf_get(conf, "bootstrap.servers", val, &len);
    assert_string_equal(val, "b:2"); /* --brokers wins over -X bootstrap.servers */
    rd_kafka_conf_destroy(conf);
    producer_kconf_free(kc);
}

static void test_bad_key_and_value(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_opt("no.such.property=1", kc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no.such.property"));
    assert_int_equal(producer_kconf_opt("linger.ms=soon", kc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "linger.ms"));
    assert_int_equal(producer_kconf_opt("linger.ms", kc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key=value"));
    assert_int_equal(producer_kconf_file_key("lonely", kc, err, sizeof(err)), -1);
    assert_null(producer_kconf_get(kc, "linger.ms"));
    producer_kconf_free(kc);
}

static void test_schema_registry_keys_stay_ours(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_opt("schema.registry.url=http://sr:8081", kc, err, sizeof(err)),
                     0);
    assert_string_equal(producer_kconf_get(kc, "schema.registry.url"), "http://sr:8081");
    rd_kafka_conf_t *conf = producer_kconf_build(kc, NULL, err, sizeof(err));
    assert_non_null(conf); /* librdkafka would reject the key */
    rd_kafka_conf_destroy(conf);
    producer_kconf_free(kc);
}

static void test_dump_redacts_secrets(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_show(kc, stdout), 0); /* nothing asked */
    assert_int_equal(producer_kconf_opt("sasl.password=hunter2", kc, err, sizeof(err)), 0);
    assert_int_equal(producer_kconf_opt("sasl.username=alice", kc, err, sizeof(err)), 0);
    assert_int_equal(producer_kconf_opt("schema.registry.url=https://bob:pw-in-url@sr:8081/x", kc,
                                        err, sizeof(err)),
                     0);
    assert_int_equal(
        producer_kconf_opt("schema.registry.basic.auth.user.info=bob:sr-pw", kc, err, sizeof(err)),
        0);
    assert_int_equal(producer_kconf_opt("dump", kc, err, sizeof(err)), 0);
    FILE *f = tmpfile();
    assert_int_equal(producer_kconf_show(kc, f), 1);
    char *text = read_all(f);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "sasl.password = [redacted]"));
    assert_non_null(strstr(text, "sasl.username = alice"));
    assert_null(strstr(text, "pw-in-url"));
    assert_null(strstr(text, "sr-pw"));
    assert_non_null(strstr(text, "schema.registry.url = https://[redacted]@sr:8081/x"));
    free(text);
    fclose(f);

    /* The log line too (stderr captured through a pipe-free dup). */
    fflush(stderr);
    int saved = dup(2);
    f = tmpfile();
    dup2(fileno(f), 2);
    producer_kconf_log(kc, "test");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(f, 0, SEEK_END);
    text = read_all(f);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "sasl.password=[redacted]"));
    assert_null(strstr(text, "pw-in-url"));
    assert_null(strstr(text, "sr-pw"));
    free(text);
    fclose(f);
    producer_kconf_free(kc);
}

static void test_list(void **state) {
    producer_kconf *kc = producer_kconf_new();
    char err[256];
    assert_int_equal(producer_kconf_opt("list", kc, err, sizeof(err)), 0);
    FILE *f = tmpfile();
    assert_int_equal(producer_kconf_show(kc, f), 1);
    fseek(f, 0, SEEK_END);
    char *text = read_all(f);
    assert_non_null(strstr(text, "bootstrap.servers"));
    free(text);
    fclose(f);
    producer_kconf_free(kc);
}

/* -c FILE keys that name no option arrive as key=value through util_cli. */
static void test_config_file_passthrough(void **state) {
    producer_kconf *kc = producer_kconf_new();
    const char *dir = getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof(path), "%s/kconf-%d.conf", dir, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) { /* TEST_TMPDIR may not exist yet */
        snprintf(path, sizeof(path), "/tmp/kconf-%d.conf", (int)getpid());
        f = fopen(path, "w");
    }
    assert_non_null(f);
    fprintf(f, "# comment\ntopic = t1\nlinger.ms = 12\nsasl.password = s3cret\n");
    fclose(f);
    const char *topic = NULL;
    util_opt opts[] = {{"topic", 't', UTIL_OPT_STRING, &topic, .help = "topic"}};
    util_cli cli = {"test", NULL, NULL, opts, 1, producer_kconf_file_key, kc};
    char *argv[] = {"test", "-c", path, NULL};
    int n_pos = -1;
    assert_int_equal(util_cli_parse(&cli, 3, argv, &n_pos), 0);
    assert_string_equal(topic, "t1");
    assert_string_equal(producer_kconf_get(kc, "linger.ms"), "12");
    assert_string_equal(producer_kconf_get(kc, "sasl.password"), "s3cret");

    f = fopen(path, "w");
    fprintf(f, "linger.ms = never\n");
    fclose(f);
    assert_int_equal(util_cli_parse(&cli, 3, argv, &n_pos), -1);
    unlink(path);
    util_cli_free();
    producer_kconf_free(kc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_build),
        cmocka_unit_test(test_bad_key_and_value),
        cmocka_unit_test(test_schema_registry_keys_stay_ours),
        cmocka_unit_test(test_dump_redacts_secrets),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_config_file_passthrough),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
