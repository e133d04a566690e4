/* producer_registry: a small Confluent Schema Registry client (REST over
 * libcurl, JSON with jansson). recstream needs three calls: register a
 * subject's schema (or look it up when auto-registration is off) to frame its
 * outputs, and fetch a writer schema by id to decode framed inputs.
 *
 * Every request has a total timeout, so the processor's loop, which fetches
 * unknown ids inline, is never held for longer than that. Credentials (basic
 * auth, a password in the URL, a TLS key password) never reach a log line or
 * an error string: messages name the URL without its user part. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "producer.h"
#include "util.h"

#define SR_DEFAULT_TIMEOUT_MS 2000
#define SR_MAX_RESPONSE       (4u << 20) /* a schema is a few KiB; refuse a runaway body */
#define SR_CONTENT_TYPE       "Content-Type: application/vnd.schemaregistry.v1+json"

#define SR_MAX_URLS 8

struct producer_registry {
    /* "http://host:8081", no trailing slash, may hold user:pass@; several
     * for fail-over, tried in turn from the last one that answered. */
    char *base[SR_MAX_URLS];
    char *shown[SR_MAX_URLS]; /* base without the user part: what messages print */
    size_t n_urls, cur;
    char *shown_all; /* the shown URLs, comma-separated */
    CURL *curl;      /* one handle, reused: keeps the connection alive */
    struct curl_slist *headers;
    long timeout_ms;
    int auto_register;
};

/* ==== Settings ==== */

/* The schema.registry.* keys recstream understands (producer_kconf refuses
 * others, so a typo is caught). */
static const char *const known_keys[] = {
    "schema.registry.url",
    "schema.registry.basic.auth.user.info",
    "schema.registry.ssl.ca.location",
    "schema.registry.ssl.certificate.location",
    "schema.registry.ssl.key.location",
    "schema.registry.ssl.key.password",
    "schema.registry.request.timeout.ms",
    "schema.registry.auto.register",
};

int producer_registry_key_known(const char *key) {
    for (size_t i = 0; i < sizeof(known_keys) / sizeof(*known_keys); i++)
        if (!strcmp(key, known_keys[i])) return 1;
    return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe: run it once, whoever comes first. */
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "http://user:pw@host:8081" -> "http://host:8081" (a copy). */
static char *strip_userinfo(const char *url) {
    size_t from, to;
    if (!util_url_userinfo(url, &from, &to)) return util_strdup(url);
    char *out = util_malloc(strlen(url) - (to - from) + 1);
    memcpy(out, url, from);
    strcpy(out + from, url + to);
    return out;
}

static int set_tls(producer_registry *r, const producer_kconf *kc) {
    const char *v;
    int rc = 0;
    if ((v = producer_kconf_get(kc, "schema.registry.ssl.ca.location")))
        rc |= curl_easy_setopt(r->curl, CURLOPT_CAINFO, v);
    if ((v = producer_kconf_get(kc, "schema.registry.ssl.certificate.location")))
        rc |= curl_easy_setopt(r->curl, CURLOPT_SSLCERT, v);
    if ((v = producer_kconf_get(kc, "schema.registry.ssl.key.location")))
        rc |= curl_easy_setopt(r->curl, CURLOPT_SSLKEY, v);
    if ((v = producer_kconf_get(kc, "schema.registry.ssl.key.password")))
        rc |= curl_easy_setopt(r->curl, CURLOPT_KEYPASSWD, v);
    return rc ? -1 : 0;
}

static int configure(producer_registry *r, const producer_kconf *kc, char *errstr,
                     size_t errstr_size) {
    const char *auth = kc ? producer_kconf_get(kc, "schema.registry.basic.auth.user.info") : NULL;
    const char *tmo = kc ? producer_kconf_get(kc, "schema.registry.request.timeout.ms") : NULL;
    const char *autoreg = kc ? producer_kconf_get(kc, "schema.registry.auto.register") : NULL;
    int64_t t = SR_DEFAULT_TIMEOUT_MS;
    if (tmo && util_parse_i64(tmo, 1, 600000, &t))
        return snprintf(errstr, errstr_size,
                        "schema.registry.request.timeout.ms: expected 1..600000"),
               -1;
    r->timeout_ms = (long)t;
    r->auto_register = 1;
    if (autoreg && util_parse_bool(autoreg, &r->auto_register))
        return snprintf(errstr, errstr_size,
                        "schema.registry.auto.register: expected true or false"),
               -1;
    r->headers = curl_slist_append(NULL, SR_CONTENT_TYPE);
    r->headers = curl_slist_append(r->headers, "Accept: application/vnd.schemaregistry.v1+json, "
                                               "application/json");
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a threaded program */
    curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (auth) {
        curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(r->curl, CURLOPT_USERPWD, auth);
    }
    if (kc && set_tls(r, kc))
        return snprintf(errstr, errstr_size, "schema registry: TLS settings refused by libcurl"),
               -1;
    return 0;
}

/* Splits "URL[,URL...]" into r's lists. Returns 0 or -1 with errstr. */
static int parse_urls(producer_registry *r, const char *urls, char *errstr, size_t errstr_size) {
    char *copy = util_strdup(urls), *save = NULL;
    size_t all_len = 0;
    for (char *u = strtok_r(copy, ", ", &save); u; u = strtok_r(NULL, ", ", &save)) {
        if (r->n_urls == SR_MAX_URLS || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))) {
            free(copy);
            return snprintf(errstr, errstr_size,
                            "schema registry URL must start with http:// or https:// (at most "
                            "%d, comma-separated)",
                            SR_MAX_URLS),
                   -1;
        }
        for (size_t n = strlen(u); n && u[n - 1] == '/'; n--) u[n - 1] = 0;
        r->base[r->n_urls] = util_strdup(u);
        r->shown[r->n_urls] = strip_userinfo(u);
        all_len += strlen(r->shown[r->n_urls++]) + 1;
    }
    free(copy);
    if (!r->n_urls) return snprintf(errstr, errstr_size, "empty schema registry URL"), -1;
    r->shown_all = util_calloc(1, all_len + 1);
    for (size_t i = 0; i < r->n_urls; i++) {
        if (i) strcat(r->shown_all, ",");
        strcat(r->shown_all, r->shown[i]);
    }
    return 0;
}

