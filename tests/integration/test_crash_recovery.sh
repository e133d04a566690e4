#!/usr/bin/env bash
# Exactly-once state across crashes (issue 3). A known event stream flows
# into the embedded broker while `recstream run` is SIGKILLed at random
# moments (at least 20 times) and restarted on the same state dir each time;
# then one last run drains the topic. Every user's history must then equal
# exactly what one clean pass over the stream gives (the last H events of
# the user, in stream order): no event lost, none applied twice. The stored
# offsets must add up to the number of events.
#
# Each restart joins under a new consumer group on purpose: the store, not
# the group's committed offsets, decides where to resume, and a new group
# does not wait for the killed member's session to time out.
# Reproduce a run with CRASH_SEED=<seed printed below>.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
T="$TEST_TMPDIR/crash-recovery-$$"
rm -rf "$T" && mkdir -p "$T"
EVENTS=${CRASH_EVENTS:-20000}
KILLS=${CRASH_KILLS:-20}
H=100 # above most users' event count, so nearly every event is checked
SEED=${CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
echo "crash-recovery: $EVENTS events, $KILLS kills, seed $SEED"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$T"/run-*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
  exit 1
}

# ---- the stream: 240 users over 300 items, ~83 events per user (some over
# H, so windows evict), event times strictly increasing
awk -v n="$EVENTS" 'BEGIN { srand(7); print "user\titem\ttype\tts";
  split("LISTEN VIEW LIKE", ty, " ");
  for (e = 0; e < n; e++) {
    u = int(rand() * 240); i = (u % 10) * 30 + int(rand() * 30);
    printf "u%d\ti%d\t%s\t%.0f\n", u, i, ty[1 + int(rand() * 3)], 1700000000000 + e * 10 } }' \
  >"$T/events.tsv"

# ---- the expected histories: the last H events of each user, stream order
awk -F'\t' -v h=$H 'NR > 1 { n[$1]++; ev[$1, n[$1]] = $2 "," $3 "," $4 }
  END { for (u in n) { s = ""; from = n[u] > h ? n[u] - h + 1 : 1;
          for (k = from; k <= n[u]; k++) s = s (s == "" ? "" : ";") ev[u, k];
          print u "\t" s; if (n[u] > h) evicting++ }
        print evicting + 0 > "/dev/stderr" }' "$T/events.tsv" 2>"$T/evicting" | sort >"$T/expected.tsv"
[ "$(cat "$T/evicting")" -gt 0 ] || fail "no user's window evicts; the stream is too short"

# ---- broker and model
"$RECSTREAM" broker --partitions 4 >"$T/broker.out" 2>"$T/broker.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
B=$(head -1 "$T/broker.out")
[ -n "$B" ] || fail "broker printed no address"
"$RECSTREAM" train --input "$T/events.tsv" --header --model-out "$T/model.bin" \
  --offline-out "$T/offline.avro" --factors 8 --iterations 3 >"$T/train.out" 2>"$T/train.err" ||
  { cat "$T/train.err" >&2; fail "recstream train"; }

# ---- produce the stream while the processor is being killed. A start costs
# about 3 s (the embedded broker's group coordinator waits 3 s for members
# before the first assignment, then fetching starts), so each life lasts
# 3.3 .. 5.8 s and the stream is spread over about as long as the kills take.
RATE=$((EVENTS * 10 / (KILLS * 45)))
"$RECSTREAM" produce --brokers "$B" --topic events --header --rate "$RATE" \
  "$T/events.tsv" >"$T/produce.out" 2>"$T/produce.err" &
PRODUCER=$!
pids+=($PRODUCER)

run_args=(run --brokers "$B" --model "$T/model.bin" --state-dir "$T/state" --history $H
  --batch-size 100 --batch-timeout 20ms --reload-interval 0 --log-level "${CRASH_LOG_LEVEL:-warn}")

consumed() { # events the store has applied: the sum of its stored offsets
  "$RECSTREAM" inspect partitions --state-dir "$T/state" --json 2>/dev/null |
    jq '[.[].offsets[] | select(.topic == "events") | .next_offset] | add // 0' 2>/dev/null ||
    echo 0
}

