#!/usr/bin/env bash
# `recstream run` driven the way an operator does: a standalone broker, a
# model trained by `recstream train`, JSON events typed into kcat for a known
# user, a new user and malformed messages; kcat reads the recommendations and
# the dead-letter records; SIGTERM stops the processor with exit code 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
it_setup run-kcat
it_broker 2
it_model 7 model # 40 users in 4 taste groups over 40 items

# ---- the processor
"$RECSTREAM" run --brokers "$B" --model "$T/model.bin" --offline "$T/model-offline.avro" \
  --state-dir "$T/state" --batch-timeout 50ms --n 10 2>"$T/run.err" &
RUN=$!
pids+=($RUN)

# ---- events through kcat: known user u1 (group 1), a new user, bad ones
{
  echo 'u1|{"user_id":"u1","item_id":"i11","type":"LISTEN","ts":1700000100000}'
  echo 'u1|{"user_id":"u1","item_id":"i12","type":"like","ts":1700000100500}'
  echo 'newbie|{"user_id":"newbie","item_id":"i25","type":"VIEW","ts":1700000101000}'
} | kcat -P -b "$B" -t events -K '|'
bad=0
for m in '{"user_id":"x"' '{"user_id":"x","item_id":"y","type":"BUY","ts":1}' \
  '{"item_id":"y","type":"LISTEN","ts":1}' 'plain text, not an event'; do
  printf '%s' "$m" | kcat -P -b "$B" -t events -k bad
  bad=$((bad + 1))
done
if [ -d "${TESTS_DIR:-}/data/events/bad" ]; then # the codec's malformed kinds
  for f in "$TESTS_DIR"/data/events/bad/*; do
    [ -f "$f" ] && [ -s "$f" ] || continue
    kcat -P -b "$B" -t events -k bad "$f"
    bad=$((bad + 1))
  done
fi

# ---- read until both users have a list and every bad message a DLQ record
read_topic() { kcat -C -b "$B" -t "$1" -o beginning -e -J -q 2>/dev/null || true; }
for _ in $(seq 200); do
  read_topic recommendations >"$T/recs.json"
  read_topic events.dlq >"$T/dlq.json"
  users=$(jq -r '.key' "$T/recs.json" | sort -u | tr '\n' ' ')
  ndlq=$(wc -l <"$T/dlq.json")
  [[ "$users" == *newbie* && "$users" == *u1* && "$ndlq" -ge "$bad" ]] && break
  sleep 0.1
done
[[ "$users" == *u1* ]] || fail "no recommendations for the known user u1 (got: $users)"
[[ "$users" == *newbie* ]] || fail "no recommendations for the new user (got: $users)"

# every record: key = user_id, a non-empty list with valid sources, versions set
jq -e -s 'all(.[]; (.payload | fromjson) as $r
  | $r.user_id == .key and ($r.items | length) > 0
  and all($r.items[]; .source == "ONLINE" or .source == "OFFLINE" or .source == "POPULAR")
  and ($r.model_version | length) > 0 and $r.variant == "default"
  and $r.trigger_ts >= 1700000100000 and $r.generated_ts > $r.trigger_ts)' "$T/recs.json" \
  >/dev/null || fail "malformed recommendations: $(head -c 600 "$T/recs.json")"
last() { jq -c -s --arg u "$1" '[.[] | select(.key == $u)] | last | .payload | fromjson' "$T/recs.json"; }
# the known user has an offline list and online neighbours of i11/i12; the
# new one gets online neighbours of i25 and no offline list
last u1 | jq -e '[.items[].source] | index("OFFLINE") != null and index("ONLINE") != null' \
  >/dev/null || fail "u1 lacks offline or online items: $(last u1)"
last newbie | jq -e '[.items[].source] | index("OFFLINE") == null and index("ONLINE") != null' \
  >/dev/null || fail "newbie's sources are wrong: $(last newbie)"
# items the user already touched are left out
last u1 | jq -e '[.items[].item_id] | index("i11") == null and index("i12") == null' >/dev/null ||
  fail "u1's list holds items already in the history"

# ---- the dead letters: original key and bytes, the reason and the source
[ "$ndlq" -eq "$bad" ] || fail "expected $bad dead-letter records, got $ndlq"
jq -e -s 'all(.[]; .key == "bad"
  and (.headers | index("recstream.error")) != null
  and (.headers as $h | ($h | index("recstream.error")) as $i | ($h[$i + 1] | length) > 0)
  and (.headers as $h | ($h | index("recstream.topic")) as $i | $h[$i + 1] == "events"))' \
  "$T/dlq.json" >/dev/null || fail "dead-letter headers: $(head -c 600 "$T/dlq.json")"
jq -r '.headers as $h | ($h | index("recstream.error")) as $i | $h[$i + 1]' "$T/dlq.json" |
  grep -qx unknown_type || fail "no unknown_type reason among the dead letters"

# ---- SIGTERM: finish, flush, persist, leave, exit 0
kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc after SIGTERM"
grep -q "3 events applied, $bad invalid" "$T/run.err" || fail "final counts in the log"
echo "ok: recommendations for u1 and newbie, $bad dead letters, clean exit"
