#!/usr/bin/env bash
# `recstream bench --quick --json` keeps working: the whole benchmark (stream,
# model, processor over it, transport bound before and after it, the
# output-matched bound, fixed-rate latency and its floor) on tiny sizes, and
# its JSON carries positive, consistent figures. Also: the text report names
# every figure, --runs 2 reports the median of two processor runs between
# three bounds, and a bad flag is one line and exit 2.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
T="$TEST_TMPDIR/bench-$$"
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; tail -20 "$T"/*.err >&2 || true; exit 1; }

"$RECSTREAM" bench --quick --json --work-dir "$T" >"$T/out.json" 2>"$T/json.err" ||
    fail "bench --quick --json exited $?"
jq -e . "$T/out.json" >/dev/null || fail "not JSON: $(head -c 300 "$T/out.json")"
check() { jq -e "$1" "$T/out.json" >/dev/null || fail "$1 (got $(jq -c "$2" "$T/out.json"))"; }
check '.throughput_events_per_s > 0' '.throughput_events_per_s'
check '.transport_bound_events_per_s > 0' '.transport_bound_events_per_s'
# The bound runs before and after the processor; the ratio uses their mean.
check '(.transport_bound_runs | length == 2 and all(. > 0)) and ((.transport_bound_runs | add / 2) - .transport_bound_events_per_s | fabs) < 1' '.transport_bound_runs'
check '.ratio > 0 and (.ratio - .throughput_events_per_s / .transport_bound_events_per_s | fabs) < 0.01' '.ratio'
check '.runs == 1 and .throughput_runs == [.throughput_events_per_s] and .ratio_runs == [.ratio]' '[.runs, .throughput_runs, .ratio_runs]'
check '.applied == .events and .events == 20000' '[.applied, .events]'
check '.published > 0 and .batches > 0' '[.published, .batches]'
# A JSON list of 20 items is more than 20 times {"item_id":"","score":0,"source":"ONLINE"}.
check '.published_bytes_per_record > 20 * 41 and .published_bytes_per_record < 8192' '.published_bytes_per_record'
# The output-matched bound publishes what the processor published: as
# heavy records, as many per event; its quotients are what they say.
check '.output_bound.events_per_s > 0 and .output_bound.cpu_s > 0' '.output_bound'
check '.output_bound.bytes_per_record == (.published_bytes_per_record | round) and (.output_bound.records_per_event - .published / .applied | fabs) < 1e-6' '[.output_bound, .published, .applied]'
check '(.output_bound.of_transport_bound - .output_bound.events_per_s / .transport_bound_events_per_s | fabs) < 0.01 and (.output_bound.processor_ratio - .throughput_events_per_s / .output_bound.events_per_s | fabs) < 0.01' '.output_bound'
check '.latency.samples > 0' '.latency'
check '.latency.p50_ms > 0 and .latency.p50_ms <= .latency.p95_ms and .latency.p95_ms <= .latency.p99_ms and .latency.p99_ms <= .latency.max_ms' '.latency'
check '.latency.achieved_rate > 1000' '.latency.achieved_rate'
# The floor: the same measure over a bare loop, one output per event.
check '.latency_floor.samples > 0 and .latency_floor.p50_ms > 0 and .latency_floor.p50_ms <= .latency_floor.p99_ms' '.latency_floor'
check '[.latency, .latency_floor][] | .produced_p50_ms >= 0 and .produced_p50_ms <= .produced_p99_ms and .produced_p99_ms <= .max_ms' '[.latency, .latency_floor]'
check '.peak_rss_mb > 10' '.peak_rss_mb'
# The CPU each side took, and their quotient.
check '.process_cpu_s > 0 and .transport_bound_cpu_s > 0 and (.cpu_ratio - .transport_bound_cpu_s / .process_cpu_s | fabs) < 0.01' '[.process_cpu_s, .transport_bound_cpu_s, .cpu_ratio]'
# The embedded broker's thread worked in every phase, and within each
# phase's whole-process CPU.
check '[[.broker_cpu_s, .process_cpu_s], [.transport_bound_broker_cpu_s, .transport_bound_cpu_s], [.output_bound.broker_cpu_s, .output_bound.cpu_s]] | all(.[0] > 0 and .[0] <= .[1])' '[.broker_cpu_s, .transport_bound_broker_cpu_s, .output_bound.broker_cpu_s]'
check '.rocksdb_write_bytes_per_event > 0 and .state_dir_bytes > 0' '[.rocksdb_write_bytes_per_event, .state_dir_bytes]'
check '[.time_split[] | .us_per_event] | all(. >= 0) and (.[0:3] | all(. > 0))' '.time_split'
check '([.time_split[] | .share] | add - 1 | fabs) < 0.01' '.time_split'
[ -s "$T/model.bin" ] || fail "no model written to --work-dir"

# The text report, with a model given (no training), no latency run, and
# two processor runs: the median of both, between three bounds.
"$RECSTREAM" bench --quick --rate 0 --runs 2 --model "$T/model.bin" --work-dir "$T/2" \
    >"$T/out.txt" 2>"$T/text.err" || { mkdir -p "$T/2"; fail "text report exited"; }
for w in throughput runs bound ratio ceiling "peak RSS" output rocksdb cpu "broker cpu" split; do
    grep -q "^$w" "$T/out.txt" || fail "text report lacks '$w': $(cat "$T/out.txt")"
done
grep -q "latency" "$T/out.txt" && fail "--rate 0 still ran the latency phase"
[ "$(grep -c 'processor over' "$T/text.err")" = 2 ] || fail "--runs 2 did not run the processor twice"
[ "$(grep -c 'transport bound over' "$T/text.err")" = 3 ] || fail "--runs 2 did not run three bounds"
grep -q "^runs        median of 2: " "$T/out.txt" || fail "runs line: $(grep '^runs' "$T/out.txt")"

# A bad flag: one line, exit 2.
set +e
"$RECSTREAM" bench --events nope >"$T/bad.out" 2>"$T/bad.err"
code=$?
set -e
[ "$code" = 2 ] || fail "bad flag: exit $code"
[ "$(wc -l <"$T/bad.err")" = 1 ] || fail "bad flag: $(cat "$T/bad.err")"
echo "ok: bench smoke"
