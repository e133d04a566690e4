#!/bin/bash
# Runs the codec fuzzer for ctest.
#   run_fuzz.sh replay FUZZER DIR...            each file in the DIRs once
#   run_fuzz.sh fuzz FUZZER SECONDS WORKDIR DICT SEED_DIR...
# Fuzzing writes new inputs and any crash-* file under WORKDIR (build tree),
# never into the repository; move a crash file to tests/fuzz/regressions/.
set -euo pipefail
fuzzer=$(realpath "$2")
mode=$1
shift 2
case $mode in
replay)
    files=()
    for dir in "$@"; do
        for f in "$dir"/*; do [ -f "$f" ] && files+=("$f"); done
    done
    echo "replaying ${#files[@]} inputs"
    [ ${#files[@]} -gt 0 ] || exit 0
    exec "$fuzzer" "${files[@]}"
    ;;
fuzz)
    seconds=$1 work=$(realpath -m "$2") dict=$(realpath "$3")
    shift 3
    mkdir -p "$work/corpus"
    cd "$work"
    set -- $(for d in "$@"; do realpath "$d"; done)
    exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -dict="$dict" -print_final_stats=1 "$work/corpus" "$@"
    ;;
*)
    echo "usage: $0 replay|fuzz FUZZER ..." >&2
    exit 2
    ;;
esac
