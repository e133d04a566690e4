/* ab_stats: the statistics and the /metrics reader behind `recstream
 * ab-report`. Hit rates are binomial proportions (hits over exposures), so
 * their intervals are Wilson score intervals, which stay inside [0, 1] and
 * behave at small counts, and arms are compared by the two-proportion z-test
 * with a pooled standard error. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab.h"
#include "util.h"

#define Z95 1.959963984540054 /* the 97.5th percentile of the standard normal */

void ab_wilson(uint64_t x, uint64_t n, double *lo, double *hi) {
    if (n == 0) {
        *lo = *hi = 0;
        return;
    }
    double nn = (double)n, p = (double)x / nn, z2 = Z95 * Z95;
    double denom = 1 + z2 / nn;
    double center = (p + z2 / (2 * nn)) / denom;
    double half = Z95 * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
    *lo = center - half < 0 ? 0 : center - half;
    *hi = center + half > 1 ? 1 : center + half;
}

int ab_two_prop_test(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2, double *z, double *p) {
    *z = 0;
    *p = 1;
    if (!n1 || !n2) return -1;
    double p1 = (double)x1 / (double)n1, p2 = (double)x2 / (double)n2;
    double pool = (double)(x1 + x2) / (double)(n1 + n2);
    double se = sqrt(pool * (1 - pool) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (!(se > 0)) return -1;
    *z = (p2 - p1) / se;
    *p = erfc(fabs(*z) / sqrt(2.0));
    return 0;
}

/* ==== Prometheus text format ==== */

static char *skip_ws(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Parses `"value"` at *p (after the quote), unescaping in place; returns the
 * value and moves *p past the closing quote, or NULL. */
static char *parse_quoted(char **p) {
    char *s = *p, *out = s, *start = s;
    for (; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *out++ = *s == 'n' ? '\n' : *s;
        } else {
            *out++ = *s;
        }
    }
    if (*s != '"') return NULL;
    *out = 0;
    *p = s + 1;
    return start;
}

static int parse_labels(char **p, ab_prom_sample *out) {
    char *s = *p;
    for (;;) {
        s = skip_ws(s);
        if (*s == '}') break;
        char *name = s;
        while (isalnum((unsigned char)*s) || *s == '_') s++;
        if (s == name) return -1;
        char *name_end = s;
        s = skip_ws(s);
        if (*s != '=') return -1;
        s = skip_ws(s + 1);
        if (*s != '"') return -1;
        *name_end = 0;
        s++;
        char *val = parse_quoted(&s);
        if (!val || out->n_labels == AB_PROM_MAX_LABELS) return -1;
        out->label[out->n_labels] = name;
        out->value_of[out->n_labels++] = val;
        s = skip_ws(s);
        if (*s == ',')
            s++;
        else if (*s != '}')
            return -1;
    }
    *p = s + 1;
    return 0;
}

int ab_prom_parse_line(char *line, ab_prom_sample *out) {
    memset(out, 0, sizeof(*out));
    char *s = skip_ws(line);
    if (*s == '#' || *s == 0 || *s == '\n' || *s == '\r') return 0;
    char *name = s;
    while (isalnum((unsigned char)*s) || *s == '_' || *s == ':') s++;
    if (s == name) return -1;
    char *name_end = s;
    if (*s == '{') {
        s++;
        if (parse_labels(&s, out)) return -1;
    }
    if (*s != ' ' && *s != '\t') return -1;
    s = skip_ws(s);
    *name_end = 0; /* may be the blank just skipped */
    out->name = name;
    char *end;
    if (!strncmp(s, "+Inf", 4))
        out->value = INFINITY, end = s + 4;
    else
        out->value = strtod(s, &end);
    if (end == s) return -1;
    return 1;
}

const char *ab_prom_label(const ab_prom_sample *s, const char *name) {
    for (size_t i = 0; i < s->n_labels; i++)
        if (!strcmp(s->label[i], name)) return s->value_of[i];
    return NULL;
}

/* ==== The A/B report ==== */

static ab_report_variant *report_variant(ab_report *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].name, name)) return &r->v[i];
    if (r->n == AB_MAX_VARIANTS) return NULL;
    ab_report_variant *v = &r->v[r->n++];
    memset(v, 0, sizeof(*v));
    snprintf(v->name, sizeof(v->name), "%s", name);
    return v;
}

static int source_index(const char *s) {
    static const char *const names[CODEC_SOURCES] = {"online", "offline", "popular"};
    for (int i = 0; s && i < CODEC_SOURCES; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int k_index(const char *s) {
    for (int i = 0; s && i < METRICS_AB_KS; i++)
        if ((unsigned)atoi(s) == metrics_ab_k[i]) return i;
    return -1;
}

/* Adds one A/B sample to its variant. Pages of several instances add up:
 * each instance owns a disjoint set of users (they are partitioned by key). */
static void report_count(ab_report_variant *v, const ab_prom_sample *s) {
    uint64_t n = s->value > 0 ? (uint64_t)(s->value + 0.5) : 0;
    if (!strcmp(s->name, "recstream_ab_users")) {
        v->users += s->value;
        return;
    }
    if (!strcmp(s->name, "recstream_ab_exposures_total")) {
        v->exposures += n;
        return;
    }
    int src = source_index(ab_prom_label(s, "source")), k = k_index(ab_prom_label(s, "k"));
    if (src < 0 || k < 0) return;
    if (!strcmp(s->name, "recstream_ab_hits_total")) {
        v->hits_by_source[src][k] += n;
        v->hits[k] += n;
    } else if (!strcmp(s->name, "recstream_ab_item_exposures_total")) {
        v->shown_by_source[src][k] += n;
    }
}

/* Folds one sample into the report; 1 when it was an A/B metric. */
static int report_sample(ab_report *r, const ab_prom_sample *s) {
    if (strncmp(s->name, "recstream_ab_", 13)) return 0;
    const char *vn = ab_prom_label(s, "variant");
    ab_report_variant *v = vn ? report_variant(r, vn) : NULL;
    if (!v) return 0;
    report_count(v, s);
    return 1;
}

int ab_report_parse(const char *text, size_t len, ab_report *out, char *errstr,
                    size_t errstr_size) {
    char *copy = util_strndup(text, len), *save = NULL;
    int line_no = 0, bad = 0, found = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        ab_prom_sample s;
        int rc = ab_prom_parse_line(line, &s);
        if (rc < 0 && !bad) bad = line_no;
        if (rc == 1) found |= report_sample(out, &s);
    }
    free(copy);
    if (!found) {
        if (bad)
            snprintf(errstr, errstr_size, "line %d is not Prometheus text format", bad);
        else
            snprintf(errstr, errstr_size, "no recstream_ab_* metrics in the text");
        return -1;
    }
    return 0;
}
