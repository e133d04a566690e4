/* codec: reading UserEvents written with a foreign writer schema (a framed
 * message whose schema id names a schema other than ours).
 *
 * avro-c does the schema resolution (avro_resolved_writer_new), with three
 * gaps of avro-c 1.11 filled here:
 *  - it trusts declared lengths (a string of length 2^60 is allocated before
 *    it is read), so every message is first walked against the writer schema
 *    by validate(), which checks each length, count, union branch and enum
 *    index against the bytes present, and finds trailing bytes;
 *  - it cannot fill reader fields missing from the writer from their
 *    defaults, so each writer gets a reader schema trimmed of the optional
 *    fields the writer lacks (they decode as absent, their default null);
 *  - it passes enum indexes through unchanged instead of matching symbols,
 *    so the writer's index is mapped here by symbol name, and a symbol our
 *    schema lacks takes the reader enum's default (VIEW).
 * One resolver per writer schema; its values and memory reader are reused. */
#include "codec_int.h"
#include "codec_resolve.h"
#include "util.h"

#include <avro.h>
#include <jansson.h>
#include <string.h>

enum { FLD_USER, FLD_ITEM, FLD_TYPE, FLD_TS, FLD_DURATION, FLD_WEIGHT, FLD__COUNT };
static const char *field_names[FLD__COUNT] = {"user_id", "item_id",     "type",
                                              "ts",      "duration_ms", "weight"};

#define MAX_DEPTH 32
#define MAX_ITEMS (1 << 20) /* array/map entries in one message, all blocks */

struct codec_resolver {
    avro_schema_t writer, reader;
    avro_value_iface_t *reader_iface, *resolver_iface;
    avro_value_t reader_value, resolved;
    avro_reader_t mem;
    int field_idx[FLD__COUNT];  /* index in the trimmed reader, -1 if absent */
    codec_event_type *type_map; /* writer enum index -> our type */
    int n_symbols;
};

/* ==== Validation walk ==== */

typedef struct {
    codec_avro_cur c;
    long items; /* entries seen in all arrays and maps */
} walk;

static codec_err walk_value(walk *w, avro_schema_t s, int depth);

static codec_err walk_blocks(walk *w, avro_schema_t item, avro_schema_t key, int depth) {
    for (;;) {
        int64_t count, size;
        codec_err e = codec_avro_read_long(&w->c, &count);
        if (e || count == 0) return e;
        if (count < 0 && (e = codec_avro_read_long(&w->c, &size))) return e;
        if (count < 0) count = count == INT64_MIN ? MAX_ITEMS + 1 : -count;
        if (count > MAX_ITEMS - w->items) return CODEC_ERR_BAD_VALUE;
        w->items += count;
        for (int64_t i = 0; i < count; i++) {
            if (key && (e = walk_value(w, key, depth + 1))) return e;
            if ((e = walk_value(w, item, depth + 1))) return e;
        }
    }
}

static codec_err walk_index(walk *w, int64_t n, int64_t *idx) {
    codec_err e = codec_avro_read_long(&w->c, idx);
    if (!e && (*idx < 0 || *idx >= n)) return CODEC_ERR_BAD_VALUE;
    return e;
}

static codec_err walk_fixed(walk *w, int64_t n) {
    if (n < 0 || n > w->c.end - w->c.p) return CODEC_ERR_TRUNCATED;
    w->c.p += n;
    return CODEC_OK;
}

