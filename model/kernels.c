/* The model's shared machinery: a thread fan-out with a fixed task split,
 * the small dense kernels of ALS and fold-in, a bounded top-k heap and the
 * CSR interaction matrix. Kept in one place so that ALS, neighbours, offline
 * lists and fold-in compute the same thing the same way. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_int.h"
#include "util.h"

/* ==== Threads ==== */

int mi_threads(int requested) {
    if (requested > 0) return requested > 64 ? 64 : requested;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

typedef struct pf_job {
    mi_task_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;
} pf_job;

typedef struct pf_worker {
    pf_job *job;
    int id;
} pf_worker;

static void *pf_run(void *arg) {
    pf_worker *w = arg;
    for (;;) {
        size_t t = atomic_fetch_add(&w->job->next, 1);
        if (t >= w->job->n_tasks) break;
        w->job->fn(t, w->id, w->job->ctx);
    }
    return NULL;
}

void mi_parallel_for(int threads, size_t n_tasks, mi_task_fn fn, void *ctx) {
    threads = mi_threads(threads);
    if ((size_t)threads > n_tasks) threads = n_tasks ? (int)n_tasks : 1;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    pf_job job = {.fn = fn, .ctx = ctx, .n_tasks = n_tasks};
    atomic_init(&job.next, 0);
    pf_worker workers[64];
    pthread_t tids[64];
    int started = 0;
    for (int i = 1; i < threads; i++) {
        workers[i] = (pf_worker){&job, i};
        if (pthread_create(&tids[i], NULL, pf_run, &workers[i]) != 0) break;
        started = i;
    }
    workers[0] = (pf_worker){&job, 0};
    pf_run(&workers[0]); /* the caller works too */
    for (int i = 1; i <= started; i++) pthread_join(tids[i], NULL);
    openblas_set_num_threads(blas_threads);
}

/* ==== Dense kernels ==== */

/* Eight independent partial sums: the compiler vectorises this without
 * reassociating, so the result is the same at every optimisation level. */
float mi_dot(const float *a, const float *b, uint32_t f) {
    float acc[8] = {0};
    uint32_t i = 0;
    for (; i + 8 <= f; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < f; i++) s += a[i] * b[i];
    return s;
}

void mi_axpy(float a, const float *x, float *y, uint32_t f) {
    for (uint32_t i = 0; i < f; i++) y[i] += a * x[i];
}

typedef double v4d __attribute__((vector_size(32), aligned(8), may_alias));

/* sum over k < n of a[k] b[k] in double, four lanes. */
MI_INLINE double ddot(const double *a, const double *b, uint32_t n) {
    v4d acc = {0};
    uint32_t k = 0;
    for (; k + 4 <= n; k += 4) acc += *(const v4d *)(a + k) * *(const v4d *)(b + k);
    double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

/* Factor in double: f is at most a few hundred, and the precision is worth
 * more than the time. */
MI_CLONES static int cholesky(const float *a, float *b, uint32_t f, double *l) {
    for (uint32_t j = 0; j < f; j++) {
        double *lj = l + (size_t)j * f;
        double d = a[(size_t)j * f + j] - ddot(lj, lj, j);
        if (!(d > 0)) return -1;
        double ljj = sqrt(d);
        lj[j] = ljj;
        for (uint32_t i = j + 1; i < f; i++) {
            double *li = l + (size_t)i * f;
            li[j] = (a[(size_t)i * f + j] - ddot(li, lj, j)) / ljj;
        }
    }
    double *y = l + (size_t)f * f;
    for (uint32_t i = 0; i < f; i++) /* L y = b */
        y[i] = (b[i] - ddot(l + (size_t)i * f, y, i)) / l[(size_t)i * f + i];
    for (uint32_t i = f; i-- > 0;) { /* L^T x = y */
        double s = y[i];
        for (uint32_t k = i + 1; k < f; k++) s -= l[(size_t)k * f + i] * y[k];
        y[i] = s / l[(size_t)i * f + i];
    }
    for (uint32_t i = 0; i < f; i++) b[i] = (float)y[i];
    return 0;
}

int mi_cholesky_solve(const float *a, float *b, uint32_t f, double *scratch) {
    double *l = scratch ? scratch : util_malloc(((size_t)f * f + f) * sizeof(double));
    int rc = cholesky(a, b, f, l);
    if (!scratch) free(l);
    return rc;
}

#define GRAM_CHUNK 8192u

typedef struct gram_ctx {
    const float *y;
    uint32_t n, f;
    float *partial; /* one f x f per chunk */
} gram_ctx;

static void gram_task(size_t task, int worker, void *arg) {
    gram_ctx *c = arg;
    uint32_t lo = (uint32_t)task * GRAM_CHUNK;
    uint32_t rows = c->n - lo < GRAM_CHUNK ? c->n - lo : GRAM_CHUNK;
    float *out = c->partial + task * (size_t)c->f * c->f;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)c->f, (int)rows, 1.0f,
                c->y + (size_t)lo * c->f, (int)c->f, 0.0f, out, (int)c->f);
}

