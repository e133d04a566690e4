/* Offline evaluation: train/test splits of an interaction log and ranking
 * metrics over a full ranking of every unseen item.
 *
 * Sampled metrics (rank the held-out item among 100 random ones) flatter
 * models and can even reorder them (Krichene and Rendle, KDD 2020), so every
 * test user is ranked against the whole catalogue. That is affordable
 * because users are scored in blocks by one sgemm (users x factors times
 * factors x items) and the top k is kept by a bounded heap in one pass over
 * the block's scores, on all cores. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_int.h"
#include "util.h"

#define EVAL_BLOCK 64 /* users scored per sgemm */

/* ==== Splits ==== */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int has_u32(const uint32_t *sorted, size_t n, uint32_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] == v;
}

/* Sorts and dedups a[0..n); returns the new length. */
static size_t sort_unique(uint32_t *a, size_t n) {
    if (n < 2) return n;
    qsort(a, n, sizeof(*a), cmp_u32);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (a[i] != a[m - 1]) a[m++] = a[i];
    return m;
}

/* Row indices grouped by user, in log order within a user (counting sort).
 * ptr has n_users + 1 entries. */
static uint32_t *rows_by_user(const model_dataset *ds, uint32_t n_users, const uint8_t *pick,
                              uint8_t want, uint64_t **ptr_out) {
    uint64_t *ptr = util_calloc((size_t)n_users + 1, sizeof(uint64_t));
    for (size_t r = 0; r < ds->n; r++)
        if (!pick || pick[r] == want) ptr[ds->rows[r].user + 1]++;
    for (uint32_t u = 0; u < n_users; u++) ptr[u + 1] += ptr[u];
    uint32_t *idx = util_malloc((ptr[n_users] + 1) * sizeof(uint32_t));
    uint64_t *fill = util_malloc(((size_t)n_users + 1) * sizeof(uint64_t));
    memcpy(fill, ptr, ((size_t)n_users + 1) * sizeof(uint64_t));
    for (size_t r = 0; r < ds->n; r++)
        if (!pick || pick[r] == want) idx[fill[ds->rows[r].user]++] = (uint32_t)r;
    free(fill);
    *ptr_out = ptr;
    return idx;
}

/* The distinct items of each user's rows, sorted: CSR into *items. */
static uint64_t *distinct_items(const model_dataset *ds, uint32_t n_users, const uint8_t *pick,
                                uint8_t want, uint32_t **items_out) {
    uint64_t *ptr;
    uint32_t *idx = rows_by_user(ds, n_users, pick, want, &ptr);
    uint64_t *out_ptr = util_calloc((size_t)n_users + 1, sizeof(uint64_t));
    uint64_t w = 0;
    for (uint32_t u = 0; u < n_users; u++) {
        uint32_t *seg = idx + w;
        uint64_t n = ptr[u + 1] - ptr[u];
        for (uint64_t i = 0; i < n; i++) seg[i] = ds->rows[idx[ptr[u] + i]].item;
        w += sort_unique(seg, n);
        out_ptr[u + 1] = w;
    }
    free(ptr);
    *items_out = idx; /* compacted in place: distinct items only */
    return out_ptr;
}

/* Builds the split from a per-row mark (1: held out). */
static int split_build(const model_dataset *ds, const uint8_t *held, model_split *s) {
    memset(s, 0, sizeof(*s));
    s->n_users = model_ids_count(ds->users);
    s->n_items = model_ids_count(ds->items);
    s->train.users = ds->users;
    s->train.items = ds->items;
    size_t n_train = 0;
    for (size_t r = 0; r < ds->n; r++) n_train += !held[r];
    s->train.rows = util_malloc((n_train + 1) * sizeof(model_interaction));
    for (size_t r = 0; r < ds->n; r++)
        if (!held[r]) s->train.rows[s->train.n++] = ds->rows[r];
    s->train.cap = n_train + 1;
    s->test_rows = ds->n - n_train;

    s->train_ptr = distinct_items(ds, s->n_users, held, 0, &s->train_items);
    s->cold_item = util_malloc(s->n_items + 1);
    memset(s->cold_item, 1, s->n_items + 1);
    for (size_t r = 0; r < s->train.n; r++) s->cold_item[s->train.rows[r].item] = 0;

    uint32_t *test;
    uint64_t *tptr = distinct_items(ds, s->n_users, held, 1, &test);
    s->test_ptr = util_malloc(((size_t)s->n_users + 1) * sizeof(uint32_t));
    s->test_items = test; /* compacted in place below */
    uint32_t w = 0;
    s->test_ptr[0] = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        const uint32_t *tr = s->train_items + s->train_ptr[u];
        size_t n_tr = s->train_ptr[u + 1] - s->train_ptr[u];
        uint32_t start = w;
        for (uint64_t i = tptr[u]; i < tptr[u + 1]; i++)
            if (!has_u32(tr, n_tr, test[i])) test[w++] = test[i];
        if (w > start && !n_tr) {
            s->cold_users++;
            w = start;
        } else if (w > start) {
            s->test_users++;
            for (uint32_t i = start; i < w; i++) s->test_cold_items += s->cold_item[test[i]];
        }
        s->test_ptr[u + 1] = w;
    }
    free(tptr);
    return 0;
}

