/* recstream: the command dispatcher. Each command lives in its own file and
 * parses its own flags; this file only picks one. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "producer.h"
#include "util.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "the stream processor: events in, recommendations out"},
    {"demo", cmd_demo, "the whole system on the embedded broker in about a minute"},
    {"produce", producer_cmd_produce, "publish events from files or a synthetic generator"},
    {"train", cmd_train, "train ALS; write the model and offline lists"},
    {"eval", cmd_eval, "offline evaluation beside a popularity baseline"},
    {"bench", cmd_bench, "throughput, latency and memory on the embedded broker"},
    {"inspect", cmd_inspect, "a user's state, stored offsets, a model, an item's neighbours"},
    {"broker", cmd_broker, "a standalone embedded Kafka broker for local development"},
    {"ab-report", cmd_ab_report, "A/B results from a running processor's metrics"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(*commands))

static void usage(FILE *out) {
    fprintf(out,
            "recstream %s: real-time recommendations from a Kafka event stream\n\n"
            "Usage: recstream COMMAND [OPTIONS]\n\nCommands:\n",
            RECSTREAM_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`recstream COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("recstream %s\n", RECSTREAM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "recstream: unknown command '%s' (see recstream --help)\n", name);
    return 2;
}
