#!/usr/bin/env bash
# /metrics while events flow through `recstream run` with two A/B variants:
# counters and histograms move, /readyz and /healthz answer, and the online
# evaluation counts a hit exactly when a user's next event is an item from
# the list last published to them (we read that list from the output topic
# and replay its first item), and a miss otherwise. Then `ab-report` reads
# the live endpoint and a saved copy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
it_setup metrics
it_broker 2
it_model 11 model # 40 users in 4 taste groups over 40 items

# ---- the processor with metrics on a free port and two variants
PORT=$(it_free_port)
M="http://127.0.0.1:$PORT"
"$RECSTREAM" run --brokers "$B" --model "$T/model.bin" --offline "$T/model-offline.avro" \
  --state-dir "$T/state" --batch-timeout 50ms --n 10 --metrics-port "$PORT" \
  --variant name=control,share=0.5,blend=interleave --variant name=popular,share=0.5,blend=popular \
  --experiment-salt metrics-test -X statistics.interval.ms=300 2>"$T/run.err" &
RUN=$!
pids+=($RUN)

status() { curl -s -o /dev/null -w '%{http_code}' "$M$1" || true; }
for _ in $(seq 100); do [ "$(status /healthz)" = 200 ] && break; sleep 0.1; done
[ "$(status /healthz)" = 200 ] || fail "/healthz is not 200"
# value NAME [LABEL-MATCH]: the sum of the samples of NAME whose labels
# contain every given key="value" (e.g. 'variant="control",k="10"').
value() {
  curl -s "$M/metrics" | awk -v n="$1" -v want="${2:-}" '
    { name = $1; sub(/\{.*/, "", name) }
    name == n { ok = 1; m = split(want, w, ",");
      for (i = 1; i <= m; i++) if (index($1, w[i]) == 0) ok = 0;
      if (ok) s += $NF }
    END { printf "%d\n", s + 0 }'
}
[ "$(value recstream_events_consumed_total)" -eq 0 ] || fail "events counted before any flowed"

# ---- round 1: one event per user; wait until every user has a list
N=24
for u in $(seq 0 $((N - 1))); do
  printf 'u%d|{"user_id":"u%d","item_id":"i%d","type":"LISTEN","ts":%d}\n' \
    "$u" "$u" $(((u % 4) * 10 + 1)) $((1700000200000 + u))
done | kcat -P -b "$B" -t events -K '|'
read_topic() { kcat -C -b "$B" -t "$1" -o beginning -e -J -q 2>/dev/null || true; }
for _ in $(seq 200); do
  read_topic recommendations >"$T/recs.json"
  [ "$(jq -r '.key' "$T/recs.json" | sort -u | wc -l)" -ge "$N" ] && break
  sleep 0.1
done
[ "$(jq -r '.key' "$T/recs.json" | sort -u | wc -l)" -ge "$N" ] || fail "not every user got a list"
for _ in $(seq 100); do [ "$(status /readyz)" = 200 ] && break; sleep 0.1; done
[ "$(status /readyz)" = 200 ] || fail "/readyz is not 200: $(curl -s "$M/readyz")"
[ "$(value recstream_events_consumed_total 'type="listen"')" -eq "$N" ] || fail "listen count"
[ "$(value recstream_ab_exposures_total)" -eq 0 ] || fail "exposures before any list was seen"

# ---- round 2: even users replay the first item of their list (a hit at 5
# and 10, attributed to that item's source); odd users pick an item that is
# in no list (a miss).
hits=0 misses=0
declare -A src_hits=()
: >"$T/round2"
for u in $(seq 0 $((N - 1))); do
  rec=$(jq -c -s --arg u "u$u" '[.[] | select(.key == $u)] | last | .payload | fromjson' "$T/recs.json")
  if [ $((u % 2)) -eq 0 ]; then
    item=$(jq -r '.items[0].item_id' <<<"$rec")
    src=$(jq -r '.items[0].source | ascii_downcase' <<<"$rec")
    src_hits[$src]=$((${src_hits[$src]:-0} + 1))
    hits=$((hits + 1))
  else
    item="never-recommended-$u"
    misses=$((misses + 1))
  fi
  printf 'u%d|{"user_id":"u%d","item_id":"%s","type":"VIEW","ts":%d}\n' \
    "$u" "$u" "$item" $((1700000300000 + u)) >>"$T/round2"
done
kcat -P -b "$B" -t events -K '|' <"$T/round2"  # stdin: one message a line (a file argument is one message)
for _ in $(seq 200); do
  [ "$(value recstream_events_consumed_total 'type="view"')" -ge "$N" ] && break
  sleep 0.1
done
[ "$(value recstream_events_consumed_total 'type="view"')" -eq "$N" ] || fail "view count"

# ---- the A/B counters
exp=$(value recstream_ab_exposures_total)
[ "$exp" -eq "$N" ] || fail "exposures $exp, expected $N"
h5=$(value recstream_ab_hits_total 'k="5"')
h10=$(value recstream_ab_hits_total 'k="10"')
[ "$h5" -eq "$hits" ] || fail "hits at 5: $h5, expected $hits"
[ "$h10" -eq "$hits" ] || fail "hits at 10: $h10, expected $hits"
for s in "${!src_hits[@]}"; do
  got=$(value recstream_ab_hits_total "source=\"$s\",k=\"10\"")
  [ "$got" -eq "${src_hits[$s]}" ] || fail "hits from $s: $got, expected ${src_hits[$s]}"
done
ctl=$(value recstream_ab_exposures_total 'variant="control"')
pop=$(value recstream_ab_exposures_total 'variant="popular"')
[ $((ctl + pop)) -eq "$N" ] && [ "$ctl" -gt 0 ] && [ "$pop" -gt 0 ] ||
  fail "exposures by variant: control $ctl, popular $pop"
# the popular arm only ever shows popular items
[ "$(value recstream_ab_item_exposures_total 'variant="popular",source="online"')" -eq 0 ] ||
  fail "the popular variant showed online items"
users=$(value recstream_ab_users)
[ "$users" -eq "$N" ] || fail "users $users, expected $N"
# the published records carry their variant
jq -e -s 'all(.[]; (.payload | fromjson).variant as $v | $v == "control" or $v == "popular")' \
  "$T/recs.json" >/dev/null || fail "records without a known variant"

# ---- histograms and the other counters moved
[ "$(value recstream_event_to_publish_latency_seconds_count)" -ge $((2 * N)) ] ||
  fail "latency histogram count"
[ "$(value recstream_batch_duration_seconds_count)" -ge 2 ] || fail "batch histogram count"
[ "$(value recstream_recommendations_published_total)" -ge $((2 * N)) ] || fail "published"
curl -s "$M/metrics" | grep -q '^recstream_model_info{version="' || fail "no model_info"
# lag per assigned partition, from librdkafka's statistics: all caught up
for _ in $(seq 50); do
  [ "$(curl -s "$M/metrics" | grep -c '^recstream_consumer_lag{topic="events"')" -eq 2 ] &&
    [ "$(value recstream_consumer_lag)" -eq 0 ] && break
  sleep 0.1
done
[ "$(curl -s "$M/metrics" | grep -c '^recstream_consumer_lag{topic="events"')" -eq 2 ] ||
  fail "no lag for the 2 partitions: $(curl -s "$M/metrics" | grep consumer_lag)"
[ "$(value recstream_consumer_lag)" -eq 0 ] || fail "lag $(value recstream_consumer_lag) at rest"

# ---- ab-report on the live endpoint and on a saved copy
"$RECSTREAM" ab-report --metrics-url "$M/metrics" >"$T/report.txt" || fail "ab-report failed"
grep -q '^control ' "$T/report.txt" && grep -q '^popular ' "$T/report.txt" ||
  fail "ab-report lacks a variant: $(cat "$T/report.txt")"
grep -q "against control" "$T/report.txt" || fail "ab-report lacks the comparison"
curl -s "$M/metrics" >"$T/metrics.txt"
"$RECSTREAM" ab-report --file "$T/metrics.txt" >"$T/report2.txt" || fail "ab-report --file"
diff -q <(grep -v users "$T/report.txt") <(grep -v users "$T/report2.txt") >/dev/null ||
  fail "live and saved reports differ"
rc=0
"$RECSTREAM" ab-report >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "ab-report without a source exited $rc, not 2"

kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
[ "$rc" -eq 0 ] || fail "run exited $rc after SIGTERM"
cat "$T/report.txt"
echo "ok: $N users, $exp exposures, $hits hits (at 5 and 10), $misses misses counted"
