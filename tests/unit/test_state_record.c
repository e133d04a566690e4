/* Unit tests of state/record.c: the H-event window, the published list, and
 * the versioned encoding (round trip, the direct copy equal to it, records of older writers, fields
 * of newer writers, newer versions refused, corrupt bytes never crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state.h"

static void push(state_user *u, const char *item, int64_t ts, uint32_t h, state_event *ev,
                 int *fell) {
    *fell = state_user_push_event(u, item, strlen(item), 1, ts, -1.0f, h, ev);
}

static void test_window_evicts_oldest(void **st) {
    state_user *u = state_user_new();
    state_event ev;
    int fell;
    char item[16];
    for (int i = 0; i < 5; i++) {
        snprintf(item, sizeof(item), "item%d", i);
        push(u, item, 100 + i, 3, &ev, &fell);
        assert_int_equal(fell, i >= 3);
        if (fell) {
            char want[16];
            snprintf(want, sizeof(want), "item%d", i - 3);
            assert_int_equal(ev.item_len, strlen(want));
            assert_memory_equal(state_user_item(u, &ev), want, ev.item_len);
            assert_int_equal(ev.ts_ms, 100 + i - 3);
        }
    }
    assert_int_equal(u->n_events, 3);
    assert_memory_equal(state_user_item(u, &u->events[0]), "item2", 5);
    assert_memory_equal(state_user_item(u, &u->events[2]), "item4", 5);
    state_user_free(u);
}

/* Many pushes: the arena is compacted, so memory stays bounded and the
 * window still holds the right ids. */
static void test_arena_bounded(void **st) {
    state_user *u = state_user_new();
    char item[32];
    int fell;
    state_event ev;
    for (int i = 0; i < 100000; i++) {
        snprintf(item, sizeof(item), "some-item-%06d", i);
        push(u, item, i, 50, &ev, &fell);
    }
    assert_true(u->arena_cap < 64 * 1024);
    assert_int_equal(u->n_events, 50);
    assert_memory_equal(state_user_item(u, &u->events[49]), "some-item-099999", 16);
    assert_memory_equal(state_user_item(u, &u->events[0]), "some-item-099950", 16);
    state_user_free(u);
}

static void fill(state_user *u) {
    state_user_push_event(u, "a", 1, 0, 1700000000000, -1.0f, 50, NULL);
    state_user_push_event(u, "bb", 2, 2, 1700000000500, 3.5f, 50, NULL);
    state_user_push_event(u, "ccc", 3, 1, 1699999999000, -1.0f, 50, NULL); /* out of order */
    state_pub_in pubs[] = {{"x", 1, STATE_SOURCE_ONLINE, 0.9f},
                           {"yy", 2, STATE_SOURCE_POPULAR, 0.1f}};
    state_user_set_published(u, pubs, 2, "B", 1700000001000);
    u->last_seen_ms = 1700000002000;
}

static void assert_same(const state_user *a, const state_user *b) {
    assert_int_equal(a->n_events, b->n_events);
    for (uint32_t i = 0; i < a->n_events; i++) {
        assert_int_equal(a->events[i].item_len, b->events[i].item_len);
        assert_memory_equal(state_user_item(a, &a->events[i]), state_user_item(b, &b->events[i]),
                            a->events[i].item_len);
        assert_int_equal(a->events[i].type, b->events[i].type);
        assert_int_equal(a->events[i].ts_ms, b->events[i].ts_ms);
        assert_true(a->events[i].weight == b->events[i].weight);
    }
    assert_int_equal(a->n_published, b->n_published);
    for (uint32_t i = 0; i < a->n_published; i++) {
        assert_memory_equal(state_user_pub_item(a, &a->published[i]),
                            state_user_pub_item(b, &b->published[i]), a->published[i].item_len);
        assert_int_equal(a->published[i].source, b->published[i].source);
        assert_true(a->published[i].score == b->published[i].score);
    }
    assert_string_equal(a->variant, b->variant);
    assert_int_equal(a->published_ts_ms, b->published_ts_ms);
    assert_int_equal(a->last_seen_ms, b->last_seen_ms);
}

static void test_round_trip(void **st) {
    state_user *u = state_user_new(), *v = state_user_new();
    fill(u);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    state_user_encode(u, &buf, &len, &cap);
    assert_int_equal(buf[0], STATE_FORMAT_VERSION);
    assert_true(len < 80); /* compact: ids + a few bytes per event */
    assert_int_equal(state_user_decode(buf, len, v), STATE_DEC_OK);
    assert_same(u, v);
    uint8_t src = 9;
    assert_true(state_user_published_find(v, "yy", 2, &src));
    assert_int_equal(src, STATE_SOURCE_POPULAR);
    assert_false(state_user_published_find(v, "zz", 2, &src));
    free(buf);
    state_user_free(u);
    state_user_free(v);
}

/* The overlay's copy is what a round trip through the encoding gives:
 * also after evictions and a replaced list left garbage in the arena, and
 * into a record that held something else. */
