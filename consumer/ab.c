/* ab: A/B experiment configuration, the stable user-to-variant assignment,
 * and the online hit/exposure accounting of each event against the list last
 * published to its user. The hash is xxh3_64 of salt || user id, so any
 * instance (or any other program with xxh3) assigns a user identically. */
#include "ab.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void ab_init(ab_config *ab) {
    memset(ab, 0, sizeof(*ab));
}

static int name_ok(const char *s, size_t n) {
    if (n == 0 || n > AB_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return 0;
    return 1;
}

static void variant_defaults(ab_variant *v) {
    memset(v, 0, sizeof(*v));
    v->share = NAN; /* "not given" */
    v->blend.strategy = MODEL_BLEND_INTERLEAVE;
    for (int s = 0; s < CODEC_SOURCES; s++) v->blend.weight[s] = 1.0f;
}

/* Applies one key=value of a variant spec. */
static int variant_key(ab_variant *v, const char *key, const char *val, char *errstr,
                       size_t errstr_size) {
    double d;
    int64_t i;
    static const char *const wkeys[CODEC_SOURCES] = {"w.online", "w.offline", "w.popular"};
    if (!strcmp(key, "name")) {
        if (!name_ok(val, strlen(val)))
            return snprintf(errstr, errstr_size,
                            "variant name '%s' must be 1-%d characters of [A-Za-z0-9_.-]", val,
                            AB_NAME_MAX),
                   -1;
        snprintf(v->name, sizeof(v->name), "%s", val);
        return 0;
    }
    if (!strcmp(key, "share")) {
        if (util_parse_double(val, 0, 1, &d) || d <= 0)
            return snprintf(errstr, errstr_size, "share '%s' must be a number in (0, 1]", val), -1;
        v->share = d;
        return 0;
    }
    if (!strcmp(key, "blend")) {
        int b = model_blend_strategy_parse(val);
        if (b < 0)
            return snprintf(errstr, errstr_size,
                            "blend '%s': use interleave, weighted, online, offline, popular or "
                            "rerank",
                            val),
                   -1;
        v->blend.strategy = (model_blend_strategy)b;
        return 0;
    }
    if (!strcmp(key, "n")) {
        if (util_parse_i64(val, 1, 1000, &i))
            return snprintf(errstr, errstr_size, "n '%s' must be 1..1000", val), -1;
        v->blend.n = (uint32_t)i;
        return 0;
    }
    if (!strcmp(key, "mix")) {
        if (util_parse_double(val, 0, 1e6, &d))
            return snprintf(errstr, errstr_size, "mix '%s' must be a number >= 0", val), -1;
        v->blend.rerank_mix = (float)d;
        return 0;
    }
    if (!strcmp(key, "foldin")) {
        if (util_parse_bool(val, &v->blend.rerank_foldin))
            return snprintf(errstr, errstr_size, "foldin '%s' must be true or false", val), -1;
        return 0;
    }
    for (int s = 0; s < CODEC_SOURCES; s++) {
        if (strcmp(key, wkeys[s])) continue;
        if (util_parse_double(val, 0, 1e6, &d))
            return snprintf(errstr, errstr_size, "%s '%s' must be a number >= 0", key, val), -1;
        v->blend.weight[s] = (float)d;
        return 0;
    }
    snprintf(errstr, errstr_size,
             "unknown variant key '%s' (name, share, blend, n, w.online, w.offline, w.popular, "
             "mix, foldin)",
             key);
    return -1;
}

int ab_add_variant(ab_config *ab, const char *spec, char *errstr, size_t errstr_size) {
    if (ab->finished) return snprintf(errstr, errstr_size, "experiment already configured"), -1;
    if (ab->n == AB_MAX_VARIANTS)
        return snprintf(errstr, errstr_size, "at most %d variants", AB_MAX_VARIANTS), -1;
    ab_variant v;
    variant_defaults(&v);
    char *copy = util_strdup(spec), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv && !rc; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "'%s' is not key=value", kv);
            rc = -1;
            break;
        }
        *eq = 0;
        rc = variant_key(&v, kv, eq + 1, errstr, errstr_size);
    }
    free(copy);
    if (rc) return -1;
    if (!v.name[0]) return snprintf(errstr, errstr_size, "variant '%s' has no name=", spec), -1;
    for (size_t i = 0; i < ab->n; i++)
        if (!strcmp(ab->variants[i].name, v.name))
            return snprintf(errstr, errstr_size, "variant '%s' given twice", v.name), -1;
    ab->variants[ab->n++] = v;
    return 0;
}

