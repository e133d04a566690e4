/* A/B experiments: variant specs and their errors, assignment shares on 100k
 * users, assignment stability (across calls and across processes), the hit
 * and exposure accounting, the statistics of ab-report on known numbers, and
 * the report read back from a rendered /metrics page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab.h"
#include "metrics.h"
#include "util.h"

static void configure(ab_config *ab, const char *const *specs, size_t n, const char *salt) {
    char err[256];
    ab_init(ab);
    for (size_t i = 0; i < n; i++)
        if (ab_add_variant(ab, specs[i], err, sizeof(err))) fail_msg("%s: %s", specs[i], err);
    if (salt) assert_int_equal(ab_set_salt(ab, salt, err, sizeof(err)), 0);
    if (ab_finish(ab, 20, err, sizeof(err))) fail_msg("finish: %s", err);
}

static void test_specs(void **state) {
    ab_config ab;
    const char *specs[] = {"name=control,share=0.5,blend=interleave",
                           "name=weighted,share=0.3,blend=weighted,w.online=2,w.popular=0.25,n=7",
                           "name=pop,share=0.2,blend=rerank,mix=1.5,foldin=true"};
    configure(&ab, specs, 3, "exp-1");
    assert_true(ab.variants[2].blend.rerank_mix == 1.5f);
    assert_int_equal(ab.variants[2].blend.rerank_foldin, 1);
    assert_true(ab.variants[1].blend.rerank_mix == 0.0f);
    assert_int_equal(ab.variants[1].blend.rerank_foldin, 0);
    assert_int_equal(ab.n, 3);
    assert_string_equal(ab.variants[1].name, "weighted");
    assert_int_equal(ab.variants[1].blend.strategy, MODEL_BLEND_WEIGHTED);
    assert_true(ab.variants[1].blend.weight[CODEC_SOURCE_ONLINE] == 2.0f);
    assert_true(ab.variants[1].blend.weight[CODEC_SOURCE_OFFLINE] == 1.0f);
    assert_true(ab.variants[1].blend.weight[CODEC_SOURCE_POPULAR] == 0.25f);
    assert_int_equal(ab.variants[1].blend.n, 7);
    assert_int_equal(ab.variants[0].blend.n, 20); /* the run's default */
    assert_int_equal(ab.variants[2].blend.strategy, MODEL_BLEND_RERANK);
    const char *names[AB_MAX_VARIANTS];
    ab_variant_names(&ab, names);
    assert_string_equal(names[2], "pop");

    /* No variant at all: one arm "default" takes everybody. */
    configure(&ab, NULL, 0, NULL);
    assert_int_equal(ab.n, 1);
    assert_string_equal(ab.variants[0].name, "default");
    assert_int_equal(ab_assign(&ab, "anyone", 6), 0);
}

static void expect_error(const char *const *specs, size_t n, const char *needle) {
    ab_config ab;
    char err[256] = "";
    ab_init(&ab);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = ab_add_variant(&ab, specs[i], err, sizeof(err));
    if (!rc) rc = ab_finish(&ab, 20, err, sizeof(err));
    assert_int_equal(rc, -1);
    if (!strstr(err, needle)) fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(strchr(err, '\n')); /* one line */
}

static void test_spec_errors(void **state) {
    const char *sum[] = {"name=a,share=0.5", "name=b,share=0.4"};
    expect_error(sum, 2, "sum to 0.9");
    const char *blend[] = {"name=a,share=1,blend=magic"};
    expect_error(blend, 1, "blend 'magic'");
    const char *dup[] = {"name=a,share=0.5", "name=a,share=0.5"};
    expect_error(dup, 2, "given twice");
    const char *key[] = {"name=a,share=1,colour=red"};
    expect_error(key, 1, "unknown variant key 'colour'");
    const char *noname[] = {"share=1"};
    expect_error(noname, 1, "no name=");
    const char *noshare[] = {"name=a", "name=b,share=0.5"};
    expect_error(noshare, 2, "needs share=");
    const char *badshare[] = {"name=a,share=1.5"};
    expect_error(badshare, 1, "share '1.5'");
    const char *badname[] = {"name=a b,share=1"};
    expect_error(badname, 1, "variant name");
    const char *badmix[] = {"name=a,share=1,mix=-1"};
    expect_error(badmix, 1, "mix '-1'");
    const char *badfoldin[] = {"name=a,share=1,foldin=perhaps"};
    expect_error(badfoldin, 1, "foldin 'perhaps'");
    const char *novalue[] = {"name=a,share"};
    expect_error(novalue, 1, "not key=value");
}

#define USERS 100000

