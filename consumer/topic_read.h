/* topic_read: reads a whole topic once, from the beginning of every partition
 * to the high watermark it had when reading started (so it ends even while
 * producers go on writing). For `recstream train --topic` and tools that need
 * a snapshot of a topic; not a stream consumer (no group, no commits).
 * Consumer-internal. */
#ifndef RECSTREAM_TOPIC_READ_H
#define RECSTREAM_TOPIC_READ_H

#include <stddef.h>
#include <stdint.h>

#include "producer.h"

/* Called once per message in partition order (partitions interleave). A
 * non-zero return stops reading; topic_read_all then returns what was read. */
typedef int (*topic_read_fn)(const rd_kafka_message_t *m, void *opaque);

/* Reads `topic` through a client built from kc and brokers (NULL: from kc).
 * idle_timeout_ms bounds the wait for the next message (and for metadata);
 * reaching it before the end is an error. Returns the number of messages
 * passed to fn, or -1 with errstr (unknown topic, broker unreachable, idle
 * timeout, a bad -X setting). */
int64_t topic_read_all(const producer_kconf *kc, const char *brokers, const char *topic,
                       int idle_timeout_ms, topic_read_fn fn, void *opaque, char *errstr,
                       size_t errstr_size);

#endif
