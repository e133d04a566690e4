/* bench_als: seconds per ALS iteration (CG, 3 steps, 64 factors, both
 * cores) on Zipf-distributed interactions generated in memory, at 1M and
 * 10M interactions, the time of the item neighbour index for the 10M
 * run's 100k items (K = 50), and of the offline lists of the 1M run. ALS
 * and neighbour figures are medians of 3.
 *   bench_als            all of it
 *   bench_als --small    the 1M case only (a quick check) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "util.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Users in 100 taste clusters; items by Zipf(1) popularity, each cluster
 * seeing the catalogue in its own rotation, so factors have structure. */
static model_dataset *zipf_dataset(uint32_t users, uint32_t items, size_t n) {
    model_dataset *ds = model_dataset_new();
    char name[32];
    for (uint32_t u = 0; u < users; u++)
        model_ids_intern(ds->users, name, (size_t)snprintf(name, sizeof(name), "u%u", u));
    for (uint32_t i = 0; i < items; i++)
        model_ids_intern(ds->items, name, (size_t)snprintf(name, sizeof(name), "i%u", i));
    double *cdf = malloc(items * sizeof(double)), total = 0;
    for (uint32_t i = 0; i < items; i++) cdf[i] = total += 1.0 / (i + 1);
    ds->rows = malloc(n * sizeof(model_interaction));
    ds->n = ds->cap = n;
    for (size_t r = 0; r < n; r++) {
        uint32_t u = (uint32_t)(next() % users);
        double x = (double)(next() >> 11) / 9007199254740992.0 * total;
        uint32_t lo = 0, hi = items - 1;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (cdf[mid] < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint32_t item = (lo + (u % 100) * (items / 100)) % items;
        ds->rows[r] = (model_interaction){u, item, 1700000000000LL + (int64_t)r, -1.0f,
                                          (uint8_t)(next() % 3)};
    }
    free(cdf);
    return ds;
}

typedef struct times {
    double v[16];
    uint32_t n;
} times;

static void on_iter(uint32_t it, double loss, double secs, void *opaque) {
    times *t = opaque;
    if (t->n < 16) t->v[t->n++] = secs;
    fprintf(stderr, "  iteration %u: %.3f s, loss %.6f\n", it, secs, loss);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, uint32_t n) {
    qsort(v, n, sizeof(double), cmp_d);
    return v[n / 2];
}

static int run(uint32_t users, uint32_t items, size_t n, int neighbours) {
    int64_t t0 = util_mono_ns();
    model_dataset *ds = zipf_dataset(users, items, n);
    fprintf(stderr, "%zu interactions, %u users, %u items (generated in %.1f s)\n", n, users, items,
            (double)(util_mono_ns() - t0) / 1e9);
    model_als_params p;
    model_als_params_default(&p);
    p.iterations = 3;
    times t = {0};
    model_als als;
    char err[256];
    int64_t t1 = util_mono_ns();
    if (model_als_train(ds, &p, on_iter, &t, &als, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double total = (double)(util_mono_ns() - t1) / 1e9;
    printf("als  %9zu interactions %8u users %7u items  %u factors cg%u: %.3f s/iteration "
           "(median of 3; whole train incl. setup and loss %.2f s)\n",
           n, users, items, p.factors, p.cg_steps, median(t.v, t.n), total);
    fflush(stdout);
    if (!neighbours) { /* offline lists: every user against every item */
        char path[64];
        snprintf(path, sizeof(path), "/tmp/bench_als.%d.avro", (int)getpid());
        int64_t s = util_mono_ns();
        if (model_offline_write(path, ds, &als, 50, "bench", 0, err, sizeof(err)) != 0)
            fprintf(stderr, "%s\n", err);
        printf("offline lists, top 50 for %u users over %u items: %.2f s\n", als.n_users,
               als.n_items, (double)(util_mono_ns() - s) / 1e9);
        unlink(path);
    }
    if (neighbours) {
        uint32_t k = 50;
        uint32_t *idx = malloc((size_t)als.n_items * k * sizeof(uint32_t));
        float *sim = malloc((size_t)als.n_items * k * sizeof(float));
        double nt[3];
        for (int r = 0; r < 3; r++) {
            int64_t s = util_mono_ns();
            model_neighbours_build(als.item_factors, als.n_items, als.factors, k, 0, idx, sim, err,
                                   sizeof(err));
            nt[r] = (double)(util_mono_ns() - s) / 1e9;
            fprintf(stderr, "  neighbours run %d: %.2f s\n", r + 1, nt[r]);
        }
        printf("neighbours %u items x %u factors, K=%u: %.2f s (median of 3)\n", als.n_items,
               als.factors, k, median(nt, 3));
        free(idx);
        free(sim);
    }
    model_als_free(&als);
    model_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv) {
    int small = argc > 1 && !strcmp(argv[1], "--small");
    if (run(100000, 10000, 1000000, 0)) return 1;
    if (!small && run(1000000, 100000, 10000000, 1)) return 1;
    return 0;
}