int ab_set_salt(ab_config *ab, const char *salt, char *errstr, size_t errstr_size) {
    if (strlen(salt) > AB_SALT_MAX)
        return snprintf(errstr, errstr_size, "experiment salt longer than %d bytes", AB_SALT_MAX),
               -1;
    snprintf(ab->salt, sizeof(ab->salt), "%s", salt);
    return 0;
}

int ab_finish(ab_config *ab, uint32_t default_n, char *errstr, size_t errstr_size) {
    if (ab->n == 0) {
        variant_defaults(&ab->variants[0]);
        snprintf(ab->variants[0].name, sizeof(ab->variants[0].name), "default");
        ab->n = 1;
    }
    if (ab->n == 1 && isnan(ab->variants[0].share)) ab->variants[0].share = 1.0;
    double sum = 0;
    for (size_t i = 0; i < ab->n; i++) {
        ab_variant *v = &ab->variants[i];
        if (isnan(v->share))
            return snprintf(errstr, errstr_size, "variant '%s' needs share= (of 1)", v->name), -1;
        if (v->blend.n == 0) v->blend.n = default_n ? default_n : 20;
        sum += v->share;
        ab->cum[i] = sum;
    }
    if (fabs(sum - 1.0) > 1e-6)
        return snprintf(errstr, errstr_size, "variant shares sum to %g, not 1", sum), -1;
    ab->cum[ab->n - 1] = 1.0; /* rounding never leaves a gap at the top */
    ab->finished = 1;
    return 0;
}

int ab_opt_variant(const char *value, void *opaque, char *errstr, size_t errstr_size) {
    return ab_add_variant(opaque, value, errstr, errstr_size);
}

int ab_opt_salt(const char *value, void *opaque, char *errstr, size_t errstr_size) {
    return ab_set_salt(opaque, value, errstr, errstr_size);
}

double ab_point(const ab_config *ab, const char *user_id, size_t len) {
    char buf[AB_SALT_MAX + CODEC_ID_MAX + 1];
    size_t sl = strlen(ab->salt);
    if (len > CODEC_ID_MAX) len = CODEC_ID_MAX;
    memcpy(buf, ab->salt, sl);
    memcpy(buf + sl, user_id, len);
    uint64_t h = util_hash64(buf, sl + len, 0);
    return (double)(h >> 11) * 0x1.0p-53;
}

size_t ab_assign(const ab_config *ab, const char *user_id, size_t len) {
    if (ab->n <= 1) return 0;
    double x = ab_point(ab, user_id, len);
    for (size_t i = 0; i + 1 < ab->n; i++)
        if (x < ab->cum[i]) return i;
    return ab->n - 1;
}

void ab_variant_names(const ab_config *ab, const char *names[AB_MAX_VARIANTS]) {
    for (size_t i = 0; i < ab->n && i < AB_MAX_VARIANTS; i++) names[i] = ab->variants[i].name;
}

/* The first place of item_id among list[0, n) (items of a known source),
 * or n. Lengths first: one comparison per place instead of one per k and
 * place, which made these string compares up to 0.9% of the processor's CPU. */
static size_t place_of(const codec_rec_item *list, size_t n, const char *item_id, size_t item_len) {
    for (size_t i = 0; i < n; i++) {
        const char *id = list[i].item_id;
        if (!id || (unsigned)list[i].source >= CODEC_SOURCES) continue;
        if (codec_rec_item_len(&list[i]) == item_len && !memcmp(id, item_id, item_len)) return i;
    }
    return n;
}

void ab_record_event(metrics *m, size_t variant, const char *user_id, size_t user_len,
                     const codec_rec_item *published, size_t n_published, const char *item_id,
                     size_t item_len) {
    metrics_ab_user(m, variant, user_id, user_len);
    if (n_published == 0) return;
    metrics_ab_exposure(m, variant);
    size_t place = place_of(published, n_published, item_id, item_len); /* a hit at k if < k */
    /* The ks ascend: each one's counts extend the previous prefix's. */
    uint64_t per_source[CODEC_SOURCES] = {0};
    size_t i = 0;
    for (size_t ki = 0; ki < METRICS_AB_KS; ki++) {
        size_t k = metrics_ab_k[ki] < n_published ? metrics_ab_k[ki] : n_published;
        for (; i < k; i++)
            if ((unsigned)published[i].source < CODEC_SOURCES) per_source[published[i].source]++;
        for (int s = 0; s < CODEC_SOURCES; s++)
            if (per_source[s])
                metrics_ab_item_exposures(m, variant, (codec_source)s, ki, per_source[s]);
        if (place < k) metrics_ab_hit(m, variant, published[place].source, ki);
    }
}
