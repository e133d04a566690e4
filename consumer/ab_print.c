/* ab_print: the text of an A/B report, shared by `recstream ab-report` and
 * the closing summary of `recstream demo`: per variant the users, exposures
 * and hit rates at 5 and 10 with 95% Wilson intervals, hits by source, then
 * each variant against the first (the control) with a two-proportion z-test. */
#include <stdio.h>

#include "ab.h"

static void print_rate(FILE *f, uint64_t x, uint64_t n) {
    double lo, hi;
    ab_wilson(x, n, &lo, &hi);
    if (n)
        fprintf(f, "  %7.4f [%6.4f, %6.4f]", (double)x / (double)n, lo, hi);
    else
        fprintf(f, "  %7s %16s", "-", "");
}

static void print_variants(FILE *f, const ab_report *r) {
    fprintf(f, "%-16s %9s %10s  %-25s  %-25s\n", "variant", "users", "exposures",
            "  hit@5  [95% CI]", "  hit@10 [95% CI]");
    for (size_t i = 0; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        fprintf(f, "%-16s %9.0f %10llu", v->name, v->users, (unsigned long long)v->exposures);
        for (size_t k = 0; k < METRICS_AB_KS; k++) print_rate(f, v->hits[k], v->exposures);
        fprintf(f, "\n");
    }
}

/* Hits at 10 by the source of the hit item, and the share of shown items
 * of that source that were hit (per-source precision at 10). */
static void print_sources(FILE *f, const ab_report *r) {
    static const char *const names[CODEC_SOURCES] = {"online", "offline", "popular"};
    size_t k = METRICS_AB_KS - 1;
    fprintf(f, "\nhits@%u by source (hits / items shown):\n", metrics_ab_k[k]);
    for (size_t i = 0; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        fprintf(f, "%-16s", v->name);
        for (int s = 0; s < CODEC_SOURCES; s++) {
            uint64_t h = v->hits_by_source[s][k], n = v->shown_by_source[s][k];
            fprintf(f, "  %s %llu/%llu", names[s], (unsigned long long)h, (unsigned long long)n);
            if (n) fprintf(f, " (%.4f)", (double)h / (double)n);
        }
        fprintf(f, "\n");
    }
}

static void print_comparisons(FILE *f, const ab_report *r) {
    const ab_report_variant *c = &r->v[0];
    fprintf(f, "\nagainst %s (two-proportion z-test):\n", c->name);
    for (size_t i = 1; i < r->n; i++) {
        const ab_report_variant *v = &r->v[i];
        for (size_t k = 0; k < METRICS_AB_KS; k++) {
            double z, p;
            fprintf(f, "%-16s hit@%-2u ", v->name, metrics_ab_k[k]);
            if (ab_two_prop_test(c->hits[k], c->exposures, v->hits[k], v->exposures, &z, &p)) {
                fprintf(f, "not enough data\n");
                continue;
            }
            double diff = (double)v->hits[k] / (double)v->exposures -
                          (double)c->hits[k] / (double)c->exposures;
            fprintf(f, "diff %+.4f (%+.1f%% relative)  z %+.2f  p %.4g%s\n", diff,
                    c->hits[k] ? 100.0 * diff / ((double)c->hits[k] / (double)c->exposures) : 0.0,
                    z, p, p < 0.05 ? "  significant at 5%" : "");
        }
    }
}

void ab_report_print(const ab_report *r, FILE *f) {
    print_variants(f, r);
    print_sources(f, r);
    if (r->n > 1) print_comparisons(f, r);
}
