/* run_write: the writer thread commits write batches to a real store in the
 * order handed over, and once a commit fails it refuses every later one
 * unwritten until the pipeline has waited for it (run_writer_idle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "run_int.h"
#include "test_consumer_fixture.h"

#define BATCHES 200

static state_store *open_store(const char *dir, int read_only) {
    state_options o;
    state_options_default(&o);
    o.read_only = read_only;
    state_store *s = NULL;
    char err[512];
    assert_int_equal(state_open(dir, &o, &s, err, sizeof(err)), 0);
    return s;
}

/* Batch i stores offset i + 1 for partition 0 and for partition i % 4 + 1. */
static state_batch *numbered(state_store *s, int i) {
    state_batch *b = state_batch_new(s);
    state_batch_set_offset(b, "events", 0, i + 1);
    state_batch_set_offset(b, "events", i % 4 + 1, i + 1);
    return b;
}

static int64_t offset_of(state_store *s, int32_t partition) {
    int64_t next = -1;
    char err[256];
    assert_int_equal(state_get_offset(s, "events", partition, &next, err, sizeof(err)), 1);
    return next;
}

static void test_in_order(void **st) {
    (void)st;
    char dir[1024];
    state_store *s = open_store(fx_dir(dir, sizeof(dir), "write-order"), 0);
    run_writer *w = run_writer_start();
    run_commit *c[BATCHES];
    for (int i = 0; i < BATCHES; i++) c[i] = run_writer_submit(w, numbered(s, i));
    run_writer_idle(w);
    for (int i = 0; i < BATCHES; i++) {
        assert_int_equal(run_commit_status(c[i], NULL), 1);
        run_commit_free(c[i]);
    }
    /* the last batch of each key was written last */
    assert_int_equal(offset_of(s, 0), BATCHES);
    for (int p = 1; p <= 4; p++) assert_int_equal(offset_of(s, p), BATCHES - 4 + p);
    run_writer_stop(w);
    state_close(s);
}

static void test_refuses_after_failure(void **st) {
    (void)st;
    char dir[1024];
    fx_dir(dir, sizeof(dir), "write-fail");
    state_close(open_store(dir, 0));
    state_store *s = open_store(dir, 1); /* every write fails */
    run_writer *w = run_writer_start();
    run_commit *c[3];
    for (int i = 0; i < 3; i++) c[i] = run_writer_submit(w, numbered(s, i));
    run_writer_idle(w);
    const char *why;
    assert_int_equal(run_commit_status(c[0], &why), -1);
    assert_null(strstr(why, "earlier batch")); /* the store's own reason */
    assert_true(why[0] != '\0');
    for (int i = 1; i < 3; i++) {
        assert_int_equal(run_commit_status(c[i], &why), -1);
        assert_non_null(strstr(why, "earlier batch"));
    }
    /* after the pipeline waited, the next batch is tried again */
    run_commit *again = run_writer_submit(w, numbered(s, 3));
    run_writer_idle(w);
    assert_int_equal(run_commit_status(again, &why), -1);
    assert_null(strstr(why, "earlier batch"));
    for (int i = 0; i < 3; i++) run_commit_free(c[i]);
    run_commit_free(again);
    run_writer_stop(w);
    state_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_refuses_after_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
