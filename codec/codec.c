/* codec: placeholder until the codec lands (issue 2). */
#include "codec.h"
