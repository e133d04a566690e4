#!/usr/bin/env bash
# `recstream demo` (the README's first command) runs the whole system on a
# short live phase and shows it: sample users with their lists (item, score,
# source), the malformed event dead-lettered, and a summary whose figures
# are consistent. Also: --help and a bad flag (one line, exit 2).
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
T="$TEST_TMPDIR/demo-$$"
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; cat "$T/out" >&2 || true; tail -20 "$T/err" >&2 || true; exit 1; }

"$RECSTREAM" demo --duration 6s --train-events 20000 --work-dir "$T/work" \
    --variant name=control,share=0.5 --variant name=rerank,share=0.5,blend=rerank >"$T/out" 2>"$T/err" ||
    fail "demo exited $?"

grep -q '^embedded Kafka broker at 127\.0\.0\.1:[0-9]' "$T/out" || fail "no broker address"
grep -Eq '^model als-.*: [1-9][0-9]* items, 32 factors' "$T/out" || fail "no model line"
[ -s "$T/work/model.bin" ] && [ -s "$T/work/offline.avro" ] || fail "model files not in --work-dir"

# Sample users and their lists: "user uNNN (known user|new user) after TYPE item:"
# followed by ranked lines "1. iNNN SCORE SOURCE".
n_users=$(grep -Ec '^\[ *[0-9.]+s\] user u[0-9]+ \((known|new) user\) after (LISTEN|VIEW|LIKE) i[0-9]+:$' "$T/out" || true)
[ "$n_users" -ge 1 ] || fail "no sample user's list printed"
grep -Eq '^ +1\. i[0-9]+ +-?[0-9]+\.[0-9]+ +(ONLINE|OFFLINE|POPULAR)$' "$T/out" || fail "no ranked item line"
grep -Eq ' ONLINE$' "$T/out" || fail "no ONLINE item among the sample lists"

# The summary: numbers > 0 and consistent.
field() { sed -n "s/^  $1 *\([0-9][0-9]*\).*/\1/p" "$T/out"; }
produced=$(field 'events produced'); processed=$(field 'events processed')
dlq=$(field 'dead-lettered'); users=$(field 'users'); published=$(field 'recommendations')
for v in produced processed dlq users published; do
    [ -n "${!v}" ] && [ "${!v}" -gt 0 ] || fail "summary $v is '${!v}'"
done
[ "$dlq" -eq 1 ] || fail "expected exactly the one malformed event dead-lettered, got $dlq"
[ "$processed" -eq $((produced - 1)) ] || fail "processed $processed of $produced produced (1 malformed)"
[ "$published" -ge "$users" ] || fail "$published lists for $users users"
grep -Eq '^  latency .*p50 [0-9]+ ms, p95 [0-9]+ ms, max [0-9]+ ms \(([1-9][0-9]*) lists' "$T/out" ||
    fail "no latency figures"
model=$(sed -n 's/^  model version *//p' "$T/out")
[[ "$model" == als-* ]] || fail "model version '$model'"
grep -q "^model $model:" "$T/out" || fail "summary model $model is not the one trained"
grep -q '^  offline version *offline-demo-' "$T/out" || fail "no offline version"

# The A/B report of the two arms: lists judged by their users' next events.
ab_exposures() { awk -v v="$1" '$1 == v && $3 ~ /^[0-9]+$/ { print $3; exit }' "$T/out"; }
for v in control rerank; do
    e=$(ab_exposures $v)
    [ -n "$e" ] && [ "$e" -gt 0 ] || fail "A/B report: variant $v has exposures '$e'"
done
grep -Eq '^rerank +hit@10 +diff [+-][0-9.]+ ' "$T/out" || fail "A/B report lacks the comparison"

# --help, and a bad flag: one line, exit 2.
"$RECSTREAM" demo --help >"$T/help" || fail "--help exited $?"
grep -q -- "--duration" "$T/help" || fail "--help lacks --duration"
set +e
"$RECSTREAM" demo --duration nope >"$T/bad.out" 2>"$T/bad.err"
code=$?
set -e
[ "$code" -eq 2 ] || fail "bad flag exited $code"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q -- '--duration' "$T/bad.err" || fail "bad flag: $(cat "$T/bad.err")"
set +e
"$RECSTREAM" demo --model "$T/work/model.bin" >"$T/bad.out" 2>"$T/bad.err"
code=$?
set -e
[ "$code" -eq 2 ] && grep -q -- '--model' "$T/bad.err" || fail "--model accepted (exit $code)"
rm -rf "$T"
echo "demo: ok"
