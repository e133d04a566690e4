/* codec: the schemas/ *.avsc texts, embedded at build time by
 * codec/embed_schemas.cmake (see codec/CMakeLists.txt) so that the binary
 * and the repository's schema files cannot disagree. */
#include "codec.h"

extern const char codec_avsc_user_event[];
extern const char codec_avsc_recommendations[];
extern const char codec_avsc_offline_list[];

const char *codec_schema_user_event(void) {
    return codec_avsc_user_event;
}

const char *codec_schema_recommendations(void) {
    return codec_avsc_recommendations;
}

const char *codec_schema_offline_list(void) {
    return codec_avsc_offline_list;
}
