/* producer_kconf: librdkafka settings from -X key=value and from -c FILE keys
 * that name no recstream option (as kcat passes -X through). Each value is
 * checked against librdkafka when given, so a typo is reported on the spot
 * with the key's name, and it is logged with secrets redacted. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "producer.h"
#include "util.h"

#define SR_PREFIX "schema.registry."

enum { SHOW_NONE = 0, SHOW_LIST, SHOW_DUMP };

struct producer_kconf {
    char **keys, **vals; /* in the order given; a repeated key is replaced */
    size_t n;
    int show;
    rd_kafka_conf_t *scratch; /* validates values as they arrive */
};

producer_kconf *producer_kconf_new(void) {
    producer_kconf *kc = util_calloc(1, sizeof(*kc));
    kc->scratch = rd_kafka_conf_new();
    return kc;
}

void producer_kconf_free(producer_kconf *kc) {
    if (!kc) return;
    for (size_t i = 0; i < kc->n; i++) {
        free(kc->keys[i]);
        free(kc->vals[i]);
    }
    free(kc->keys);
    free(kc->vals);
    rd_kafka_conf_destroy(kc->scratch);
    free(kc);
}

static int is_sr_key(const char *key) {
    return !strncmp(key, SR_PREFIX, strlen(SR_PREFIX));
}

static void store(producer_kconf *kc, const char *key, const char *value) {
    for (size_t i = 0; i < kc->n; i++)
        if (!strcmp(kc->keys[i], key)) {
            free(kc->vals[i]);
            kc->vals[i] = util_strdup(value);
            return;
        }
    kc->keys = util_realloc(kc->keys, (kc->n + 1) * sizeof(char *));
    kc->vals = util_realloc(kc->vals, (kc->n + 1) * sizeof(char *));
    kc->keys[kc->n] = util_strdup(key);
    kc->vals[kc->n++] = util_strdup(value);
}

int producer_kconf_set(producer_kconf *kc, const char *key, const char *value, char *errstr,
                       size_t errstr_size) {
    if (!*key) return snprintf(errstr, errstr_size, "empty librdkafka property name"), -1;
    if (is_sr_key(key) && !producer_registry_key_known(key))
        return snprintf(errstr, errstr_size, "%s: unknown Schema Registry setting", key), -1;
    if (!is_sr_key(key)) {
        char why[512];
        if (rd_kafka_conf_set(kc->scratch, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
            return snprintf(errstr, errstr_size, "%s: %s", key, why), -1;
    }
    store(kc, key, value);
    return 0;
}

int producer_kconf_opt(const char *kv, void *kconf, char *errstr, size_t errstr_size) {
    producer_kconf *kc = kconf;
    const char *eq = strchr(kv, '=');
    if (!eq) {
        if (!strcmp(kv, "list")) return kc->show = SHOW_LIST, 0;
        if (!strcmp(kv, "dump")) return kc->show = SHOW_DUMP, 0;
        return snprintf(errstr, errstr_size,
                        "expected key=value (a librdkafka property), list or dump, not '%s'", kv),
               -1;
    }
    char *key = util_strndup(kv, (size_t)(eq - kv));
    int rc = producer_kconf_set(kc, key, eq + 1, errstr, errstr_size);
    free(key);
    return rc;
}

int producer_kconf_file_key(const char *kv, void *kconf, char *errstr, size_t errstr_size) {
    if (!strchr(kv, '=')) return snprintf(errstr, errstr_size, "unknown setting '%s'", kv), -1;
    return producer_kconf_opt(kv, kconf, errstr, errstr_size);
}

const char *producer_kconf_get(const producer_kconf *kc, const char *key) {
    for (size_t i = 0; i < kc->n; i++)
        if (!strcmp(kc->keys[i], key)) return kc->vals[i];
    return NULL;
}

/* The value as it may be printed: "[redacted]" for secret keys, and a URL's
 * user part (https://user:pw@host) replaced, whatever the key. buf holds the
 * rewritten URL. */
static const char *shown(const char *key, const char *value, char *buf, size_t size) {
    if (util_is_secret_key(key)) return "[redacted]";
    size_t from, to;
    if (!util_url_userinfo(value, &from, &to)) return value;
    snprintf(buf, size, "%.*s[redacted]%s", (int)from, value, value + to - 1);
    return buf;
}

/* Prints a librdkafka key/value dump array, secrets redacted. */
static void print_dump(FILE *out, const char **arr, size_t cnt) {
    char buf[1024];
    for (size_t i = 0; i + 1 < cnt; i += 2)
        fprintf(out, "%s = %s\n", arr[i],
                shown(arr[i], arr[i + 1] ? arr[i + 1] : "", buf, sizeof(buf)));
}

int producer_kconf_show(const producer_kconf *kc, FILE *out) {
    if (kc->show == SHOW_LIST) {
        rd_kafka_conf_properties_show(out);
        return 1;
    }
    if (kc->show != SHOW_DUMP) return 0;
    char err[512], buf[1024];
    rd_kafka_conf_t *conf = producer_kconf_build(kc, NULL, err, sizeof(err));
    if (!conf) {
        fprintf(out, "# %s\n", err);
        return 1;
    }
    size_t cnt;
    const char **arr = rd_kafka_conf_dump(conf, &cnt);
    fprintf(out, "# Global config\n");
    print_dump(out, arr, cnt);
    rd_kafka_conf_dump_free(arr, cnt);
    rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
    if (tc) {
        arr = rd_kafka_topic_conf_dump(tc, &cnt);
        fprintf(out, "# Topic config\n");
        print_dump(out, arr, cnt);
        rd_kafka_conf_dump_free(arr, cnt);
    }
    for (size_t i = 0; i < kc->n; i++)
        if (is_sr_key(kc->keys[i]))
            fprintf(out, "%s = %s\n", kc->keys[i],
                    shown(kc->keys[i], kc->vals[i], buf, sizeof(buf)));
    rd_kafka_conf_destroy(conf);
    return 1;
}

/* librdkafka's own log lines, in our format (syslog levels). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    util_log_level l = level <= LOG_ERR       ? UTIL_LOG_ERROR
                       : level <= LOG_WARNING ? UTIL_LOG_WARN
                       : level <= LOG_NOTICE  ? UTIL_LOG_INFO
                                              : UTIL_LOG_DEBUG;
    util_log(l, "kafka %s %s: %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

/* Error events: the log callback has already told the transient ones, so
 * only fatal errors get a line of their own here. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        log_error("kafka %s fatal: %s", rd_kafka_name(rk), reason);
    else
        log_debug("kafka %s: %s", rd_kafka_name(rk), reason);
}

rd_kafka_conf_t *producer_kconf_build(const producer_kconf *kc, const char *brokers, char *errstr,
                                      size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    for (size_t i = 0; i < kc->n; i++) {
        if (is_sr_key(kc->keys[i])) continue;
        if (rd_kafka_conf_set(conf, kc->keys[i], kc->vals[i], why, sizeof(why)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "%s: %s", kc->keys[i], why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (brokers && rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof(why)) !=
                       RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "--brokers: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

void producer_kconf_log(const producer_kconf *kc, const char *what) {
    char line[1536], buf[1024];
    size_t off = 0;
    line[0] = 0;
    for (size_t i = 0; i < kc->n && off < sizeof(line); i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s=%s", i ? ", " : "",
                                kc->keys[i], shown(kc->keys[i], kc->vals[i], buf, sizeof(buf)));
    log_info("kafka %s settings: %s", what, kc->n ? line : "(librdkafka defaults)");
}
