/* Implicit-feedback ALS (Hu, Koren, Volinsky 2008) on OpenBLAS.
 *
 * Minimises  sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + lambda (|X|^2 + |Y|^2)
 * with p_ui = 1 where the user touched the item, c_ui = 1 + alpha r_ui (or
 * 1 + alpha log(1 + r/eps)), by alternating exact least-squares steps over
 * items and users. The trick that makes it tractable: Y^T C_u Y =
 * Y^T Y + Y_u^T (C_u - I) Y_u, so each row costs O(n_u f^2) (Cholesky) or,
 * with conjugate gradient warm-started from the previous factors as the
 * `implicit` library does, O(n_u f) plus a few products with the shared
 * Gram matrix. Rows are processed in fixed blocks so those Gram products
 * are one sgemm per block, and blocks are spread over threads; the split
 * depends only on the data, so results do not depend on the thread count. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "util.h"

#define ALS_BLOCK  256u       /* rows per task and per sgemm */
#define ALS_GATHER (1u << 20) /* floats of y rows copied per worker (4 MiB) */
#define CG_EPS     1e-20f     /* residual below which a row has converged */

void model_als_params_default(model_als_params *p) {
    memset(p, 0, sizeof(*p));
    p->factors = 64;
    p->iterations = 15;
    p->regularization = 0.01f;
    p->alpha = 40.0f;
    p->log_eps = 1.0f;
    p->solver = MODEL_SOLVER_CG;
    p->cg_steps = 3;
    p->seed = 42;
    p->threads = 0;
    p->type_weight[CODEC_EVENT_LISTEN] = 1.0f;
    p->type_weight[CODEC_EVENT_VIEW] = 0.5f;
    p->type_weight[CODEC_EVENT_LIKE] = 3.0f;
}

void model_als_free(model_als *als) {
    if (!als) return;
    free(als->user_factors);
    free(als->item_factors);
    memset(als, 0, sizeof(*als));
}

/* ==== Row kernels, compiled twice: AVX2+FMA when the CPU has it ==== */

#define ALS_CLONES MI_CLONES
#define ALS_INLINE MI_INLINE

/* r += sum_j (c_j - (c_j - 1) y_j.x) y_j : the sparse part of b - A x.
 * col NULL: the n rows y_j lie back to back at y (gathered). */
ALS_INLINE void row_residual(const uint32_t *col, const float *conf, uint64_t n, const float *y,
                             uint32_t f, const float *x, float *r) {
    for (uint64_t j = 0; j < n; j++) {
        const float *yj = y + (col ? (size_t)col[j] : j) * f;
        axpy8(conf[j] - (conf[j] - 1.0f) * dot8(yj, x, f), yj, r, f);
    }
}

/* ap += sum_j (c_j - 1) (y_j.p) y_j : the sparse part of A p. */
ALS_INLINE void row_apply(const uint32_t *col, const float *conf, uint64_t n, const float *y,
                          uint32_t f, const float *p, float *ap) {
    for (uint64_t j = 0; j < n; j++) {
        const float *yj = y + (col ? (size_t)col[j] : j) * f;
        axpy8((conf[j] - 1.0f) * dot8(yj, p, f), yj, ap, f);
    }
}

/* sum_j (c_j - 1)(x.y_j)^2 - 2 c_j x.y_j + c_j : the observed cells' part
 * of the loss beyond x^T Y^T Y x. */
ALS_INLINE double row_loss(const uint32_t *col, const float *conf, uint64_t n, const float *y,
                           uint32_t f, const float *x) {
    double s = 0;
    for (uint64_t j = 0; j < n; j++) {
        double d = dot8(y + (size_t)col[j] * f, x, f);
        s += (conf[j] - 1.0) * d * d - 2.0 * conf[j] * d + conf[j];
    }
    return s;
}

/* ==== One half-step: solve every row of x against fixed y ==== */

typedef struct solve_ctx {
    const mi_csr *m; /* rows of x against columns = rows of y */
    float *x;
    const float *y;
    const float *gram; /* y^T y + lambda I */
    uint32_t f, cg_steps;
    model_solver solver;
    float *scratch;    /* per worker: 3 blocks of f floats + an f x f */
    float *gather;     /* per worker: ALS_GATHER floats of copied y rows */
    double *loss_part; /* per task, for the loss pass */
} solve_ctx;

