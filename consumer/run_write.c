/* run_write: commits the pipeline's write batches on a thread of its own.
 *
 * The RocksDB write of a batch (memtable inserts, the WAL append) was ~15%
 * of the loop thread's time, and the loop thread is the processor's
 * critical path; here it runs beside the next batches instead. The store's
 * rule is unchanged: batches are written strictly in the order handed
 * over, and once one fails every later one is refused unwritten, so the
 * store still only ever holds a prefix of the stream. The pipeline
 * (run_pipe.c) keeps a batch, and its overlay records, until its commit is
 * done, so a reader never misses a write in flight. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "run_int.h"

struct run_commit {
    state_batch *wb; /* owned */
    atomic_int status;
    char why[256];
    run_commit *next;
};

struct run_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t go, idle;
    run_commit *head, *tail; /* queued, oldest first */
    int quit, busy, threaded;
    int refusing; /* a commit failed: refuse the rest until run_writer_idle */
};

/* Commits j unless an earlier commit failed. Returns its status. */
static int commit(run_writer *w, run_commit *j) {
    if (w->refusing) {
        snprintf(j->why, sizeof(j->why), "an earlier batch was not written");
        return -1;
    }
    if (state_batch_commit(j->wb, j->why, sizeof(j->why))) return w->refusing = 1, -1;
    return 1;
}

static void *writer(void *arg) {
    run_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->head) pthread_cond_wait(&w->go, &w->mu);
        if (!w->head) break; /* quit with nothing queued */
        run_commit *j = w->head;
        if (!(w->head = j->next)) w->tail = NULL;
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        int st = commit(w, j); /* refusing is only written by this thread meanwhile */
        pthread_mutex_lock(&w->mu);
        w->busy = 0;
        atomic_store_explicit(&j->status, st, memory_order_release); /* j is the loop's now */
        pthread_cond_broadcast(&w->idle);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

run_writer *run_writer_start(void) {
    run_writer *w = util_calloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->go, NULL);
    pthread_cond_init(&w->idle, NULL);
    w->threaded = pthread_create(&w->thread, NULL, writer, w) == 0;
    if (!w->threaded) log_warn("run: no state writer thread; writing on the loop thread");
    return w;
}

void run_writer_stop(run_writer *w) {
    if (!w) return;
    if (w->threaded) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_signal(&w->go);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_cond_destroy(&w->go);
    pthread_cond_destroy(&w->idle);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

run_commit *run_writer_submit(run_writer *w, state_batch *wb) {
    run_commit *j = util_calloc(1, sizeof(*j));
    j->wb = wb;
    if (!w->threaded) {
        atomic_store(&j->status, commit(w, j));
        return j;
    }
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->go);
    pthread_mutex_unlock(&w->mu);
    return j;
}

int run_commit_status(const run_commit *j, const char **why) {
    int st = atomic_load_explicit(&j->status, memory_order_acquire);
    if (why) *why = j->why;
    return st;
}

void run_commit_free(run_commit *j) {
    if (!j) return;
    state_batch_free(j->wb);
    free(j);
}

void run_writer_idle(run_writer *w) {
    pthread_mutex_lock(&w->mu);
    while (w->head || w->busy) pthread_cond_wait(&w->idle, &w->mu);
    w->refusing = 0;
    pthread_mutex_unlock(&w->mu);
}