producer_registry *producer_registry_new(const char *url, const producer_kconf *kc, char *errstr,
                                         size_t errstr_size) {
    pthread_once(&curl_once, curl_init_once);
    producer_registry *r = util_calloc(1, sizeof(*r));
    if (!url || parse_urls(r, url, errstr, errstr_size)) {
        if (!url) snprintf(errstr, errstr_size, "no schema registry URL");
        producer_registry_free(r);
        return NULL;
    }
    r->curl = curl_easy_init();
    if (!r->curl || configure(r, kc, errstr, errstr_size)) {
        if (!r->curl) snprintf(errstr, errstr_size, "schema registry: curl_easy_init failed");
        producer_registry_free(r);
        return NULL;
    }
    return r;
}

void producer_registry_free(producer_registry *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    for (size_t i = 0; i < r->n_urls; i++) {
        free(r->base[i]);
        free(r->shown[i]);
    }
    free(r->shown_all);
    free(r);
}

const char *producer_registry_url(const producer_registry *r) {
    return r->shown_all;
}

/* ==== HTTP ==== */

/* One attempt at base[i]: the CURLcode, the status in *status. */
static CURLcode perform(producer_registry *r, size_t i, const char *path, const char *post_body,
                        util_sink *b, long *status) {
    char *url = util_malloc(strlen(r->base[i]) + strlen(path) + 1);
    strcpy(url, r->base[i]);
    strcat(url, path);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
    if (post_body) curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, post_body);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, util_sink_write);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, b);
    CURLcode cc = curl_easy_perform(r->curl);
    free(url);
    if (cc == CURLE_OK) curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
    return cc;
}

/* One request: method POST when post_body is non-NULL, else GET. URLs that
 * give no answer are skipped for the next (registration and lookups are
 * idempotent). Returns the HTTP status (the parsed body in *out, or NULL),
 * or -1 with errstr when no URL answered. */
static long request(producer_registry *r, const char *path, const char *post_body, json_t **out,
                    char *errstr, size_t errstr_size) {
    util_sink b = {NULL, 0, SR_MAX_RESPONSE};
    long status = -1;
    for (size_t k = 0; k < r->n_urls && status < 0; k++) {
        size_t i = (r->cur + k) % r->n_urls;
        b.len = 0;
        CURLcode cc = perform(r, i, path, post_body, &b, &status);
        if (cc == CURLE_OK)
            r->cur = i;
        else
            snprintf(errstr, errstr_size, "schema registry %s: %s", r->shown[i],
                     curl_easy_strerror(cc));
    }
    *out = status > 0 && b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    free(b.data);
    return status;
}

