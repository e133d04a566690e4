/* Internals shared by the model's training-side files (ALS, neighbours,
 * offline lists, fold-in): a fixed-split thread pool, small dense kernels,
 * a bounded top-k selector and the interaction matrix in CSR form. Not part
 * of the public API; nothing outside model/ includes this. */
#ifndef RECSTREAM_MODEL_INT_H
#define RECSTREAM_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Hot kernels are compiled twice, AVX2+FMA and plain, and picked when the
 * program loads (an ifunc). A ThreadSanitizer build keeps the plain one:
 * TSan cannot run an ifunc resolver, which runs before its runtime. */
#ifdef RECSTREAM_NO_CLONES
#define MI_CLONES
#else
#define MI_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#define MI_INLINE static inline __attribute__((always_inline))

/* Eight lanes by GCC vector extensions: AVX in the avx2 clone, two SSE
 * halves in the default one, the same IEEE results either way. */
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

MI_INLINE float dot8(const float *a, const float *b, uint32_t f) {
    v8f acc0 = {0}, acc1 = {0};
    uint32_t i = 0;
    for (; i + 16 <= f; i += 16) {
        acc0 += *(const v8f *)(a + i) * *(const v8f *)(b + i);
        acc1 += *(const v8f *)(a + i + 8) * *(const v8f *)(b + i + 8);
    }
    if (i + 8 <= f) {
        acc0 += *(const v8f *)(a + i) * *(const v8f *)(b + i);
        i += 8;
    }
    v8f acc = acc0 + acc1;
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < f; i++) s += a[i] * b[i];
    return s;
}

MI_INLINE void axpy8(float a, const float *x, float *y, uint32_t f) {
    uint32_t i = 0;
    for (; i + 8 <= f; i += 8) *(v8f *)(y + i) += a * *(const v8f *)(x + i);
    for (; i < f; i++) y[i] += a * x[i];
}

/* ---- Threads. Work is cut into tasks by the caller, never by the thread
 * count, so results do not depend on how many threads ran them. */
typedef void (*mi_task_fn)(size_t task, int worker, void *ctx);
int mi_threads(int requested); /* 0: all cores */
/* Runs fn(task) for task in [0, n_tasks) on up to `threads` threads, with
 * OpenBLAS kept single-threaded meanwhile (so two workers' sgemm calls do
 * not each spawn a pool and oversubscribe the cores). */
void mi_parallel_for(int threads, size_t n_tasks, mi_task_fn fn, void *ctx);

/* ---- Dense kernels (f is small: 8..256). */
float mi_dot(const float *a, const float *b, uint32_t f);
void mi_axpy(float a, const float *x, float *y, uint32_t f);
/* Solves a x = b into b for the f x f row-major SPD matrix a (lower
 * triangle read) by Cholesky in double, with vector inner products (fold-in
 * runs it per event). scratch holds f * f + f doubles, or is NULL (then it
 * is allocated). Returns -1 when a is not positive definite. */
int mi_cholesky_solve(const float *a, float *b, uint32_t f, double *scratch);
/* out = sum over rows of y^T y (f x f, full symmetric), deterministic for
 * any thread count: fixed chunks summed in order. */
void mi_gram(const float *y, uint32_t n, uint32_t f, int threads, float *out);

/* ---- Bounded top-k: keeps the k best (score desc, index asc) seen. */
typedef struct mi_topk {
    uint32_t k, n;
    float *score;
    uint32_t *idx;
} mi_topk;
void mi_topk_init(mi_topk *t, uint32_t k, float *score_buf, uint32_t *idx_buf);
static inline int mi_topk_better(float s1, uint32_t i1, float s2, uint32_t i2) {
    return s1 > s2 || (s1 == s2 && i1 < i2);
}
void mi_topk_push(mi_topk *t, float s, uint32_t i);
/* The threshold a new candidate must beat (or -inf while not full). */
static inline float mi_topk_floor(const mi_topk *t) {
    return t->n < t->k ? -__builtin_inff() : t->score[0];
}
/* Sorts best first into the buffers; returns the count. */
uint32_t mi_topk_finish(mi_topk *t);

/* ---- The interaction matrix. */
typedef struct mi_csr {
    uint32_t rows, cols;
    uint64_t *ptr; /* rows + 1 */
    uint32_t *col; /* nnz, sorted within a row */
    float *val;    /* summed weight r_ui, > 0 */
} mi_csr;

/* Weight of one interaction: its explicit weight, else its type's. */
float mi_interaction_weight(const model_interaction *r, const float type_weight[]);
/* Users x items, duplicate pairs summed, pairs with total weight <= 0
 * dropped. */
void mi_csr_from_dataset(const model_dataset *ds, const float type_weight[], mi_csr *out);
void mi_csr_transpose(const mi_csr *a, mi_csr *out);
void mi_csr_free(mi_csr *a);
/* Confidence of a summed weight under the params (1 + alpha r, or log). */
float mi_confidence(const model_als_params *p, float r);

/* ---- Files: write to path.tmp, fsync, rename over path, fsync the
 * directory; readers see the old file or the new one. */
typedef struct mi_part {
    const void *data;
    size_t size;
} mi_part;
/* Writes the parts back to back (so a large body need not be copied
 * behind its header first). */
int model_write_atomic(const char *path, const mi_part *parts, size_t n_parts, char *errstr,
                       size_t errstr_size);

#endif
