/* bench_online: ns per call of the online scorer and the blender, the
 * per-user work of `recstream run` after the state read: model_online_add
 * (one event's K neighbours into the accumulator), a whole window rebuilt
 * (H adds), model_online_rebuild (the same with a quarter of the window's
 * items repeated, merged; what the processor does per touched user; then
 * over many users' windows in turn, which is the figure to compare),
 * model_online_top (the best n of the accumulated candidates) and
 * model_blend (online, offline, popular into one list). The model is
 * trained on a synthetic stream, so neighbour lists have the real shape.
 *   bench_online [--items N] [--k N] [--h N] [--n N] [--iters N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

typedef struct cfg {
    uint32_t items, k, h, n;
    long iters;
} cfg;

static void die(const char *what, const char *err) {
    fprintf(stderr, "bench_online: %s: %s\n", what, err);
    exit(1);
}

static model *make_model(const cfg *c) {
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.items = c->items;
    sp.users = c->items * 5;
    model_synth *s = model_synth_new(&sp);
    model_dataset *ds = model_dataset_new();
    codec_event ev;
    for (uint32_t i = 0; i < sp.users * 10; i++) {
        model_synth_next(s, &ev);
        model_dataset_add(ds, &ev);
    }
    model_als_params p;
    model_als_params_default(&p);
    p.iterations = 2;
    model_als als = {0};
    model *m = NULL;
    char err[512];
    if (model_als_train(ds, &p, NULL, NULL, &als, err, sizeof(err))) die("train", err);
    if (model_build(ds, &als, &p, c->k, 100, 0, &m, err, sizeof(err))) die("build", err);
    model_als_free(&als);
    model_dataset_free(ds);
    model_synth_free(s);
    return m;
}

static void report(const char *name, int64_t t0, long n) {
    printf("%-34s %10.1f ns/call\n", name, (double)(util_mono_ns() - t0) / (double)n);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t next(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

int main(int argc, char **argv) {
    cfg c = {20000, 50, 50, 20, 200000};
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (!strcmp(argv[i], "--items"))
            c.items = (uint32_t)v;
        else if (!strcmp(argv[i], "--k"))
            c.k = (uint32_t)v;
        else if (!strcmp(argv[i], "--h"))
            c.h = (uint32_t)v;
        else if (!strcmp(argv[i], "--n"))
            c.n = (uint32_t)v;
        else if (!strcmp(argv[i], "--iters"))
            c.iters = v;
        else
            die("usage", "bench_online [--items N] [--k N] [--h N] [--n N] [--iters N]");
    }
    model *m = make_model(&c);
    printf("model: %u items, %u factors, K = %u; window H = %u, list n = %u\n", m->n_items,
           m->factors, m->k, c.h, c.n);
    model_online_params op;
    model_online_params_default(&op);
    op.k = c.k;
    model_online *acc = model_online_new();
    uint32_t *win = util_malloc(c.h * sizeof(*win));
    int64_t now = 1793491200000LL;
    for (uint32_t i = 0; i < c.h; i++) win[i] = next(m->n_items);

    /* One event in and one out, as a sliding window sees it. */
    int64_t t0 = util_mono_ns();
    for (long i = 0; i < c.iters; i++) {
        model_online_add(acc, m, &op, win[i % c.h], CODEC_EVENT_LISTEN, -1, now - (i % c.h), 1);
        model_online_add(acc, m, &op, win[i % c.h], CODEC_EVENT_LISTEN, -1, now - (i % c.h), -1);
    }
    report("model_online_add (one event)", t0, 2 * c.iters);

    long windows = c.iters / c.h > 100 ? c.iters / c.h : 100;
    t0 = util_mono_ns();
    for (long w = 0; w < windows; w++) {
        model_online_reset(acc);
        for (uint32_t i = 0; i < c.h; i++)
            model_online_add(acc, m, &op, win[(i + w) % c.h], CODEC_EVENT_LISTEN, -1, now - i, 1);
    }
    report("window rebuilt (reset + H adds)", t0, windows);

    /* What run does: the window at once, a quarter of its events repeating
     * an item already in it (as in the bench's stream), repeats merged. */
    model_online_event *wev = util_malloc(c.h * sizeof(*wev));
    for (uint32_t i = 0; i < c.h; i++)
        wev[i] = (model_online_event){i && next(4) == 0 ? wev[next(i)].item : win[i],
                                      CODEC_EVENT_LISTEN, -1, now - i};
    t0 = util_mono_ns();
    for (long w = 0; w < windows; w++) {
        wev[w % c.h].ts_ms++; /* not the very same window each time */
        model_online_rebuild(acc, m, &op, wev, c.h);
    }
    report("model_online_rebuild (25% repeats)", t0, windows);

    uint32_t *items = util_malloc(c.n * sizeof(*items));
    float *scores = util_malloc(c.n * sizeof(*scores));
    size_t got = 0;
    t0 = util_mono_ns();
    for (long i = 0; i < windows * 10; i++)
        got = model_online_top(acc, &op, now, win, c.h, c.n, items, scores);
    report("model_online_top (best n)", t0, windows * 10);

    /* Many users' windows in turn, each H events over 14 distinct items (the
     * bench stream's average is 13.6): neither the branch predictor nor the
     * caches see the same window twice in a row, as in the processor. */
    enum { USERS = 4096, DISTINCT = 14 };
    model_online_event *uev = util_malloc((size_t)USERS * c.h * sizeof(*uev));
    for (size_t u = 0; u < USERS; u++) {
        uint32_t own[DISTINCT];
        for (int d = 0; d < DISTINCT; d++) own[d] = next(m->n_items);
        for (uint32_t i = 0; i < c.h; i++)
            uev[u * c.h + i] = (model_online_event){own[i < DISTINCT ? i : next(DISTINCT)],
                                                    CODEC_EVENT_LISTEN, -1, now - i};
    }
    t0 = util_mono_ns();
    for (long w = 0; w < windows; w++)
        model_online_rebuild(acc, m, &op, uev + (size_t)(w % USERS) * c.h, c.h);
    report("model_online_rebuild (many users)", t0, windows);
    free(uev);

    /* Blend: online from above, an offline list, the model's popular items. */
    const char **on = util_malloc(c.n * sizeof(*on)), **off = util_malloc(c.n * sizeof(*off));
    const char **pop = util_malloc(c.n * sizeof(*pop));
    float *off_s = util_malloc(c.n * sizeof(*off_s)), *pop_s = util_malloc(c.n * sizeof(*pop_s));
    uint32_t n_pop = m->n_popular < c.n ? m->n_popular : c.n;
    for (size_t i = 0; i < got; i++) on[i] = model_ids_name(m->items, items[i]);
    for (uint32_t i = 0; i < c.n; i++) {
        off[i] = model_ids_name(m->items, next(m->n_items));
        off_s[i] = 1.0f / (float)(i + 1);
    }
    for (uint32_t i = 0; i < n_pop; i++) {
        pop[i] = model_ids_name(m->items, m->popular[i]);
        pop_s[i] = m->popular_score[i];
    }
    model_candidates src[CODEC_SOURCES] = {
        {on, scores, got}, {off, off_s, c.n}, {pop, pop_s, n_pop}};
    codec_rec_item *out = util_malloc(c.n * sizeof(*out));
    model_blend_params bp;
    for (int s = 0; s < 2; s++) {
        model_blend_params_default(&bp);
        bp.n = c.n;
        bp.strategy = s ? MODEL_BLEND_WEIGHTED : MODEL_BLEND_INTERLEAVE;
        size_t k = 0;
        t0 = util_mono_ns();
        for (long i = 0; i < c.iters; i++) k += model_blend(&bp, src, out);
        char name[64];
        snprintf(name, sizeof(name), "model_blend (%s)", model_blend_strategy_name(bp.strategy));
        report(name, t0, c.iters);
        if (k == 0) die("blend", "empty lists");
    }
    free(on), free(off), free(pop), free(off_s), free(pop_s), free(out);
    free(items), free(scores), free(win), free(wev);
    model_online_free(acc);
    model_free(m);
    return 0;
}
