/* http: the metrics and health endpoint on libmicrohttpd. One internal
 * polling thread answers GET /metrics (Prometheus text format 0.0.4),
 * /healthz (the processing loop beat recently) and /readyz (partitions
 * assigned and a model loaded); the processing thread is never involved,
 * since every answer is read from the registry's atomics. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "metrics.h"
#include "util.h"

struct metrics_http {
    struct MHD_Daemon *daemon;
    metrics *m;
    int port;
};

#define CT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT       "text/plain; charset=utf-8"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len) {
    /* body is malloc'd; libmicrohttpd frees it after sending. */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text) {
    size_t n = strlen(text);
    char *body = util_malloc(n + 2);
    memcpy(body, text, n);
    body[n] = '\n';
    body[n + 1] = 0;
    return reply(conn, status, CT_TEXT, body, n + 1);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    metrics_http *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET");
    if (!strcmp(url, "/metrics")) {
        size_t len;
        char *body = metrics_render(h->m, &len);
        return reply(conn, MHD_HTTP_OK, CT_PROMETHEUS, body, len);
    }
    if (!strcmp(url, "/healthz")) {
        int alive = metrics_alive(h->m);
        return reply_text(conn, alive ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                          alive ? "ok" : "processing loop stalled");
    }
    if (!strcmp(url, "/readyz")) {
        char why[128];
        int ready = metrics_ready(h->m, why, sizeof(why));
        return reply_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
    }
    if (!strcmp(url, "/"))
        return reply_text(conn, MHD_HTTP_OK, "recstream: /metrics /healthz /readyz");
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz");
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    log_warn("metrics http: %s", line);
}

/* Fills addr from "127.0.0.1", "0.0.0.0", "::1" or "::"; 0 or -1. */
static int parse_bind(const char *bind_addr, int port, struct sockaddr_storage *ss,
                      unsigned *flags) {
    memset(ss, 0, sizeof(*ss));
    if (strchr(bind_addr, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *flags |= MHD_USE_IPv6;
        return inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1 ? 0 : -1;
}

metrics_http *metrics_http_start(metrics *m, int port, const char *bind_addr, char *errstr,
                                 size_t errstr_size) {
    if (!bind_addr || !*bind_addr) bind_addr = "127.0.0.1";
    if (port < 0 || port > 65535) {
        snprintf(errstr, errstr_size, "metrics port %d out of range", port);
        return NULL;
    }
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (parse_bind(bind_addr, port, &ss, &flags)) {
        snprintf(errstr, errstr_size, "metrics bind address '%s' is not an IP address", bind_addr);
        return NULL;
    }
    metrics_http *h = util_calloc(1, sizeof(*h));
    h->m = m;
    /* The logger goes first so that every later option's error reaches it. */
    h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(errstr, errstr_size, "cannot listen on %s:%d for metrics (in use?)", bind_addr,
                 port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? info->port : port;
    return h;
}

int metrics_http_port(const metrics_http *h) {
    return h ? h->port : 0;
}

void metrics_http_stop(metrics_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
