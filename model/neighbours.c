/* The item neighbour index: the top-K cosine neighbours of every item.
 * Factors are normalised once; then each task multiplies a block of rows by
 * a chunk of all items with one sgemm and keeps each row's K best in a
 * bounded heap, so memory stays at one block x chunk per thread and the
 * arithmetic runs at BLAS speed instead of item-by-item loops. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "util.h"

#define NB_ROWS 256u  /* rows per task */
#define NB_COLS 8192u /* items per sgemm */

typedef struct nb_ctx {
    const float *unit; /* normalised factors */
    uint32_t n, f, k;
    float *scratch; /* per worker: NB_ROWS x NB_COLS scores + heaps */
    uint32_t *nbr_idx;
    float *nbr_sim;
} nb_ctx;

static size_t scratch_floats(uint32_t k) {
    return (size_t)NB_ROWS * NB_COLS + 2 * (size_t)NB_ROWS * k;
}

static void nb_scan(mi_topk *t, const float *s, uint32_t cols, uint32_t c0, uint32_t self) {
    float floor = mi_topk_floor(t);
    for (uint32_t j = 0; j < cols; j++) {
        if (s[j] < floor || c0 + j == self) continue;
        mi_topk_push(t, s[j], c0 + j);
        floor = mi_topk_floor(t);
    }
}

static void nb_task(size_t task, int worker, void *arg) {
    const nb_ctx *c = arg;
    uint32_t r0 = (uint32_t)task * NB_ROWS;
    uint32_t rows = c->n - r0 < NB_ROWS ? c->n - r0 : NB_ROWS;
    float *s = c->scratch + (size_t)worker * scratch_floats(c->k);
    float *hs = s + (size_t)NB_ROWS * NB_COLS;
    uint32_t *hi = (uint32_t *)(hs + (size_t)NB_ROWS * c->k);
    mi_topk heaps[NB_ROWS];
    for (uint32_t i = 0; i < rows; i++)
        mi_topk_init(&heaps[i], c->k, hs + (size_t)i * c->k, hi + (size_t)i * c->k);
    for (uint32_t c0 = 0; c0 < c->n; c0 += NB_COLS) {
        uint32_t cols = c->n - c0 < NB_COLS ? c->n - c0 : NB_COLS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)c->f, 1.0f,
                    c->unit + (size_t)r0 * c->f, (int)c->f, c->unit + (size_t)c0 * c->f, (int)c->f,
                    0.0f, s, (int)cols);
        for (uint32_t i = 0; i < rows; i++)
            nb_scan(&heaps[i], s + (size_t)i * cols, cols, c0, r0 + i);
    }
    for (uint32_t i = 0; i < rows; i++) {
        uint32_t got = mi_topk_finish(&heaps[i]);
        uint32_t *oi = c->nbr_idx + (size_t)(r0 + i) * c->k;
        float *os = c->nbr_sim + (size_t)(r0 + i) * c->k;
        for (uint32_t j = 0; j < c->k; j++) {
            oi[j] = j < got ? heaps[i].idx[j] : MODEL_NONE;
            os[j] = j < got ? heaps[i].score[j] : 0.0f;
        }
    }
}

int model_neighbours_build(const float *item_factors, uint32_t n_items, uint32_t factors,
                           uint32_t k, int threads, uint32_t *nbr_idx, float *nbr_sim, char *errstr,
                           size_t errstr_size) {
    if (factors == 0 || k > 100000) {
        snprintf(errstr, errstr_size, "neighbours: bad sizes (factors %u, k %u)", factors, k);
        return -1;
    }
    if (n_items == 0 || k == 0) return 0;
    float *unit = util_malloc((size_t)n_items * factors * sizeof(float));
    for (uint32_t i = 0; i < n_items; i++) {
        const float *v = item_factors + (size_t)i * factors;
        float *u = unit + (size_t)i * factors;
        double norm = 0;
        for (uint32_t j = 0; j < factors; j++) norm += (double)v[j] * v[j];
        /* A zero vector has no direction: similarity 0 to everything. */
        float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
        for (uint32_t j = 0; j < factors; j++) u[j] = v[j] * inv;
    }
    int t = mi_threads(threads);
    nb_ctx c = {
        unit,    n_items, factors, k, util_malloc((size_t)t * scratch_floats(k) * sizeof(float)),
        nbr_idx, nbr_sim};
    mi_parallel_for(t, (n_items + NB_ROWS - 1) / NB_ROWS, nb_task, &c);
    free(c.scratch);
    free(unit);
    return 0;
}
