# Sourced by the integration tests (not a test itself: ctest runs test_*.sh).
# What every test that drives `recstream run` needs: a fresh work directory,
# background processes killed on exit, a failure line with the processor's
# log, the standalone broker, a tiny trained model and a free port.
#   . "$TESTS_DIR/integration/lib.sh"; it_setup NAME
: "${RECSTREAM:?}" "${TEST_TMPDIR:?}"

# it_setup NAME: T is a fresh $TEST_TMPDIR/NAME-PID; processes added to
# pids are killed when the test exits.
it_setup() {
    T="$TEST_TMPDIR/$1-$$"
    rm -rf "$T" && mkdir -p "$T"
    pids=()
    trap it_cleanup EXIT
}

it_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# fail MESSAGE: one FAIL line, then the tail of the processor's log.
fail() {
    echo "FAIL: $*" >&2
    echo "--- run log:" >&2
    tail -30 "$T/run.err" >&2 || true
    exit 1
}

# it_broker PARTITIONS: starts `recstream broker`; B is its address.
it_broker() {
    "$RECSTREAM" broker --partitions "$1" >"$T/broker.out" 2>"$T/broker.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$T/broker.out" ] && break; sleep 0.1; done
    B=$(head -1 "$T/broker.out")
    [ -n "$B" ] || fail "broker printed no address"
}

# it_model SEED NAME [ITERATIONS]: trains $T/NAME.bin and $T/NAME-offline.avro
# on 40 users in 4 taste groups (u0..u39; user u is in group u % 4, which
# listens to items i(10g)..i(10g+9)), 15 events each; the seed varies the
# events, so models of different seeds have different versions.
it_model() {
    awk -v seed="$1" 'BEGIN { srand(seed); print "user\titem\ttype\tts";
      for (u = 0; u < 40; u++) for (j = 0; j < 15; j++)
        printf "u%d\ti%d\tLISTEN\t%d\n", u, (u % 4) * 10 + int(rand() * 10),
               1700000000000 + u * 100 + j }' >"$T/$2.tsv"
    "$RECSTREAM" train --input "$T/$2.tsv" --header --model-out "$T/$2.bin" \
        --offline-out "$T/$2-offline.avro" --factors 8 --iterations "${3:-5}" \
        >"$T/$2-train.out" 2>"$T/$2-train.err" ||
        { cat "$T/$2-train.err" >&2; fail "recstream train ($2)"; }
}

# it_free_port: a TCP port free on 127.0.0.1 just now.
it_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
