/* codec internals: a UserEvent reader for one foreign writer schema (see
 * avro_resolve.c for why avro-c is wrapped this way). */
#ifndef RECSTREAM_CODEC_RESOLVE_H
#define RECSTREAM_CODEC_RESOLVE_H

#include "codec.h"

typedef struct codec_resolver codec_resolver;

/* Returns NULL with errstr when the writer schema does not parse or cannot
 * be read as a UserEvent. */
codec_resolver *codec_resolver_new(const char *writer_json, char *errstr, size_t errstr_size);
void codec_resolver_free(codec_resolver *r);
codec_err codec_resolver_decode(codec_resolver *r, const uint8_t *buf, size_t len, codec_event *out,
                                char *detail, size_t detail_size);

#endif