void mi_gram(const float *y, uint32_t n, uint32_t f, int threads, float *out) {
    size_t chunks = (n + GRAM_CHUNK - 1) / GRAM_CHUNK;
    memset(out, 0, (size_t)f * f * sizeof(float));
    if (chunks == 0) return;
    gram_ctx c = {y, n, f, util_calloc(chunks * f * f, sizeof(float))};
    mi_parallel_for(threads, chunks, gram_task, &c);
    for (size_t t = 0; t < chunks; t++) /* in chunk order: deterministic */
        for (size_t i = 0; i < (size_t)f * f; i++) out[i] += c.partial[t * f * f + i];
    for (uint32_t i = 0; i < f; i++) /* mirror the upper triangle */
        for (uint32_t j = 0; j < i; j++) out[(size_t)i * f + j] = out[(size_t)j * f + i];
    free(c.partial);
}

/* ==== Bounded top-k: a min-heap whose root is the worst kept ==== */

void mi_topk_init(mi_topk *t, uint32_t k, float *score_buf, uint32_t *idx_buf) {
    t->k = k;
    t->n = 0;
    t->score = score_buf;
    t->idx = idx_buf;
}

static void heap_swap(mi_topk *t, uint32_t a, uint32_t b) {
    float s = t->score[a];
    uint32_t i = t->idx[a];
    t->score[a] = t->score[b];
    t->idx[a] = t->idx[b];
    t->score[b] = s;
    t->idx[b] = i;
}

/* "worse" is the heap order: the root is the worst of the kept. */
static int worse(const mi_topk *t, uint32_t a, uint32_t b) {
    return mi_topk_better(t->score[b], t->idx[b], t->score[a], t->idx[a]);
}

static void sift_down(mi_topk *t, uint32_t i, uint32_t n) {
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(t, l, m)) m = l;
        if (r < n && worse(t, r, m)) m = r;
        if (m == i) return;
        heap_swap(t, i, m);
        i = m;
    }
}

void mi_topk_push(mi_topk *t, float s, uint32_t i) {
    if (t->k == 0) return;
    if (t->n < t->k) {
        uint32_t c = t->n++;
        t->score[c] = s;
        t->idx[c] = i;
        while (c > 0) {
            uint32_t p = (c - 1) / 2;
            if (!worse(t, c, p)) break;
            heap_swap(t, c, p);
            c = p;
        }
        return;
    }
    if (!mi_topk_better(s, i, t->score[0], t->idx[0])) return;
    t->score[0] = s;
    t->idx[0] = i;
    sift_down(t, 0, t->n);
}

uint32_t mi_topk_finish(mi_topk *t) {
    /* Heap sort: popping the worst to the back leaves the best first. */
    for (uint32_t end = t->n; end > 1; end--) {
        heap_swap(t, 0, end - 1);
        sift_down(t, 0, end - 1);
    }
    return t->n;
}

/* ==== CSR interaction matrix ==== */

float mi_interaction_weight(const model_interaction *r, const float type_weight[]) {
    if (r->weight >= 0) return r->weight;
    return r->type < CODEC_EVENT_TYPES ? type_weight[r->type] : 0.0f;
}

