/* `recstream demo`: not written yet; its issue owns this file. */
#include <stdio.h>

#include "commands.h"

int cmd_demo(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "recstream: %s is not implemented yet\n", argv[0]);
    return 1;
}