static float *worker_scratch(const solve_ctx *c, int worker) {
    size_t per = 3 * (size_t)ALS_BLOCK * c->f + (size_t)c->f * c->f + ALS_BLOCK;
    return c->scratch + (size_t)worker * per;
}

static void solve_cholesky_row(const solve_ctx *c, uint32_t row, float *a) {
    uint32_t f = c->f;
    const uint64_t lo = c->m->ptr[row], n = c->m->ptr[row + 1] - lo;
    float *b = c->x + (size_t)row * f;
    memcpy(a, c->gram, (size_t)f * f * sizeof(float));
    memset(b, 0, f * sizeof(float));
    for (uint64_t j = 0; j < n; j++) {
        const float *yj = c->y + (size_t)c->m->col[lo + j] * f;
        float cj = c->m->val[lo + j];
        for (uint32_t r = 0; r < f; r++) {
            float s = (cj - 1.0f) * yj[r];
            for (uint32_t k = 0; k <= r; k++) a[(size_t)r * f + k] += s * yj[k];
            b[r] += cj * yj[r];
        }
    }
    if (mi_cholesky_solve(a, b, f, NULL) != 0) memset(b, 0, f * sizeof(float));
}

/* Conjugate gradient for a block of rows at once: the Gram products of
 * the whole block are one sgemm, the sparse parts row by row. */
/* Copies the y rows of as many of the block's rows as fit into buf, so
 * that the CG steps read them from cache instead of gathering scattered
 * rows from memory again at every step (the item side's rows are users,
 * far more than fit in cache). Copying changes no arithmetic. */
ALS_INLINE void gather_rows(const solve_ctx *c, uint32_t lo, uint32_t rows, float *buf,
                            const float **ys, const uint32_t **cols) {
    const mi_csr *m = c->m;
    size_t used = 0;
    for (uint32_t i = 0; i < rows; i++) {
        uint64_t s = m->ptr[lo + i], n = m->ptr[lo + i + 1] - s;
        if (used + n * c->f > ALS_GATHER) {
            ys[i] = c->y;
            cols[i] = m->col + s;
            continue;
        }
        for (uint64_t j = 0; j < n; j++)
            memcpy(buf + used + j * c->f, c->y + (size_t)m->col[s + j] * c->f,
                   c->f * sizeof(float));
        ys[i] = buf + used;
        cols[i] = NULL;
        used += n * c->f;
    }
}

/* One CG step's update of row i once ap holds A p. */
ALS_INLINE void cg_update(float *x, float *r, float *p, const float *ap, float *rs, uint32_t f) {
    float pap = dot8(p, ap, f);
    if (!(pap > 0)) {
        *rs = 0;
        return;
    }
    float a = *rs / pap;
    axpy8(a, p, x, f);
    axpy8(-a, ap, r, f);
    float rsnew = dot8(r, r, f);
    if (rsnew < CG_EPS) {
        *rs = 0;
        return;
    }
    float beta = rsnew / *rs;
    for (uint32_t k = 0; k < f; k++) p[k] = r[k] + beta * p[k];
    *rs = rsnew;
}

/* Conjugate gradient for a block of rows at once: the Gram products of
 * the whole block are one sgemm, the sparse parts row by row. */
ALS_CLONES static void solve_cg_block(const solve_ctx *c, uint32_t lo, uint32_t rows, float *buf,
                                      float *gbuf) {
    uint32_t f = c->f;
    float *r = buf, *p = r + (size_t)ALS_BLOCK * f, *ap = p + (size_t)ALS_BLOCK * f;
    float *rs = ap + (size_t)ALS_BLOCK * f + (size_t)f * f; /* rsold per row; 0 = done */
    float *x = c->x + (size_t)lo * f;
    const float *ys[ALS_BLOCK];
    const uint32_t *cols[ALS_BLOCK];
    gather_rows(c, lo, rows, gbuf, ys, cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)f, (int)f, -1.0f, x,
                (int)f, c->gram, (int)f, 0.0f, r, (int)f);
    for (uint32_t i = 0; i < rows; i++) {
        uint64_t s = c->m->ptr[lo + i], n = c->m->ptr[lo + i + 1] - s;
        row_residual(cols[i], c->m->val + s, n, ys[i], f, x + (size_t)i * f, r + (size_t)i * f);
        rs[i] = dot8(r + (size_t)i * f, r + (size_t)i * f, f);
        if (rs[i] < CG_EPS) rs[i] = 0;
    }
    memcpy(p, r, (size_t)rows * f * sizeof(float));
    for (uint32_t step = 0; step < c->cg_steps; step++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)f, (int)f, 1.0f, p,
                    (int)f, c->gram, (int)f, 0.0f, ap, (int)f);
        for (uint32_t i = 0; i < rows; i++) {
            if (rs[i] == 0) continue;
            uint64_t s = c->m->ptr[lo + i], n = c->m->ptr[lo + i + 1] - s;
            float *pi = p + (size_t)i * f, *api = ap + (size_t)i * f;
            row_apply(cols[i], c->m->val + s, n, ys[i], f, pi, api);
            cg_update(x + (size_t)i * f, r + (size_t)i * f, pi, api, &rs[i], f);
        }
    }
}

