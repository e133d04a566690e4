/* Dead-letter publishing (see dlq.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dlq.h"

int dlq_send(producer_out *out, const char *dlq_topic, const rd_kafka_message_t *msg,
             const char *reason, const char *detail, void *msg_opaque, char *errstr,
             size_t errstr_size) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char part[16], off[24];
    snprintf(part, sizeof(part), "%" PRId32, msg->partition);
    snprintf(off, sizeof(off), "%" PRId64, msg->offset);
    producer_header h[] = {
        {DLQ_H_ERROR, reason, strlen(reason)},
        {DLQ_H_TOPIC, topic, strlen(topic)},
        {DLQ_H_PARTITION, part, strlen(part)},
        {DLQ_H_OFFSET, off, strlen(off)},
        {DLQ_H_DETAIL, detail ? detail : "", detail ? strlen(detail) : 0},
    };
    return producer_out_send(out, dlq_topic, msg->key, msg->key_len, msg->payload, msg->len, h,
                             sizeof(h) / sizeof(*h), msg_opaque, errstr, errstr_size);
}
