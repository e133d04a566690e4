/* The processor's shared flags (run, demo, bench): values land in the
 * config, bad values are refused with exit code 2 semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "run.h"

/* Parses argv into rc; returns util_cli_parse's result, or 2 from finish. */
static int parse(run_cli *rc, int argc, char **argv) {
    static util_opt opts[RUN_CLI_MAX_OPTS];
    run_cli_init(rc);
    size_t n = run_cli_opts(rc, opts, RUN_CLI_MAX_OPTS);
    util_cli cli = {"recstream run",         "[OPTIONS]", NULL, opts, n,
                    producer_kconf_file_key, rc->kconf};
    int n_pos = 0, r = util_cli_parse(&cli, argc, argv, &n_pos);
    if (r == 0) r = run_cli_finish(rc, &cli);
    return r;
}

static void test_defaults(void **st) {
    run_cli rc;
    char *argv[] = {"run"};
    assert_int_equal(parse(&rc, 1, argv), 0);
    assert_string_equal(rc.cfg.events_topic, "events");
    assert_string_equal(rc.cfg.output_topic, "recommendations");
    assert_string_equal(rc.cfg.dlq_topic, "events.dlq");
    assert_string_equal(rc.cfg.group_id, "recstream");
    assert_int_equal(rc.cfg.batch_size, 2000);
    assert_int_equal(rc.cfg.history, 50);
    assert_int_equal(rc.cfg.blend.strategy, MODEL_BLEND_INTERLEAVE);
    assert_int_equal(rc.cfg.output_format, CODEC_FORMAT_JSON);
    assert_non_null(rc.cfg.ab);
    assert_int_equal(rc.cfg.ab->n, 1);
    assert_string_equal(rc.cfg.ab->variants[0].name, "default");
    assert_null(rc.cfg.model_path);
    run_cli_free(&rc);
    util_cli_free();
}

static void test_values(void **st) {
    run_cli rc;
    char *argv[] = {"run", "--brokers",       "h:1",  "--events-topic", "ev",       "--history",
                    "7",   "--half-life",     "2h",   "--blend",        "weighted", "--n",
                    "5",   "--output-format", "avro", "--batch-size",   "10",       "--weight-like",
                    "4.5", "--include-seen",  "-X",   "linger.ms=3",    "--model",  "m.bin"};
    assert_int_equal(parse(&rc, (int)(sizeof(argv) / sizeof(*argv)), argv), 0);
    assert_string_equal(rc.cfg.brokers, "h:1");
    assert_string_equal(rc.cfg.events_topic, "ev");
    assert_int_equal(rc.cfg.history, 7);
    assert_int_equal(rc.cfg.online.half_life_ms, 2 * 3600 * 1000);
    assert_int_equal(rc.cfg.blend.strategy, MODEL_BLEND_WEIGHTED);
    assert_int_equal(rc.cfg.blend.n, 5);
    assert_int_equal(rc.cfg.ab->variants[0].blend.strategy, MODEL_BLEND_WEIGHTED);
    assert_int_equal(rc.cfg.output_format, CODEC_FORMAT_AVRO);
    assert_int_equal(rc.cfg.batch_size, 10);
    assert_true(rc.cfg.online.type_weight[CODEC_EVENT_LIKE] == 4.5f);
    assert_int_equal(rc.cfg.online.include_seen, 1);
    assert_string_equal(producer_kconf_get(rc.kconf, "linger.ms"), "3");
    assert_string_equal(rc.cfg.model_path, "m.bin");
    assert_ptr_equal(rc.cfg.kconf, rc.kconf);
    run_cli_free(&rc);
    util_cli_free();
}

/* avro-framed needs an id: from the registry (flag or -X) or --schema-id. */
static void test_registry_flags(void **st) {
    run_cli rc;
    char *a[] = {"run",
                 "--output-format",
                 "avro-framed",
                 "--schema-registry",
                 "http://sr:8081",
                 "--metrics-bind",
                 "::1"};
    assert_int_equal(parse(&rc, 7, a), 0);
    assert_string_equal(rc.cfg.schema_registry, "http://sr:8081");
    assert_string_equal(rc.cfg.metrics_bind, "::1");
    run_cli_free(&rc);
    util_cli_free();
    char *b[] = {"run", "--output-format", "avro-framed", "-X",
                 "schema.registry.url=http://sr:8081"};
    assert_int_equal(parse(&rc, 5, b), 0);
    assert_string_equal(rc.cfg.schema_registry, "http://sr:8081");
    run_cli_free(&rc);
    util_cli_free();
    char *c[] = {"run", "--output-format", "avro-framed", "--schema-id", "7"};
    assert_int_equal(parse(&rc, 5, c), 0);
    assert_null(rc.cfg.schema_registry);
    assert_int_equal(rc.cfg.schema_id, 7);
    run_cli_free(&rc);
    util_cli_free();
}

static void test_bad_values(void **st) {
    char *bad[][3] = {
        {"run", "--output-format", "xml"},
        {"run", "--blend", "random"},
        {"run", "--history", "0"},
        {"run", "--offset-reset", "middle"},
        {"run", "--half-life", "soon"},
        {"run", "--output-format", "avro-framed"},
        {"run", "-X", "no.such.property=1"},
        {"run", "--log-level", "loud"},
        {"run", "--metrics-bind", "localhost"},
        {"run", "-X", "schema.registry.urll=http://x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        run_cli rc;
        int r = parse(&rc, 3, bad[i]);
        if (r == 0) fail_msg("accepted %s %s", bad[i][1], bad[i][2]);
        assert_true(r != 1);
        run_cli_free(&rc);
        util_cli_free();
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_registry_flags),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