static void test_shares_on_100k_users(void **state) {
    ab_config ab;
    const char *specs[] = {"name=a,share=0.5", "name=b,share=0.3", "name=c,share=0.15",
                           "name=d,share=0.05"};
    configure(&ab, specs, 4, "salt-42");
    size_t count[4] = {0};
    char id[32];
    for (int i = 0; i < USERS; i++) {
        int n = snprintf(id, sizeof(id), "u%d", i);
        size_t v = ab_assign(&ab, id, (size_t)n);
        assert_true(v < 4);
        count[v]++;
        double x = ab_point(&ab, id, (size_t)n);
        assert_true(x >= 0 && x < 1);
    }
    for (size_t v = 0; v < 4; v++) {
        double observed = (double)count[v] / USERS;
        if (fabs(observed - ab.variants[v].share) > 0.01)
            fail_msg("variant %s: share %.4f, configured %.2f", ab.variants[v].name, observed,
                     ab.variants[v].share);
    }
}

/* A fingerprint of the assignment of 10k users. */
static uint64_t fingerprint(const ab_config *ab) {
    uint64_t h = 1469598103934665603ull;
    char id[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof(id), "user-%d", i);
        h = (h ^ ab_assign(ab, id, (size_t)n)) * 1099511628211ull;
    }
    return h;
}

static void test_assignment_is_stable(void **state) {
    ab_config ab, same, other;
    const char *specs[] = {"name=control,share=0.5", "name=online,share=0.5,blend=online"};
    configure(&ab, specs, 2, "s1");
    configure(&same, specs, 2, "s1");
    configure(&other, specs, 2, "s2");
    uint64_t f = fingerprint(&ab);
    assert_true(f == fingerprint(&ab));
    assert_true(f == fingerprint(&same));
    assert_true(f != fingerprint(&other)); /* the salt re-draws the experiment */

    /* A fresh process (another instance, or after a restart) agrees. */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ab_config child;
        configure(&child, specs, 2, "s1");
        uint64_t cf = fingerprint(&child);
        ssize_t w = write(fd[1], &cf, sizeof(cf));
        _exit(w == sizeof(cf) ? 0 : 1);
    }
    uint64_t cf = 0;
    assert_int_equal(read(fd[0], &cf, sizeof(cf)), sizeof(cf));
    int st;
    waitpid(pid, &st, 0);
    close(fd[0]);
    close(fd[1]);
    assert_true(cf == f);

    /* The definition is xxh3_64(salt || user id), top 53 bits: pinned. */
    uint64_t h = util_hash64("s1alice", 7, 0);
    assert_true(ab_point(&ab, "alice", 5) == (double)(h >> 11) / 9007199254740992.0);
}

/* The value of a sample in a rendered page, via ab-report's own parser. */
static double value_of(metrics *m, const char *name, const char *variant, const char *source,
                       const char *k) {
    char *t = metrics_render(m, NULL), *save = NULL;
    double v = NAN;
    for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        ab_prom_sample s;
        if (ab_prom_parse_line(l, &s) != 1 || strcmp(s.name, name)) continue;
        const char *sv = ab_prom_label(&s, "variant"), *ss = ab_prom_label(&s, "source"),
                   *sk = ab_prom_label(&s, "k");
        if (strcmp(sv, variant)) continue;
        if (source && (!ss || strcmp(ss, source))) continue;
        if (k && (!sk || strcmp(sk, k))) continue;
        v = s.value;
    }
    free(t);
    return v;
}

