/* util_cli_parse: the option parser every command uses. Long and short
 * forms, --x=y, -c FILE keys, bounds, unknown options, positionals, and the
 * rule that a bad flag prints exactly one line naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

typedef struct vals {
    int verbose, enabled;
    int64_t n, timeout_ms;
    double ratio;
    const char *name;
    char seen[256]; /* FUNC values, joined by ';' */
} vals;

static int collect(const char *v, void *opaque, char *err, size_t errsz) {
    vals *x = opaque;
    if (!strcmp(v, "bad")) return snprintf(err, errsz, "not that"), -1;
    strncat(x->seen, v, sizeof(x->seen) - strlen(x->seen) - 2);
    strcat(x->seen, ";");
    return 0;
}

static vals V;
static char unknown_seen[256];

static int unknown(const char *kv, void *opaque, char *err, size_t errsz) {
    strncat(unknown_seen, kv, sizeof(unknown_seen) - strlen(unknown_seen) - 2);
    strcat(unknown_seen, ";");
    return 0;
}

static const util_opt OPTS[] = {
    {"verbose", 'v', UTIL_OPT_FLAG, &V.verbose, .help = "more output"},
    {"enabled", 0, UTIL_OPT_BOOL, &V.enabled, .help = "on or off"},
    {"count", 'n', UTIL_OPT_INT, &V.n, 1, 100, .arg = "N", .help = "1..100"},
    {"ratio", 0, UTIL_OPT_DOUBLE, &V.ratio, .dmin = 0, .dmax = 1, .help = "0..1"},
    {"name", 'N', UTIL_OPT_STRING, &V.name, .help = "a name"},
    {"timeout", 0, UTIL_OPT_DURATION, &V.timeout_ms, .help = "a duration"},
    {"set", 'X', UTIL_OPT_FUNC, &V, .fn = collect, .help = "repeatable"},
};

static util_cli CLI = {"recstream test",
                       "[OPTIONS] [FILE...]",
                       "About.",
                       OPTS,
                       sizeof(OPTS) / sizeof(OPTS[0]),
                       NULL,
                       NULL};

/* Runs the parser on a NULL-terminated list; stderr goes to errbuf. */
static char errbuf[4096];
static char *argv_store[32];

static int parse(const util_cli *cli, int *n_pos, ...) {
    va_list ap;
    int argc = 0;
    argv_store[argc++] = "test";
    va_start(ap, n_pos);
    for (char *a; (a = va_arg(ap, char *));) argv_store[argc++] = a;
    va_end(ap);
    argv_store[argc] = NULL;
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    dup2(fileno(f), 2);
    int rc = util_cli_parse(cli, argc, argv_store, n_pos);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long len = ftell(f);
    rewind(f);
    size_t got =
        fread(errbuf, 1, len < (long)sizeof(errbuf) - 1 ? (size_t)len : sizeof(errbuf) - 1, f);
    errbuf[got] = 0;
    fclose(f);
    return rc;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static int setup(void **state) {
    memset(&V, 0, sizeof(V));
    unknown_seen[0] = 0;
    CLI.unknown_key = NULL;
    CLI.unknown_opaque = NULL;
    return 0;
}

static int teardown(void **state) {
    util_cli_free();
    return 0;
}

static void test_long_forms(void **state) {
    int n_pos = -1;
    assert_int_equal(parse(&CLI, &n_pos, "--verbose", "--count", "7", "--ratio=0.25",
                           "--name=alice", "--enabled", "yes", "--timeout=2m", NULL),
                     0);
    assert_int_equal(n_pos, 0);
    assert_int_equal(V.verbose, 1);
    assert_int_equal(V.n, 7);
    assert_true(V.ratio == 0.25);
    assert_string_equal(V.name, "alice");
    assert_int_equal(V.enabled, 1);
    assert_int_equal(V.timeout_ms, 120000);
    assert_string_equal(errbuf, "");
}

static void test_short_forms(void **state) {
    int n_pos = -1;
    assert_int_equal(parse(&CLI, &n_pos, "-v", "-n", "3", "-Nbob", "-Xa=1", "-X", "b=2", NULL), 0);
    assert_int_equal(V.verbose, 1);
    assert_int_equal(V.n, 3);
    assert_string_equal(V.name, "bob");
    assert_string_equal(V.seen, "a=1;b=2;");
}

static void test_flag_with_explicit_value(void **state) {
    int n_pos;
    V.verbose = 1;
    assert_int_equal(parse(&CLI, &n_pos, "--verbose=false", NULL), 0);
    assert_int_equal(V.verbose, 0);
    assert_int_equal(parse(&CLI, &n_pos, "--verbose=maybe", NULL), -1);
    assert_int_equal(lines(errbuf), 1);
    assert_non_null(strstr(errbuf, "--verbose"));
}

static void test_positionals_in_order(void **state) {
    int n_pos = -1;
    assert_int_equal(
        parse(&CLI, &n_pos, "a.tsv", "-n", "2", "-", "b.tsv", "--", "--count", "-v", NULL), 0);
    assert_int_equal(n_pos, 5);
    assert_string_equal(argv_store[1], "a.tsv");
    assert_string_equal(argv_store[2], "-");
    assert_string_equal(argv_store[3], "b.tsv");
    assert_string_equal(argv_store[4], "--count"); /* after "--": not an option */
    assert_string_equal(argv_store[5], "-v");
    assert_int_equal(V.n, 2);
    assert_int_equal(V.verbose, 0);
}

/* Each bad input: -1 and one line that names the offending flag. */
static void expect_error(const char *needle, int rc) {
    assert_int_equal(rc, -1);
    assert_int_equal(lines(errbuf), 1);
    assert_non_null(strstr(errbuf, "recstream test: "));
    if (!strstr(errbuf, needle)) fail_msg("'%s' not in: %s", needle, errbuf);
}

static void test_errors_are_one_line(void **state) {
    int n_pos;
    expect_error("--count", parse(&CLI, &n_pos, "--count", "0", NULL));
    expect_error("--count", parse(&CLI, &n_pos, "--count=101", NULL));
    expect_error("-n", parse(&CLI, &n_pos, "-n", "x", NULL));
    expect_error("--ratio", parse(&CLI, &n_pos, "--ratio", "1.5", NULL));
    expect_error("--timeout", parse(&CLI, &n_pos, "--timeout", "soon", NULL));
    expect_error("--enabled", parse(&CLI, &n_pos, "--enabled", "perhaps", NULL));
    expect_error("--nope", parse(&CLI, &n_pos, "--nope", NULL));
    expect_error("--nope", parse(&CLI, &n_pos, "--nope=1", NULL));
    expect_error("-q", parse(&CLI, &n_pos, "-q", NULL));
    expect_error("--name needs a value", parse(&CLI, &n_pos, "--name", NULL));
    expect_error("-X", parse(&CLI, &n_pos, "-X", "bad", NULL));
    expect_error("-c", parse(&CLI, &n_pos, "-c", NULL));
    expect_error("--config", parse(&CLI, &n_pos, "--config", NULL));
    /* a prefix of a long name is not that name */
    expect_error("--coun", parse(&CLI, &n_pos, "--coun", "3", NULL));
}

static void test_help(void **state) {
    int n_pos;
    fflush(stdout);
    int saved = dup(1);
    FILE *f = tmpfile();
    dup2(fileno(f), 1);
    int rc = parse(&CLI, &n_pos, "--count", "5", "--help", NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long len = ftell(f);
    rewind(f);
    char out[4096];
    size_t got = fread(out, 1, len < (long)sizeof(out) - 1 ? (size_t)len : sizeof(out) - 1, f);
    out[got] = 0;
    fclose(f);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "Usage: recstream test [OPTIONS] [FILE...]"));
    assert_non_null(strstr(out, "-n, --count N"));
    assert_non_null(strstr(out, "--config FILE"));
}

