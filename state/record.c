/* state/record.c: one user's record in memory (the H-event window and the
 * published list) and its compact, versioned binary encoding.
 *
 * Encoding (little-endian varints, docs/state.md has the full table):
 *   u8 version (1) | zigzag last_seen_ms | varint n_events |
 *   n x { varint len, item bytes, u8 type, zigzag ts delta, u8 flags, [f32] } |
 *   tagged fields until the end: { varint tag, varint len, bytes }.
 * A field added later gets a new tag; readers skip tags they do not know, so
 * records written today stay readable and a newer writer's records are read
 * by an older reader. The version byte changes only for a change the tags
 * cannot express; a reader refuses versions newer than its own. */
#include <stdlib.h>
#include <string.h>

#include "state_int.h"
#include "util.h"

#define TAG_PUBLISHED 1
#define FLAG_WEIGHT   1

/* ==== Arena of item id bytes ==== */

static uint32_t arena_add(state_user *u, const char *s, size_t len) {
    if (u->arena_len + len > u->arena_cap) {
        uint32_t cap = u->arena_cap ? u->arena_cap : 256;
        while (cap < u->arena_len + len) cap *= 2;
        u->arena = util_realloc(u->arena, cap);
        u->arena_cap = cap;
    }
    uint32_t off = u->arena_len;
    if (len) memcpy(u->arena + off, s, len);
    u->arena_len += (uint32_t)len;
    u->arena_live += (uint32_t)len;
    return off;
}

/* Rewrites the arena with only the strings still referenced, once garbage
 * (evicted ids, replaced published lists) outweighs live bytes. */
static void arena_compact(state_user *u) {
    if (u->arena_len < 4096 || u->arena_len < 2 * u->arena_live) return;
    char *old = u->arena;
    u->arena = NULL;
    u->arena_len = u->arena_cap = u->arena_live = 0;
    for (uint32_t i = 0; i < u->n_events; i++) {
        state_event *e = &u->events[i];
        e->item_off = arena_add(u, old + e->item_off, e->item_len);
    }
    for (uint32_t i = 0; i < u->n_published; i++) {
        state_pub *p = &u->published[i];
        p->item_off = arena_add(u, old + p->item_off, p->item_len);
    }
    free(old);
}

/* ==== Record operations ==== */

state_user *state_user_new(void) {
    return util_calloc(1, sizeof(state_user));
}

void state_user_free(state_user *u) {
    if (!u) return;
    free(u->events);
    free(u->published);
    free(u->arena);
    free(u);
}

void state_user_clear(state_user *u) {
    u->n_events = u->n_published = 0;
    u->arena_len = u->arena_live = 0;
    u->published_ts_ms = u->last_seen_ms = 0;
    u->variant[0] = '\0';
    memset(&u->evicted, 0, sizeof(u->evicted));
}

static void events_reserve(state_user *u, uint32_t n) {
    if (n <= u->cap_events) return;
    uint32_t cap = u->cap_events ? u->cap_events : 8;
    while (cap < n) cap *= 2;
    u->events = util_realloc(u->events, (size_t)cap * sizeof(state_event));
    u->cap_events = cap;
}

static void pubs_reserve(state_user *u, uint32_t n) {
    if (n <= u->cap_published) return;
    uint32_t cap = u->cap_published ? u->cap_published : 8;
    while (cap < n) cap *= 2;
    u->published = util_realloc(u->published, (size_t)cap * sizeof(state_pub));
    u->cap_published = cap;
}

int state_user_push_event(state_user *u, const char *item, size_t len, uint8_t type, int64_t ts_ms,
                          float weight, uint32_t h, state_event *evicted) {
    if (h == 0) h = 1;
    if (len > UINT16_MAX) len = UINT16_MAX;
    arena_compact(u);
    int fell = 0;
    /* A shrunk H (configuration change) trims several; report the last. */
    while (u->n_events >= h) {
        u->evicted = u->events[0];
        u->arena_live -= u->events[0].item_len;
        memmove(u->events, u->events + 1, (size_t)(u->n_events - 1) * sizeof(state_event));
        u->n_events--;
        fell = 1;
    }
    events_reserve(u, u->n_events + 1);
    state_event *e = &u->events[u->n_events++];
    e->item_off = arena_add(u, item, len);
    e->item_len = (uint16_t)len;
    e->type = type;
    e->weight = weight < 0 ? -1.0f : weight;
    e->ts_ms = ts_ms;
    if (fell && evicted) *evicted = u->evicted;
    return fell;
}

