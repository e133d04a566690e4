/* dlq: the dead-letter side of the processor. A message that does not
 * decode is re-published, untouched (original key and bytes), to the
 * dead-letter topic with headers that say why and where it came from, so
 * that an operator can inspect it with kcat and replay it once fixed. */
#ifndef RECSTREAM_DLQ_H
#define RECSTREAM_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "producer.h"

/* Header names (DESIGN.md, Topics). */
#define DLQ_H_ERROR     "recstream.error"     /* codec_err_reason() token */
#define DLQ_H_DETAIL    "recstream.detail"    /* human detail, e.g. the field */
#define DLQ_H_TOPIC     "recstream.topic"     /* source topic */
#define DLQ_H_PARTITION "recstream.partition" /* decimal */
#define DLQ_H_OFFSET    "recstream.offset"    /* decimal */

/* Enqueues msg's key and value to dlq_topic with the headers above; the
 * delivery report comes back through the producer's callback with
 * msg_opaque. Returns 0, or -1 with errstr. */
int dlq_send(producer_out *out, const char *dlq_topic, const rd_kafka_message_t *msg,
             const char *reason, const char *detail, void *msg_opaque, char *errstr,
             size_t errstr_size);

#endif