mid_stream=0
last=0
for k in $(seq "$KILLS"); do
  "$RECSTREAM" "${run_args[@]}" --group "crash-$k" 2>"$T/run-$k.err" &
  RUN=$!
  pids+=($RUN)
  # a random moment 3.3 .. 5.8 s after the start: a few land while it
  # joins, most while batches are being written
  sleep "$(printf '%d.%03d' $((3 + RANDOM % 2)) $((RANDOM % 1000)))"
  sleep "0.$((3 + RANDOM % 6))"
  kill -9 "$RUN" 2>/dev/null || fail "run $k exited by itself before the kill"
  wait "$RUN" 2>/dev/null || true
  now=$(consumed)
  [ "$now" -ge "$last" ] || fail "stored offsets went backwards after kill $k ($last -> $now)"
  if [ "$now" -gt "$last" ] && [ "$now" -lt "$EVENTS" ]; then mid_stream=$((mid_stream + 1)); fi
  echo "kill $k: $now events applied"
  last=$now
done
[ "$mid_stream" -ge $((KILLS / 2)) ] ||
  fail "only $mid_stream of $KILLS lives applied events and died mid-stream; too little proved"
wait "$PRODUCER" || fail "recstream produce failed: $(tail -3 "$T/produce.err")"

# ---- the last run drains the topic, then stops cleanly on SIGTERM
"$RECSTREAM" "${run_args[@]}" --group crash-final 2>"$T/run-final.err" &
RUN=$!
pids+=($RUN)
for _ in $(seq 600); do
  [ "$(consumed)" -ge "$EVENTS" ] && break
  sleep 0.1
done
kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc on SIGTERM"
total=$(consumed)
[ "$total" -eq "$EVENTS" ] || fail "stored offsets add up to $total, expected $EVENTS"

# ---- every user's history, compared with the clean pass
"$RECSTREAM" inspect dump --state-dir "$T/state" >"$T/dump.jsonl" || fail "inspect dump"
jq -r '[.user_id, ([.events[] | "\(.item),\(.type),\(.ts)"] | join(";"))] | @tsv' \
  "$T/dump.jsonl" | sort >"$T/actual.tsv"
jq -e 'select(.record != "ok")' "$T/dump.jsonl" >/dev/null &&
  fail "undecodable records in the store"
if ! diff -q "$T/expected.tsv" "$T/actual.tsv" >/dev/null; then
  diff "$T/expected.tsv" "$T/actual.tsv" | head -10 >&2
  fail "histories differ from one clean pass (seed $SEED)"
fi
users=$(wc -l <"$T/actual.tsv")

# ---- inspect's other views agree with the dump
u=$(head -1 "$T/actual.tsv" | cut -f1)
"$RECSTREAM" inspect user "$u" --state-dir "$T/state" --json >"$T/user.json" || fail "inspect user"
jq -e -s --arg u "$u" --slurpfile one "$T/user.json" \
  'map(select(.user_id == $u)) | length == 1 and .[0] == $one[0]' \
  "$T/dump.jsonl" >/dev/null || fail "inspect user --json differs from the dump for $u"
n=$(jq '.events | length' "$T/user.json")
"$RECSTREAM" inspect user "$u" --state-dir "$T/state" >"$T/user.txt" || fail "inspect user (text)"
grep -q "^history: $n events" "$T/user.txt" || fail "inspect user text view"
rc=0
"$RECSTREAM" inspect user no-such-user --state-dir "$T/state" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "inspect of a missing user exited $rc, expected 1"
rc=0
"$RECSTREAM" inspect nonsense --state-dir "$T/state" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "inspect nonsense exited $rc, expected 2"
"$RECSTREAM" inspect export --state-dir "$T/state" --partition 0 --out "$T/p0.export" 2>/dev/null ||
  fail "inspect export"
[ "$(head -c 8 "$T/p0.export")" = RSSTPART ] || fail "export file has no magic"
"$RECSTREAM" inspect model "$T/model.bin" >"$T/model.txt" || fail "inspect model"
grep -q '^items 300$' "$T/model.txt" || fail "inspect model: no 'items 300' line"
"$RECSTREAM" inspect item i5 --model "$T/model.bin" --top 3 >"$T/item.txt" || fail "inspect item"
[ "$(grep -c '^ *[0-9]*\. i' "$T/item.txt")" -eq 3 ] || fail "inspect item: expected 3 neighbours"
echo "ok: $KILLS kills ($mid_stream mid-stream), $EVENTS events, $users users' histories exact" \
  "($(cat "$T/evicting") of them past H=$H)"
[ -n "${CRASH_KEEP:-}" ] || rm -rf "$T"
