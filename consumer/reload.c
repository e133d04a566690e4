/* Hot reload of the model and offline-list files (see reload.h). Loading
 * takes seconds for a big model, so it runs on its own thread and the loop
 * only ever takes a mutex to copy two pointers. Objects are reference
 * counted: the swap drops the reload's reference, the last batch using an
 * old object frees it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "reload.h"
#include "util.h"

enum { KIND_MODEL = 0, KIND_OFFLINE = 1 };

typedef struct ref {
    void *obj;
    int kind;
    int refs; /* guarded by reload.mu */
} ref;

/* What identifies a version of a file on disk: a rename gives a new inode,
 * an in-place rewrite a new size or mtime. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

typedef struct watched {
    const char *path; /* NULL: not configured */
    int kind;
    ref *cur;
    file_id loaded;  /* identity of the file behind cur */
    file_id refused; /* last identity that failed, not retried until it changes */
    int has_refused;
    int64_t loaded_ms;
} watched;

struct reload {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, has_thread;
    pthread_t thread;
    int64_t interval_ms;
    metrics *metrics; /* may be NULL */
    watched files[2];
    atomic_uint_least64_t n_reloads, n_failures;
};

static void obj_free(int kind, void *obj) {
    if (kind == KIND_MODEL)
        model_free(obj);
    else
        model_offline_free(obj);
}

static void unref(reload *r, ref *x) {
    if (!x) return;
    pthread_mutex_lock(&r->mu);
    int last = --x->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) {
        obj_free(x->kind, x->obj);
        free(x);
    }
}

static int file_stat(const char *path, file_id *id) {
    struct stat st;
    if (stat(path, &st)) return -1;
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    return 0;
}