static void solve_task(size_t task, int worker, void *arg) {
    const solve_ctx *c = arg;
    uint32_t lo = (uint32_t)task * ALS_BLOCK;
    uint32_t rows = c->m->rows - lo < ALS_BLOCK ? c->m->rows - lo : ALS_BLOCK;
    float *buf = worker_scratch(c, worker);
    if (c->solver == MODEL_SOLVER_CHOLESKY) {
        float *a = buf + 3 * (size_t)ALS_BLOCK * c->f;
        for (uint32_t i = 0; i < rows; i++) solve_cholesky_row(c, lo + i, a);
    } else {
        solve_cg_block(c, lo, rows, buf, c->gather + (size_t)worker * ALS_GATHER);
    }
}

/* The loss of the current factors, per block: x^T (Y^T Y) x by one sgemm
 * plus the observed cells; gram here is Y^T Y without lambda. */
ALS_CLONES static void loss_task(size_t task, int worker, void *arg) {
    const solve_ctx *c = arg;
    uint32_t f = c->f, lo = (uint32_t)task * ALS_BLOCK;
    uint32_t rows = c->m->rows - lo < ALS_BLOCK ? c->m->rows - lo : ALS_BLOCK;
    float *t = worker_scratch(c, worker);
    const float *x = c->x + (size_t)lo * f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)f, (int)f, 1.0f, x,
                (int)f, c->gram, (int)f, 0.0f, t, (int)f);
    double s = 0;
    for (uint32_t i = 0; i < rows; i++) {
        const float *xi = x + (size_t)i * f;
        uint64_t b = c->m->ptr[lo + i], n = c->m->ptr[lo + i + 1] - b;
        s += dot8(t + (size_t)i * f, xi, f);
        s += row_loss(c->m->col + b, c->m->val + b, n, c->y, f, xi);
    }
    c->loss_part[task] = s;
}

/* ==== Training ==== */

static uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform [0, 0.01) from (seed, matrix, cell) alone: the same start on
 * every run and thread count (the scale `implicit` uses). */
static void init_factors(float *a, size_t cells, uint64_t seed, uint64_t which) {
    uint64_t base = splitmix64(seed ^ (which * 0x5851f42d4c957f2dULL));
    for (size_t i = 0; i < cells; i++)
        a[i] = (float)(splitmix64(base + i) >> 40) * (0.01f / 16777216.0f);
}