/* "HTTP 404: Schema 7 not found (40403)" from the registry's error body. */
static void http_error(const producer_registry *r, long status, const json_t *j, char *errstr,
                       size_t errstr_size) {
    const char *msg = json_string_value(json_object_get(j, "message"));
    long long code = json_integer_value(json_object_get(j, "error_code"));
    snprintf(errstr, errstr_size, "schema registry %s: HTTP %ld%s%s", r->shown[r->cur], status,
             msg ? ": " : "", msg ? msg : "");
    if (code) {
        size_t n = strlen(errstr);
        snprintf(errstr + n, errstr_size - n, " (%lld)", code);
    }
}

/* "/subjects/<escaped subject><suffix>" (malloc'd). */
static char *subject_path(producer_registry *r, const char *subject, const char *suffix) {
    char *esc = curl_easy_escape(r->curl, subject, 0);
    char *path = util_malloc(strlen(esc) + strlen(suffix) + 16);
    sprintf(path, "/subjects/%s%s", esc, suffix);
    curl_free(esc);
    return path;
}

/* ==== The registry's calls ==== */

static int id_of(const producer_registry *r, const json_t *j, int32_t *id, char *errstr,
                 size_t errstr_size) {
    json_t *v = json_object_get(j, "id");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return snprintf(errstr, errstr_size, "schema registry %s: answer without a valid id",
                        r->shown[r->cur]),
               -1;
    *id = (int32_t)json_integer_value(v);
    return 0;
}

int producer_registry_subject_id(producer_registry *r, const char *subject, const char *schema_json,
                                 int32_t *id_out, char *errstr, size_t errstr_size) {
    json_t *req = json_pack("{s:s}", "schema", schema_json), *resp = NULL;
    char *post = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    /* POST .../versions registers (an equal schema gets its existing id);
     * POST /subjects/<s> only looks the schema up under the subject. */
    char *path = subject_path(r, subject, r->auto_register ? "/versions" : "");
    long status = request(r, path, post, &resp, errstr, errstr_size);
    free(path);
    free(post);
    int rc = -1;
    if (status == 200)
        rc = id_of(r, resp, id_out, errstr, errstr_size);
    else if (status > 0)
        http_error(r, status, resp, errstr, errstr_size);
    json_decref(resp);
    if (rc && status == 404 && !r->auto_register) {
        size_t n = strlen(errstr);
        snprintf(errstr + n, errstr_size - n,
                 "; subject %s lacks this schema and "
                 "schema.registry.auto.register is false",
                 subject);
    }
    return rc;
}

int producer_registry_topic_id(producer_registry *r, const char *topic, const char *schema_json,
                               int32_t *id_out, char *errstr, size_t errstr_size) {
    char *subject = util_malloc(strlen(topic) + sizeof("-value")), why[512];
    sprintf(subject, "%s-value", topic); /* TopicNameStrategy */
    int rc = producer_registry_subject_id(r, subject, schema_json, id_out, why, sizeof(why));
    if (rc) snprintf(errstr, errstr_size, "subject %s: %s", subject, why);
    free(subject);
    return rc;
}

int producer_registry_schema_by_id(producer_registry *r, int32_t id, char **json_out, char *errstr,
                                   size_t errstr_size) {
    char path[48];
    json_t *resp = NULL;
    snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
    long status = request(r, path, NULL, &resp, errstr, errstr_size);
    const char *schema = json_string_value(json_object_get(resp, "schema"));
    const char *type = json_string_value(json_object_get(resp, "schemaType"));
    int rc = -1; /* no answer, 5xx, 401/403 (a setting to fix): worth asking again */
    if (status == 200 && schema && (!type || !strcmp(type, "AVRO"))) {
        *json_out = util_strdup(schema);
        rc = 1;
    } else if (status == 200) {
        snprintf(errstr, errstr_size, "schema registry %s: id %d is %s, not an Avro schema",
                 r->shown[r->cur], (int)id, type ? type : "an answer without a schema");
        rc = 0;
    } else if (status > 0) {
        http_error(r, status, resp, errstr, errstr_size);
        if (status == 404) rc = 0;
    }
    json_decref(resp);
    return rc;
}

int producer_registry_fetch_cb(int32_t schema_id, void *opaque, char **json_out, char *errstr,
                               size_t errstr_size) {
    return producer_registry_schema_by_id(opaque, schema_id, json_out, errstr, errstr_size);
}
