/* run_par: a parallel for over the users of a batch, on the loop thread and
 * one helper thread. Scoring a user's list (50% of the loop's work) only
 * reads the model and writes that user's own record and its own output, so
 * users can be scored in any order on any thread; everything else of the
 * batch (state, the pipeline, producing, metrics) stays on the loop thread.
 *
 * Indices are handed out one at a time from an atomic counter, so a slow
 * user does not hold back a whole half. The call returns when every index
 * is done: from the caller's side it is an ordinary function call. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "run_int.h"

struct run_par {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen; /* job number; the helper starts when it changes */
    int quit, busy;
    size_t n;
    atomic_size_t next;
    run_par_fn fn;
    void *ctx;
};

static void work(run_par *p, int worker) {
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) return;
        p->fn(p->ctx, i, worker);
    }
}

static void *helper(void *arg) {
    run_par *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        work(p, 1);
        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

run_par *run_par_start(void) {
    run_par *p = util_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (pthread_create(&p->thread, NULL, helper, p)) {
        log_warn("run: no scoring helper thread; scoring on the loop thread only");
        p->quit = 1; /* run_par_for then works alone */
    }
    return p;
}

void run_par_stop(run_par *p) {
    if (!p) return;
    int started = !p->quit;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_signal(&p->go);
    pthread_mutex_unlock(&p->mu);
    if (started) pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void run_par_for(run_par *p, size_t n, size_t min, run_par_fn fn, void *ctx) {
    p->n = n;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->next, 0);
    if (n < min || p->quit) {
        work(p, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->gen++;
    p->busy = 1;
    pthread_cond_signal(&p->go);
    pthread_mutex_unlock(&p->mu);
    work(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
