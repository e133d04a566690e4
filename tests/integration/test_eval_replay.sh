#!/usr/bin/env bash
# `recstream eval --replay` as a data person runs it: on a MovieLens-shaped
# file (headerless TSV user, item, rating, timestamp in seconds; made here,
# nothing is downloaded) with the rating as the weight or as a threshold,
# and on the synthetic generator with drifting users; the table, the JSON
# and the bad flags (one line, exit 2).
set -euo pipefail
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"
T="$TEST_TMPDIR/eval-replay-$$"
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; tail -n 20 "$T"/*.err >&2 || true; exit 1; }

# ---- u.data: 300 users in 8 taste groups over 200 items, ratings 1..5,
# seconds since the epoch, in no particular order (the replay sorts by time)
awk 'BEGIN { srand(3); for (u = 1; u <= 300; u++) for (j = 0; j < 40; j++) {
  g = u % 8; i = (rand() < 0.8) ? 1 + g + 8 * int(rand() * 25) : 1 + int(rand() * 200);
  printf "%d\t%d\t%d\t%d\n", u, i, 1 + int(rand() * 5), 881250949 + int(rand() * 5000000) } }' \
  >"$T/u.data"

"$RECSTREAM" eval --replay "$T/u.data" --columns user,item,weight,ts --ts-unit s \
  --factors 8 --iterations 5 --variant name=mine,blend=weighted,w.online=2 \
  >"$T/u.out" 2>"$T/u.err" || fail "replay of u.data"
head -1 "$T/u.out" | grep -q '^strategy *HR@5 *HR@10 *HR@20 *NDCG@5 .* Cov@20$' || fail "table header"
for s in popular offline online foldin interleave weighted rerank bandit variant:mine; do
  grep -q "^$s " "$T/u.out" || fail "row $s"
done
grep -q '^replayed 2400 events (.* scored, .* repeats .*) in .* s: [0-9]* events/s ([0-9]* threads, .* CPU s: [0-9]* events per CPU second)$' "$T/u.out" ||
  fail "replay summary line"
grep -q 'training on 9600 events, replaying 2400' "$T/u.err" || fail "cut at 80% by default"

# JSON on stdout instead of the table; the rating as a threshold
"$RECSTREAM" eval --replay "$T/u.data" --columns user,item,weight,ts --ts-unit s \
  --factors 8 --iterations 5 --min-weight 4 --test-fraction 0.3 --json - \
  >"$T/u.json" 2>"$T/uj.err" || fail "replay with --json -"
python3 - "$T/u.json" <<'PY' || fail "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["replay"]
assert r["trained"] + r["replayed"] == d["data"]["events"] < 12000 * 0.5, r  # ratings 4, 5: ~40%
assert r["scored"] + r["repeats"] == r["replayed"], r
assert r["events_per_s"] > 0
names = set(d["results"])
assert {"popular", "offline", "online", "foldin", "rerank", "bandit"} <= names, names
for name, at in d["results"].items():
    assert [a["k"] for a in at] == [5, 10, 20], at
    hr = [a["hr"] for a in at]
    assert hr == sorted(hr) and all(0 <= h <= 1 for h in hr), (name, hr)
assert set(d["bandit_weights"]) == {"window 0", "window 1-4", "window 5-19", "window 20+"}
PY
grep -q 'kept [0-9]* of 12000 events' "$T/uj.err" || fail "--min-weight reported"

# ---- synthetic, drifting: the gap between offline and online shows
"$RECSTREAM" eval --replay synthetic --synthetic 60000 --users 1000 --items 400 --drift 0.3 \
  --factors 16 --iterations 6 --json "$T/s.json" >"$T/s.out" 2>"$T/s.err" ||
  fail "synthetic replay"
python3 - "$T/s.json" <<'PY' || fail "synthetic results"
import json, sys
d = json.load(open(sys.argv[1]))
hr = {k: v[1]["hr"] for k, v in d["results"].items()}
assert d["data"]["source"] == "synthetic" and d["replay"]["replayed"] == 12000, d["replay"]
assert d["replay"]["cold_users"] > 0, d["replay"]            # users arriving late are scored
assert hr["rerank"] > hr["online"] and hr["rerank"] > hr["offline"], hr
assert hr["online"] > hr["popular"], hr
PY

# ---- hyper-parameter search of the online part: every setting tried is
# listed, the best is the best of them, and the best command line is printed
"$RECSTREAM" eval --replay "$T/u.data" --columns user,item,weight,ts --ts-unit s \
  --factors 8 --iterations 5 --search online --json "$T/search.json" >"$T/search.out" \
  2>"$T/search.err" || fail "search"
grep -q '^best for online: --history [0-9]* --neighbours [0-9]* --half-life [0-9]*ms --type-weights listen=' \
  "$T/search.out" || fail "search: best line"
python3 - "$T/search.json" <<'PY' || fail "search JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["strategy"] == "online"
tried = d["tried"]
assert 10 <= len(tried) <= 16, len(tried)
assert d["best"]["hr10"] == max(t["hr10"] for t in tried), d["best"]
assert {t["history"] for t in tried} == {10, 20, 50, 100}
PY

# ---- bad flags: one line, exit 2
for args in "--replay x --input y" "--replay x --popular often" "--search online" \
  "--replay x --search nope" "--replay x --strategies online,bogus" \
  "--replay x --synthetic 5" "--replay x --half-life 0" "--replay x --k 5,300"; do
  set +e
  # shellcheck disable=SC2086
  "$RECSTREAM" eval $args >/dev/null 2>"$T/flag.err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "'eval $args' exit $rc"
  [ "$(wc -l <"$T/flag.err")" -eq 1 ] || fail "'eval $args' printed more than one line"
done
# an unreadable log: exit 1
set +e
"$RECSTREAM" eval --replay "$T/missing.tsv" >/dev/null 2>"$T/missing.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "missing log exit $rc"
rm -rf "$T"
echo "eval --replay: ok"
