/* Popularity: the items with the most summed interaction weight, each
 * interaction optionally decayed by its age so that yesterday's hits fade.
 * The list people get before the model knows anything about them. */
#include <math.h>
#include <stdlib.h>

#include "model_int.h"
#include "util.h"

uint32_t model_popularity(const model_dataset *ds, const float type_weight[CODEC_EVENT_TYPES],
                          int64_t half_life_ms, int64_t now_ms, uint32_t n, uint32_t *items,
                          float *scores) {
    uint32_t n_items = model_ids_count(ds->items);
    if (n == 0 || n_items == 0) return 0;
    double *sum = util_calloc(n_items, sizeof(double));
    for (size_t i = 0; i < ds->n; i++) {
        const model_interaction *r = &ds->rows[i];
        double w = mi_interaction_weight(r, type_weight);
        if (half_life_ms > 0) {
            /* Events from the future (clock skew) count as fresh, not more. */
            int64_t age = now_ms > r->ts_ms ? now_ms - r->ts_ms : 0;
            w *= exp2(-(double)age / (double)half_life_ms);
        }
        sum[r->item] += w;
    }
    mi_topk t;
    mi_topk_init(&t, n, scores, items);
    for (uint32_t i = 0; i < n_items; i++)
        if (sum[i] > 0) mi_topk_push(&t, (float)sum[i], i);
    free(sum);
    return mi_topk_finish(&t);
}
