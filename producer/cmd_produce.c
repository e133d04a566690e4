/* `recstream produce`: not written yet; its issue owns this file. */
#include <stdio.h>

#include "producer.h"

int producer_cmd_produce(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "recstream: %s is not implemented yet\n", argv[0]);
    return 1;
}