/* Marks, in one user's rows (idx, log order), the n_last latest distinct
 * items' rows as held out, when the user has more distinct items than that. */
static void hold_last(const model_dataset *ds, uint32_t *idx, uint64_t n, uint32_t n_last,
                      uint32_t *held_items, uint8_t *held) {
    uint32_t n_held = 0;
    int more = 0;
    for (uint64_t i = n; i-- > 0;) {
        uint32_t item = ds->rows[idx[i]].item, k = 0;
        while (k < n_held && held_items[k] != item) k++;
        if (k < n_held) continue;
        if (n_held == n_last) {
            more = 1;
            break;
        }
        held_items[n_held++] = item;
    }
    if (!more) return;
    for (uint64_t i = 0; i < n; i++)
        for (uint32_t k = 0; k < n_held; k++)
            if (ds->rows[idx[i]].item == held_items[k]) held[idx[i]] = 1;
}

static const model_dataset *sort_ds; /* qsort has no context argument */

static int cmp_row_time(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int64_t tx = sort_ds->rows[x].ts_ms, ty = sort_ds->rows[y].ts_ms;
    if (tx != ty) return tx < ty ? -1 : 1;
    return x < y ? -1 : x > y;
}

int model_split_leave_last_out(const model_dataset *ds, uint32_t n_last, model_split *out,
                               char *errstr, size_t errstr_size) {
    if (n_last < 1 || n_last > 1000)
        return snprintf(errstr, errstr_size, "leave-last-out: n_last must be in 1..1000"), -1;
    if (ds->n >= UINT32_MAX)
        return snprintf(errstr, errstr_size, "leave-last-out: too many interactions"), -1;
    uint32_t n_users = model_ids_count(ds->users);
    uint64_t *ptr;
    uint32_t *idx = rows_by_user(ds, n_users, NULL, 0, &ptr);
    uint8_t *held = util_calloc(ds->n + 1, 1);
    uint32_t *held_items = util_malloc(n_last * sizeof(uint32_t));
    sort_ds = ds;
    for (uint32_t u = 0; u < n_users; u++) {
        uint64_t n = ptr[u + 1] - ptr[u];
        qsort(idx + ptr[u], n, sizeof(uint32_t), cmp_row_time);
        hold_last(ds, idx + ptr[u], n, n_last, held_items, held);
    }
    sort_ds = NULL;
    free(held_items);
    free(idx);
    free(ptr);
    int rc = split_build(ds, held, out);
    free(held);
    return rc;
}

