/* The `recstream COMMAND` entry points. Each takes the arguments after the
 * command name (argv[0] is the command) and returns the process exit code:
 * 0 success, 1 failure at run time, 2 a bad flag or configuration. */
#ifndef RECSTREAM_COMMANDS_H
#define RECSTREAM_COMMANDS_H

#include "model.h"
#include "util.h"

int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_ab_report(int argc, char **argv);

/* ==== The ALS flags of train and eval (cli_als.c) ==== */

typedef struct cmd_als_flags {
    const char *solver;
    int log_confidence;
    int64_t factors, iterations, cg_steps;
    double regularization, alpha, log_eps;
} cmd_als_flags;
#define CMD_ALS_FLAGS_INIT                                                                         \
    {                                                                                              \
        .solver = "cg", .factors = 64, .iterations = 15, .cg_steps = 3, .regularization = 0.01,    \
        .alpha = 40, .log_eps = 1                                                                  \
    }
#define CMD_ALS_OPTS 8

/* --factors --iterations --regularization --alpha --log-confidence --log-eps
 * --solver --cg-steps, written into out; returns how many. */
size_t cmd_als_opts(cmd_als_flags *a, util_opt *out);
/* The defaults of model_als_params with the flags applied (seed, threads
 * and type weights are the command's). Returns 0, or -1 after one
 * util_cli_error line. */
int cmd_als_params(const util_cli *cli, const cmd_als_flags *f, model_als_params *a);

#endif
