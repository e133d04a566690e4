#!/usr/bin/env bash
# `recstream train` as a data person runs it: from an event file with a few
# bad lines (skipped and counted, or fatal under --strict with the line
# number), then from a topic on a standalone broker read to its end (a bad
# message skipped and counted); both write a model file and offline lists.
# Bad flags get one line and exit 2.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
T="$TEST_TMPDIR/train-$$"
rm -rf "$T" && mkdir -p "$T"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$T"/*.err >&2 || true; exit 1; }

# ---- 300 users in 6 taste groups over 120 items, two bad lines at the end
awk 'BEGIN { srand(5); split("LISTEN VIEW LIKE", ty, " ");
  for (u = 0; u < 300; u++) for (j = 0; j < 12; j++) {
    g = u % 6; i = (rand() < 0.9) ? g + 6 * int(rand() * 20) : int(rand() * 120);
    printf "u%d\ti%d\t%s\t%d\n", u, i, ty[1 + int(rand() * 3)], 1700000000000 + u * 100 + j } }' \
  >"$T/good.tsv"
cp "$T/good.tsv" "$T/events.tsv"
printf 'u1\ti1\tFLY\t5\nonly-one-column\n' >>"$T/events.tsv"

"$RECSTREAM" train --input "$T/events.tsv" --model-out "$T/m.bin" --offline-out "$T/o.avro" \
  --factors 8 --iterations 4 --neighbours 10 --offline-n 5 >"$T/train.out" 2>"$T/train.err" ||
  fail "train from file"
grep -q '^users *300$' "$T/train.out" || fail "summary: users"
grep -q '^items *120$' "$T/train.out" || fail "summary: items"
grep -q '^interactions *3600$' "$T/train.out" || fail "summary: interactions"
grep -q '^bad input *2 skipped' "$T/train.out" || fail "summary: bad lines"
grep -q 'events.tsv:3601' "$T/train.err" || fail "bad line reported with its number"
[ "$(grep -c '^iteration' "$T/train.err")" -eq 4 ] || fail "progress per iteration"
grep -q 'loss 0\.' "$T/train.err" || fail "loss in progress"
[ -s "$T/m.bin" ] && [ -s "$T/o.avro" ] || fail "output files"
[ ! -e "$T/m.bin.tmp" ] || fail "temp file left behind"
head -c 8 "$T/m.bin" | grep -q RSMODEL || fail "model magic"
head -c 4 "$T/o.avro" | grep -q Obj || fail "Avro container magic"

# ---- --strict: the first bad line stops the run, exit 1, nothing written
set +e
"$RECSTREAM" train --input "$T/events.tsv" --strict --model-out "$T/strict.bin" \
  --offline-out "$T/strict.avro" --factors 4 --iterations 1 >/dev/null 2>"$T/strict.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "--strict exit code $rc"
grep -q 'events.tsv:3601: unknown_type' "$T/strict.err" || fail "--strict names the line"
[ ! -e "$T/strict.bin" ] || fail "--strict wrote a model"

# ---- bad flags: one line, exit 2
for args in "--factors 0 --input x" "--solver lu --input x" "--input x --topic y" ""; do
  set +e
  # shellcheck disable=SC2086
  "$RECSTREAM" train $args >/dev/null 2>"$T/flag.err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "'train $args' exit $rc"
  [ "$(wc -l <"$T/flag.err")" -eq 1 ] || fail "'train $args' printed more than one line"
done

# ---- from a topic: the same events as JSON, read beginning to end
"$RECSTREAM" broker --partitions 3 >"$T/broker.out" 2>"$T/broker.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
B=$(head -1 "$T/broker.out")
[ -n "$B" ] || fail "broker printed no address"
awk -F'\t' '{ printf "%s\t{\"user_id\":\"%s\",\"item_id\":\"%s\",\"type\":\"%s\",\"ts\":%s}\n",
  $1, $1, $2, $3, $4 }' "$T/good.tsv" >"$T/events.kcat"
echo 'u1	{"user_id":"u1","item_id":"i1","type":"FLY","ts":5}' >>"$T/events.kcat"
kcat -P -b "$B" -t events -K '\t' -l "$T/events.kcat" 2>"$T/kcat.err" || fail "kcat produce"
"$RECSTREAM" train --topic events --brokers "$B" --model-out "$T/mt.bin" --offline-out "$T/ot.avro" \
  --factors 8 --iterations 4 --neighbours 10 --offline-n 5 >"$T/topic.out" 2>"$T/topic.err" ||
  fail "train from topic"
grep -q '^interactions *3600$' "$T/topic.out" || fail "topic: interactions"
grep -q '^bad input *1 skipped' "$T/topic.out" || fail "topic: bad message counted"
grep -q '^users *300$' "$T/topic.out" || fail "topic: users"
echo "ok"
