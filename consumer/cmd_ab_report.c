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

/* A /metrics page is never 64 MiB. */
#define PAGE_MAX (64u << 20)

static int fetch(const char *url, util_sink *g, char *errstr, size_t errstr_size) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(errstr, errstr_size, "cannot initialise libcurl"), -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, util_sink_write);
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

static int read_file(const char *path, util_sink *g, char *errstr, size_t errstr_size) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return snprintf(errstr, errstr_size, "%s: cannot open", path), -1;
    char buf[65536];
    size_t n;
    int big = 0;
    while (!big && (n = fread(buf, 1, sizeof(buf), f)) > 0) big = !util_sink_write(buf, 1, n, g);
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (err) return snprintf(errstr, errstr_size, "%s: read error", path), -1;
    if (big) return snprintf(errstr, errstr_size, "%s: over %u MiB", path, PAGE_MAX >> 20), -1;
    return 0;
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
        util_sink g = {util_calloc(1, 1), 0, PAGE_MAX};
        rc = src->is_url[i] ? fetch(src->item[i], &g, err, errsz)
                            : read_file(src->item[i], &g, err, errsz);
        char perr[256];
        if (!rc && ab_report_parse(g.data, g.len, r, perr, sizeof(perr))) {
            snprintf(err, errsz, "%s: %s", src->item[i], perr);
            rc = -1;
        }
        free(g.data);
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
    ab_report_print(&r, stdout);
    return 0;
}