float mi_confidence(const model_als_params *p, float r) {
    if (p->log_confidence) {
        float eps = p->log_eps > 0 ? p->log_eps : 1.0f;
        return 1.0f + p->alpha * logf(1.0f + r / eps);
    }
    return 1.0f + p->alpha * r;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void mi_csr_from_dataset(const model_dataset *ds, const float type_weight[], mi_csr *out) {
    uint32_t rows = model_ids_count(ds->users), cols = model_ids_count(ds->items);
    uint64_t *ptr = util_calloc((size_t)rows + 1, sizeof(uint64_t));
    for (size_t i = 0; i < ds->n; i++) ptr[ds->rows[i].user + 1]++;
    for (uint32_t u = 0; u < rows; u++) ptr[u + 1] += ptr[u];
    /* Bucket (item << 32 | row number) keys per user and sort each bucket:
     * duplicates become adjacent and are summed in row order, so the sum
     * is the same on every run. */
    uint64_t *fill = util_malloc(((size_t)rows + 1) * sizeof(uint64_t));
    memcpy(fill, ptr, ((size_t)rows + 1) * sizeof(uint64_t));
    uint64_t *key = util_malloc(ds->n * sizeof(uint64_t) + 1);
    for (size_t i = 0; i < ds->n; i++) {
        const model_interaction *r = &ds->rows[i];
        key[fill[r->user]++] = (uint64_t)r->item << 32 | (uint32_t)i;
    }
    free(fill);
    uint32_t *col = util_malloc(ds->n * sizeof(uint32_t) + 1);
    float *val = util_malloc(ds->n * sizeof(float) + 1);
    uint64_t nnz = 0;
    for (uint32_t u = 0; u < rows; u++) {
        uint64_t lo = ptr[u], hi = ptr[u + 1];
        qsort(key + lo, hi - lo, sizeof(uint64_t), cmp_u64);
        ptr[u] = nnz;
        for (uint64_t a = lo; a < hi;) {
            uint32_t item = (uint32_t)(key[a] >> 32);
            double sum = 0;
            uint64_t b = a;
            for (; b < hi && (uint32_t)(key[b] >> 32) == item; b++)
                sum += mi_interaction_weight(&ds->rows[(uint32_t)key[b]], type_weight);
            if (sum > 0) {
                col[nnz] = item;
                val[nnz++] = (float)sum;
            }
            a = b;
        }
    }
    ptr[rows] = nnz;
    free(key);
    out->rows = rows;
    out->cols = cols;
    out->ptr = ptr;
    out->col = col;
    out->val = val;
}

void mi_csr_transpose(const mi_csr *a, mi_csr *out) {
    uint64_t nnz = a->ptr[a->rows];
    uint64_t *ptr = util_calloc((size_t)a->cols + 1, sizeof(uint64_t));
    for (uint64_t i = 0; i < nnz; i++) ptr[a->col[i] + 1]++;
    for (uint32_t c = 0; c < a->cols; c++) ptr[c + 1] += ptr[c];
    uint64_t *fill = util_malloc(((size_t)a->cols + 1) * sizeof(uint64_t));
    memcpy(fill, ptr, ((size_t)a->cols + 1) * sizeof(uint64_t));
    uint32_t *col = util_malloc(nnz * sizeof(uint32_t) + 1);
    float *val = util_malloc(nnz * sizeof(float) + 1);
    for (uint32_t r = 0; r < a->rows; r++)
        for (uint64_t i = a->ptr[r]; i < a->ptr[r + 1]; i++) {
            uint64_t at = fill[a->col[i]]++;
            col[at] = r;
            val[at] = a->val[i];
        }
    free(fill);
    out->rows = a->cols;
    out->cols = a->rows;
    out->ptr = ptr;
    out->col = col;
    out->val = val;
}

void mi_csr_free(mi_csr *a) {
    free(a->ptr);
    free(a->col);
    free(a->val);
    memset(a, 0, sizeof(*a));
}
