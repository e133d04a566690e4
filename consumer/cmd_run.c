/* `recstream run`: the stream processor as a command. Parses the shared
 * processor flags (run_config.c), starts the embedded broker when no
 * --brokers is given, turns SIGINT/SIGTERM into a clean stop, and maps the
 * outcome to exit codes: 0 clean stop, 1 run-time failure, 2 bad flags. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "run.h"

static const char about[] =
    "Consumes user events, keeps each user's recent history in RocksDB, recomputes their\n"
    "online recommendations on every event, blends them with offline and popular lists, and\n"
    "publishes each touched user's list to the output topic, keyed by user id. Bad events go\n"
    "to the dead-letter topic with the reason in headers. State and consumed offsets are\n"
    "written in one RocksDB batch, so every event is applied exactly once. The model and\n"
    "offline files are reloaded when they change on disk. Without --brokers an embedded\n"
    "broker is started and its address printed as the first line of stdout.\n"
    "Example: recstream run --brokers localhost:9092 --model model.bin --offline offline.avro";

/* The embedded broker, with the three topics created. */
static producer_broker *start_broker(const run_config *cfg) {
    const char *topics[] = {cfg->events_topic, cfg->output_topic, cfg->dlq_topic};
    char err[512];
    producer_broker *b =
        producer_broker_start(PRODUCER_BROKER_DEFAULT_PARTITIONS, topics, 3, err, sizeof(err));
    if (!b) {
        log_error("run: embedded broker: %s", err);
        return NULL;
    }
    printf("%s\n", producer_broker_bootstraps(b));
    fflush(stdout);
    log_info("run: embedded broker at %s (topics %s, %s, %s)", producer_broker_bootstraps(b),
             topics[0], topics[1], topics[2]);
    return b;
}

static int run_parsed(run_cli *rc) {
    producer_broker *broker = NULL;
    if (!rc->cfg.brokers) {
        if (!(broker = start_broker(&rc->cfg))) return 1;
        rc->cfg.brokers = producer_broker_bootstraps(broker);
    }
    util_stop_on_signals();
    char err[1024] = "";
    run_stats st;
    int r = run_processor(&rc->cfg, &util_stop_requested, &st, err, sizeof(err));
    if (r) log_error("run: %s", err);
    producer_broker_stop(broker);
    return r ? 1 : 0;
}

/* Checks after parsing: 0 to run, 1 when something was printed (exit 0),
 * -1 after one error line (exit 2). */
static int check(run_cli *rc, const util_cli *cli, int n_pos, char **argv) {
    if (n_pos) return util_cli_error(cli, "unexpected argument '%s'", argv[1]), -1;
    if (producer_kconf_show(rc->kconf, stdout)) return 1;
    if (run_cli_finish(rc, cli)) return -1;
    if (!rc->cfg.model_path)
        return util_cli_error(cli, "--model FILE is required (train one with `recstream train`)"),
               -1;
    return 0;
}

int cmd_run(int argc, char **argv) {
    static run_cli rc; /* the config points into it; static keeps it off the stack */
    run_cli_init(&rc);
    util_opt opts[RUN_CLI_MAX_OPTS];
    size_t n = run_cli_opts(&rc, opts, RUN_CLI_MAX_OPTS);
    const util_cli cli = {"recstream run",         "[OPTIONS]", about, opts, n,
                          producer_kconf_file_key, rc.kconf};
    int n_pos = 0, code = util_cli_parse(&cli, argc, argv, &n_pos);
    if (code == 0) code = check(&rc, &cli, n_pos, argv);
    int exit_code = code > 0 ? 0 : code < 0 ? 2 : run_parsed(&rc);
    run_cli_free(&rc);
    util_cli_free();
    return exit_code;
}
