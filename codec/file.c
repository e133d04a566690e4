/* codec: event files (TSV, CSV, JSON lines), one event a line, for
 * `produce`, `train` and `eval`. Columns are mapped by name so that public
 * data sets (MovieLens u.data: user, item, rating, seconds) read as they
 * are; a bad line is reported with its path and number and skipped by the
 * caller, never fatal here. */
#define _GNU_SOURCE
#include "codec_int.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_COLS 32

typedef enum { COL_SKIP, COL_USER, COL_ITEM, COL_TYPE, COL_TS, COL_WEIGHT, COL_DURATION } col_kind;
static const char *col_names[] = {"-", "user", "item", "type", "ts", "weight", "duration"};

struct codec_file_reader {
    FILE *f;
    char *path;
    codec_file_opts opts;
    col_kind cols[MAX_COLS];
    int n_cols;
    int has_col[7];
    char *line;
    size_t line_cap;
    long lineno;
};

/* ==== Opening ==== */

static int parse_columns(codec_file_reader *r, const char *spec, char *errstr, size_t errstr_size) {
    char *copy = util_strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok && !rc;
         tok = strtok_r(NULL, ", \t", &save)) {
        int kind = -1;
        for (int k = 0; k < 7; k++)
            if (!strcasecmp(tok, col_names[k])) kind = k;
        if (kind < 0)
            rc = codec_errstr(errstr, errstr_size,
                              "unknown column \"%s\" (use user,item,type,ts,weight,duration,-)",
                              tok);
        else if (kind != COL_SKIP && r->has_col[kind])
            rc = codec_errstr(errstr, errstr_size, "column \"%s\" given twice", tok);
        else if (r->n_cols == MAX_COLS)
            rc = codec_errstr(errstr, errstr_size, "more than %d columns", MAX_COLS);
        else
            r->cols[r->n_cols++] = (col_kind)kind, r->has_col[kind] = 1;
    }
    free(copy);
    if (!rc && (!r->has_col[COL_USER] || !r->has_col[COL_ITEM]))
        rc = codec_errstr(errstr, errstr_size, "columns \"%s\" must name user and item", spec);
    return rc;
}

codec_file_reader *codec_file_open(const char *path, const codec_file_opts *opts, char *errstr,
                                   size_t errstr_size) {
    codec_file_reader *r = util_calloc(1, sizeof(*r));
    r->opts = *opts;
    if (r->opts.ts_scale <= 0) r->opts.ts_scale = 1;
    if ((unsigned)r->opts.default_type >= CODEC_EVENT_TYPES)
        r->opts.default_type = CODEC_EVENT_VIEW;
    r->path = util_strdup(path);
    if (opts->format != CODEC_FILE_JSONL &&
        parse_columns(r, opts->columns ? opts->columns : "user,item,type,ts", errstr, errstr_size))
        goto fail;
    r->f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!r->f) {
        codec_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto fail;
    }
    return r;
fail:
    codec_file_close(r);
    return NULL;
}

void codec_file_close(codec_file_reader *r) {
    if (!r) return;
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
    free(r->path);
    free(r);
}

long codec_file_line(const codec_file_reader *r) {
    return r->lineno;
}

codec_file_format codec_file_format_guess(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && !strcasecmp(dot, ".csv")) return CODEC_FILE_CSV;
    if (dot &&
        (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json") || !strcasecmp(dot, ".ndjson")))
        return CODEC_FILE_JSONL;
    return CODEC_FILE_TSV;
}

/* ==== Splitting a line ==== */

typedef struct {
    char *s;
    size_t len;
} field;

/* CSV per RFC 4180 within one line: "a,""b""" is one field a,"b". Unquotes
 * in place. Returns the number of fields or -1 on an unterminated quote. */
static int split_csv(char *line, field *out, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *dst = p, *start = p;
        if (*p == '"') {
            for (p++;; p++) {
                if (!*p) return -1;
                if (*p == '"' && p[1] != '"') break;
                if (*p == '"') p++;
                *dst++ = *p;
            }
            p++;
        } else {
            while (*p && *p != ',') p++;
            dst = p;
        }
        if (n < max) out[n] = (field){start, (size_t)(dst - start)};
        n++;
        if (*p != ',') return *p ? -1 : n;
        p++;
    }
}

static int split_tsv(char *line, field *out, int max) {
    int n = 0;
    for (char *p = line;; p++) {
        char *start = p;
        while (*p && *p != '\t') p++;
        if (n < max) out[n] = (field){start, (size_t)(p - start)};
        n++;
        if (!*p) return n;
    }
}

/* ==== Parsing fields ==== */

static int field_i64(field f, int64_t min, int64_t max, int64_t *out) {
    char tmp[64];
    if (f.len == 0 || f.len >= sizeof(tmp)) return -1;
    memcpy(tmp, f.s, f.len);
    tmp[f.len] = 0;
    return util_parse_i64(tmp, min, max, out);
}

