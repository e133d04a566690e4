/* cli_events: the flags of the commands that read event files or generate
 * synthetic events (produce, train, eval), written once so that the three
 * accept the same spellings, ranges and errors. The rows go into each
 * command's util_cli table; the checks turn them into codec and model
 * settings after parsing. */
#include <string.h>

#include "producer.h"

size_t producer_file_opts(producer_file_flags *f, util_opt *out) {
    const util_opt rows[] = {
        {"format", 'f', UTIL_OPT_STRING, &f->format, .arg = "FMT",
         .help = "input tsv, csv or jsonl (default: from the file name)"},
        {"columns", 0, UTIL_OPT_STRING, &f->columns, .arg = "LIST",
         .help = "input columns from user,item,type,ts,weight,duration,- (default "
                 "user,item,type,ts)"},
        {"header", 0, UTIL_OPT_FLAG, &f->header, .help = "skip the first line of each file"},
        {"ts-unit", 0, UTIL_OPT_STRING, &f->ts_unit, .arg = "ms|s", .help = "unit of ts (ms)"},
        {"default-type", 0, UTIL_OPT_STRING, &f->default_type, .arg = "TYPE",
         .help = "type when there is no type column (view)"},
        {"strict", 0, UTIL_OPT_FLAG, &f->strict, .help = "stop at the first bad input line"},
    };
    _Static_assert(sizeof(rows) / sizeof(*rows) == PRODUCER_FILE_OPTS,
                   "PRODUCER_FILE_OPTS counts the rows");
    return util_opts_add(out, 0, rows, PRODUCER_FILE_OPTS);
}

static int parse_format(const char *s, codec_file_format *out) {
    if (!strcmp(s, "tsv"))
        *out = CODEC_FILE_TSV;
    else if (!strcmp(s, "csv"))
        *out = CODEC_FILE_CSV;
    else if (!strcmp(s, "jsonl") || !strcmp(s, "json"))
        *out = CODEC_FILE_JSONL;
    else
        return -1;
    return 0;
}

int producer_file_resolve(const util_cli *cli, const producer_file_flags *f, const char *path,
                          codec_file_opts *o) {
    memset(o, 0, sizeof(*o));
    o->columns = f->columns;
    o->header = f->header;
    o->format = path ? codec_file_format_guess(path) : CODEC_FILE_TSV;
    if (f->format && parse_format(f->format, &o->format))
        return util_cli_error(cli, "--format: expected tsv, csv or jsonl, not '%s'", f->format), -1;
    if (!strcmp(f->ts_unit, "ms"))
        o->ts_scale = 1;
    else if (!strcmp(f->ts_unit, "s"))
        o->ts_scale = 1000;
    else
        return util_cli_error(cli, "--ts-unit: expected ms or s, not '%s'", f->ts_unit), -1;
    int t = codec_event_type_parse(f->default_type, strlen(f->default_type));
    if (t < 0)
        return util_cli_error(cli, "--default-type: expected listen, view or like, not '%s'",
                              f->default_type),
               -1;
    o->default_type = (codec_event_type)t;
    return 0;
}

size_t producer_synth_opts(producer_synth_flags *s, util_opt *out) {
    const util_opt rows[] = {
        {"users", 0, UTIL_OPT_INT, &s->users, 1, UINT32_MAX - 1, .arg = "N",
         .help = "synthetic users (10000)"},
        {"items", 0, UTIL_OPT_INT, &s->items, 1, UINT32_MAX - 1, .arg = "N",
         .help = "synthetic items (2000)"},
        {"clusters", 0, UTIL_OPT_INT, &s->clusters, 1, 1000000, .arg = "N",
         .help = "synthetic taste clusters (20)"},
        {"zipf", 0, UTIL_OPT_DOUBLE, &s->zipf, .dmin = 0, .dmax = 10, .arg = "S",
         .help = "synthetic Zipf exponent of item popularity (1.0)"},
        {"in-cluster", 0, UTIL_OPT_DOUBLE, &s->in_cluster, .dmin = 0, .dmax = 1, .arg = "P",
         .help = "synthetic share of a user's events from their cluster (0.8)"},
        {"drift", 0, UTIL_OPT_DOUBLE, &s->drift, .dmin = 0, .dmax = 1, .arg = "P",
         .help = "synthetic chance per session to change cluster (0.02)"},
        {"new-users", 0, UTIL_OPT_DOUBLE, &s->new_users, .dmin = 0, .dmax = 0.9, .arg = "P",
         .help = "synthetic share of users arriving during the stream (0.1)"},
        {"new-items", 0, UTIL_OPT_DOUBLE, &s->new_items, .dmin = 0, .dmax = 0.9, .arg = "P",
         .help = "synthetic share of items released during the stream (0.1)"},
    };
    _Static_assert(sizeof(rows) / sizeof(*rows) == PRODUCER_SYNTH_OPTS,
                   "PRODUCER_SYNTH_OPTS counts the rows");
    return util_opts_add(out, 0, rows, PRODUCER_SYNTH_OPTS);
}

void producer_synth_params(const producer_synth_flags *s, model_synth_params *sp) {
    model_synth_params_default(sp);
    if (s->users >= 0) sp->users = (uint32_t)s->users;
    if (s->items >= 0) sp->items = (uint32_t)s->items;
    if (s->clusters >= 0) sp->clusters = (uint32_t)s->clusters;
    if (s->seed >= 0) sp->seed = (uint64_t)s->seed;
    if (s->zipf >= 0) sp->zipf_s = s->zipf;
    if (s->in_cluster >= 0) sp->in_cluster = s->in_cluster;
    if (s->drift >= 0) sp->drift = s->drift;
    if (s->new_users >= 0) sp->new_user_share = s->new_users;
    if (s->new_items >= 0) sp->new_item_share = s->new_items;
}
