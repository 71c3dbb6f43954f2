#!/usr/bin/env bash
# Bounded libFuzzer runs of midge-fuzz's entry points: the frame decoder and the broker core (Sources/midge-fuzz).
#
# Usage: Tests/fuzz/run.sh SECONDS [decoder|core]...   fuzz each entry point (default: both) for SECONDS
#        Tests/fuzz/run.sh merge                       fold what earlier runs found into the committed corpus
#
# Builds midge-fuzz in release with -sanitize=fuzzer,address, then runs each entry point seeded with
# Tests/fuzz/corpus/<entry point> and the MQTT dictionary. The committed corpus is only read: new inputs go to
# $OUT/<entry point>/corpus, and crash, leak, timeout and out-of-memory reproducers to $OUT/<entry point>/artifacts,
# where they stay. Prints one summary line per entry point; exits non-zero when a run left a reproducer or did not
# finish. `merge` adds to the committed corpus a small set of new inputs that reaches all the coverage it lacks
# (-set_cover_merge=1, a smaller result than -merge=1 for the same features).
#
# Environment: MIDGE_FUZZ_SCRATCH  build directory (default .build-fuzz-lf)
#              MIDGE_FUZZ_OUT      run output (default $MIDGE_FUZZ_SCRATCH/fuzz-out)
#              MIDGE_FUZZ_SANITIZERS  default fuzzer,address; "fuzzer" drops AddressSanitizer
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() {
    echo "usage: $0 SECONDS [decoder|core]... | $0 merge" >&2
    exit 2
}
[ $# -ge 1 ] || usage

SCRATCH=${MIDGE_FUZZ_SCRATCH:-.build-fuzz-lf}
OUT=${MIDGE_FUZZ_OUT:-$SCRATCH/fuzz-out}
SANITIZERS=${MIDGE_FUZZ_SANITIZERS:-fuzzer,address}
CORPUS=Tests/fuzz/corpus
DICT=Tests/fuzz/mqtt.dict
MAX_LEN=4096      # bytes per input: a few dozen packets, and keeps the seeds' sizes from setting it
RSS_LIMIT_MB=2048 # AddressSanitizer's quarantine alone takes 256 MB
UNIT_TIMEOUT=10   # seconds for one input; a slow one is kept as a timeout-* reproducer

# Swift's own crash backtracer would race libFuzzer's handler on abort; libFuzzer reports the crash.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}

build() {
    # SwiftPM links its own `main` (it renames the executable's entry point and defines `main` with --defsym), while
    # -sanitize=fuzzer links all of libFuzzer, whose archive has a `main` too: gold crashes reporting the clash, lld
    # keeps the --defsym one. midge-fuzz's main then starts libFuzzer through LLVMFuzzerRunDriver.
    swift build -c release --scratch-path "$SCRATCH" --product midge-fuzz \
        -Xswiftc "-sanitize=$SANITIZERS" -Xswiftc -DMIDGE_LIBFUZZER -Xswiftc -use-ld=lld >&2
    BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/midge-fuzz"
}

stat_value() { # stat_value LOG NAME: a final statistic libFuzzer printed, or ?
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1 | grep . || echo "?"
}

if [ "$1" = merge ]; then
    build
    for target in decoder core; do
        [ -d "$OUT/$target/corpus" ] || continue
        before=$(find "$CORPUS/$target" -type f | wc -l)
        "$BIN" "$target" -set_cover_merge=1 -max_len=$MAX_LEN -rss_limit_mb=$RSS_LIMIT_MB -timeout=$UNIT_TIMEOUT \
            "$CORPUS/$target" "$OUT/$target/corpus" >"$OUT/$target/merge.log" 2>&1
        echo "merge $target: $before -> $(find "$CORPUS/$target" -type f | wc -l) committed inputs"
    done
    exit 0
fi

SECONDS_PER_TARGET=$1
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || usage
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decoder core)
for target in "${targets[@]}"; do
    [ "$target" = decoder ] || [ "$target" = core ] || usage
done

build
status=0
for target in "${targets[@]}"; do
    dir="$OUT/$target"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    log="$dir/fuzz.log"
    touch "$dir/.started"  # reproducers newer than this are this run's
    run_status=0
    # libFuzzer stops itself after -max_total_time; the outer timeout only guards against a hang outside it.
    timeout -k 10 $((SECONDS_PER_TARGET + 300)) "$BIN" "$target" \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=$RSS_LIMIT_MB -timeout=$UNIT_TIMEOUT -max_len=$MAX_LEN \
        -dict="$DICT" -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
        "$dir/corpus" "$CORPUS/$target" >"$log" 2>&1 || run_status=$?
    crashes=$(find "$dir/artifacts" -type f -newer "$dir/.started" | wc -l)
    coverage=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1 || true)
    echo "fuzz $target: ${SECONDS_PER_TARGET} s, $(stat_value "$log" number_of_executed_units) inputs," \
        "$(stat_value "$log" average_exec_per_sec) exec/s, ${coverage:-cov: ?}, peak rss" \
        "$(stat_value "$log" peak_rss_mb) MB, crashes $crashes, exit $run_status"
    if [ "$crashes" -gt 0 ] || [ "$run_status" -ne 0 ]; then
        status=1
        echo "-- $target: libFuzzer's report ($log):"
        grep -E '^(midge-fuzz|    [^ #]|==[0-9]+==ERROR|SUMMARY|.*[Ff]atal error|artifact_prefix)' "$log" |
            head -n 40 || tail -n 40 "$log"
        for file in $(find "$dir/artifacts" -type f -newer "$dir/.started" | head -n 5); do
            echo "-- reproducer $file ($(wc -c <"$file") bytes); trace it with a plain build:" \
                "swift build --product midge-fuzz && .build/debug/midge-fuzz $target --trace $file"
            od -An -tx1 -v "$file" | head -n 16  # coreutils, unlike xxd
        done
    fi
done
exit $status
