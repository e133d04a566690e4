/* codec: names, error reasons, id validation, buffers and time parsing that
 * every form (JSON, Avro, event files) shares. */
#include "codec_int.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ==== Names ==== */

static const char *err_reasons[CODEC_ERR__COUNT] = {
    [CODEC_OK] = "ok",
    [CODEC_ERR_EMPTY] = "empty",
    [CODEC_ERR_TRUNCATED] = "truncated",
    [CODEC_ERR_TRAILING] = "trailing_bytes",
    [CODEC_ERR_NOT_JSON] = "not_json",
    [CODEC_ERR_MISSING_FIELD] = "missing_field",
    [CODEC_ERR_FIELD_TYPE] = "field_type",
    [CODEC_ERR_ID_EMPTY] = "id_empty",
    [CODEC_ERR_ID_TOO_LONG] = "id_too_long",
    [CODEC_ERR_UTF8] = "invalid_utf8",
    [CODEC_ERR_UNKNOWN_TYPE] = "unknown_type",
    [CODEC_ERR_BAD_VALUE] = "bad_value",
    [CODEC_ERR_SCHEMA] = "schema",
    [CODEC_ERR_SCHEMA_UNAVAILABLE] = "schema_unavailable",
};

const char *codec_err_reason(codec_err err) {
    if ((int)err < 0 || err >= CODEC_ERR__COUNT) return "unknown_error";
    return err_reasons[err];
}

static const char *type_names[CODEC_EVENT_TYPES] = {"LISTEN", "VIEW", "LIKE"};
static const char *source_names[CODEC_SOURCES] = {"ONLINE", "OFFLINE", "POPULAR"};

int codec_event_type_parse(const char *s, size_t len) {
    for (int i = 0; i < CODEC_EVENT_TYPES; i++)
        if (strlen(type_names[i]) == len && !strncasecmp(s, type_names[i], len)) return i;
    return -1;
}

const char *codec_event_type_name(codec_event_type t) {
    return (unsigned)t < CODEC_EVENT_TYPES ? type_names[t] : "UNKNOWN";
}

const char *codec_source_name(codec_source s) {
    return (unsigned)s < CODEC_SOURCES ? source_names[s] : "UNKNOWN";
}

int codec_format_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "json")) return CODEC_FORMAT_JSON;
    if (!strcasecmp(s, "avro")) return CODEC_FORMAT_AVRO;
    if (!strcasecmp(s, "avro-framed")) return CODEC_FORMAT_AVRO_FRAMED;
    return -1;
}

/* ==== Errors ==== */