static codec_err walk_value(walk *w, avro_schema_t s, int depth) {
    int64_t v;
    const char *str;
    size_t len;
    codec_err e;
    if (depth > MAX_DEPTH) return CODEC_ERR_BAD_VALUE;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return CODEC_OK;
    case AVRO_BOOLEAN:
        if (w->c.p >= w->c.end) return CODEC_ERR_TRUNCATED;
        return *w->c.p++ > 1 ? CODEC_ERR_BAD_VALUE : CODEC_OK;
    case AVRO_INT32:
        e = codec_avro_read_long(&w->c, &v);
        return !e && (v < INT32_MIN || v > INT32_MAX) ? CODEC_ERR_BAD_VALUE : e;
    case AVRO_INT64:
        return codec_avro_read_long(&w->c, &v);
    case AVRO_FLOAT:
        return walk_fixed(w, 4);
    case AVRO_DOUBLE:
        return walk_fixed(w, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        return codec_avro_read_str(&w->c, &str, &len);
    case AVRO_FIXED:
        return walk_fixed(w, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return walk_index(w, avro_schema_enum_number_of_symbols(s), &v);
    case AVRO_ARRAY:
        return walk_blocks(w, avro_schema_array_items(s), NULL, depth);
    case AVRO_MAP:
        return walk_blocks(w, avro_schema_map_values(s), avro_schema_string(), depth);
    case AVRO_UNION:
        if ((e = walk_index(w, (int64_t)avro_schema_union_size(s), &v))) return e;
        return walk_value(w, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if ((e = walk_value(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1)))
                return e;
        return CODEC_OK;
    case AVRO_LINK:
        return walk_value(w, avro_schema_link_target(s), depth + 1);
    default:
        return CODEC_ERR_SCHEMA;
    }
}

/* ==== Building a resolver ==== */

/* Our reader schema minus the fields with defaults that the writer lacks;
 * also returns the type enum's default symbol. */
static avro_schema_t trimmed_reader(avro_schema_t writer, codec_event_type *type_default,
                                    char *errstr, size_t errstr_size) {
    json_t *root = json_loads(codec_schema_user_event(), 0, NULL);
    json_t *fields = json_object_get(root, "fields");
    avro_schema_t reader = NULL;
    for (size_t i = 0; i < json_array_size(fields);) {
        json_t *f = json_array_get(fields, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *t = json_object_get(f, "type");
        const char *def = json_string_value(json_object_get(t, "default"));
        if (def && json_is_object(t))
            *type_default = (codec_event_type)codec_event_type_parse(def, strlen(def));
        if (avro_schema_record_field_get_index(writer, name) >= 0) {
            i++;
            continue;
        }
        if (!json_object_get(f, "default")) {
            codec_errstr(errstr, errstr_size, "writer schema lacks required field %s", name);
            goto out;
        }
        json_array_remove(fields, i);
    }
    char *text = json_dumps(root, JSON_COMPACT);
    if (avro_schema_from_json_length(text, strlen(text), &reader))
        codec_errstr(errstr, errstr_size, "trimmed reader schema: %s", avro_strerror());
    free(text);
out:
    json_decref(root);
    return reader;
}

/* Maps each writer enum symbol to our type by name, unknown ones to def. */
static int build_type_map(codec_resolver *r, codec_event_type def, char *errstr,
                          size_t errstr_size) {
    avro_schema_t t = avro_schema_record_field_get(r->writer, "type");
    if (t && is_avro_link(t)) t = avro_schema_link_target(t);
    if (!t || !is_avro_enum(t))
        return codec_errstr(errstr, errstr_size, "writer field type is not an enum");
    r->n_symbols = avro_schema_enum_number_of_symbols(t);
    r->type_map = util_calloc((size_t)r->n_symbols + 1, sizeof(*r->type_map));
    for (int i = 0; i < r->n_symbols; i++) {
        const char *sym = avro_schema_enum_get(t, i);
        int our = codec_event_type_parse(sym, strlen(sym));
        r->type_map[i] = our >= 0 ? (codec_event_type)our : def;
    }
    return 0;
}

static int build_values(codec_resolver *r, char *errstr, size_t errstr_size) {
    r->reader_iface = avro_generic_class_from_schema(r->reader);
    r->resolver_iface = avro_resolved_writer_new(r->writer, r->reader);
    if (!r->reader_iface || !r->resolver_iface)
        return codec_errstr(errstr, errstr_size, "writer schema does not resolve: %s",
                            avro_strerror());
    if (avro_generic_value_new(r->reader_iface, &r->reader_value) ||
        avro_resolved_writer_new_value(r->resolver_iface, &r->resolved))
        return codec_errstr(errstr, errstr_size, "avro values: %s", avro_strerror());
    avro_resolved_writer_set_dest(&r->resolved, &r->reader_value);
    for (int i = 0; i < FLD__COUNT; i++)
        r->field_idx[i] = avro_schema_record_field_get_index(r->reader, field_names[i]);
    r->mem = avro_reader_memory("", 0);
    return 0;
}

codec_resolver *codec_resolver_new(const char *writer_json, char *errstr, size_t errstr_size) {
    codec_resolver *r = util_calloc(1, sizeof(*r));
    codec_event_type def = CODEC_EVENT_VIEW;
    if (avro_schema_from_json_length(writer_json, strlen(writer_json), &r->writer)) {
        codec_errstr(errstr, errstr_size, "writer schema does not parse: %s", avro_strerror());
        r->writer = NULL;
        goto fail;
    }
    if (!is_avro_record(r->writer)) {
        codec_errstr(errstr, errstr_size, "writer schema is not a record");
        goto fail;
    }
    if (!(r->reader = trimmed_reader(r->writer, &def, errstr, errstr_size))) goto fail;
    if (build_type_map(r, def, errstr, errstr_size)) goto fail;
    if (build_values(r, errstr, errstr_size)) goto fail;
    return r;
fail:
    codec_resolver_free(r);
    return NULL;
}

void codec_resolver_free(codec_resolver *r) {
    if (!r) return;
    if (r->mem) avro_reader_free(r->mem);
    if (r->resolved.iface) avro_value_decref(&r->resolved);
    if (r->reader_value.iface) avro_value_decref(&r->reader_value);
    if (r->resolver_iface) avro_value_iface_decref(r->resolver_iface);
    if (r->reader_iface) avro_value_iface_decref(r->reader_iface);
    if (r->reader) avro_schema_decref(r->reader);
    if (r->writer) avro_schema_decref(r->writer);
    free(r->type_map);
    free(r);
}

/* ==== Decoding ==== */

static codec_err get_id(codec_resolver *r, int fld, char *dst, uint16_t *dst_len, char *detail,
                        size_t detail_size) {
    avro_value_t v;
    const char *s;
    size_t size;
    avro_value_get_by_index(&r->reader_value, (size_t)r->field_idx[fld], &v, NULL);
    if (avro_value_get_string(&v, &s, &size) || size == 0)
        return codec_fail(CODEC_ERR_FIELD_TYPE, detail, detail_size, "%s unreadable",
                          field_names[fld]);
    return codec_id_set(field_names[fld], s, size - 1, dst, dst_len, detail, detail_size);
}

/* An optional ["null", T] field: *present and the branch value. */
static int get_optional(codec_resolver *r, int fld, avro_value_t *branch) {
    avro_value_t v;
    int disc;
    if (r->field_idx[fld] < 0) return 0;
    avro_value_get_by_index(&r->reader_value, (size_t)r->field_idx[fld], &v, NULL);
    if (avro_value_get_discriminant(&v, &disc) || disc != 1) return 0;
    return avro_value_get_current_branch(&v, branch) == 0;
}

static codec_err extract(codec_resolver *r, codec_event *out, char *detail, size_t detail_size) {
    codec_err e;
    avro_value_t v;
    int idx;
    if ((e = get_id(r, FLD_USER, out->user_id, &out->user_len, detail, detail_size))) return e;
    if ((e = get_id(r, FLD_ITEM, out->item_id, &out->item_len, detail, detail_size))) return e;
    avro_value_get_by_index(&r->reader_value, (size_t)r->field_idx[FLD_TYPE], &v, NULL);
    if (avro_value_get_enum(&v, &idx) || idx < 0 || idx >= r->n_symbols)
        return codec_fail(CODEC_ERR_UNKNOWN_TYPE, detail, detail_size, "type index out of range");
    out->type = r->type_map[idx];
    avro_value_get_by_index(&r->reader_value, (size_t)r->field_idx[FLD_TS], &v, NULL);
    avro_value_get_long(&v, &out->ts_ms);
    out->has_duration =
        get_optional(r, FLD_DURATION, &v) && !avro_value_get_long(&v, &out->duration_ms);
    out->has_weight = get_optional(r, FLD_WEIGHT, &v) && !avro_value_get_float(&v, &out->weight);
    return codec_event_check_values(out, detail, detail_size);
}

codec_err codec_resolver_decode(codec_resolver *r, const uint8_t *buf, size_t len, codec_event *out,
                                char *detail, size_t detail_size) {
    walk w = {{buf, buf + len}, 0};
    codec_err e = walk_value(&w, r->writer, 0);
    if (e == CODEC_ERR_TRUNCATED)
        return codec_fail(e, detail, detail_size, "Avro input ends early (writer schema)");
    if (e) return codec_fail(e, detail, detail_size, "malformed Avro for the writer schema");
    if (w.c.p != w.c.end)
        return codec_fail(CODEC_ERR_TRAILING, detail, detail_size,
                          "%zu bytes left after the Avro record", (size_t)(w.c.end - w.c.p));
    avro_value_reset(&r->reader_value);
    avro_reader_memory_set_source(r->mem, (const char *)buf, (int64_t)len);
    if (avro_value_read(r->mem, &r->resolved))
        return codec_fail(CODEC_ERR_SCHEMA, detail, detail_size, "avro-c: %s", avro_strerror());
    return extract(r, out, detail, detail_size);
}
