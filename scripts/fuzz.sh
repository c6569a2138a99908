#!/usr/bin/env bash
# Fuzz the session reader and loader, the envelope decoder and deep nesting
# for a bounded time.
#
#     scripts/fuzz.sh [SECONDS]      # SECONDS per target, default 60
#
# scripts/test runs it for 20 s per target after the test suite; run it
# longer on demand. It builds the seed corpora from the golden sessions in
# tests/data/v1 into fuzz/corpus/ (git-ignored; what a run finds is kept
# there for the next one), then runs each target for SECONDS with
# libFuzzer, and prints the executions per target. Exits non-zero if any
# target crashed: the failing input is in fuzz/artifacts/<target>/ and
# cargo-fuzz prints how to reproduce it (a reproducer becomes a regression
# test in tests/fuzz_regressions.rs). Builds go to fuzz/target (set
# FUZZ_TARGET_DIR to change it), never to the main target directory.
# cargo-fuzz and the nightly toolchain come from .ci/install; without
# rustup, RUSTC_BOOTSTRAP=1 lets the stable toolchain provide the nightly
# features.
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing (.ci/install installs it)" >&2
    exit 2
fi
fuzz=(cargo fuzz)
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
fi

python3 fuzz/make_corpus.py || { echo "fuzz: could not build the seed corpus" >&2; exit 2; }

targets=(session_reader envelope_decode deep_nesting)
echo "fuzz: building ${targets[*]}"
if ! "${fuzz[@]}" build >fuzz/build.log 2>&1; then
    tail -30 fuzz/build.log >&2
    echo "fuzz: building the targets failed (fuzz/build.log)" >&2
    exit 2
fi

status=0
summary=()
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${secs} s"
    mkdir -p "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target.log"
    "${fuzz[@]}" run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -dict=fuzz/session.dict -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        grep -E -A12 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -60 >&2
        echo "fuzz: $target FAILED after ${runs:-?} executions (see $log and fuzz/artifacts/$target/)" >&2
        summary+=("$target: FAILED after ${runs:-?} executions")
        status=1
    else
        summary+=("$target: ${runs:-?} executions in ${secs} s, no crash")
    fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$status"
