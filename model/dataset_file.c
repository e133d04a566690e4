/* Reading an event file (TSV, CSV, JSON lines) into a dataset through the
 * codec's file reader: bad lines are skipped and counted, or under strict
 * the first one stops the read with its line number. */
#include <stdio.h>

#include "model.h"
#include "util.h"

#define WARN_FIRST 5 /* bad lines reported one by one; the rest only counted */

int model_dataset_read_file(model_dataset *ds, const char *path, const codec_file_opts *opts,
                            int strict, size_t *n_bad, model_warn_cb warn_cb, void *opaque,
                            char *errstr, size_t errstr_size) {
    size_t bad = 0;
    codec_file_reader *r = codec_file_open(path, opts, errstr, errstr_size);
    if (!r) return -1;
    codec_event ev;
    char why[512];
    int rc;
    long line = codec_file_line(r);
    while ((rc = codec_file_next(r, &ev, why, sizeof(why))) != 0) {
        if (rc == 1) {
            model_dataset_add(ds, &ev);
            line = codec_file_line(r);
            continue;
        }
        /* A failure that consumed no line is an I/O error, not a bad line:
         * skipping it would only see it again. */
        int io_error = codec_file_line(r) == line;
        line = codec_file_line(r);
        if (strict || io_error) {
            snprintf(errstr, errstr_size, "%s", why);
            codec_file_close(r);
            if (n_bad) *n_bad = bad + 1;
            return -1;
        }
        if (bad++ < WARN_FIRST && warn_cb) warn_cb(why, opaque);
    }
    codec_file_close(r);
    if (n_bad) *n_bad = bad;
    return 0;
}
