#!/usr/bin/env bash
# The desktop app's CPU share and memory over a stretch of time, read from
# /proc/PID/stat and /proc/PID/status (the whole process, every thread).
#
#   scripts/app_cpu.sh CASE [SECONDS]
#
# CASE:
#   paused  the 1-hour session loaded and paused, a quiet bus (a broker of
#           its own with nothing on it)
#   demo    the same, with the demo synth publishing at full rate from
#           another process
#   live    the demo, no session loaded (for memory over a long run)
#
# SECONDS defaults to 60. The app runs under the current DISPLAY, or under
# an Xvfb of its own when there is none. The settings live in a scratch HOME
# so the performer's are untouched. Figures printed: CPU as % of one core,
# RSS at the start and end of the window and its min/max (sampled every 5 s).
# Environment: BIN (default target/release/integr8tor), SESSION (default
# target/bench-data/big.msgpack, made by make_session.py if missing),
# WARMUP seconds before measuring (default 20), PORT (default 19392),
# SAMPLE seconds between RSS samples (default 5), RSS_LOG a file to which
# each sample is written as "seconds rss_kib", HISTORY_MB the live history
# budget (`--history-mb`; the smallest, 4, fills within minutes of demo).
# THREADS=1 also prints each thread's share (from /proc/PID/task/*/stat),
# summed by thread name, largest first.
set -euo pipefail

case_name=${1:?usage: scripts/app_cpu.sh paused|demo|live [SECONDS]}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release/integr8tor}
session=${SESSION:-$root/target/bench-data/big.msgpack}
warmup=${WARMUP:-20}
port=${PORT:-19392}
tick=$(getconf CLK_TCK)
sample=${SAMPLE:-5}
rss_log=${RSS_LOG:-}
history=()
[ -n "${HISTORY_MB:-}" ] && history=(--history-mb "$HISTORY_MB")

[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 2; }
if [ "$case_name" != live ] && [ ! -f "$session" ]; then
    mkdir -p "$(dirname "$session")"
    python3 "$root/tests/data/make_golden.py" "$session" --seconds 3600
fi

pids=()
scratch=$(mktemp -d)
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

if [ -z "${DISPLAY:-}" ]; then
    d=120
    while [ -e "/tmp/.X11-unix/X$d" ]; do d=$((d + 1)); done
    Xvfb ":$d" -screen 0 1600x1000x24 >/dev/null 2>&1 &
    pids+=($!)
    export DISPLAY=":$d"
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$d" ] && break; sleep 0.1; done
fi

"$bin" broker --port "$port" >"$scratch/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
brokers="127.0.0.1:$port"
if [ "$case_name" != paused ]; then
    "$bin" demo --brokers "$brokers" >"$scratch/demo.log" 2>&1 &
    pids+=($!)
fi
open=()
[ "$case_name" != live ] && open=(--open "$session")
HOME="$scratch" XDG_DATA_HOME="$scratch/data" XDG_CONFIG_HOME="$scratch/config" \
    "$bin" gui --brokers "$brokers" "${open[@]}" "${history[@]}" >"$scratch/app.log" 2>&1 &
app=$!
pids+=("$app")

cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$app/stat"; }
# "tid name ticks" per thread (names may hold spaces: joined with _)
thread_ticks() {
    for f in /proc/"$app"/task/*/stat; do
        awk -v f="$f" '{
            line = $0; name = line; sub(/^[^(]*\(/, "", name); sub(/\) [^)]*$/, "", name)
            gsub(/ /, "_", name); sub(/.*\) /, "", line); split(line, a, " ")
            n = split(f, p, "/"); print p[n - 1], name, a[12] + a[13]
        }' "$f" 2>/dev/null || true
    done
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$app/status"; }

sleep "$warmup"
kill -0 "$app" 2>/dev/null || { echo "the app exited:"; cat "$scratch/app.log"; exit 2; }
[ -n "${THREADS:-}" ] && thread_ticks >"$scratch/threads0"
t0=$(cpu_ticks); r0=$(rss_kb); start=$(date +%s.%N)
rmin=$r0; rmax=$r0
elapsed=0
[ -n "$rss_log" ] && echo "0 $r0" >"$rss_log"
while [ "$elapsed" -lt "$seconds" ]; do
    step=$(( seconds - elapsed < sample ? seconds - elapsed : sample ))
    sleep "$step"
    elapsed=$((elapsed + step))
    r=$(rss_kb)
    [ -n "$rss_log" ] && echo "$elapsed $r" >>"$rss_log"
    [ "$r" -lt "$rmin" ] && rmin=$r
    [ "$r" -gt "$rmax" ] && rmax=$r
done
t1=$(cpu_ticks); r1=$(rss_kb); end=$(date +%s.%N)
[ -n "${THREADS:-}" ] && thread_ticks >"$scratch/threads1"
awk -v c="$case_name" -v t0="$t0" -v t1="$t1" -v hz="$tick" -v s="$start" -v e="$end" \
    -v r0="$r0" -v r1="$r1" -v rmin="$rmin" -v rmax="$rmax" 'BEGIN {
    wall = e - s
    printf "%s: %.1f %% of one core over %.0f s; RSS %.1f -> %.1f MiB (min %.1f, max %.1f, change %+.1f %%)\n",
        c, 100 * (t1 - t0) / hz / wall, wall, r0 / 1024, r1 / 1024, rmin / 1024, rmax / 1024,
        100 * (r1 - r0) / r0
}'
if [ -n "${THREADS:-}" ]; then
    # threads that ended or started within the window count what they did in it
    awk -v hz="$tick" -v s="$start" -v e="$end" '
        NR == FNR { before[$1] = $3; next }
        { d[$2] += $3 - before[$1]; n[$2]++ }
        END {
            wall = e - s
            for (k in d) if (d[k] > 0) printf "%6.1f %% %s (%d)\n", 100 * d[k] / hz / wall, k, n[k]
        }' "$scratch/threads0" "$scratch/threads1" | sort -gr | sed 's/^/  /'
fi
