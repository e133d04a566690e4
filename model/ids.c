/* Id tables: strings interned to dense indices in first-seen order. An
 * open-addressing hash table (linear probing, XXH3) over one growing array of
 * strings; lookups do no allocation, which matters on the per-event path. */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

struct model_ids {
    char **names;      /* index -> NUL-terminated id */
    uint32_t *lengths; /* index -> strlen */
    uint32_t n, cap;
    uint32_t *slots; /* MODEL_NONE or an index; size is a power of two */
    uint32_t mask;
};

model_ids *model_ids_new(void) {
    model_ids *ids = util_calloc(1, sizeof(*ids));
    ids->mask = 1023;
    ids->slots = util_malloc((ids->mask + 1) * sizeof(uint32_t));
    memset(ids->slots, 0xff, (ids->mask + 1) * sizeof(uint32_t));
    return ids;
}

void model_ids_free(model_ids *ids) {
    if (!ids) return;
    for (uint32_t i = 0; i < ids->n; i++) free(ids->names[i]);
    free(ids->names);
    free(ids->lengths);
    free(ids->slots);
    free(ids);
}

static uint32_t home(const model_ids *ids, const char *id, size_t len) {
    return (uint32_t)util_hash64(id, len, 0) & ids->mask;
}

/* The slot of id, probing from its home slot h. */
static uint32_t probe_from(const model_ids *ids, const char *id, size_t len, uint32_t h) {
    for (;;) {
        uint32_t idx = ids->slots[h];
        if (idx == MODEL_NONE || (ids->lengths[idx] == len && !memcmp(ids->names[idx], id, len)))
            return h;
        h = (h + 1) & ids->mask;
    }
}

static uint32_t probe(const model_ids *ids, const char *id, size_t len) {
    return probe_from(ids, id, len, home(ids, id, len));
}

static void grow_slots(model_ids *ids) {
    uint32_t old_size = ids->mask + 1;
    free(ids->slots);
    ids->mask = old_size * 2 - 1;
    ids->slots = util_malloc((size_t)(ids->mask + 1) * sizeof(uint32_t));
    memset(ids->slots, 0xff, (size_t)(ids->mask + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < ids->n; i++)
        ids->slots[probe(ids, ids->names[i], ids->lengths[i])] = i;
}

uint32_t model_ids_find(const model_ids *ids, const char *id, size_t len) {
    return ids->slots[probe(ids, id, len)];
}

/* A lookup is a chain of four dependent loads (slot, length, name pointer,
 * name), each a likely cache miss in the processor, where a user's window
 * of ~50 ids is looked up at once. Walking FIND_RUN ids down the chain a
 * step at a time, prefetching the next step of each, overlaps the misses
 * of the run instead of paying them one after another. */
#define FIND_RUN 16

void model_ids_find_many(const model_ids *ids, const char *const *id, const size_t *len, size_t n,
                         uint32_t *out) {
    for (size_t base = 0; base < n; base += FIND_RUN) {
        size_t m = n - base < FIND_RUN ? n - base : FIND_RUN;
        const char *const *x = id + base;
        const size_t *xl = len + base;
        uint32_t h[FIND_RUN];
        for (size_t i = 0; i < m; i++) {
            h[i] = home(ids, x[i], xl[i]);
            __builtin_prefetch(&ids->slots[h[i]]);
        }
        for (size_t i = 0; i < m; i++) {
            uint32_t idx = ids->slots[h[i]];
            if (idx == MODEL_NONE) continue;
            __builtin_prefetch(&ids->lengths[idx]);
            __builtin_prefetch(&ids->names[idx]);
        }
        for (size_t i = 0; i < m; i++) {
            uint32_t idx = ids->slots[h[i]];
            if (idx != MODEL_NONE) __builtin_prefetch(ids->names[idx]);
        }
        for (size_t i = 0; i < m; i++)
            out[base + i] = ids->slots[probe_from(ids, x[i], xl[i], h[i])];
    }
}

uint32_t model_ids_intern(model_ids *ids, const char *id, size_t len) {
    uint32_t h = probe(ids, id, len);
    if (ids->slots[h] != MODEL_NONE) return ids->slots[h];
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 1024;
        ids->names = util_realloc(ids->names, ids->cap * sizeof(char *));
        ids->lengths = util_realloc(ids->lengths, ids->cap * sizeof(uint32_t));
    }
    uint32_t idx = ids->n++;
    ids->names[idx] = util_strndup(id, len);
    ids->lengths[idx] = (uint32_t)len;
    ids->slots[h] = idx;
    /* Keep the load under one half so probes stay short. */
    if ((uint64_t)ids->n * 2 > ids->mask) grow_slots(ids);
    return idx;
}

const char *model_ids_name(const model_ids *ids, uint32_t idx) {
    return idx < ids->n ? ids->names[idx] : NULL;
}

uint32_t model_ids_count(const model_ids *ids) {
    return ids->n;
}