static double sum_squares(const float *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

static int check_params(const model_dataset *ds, const model_als_params *p, char *errstr,
                        size_t errstr_size) {
    const char *why = NULL;
    if (p->factors < 1 || p->factors > 1024)
        why = "factors must be in 1..1024";
    else if (p->solver == MODEL_SOLVER_CG && p->cg_steps < 1)
        why = "cg_steps must be >= 1";
    else if (!(p->regularization >= 0) || !(p->alpha >= 0))
        why = "regularization and alpha must be >= 0";
    else if (p->solver != MODEL_SOLVER_CG && p->solver != MODEL_SOLVER_CHOLESKY)
        why = "unknown solver";
    else if (!ds || ds->n == 0)
        why = "no interactions to train on";
    if (!why) return 0;
    snprintf(errstr, errstr_size, "als: %s", why);
    return -1;
}

typedef struct als_run {
    const model_als_params *p;
    mi_csr by_user, by_item;
    float *gram;
    float *scratch, *gather;
    double *loss_part;
    int threads;
} als_run;

static void half_step(als_run *run, const mi_csr *m, float *x, const float *y, uint32_t n_y) {
    uint32_t f = run->p->factors;
    mi_gram(y, n_y, f, run->threads, run->gram);
    for (uint32_t i = 0; i < f; i++) run->gram[(size_t)i * f + i] += run->p->regularization;
    solve_ctx c = {
        m, x, y, run->gram, f, run->p->cg_steps, run->p->solver, run->scratch, run->gather, NULL};
    mi_parallel_for(run->threads, (m->rows + ALS_BLOCK - 1) / ALS_BLOCK, solve_task, &c);
}

/* The objective normalised as `implicit` does (by total confidence over
 * all cells), so values are comparable across data sizes. */
static double als_loss(als_run *run, const model_als *out) {
    uint32_t f = out->factors;
    mi_gram(out->item_factors, out->n_items, f, run->threads, run->gram);
    solve_ctx c = {&run->by_user,
                   out->user_factors,
                   out->item_factors,
                   run->gram,
                   f,
                   0,
                   MODEL_SOLVER_CG,
                   run->scratch,
                   NULL,
                   run->loss_part};
    size_t tasks = (out->n_users + ALS_BLOCK - 1) / ALS_BLOCK;
    mi_parallel_for(run->threads, tasks, loss_task, &c);
    double loss = 0, total_conf = 0;
    for (size_t t = 0; t < tasks; t++) loss += run->loss_part[t];
    uint64_t nnz = run->by_user.ptr[out->n_users];
    for (uint64_t i = 0; i < nnz; i++) total_conf += run->by_user.val[i];
    loss += run->p->regularization * (sum_squares(out->user_factors, (size_t)out->n_users * f) +
                                      sum_squares(out->item_factors, (size_t)out->n_items * f));
    return loss / (total_conf + (double)out->n_users * out->n_items - (double)nnz);
}

int model_als_train(const model_dataset *ds, const model_als_params *p, model_progress_cb progress,
                    void *opaque, model_als *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    if (check_params(ds, p, errstr, errstr_size) != 0) return -1;
    als_run run = {.p = p, .threads = mi_threads(p->threads)};
    mi_csr_from_dataset(ds, p->type_weight, &run.by_user);
    uint64_t nnz = run.by_user.ptr[run.by_user.rows];
    for (uint64_t i = 0; i < nnz; i++) run.by_user.val[i] = mi_confidence(p, run.by_user.val[i]);
    mi_csr_transpose(&run.by_user, &run.by_item);
    uint32_t f = p->factors;
    out->n_users = run.by_user.rows;
    out->n_items = run.by_user.cols;
    out->factors = f;
    out->user_factors = util_malloc((size_t)out->n_users * f * sizeof(float));
    out->item_factors = util_malloc((size_t)out->n_items * f * sizeof(float));
    init_factors(out->user_factors, (size_t)out->n_users * f, p->seed, 1);
    init_factors(out->item_factors, (size_t)out->n_items * f, p->seed, 2);
    size_t per = 3 * (size_t)ALS_BLOCK * f + (size_t)f * f + ALS_BLOCK;
    run.scratch = util_malloc((size_t)run.threads * per * sizeof(float));
    if (p->solver == MODEL_SOLVER_CG)
        run.gather = util_malloc((size_t)run.threads * ALS_GATHER * sizeof(float));
    run.gram = util_malloc((size_t)f * f * sizeof(float));
    run.loss_part = util_malloc(((out->n_users + ALS_BLOCK - 1) / ALS_BLOCK + 1) * sizeof(double));
    int rc = 0;
    for (uint32_t it = 0; it < p->iterations; it++) {
        int64_t t0 = util_mono_ns();
        /* Items first, then users: the user factors returned are then the
         * exact (or CG) solve against the item factors returned, which is
         * what fold-in reproduces for a new user. */
        half_step(&run, &run.by_item, out->item_factors, out->user_factors, out->n_users);
        half_step(&run, &run.by_user, out->user_factors, out->item_factors, out->n_items);
        /* The time reported is the training's; the loss is a diagnostic. */
        double secs = (double)(util_mono_ns() - t0) / 1e9;
        double loss = als_loss(&run, out);
        if (!isfinite(loss)) {
            snprintf(errstr, errstr_size, "als: loss is not finite at iteration %u", it + 1);
            rc = -1;
            break;
        }
        if (progress) progress(it + 1, loss, secs, opaque);
    }
    free(run.scratch);
    free(run.gather);
    free(run.gram);
    free(run.loss_part);
    mi_csr_free(&run.by_user);
    mi_csr_free(&run.by_item);
    if (rc != 0) model_als_free(out);
    return rc;
}