static void test_hits_and_exposures(void **state) {
    const char *names[] = {"control", "online"};
    metrics *m = metrics_new(names, 2);
    char ids[12][8];
    codec_rec_item list[12];
    for (int i = 0; i < 12; i++) {
        snprintf(ids[i], sizeof(ids[i]), "i%d", i);
        list[i].item_id = ids[i];
        list[i].score = 1.0f - (float)i / 20;
        list[i].source =
            i < 3 ? CODEC_SOURCE_ONLINE : (i < 7 ? CODEC_SOURCE_OFFLINE : CODEC_SOURCE_POPULAR);
        list[i].item_len = i % 2 ? (uint32_t)strlen(ids[i]) : 0; /* both: carried, counted */
    }
    /* Rank 2 (online): a hit at 5 and 10. Rank 8 (popular): a hit at 10 only.
     * Rank 11: no hit. No list yet: a user, no exposure. */
    ab_record_event(m, 1, "u1", 2, list, 12, "i1", 2);
    ab_record_event(m, 1, "u2", 2, list, 12, "i7", 2);
    ab_record_event(m, 1, "u3", 2, list, 12, "i11", 3);
    ab_record_event(m, 1, "u4", 2, NULL, 0, "i1", 2);
    ab_record_event(m, 0, "u5", 2, list, 3, "i2", 2); /* a short list */
    assert_true(value_of(m, "recstream_ab_exposures_total", "online", NULL, NULL) == 3);
    assert_true(value_of(m, "recstream_ab_hits_total", "online", "online", "5") == 1);
    assert_true(value_of(m, "recstream_ab_hits_total", "online", "online", "10") == 1);
    assert_true(value_of(m, "recstream_ab_hits_total", "online", "popular", "5") == 0);
    assert_true(value_of(m, "recstream_ab_hits_total", "online", "popular", "10") == 1);
    /* Shown: top-5 = 3 online + 2 offline; top-10 = 3 + 4 + 3, per exposure. */
    assert_true(value_of(m, "recstream_ab_item_exposures_total", "online", "online", "5") == 9);
    assert_true(value_of(m, "recstream_ab_item_exposures_total", "online", "offline", "5") == 6);
    assert_true(value_of(m, "recstream_ab_item_exposures_total", "online", "popular", "10") == 9);
    assert_true(value_of(m, "recstream_ab_users", "online", NULL, NULL) == 4);
    assert_true(value_of(m, "recstream_ab_exposures_total", "control", NULL, NULL) == 1);
    assert_true(value_of(m, "recstream_ab_hits_total", "control", "online", "5") == 1);
    assert_true(value_of(m, "recstream_ab_item_exposures_total", "control", "online", "10") == 3);

    /* The same page, read as ab-report reads it. */
    size_t len;
    char *t = metrics_render(m, &len), err[256];
    ab_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(ab_report_parse(t, len, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.v[0].name, "control");
    assert_int_equal(r.v[1].exposures, 3);
    assert_int_equal(r.v[1].hits[0], 1);
    assert_int_equal(r.v[1].hits[1], 2);
    assert_int_equal(r.v[1].hits_by_source[CODEC_SOURCE_POPULAR][1], 1);
    assert_int_equal(r.v[1].shown_by_source[CODEC_SOURCE_OFFLINE][0], 6);
    assert_true(r.v[1].users == 4);
    /* A second instance's page adds up. */
    assert_int_equal(ab_report_parse(t, len, &r, err, sizeof(err)), 0);
    free(t);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[1].exposures, 6);
    assert_int_equal(r.v[1].hits[1], 4);
    assert_true(r.v[1].users == 8);
    memset(&r, 0, sizeof(r));
    metrics_free(m);
    assert_int_equal(ab_report_parse("# nothing\nfoo 1\n", 16, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no recstream_ab_"));
}

/* Reference values from the closed forms, computed independently. */
static void test_statistics(void **state) {
    double lo, hi;
    ab_wilson(50, 100, &lo, &hi);
    assert_true(fabs(lo - 0.4038315) < 1e-6 && fabs(hi - 0.5961685) < 1e-6);
    ab_wilson(0, 10, &lo, &hi);
    assert_true(lo == 0 && fabs(hi - 0.2775328) < 1e-6);
    ab_wilson(10, 10, &lo, &hi);
    assert_true(fabs(lo - 0.7224672) < 1e-6 && hi <= 1 && hi > 0.999999);
    ab_wilson(81, 1000, &lo, &hi);
    assert_true(fabs(lo - 0.0656496) < 1e-6 && fabs(hi - 0.0995572) < 1e-6);
    ab_wilson(0, 0, &lo, &hi);
    assert_true(lo == 0 && hi == 0);

    double z, p;
    assert_int_equal(ab_two_prop_test(100, 1000, 130, 1000, &z, &p), 0);
    assert_true(fabs(z - 2.1027406) < 1e-6);
    assert_true(fabs(p - 0.0354885) < 1e-6);
    assert_int_equal(ab_two_prop_test(130, 1000, 100, 1000, &z, &p), 0);
    assert_true(z < 0 && fabs(p - 0.0354885) < 1e-6); /* symmetric */
    assert_int_equal(ab_two_prop_test(500, 1000, 500, 1000, &z, &p), 0);
    assert_true(z == 0 && fabs(p - 1) < 1e-12);
    assert_int_equal(ab_two_prop_test(0, 100, 0, 100, &z, &p), -1);
    assert_int_equal(ab_two_prop_test(1, 0, 1, 10, &z, &p), -1);
}

static void test_prom_line_parser(void **state) {
    char l1[] = "x_total{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 12.5";
    ab_prom_sample s;
    assert_int_equal(ab_prom_parse_line(l1, &s), 1);
    assert_string_equal(s.name, "x_total");
    assert_int_equal(s.n_labels, 2);
    assert_string_equal(ab_prom_label(&s, "b"), "q\"u\\o\nte");
    assert_true(s.value == 12.5);
    char l2[] = "h_bucket{le=\"+Inf\"} 3";
    assert_int_equal(ab_prom_parse_line(l2, &s), 1);
    assert_string_equal(ab_prom_label(&s, "le"), "+Inf");
    char l3[] = "plain 7";
    assert_int_equal(ab_prom_parse_line(l3, &s), 1);
    assert_true(s.value == 7 && s.n_labels == 0);
    char l4[] = "# TYPE x counter", l5[] = "", l6[] = "bad{a=1} 2", l7[] = "noval",
         l8[] = "open{a=\"x\" 1";
    assert_int_equal(ab_prom_parse_line(l4, &s), 0);
    assert_int_equal(ab_prom_parse_line(l5, &s), 0);
    assert_int_equal(ab_prom_parse_line(l6, &s), -1);
    assert_int_equal(ab_prom_parse_line(l7, &s), -1);
    assert_int_equal(ab_prom_parse_line(l8, &s), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_shares_on_100k_users),
        cmocka_unit_test(test_assignment_is_stable),
        cmocka_unit_test(test_hits_and_exposures),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_prom_line_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