static void test_copy_equals_round_trip(void **st) {
    state_user *u = state_user_new(), *rt = state_user_new(), *cp = state_user_new();
    fill(u);
    char item[32];
    for (int i = 0; i < 300; i++) {
        snprintf(item, sizeof(item), "evicted-item-%03d", i);
        state_user_push_event(u, item, strlen(item), 0, 1700000003000 + i, 0.5f, 5, NULL);
    }
    state_pub_in pubs[] = {{"new", 3, STATE_SOURCE_OFFLINE, 0.5f}};
    state_user_set_published(u, pubs, 1, "A", 1700000004000);
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, cap = 0, len2 = 0, cap2 = 0;
    state_user_encode(u, &buf, &len, &cap);
    assert_int_equal(state_user_decode(buf, len, rt), STATE_DEC_OK);
    fill(cp); /* something to overwrite */
    state_user_copy(cp, u);
    assert_same(cp, rt);
    assert_int_equal(cp->arena_len, rt->arena_len); /* compacted alike */
    state_user_encode(cp, &buf2, &len2, &cap2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf);
    free(buf2);
    state_user_free(u);
    state_user_free(rt);
    state_user_free(cp);
}

/* Bytes of a version-1 record written before the published list existed:
 * last_seen 1000, events ("i1", LISTEN, ts 100) and ("i2", LIKE, ts 150,
 * weight 2.0). Kept verbatim: it must decode in every later build. */
static const uint8_t v1_plain[] = {0x01, 0xD0, 0x0F, 0x02, 0x02, 'i',  '1',  0x00, 0xC8, 0x01, 0x00,
                                   0x02, 'i',  '2',  0x02, 0x64, 0x01, 0x00, 0x00, 0x00, 0x40};

static void test_v1_record_still_decodes(void **st) {
    state_user *u = state_user_new();
    assert_int_equal(state_user_decode(v1_plain, sizeof(v1_plain), u), STATE_DEC_OK);
    assert_int_equal(u->last_seen_ms, 1000);
    assert_int_equal(u->n_events, 2);
    assert_memory_equal(state_user_item(u, &u->events[1]), "i2", 2);
    assert_int_equal(u->events[1].type, 2);
    assert_int_equal(u->events[1].ts_ms, 150);
    assert_true(u->events[1].weight == 2.0f);
    assert_true(u->events[0].weight < 0);
    assert_int_equal(u->n_published, 0); /* the field added later: empty */
    state_user_free(u);
}

/* A newer writer added field tag 7: this reader skips it, keeps the rest. */
static void test_unknown_field_skipped(void **st) {
    uint8_t rec[sizeof(v1_plain) + 5];
    memcpy(rec, v1_plain, sizeof(v1_plain));
    memcpy(rec + sizeof(v1_plain),
           "\x07\x03"
           "abc",
           5);
    state_user *u = state_user_new();
    assert_int_equal(state_user_decode(rec, sizeof(rec), u), STATE_DEC_OK);
    assert_int_equal(u->n_events, 2);
    /* A field that claims more bytes than there are is corrupt. */
    rec[sizeof(v1_plain) + 1] = 0x09;
    assert_int_equal(state_user_decode(rec, sizeof(rec), u), STATE_DEC_CORRUPT);
    assert_int_equal(u->n_events, 0);
    state_user_free(u);
}

static void test_newer_version_refused(void **st) {
    uint8_t rec[sizeof(v1_plain)];
    memcpy(rec, v1_plain, sizeof(rec));
    rec[0] = STATE_FORMAT_VERSION + 1;
    state_user *u = state_user_new();
    assert_int_equal(state_user_decode(rec, sizeof(rec), u), STATE_DEC_UNKNOWN_VERSION);
    assert_int_equal(u->n_events, 0);
    rec[0] = 0;
    assert_int_equal(state_user_decode(rec, sizeof(rec), u), STATE_DEC_CORRUPT);
    assert_int_equal(state_user_decode(rec, 0, u), STATE_DEC_CORRUPT);
    state_user_free(u);
}

/* Every truncation of a valid record, and random bytes: a clean error or a
 * valid record, never a crash (ASan watches the reads). */
static void test_corrupt_never_crashes(void **st) {
    state_user *u = state_user_new(), *v = state_user_new();
    fill(u);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    state_user_encode(u, &buf, &len, &cap);
    /* A cut exactly where the tagged fields begin is a valid record of an
     * older writer; every other cut is corrupt. */
    state_user plain = *u;
    plain.n_published = 0;
    plain.published_ts_ms = 0;
    plain.variant[0] = '\0';
    char *pbuf = NULL;
    size_t plen = 0, pcap = 0;
    state_user_encode(&plain, &pbuf, &plen, &pcap);
    free(pbuf);
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        assert_int_equal(state_user_decode(copy, cut, v),
                         cut == plen ? STATE_DEC_OK : STATE_DEC_CORRUPT);
        free(copy);
    }
    srand(7);
    uint8_t junk[64];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof(junk));
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)rand();
        if (n) junk[0] = 1;
        state_dec_result r = state_user_decode(junk, n, v);
        assert_true(r == STATE_DEC_OK || r == STATE_DEC_CORRUPT);
        if (r == STATE_DEC_CORRUPT) assert_int_equal(v->n_events, 0);
    }
    free(buf);
    state_user_free(u);
    state_user_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_evicts_oldest),
        cmocka_unit_test(test_arena_bounded),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_copy_equals_round_trip),
        cmocka_unit_test(test_v1_record_still_decodes),
        cmocka_unit_test(test_unknown_field_skipped),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_corrupt_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
