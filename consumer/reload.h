/* reload: the model and offline-list files the processor serves from, kept
 * current by a background thread.
 *
 * Every reload_interval the thread stats both files; when one changed (inode,
 * size or mtime) it loads the new file with full validation off the hot
 * path and swaps it in under a mutex. The loop takes a reference to the
 * current pair at the start of a batch (reload_acquire) and drops it at the
 * end (reload_release), so a batch serves from one consistent pair and an
 * old model is freed only when the last batch using it is done. A file that
 * fails validation is logged and counted, and the one in use stays. */
#ifndef RECSTREAM_RELOAD_H
#define RECSTREAM_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "model.h"

typedef struct reload reload;

/* What one batch serves from. offline is NULL when no offline file is
 * configured. Valid between reload_acquire and reload_release. */
typedef struct reload_view {
    const model *model;
    const model_offline *offline;
    const char *model_version;   /* model->version */
    const char *offline_version; /* "none" without an offline file */
    void *refs[2];               /* internal */
} reload_view;

/* Loads model_path (required) and offline_path (optional, may be NULL) now;
 * either failing to load is an error at start. Then checks for changes every
 * interval_ms on a thread (interval_ms 0: never). Loads, refusals and
 * versions are reported to m when it is not NULL. NULL with errstr. */
reload *reload_start(const char *model_path, const char *offline_path, int64_t interval_ms,
                     metrics *m, char *errstr, size_t errstr_size);
/* Stops the thread and frees the files (no view may be held). */
void reload_stop(reload *r);

void reload_acquire(reload *r, reload_view *v);
void reload_release(reload *r, reload_view *v);

/* Checks both files once, on the caller's thread (what the thread does each
 * interval). Returns the number of files swapped in. */
int reload_check_now(reload *r);

/* Files swapped in, and files refused by validation, since start. */
uint64_t reload_count(const reload *r);
uint64_t reload_failures(const reload *r);
/* Wall-clock time (ms) the current model / offline file was loaded. */
int64_t reload_model_loaded_ms(const reload *r);
int64_t reload_offline_loaded_ms(const reload *r);

#endif
