#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) in build-fuzz/ and runs
# each for N seconds (default 30), one after the other.
#   fuzz/run.sh [seconds] [target...]     targets: csv_reader jsonl_reader config_loader config_aliases ac_responses
#                                         mc_responses
# Seeds are read from fuzz/corpus/<target>/ (checked in, never written); what a run finds goes
# to build-fuzz/corpus/<target>/ and is reused by the next run. A crash leaves its input in
# build-fuzz/artifacts/<target>/ and the script exits non-zero after running every target.
# Reproduce a crash:  build-fuzz/fuzz/fuzz_<target> build-fuzz/artifacts/<target>/crash-...
# config_aliases runs with a 512 MB memory limit (the others 2048 MB): the configuration
# limits must hold whatever the anchors and aliases; fuzz/<target>.dict is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv_reader jsonl_reader config_loader config_aliases ac_responses mc_responses)
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}

# CMakePresets.json's fuzz preset: clang, -DSEGPUSH_FUZZ=ON, no tests.
cmake --preset fuzz -B "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
for target in "${targets[@]}"; do
    corpus="$BUILD_DIR/corpus/$target"
    artifacts="$BUILD_DIR/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    rss_limit_mb=2048
    [ "$target" = config_aliases ] && rss_limit_mb=512
    dict=()
    [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
    echo "== fuzz_$target for ${seconds}s"
    if ! "$BUILD_DIR/fuzz/fuzz_$target" "$corpus" "fuzz/corpus/$target" "${dict[@]}" \
            -max_total_time="$seconds" -timeout=25 -rss_limit_mb="$rss_limit_mb" -max_len=65536 \
            -artifact_prefix="$artifacts/" -print_final_stats=1 >"$BUILD_DIR/fuzz_$target.log" 2>&1; then
        failed+=("$target")
        tail -n 60 "$BUILD_DIR/fuzz_$target.log"
        echo "fuzz_$target FAILED: input in $artifacts/, full log in $BUILD_DIR/fuzz_$target.log"
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ *DONE' "$BUILD_DIR/fuzz_$target.log" | tr '\n' ' '
        echo
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]}"
    exit 1
fi
