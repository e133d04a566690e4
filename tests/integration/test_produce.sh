#!/usr/bin/env bash
# `recstream produce` against `recstream broker`: a TSV file and a synthetic
# stream arrive keyed by user id, JSON and Avro payloads decode, a bad flag is
# one line with exit 2, and an unreachable broker is exit 1 with the loss told.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
mkdir -p "$TEST_TMPDIR"
dir=$(mktemp -d "$TEST_TMPDIR/produce.XXXXXX")
"$RECSTREAM" broker --topics events,avro_events >"$dir/broker.out" 2>"$dir/broker.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/broker.out" ] && break; sleep 0.1; done
addr=$(head -1 "$dir/broker.out")
[[ $addr == 127.0.0.1:* ]] || { echo "no broker address"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }

# 1. A TSV file with a header, seconds timestamps, no type column.
printf 'user\titem\tts\nalice\tsong-1\t1700000000\nbob\tsong-2\t1700000001\nalice\tsong-3\t1700000002\n' >"$dir/ev.tsv"
"$RECSTREAM" produce -b "$addr" --header --columns user,item,ts --ts-unit s \
    --default-type like "$dir/ev.tsv" 2>"$dir/p1.log" || fail "produce tsv: $(cat "$dir/p1.log")"
kcat -b "$addr" -C -t events -o beginning -e -q -J >"$dir/tsv.json"
[ "$(wc -l <"$dir/tsv.json")" -eq 3 ] || fail "expected 3 messages"
# keys are the user ids, and each payload is a UserEvent for that user
jq -e -s 'all(.[]; (.payload | fromjson) as $e | .key == $e.user_id and $e.type == "LIKE")' \
    "$dir/tsv.json" >/dev/null || fail "keys/payloads: $(cat "$dir/tsv.json")"
jq -e -s 'map(.payload | fromjson | select(.item_id == "song-3") | .ts) == [1700000002000]' \
    "$dir/tsv.json" >/dev/null || fail "ts in ms"
# both of alice's events on one partition (keyed, murmur2)
[ "$(jq -s '[.[] | select(.key == "alice") | .partition] | unique | length' "$dir/tsv.json")" -eq 1 ] \
    || fail "one user on two partitions"

# 2. Synthetic events as raw Avro, rate-limited.
n=500
"$RECSTREAM" produce -b "$addr" -t avro_events --synthetic $n --users 50 --items 40 --seed 7 \
    -o avro --rate 2000 2>"$dir/p2.log" || fail "produce synthetic: $(cat "$dir/p2.log")"
grep -q "delivered $n, failed 0" "$dir/p2.log" || fail "summary: $(tail -2 "$dir/p2.log")"
kcat -b "$addr" -C -t avro_events -o beginning -e -q -f '%k\n' >"$dir/keys"
[ "$(wc -l <"$dir/keys")" -eq $n ] || fail "expected $n avro messages"
[ "$(sort -u "$dir/keys" | wc -l)" -le 50 ] || fail "more keys than users"
# Avro payloads decode with the embedded schema: run reads them back via the
# decoder; here check the first record's fields by the Avro binary layout:
# user_id string (zigzag length) then the id bytes, which equal the key.
kcat -b "$addr" -C -t avro_events -o beginning -c 1 -q -f '%k' >"$dir/k1"
kcat -b "$addr" -C -t avro_events -o beginning -c 1 -q -f '%s' >"$dir/v1"
klen=$(wc -c <"$dir/k1")
[ "$(head -c 1 "$dir/v1" | od -An -tu1 | tr -d ' ')" -eq $((klen * 2)) ] || fail "avro length prefix"
[ "$(head -c $((klen + 1)) "$dir/v1" | tail -c "$klen")" = "$(cat "$dir/k1")" ] || fail "avro user_id"

# 3. JSON lines input, JSON output.
printf '{"user_id":"carol","item_id":"x","type":"VIEW","ts":5}\n' >"$dir/ev.jsonl"
"$RECSTREAM" produce -b "$addr" "$dir/ev.jsonl" 2>/dev/null
kcat -b "$addr" -C -t events -o beginning -e -q -f '%k %s\n' | grep -q '^carol {' || fail "jsonl"

# 4. A bad flag: exit 2, one line naming it.
rc=0
err=$("$RECSTREAM" produce -b "$addr" --rate -5 --synthetic 1 2>&1) || rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q -- "--rate" <<<"$err" || fail "bad flag: $rc '$err'"
rc=0
err=$("$RECSTREAM" produce -b "$addr" -X no.such.thing=1 --synthetic 1 2>&1) || rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q no.such.thing <<<"$err" || fail "bad -X: $rc '$err'"

# 5. No broker there: exit 1, delivery failures reported.
rc=0
"$RECSTREAM" produce -b 127.0.0.1:1 -X message.timeout.ms=1000 --synthetic 5 2>"$dir/p5.log" || rc=$?
[ $rc -eq 1 ] || fail "unreachable broker gave exit $rc"
grep -q "5 event(s) could not be delivered" "$dir/p5.log" || fail "loss not reported: $(tail -3 "$dir/p5.log")"

# 6. Without --brokers: an embedded broker in process, address printed first.
first=$("$RECSTREAM" produce --synthetic 20 2>/dev/null | head -1)
[[ $first == 127.0.0.1:* ]] || fail "embedded broker address: '$first'"
echo ok
