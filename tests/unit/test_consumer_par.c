/* run_par: every index of every job runs exactly once, on the loop thread
 * (worker 0) or the helper (worker 1), the call returns only when all are
 * done, and small jobs stay on the caller. Run it under the ThreadSanitizer
 * build (-DRECSTREAM_TSAN=ON) to check the hand-off itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "run_int.h"

#define N 1000

typedef struct job {
    int hits[N];
    int by_worker[2];
    long sum[2]; /* per worker, so no two threads write one slot */
} job;

static void touch(void *ctx, size_t i, int worker) {
    job *j = ctx;
    /* about a microsecond of work, so that the helper wakes before the
     * loop thread has taken every index on its own */
    for (volatile int spin = 0; spin < 1000; spin++) {
    }
    j->hits[i]++;
    j->sum[worker] += (long)i;
    j->by_worker[worker]++;
}

static void test_each_index_once(void **st) {
    (void)st;
    run_par *p = run_par_start();
    static job j;
    int helper_worked = 0;
    for (int round = 0; round < 200; round++) {
        memset(&j, 0, sizeof(j));
        size_t n = (size_t)(round * 37 % N) + 1;
        run_par_for(p, n, 8, touch, &j);
        for (size_t i = 0; i < n; i++) assert_int_equal(j.hits[i], 1);
        for (size_t i = n; i < N; i++) assert_int_equal(j.hits[i], 0);
        assert_int_equal(j.sum[0] + j.sum[1], (long)(n * (n - 1) / 2));
        assert_int_equal(j.by_worker[0] + j.by_worker[1], (int)n);
        if (n < 8) assert_int_equal(j.by_worker[1], 0); /* below min: not handed off */
        helper_worked |= j.by_worker[1] > 0;
    }
    assert_true(helper_worked);
    run_par_stop(p);
}

static void test_stop_without_jobs(void **st) {
    (void)st;
    run_par_stop(run_par_start());
    run_par_stop(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_index_once),
        cmocka_unit_test(test_stop_without_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
