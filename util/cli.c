/* Table-driven command-line parsing shared by every command, so that flags,
 * -c FILE keys, bounds, help text and the "one line, exit 2" rule behave the
 * same everywhere. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Strings read from config files outlive the file buffer: keep them here. */
static char **owned;
static size_t n_owned;

void util_cli_free(void) {
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    owned = NULL;
    n_owned = 0;
}

static const char *keep(const char *s) {
    owned = util_realloc(owned, (n_owned + 1) * sizeof(char *));
    return owned[n_owned++] = util_strdup(s);
}

int util_cli_error(const util_cli *cli, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", cli->command, msg);
    return 2;
}

static const util_opt *find_long(const util_cli *cli, const char *name, size_t len) {
    for (size_t i = 0; i < cli->n_opts; i++)
        if (strlen(cli->opts[i].name) == len && !strncmp(cli->opts[i].name, name, len))
            return &cli->opts[i];
    return NULL;
}

static const util_opt *find_short(const util_cli *cli, char c) {
    for (size_t i = 0; i < cli->n_opts; i++)
        if (cli->opts[i].short_name == c) return &cli->opts[i];
    return NULL;
}

/* Stores value into o's target; copy says whether value must be copied. */
static int set_value(const util_opt *o, const char *value, int copy, char *err, size_t errsz) {
    switch (o->type) {
    case UTIL_OPT_FLAG:
    case UTIL_OPT_BOOL:
        if (util_parse_bool(value, (int *)o->target))
            return snprintf(err, errsz, "expected true or false, not '%s'", value), -1;
        return 0;
    case UTIL_OPT_INT:
        if (util_parse_i64(value, o->min, o->max, (int64_t *)o->target))
            return snprintf(err, errsz, "expected a whole number from %lld to %lld, not '%s'",
                            (long long)o->min, (long long)o->max, value),
                   -1;
        return 0;
    case UTIL_OPT_DOUBLE:
        if (util_parse_double(value, o->dmin, o->dmax, (double *)o->target))
            return snprintf(err, errsz, "expected a number from %g to %g, not '%s'", o->dmin,
                            o->dmax, value),
                   -1;
        return 0;
    case UTIL_OPT_STRING:
        *(const char **)o->target = copy ? keep(value) : value;
        return 0;
    case UTIL_OPT_DURATION:
        if (util_parse_duration_ms(value, (int64_t *)o->target))
            return snprintf(err, errsz,
                            "expected a duration such as 500ms, 30s, 5m, 2h, 7d, "
                            "not '%s'",
                            value),
                   -1;
        return 0;
    case UTIL_OPT_FUNC:
        return o->fn(value, o->target, err, errsz);
    }
    return -1;
}

typedef struct file_ctx {
    const util_cli *cli;
} file_ctx;

static int file_kv(const char *key, const char *value, void *opaque, char *err, size_t errsz) {
    const util_cli *cli = ((file_ctx *)opaque)->cli;
    const util_opt *o = find_long(cli, key, strlen(key));
    if (o) {
        char why[512];
        if (!set_value(o, value, 1, why, sizeof(why))) return 0;
        snprintf(err, errsz, "%s: %s", key, why); /* name the key, as flags are named */
        return -1;
    }
    if (cli->unknown_key) {
        /* Passed on as "key=value", the form -X takes, so one function serves both. */
        size_t n = strlen(key) + strlen(value) + 2;
        char *kv = util_malloc(n);
        snprintf(kv, n, "%s=%s", key, value);
        int rc = cli->unknown_key(kv, cli->unknown_opaque, err, errsz);
        free(kv);
        return rc ? -1 : 0;
    }
    snprintf(err, errsz, "unknown setting '%s'", key);
    return -1;
}

static int read_file(const util_cli *cli, const char *path) {
    char err[1024];
    file_ctx ctx = {cli};
    if (util_kv_file_read(path, file_kv, &ctx, err, sizeof(err))) {
        util_cli_error(cli, "-c %s", err);
        return -1;
    }
    return 0;
}

static int apply(const util_cli *cli, const util_opt *o, const char *shown, const char *value) {
    char err[512];
    if (set_value(o, value, 0, err, sizeof(err))) {
        util_cli_error(cli, "%s: %s", shown, err);
        return -1;
    }
    return 0;
}

int util_cli_parse(const util_cli *cli, int argc, char **argv, int *n_pos) {
    int pos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            argv[1 + pos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            util_cli_help(cli, stdout);
            return 1;
        }
        const util_opt *o;
        const char *value = NULL;
        char shown[128];
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (!strncmp(a + 2, "config", len) && len == 6) {
                o = NULL;
            } else if (!(o = find_long(cli, a + 2, len))) {
                util_cli_error(cli, "unknown option '%.*s' (see --help)", (int)len + 2, a);
                return -1;
            }
            snprintf(shown, sizeof(shown), "--%.*s", (int)len, a + 2);
            if (eq) value = eq + 1;
            if (!o) { /* --config FILE */
                if (!value && i + 1 >= argc)
                    return util_cli_error(cli, "--config needs a file"), -1;
                if (read_file(cli, value ? value : argv[++i])) return -1;
                continue;
            }
        } else {
            if (a[1] == 'c') {
                const char *path = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
                if (!path) return util_cli_error(cli, "-c needs a file"), -1;
                if (read_file(cli, path)) return -1;
                continue;
            }
            if (!(o = find_short(cli, a[1]))) {
                util_cli_error(cli, "unknown option '-%c' (see --help)", a[1]);
                return -1;
            }
            snprintf(shown, sizeof(shown), "-%c", a[1]);
            if (a[2]) value = a + 2;
        }
        if (o->type == UTIL_OPT_FLAG) {
            if (value && apply(cli, o, shown, value)) return -1;
            if (!value) *(int *)o->target = 1;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                util_cli_error(cli, "%s needs a value", shown);
                return -1;
            }
            value = argv[++i];
        }
        if (apply(cli, o, shown, value)) return -1;
    }
    *n_pos = pos;
    return 0;
}

void util_cli_help(const util_cli *cli, FILE *out) {
    fprintf(out, "Usage: %s %s\n\n", cli->command, cli->usage ? cli->usage : "[OPTIONS]");
    if (cli->about) fprintf(out, "%s\n\n", cli->about);
    fprintf(out, "Options:\n");
    for (size_t i = 0; i < cli->n_opts; i++) {
        const util_opt *o = &cli->opts[i];
        char left[96];
        int n = o->short_name ? snprintf(left, sizeof(left), "-%c, --%s", o->short_name, o->name)
                              : snprintf(left, sizeof(left), "    --%s", o->name);
        if (o->type != UTIL_OPT_FLAG && n < (int)sizeof(left))
            snprintf(left + n, sizeof(left) - (size_t)n, " %s", o->arg ? o->arg : "VALUE");
        fprintf(out, "  %-30s %s\n", left, o->help ? o->help : "");
    }
    fprintf(out, "  %-30s %s\n", "-c, --config FILE",
            "read key=value settings (keys are the long option names)");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help");
}

size_t util_opts_add(util_opt *table, size_t n, const util_opt *rows, size_t k) {
    memcpy(table + n, rows, k * sizeof(*rows));
    return n + k;
}
