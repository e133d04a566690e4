#!/usr/bin/env bash
# `recstream run --schema-registry` against tests/registry_fixture.py (a
# stand-in for the registry's REST calls, with basic auth) and a standalone
# broker:
# - outputs are framed with the id the registry gave "recommendations-value";
# - a framed event written with an evolved schema (an extra optional field),
#   registered by its producer under "events-value", is decoded and applied;
# - an id the registry does not know goes to the DLQ as "schema", and with the
#   registry down an unknown id goes there as "schema_unavailable" (not lost,
#   not stalling the stream);
# - secrets given with -X (SASL password, registry credentials) appear in
#   neither the log nor /metrics, and the metrics endpoint binds 127.0.0.1.
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}" "${TESTS_DIR:?}"
T="$TEST_TMPDIR/schema-registry-$$"
rm -rf "$T" && mkdir -p "$T"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- run log:" >&2; tail -30 "$T/run.err" >&2 || true; exit 1; }
SASL_PW='s3cret-sasl-pw'
SR_AUTH='app:s3cret-sr-pw'

# ---- the fixture registry (basic auth) and the broker
python3 "$TESTS_DIR/registry_fixture.py" --port-file "$T/sr.port" --first-id 41 \
  --user-info "$SR_AUTH" 2>"$T/sr.err" &
pids+=($!)
"$RECSTREAM" broker --partitions 2 >"$T/broker.out" 2>"$T/broker.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/broker.out" ] && [ -s "$T/sr.port" ] && break; sleep 0.1; done
B=$(head -1 "$T/broker.out")
[ -n "$B" ] || fail "broker printed no address"
SR="http://127.0.0.1:$(cat "$T/sr.port")"
sr() { curl -sf -u "$SR_AUTH" -H 'Content-Type: application/vnd.schemaregistry.v1+json' "$@"; }

# ---- a tiny model
awk 'BEGIN { srand(7); print "user\titem\ttype\tts";
  for (u = 0; u < 40; u++) for (j = 0; j < 15; j++) {
    g = u % 4; i = g * 10 + int(rand() * 10);
    printf "u%d\ti%d\tLISTEN\t%d\n", u, i, 1700000000000 + u * 100 + j } }' >"$T/train.tsv"
"$RECSTREAM" train --input "$T/train.tsv" --header --model-out "$T/model.bin" \
  --offline-out "$T/offline.avro" --factors 8 --iterations 5 >"$T/train.out" 2>"$T/train.err" ||
  { cat "$T/train.err" >&2; fail "recstream train"; }

# ---- a producer with a newer event schema registers it: UserEvent plus an
# optional "device" field, as a compatible evolution would add it
python3 - "$TESTS_DIR/../schemas/user_event.avsc" >"$T/evolved.avsc" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"].append({"name": "device", "type": ["null", "string"], "default": None})
print(json.dumps(s))
EOF
reg_body() { jq -Rs '{schema: .}' "$1"; }
EVOLVED_ID=$(reg_body "$T/evolved.avsc" | sr -XPOST -d @- "$SR/subjects/events-value/versions" | jq .id)
[ "$EVOLVED_ID" -ge 41 ] || fail "fixture gave no id for the evolved schema"

# framed Avro of one event with the evolved schema (zigzag varints by hand)
frame() { # id user item type_index device -> stdout
  python3 - "$@" <<'EOF'
import struct, sys
sid, user, item, t, device = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def long(v):
    z, out = (v << 1) ^ (v >> 63), b""
    while z >= 0x80:
        out += bytes([(z & 0x7f) | 0x80]); z >>= 7
    return out + bytes([z])
def s(x):
    b = x.encode(); return long(len(b)) + b
body = s(user) + s(item) + long(t) + long(1700000200000)   # user, item, type, ts
body += long(1) + long(4000)                               # duration_ms = 4000
body += long(0)                                            # weight = null
body += long(1) + s(device)                                # device = "tv"
sys.stdout.buffer.write(b"\0" + struct.pack(">i", sid) + body)
EOF
}
frame "$EVOLVED_ID" u1 i12 2 tv >"$T/evolved.bin"
frame 9999 u2 i21 0 tv >"$T/unknown-id.bin"

# ---- the processor: framed output through the registry, secrets in -X
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$RECSTREAM" run --brokers "$B" --model "$T/model.bin" --offline "$T/offline.avro" \
  --state-dir "$T/state" --batch-timeout 50ms --n 10 \
  --schema-registry "$SR" -X "schema.registry.basic.auth.user.info=$SR_AUTH" \
  -X schema.registry.request.timeout.ms=1000 \
  --output-format avro-framed -X sasl.username=app -X "sasl.password=$SASL_PW" \
  --metrics-port "$MPORT" --metrics-bind 127.0.0.1 2>"$T/run.err" &
RUN=$!
pids+=($RUN)
for _ in $(seq 100); do grep -q "outputs framed with schema id" "$T/run.err" && break; sleep 0.1; done
RECS_ID=$(sr "$SR/subjects/recommendations-value/versions/latest" | jq .id) ||
  fail "the processor did not register recommendations-value"
grep -q "outputs framed with schema id $RECS_ID " "$T/run.err" || fail "log does not name id $RECS_ID"

kcat -P -b "$B" -t events -k u1 "$T/evolved.bin"
kcat -P -b "$B" -t events -k u2 "$T/unknown-id.bin"

# ---- read until u1 has a list and the unknown id a dead letter
read_json() { kcat -C -b "$B" -t "$1" -o beginning -e -J -q 2>/dev/null || true; }
for _ in $(seq 200); do
  read_json events.dlq >"$T/dlq.json"
  n_recs=$(kcat -C -b "$B" -t recommendations -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c . || true)
  [ "$n_recs" -ge 1 ] && [ "$(wc -l <"$T/dlq.json")" -ge 1 ] && break
  sleep 0.1
