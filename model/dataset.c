/* Datasets: interactions held as dense (user, item) indices with their time,
 * type and weight, the form ALS, popularity and evaluation all start from.
 * Reading files lives in dataset_file.c so that code building datasets in
 * memory does not pull in the file codec. */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

model_dataset *model_dataset_new(void) {
    model_dataset *ds = util_calloc(1, sizeof(*ds));
    ds->users = model_ids_new();
    ds->items = model_ids_new();
    return ds;
}

void model_dataset_free(model_dataset *ds) {
    if (!ds) return;
    model_ids_free(ds->users);
    model_ids_free(ds->items);
    free(ds->rows);
    free(ds);
}

void model_dataset_add(model_dataset *ds, const codec_event *ev) {
    if (ds->n == ds->cap) {
        ds->cap = ds->cap ? ds->cap * 2 : 4096;
        ds->rows = util_realloc(ds->rows, ds->cap * sizeof(model_interaction));
    }
    model_interaction *r = &ds->rows[ds->n++];
    r->user = model_ids_intern(ds->users, ev->user_id, ev->user_len);
    r->item = model_ids_intern(ds->items, ev->item_id, ev->item_len);
    r->ts_ms = ev->ts_ms;
    r->weight = ev->has_weight ? ev->weight : -1.0f;
    r->type = (uint8_t)ev->type;
}

/* Merge sort on time: stable, so events at the same millisecond keep their
 * order in the log (qsort gives no such promise). */
static void merge_sort(model_interaction *a, model_interaction *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    if (a[h - 1].ts_ms <= a[h].ts_ms) return;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = a[j].ts_ms < a[i].ts_ms ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
}

void model_dataset_sort_by_time(model_dataset *ds) {
    if (ds->n < 2) return;
    model_interaction *tmp = util_malloc(ds->n * sizeof(*tmp));
    merge_sort(ds->rows, tmp, ds->n);
    free(tmp);
}
