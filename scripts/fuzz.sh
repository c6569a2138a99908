#!/usr/bin/env bash
# Fuzz the session reader and the envelope decoder for a bounded time.
#
#     scripts/fuzz.sh [SECONDS]      # SECONDS per target, default 60
#
# Installs cargo-fuzz if it is missing, builds the seed corpora from the
# golden sessions in tests/data/v1 into fuzz/corpus/ (git-ignored), then runs each target
# for SECONDS with libFuzzer. Exits non-zero if any target crashed; the
# failing input is in fuzz/artifacts/<target>/ and cargo-fuzz prints how to
# reproduce it. Builds go to $CARGO_TARGET_DIR (default /work/target-fuzz, so
# the main target directory is never locked). cargo-fuzz needs nightly
# features; RUSTC_BOOTSTRAP=1 lets the stable toolchain provide them.
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz || { echo "could not install cargo-fuzz" >&2; exit 2; }
fi

python3 fuzz/make_corpus.py || { echo "could not build the seed corpus" >&2; exit 2; }

status=0
for target in session_reader envelope_decode; do
    echo "== $target: ${secs} s"
    mkdir -p "fuzz/artifacts/$target"
    if ! cargo fuzz run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -dict=fuzz/session.dict -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1; then
        echo "== $target FAILED (see fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit "$status"
