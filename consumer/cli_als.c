/* cli_als: the ALS flags of `train` and `eval`, written once: the same
 * names, ranges and defaults in both, turned into model_als_params. */
#include <string.h>

#include "commands.h"

size_t cmd_als_opts(cmd_als_flags *a, util_opt *out) {
    const util_opt rows[] = {
        {"factors", 0, UTIL_OPT_INT, &a->factors, 1, 1024, .arg = "N", .help = "ALS factors (64)"},
        {"iterations", 0, UTIL_OPT_INT, &a->iterations, 1, 1000, .arg = "N",
         .help = "ALS iterations (15)"},
        {"regularization", 0, UTIL_OPT_DOUBLE, &a->regularization, .dmin = 0, .dmax = 1e6,
         .arg = "L", .help = "ALS lambda (0.01)"},
        {"alpha", 0, UTIL_OPT_DOUBLE, &a->alpha, .dmin = 0, .dmax = 1e6, .arg = "A",
         .help = "ALS confidence 1 + alpha * weight (40)"},
        {"log-confidence", 0, UTIL_OPT_FLAG, &a->log_confidence,
         .help = "confidence 1 + alpha * log(1 + weight / eps)"},
        {"log-eps", 0, UTIL_OPT_DOUBLE, &a->log_eps, .dmin = 1e-9, .dmax = 1e9, .arg = "E",
         .help = "eps of --log-confidence (1)"},
        {"solver", 0, UTIL_OPT_STRING, &a->solver, .arg = "S", .help = "cg (default) or cholesky"},
        {"cg-steps", 0, UTIL_OPT_INT, &a->cg_steps, 1, 100, .arg = "N",
         .help = "conjugate-gradient steps per solve (3)"},
    };
    _Static_assert(sizeof(rows) / sizeof(*rows) == CMD_ALS_OPTS, "CMD_ALS_OPTS counts the rows");
    return util_opts_add(out, 0, rows, CMD_ALS_OPTS);
}

int cmd_als_params(const util_cli *cli, const cmd_als_flags *f, model_als_params *a) {
    model_als_params_default(a);
    a->factors = (uint32_t)f->factors;
    a->iterations = (uint32_t)f->iterations;
    a->regularization = (float)f->regularization;
    a->alpha = (float)f->alpha;
    a->log_confidence = f->log_confidence;
    a->log_eps = (float)f->log_eps;
    a->cg_steps = (uint32_t)f->cg_steps;
    if (!strcmp(f->solver, "cg"))
        a->solver = MODEL_SOLVER_CG;
    else if (!strcmp(f->solver, "cholesky"))
        a->solver = MODEL_SOLVER_CHOLESKY;
    else
        return util_cli_error(cli, "--solver: expected cg or cholesky, not '%s'", f->solver), -1;
    return 0;
}
