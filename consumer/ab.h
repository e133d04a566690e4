/* ab: A/B experiments. Variants (name, share of users, blending strategy
 * and weights) are configured by repeated --variant flags (or `variant=`
 * lines of a -c file) and an --experiment-salt; each user is assigned by a
 * stable hash of salt + user id, so assignment survives restarts and agrees
 * across instances. Online evaluation: a user's next event is a hit at k when
 * its item stood in the top-k last published to that user.
 *
 * Without any --variant there is one variant, "default", with share 1 and
 * the interleave blend, so outputs always carry a variant name. */
#ifndef RECSTREAM_AB_H
#define RECSTREAM_AB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "metrics.h"
#include "model.h"

#define AB_MAX_VARIANTS METRICS_MAX_VARIANTS
#define AB_NAME_MAX     32  /* bytes in a variant name: [A-Za-z0-9_.-] */
#define AB_SALT_MAX     128 /* bytes in the experiment salt */

typedef struct ab_variant {
    char name[AB_NAME_MAX + 1];
    double share;             /* of users, (0, 1] */
    model_blend_params blend; /* strategy, weights, n (0 = the run's default) */
} ab_variant;

typedef struct ab_config {
    ab_variant variants[AB_MAX_VARIANTS];
    size_t n;
    char salt[AB_SALT_MAX + 1];
    double cum[AB_MAX_VARIANTS]; /* cumulative shares, set by ab_finish */
    int finished;
} ab_config;

void ab_init(ab_config *ab);

/* Adds a variant from "name=online,share=0.5,blend=weighted,w.online=2,
 * w.offline=1,w.popular=0.5,n=20". Keys: name (required), share (required
 * when more than one variant), blend (interleave|weighted|online|offline|
 * popular|rerank; default interleave), w.online/w.offline/w.popular (weights
 * of WEIGHTED, default 1), n (items per list). Returns 0 or -1 with errstr. */
int ab_add_variant(ab_config *ab, const char *spec, char *errstr, size_t errstr_size);
int ab_set_salt(ab_config *ab, const char *salt, char *errstr, size_t errstr_size);

/* Validates and freezes the configuration: adds "default" when no variant
 * was given, fills n = 0 with default_n, checks that the shares sum to 1
 * (within 1e-6) and that names are unique. Returns 0 or -1 with errstr (the
 * command prints it as one line and exits 2). */
int ab_finish(ab_config *ab, uint32_t default_n, char *errstr, size_t errstr_size);

/* util_opt_fn adapters for an option table (opaque = ab_config *):
 *   {"variant", 0, UTIL_OPT_FUNC, &ab, 0, 0, 0, 0, ab_opt_variant, "SPEC", "..."},
 *   {"experiment-salt", 0, UTIL_OPT_FUNC, &ab, 0, 0, 0, 0, ab_opt_salt, "S", "..."} */
int ab_opt_variant(const char *value, void *opaque, char *errstr, size_t errstr_size);
int ab_opt_salt(const char *value, void *opaque, char *errstr, size_t errstr_size);

/* The variant index of a user: xxh3_64(salt || user_id) mapped to [0, 1)
 * (top 53 bits) against the cumulative shares. */
size_t ab_assign(const ab_config *ab, const char *user_id, size_t len);
/* The unit-interval point used by ab_assign (exposed for tests). */
double ab_point(const ab_config *ab, const char *user_id, size_t len);

/* Names of the variants in order, for metrics_new. */
void ab_variant_names(const ab_config *ab, const char *names[AB_MAX_VARIANTS]);

/* Online evaluation of one event, called BEFORE the user's state is updated
 * with it: counts the user for the variant, and when a list was published to
 * the user before (n_published > 0), one exposure, the items of each source
 * in the top-5 and top-10, and a hit at each k whose top-k holds item_id,
 * attributed to that item's source. published is the list as last published,
 * best first. */
void ab_record_event(metrics *m, size_t variant, const char *user_id, size_t user_len,
                     const codec_rec_item *published, size_t n_published, const char *item_id,
                     size_t item_len);

/* ==== Reporting (ab_stats.c): `recstream ab-report` and its tests ==== */

/* 95% Wilson score interval of x successes in n trials; [0, 0] when n = 0. */
void ab_wilson(uint64_t x, uint64_t n, double *lo, double *hi);

/* Two-proportion z-test of x2/n2 against x1/n1 (pooled standard error):
 * *z is positive when the second rate is higher, *p the two-sided p-value.
 * Returns -1 (z = 0, p = 1) when either n is 0 or the pooled rate is 0 or 1. */
int ab_two_prop_test(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2, double *z, double *p);

/* One sample line of the Prometheus text format, split in place:
 * `name{a="x",b="y"} 12.5`. Returns 1 for a sample, 0 for a comment or a
 * blank line, -1 when malformed. Label values are unescaped in place. */
#define AB_PROM_MAX_LABELS 8
typedef struct ab_prom_sample {
    const char *name;
    const char *label[AB_PROM_MAX_LABELS], *value_of[AB_PROM_MAX_LABELS];
    size_t n_labels;
    double value;
} ab_prom_sample;
int ab_prom_parse_line(char *line, ab_prom_sample *out);
/* The value of label name in s, or NULL. */
const char *ab_prom_label(const ab_prom_sample *s, const char *name);

/* The A/B metrics of one /metrics text, per variant in order of first
 * appearance (the configured order: the first is the control). */
typedef struct ab_report_variant {
    char name[AB_NAME_MAX + 1];
    double users;
    uint64_t exposures;
    uint64_t hits[METRICS_AB_KS]; /* over all sources */
    uint64_t hits_by_source[CODEC_SOURCES][METRICS_AB_KS];
    uint64_t shown_by_source[CODEC_SOURCES][METRICS_AB_KS]; /* item exposures */
} ab_report_variant;

typedef struct ab_report {
    ab_report_variant v[AB_MAX_VARIANTS];
    size_t n;
} ab_report;

/* Adds the A/B numbers of one page to *out: zero *out first, then parse
 * one page per instance to sum a scaled-out group (instances own disjoint
 * users). Returns 0, or -1 with errstr when the text holds no A/B metrics. */
int ab_report_parse(const char *text, size_t len, ab_report *out, char *errstr, size_t errstr_size);

/* The report as text (ab_print.c): variants with intervals, hits by source,
 * and each variant against the first when there are several. */
void ab_report_print(const ab_report *r, FILE *f);

#endif
