/* state: placeholder until the state store lands (issue 3). */
#include "util.h"