static int field_double(field f, double *out) {
    char tmp[64];
    if (f.len == 0 || f.len >= sizeof(tmp)) return -1;
    memcpy(tmp, f.s, f.len);
    tmp[f.len] = 0;
    return util_parse_double(tmp, 0.0, 3.4e38, out);
}

/* Integer or decimal in the file's unit, or ISO-8601. */
static codec_err field_ts(field f, int64_t scale, int64_t *ms, char *detail, size_t detail_size) {
    int64_t v;
    double d;
    if (field_i64(f, 0, INT64_MAX / scale, &v) == 0) return *ms = v * scale, CODEC_OK;
    if (field_double(f, &d) == 0 && d * (double)scale < 9.2e18)
        return *ms = (int64_t)llround(d * (double)scale), CODEC_OK;
    if (codec_iso8601_parse(f.s, f.len, ms) == 0 && *ms >= 0) return CODEC_OK;
    return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                      "ts \"%.*s\" is not a non-negative number or ISO-8601 time",
                      (int)(f.len > 40 ? 40 : f.len), f.s);
}

static codec_err set_field(codec_file_reader *r, col_kind kind, field f, codec_event *ev,
                           char *detail, size_t detail_size) {
    int64_t i;
    double d;
    int t;
    switch (kind) {
    case COL_SKIP:
        return CODEC_OK;
    case COL_USER:
        return codec_id_set("user", f.s, f.len, ev->user_id, &ev->user_len, detail, detail_size);
    case COL_ITEM:
        return codec_id_set("item", f.s, f.len, ev->item_id, &ev->item_len, detail, detail_size);
    case COL_TYPE:
        if ((t = codec_event_type_parse(f.s, f.len)) >= 0) return ev->type = t, CODEC_OK;
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size,
                          "type \"%.*s\" is not LISTEN, VIEW or LIKE",
                          (int)(f.len > 40 ? 40 : f.len), f.s);
    case COL_TS:
        return field_ts(f, r->opts.ts_scale, &ev->ts_ms, detail, detail_size);
    case COL_WEIGHT:
        if (field_double(f, &d)) break;
        return ev->has_weight = 1, ev->weight = (float)d, CODEC_OK;
    case COL_DURATION:
        if (field_i64(f, 0, INT64_MAX, &i)) break;
        return ev->has_duration = 1, ev->duration_ms = i, CODEC_OK;
    }
    return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                      "%s \"%.*s\" is not a non-negative number", col_names[kind],
                      (int)(f.len > 40 ? 40 : f.len), f.s);
}

static codec_err parse_columns_line(codec_file_reader *r, char *line, codec_event *ev, char *detail,
                                    size_t detail_size) {
    field fields[MAX_COLS];
    int n = r->opts.format == CODEC_FILE_CSV ? split_csv(line, fields, MAX_COLS)
                                             : split_tsv(line, fields, MAX_COLS);
    if (n < 0) return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size, "unterminated quote");
    if (n < r->n_cols)
        return codec_fail(CODEC_ERR_MISSING_FIELD, detail, detail_size, "%d columns, expected %d",
                          n, r->n_cols);
    memset(ev, 0, sizeof(*ev));
    ev->type = r->opts.default_type;
    ev->ts_ms = r->lineno;
    for (int i = 0; i < r->n_cols; i++) {
        codec_err e = set_field(r, r->cols[i], fields[i], ev, detail, detail_size);
        if (e) return e;
    }
    return codec_event_check_values(ev, detail, detail_size);
}

/* ==== Reading ==== */

static codec_err parse_line(codec_file_reader *r, char *line, size_t len, codec_event *ev,
                            char *detail, size_t detail_size) {
    if (r->opts.format == CODEC_FILE_JSONL) {
        codec_json_defaults defs = {1, r->opts.default_type, 1, r->lineno};
        return codec_json_decode_event(line, len, &defs, ev, detail, detail_size);
    }
    if (memchr(line, 0, len))
        return codec_fail(CODEC_ERR_UTF8, detail, detail_size, "line holds a NUL byte");
    return parse_columns_line(r, line, ev, detail, detail_size);
}

int codec_file_next(codec_file_reader *r, codec_event *out, char *errstr, size_t errstr_size) {
    for (;;) {
        ssize_t n = getline(&r->line, &r->line_cap, r->f);
        if (n < 0) {
            if (ferror(r->f))
                return codec_errstr(errstr, errstr_size, "%s:%ld: read error: %s", r->path,
                                    r->lineno + 1, strerror(errno));
            return 0;
        }
        r->lineno++;
        while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r')) r->line[--n] = 0;
        if ((r->lineno == 1 && r->opts.header) || n == 0) continue;
        char detail[256];
        codec_err e = parse_line(r, r->line, (size_t)n, out, detail, sizeof(detail));
        if (!e) return 1;
        return codec_errstr(errstr, errstr_size, "%s:%ld: %s: %s", r->path, r->lineno,
                            codec_err_reason(e), detail);
    }
}
