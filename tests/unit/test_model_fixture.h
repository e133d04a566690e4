/* Small clustered interaction data for the model tests: user u belongs to
 * cluster u % clusters, item i to cluster i % clusters, and 90% of a user's
 * events hit their own cluster, so a working ALS has structure to find.
 * Deterministic (a fixed LCG), built in memory, a few thousand rows. */
#ifndef TEST_MODEL_FIXTURE_H
#define TEST_MODEL_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "model.h"

static uint64_t fx_state;
static inline uint32_t fx_rand(uint32_t n) {
    fx_state = fx_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((fx_state >> 33) % n);
}

static inline void fx_event(model_dataset *ds, uint32_t user, uint32_t item, codec_event_type type,
                            int64_t ts) {
    codec_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.user_len = (uint16_t)snprintf(ev.user_id, sizeof(ev.user_id), "u%u", user);
    ev.item_len = (uint16_t)snprintf(ev.item_id, sizeof(ev.item_id), "i%u", item);
    ev.type = type;
    ev.ts_ms = ts;
    model_dataset_add(ds, &ev);
}

static inline model_dataset *fx_clustered(uint32_t users, uint32_t items, uint32_t clusters,
                                          uint32_t per_user, uint64_t seed) {
    model_dataset *ds = model_dataset_new();
    fx_state = seed;
    int64_t ts = 1700000000000LL;
    /* Intern every item first so item index == number in its name. */
    for (uint32_t i = 0; i < items; i++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "i%u", i);
        model_ids_intern(ds->items, name, (size_t)n);
    }
    for (uint32_t u = 0; u < users; u++) {
        uint32_t c = u % clusters;
        for (uint32_t e = 0; e < per_user; e++) {
            uint32_t item;
            if (fx_rand(10) < 9)
                item = c + clusters * fx_rand(items / clusters);
            else
                item = fx_rand(items);
            fx_event(ds, u, item, (codec_event_type)fx_rand(3), ts);
            ts += 1000;
        }
    }
    return ds;
}

#endif