static int same_file(const file_id *a, const file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static const char *obj_version(int kind, const void *obj) {
    if (!obj) return "none";
    return kind == KIND_MODEL ? ((const model *)obj)->version : model_offline_version(obj);
}

/* Tells the metrics which version is served now. */
static void report_version(reload *r, const watched *w) {
    if (!r->metrics || !w->cur) return;
    if (w->kind == KIND_MODEL) {
        const model *m = w->cur->obj;
        metrics_set_model(r->metrics, m->version, m->created_ms, m->n_items);
    } else {
        const model_offline *o = w->cur->obj;
        int64_t made = (int64_t)w->loaded.mtime.tv_sec * 1000 + w->loaded.mtime.tv_nsec / 1000000;
        metrics_set_offline(r->metrics, model_offline_version(o), made, model_offline_users(o));
    }
}

static void *obj_load(int kind, const char *path, char *err, size_t errsz) {
    if (kind == KIND_MODEL) {
        model *m = NULL;
        return model_load(path, &m, err, errsz) ? NULL : m;
    }
    model_offline *o = NULL;
    return model_offline_load(path, &o, err, errsz) ? NULL : o;
}

/* Loads w's file if it changed since the last load or refusal. Returns 1
 * when a new object was swapped in, 0 when nothing changed, -1 when the new
 * file was refused (the old one stays). */
static int check_file(reload *r, watched *w, char *err, size_t errsz) {
    file_id id;
    if (!w->path || file_stat(w->path, &id)) return 0; /* gone: keep serving the old one */
    if (w->cur && same_file(&id, &w->loaded)) return 0;
    if (w->has_refused && same_file(&id, &w->refused)) return 0;
    void *obj = obj_load(w->kind, w->path, err, errsz);
    if (!obj) {
        w->refused = id;
        w->has_refused = 1;
        return -1;
    }
    ref *x = util_calloc(1, sizeof(*x));
    x->obj = obj;
    x->kind = w->kind;
    x->refs = 1;
    pthread_mutex_lock(&r->mu);
    ref *old = w->cur;
    w->cur = x;
    w->loaded = id;
    w->has_refused = 0;
    w->loaded_ms = util_now_ms();
    pthread_mutex_unlock(&r->mu);
    unref(r, old);
    return 1;
}

int reload_check_now(reload *r) {
    int swapped = 0;
    for (int k = 0; k < 2; k++) {
        watched *w = &r->files[k];
        const char *what = k == KIND_MODEL ? "model" : "offline lists";
        char err[512] = "";
        const char *before = w->cur ? obj_version(k, w->cur->obj) : "none";
        char was[64];
        snprintf(was, sizeof(was), "%s", before);
        int rc = check_file(r, w, err, sizeof(err));
        if (rc != 0 && r->metrics)
            metrics_reload(r->metrics, k == KIND_MODEL ? METRICS_FILE_MODEL : METRICS_FILE_OFFLINE,
                           rc > 0);
        if (rc > 0) {
            report_version(r, w);
            atomic_fetch_add(&r->n_reloads, 1);
            swapped++;
            log_info("reload: %s %s loaded, version %s (was %s)", what, w->path,
                     obj_version(k, w->cur->obj), was);
        } else if (rc < 0) {
            atomic_fetch_add(&r->n_failures, 1);
            log_error("reload: %s refused: %s; keeping version %s", what, err, was);
        }
    }
    return swapped;
}

static void *reload_thread(void *arg) {
    reload *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (r->interval_ms % 1000) * 1000000;
        until.tv_sec += r->interval_ms / 1000 + ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT) continue;
        pthread_mutex_unlock(&r->mu);
        reload_check_now(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int first_load(reload *r, int kind, const char *path, char *errstr, size_t errsz) {
    watched *w = &r->files[kind];
    w->path = path;
    w->kind = kind;
    if (!path) return 0;
    char err[512] = "";
    if (file_stat(path, &w->loaded)) {
        snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    void *obj = obj_load(kind, path, err, sizeof(err));
    if (!obj) {
        snprintf(errstr, errsz, "%s", err); /* the loaders name the file */
        return -1;
    }
    w->cur = util_calloc(1, sizeof(ref));
    *w->cur = (ref){obj, kind, 1};
    w->loaded_ms = util_now_ms();
    log_info("reload: %s %s version %s", kind == KIND_MODEL ? "model" : "offline lists", path,
             obj_version(kind, obj));
    return 0;
}

reload *reload_start(const char *model_path, const char *offline_path, int64_t interval_ms,
                     metrics *m, char *errstr, size_t errstr_size) {
    if (!model_path) {
        snprintf(errstr, errstr_size, "no model file given (--model)");
        return NULL;
    }
    reload *r = util_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->interval_ms = interval_ms;
    r->metrics = m;
    if (first_load(r, KIND_MODEL, model_path, errstr, errstr_size) ||
        first_load(r, KIND_OFFLINE, offline_path, errstr, errstr_size)) {
        reload_stop(r);
        return NULL;
    }
    for (int k = 0; k < 2; k++) report_version(r, &r->files[k]);
    if (interval_ms > 0) {
        if (pthread_create(&r->thread, NULL, reload_thread, r)) {
            snprintf(errstr, errstr_size, "cannot start the reload thread");
            reload_stop(r);
            return NULL;
        }
        r->has_thread = 1;
    }
    return r;
}

void reload_stop(reload *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->has_thread) pthread_join(r->thread, NULL);
    for (int k = 0; k < 2; k++) unref(r, r->files[k].cur);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void reload_acquire(reload *r, reload_view *v) {
    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < 2; k++) {
        ref *x = r->files[k].cur;
        if (x) x->refs++;
        v->refs[k] = x;
    }
    pthread_mutex_unlock(&r->mu);
    ref *m = v->refs[KIND_MODEL], *o = v->refs[KIND_OFFLINE];
    v->model = m->obj;
    v->offline = o ? o->obj : NULL;
    v->model_version = v->model->version;
    v->offline_version = obj_version(KIND_OFFLINE, v->offline);
}

void reload_release(reload *r, reload_view *v) {
    for (int k = 0; k < 2; k++) unref(r, v->refs[k]);
    memset(v, 0, sizeof(*v));
}

uint64_t reload_count(const reload *r) {
    return atomic_load(&((reload *)r)->n_reloads);
}
uint64_t reload_failures(const reload *r) {
    return atomic_load(&((reload *)r)->n_failures);
}

int64_t reload_model_loaded_ms(const reload *r) {
    return r->files[KIND_MODEL].loaded_ms;
}
int64_t reload_offline_loaded_ms(const reload *r) {
    return r->files[KIND_OFFLINE].loaded_ms;
}
