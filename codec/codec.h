/* codec: the wire forms of recstream's records.
 *
 * Decodes a UserEvent from any of the three accepted forms (Schema-Registry
 * framed Avro, raw Avro binary, one JSON object) into a fixed-size struct
 * with every field validated, and encodes UserEvent and Recommendations as
 * JSON, raw Avro or framed Avro. The .avsc files under schemas/ are embedded
 * at build time and are the only definition of the schemas.
 *
 * Decoding never allocates per event on the success path and never crashes on
 * input: every failure returns a codec_err whose codec_err_reason() is a short
 * stable token (used as the DLQ header value and as a metric label) plus a
 * human detail string. No Kafka here. */
#ifndef RECSTREAM_CODEC_H
#define RECSTREAM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CODEC_ID_MAX 256 /* bytes in a user or item id */

typedef enum {
    CODEC_EVENT_LISTEN = 0,
    CODEC_EVENT_VIEW = 1,
    CODEC_EVENT_LIKE = 2
} codec_event_type;
#define CODEC_EVENT_TYPES 3

typedef enum {
    CODEC_SOURCE_ONLINE = 0,
    CODEC_SOURCE_OFFLINE = 1,
    CODEC_SOURCE_POPULAR = 2
} codec_source;
#define CODEC_SOURCES 3

typedef struct codec_event {
    char user_id[CODEC_ID_MAX + 1]; /* NUL-terminated, valid UTF-8 */
    char item_id[CODEC_ID_MAX + 1];
    uint16_t user_len, item_len;
    codec_event_type type;
    int64_t ts_ms;    /* event time */
    int has_duration; /* duration_ms is set */
    int64_t duration_ms;
    int has_weight; /* weight is set and finite, >= 0 */
    float weight;
} codec_event;

typedef enum {
    CODEC_OK = 0,
    CODEC_ERR_EMPTY,              /* zero-length message */
    CODEC_ERR_TRUNCATED,          /* Avro ran out of bytes */
    CODEC_ERR_TRAILING,           /* bytes left after one whole record */
    CODEC_ERR_NOT_JSON,           /* looked like JSON, did not parse */
    CODEC_ERR_MISSING_FIELD,      /* a required field is absent */
    CODEC_ERR_FIELD_TYPE,         /* a field has the wrong type */
    CODEC_ERR_ID_EMPTY,           /* user_id or item_id is empty */
    CODEC_ERR_ID_TOO_LONG,        /* user_id or item_id over CODEC_ID_MAX */
    CODEC_ERR_UTF8,               /* an id is not valid UTF-8 */
    CODEC_ERR_UNKNOWN_TYPE,       /* event type not LISTEN/VIEW/LIKE */
    CODEC_ERR_BAD_VALUE,          /* negative duration, NaN weight, ... */
    CODEC_ERR_SCHEMA,             /* framed with a schema id that cannot be resolved */
    CODEC_ERR_SCHEMA_UNAVAILABLE, /* the writer schema could not be fetched (registry down) */
    CODEC_ERR__COUNT
} codec_err;

/* Short stable token for a codec_err, e.g. "truncated", "unknown_type". */
const char *codec_err_reason(codec_err err);

/* ---- Embedded schemas (JSON text of schemas/ *.avsc). */
const char *codec_schema_user_event(void);
const char *codec_schema_recommendations(void);
const char *codec_schema_offline_list(void);

/* ---- Decoding events.
 *
 * A decoder keeps the parsed reader schema and reusable Avro values, and the
 * writer schemas it has learned by id (Schema Registry), so it is created once
 * per thread and is not thread-safe. Form detection: first byte 0x00 and at
 * least 5 bytes -> framed Avro; first non-blank byte '{' -> JSON; otherwise raw
 * Avro (a valid raw UserEvent can never start with '{' or 0x00). Text that
 * starts with blanks and does not parse as JSON is also tried as raw Avro:
 * an id length of 5 or 16 is the byte '\n' or ' ' (docs/formats.md). */
typedef struct codec_decoder codec_decoder;

/* Called for a framed message whose schema id the decoder has not seen (the
 * Schema Registry client). Returns:
 *   1  found: *json_out is the writer schema (malloc'd, the decoder frees it);
 *   0  the id is unknown where the fetcher looked (errstr says so): the
 *      message fails with CODEC_ERR_SCHEMA, the id is asked again after 30 s;
 *  -1  the fetcher could not ask (timeout, refused, HTTP 5xx; errstr): the
 *      message fails with CODEC_ERR_SCHEMA_UNAVAILABLE, asked again after
 *      CODEC_FETCH_RETRY_FAILED_MS, so an outage costs one timeout per period
 *      rather than one per message.
 * Without a fetcher, unknown ids are read with the reader schema itself (the
 * common case: producer and processor share schemas/user_event.avsc). */
typedef int (*codec_schema_fetch_cb)(int32_t schema_id, void *opaque, char **json_out, char *errstr,
                                     size_t errstr_size);
#define CODEC_FETCH_RETRY_UNKNOWN_MS 30000
#define CODEC_FETCH_RETRY_FAILED_MS  5000
/* Failed ids remembered at most: past this they are forgotten (and asked
 * again when seen), so messages with random ids cannot grow the decoder. */
