/* `recstream ab-report`: the A/B experiment's results from a running
 * processor's /metrics (or a saved copy): per variant the users, exposures
 * and hit rates at 5 and 10 with 95% Wilson intervals, then each variant
 * against the first (the control) with a two-proportion z-test. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab.h"
#include "commands.h"
#include "util.h"

typedef struct grow {
    char *d;
    size_t len;
} grow;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *opaque) {
    grow *g = opaque;
    size_t n = size * nmemb;
    if (g->len + n > (64u << 20)) return 0; /* a /metrics page is never 64 MiB */
    g->d = util_realloc(g->d, g->len + n + 1);
    memcpy(g->d + g->len, ptr, n);
    g->len += n;
    g->d[g->len] = 0;
    return n;
}

static int fetch(const char *url, grow *g, char *errstr, size_t errstr_size) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(errstr, errstr_size, "cannot initialise libcurl"), -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        return snprintf(errstr, errstr_size, "%s: %s", url, curl_easy_strerror(rc)), -1;
    if (status != 200) return snprintf(errstr, errstr_size, "%s: HTTP %ld", url, status), -1;
    return 0;
}

static int read_file(const char *path, grow *g, char *errstr, size_t errstr_size) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return snprintf(errstr, errstr_size, "%s: cannot open", path), -1;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) on_data(buf, 1, n, g);
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (err) return snprintf(errstr, errstr_size, "%s: read error", path), -1;
    return 0;
}

static void print_rate(uint64_t x, uint64_t n) {
    double lo, hi;
    ab_wilson(x, n, &lo, &hi);
    if (n)
        printf("  %7.4f [%6.4f, %6.4f]", (double)x / (double)n, lo, hi);
    else
        printf("  %7s %16s", "-", "");
}

static void print_variants(const ab_report *r) {
    printf("%-16s %9s %10s  %-25s  %-25s\n", "variant", "users", "exposures", "  hit@5  [95% CI]",
           "  hit@10 [95% CI]");
    for (size_t i = 0; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        printf("%-16s %9.0f %10llu", v->name, v->users, (unsigned long long)v->exposures);
        for (size_t k = 0; k < METRICS_AB_KS; k++) print_rate(v->hits[k], v->exposures);
        printf("\n");
    }
}

/* Hits at 10 by the source of the hit item, and the share of shown items
 * of that source that were hit (per-source precision at 10). */
static void print_sources(const ab_report *r) {
    static const char *const names[CODEC_SOURCES] = {"online", "offline", "popular"};
    size_t k = METRICS_AB_KS - 1;
    printf("\nhits@%u by source (hits / items shown):\n", metrics_ab_k[k]);
    for (size_t i = 0; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        printf("%-16s", v->name);
        for (int s = 0; s < CODEC_SOURCES; s++) {
            uint64_t h = v->hits_by_source[s][k], n = v->shown_by_source[s][k];
            printf("  %s %llu/%llu", names[s], (unsigned long long)h, (unsigned long long)n);
            if (n) printf(" (%.4f)", (double)h / (double)n);
        }
        printf("\n");
    }
}

static void print_comparisons(const ab_report *r) {
    const ab_report_variant *c = &r->v[0];
    printf("\nagainst %s (two-proportion z-test):\n", c->name);
    for (size_t i = 1; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        for (size_t k = 0; k < METRICS_AB_KS; k++) {
            double z, p;
            printf("%-16s hit@%-2u ", v->name, metrics_ab_k[k]);
            if (ab_two_prop_test(c->hits[k], c->exposures, v->hits[k], v->exposures, &z, &p)) {
                printf("not enough data\n");
                continue;
            }
            double diff = (double)v->hits[k] / (double)v->exposures -
                          (double)c->hits[k] / (double)c->exposures;
            printf("diff %+.4f (%+.1f%% relative)  z %+.2f  p %.4g%s\n", diff,
                   c->hits[k] ? 100.0 * diff / ((double)c->hits[k] / (double)c->exposures) : 0.0, z,
                   p, p < 0.05 ? "  significant at 5%" : "");
        }
    }
}

/* The pages to read, from repeated --metrics-url and --file. */
#define MAX_SOURCES 64
typedef struct sources {
    const char *item[MAX_SOURCES];
    int is_url[MAX_SOURCES];
    size_t n;
} sources;

static int add_source(sources *s, const char *v, int is_url, char *errstr, size_t errstr_size) {
    if (s->n == MAX_SOURCES)
        return snprintf(errstr, errstr_size, "at most %d pages", MAX_SOURCES), -1;
    s->item[s->n] = v;
    s->is_url[s->n++] = is_url;
    return 0;
}

static int opt_url(const char *v, void *opaque, char *errstr, size_t errstr_size) {
    return add_source(opaque, v, 1, errstr, errstr_size);
}

static int opt_file(const char *v, void *opaque, char *errstr, size_t errstr_size) {
    return add_source(opaque, v, 0, errstr, errstr_size);
}

/* Reads every page and sums them into r; 0, or -1 with errstr. */
static int read_pages(const sources *src, ab_report *r, char *err, size_t errsz) {
    int rc = 0;
    memset(r, 0, sizeof(*r));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < src->n && !rc; i++) {
        grow g = {util_calloc(1, 1), 0};
        rc = src->is_url[i] ? fetch(src->item[i], &g, err, errsz)
                            : read_file(src->item[i], &g, err, errsz);
        char perr[256];
        if (!rc && ab_report_parse(g.d, g.len, r, perr, sizeof(perr))) {
            snprintf(err, errsz, "%s: %s", src->item[i], perr);
            rc = -1;
        }
        free(g.d);
    }
    curl_global_cleanup();
    return rc;
}

int cmd_ab_report(int argc, char **argv) {
    sources src = {0};
    const util_opt opts[] = {
        {"metrics-url", 'u', UTIL_OPT_FUNC, &src, 0, 0, 0, 0, opt_url, "URL",
         "a running processor's metrics, e.g. http://127.0.0.1:9102/metrics (repeat to sum "
         "instances)"},
        {"file", 'f', UTIL_OPT_FUNC, &src, 0, 0, 0, 0, opt_file, "FILE",
         "a saved /metrics text instead (- for stdin; repeatable)"},
    };
    const util_cli cli = {"recstream ab-report",
                          "[OPTIONS]",
                          "Prints, per A/B variant, users, exposures and hit rates at 5 and 10 "
                          "with 95% Wilson intervals, then each variant against the first (the "
                          "control) with a two-proportion z-test. Reads the processor's /metrics "
                          "(run with --metrics-port) or saved copies; several pages (one per "
                          "instance) are summed.",
                          opts,
                          sizeof(opts) / sizeof(*opts),
                          NULL,
                          NULL};
    int n_pos = 0, rc = util_cli_parse(&cli, argc, argv, &n_pos);
    if (rc) return util_cli_free(), rc > 0 ? 0 : 2;
    if (n_pos > 0 || src.n == 0) {
        util_cli_free();
        return util_cli_error(&cli, "give --metrics-url URL or --file FILE");
    }
    char err[512];
    ab_report r;
    rc = read_pages(&src, &r, err, sizeof(err));
    util_cli_free();
    if (rc) {
        fprintf(stderr, "recstream ab-report: %s\n", err);
        return 1;
    }
    print_variants(&r);
    print_sources(&r);
    if (r.n > 1) print_comparisons(&r);
    return 0;
}
