/* util: the few things every module needs and none should write twice:
 * one-line levelled logging to stderr, clocks, bounded number parsing,
 * key=value config files, a stable 64-bit hash, and the out-of-memory
 * policy (abort in one place, as Redis does).
 *
 * Nothing here knows of Kafka, RocksDB or the model. */
#ifndef RECSTREAM_UTIL_H
#define RECSTREAM_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RECSTREAM_VERSION "0.1.0"

/* ---- Stopping: SIGINT and SIGTERM set util_stop_requested once
 * util_stop_on_signals() ran; long-running commands poll it and finish
 * cleanly. SIGPIPE is ignored, so that a reader closing our stdout
 * (`| head -1`) ends the output, not the process. */
extern volatile sig_atomic_t util_stop_requested;
void util_stop_on_signals(void);

/* ---- Logging: one line per event, "2026-11-22T22:30:00.123Z INFO text". */
typedef enum {
    UTIL_LOG_ERROR = 0,
    UTIL_LOG_WARN = 1,
    UTIL_LOG_INFO = 2,
    UTIL_LOG_DEBUG = 3
} util_log_level;

void util_log_set_level(util_log_level level);
util_log_level util_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int util_log_level_parse(const char *s);
void util_log(util_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) util_log(UTIL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  util_log(UTIL_LOG_WARN, __VA_ARGS__)
#define log_info(...)  util_log(UTIL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) util_log(UTIL_LOG_DEBUG, __VA_ARGS__)

/* ---- Clocks. */
int64_t util_now_ms(void);  /* wall clock, milliseconds since the epoch */
int64_t util_mono_ns(void); /* monotonic, for measuring durations */

/* ---- Memory: these never return NULL; on exhaustion they log and abort. */
void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);
char *util_strndup(const char *s, size_t n);

/* Where a URL's user part lies ("https://user:pw@host/..."): returns 1 and
 * [*from, *to) spanning "user:pw@", or 0 when the URL has none (or no
 * scheme). For printing URLs without their credentials. */
int util_url_userinfo(const char *url, size_t *from, size_t *to);

/* A growing, NUL-terminated byte buffer with a limit, filled by
 * util_sink_write, whose signature is the one libcurl's
 * CURLOPT_WRITEFUNCTION wants: it returns size * nmemb, or 0 once the
 * buffer would pass max (which makes curl fail the transfer). */
typedef struct util_sink {
    char *data; /* NULL until something is written */
    size_t len, max;
} util_sink;
size_t util_sink_write(char *ptr, size_t size, size_t nmemb, void *sink);

/* ---- Parsing. Each returns 0 on success, -1 when the text is not a
 * number of that kind or lies outside [min, max]. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int util_parse_double(const char *s, double min, double max, double *out);
/* "true/false/yes/no/on/off/1/0"; returns -1 otherwise. */
int util_parse_bool(const char *s, int *out);
/* Durations "250ms", "30s", "5m", "2h", "7d" (bare number = ms). */
int util_parse_duration_ms(const char *s, int64_t *out);

/* ---- Config files: key=value lines, '#' comments, blank lines ignored,
 * whitespace around key and value trimmed. The callback returns 0 to go on;
 * non-zero stops reading and is returned. Errors name the file and line. */
typedef int (*util_kv_cb)(const char *key, const char *value, void *opaque, char *errstr,
                          size_t errstr_size);
int util_kv_file_read(const char *path, util_kv_cb cb, void *opaque, char *errstr,
                      size_t errstr_size);

/* Whether a configuration key names a secret (password, secret, token,
 * key material); such values are never logged, only "[redacted]". */
int util_is_secret_key(const char *key);

/* ---- Hashing: XXH3 64-bit, stable across machines and restarts. */
uint64_t util_hash64(const void *data, size_t len, uint64_t seed);

/* ---- ZigZag: a signed integer as an unsigned one that stays small for
 * small magnitudes (Avro's longs, the state records' varints). Written with
 * unsigned shifts only: right-shifting a negative int64_t is
 * implementation-defined in C. */
static inline uint64_t util_zigzag(int64_t v) {
    return (uint64_t)v << 1 ^ (0 - ((uint64_t)v >> 63));
}

/* ---- UTF-8: 1 when [s, s+len) is well-formed UTF-8 without NUL bytes. */
int util_utf8_valid(const char *s, size_t len);

/* ---- Command-line options, one table per command (as Redis's config.c
 * keeps one table of settings with bounds). The same names work as GNU long
 * flags (--name=value or --name value), as keys of a -c FILE (key=value
 * lines), and short flags where given. A bad flag or value prints one line
 * naming it, and the command exits 2. */
typedef enum {
    UTIL_OPT_FLAG,     /* int*, set to 1; takes no value (file: a bool) */
    UTIL_OPT_BOOL,     /* int*, true/false */
    UTIL_OPT_INT,      /* int64_t*, within [min, max] */
    UTIL_OPT_DOUBLE,   /* double*, within [dmin, dmax] */
    UTIL_OPT_STRING,   /* const char**, valid until util_cli_free */
    UTIL_OPT_DURATION, /* int64_t* milliseconds: 250ms, 30s, 5m, 2h, 7d */
    UTIL_OPT_FUNC      /* fn(value, opaque) parses; may repeat (-X k=v) */
} util_opt_type;

typedef int (*util_opt_fn)(const char *value, void *opaque, char *errstr, size_t errstr_size);

typedef struct util_opt {
    const char *name; /* long name and config-file key */
    char short_name;  /* 0 for none */
    util_opt_type type;
    void *target;      /* see the types; for FUNC, the opaque pointer */
    int64_t min, max;  /* INT bounds */
    double dmin, dmax; /* DOUBLE bounds */
    util_opt_fn fn;    /* FUNC */
    const char *arg;   /* value name in help, e.g. "N" */
    const char *help;
} util_opt;

typedef struct util_cli {
    const char *command; /* "recstream produce" */
    const char *usage;   /* "[OPTIONS] [FILE...]" */
    const char *about;   /* a paragraph printed by --help */
    const util_opt *opts;
    size_t n_opts;
    /* Keys of a -c FILE that name no option go here (e.g. to librdkafka)
     * as one "key=value" string, valid during the call only (the form -X
     * takes, so producer_kconf_file_key serves both); NULL makes them an
     * error. */
    util_opt_fn unknown_key;
    void *unknown_opaque;
} util_cli;

/* Parses argv[1..] (argv[0] is the command). Positional arguments are moved,
 * in order, to argv[1..*n_pos]. Returns 0 to go on, 1 when --help was printed
 * (exit 0), -1 after printing one error line (exit 2). -c FILE and --help
 * are always understood. */
int util_cli_parse(const util_cli *cli, int argc, char **argv, int *n_pos);
/* Appends k rows to a table being built (room is the caller's); returns the
 * new count. For commands that splice shared rows into their own. */
size_t util_opts_add(util_opt *table, size_t n, const util_opt *rows, size_t k);
void util_cli_help(const util_cli *cli, FILE *out);
/* Frees strings the parser copied (values read from -c files). */
void util_cli_free(void);
/* One error line in the parser's form, for checks made after parsing:
 * "recstream run: --half-life: must be positive". Returns 2. */
int util_cli_error(const util_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