#define CODEC_FETCH_FAILED_MAX 1024

codec_decoder *codec_decoder_new(void);
void codec_decoder_free(codec_decoder *dec);
void codec_decoder_set_fetcher(codec_decoder *dec, codec_schema_fetch_cb cb, void *opaque);
/* Registers a writer schema for a framed schema id; it is resolved against
 * the reader schema once. Returns 0, or -1 with errstr when incompatible. */
int codec_decoder_add_writer_schema(codec_decoder *dec, int32_t schema_id, const char *schema_json,
                                    char *errstr, size_t errstr_size);

codec_err codec_decode_event(codec_decoder *dec, const void *buf, size_t len, codec_event *out,
                             char *detail, size_t detail_size);

/* Parses a type name (case-insensitive "listen", "view", "like"); -1 if none. */
int codec_event_type_parse(const char *s, size_t len);
const char *codec_event_type_name(codec_event_type t); /* "LISTEN" ... */
const char *codec_source_name(codec_source s);         /* "ONLINE" ... */

/* ---- Encoding. Output goes to a growable buffer that is reused. */
typedef enum {
    CODEC_FORMAT_JSON = 0,
    CODEC_FORMAT_AVRO = 1,       /* raw Avro binary */
    CODEC_FORMAT_AVRO_FRAMED = 2 /* 0x00, 4-byte big-endian schema id, Avro */
} codec_format;

/* Parses "json", "avro", "avro-framed"; -1 if none. */
int codec_format_parse(const char *s);

typedef struct codec_buf {
    char *data;
    size_t len, cap;
} codec_buf;

void codec_buf_reset(codec_buf *b);
void codec_buf_free(codec_buf *b);

typedef struct codec_rec_item {
    const char *item_id;
    float score;
    codec_source source;
    uint32_t item_len; /* strlen(item_id), or 0: the encoder counts it */
} codec_rec_item;

/* item_len, or strlen(item_id) when not carried (0 for a NULL id). */
size_t codec_rec_item_len(const codec_rec_item *it);

typedef struct codec_recs {
    const char *user_id;
    const codec_rec_item *items;
    size_t n_items;
    const char *model_version;
    const char *offline_version;
    const char *variant;
    int64_t trigger_ts;
    int64_t generated_ts;
} codec_recs;

/* Both return 0, or -1 with errstr (an id over the limit, say). schema_id is
 * used only by CODEC_FORMAT_AVRO_FRAMED. Appends to out after reset. */
int codec_encode_event(const codec_event *ev, codec_format fmt, int32_t schema_id, codec_buf *out,
                       char *errstr, size_t errstr_size);
int codec_encode_recs(const codec_recs *recs, codec_format fmt, int32_t schema_id, codec_buf *out,
                      char *errstr, size_t errstr_size);

/* Decodes a Recommendations record in any of the three forms (for tests,
 * `demo` and `inspect`, which read the output topic). Strings in *out point
 * into storage owned by the returned object; free it with codec_recs_free. */
typedef struct codec_recs_owned codec_recs_owned;
codec_err codec_decode_recs(const void *buf, size_t len, codec_recs_owned **out, char *detail,
                            size_t detail_size);
const codec_recs *codec_recs_view(const codec_recs_owned *r);
void codec_recs_free(codec_recs_owned *r);

/* ---- Event files: TSV, CSV or JSON lines, one event a line (for `produce`,
 * `train`, `eval`). Columns are mapped by name, in file order, from the
 * names user, item, type, ts, weight, duration and "-" (ignored), e.g.
 * "user,item,weight,ts" for MovieLens u.data. A missing type column gives
 * default_type; a missing ts column gives the line number as time. */
typedef enum { CODEC_FILE_TSV = 0, CODEC_FILE_CSV = 1, CODEC_FILE_JSONL = 2 } codec_file_format;

typedef struct codec_file_opts {
    codec_file_format format;
    const char *columns; /* NULL: "user,item,type,ts" */
    int header;          /* skip the first line */
    int64_t ts_scale;    /* ts column unit in ms: 1 (ms, default), 1000 (s) */
    codec_event_type default_type;
} codec_file_opts;

typedef struct codec_file_reader codec_file_reader;

/* Opens path ("-" is stdin). Returns NULL with errstr on failure (bad
 * column list, unreadable file). */
codec_file_reader *codec_file_open(const char *path, const codec_file_opts *opts, char *errstr,
                                   size_t errstr_size);
/* Reads the next good or bad line: returns 1 with *out filled, 0 at end of
 * file, -1 for a line that does not decode (errstr holds "path:LINE: reason";
 * the caller skips it and counts, or stops under --strict). */
int codec_file_next(codec_file_reader *r, codec_event *out, char *errstr, size_t errstr_size);
long codec_file_line(const codec_file_reader *r);
void codec_file_close(codec_file_reader *r);
/* Guesses the format from the file name: .csv, .jsonl/.json/.ndjson, else TSV. */
codec_file_format codec_file_format_guess(const char *path);

#endif