done
[ "$n_recs" -ge 1 ] || fail "no recommendations for the evolved-schema event"
reason_of() { jq -r --arg k "$1" 'select(.key == $k) | .headers as $h
  | ($h | index("recstream.error")) as $i | $h[$i + 1]' "$T/dlq.json"; }
[ "$(reason_of u2)" = schema ] || fail "unknown id: DLQ reason '$(reason_of u2)', want schema"
[ -z "$(reason_of u1)" ] || fail "the evolved-schema event went to the DLQ: $(reason_of u1)"

# the output record: key u1, framed with the registry's id, Avro body naming u1
kcat -C -b "$B" -t recommendations -o beginning -e -q -c 1 -f '%k\n%s' >"$T/rec.bin" 2>/dev/null
python3 - "$T/rec.bin" "$RECS_ID" <<'EOF' || fail "output record is not framed with id $RECS_ID"
import struct, sys
data = open(sys.argv[1], "rb").read()
key, value = data.split(b"\n", 1)
assert key == b"u1", key
assert value[0] == 0 and struct.unpack(">i", value[1:5])[0] == int(sys.argv[2]), value[:5]
assert value[5] == 2 * 2 and value[6:8] == b"u1", value[5:8]   # user_id: zigzag length 2, "u1"
EOF

# ---- recstream produce frames with the id the registry gives our own schema
echo '{"user_id":"u5","item_id":"i3","type":"LISTEN","ts":1700000250000}' >"$T/one.jsonl"
"$RECSTREAM" produce -b "$B" --schema-registry "$SR" -X "schema.registry.basic.auth.user.info=$SR_AUTH" \
  -o avro-framed "$T/one.jsonl" 2>"$T/produce.err" || { cat "$T/produce.err" >&2; fail "produce"; }
OURS_ID=$(sr "$SR/subjects/events-value/versions/latest" | jq .id)
grep -q "framing with schema id $OURS_ID " "$T/produce.err" || fail "produce did not frame with $OURS_ID"
! grep -q "s3cret" "$T/produce.err" || fail "produce logged a secret"
kcat -C -b "$B" -t events -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -a '^u5 ' |
  head -c 8 | od -An -tx1 | grep -q "00 $(printf '%02x %02x %02x %02x' 0 0 0 "$OURS_ID")" ||
  fail "produced event not framed with id $OURS_ID"
for _ in $(seq 200); do
  kcat -C -b "$B" -t recommendations -o beginning -e -q -f '%k\n' 2>/dev/null | grep -qx u5 && break
  sleep 0.1
done
kcat -C -b "$B" -t recommendations -o beginning -e -q -f '%k\n' 2>/dev/null | grep -qx u5 ||
  fail "no recommendations for the event recstream produce framed"

# ---- the registry goes away: an id never seen before is a dead letter with
# its own reason, and the stream goes on
reg_body "$T/evolved.avsc" | sed 's/device/channel/' |
  sr -XPOST -d @- "$SR/subjects/events-value/versions" | jq .id >"$T/v3.id"
V3_ID=$(cat "$T/v3.id")
kill "${pids[0]}"
frame "$V3_ID" u3 i31 0 web >"$T/v3.bin"
kcat -P -b "$B" -t events -k u3 "$T/v3.bin"
echo '{"user_id":"u4","item_id":"i5","type":"VIEW","ts":1700000300000}' | kcat -P -b "$B" -t events -k u4
for _ in $(seq 200); do
  read_json events.dlq >"$T/dlq.json"
  got=$(kcat -C -b "$B" -t recommendations -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c u4 || true)
  [ -n "$(reason_of u3)" ] && [ "$got" -ge 1 ] && break
  sleep 0.1
done
[ "$(reason_of u3)" = schema_unavailable ] ||
  fail "registry down: DLQ reason '$(reason_of u3)', want schema_unavailable"
[ "$got" -ge 1 ] || fail "the stream stalled after the registry went away"

# ---- metrics: on 127.0.0.1 only, counts by reason, no secrets
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$T/metrics.txt" || fail "no /metrics"
grep -q 'recstream_events_invalid_total{reason="schema_unavailable"} 1' "$T/metrics.txt" ||
  fail "schema_unavailable not counted: $(grep invalid_total "$T/metrics.txt" | head -5)"
command -v ss >/dev/null || fail "ss (iproute2) is needed: scripts/install-deps.sh installs it"
addrs=$(ss -ltnH "sport = :$MPORT" | awk '{print $4}' | sort -u | tr '\n' ' ')
[ "$addrs" = "127.0.0.1:$MPORT " ] || fail "metrics endpoint listens on '$addrs', want 127.0.0.1"

kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc after SIGTERM"
# the evolved event's fields, as the processor stored them
"$RECSTREAM" inspect user u1 --state-dir "$T/state" --json >"$T/u1.json" 2>/dev/null ||
  fail "inspect user u1"
jq -e '.events == [{"item": "i12", "type": "LIKE", "ts": 1700000200000}]' "$T/u1.json" >/dev/null ||
  fail "u1's stored event is not the evolved one: $(head -c 300 "$T/u1.json")"
for s in "$SASL_PW" "s3cret-sr-pw"; do
  ! grep -q "$s" "$T/run.err" "$T/metrics.txt" || fail "secret '$s' leaked into the log or /metrics"
done
grep -q 'sasl.password=\[redacted\]' "$T/run.err" || fail "settings line lacks the redacted password"
echo "ok: framed output id $RECS_ID, evolved event (id $EVOLVED_ID) applied, unknown id -> schema," \
  "registry down -> schema_unavailable, no secrets in log or /metrics"
