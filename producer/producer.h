/* producer: recstream's Kafka foundation and output side (owned by the
 * foundation work; see docs/architecture.md). */
#ifndef RECSTREAM_PRODUCER_H
#define RECSTREAM_PRODUCER_H

/* `recstream produce`. */
int producer_cmd_produce(int argc, char **argv);

#endif
