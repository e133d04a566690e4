#!/usr/bin/env bash
# `recstream broker` + kcat: a JSON event produced with kcat -P comes back
# byte for byte with kcat -C over TCP; SIGTERM stops the broker with exit 0.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
mkdir -p "$TEST_TMPDIR"
dir=$(mktemp -d "$TEST_TMPDIR/broker_kcat.XXXXXX")
out=$dir/broker.out
"$RECSTREAM" broker --partitions 2 >"$out" 2>"$dir/broker.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
addr=$(head -1 "$out")
[[ $addr == 127.0.0.1:* ]] || { echo "no broker address: '$addr'"; cat "$dir/broker.log"; exit 1; }

event='{"user_id":"u42","item_id":"song-7","type":"LISTEN","ts":1700000000000}'
printf '%s\n' "$event" | kcat -b "$addr" -P -t events -k u42 -X partitioner=murmur2_random
got=$(kcat -b "$addr" -C -t events -o beginning -e -q -f '%k|%s\n')
[ "$got" = "u42|$event" ] || { echo "round trip differs: '$got'"; exit 1; }

# The default topics exist with the partition count asked for.
meta=$(kcat -b "$addr" -L)
for t in events recommendations events.dlq; do
    grep -q "topic \"$t\" with 2 partitions" <<<"$meta" || { echo "missing topic $t"; exit 1; }
done

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap 'rm -rf "$dir"' EXIT
[ "$rc" -eq 0 ] || { echo "broker exit code $rc after SIGTERM"; exit 1; }
grep -q "stopping" "$dir/broker.log"

# A bad flag: exit 2 and one line.
rc=0
err=$("$RECSTREAM" broker --partitions 0 2>&1 >/dev/null) || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] || { echo "bad flag: rc=$rc '$err'"; exit 1; }
echo ok