static const char *write_conf(const char *text) {
    static char path[512];
    snprintf(path, sizeof(path), "/tmp/test_util_cli-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config_file(void **state) {
    int n_pos;
    const char *path = write_conf("# settings\n\ncount = 42\nname=from file\nverbose=true\n"
                                  "timeout = 30s\n");
    assert_int_equal(parse(&CLI, &n_pos, "-c", path, NULL), 0);
    assert_int_equal(V.n, 42);
    assert_string_equal(V.name, "from file"); /* copied: outlives the file buffer */
    assert_int_equal(V.verbose, 1);
    assert_int_equal(V.timeout_ms, 30000);

    /* later wins: a flag after -c overrides the file, --config= and -cFILE work */
    char arg[600];
    snprintf(arg, sizeof(arg), "--config=%s", path);
    assert_int_equal(parse(&CLI, &n_pos, arg, "--count", "5", NULL), 0);
    assert_int_equal(V.n, 5);
    snprintf(arg, sizeof(arg), "-c%s", path);
    assert_int_equal(parse(&CLI, &n_pos, arg, NULL), 0);
    assert_int_equal(V.n, 42);
    unlink(path);
}

static void test_config_file_errors(void **state) {
    int n_pos;
    const char *path = write_conf("count = 42\nmystery = 1\n");
    expect_error(":2: unknown setting 'mystery'", parse(&CLI, &n_pos, "-c", path, NULL));
    path = write_conf("count = 420\n");
    expect_error(":1: count: expected a whole number", parse(&CLI, &n_pos, "-c", path, NULL));
    path = write_conf("just words\n");
    expect_error(":1: expected key=value", parse(&CLI, &n_pos, "-c", path, NULL));
    unlink(path);
    expect_error("/nonexistent/x.conf", parse(&CLI, &n_pos, "-c", "/nonexistent/x.conf", NULL));
}

static void test_config_unknown_keys_passed_on(void **state) {
    int n_pos;
    CLI.unknown_key = unknown;
    const char *path = write_conf("count = 1\nlinger.ms = 5\nsasl.username=al=ice\n");
    assert_int_equal(parse(&CLI, &n_pos, "-c", path, NULL), 0);
    assert_int_equal(V.n, 1);
    assert_string_equal(unknown_seen, "linger.ms=5;sasl.username=al=ice;");
    unlink(path);
}

static void test_cli_error_returns_2(void **state) {
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    dup2(fileno(f), 2);
    int rc = util_cli_error(&CLI, "--half-life: must be positive");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_int_equal(rc, 2);
    assert_string_equal(line, "recstream test: --half-life: must be positive\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_long_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_with_explicit_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positionals_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_are_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_keys_passed_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_error_returns_2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
