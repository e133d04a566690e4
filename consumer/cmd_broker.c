/* `recstream broker`: a standalone embedded broker (librdkafka's mock
 * cluster) for local development and tests. It prints its bootstrap address
 * as the first line of stdout, so scripts can read it with `head -1`, and runs
 * until SIGINT or SIGTERM. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "producer.h"
#include "util.h"

#define DEFAULT_TOPICS "events,recommendations,events.dlq"
#define MAX_TOPICS     64

/* Splits "a,b,c" in place into names; returns the count or -1. */
static int split_topics(char *list, const char **names, int max) {
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t || n == max) return -1;
        names[n++] = t;
    }
    return n ? n : -1;
}

static void wait_for_signal(void) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    while (!util_stop_requested) nanosleep(&ts, NULL);
}

int cmd_broker(int argc, char **argv) {
    int64_t partitions = PRODUCER_BROKER_DEFAULT_PARTITIONS, brokers = 1;
    const char *topics = DEFAULT_TOPICS, *log_level = NULL;
    const util_opt opts[] = {
        {"partitions", 'p', UTIL_OPT_INT, &partitions, 1, 10000, .arg = "N",
         .help = "partitions per topic (default 4)"},
        {"topics", 't', UTIL_OPT_STRING, &topics, .arg = "LIST",
         .help = "comma-separated topics to create (default " DEFAULT_TOPICS ")"},
        {"broker-count", 0, UTIL_OPT_INT, &brokers, 1, 16, .arg = "N",
         .help = "brokers in the cluster (default 1)"},
        {"log-level", 0, UTIL_OPT_STRING, &log_level, .arg = "LEVEL",
         .help = "error, warn, info (default) or debug"},
    };
    const util_cli cli = {
        "recstream broker",
        "[OPTIONS]",
        "Runs an embedded Kafka broker (librdkafka's mock cluster) on 127.0.0.1 until "
        "SIGINT/SIGTERM.\nPrints its bootstrap address as the first line of stdout, e.g.\n"
        "  addr=$(recstream broker | head -1)   # or run it in the background\n"
        "  kcat -b $addr -L\n"
        "Limits: no SASL/TLS, no compaction, about 5 MiB or 100k message sets per partition.",
        opts,
        sizeof(opts) / sizeof(opts[0]),
        NULL,
        NULL};
    int n_pos = 0, rc = util_cli_parse(&cli, argc, argv, &n_pos);
    if (rc) return util_cli_free(), rc > 0 ? 0 : 2;
    if (n_pos) return util_cli_free(), util_cli_error(&cli, "unexpected argument '%s'", argv[1]);
    if (log_level) {
        int l = util_log_level_parse(log_level);
        if (l < 0)
            return util_cli_free(), util_cli_error(&cli, "--log-level: unknown '%s'", log_level);
        util_log_set_level((util_log_level)l);
    }
    char *list = util_strdup(topics);
    const char *names[MAX_TOPICS];
    int n = split_topics(list, names, MAX_TOPICS);
    if (n < 0) {
        free(list);
        util_cli_free();
        return util_cli_error(&cli, "--topics: expected up to %d comma-separated names",
                              MAX_TOPICS);
    }
    util_stop_on_signals();
    char err[512];
    producer_broker *b = producer_broker_start_cluster((int)brokers, (int)partitions, names,
                                                       (size_t)n, err, sizeof(err));
    if (!b) {
        log_error("%s", err);
        free(list);
        util_cli_free();
        return 1;
    }
    printf("%s\n", producer_broker_bootstraps(b));
    fflush(stdout);
    log_info("embedded broker on %s: %d topic(s) (%s) with %lld partition(s); stop with "
             "Ctrl-C or SIGTERM",
             producer_broker_bootstraps(b), n, topics, (long long)partitions);
    wait_for_signal();
    log_info("embedded broker stopping");
    producer_broker_stop(b);
    free(list);
    util_cli_free();
    return 0;
}
