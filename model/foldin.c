/* Fold-in: the ALS vector of a user the model was not trained on, from a
 * short list of their items, by the same normal equation ALS solves per
 * user: (Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x = Y_u^T C_u p_u. The
 * model file carries Y^T Y, so this costs O(n f^2 + f^3) per user: cheap
 * enough for the processor's per-event re-ranking. */
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "util.h"

int model_foldin(const model *m, const uint32_t *items, const float *confidence, size_t n,
                 float *user_vec) {
    uint32_t f = m->factors;
    float *a = util_malloc((size_t)f * f * sizeof(float));
    memcpy(a, m->gram, (size_t)f * f * sizeof(float));
    for (uint32_t i = 0; i < f; i++) a[(size_t)i * f + i] += m->regularization;
    memset(user_vec, 0, f * sizeof(float));
    for (size_t t = 0; t < n; t++) {
        if (items[t] >= m->n_items) continue;
        const float *y = m->item_factors + (size_t)items[t] * f;
        float c = confidence[t];
        /* An item listed twice counts as one cell whose confidence grew by
         * both entries' (c - 1), as ALS sums repeated interactions; so p_u
         * contributes y once per distinct item. */
        int seen = 0;
        for (size_t s = 0; s < t && !seen; s++) seen = items[s] == items[t];
        float bw = seen ? c - 1.0f : c;
        for (uint32_t r = 0; r < f; r++) {
            float s = (c - 1.0f) * y[r];
            for (uint32_t k = 0; k <= r; k++) a[(size_t)r * f + k] += s * y[k];
            user_vec[r] += bw * y[r];
        }
    }
    int rc = mi_cholesky_solve(a, user_vec, f);
    if (rc != 0) memset(user_vec, 0, f * sizeof(float));
    free(a);
    return rc;
}

float model_dot(const model *m, const float *user_vec, uint32_t item) {
    if (item >= m->n_items) return 0.0f;
    return mi_dot(user_vec, m->item_factors + (size_t)item * m->factors, m->factors);
}

/* The user vector's best items over the whole catalogue: one dot product
 * per item (n_items * f multiply-adds, ~128k for 2,000 items and 64
 * factors), the excluded items checked only for candidates that would
 * enter the list, since the window holds few items. */
size_t model_foldin_top(const model *m, const float *user_vec, const uint32_t *exclude,
                        size_t n_exclude, size_t n, uint32_t *items, float *scores) {
    if (!n) return 0;
    mi_topk t;
    mi_topk_init(&t, (uint32_t)n, scores, items);
    for (uint32_t j = 0; j < m->n_items; j++) {
        float s = mi_dot(user_vec, m->item_factors + (size_t)j * m->factors, m->factors);
        if (!(s > mi_topk_floor(&t))) continue;
        int seen = 0;
        for (size_t e = 0; e < n_exclude && !seen; e++) seen = exclude[e] == j;
        if (!seen) mi_topk_push(&t, s, j);
    }
    return mi_topk_finish(&t);
}
