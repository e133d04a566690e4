/* Fold-in: the ALS vector of a user the model was not trained on, from a
 * short list of their items, by the same normal equation ALS solves per
 * user: (Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x = Y_u^T C_u p_u. The
 * model file carries Y^T Y, so this costs O(n f^2 + f^3) per user: cheap
 * enough for the processor's per-event re-ranking. */
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "util.h"

/* ==== Kernels, compiled twice: AVX2+FMA when the CPU has it (as als.c) ==== */

#define FOLDIN_CLONES MI_CLONES

/* a += s y y^T on the lower triangle (all the Cholesky reads), row by row
 * so the inner loop is contiguous. No BLAS here: its threads would spin on
 * every per-event call. */
FOLDIN_CLONES static void rank1(float *a, const float *y, float s, uint32_t f) {
    for (uint32_t r = 0; r < f; r++) axpy8(s * y[r], y, a + (size_t)r * f, r + 1);
}

/* out[j] = v . row j of y, for n rows. */
FOLDIN_CLONES static void dots(const float *y, uint32_t n, uint32_t f, const float *v, float *out) {
    for (uint32_t j = 0; j < n; j++) out[j] = dot8(y + (size_t)j * f, v, f);
}

int model_foldin(const model *m, const uint32_t *items, const float *confidence, size_t n,
                 float *user_vec) {
    uint32_t f = m->factors;
    /* one allocation per call: the Cholesky factor (doubles first, for
     * their alignment), the system, and the merged cells */
    size_t nn = n ? n : 1;
    double *l = util_malloc(((size_t)f * f + f) * sizeof(double) + (size_t)f * f * sizeof(float) +
                            nn * (sizeof(uint32_t) + sizeof(float)));
    float *a = (float *)(l + (size_t)f * f + f);
    uint32_t *cell = (uint32_t *)(a + (size_t)f * f);
    float *extra = (float *)(cell + nn);
    memcpy(a, m->gram, (size_t)f * f * sizeof(float));
    for (uint32_t i = 0; i < f; i++) a[(size_t)i * f + i] += m->regularization;
    memset(user_vec, 0, f * sizeof(float));
    /* An item listed twice counts as one cell whose confidence grew by both
     * entries' (c - 1), as ALS sums repeated interactions: so each distinct
     * item gets one rank-1 update with its summed (c - 1), and p_u
     * contributes y once per distinct item. Windows repeat items often, so
     * merging first also saves updates. */
    size_t n_cells = 0;
    for (size_t t = 0; t < n; t++) {
        if (items[t] >= m->n_items) continue;
        size_t c = 0;
        while (c < n_cells && cell[c] != items[t]) c++;
        if (c == n_cells) cell[n_cells] = items[t], extra[n_cells++] = 0;
        extra[c] += confidence[t] - 1.0f;
    }
    for (size_t c = 0; c < n_cells; c++) {
        const float *y = m->item_factors + (size_t)cell[c] * f;
        mi_axpy(1.0f + extra[c], y, user_vec, f);
        rank1(a, y, extra[c], f);
    }
    int rc = mi_cholesky_solve(a, user_vec, f, l);
    if (rc != 0) memset(user_vec, 0, f * sizeof(float));
    free(l);
    return rc;
}

float model_dot(const model *m, const float *user_vec, uint32_t item) {
    if (item >= m->n_items) return 0.0f;
    return mi_dot(user_vec, m->item_factors + (size_t)item * m->factors, m->factors);
}

/* The user vector's best items over the whole catalogue (n_items * f
 * multiply-adds, in blocks of 256 items), kept in a bounded heap; the
 * excluded items are checked only for candidates that would enter the
 * list, since a window holds few items. */
size_t model_foldin_top(const model *m, const float *user_vec, const uint32_t *exclude,
                        size_t n_exclude, size_t n, uint32_t *items, float *scores) {
    if (!n) return 0;
    enum { BLOCK = 256 };
    float d[BLOCK];
    mi_topk t;
    mi_topk_init(&t, (uint32_t)n, scores, items);
    for (uint32_t j0 = 0; j0 < m->n_items; j0 += BLOCK) {
        uint32_t nb = m->n_items - j0 < BLOCK ? m->n_items - j0 : BLOCK;
        dots(m->item_factors + (size_t)j0 * m->factors, nb, m->factors, user_vec, d);
        for (uint32_t q = 0; q < nb; q++) {
            if (!(d[q] > mi_topk_floor(&t))) continue;
            int seen = 0;
            for (size_t e = 0; e < n_exclude && !seen; e++) seen = exclude[e] == j0 + q;
            if (!seen) mi_topk_push(&t, d[q], j0 + q);
        }
    }
    return mi_topk_finish(&t);
}
