/* util: logging, clocks, allocation policy, parsing, config files, hashing.
 * See util.h for why these live together. */
#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

/* ==== Logging ==== */

static util_log_level log_level = UTIL_LOG_INFO;
static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void util_log_set_level(util_log_level level) {
    log_level = level;
}
util_log_level util_log_get_level(void) {
    return log_level;
}

int util_log_level_parse(const char *s) {
    for (int i = 0; i <= UTIL_LOG_DEBUG; i++)
        if (!strcasecmp(s, level_names[i])) return i;
    if (!strcasecmp(s, "warning")) return UTIL_LOG_WARN;
    return -1;
}

void util_log(util_log_level level, const char *fmt, ...) {
    if (level > log_level) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line keeps lines whole when threads log at once. */
    for (char *p = line + n; *p; p++)
        if (*p == '\n') *p = ' ';
    fprintf(stderr, "%s\n", line);
}

/* ==== Clocks ==== */

int64_t util_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ==== Memory ==== */

static void oom(size_t n) {
    log_error("out of memory allocating %zu bytes", n);
    abort();
}

void *util_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *util_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *util_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

int util_url_userinfo(const char *url, size_t *from, size_t *to) {
    const char *scheme = strstr(url, "://");
    if (!scheme) return 0;
    const char *host = scheme + 3, *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (!at || (slash && slash < at)) return 0;
    *from = (size_t)(host - url);
    *to = (size_t)(at + 1 - url);
    return 1;
}

size_t util_sink_write(char *ptr, size_t size, size_t nmemb, void *sink) {
    util_sink *b = sink;
    size_t n = size * nmemb;
    if (b->len + n > b->max) return 0;
    b->data = util_realloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

char *util_strdup(const char *s) {
    return util_strndup(s, strlen(s));
}

char *util_strndup(const char *s, size_t n) {
    char *d = util_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ==== Parsing ==== */

int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int util_parse_double(const char *s, double min, double max, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || isnan(v) || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int util_parse_bool(const char *s, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

int util_parse_duration_ms(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || isnan(v)) return -1;
    double mult;
    if (!*end || !strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "s"))
        mult = 1e3;
    else if (!strcmp(end, "m"))
        mult = 60e3;
    else if (!strcmp(end, "h"))
        mult = 3600e3;
    else if (!strcmp(end, "d"))
        mult = 86400e3;
    else
        return -1;
    if (v * mult > 9.2e18) return -1;
    *out = (int64_t)(v * mult);
    return 0;
}

/* ==== Config files ==== */

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int util_kv_file_read(const char *path, util_kv_cb cb, void *opaque, char *errstr,
                      size_t errstr_size) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "%s:%d: expected key=value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        char cberr[512] = "";
        if ((rc = cb(key, val, opaque, cberr, sizeof(cberr))) != 0) {
            snprintf(errstr, errstr_size, "%s:%d: %s", path, lineno, cberr);
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int util_is_secret_key(const char *key) {
    static const char *words[] = {"password",  "secret",    "token",
                                  "key.pem",   "private",   "credential",
                                  "sasl.jaas", "user.info", "oauthbearer.config"};
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        if (strcasestr(key, words[i])) return 1;
    return 0;
}

/* ==== Hashing and text ==== */

uint64_t util_hash64(const void *data, size_t len, uint64_t seed) {
    return XXH3_64bits_withSeed(data, len, seed);
}

int util_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        if (c == 0) return 0;
        if (c < 0x80) continue;
        int extra;
        unsigned min;
        if ((c & 0xE0) == 0xC0)
            extra = 1, min = 0x80, c &= 0x1F;
        else if ((c & 0xF0) == 0xE0)
            extra = 2, min = 0x800, c &= 0x0F;
        else if ((c & 0xF8) == 0xF0)
            extra = 3, min = 0x10000, c &= 0x07;
        else
            return 0;
        if (end - p < extra) return 0;
        for (int i = 0; i < extra; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (p[i] & 0x3F);
        }
        p += extra;
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    }
    return 1;
}

/* ==== Stopping on a signal ==== */

volatile sig_atomic_t util_stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    util_stop_requested = 1;
}

void util_stop_on_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