void state_user_set_published(state_user *u, const state_pub_in *items, size_t n,
                              const char *variant, int64_t ts_ms) {
    arena_compact(u);
    for (uint32_t i = 0; i < u->n_published; i++) u->arena_live -= u->published[i].item_len;
    u->n_published = 0;
    pubs_reserve(u, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = items[i].len > UINT16_MAX ? UINT16_MAX : items[i].len;
        state_pub *p = &u->published[u->n_published++];
        p->item_off = arena_add(u, items[i].item, len);
        p->item_len = (uint16_t)len;
        p->source = items[i].source;
        p->score = items[i].score;
    }
    snprintf(u->variant, sizeof(u->variant), "%s", variant ? variant : "");
    u->published_ts_ms = ts_ms;
}

void state_user_copy(state_user *dst, const state_user *src) {
    state_user_clear(dst);
    events_reserve(dst, src->n_events);
    pubs_reserve(dst, src->n_published);
    for (uint32_t i = 0; i < src->n_events; i++) {
        state_event *e = &dst->events[i];
        *e = src->events[i];
        e->item_off = arena_add(dst, state_user_item(src, &src->events[i]), e->item_len);
    }
    for (uint32_t i = 0; i < src->n_published; i++) {
        state_pub *p = &dst->published[i];
        *p = src->published[i];
        p->item_off = arena_add(dst, state_user_pub_item(src, &src->published[i]), p->item_len);
    }
    dst->n_events = src->n_events;
    dst->n_published = src->n_published;
    dst->published_ts_ms = src->published_ts_ms;
    dst->last_seen_ms = src->last_seen_ms;
    memcpy(dst->variant, src->variant, sizeof(dst->variant));
}

int state_user_published_find(const state_user *u, const char *item, size_t len, uint8_t *source) {
    for (uint32_t i = 0; i < u->n_published; i++) {
        const state_pub *p = &u->published[i];
        if (p->item_len == len && memcmp(state_user_pub_item(u, p), item, len) == 0) {
            if (source) *source = p->source;
            return 1;
        }
    }
    return 0;
}

/* ==== Encoding ==== */

typedef struct wbuf {
    char **buf;
    size_t *len, *cap;
} wbuf;

static void put_bytes(wbuf *w, const void *p, size_t n) {
    if (*w->len + n > *w->cap) {
        size_t cap = *w->cap ? *w->cap : 256;
        while (cap < *w->len + n) cap *= 2;
        *w->buf = util_realloc(*w->buf, cap);
        *w->cap = cap;
    }
    if (n) memcpy(*w->buf + *w->len, p, n);
    *w->len += n;
}

static void put_u8(wbuf *w, uint8_t v) {
    put_bytes(w, &v, 1);
}

static void put_varint(wbuf *w, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    put_bytes(w, tmp, n);
}

static void put_zigzag(wbuf *w, int64_t v) {
    put_varint(w, util_zigzag(v));
}

static void put_f32(wbuf *w, float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint8_t le[4] = {(uint8_t)b, (uint8_t)(b >> 8), (uint8_t)(b >> 16), (uint8_t)(b >> 24)};
    put_bytes(w, le, 4);
}

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

/* The exact length encode_published writes, so the tagged field's length
 * prefix goes first without a scratch buffer. */
static size_t published_size(const state_user *u) {
    size_t vlen = strnlen(u->variant, sizeof(u->variant) - 1);
    size_t n = varint_size(util_zigzag(u->published_ts_ms)) + varint_size(vlen) + vlen +
               varint_size(u->n_published);
    for (uint32_t i = 0; i < u->n_published; i++)
        n += varint_size(u->published[i].item_len) + u->published[i].item_len + 1 + 4;
    return n;
}

static void encode_published(const state_user *u, wbuf *w) {
    put_zigzag(w, u->published_ts_ms);
    size_t vlen = strnlen(u->variant, sizeof(u->variant) - 1);
    put_varint(w, vlen);
    put_bytes(w, u->variant, vlen);
    put_varint(w, u->n_published);
    for (uint32_t i = 0; i < u->n_published; i++) {
        const state_pub *p = &u->published[i];
        put_varint(w, p->item_len);
        put_bytes(w, state_user_pub_item(u, p), p->item_len);
        put_u8(w, p->source);
        put_f32(w, p->score);
    }
}

void state_user_encode(const state_user *u, char **buf, size_t *len, size_t *cap) {
    wbuf w = {buf, len, cap};
    put_u8(&w, STATE_FORMAT_VERSION);
    put_zigzag(&w, u->last_seen_ms);
    put_varint(&w, u->n_events);
    int64_t prev = 0;
    for (uint32_t i = 0; i < u->n_events; i++) {
        const state_event *e = &u->events[i];
        put_varint(&w, e->item_len);
        put_bytes(&w, state_user_item(u, e), e->item_len);
        put_u8(&w, e->type);
        put_zigzag(&w, (int64_t)((uint64_t)e->ts_ms - (uint64_t)prev));
        prev = e->ts_ms;
        put_u8(&w, e->weight >= 0 ? FLAG_WEIGHT : 0);
        if (e->weight >= 0) put_f32(&w, e->weight);
    }
    if (u->n_published || u->published_ts_ms || u->variant[0]) {
        put_varint(&w, TAG_PUBLISHED);
        put_varint(&w, published_size(u));
        encode_published(u, &w);
    }
}

