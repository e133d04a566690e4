#!/usr/bin/env bash
# Hot reload under load: model files are swapped under a running processor
# while events flow. Outputs must switch model_version from the first model
# to the second, a corrupt model file must be refused while the second stays
# in use, and no event may be lost (the processor's final count equals what
# was produced).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
it_setup run-swap
it_broker 2
# Two models trained on different data, so their versions differ.
it_model 1 model-a 3
it_model 2 model-b 3
install_model() { cp "$1" "$T/model.tmp" && mv "$T/model.tmp" "$T/model.bin"; }
install_model "$T/model-a.bin"

"$RECSTREAM" run --brokers "$B" --model "$T/model.bin" --state-dir "$T/state" \
  --reload-interval 100ms --batch-timeout 50ms 2>"$T/run.err" &
RUN=$!
pids+=($RUN)

# `send FROM TO`: events FROM..TO-1, one user of 10 each, through kcat.
sent=0
send() {
  for i in $(seq "$1" $(($2 - 1))); do
    printf 'u%d|{"user_id":"u%d","item_id":"i%d","type":"VIEW","ts":%d}\n' \
      $((i % 10)) $((i % 10)) $((i % 40)) $((1700000200000 + i))
  done | kcat -P -b "$B" -t events -K '|'
  sent=$((sent + $2 - $1))
}
versions() {
  kcat -C -b "$B" -t recommendations -o beginning -e -J -q 2>/dev/null |
    jq -r '.payload | fromjson | "\(.generated_ts) \(.model_version)"' | sort -n | awk '{print $2}'
}
wait_for_version_count() { # until $1 distinct versions appear in order
  for _ in $(seq 150); do
    [ "$(versions | uniq | wc -l)" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

for k in 0 1 2 3 4; do send $((k * 20)) $((k * 20 + 20)); sleep 0.2; done
wait_for_version_count 1 || fail "no output with the first model"
va=$(versions | head -1)

install_model "$T/model-b.bin" # while events keep coming
for k in 5 6 7 8 9; do send $((k * 20)) $((k * 20 + 20)); sleep 0.2; done
wait_for_version_count 2 || fail "outputs never switched model_version"
vb=$(versions | tail -1)
[ "$va" != "$vb" ] || fail "both models report version $va"
# exactly one switch, from a to b: no output goes back to the old model
[ "$(versions | uniq | tr '\n' ' ')" = "$va $vb " ] ||
  fail "versions did not switch once: $(versions | uniq | tr '\n' ' ')"

# A corrupt file (truncated) is refused; the second model stays in use.
head -c 1000 "$T/model-b.bin" >"$T/model.tmp" && mv "$T/model.tmp" "$T/model.bin"
for _ in $(seq 50); do grep -q "refused" "$T/run.err" && break; sleep 0.1; done
grep -q "reload: model refused" "$T/run.err" || fail "the corrupt model was not refused"
before=$(versions | wc -l)
send 200 220
for _ in $(seq 100); do [ "$(versions | wc -l)" -gt "$before" ] && break; sleep 0.1; done
[ "$(versions | tail -1)" = "$vb" ] || fail "after the refusal the outputs carry $(versions | tail -1)"
[ "$(versions | uniq | tr '\n' ' ')" = "$va $vb " ] || fail "a version other than a and b appeared"

kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc after SIGTERM"
grep -q " $sent events applied, 0 invalid" "$T/run.err" ||
  fail "expected $sent events applied: $(grep 'stopped after' "$T/run.err")"
echo "ok: $va -> $vb under load, corrupt file refused, $sent events applied"