codec_err codec_fail(codec_err err, char *detail, size_t detail_size, const char *fmt, ...) {
    if (detail && detail_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, detail_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

int codec_errstr(char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

codec_err codec_id_check(const char *field, const char *s, size_t len, char *detail,
                         size_t detail_size) {
    if (len == 0) return codec_fail(CODEC_ERR_ID_EMPTY, detail, detail_size, "%s is empty", field);
    if (len > CODEC_ID_MAX)
        return codec_fail(CODEC_ERR_ID_TOO_LONG, detail, detail_size,
                          "%s is %zu bytes, over the limit of %d", field, len, CODEC_ID_MAX);
    if (!util_utf8_valid(s, len))
        return codec_fail(CODEC_ERR_UTF8, detail, detail_size,
                          "%s is not valid UTF-8 (or holds a NUL byte)", field);
    return CODEC_OK;
}

codec_err codec_id_set(const char *field, const char *s, size_t len, char *dst, uint16_t *dst_len,
                       char *detail, size_t detail_size) {
    codec_err e = codec_id_check(field, s, len, detail, detail_size);
    if (e) return e;
    memcpy(dst, s, len);
    dst[len] = '\0';
    *dst_len = (uint16_t)len;
    return CODEC_OK;
}

codec_err codec_event_check_values(const codec_event *ev, char *detail, size_t detail_size) {
    if (ev->ts_ms < 0)
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size, "ts is negative (%lld)",
                          (long long)ev->ts_ms);
    if (ev->has_duration && ev->duration_ms < 0)
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                          "duration_ms is negative (%lld)", (long long)ev->duration_ms);
    /* NaN fails both comparisons, so the negated form also rejects it. */
    if (ev->has_weight && !(ev->weight >= 0.0f && ev->weight <= 3.4e38f))
        return codec_fail(CODEC_ERR_BAD_VALUE, detail, detail_size,
                          "weight must be finite and >= 0 (got %g)", (double)ev->weight);
    return CODEC_OK;
}

int codec_first_nonblank(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') return buf[i];
    return -1;
}

/* ==== Buffers ==== */

void codec_buf_reserve(codec_buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->data = util_realloc(b->data, cap);
    b->cap = cap;
}

void codec_buf_reset(codec_buf *b) {
    b->len = 0;
}

void codec_buf_free(codec_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int float_fmt_slow(char *dst, size_t size, float v) {
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(dst, size, "%.*g", prec, (double)v);
        if (strtof(dst, NULL) == v) break;
    }
    return n;
}

/* Decimal digits of v into dst (no NUL; at most 20); returns the count.
 * The output path writes many numbers; snprintf("%lld") was ~5% of the
 * processor's CPU. */
static int u64_digits(char *dst, uint64_t v) {
    char tmp[20];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while (v /= 10);
    for (int i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
    return n;
}

void codec_buf_put_i64(codec_buf *b, int64_t v) {
    char tmp[21];
    int n = 0;
    if (v < 0) tmp[n++] = '-';
    n += u64_digits(tmp + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    codec_buf_put(b, tmp, (size_t)n);
}

/* Writes m * 10^-k in plain decimal without trailing fraction zeros. */
static int decimal_put(char *dst, int neg, int64_t m, int k) {
    char digits[24];
    int nd = u64_digits(digits, (uint64_t)m), n = 0;
    if (neg) dst[n++] = '-';
    if (k <= 0) {
        memcpy(dst + n, digits, (size_t)nd), n += nd;
        for (int i = 0; i < -k; i++) dst[n++] = '0';
        return dst[n] = 0, n;
    }
    int int_digits = nd - k;
    if (int_digits <= 0) {
        dst[n++] = '0', dst[n++] = '.';
        for (int i = 0; i < -int_digits; i++) dst[n++] = '0';
        memcpy(dst + n, digits, (size_t)nd), n += nd;
    } else {
        memcpy(dst + n, digits, (size_t)int_digits), n += int_digits;
        dst[n++] = '.';
        memcpy(dst + n, digits + int_digits, (size_t)k), n += k;
    }
    while (dst[n - 1] == '0') n--;
    if (dst[n - 1] == '.') n--;
    return dst[n] = 0, n;
}

/* The shortest decimal (6 to 9 significant digits) that reads back as v.
 * snprintf("%g") costs ~300 ns a call and a recommendation list has dozens
 * of scores, so the common range is done with integer digits. */
int codec_float_fmt(char *dst, size_t size, float v) {
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6, 1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14};
    static const double decade[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
                                    1e3,  1e4,  1e5,  1e6,  1e7, 1e8};
    double a = fabs((double)v);
    if (size < 32 || !(a >= 1e-5 && a < 1e9)) return float_fmt_slow(dst, size, v);
    int e = -5; /* floor(log10(a)), by table: log10 was a third of the cost */
    while (e < 8 && a >= decade[e + 5]) e++;
    for (int p = 6; p <= 9; p++) {
        int k = p - 1 - e; /* in [-3, 13] */
        /* a > 0 and the product < 1e10: adding a half and truncating
         * rounds as llround does, without the call */
        int64_t m = (int64_t)((k >= 0 ? a * pow10[k] : a / pow10[-k]) + 0.5);
        double back = k >= 0 ? (double)m / pow10[k] : (double)m * pow10[-k];
        if ((float)back == (float)a || p == 9) return decimal_put(dst, v < 0, m, k);
    }
    return float_fmt_slow(dst, size, v);
}

void codec_buf_put_float(codec_buf *b, float v) {
    char num[128];
    int n = codec_float_fmt(num, sizeof(num), v);
    codec_buf_put(b, num, (size_t)n);
}

/* ==== Time ==== */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* Reads exactly n digits at *p; -1 if any is not a digit. */
static int digits(const char **p, const char *end, int n) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (*p >= end || !isdigit((unsigned char)**p)) return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

static int expect(const char **p, const char *end, char c) {
    if (*p >= end || **p != c) return -1;
    (*p)++;
    return 0;
}

static int parse_offset(const char *p, const char *end, int64_t *off_min) {
    if (p < end && (*p == 'Z' || *p == 'z') && p + 1 == end) return *off_min = 0, 0;
    if (p == end) return *off_min = 0, 0; /* no zone: read as UTC */
    if (*p != '+' && *p != '-') return -1;
    int sign = *p++ == '-' ? -1 : 1;
    int hh = digits(&p, end, 2);
    if (p < end && *p == ':') p++;
    int mm = digits(&p, end, 2);
    if (hh < 0 || mm < 0 || hh > 23 || mm > 59 || p != end) return -1;
    *off_min = sign * (hh * 60 + mm);
    return 0;
}

int codec_iso8601_parse(const char *s, size_t len, int64_t *ms) {
    const char *p = s, *end = s + len;
    int y = digits(&p, end, 4);
    if (y < 0 || expect(&p, end, '-')) return -1;
    int mo = digits(&p, end, 2);
    if (mo < 1 || mo > 12 || expect(&p, end, '-')) return -1;
    int d = digits(&p, end, 2);
    if (d < 1 || d > days_in_month(y, mo) || p >= end || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    int h = digits(&p, end, 2);
    if (h < 0 || h > 23 || expect(&p, end, ':')) return -1;
    int mi = digits(&p, end, 2);
    if (mi < 0 || mi > 59 || expect(&p, end, ':')) return -1;
    int sec = digits(&p, end, 2);
    if (sec < 0 || sec > 60) return -1;
    int frac = 0, scale = 100;
    if (p < end && (*p == '.' || *p == ',')) {
        p++;
        if (p >= end || !isdigit((unsigned char)*p)) return -1;
        for (; p < end && isdigit((unsigned char)*p); p++, scale /= 10) frac += (*p - '0') * scale;
    }
    int64_t off_min;
    if (parse_offset(p, end, &off_min)) return -1;
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi - off_min) * 60000 + (int64_t)sec * 1000 + frac;
    return 0;
}