/* ==== Decoding: every read is bounds-checked; input is untrusted. ==== */

typedef struct rbuf {
    const uint8_t *p, *end;
} rbuf;

static int get_u8(rbuf *r, uint8_t *v) {
    if (r->p >= r->end) return -1;
    *v = *r->p++;
    return 0;
}

static int get_varint(rbuf *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int get_zigzag(rbuf *r, int64_t *v) {
    uint64_t z;
    if (get_varint(r, &z)) return -1;
    *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    return 0;
}

static int get_f32(rbuf *r, float *f) {
    if (r->end - r->p < 4) return -1;
    uint32_t b = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    memcpy(f, &b, 4);
    r->p += 4;
    return 0;
}

/* An item id: length 1..65535 and within the buffer. */
static int get_item(rbuf *r, state_user *u, uint32_t *off, uint16_t *len) {
    uint64_t n;
    if (get_varint(r, &n) || n == 0 || n > UINT16_MAX || (uint64_t)(r->end - r->p) < n) return -1;
    *off = arena_add(u, (const char *)r->p, (size_t)n);
    *len = (uint16_t)n;
    r->p += n;
    return 0;
}

static int decode_events(rbuf *r, state_user *u) {
    uint64_t n;
    if (get_varint(r, &n) || n > STATE_H_MAX) return -1;
    events_reserve(u, (uint32_t)n);
    int64_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
        state_event *e = &u->events[i];
        int64_t delta;
        uint8_t flags;
        if (get_item(r, u, &e->item_off, &e->item_len) || get_u8(r, &e->type) ||
            get_zigzag(r, &delta) || get_u8(r, &flags))
            return -1;
        e->ts_ms = (int64_t)((uint64_t)prev + (uint64_t)delta);
        prev = e->ts_ms;
        e->weight = -1.0f;
        if ((flags & FLAG_WEIGHT) && get_f32(r, &e->weight)) return -1;
        u->n_events = (uint32_t)i + 1;
    }
    return 0;
}

static int decode_published(rbuf *r, state_user *u) {
    uint64_t vlen, n;
    if (get_zigzag(r, &u->published_ts_ms) || get_varint(r, &vlen) || vlen >= sizeof(u->variant) ||
        (uint64_t)(r->end - r->p) < vlen)
        return -1;
    memcpy(u->variant, r->p, (size_t)vlen);
    u->variant[vlen] = '\0';
    r->p += vlen;
    if (get_varint(r, &n) || n > STATE_H_MAX) return -1;
    pubs_reserve(u, (uint32_t)n);
    for (uint64_t i = 0; i < n; i++) {
        state_pub *p = &u->published[i];
        if (get_item(r, u, &p->item_off, &p->item_len) || get_u8(r, &p->source) ||
            get_f32(r, &p->score))
            return -1;
        u->n_published = (uint32_t)i + 1;
    }
    return r->p == r->end ? 0 : -1;
}

static int decode_tags(rbuf *r, state_user *u) {
    while (r->p < r->end) {
        uint64_t tag, len;
        if (get_varint(r, &tag) || get_varint(r, &len) || (uint64_t)(r->end - r->p) < len)
            return -1;
        rbuf field = {r->p, r->p + len};
        r->p += len;
        if (tag == TAG_PUBLISHED && decode_published(&field, u)) return -1;
        /* Unknown tags: a newer writer's field, skipped. */
    }
    return 0;
}

state_dec_result state_user_decode(const void *buf, size_t len, state_user *u) {
    state_user_clear(u);
    rbuf r = {buf, (const uint8_t *)buf + len};
    uint8_t version;
    if (get_u8(&r, &version) || version == 0) return STATE_DEC_CORRUPT;
    if (version > STATE_FORMAT_VERSION) return STATE_DEC_UNKNOWN_VERSION;
    if (get_zigzag(&r, &u->last_seen_ms) || decode_events(&r, u) || decode_tags(&r, u)) {
        state_user_clear(u);
        return STATE_DEC_CORRUPT;
    }
    return STATE_DEC_OK;
}

int state_record_last_seen(const char *val, size_t len, int64_t *out) {
    rbuf r = {(const uint8_t *)val, (const uint8_t *)val + len};
    uint8_t version;
    if (get_u8(&r, &version) || version == 0 || version > STATE_FORMAT_VERSION) return -1;
    return get_zigzag(&r, out);
}