int model_split_time(const model_dataset *ds, int64_t cut_ms, model_split *out, char *errstr,
                     size_t errstr_size) {
    if (ds->n >= UINT32_MAX)
        return snprintf(errstr, errstr_size, "time split: too many interactions"), -1;
    uint8_t *held = util_malloc(ds->n + 1);
    for (size_t r = 0; r < ds->n; r++) held[r] = ds->rows[r].ts_ms >= cut_ms;
    int rc = split_build(ds, held, out);
    free(held);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t model_split_time_cut(const model_dataset *ds, double test_fraction) {
    if (!ds->n) return 0;
    int64_t *ts = util_malloc(ds->n * sizeof(int64_t));
    for (size_t r = 0; r < ds->n; r++) ts[r] = ds->rows[r].ts_ms;
    qsort(ts, ds->n, sizeof(int64_t), cmp_i64);
    double f = test_fraction < 0 ? 0 : test_fraction > 1 ? 1 : test_fraction;
    size_t at = (size_t)((1.0 - f) * (double)ds->n);
    int64_t cut = at >= ds->n ? ts[ds->n - 1] + 1 : ts[at];
    free(ts);
    return cut;
}

void model_split_free(model_split *s) {
    if (!s) return;
    free(s->train.rows);
    free(s->train_ptr);
    free(s->train_items);
    free(s->test_ptr);
    free(s->test_items);
    free(s->cold_item);
    memset(s, 0, sizeof(*s));
}

/* ==== Scorers ==== */

void model_score_als(const uint32_t *users, uint32_t n, uint32_t n_items, float *out,
                     void *opaque) {
    const model_als *als = opaque;
    uint32_t f = als->factors;
    float *u = util_malloc((size_t)n * f * sizeof(float));
    for (uint32_t b = 0; b < n; b++)
        memcpy(u + (size_t)b * f, als->user_factors + (size_t)users[b] * f, f * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n_items, (int)f, 1.0f, u,
                (int)f, als->item_factors, (int)f, 0.0f, out, (int)n_items);
    free(u);
}

void model_score_static(const uint32_t *users, uint32_t n, uint32_t n_items, float *out,
                        void *opaque) {
    const float *scores = opaque;
    for (uint32_t b = 0; b < n; b++)
        memcpy(out + (size_t)b * n_items, scores, n_items * sizeof(float));
}

void model_eval_popularity(const model_dataset *train, const float type_weight[CODEC_EVENT_TYPES],
                           uint32_t n_items, float *scores) {
    memset(scores, 0, n_items * sizeof(float));
    for (size_t r = 0; r < train->n; r++) {
        const model_interaction *row = &train->rows[r];
        if (row->item < n_items) scores[row->item] += mi_interaction_weight(row, type_weight);
    }
}

/* ==== Metrics ==== */

void model_eval_list(const uint32_t *ranked, uint32_t n_ranked, const uint32_t *relevant,
                     uint32_t n_relevant, uint32_t k, model_eval_metrics *m) {
    if (!n_relevant || !k) return;
    uint32_t hits = 0, top = n_ranked < k ? n_ranked : k;
    double dcg = 0, ap = 0, idcg = 0;
    for (uint32_t i = 0; i < top; i++) {
        if (!has_u32(relevant, n_relevant, ranked[i])) continue;
        hits++;
        dcg += 1.0 / log2(i + 2.0);
        ap += (double)hits / (i + 1.0);
    }
    uint32_t ideal = n_relevant < k ? n_relevant : k;
    for (uint32_t i = 0; i < ideal; i++) idcg += 1.0 / log2(i + 2.0);
    m->hr += hits > 0;
    m->precision += (double)hits / k;
    m->recall += (double)hits / n_relevant;
    m->ndcg += dcg / idcg;
    m->map += ap / ideal;
}

typedef struct eval_ctx {
    const model_split *s;
    model_score_fn score;
    void *opaque;
    const uint32_t *ks;
    uint32_t n_k, kmax;
    const uint32_t *users; /* the test users */
    uint32_t n_users;
    float **buf;       /* per worker: EVAL_BLOCK x n_items scores */
    float **top_score; /* per worker: kmax */
    uint32_t **top_idx;
    uint8_t **covered;        /* per worker: n_k x n_items */
    model_eval_metrics *sums; /* per task: n_k */
} eval_ctx;

/* The user's best kmax recommendable items, best first; returns the count. */
static uint32_t rank_user(const eval_ctx *c, uint32_t u, float *row, float *ts, uint32_t *ti) {
    const model_split *s = c->s;
    for (uint64_t i = s->train_ptr[u]; i < s->train_ptr[u + 1]; i++)
        row[s->train_items[i]] = -INFINITY;
    mi_topk t;
    mi_topk_init(&t, c->kmax, ts, ti);
    for (uint32_t j = 0; j < s->n_items; j++) {
        float v = row[j]; /* -inf (seen) and NaN never pass */
        if (v > mi_topk_floor(&t) && !s->cold_item[j]) mi_topk_push(&t, v, j);
    }
    return mi_topk_finish(&t);
}

static void eval_task(size_t task, int worker, void *opaque) {
    const eval_ctx *c = opaque;
    uint32_t first = (uint32_t)task * EVAL_BLOCK, n = c->n_users - first;
    if (n > EVAL_BLOCK) n = EVAL_BLOCK;
    const model_split *s = c->s;
    float *buf = c->buf[worker];
    c->score(c->users + first, n, s->n_items, buf, c->opaque);
    model_eval_metrics *m = c->sums + task * c->n_k;
    for (uint32_t b = 0; b < n; b++) {
        uint32_t u = c->users[first + b];
        uint32_t got =
            rank_user(c, u, buf + (size_t)b * s->n_items, c->top_score[worker], c->top_idx[worker]);
        const uint32_t *rel = s->test_items + s->test_ptr[u];
        uint32_t n_rel = s->test_ptr[u + 1] - s->test_ptr[u];
        for (uint32_t q = 0; q < c->n_k; q++) {
            model_eval_list(c->top_idx[worker], got, rel, n_rel, c->ks[q], &m[q]);
            uint8_t *cov = c->covered[worker] + (size_t)q * s->n_items;
            for (uint32_t i = 0; i < got && i < c->ks[q]; i++) cov[c->top_idx[worker][i]] = 1;
        }
    }
}

static void eval_finish(const eval_ctx *c, size_t n_tasks, int workers, model_eval_result *out) {
    const model_split *s = c->s;
    uint32_t recommendable = 0;
    for (uint32_t j = 0; j < s->n_items; j++) recommendable += !s->cold_item[j];
    for (uint32_t q = 0; q < c->n_k; q++) {
        model_eval_metrics *m = &out->at[q];
        memset(m, 0, sizeof(*m));
        m->k = c->ks[q];
        for (size_t t = 0; t < n_tasks; t++) { /* task order: same sums for any thread count */
            const model_eval_metrics *x = &c->sums[t * c->n_k + q];
            m->hr += x->hr, m->precision += x->precision, m->recall += x->recall;
            m->ndcg += x->ndcg, m->map += x->map;
        }
        double nu = c->n_users ? c->n_users : 1;
        m->hr /= nu, m->precision /= nu, m->recall /= nu, m->ndcg /= nu, m->map /= nu;
        uint32_t covered = 0;
        for (uint32_t j = 0; j < s->n_items; j++) {
            int any = 0;
            for (int w = 0; w < workers && !any; w++)
                any = c->covered[w][(size_t)q * s->n_items + j];
            covered += any;
        }
        m->coverage = recommendable ? (double)covered / recommendable : 0;
    }
}

int model_eval_run(const model_split *s, model_score_fn score, void *opaque, const uint32_t *ks,
                   uint32_t n_k, int threads, model_eval_result *out, char *errstr,
                   size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    if (!n_k || n_k > MODEL_EVAL_MAX_K)
        return snprintf(errstr, errstr_size, "eval: give 1..%d cut-offs", MODEL_EVAL_MAX_K), -1;
    eval_ctx c = {.s = s, .score = score, .opaque = opaque, .ks = ks, .n_k = n_k};
    for (uint32_t q = 0; q < n_k; q++) {
        if (ks[q] < 1 || ks[q] > 1000)
            return snprintf(errstr, errstr_size, "eval: k must be in 1..1000, not %u", ks[q]), -1;
        if (ks[q] > c.kmax) c.kmax = ks[q];
    }
    int64_t t0 = util_mono_ns();
    uint32_t *users = util_malloc(((size_t)s->test_users + 1) * sizeof(uint32_t));
    for (uint32_t u = 0; u < s->n_users; u++)
        if (s->test_ptr[u + 1] > s->test_ptr[u]) users[c.n_users++] = u;
    c.users = users;
    size_t n_tasks = ((size_t)c.n_users + EVAL_BLOCK - 1) / EVAL_BLOCK;
    int workers = mi_threads(threads);
    c.buf = util_calloc(workers, sizeof(float *));
    c.top_score = util_calloc(workers, sizeof(float *));
    c.top_idx = util_calloc(workers, sizeof(uint32_t *));
    c.covered = util_calloc(workers, sizeof(uint8_t *));
    for (int w = 0; w < workers; w++) {
        c.buf[w] = util_malloc((size_t)EVAL_BLOCK * s->n_items * sizeof(float) + 1);
        c.top_score[w] = util_malloc(c.kmax * sizeof(float));
        c.top_idx[w] = util_malloc(c.kmax * sizeof(uint32_t));
        c.covered[w] = util_calloc((size_t)n_k * s->n_items + 1, 1);
    }
    c.sums = util_calloc(n_tasks * n_k + 1, sizeof(model_eval_metrics));
    mi_parallel_for(workers, n_tasks, eval_task, &c);
    eval_finish(&c, n_tasks, workers, out);
    out->users = c.n_users;
    out->n_k = n_k;
    out->seconds = (double)(util_mono_ns() - t0) / 1e9;
    for (int w = 0; w < workers; w++) {
        free(c.buf[w]);
        free(c.top_score[w]);
        free(c.top_idx[w]);
        free(c.covered[w]);
    }
    free(c.buf);
    free(c.top_score);
    free(c.top_idx);
    free(c.covered);
    free(c.sums);
    free(users);
    return 0;
}
