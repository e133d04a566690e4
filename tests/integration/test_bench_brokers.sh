#!/usr/bin/env bash
# `recstream bench --brokers` against a broker in another process, over TCP:
# the path a real cluster takes. The standalone embedded broker cannot create
# topics through the admin API (it never names a controller), so the bench
# falls back to the broker's auto-creation, whose partition count (4 here)
# replaces the one asked for (8) everywhere, the latency reader's direct
# assignment included. A stream longer than the broker keeps is refused at
# once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
it_setup bench-brokers
it_broker 4

"$RECSTREAM" bench --quick --partitions 8 --json --brokers "$B" --work-dir "$T/w" \
    >"$T/out.json" 2>"$T/run.err" || fail "bench --brokers exited $?"
check() { jq -e "$1" "$T/out.json" >/dev/null || fail "$1 (got $(jq -c "$2" "$T/out.json"))"; }
check '.partitions == 4' '.partitions'
# The broker runs in another process: its CPU is not ours to measure.
check '.broker_cpu_s == null and .transport_bound_broker_cpu_s == null and .output_bound.broker_cpu_s == null' '[.broker_cpu_s, .transport_bound_broker_cpu_s, .output_bound.broker_cpu_s]'
check '.applied == .events and .events == 20000' '[.applied, .events]'
check '.throughput_events_per_s > 0 and .transport_bound_events_per_s > 0' '[.throughput_events_per_s, .transport_bound_events_per_s]'
check '.latency.samples > 0 and .latency_floor.samples > 0' '[.latency.samples, .latency_floor.samples]'
grep -q 'WARN  bench: topics auto-created with 4 partitions each' "$T/run.err" ||
    fail "no warning about the auto-created topics"
# The stream lives in the other process, readable by any client.
tin=$(sed -n 's/.*producing 20000 events to \(bench-events-[^ ]*\).*/\1/p' "$T/run.err")
[ -n "$tin" ] || fail "no input topic named in the log"
parts=$(kcat -b "$B" -L -t "$tin" | grep -c 'partition [0-9]*, leader')
[ "$parts" = 4 ] || fail "$tin has $parts partitions, not 4"
n=$(kcat -b "$B" -C -t "$tin" -o beginning -e -q | wc -l)
[ "$n" = 20000 ] || fail "$tin holds $n events, not 20000"
# More events than the broker keeps (~5 MiB per partition, 4 partitions):
# one clear error as soon as the stream is produced, not a 600 s wait for
# events the broker dropped.
set +e
"$RECSTREAM" bench --quick --events 300000 --rate 0 --brokers "$B" --work-dir "$T/w2" \
    >"$T/drop.out" 2>"$T/drop.err"
code=$?
set -e
[ "$code" = 1 ] || fail "a stream the broker cannot hold: exit $code"
grep -q 'ERROR bench: the broker holds [0-9]* of the 300000 events produced' "$T/drop.err" ||
    fail "no error naming the dropped events: $(tail -3 "$T/drop.err")"
grep -q 'transport bound over' "$T/drop.err" && fail "the bench went on after the stream was cut"
echo "ok: bench --brokers"
