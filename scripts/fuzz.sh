#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs each of them for a bounded
# time on a copy of its seed corpus (fuzz/corpus/<target>/; the committed corpus never grows here).
#   scripts/fuzz.sh [seconds-per-target]     default 60; two targets at a time
#   scripts/fuzz.sh --build-only              builds the targets and stops (CI builds them early)
# Fails (exit 1) on any crash, sanitizer report, leak, timeout (> 10 s for one input) or OOM
# (> 2048 MB), printing the reproducer's path: rerun it with build-fuzz/bin/<target>_fuzzer <path>.
# Environment: PWRCELL_FUZZ_BUILD_DIR (default build-fuzz), PWRCELL_FUZZ_TARGETS (names without
# _fuzzer, default all), PWRCELL_FUZZ_PARALLEL (targets at a time, default 2), PWRCELL_FUZZ_WORK (the
# directory for corpus copies, logs and reproducers; default a fresh temporary directory, deleted
# when every target passes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [--build-only | seconds-per-target]" >&2
    exit 2
    ;;
esac
build="${PWRCELL_FUZZ_BUILD_DIR:-$root/build-fuzz}"
parallel="${PWRCELL_FUZZ_PARALLEL:-2}"
targets=(${PWRCELL_FUZZ_TARGETS:-energy_record ingest_body concerto_answer ces_answer config device_json})

launcher=()
if command -v ccache > /dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
started=$(date +%s)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DPWRCELL_FUZZ=ON -DPWRCELL_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" > /dev/null
cmake --build "$build" -j2 --target pwrcell_fuzzers
echo "fuzz.sh: built in $(($(date +%s) - started)) s"
[ "$build_only" -eq 0 ] || exit 0

work="${PWRCELL_FUZZ_WORK:-}"
keep=1
if [ -z "$work" ]; then
  work=$(mktemp -d -t pwrcell-fuzz.XXXXXX)
  keep=0
fi
mkdir -p "$work"

# Runs one target; its exit status is libFuzzer's (0 only when the time ran out with no finding).
run_one() {
  local target=$1 dir="$work/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -R "$root/fuzz/corpus/$target/." "$dir/corpus/"
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$build/bin/${target}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" > "$dir/log" 2>&1
}

declare -A pids
failed=0
report() {
  local target=$1 status=$2 dir="$work/$1"
  local runs time
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  time=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$dir/log" | tail -1 || true)
  local artifacts
  artifacts=$(find "$dir/artifacts" -type f 2> /dev/null | sort)
  if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
    failed=1
    echo "fuzz.sh: $target FAILED (exit $status); log: $dir/log"
    grep -E 'ERROR: |runtime error:|SUMMARY:|Test unit written to' "$dir/log" | head -20 | sed 's/^/    /'
    for a in $artifacts; do echo "    reproducer: $a (run: $build/bin/${target}_fuzzer $a)"; done
  else
    local rate=""
    [ -n "$runs" ] && rate=" ($((runs / (seconds > 0 ? seconds : 1))) exec/s)"
    echo "fuzz.sh: $target ok: ${runs:-?} runs in ${seconds} s${rate}; $(grep -E '^#[0-9]+' "$dir/log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9/a-zA-Z]+' || true)"
  fi
}

running=()
for target in "${targets[@]}"; do
  if [ ! -d "$root/fuzz/corpus/$target" ]; then
    echo "fuzz.sh: no seed corpus fuzz/corpus/$target" >&2
    exit 2
  fi
  while [ "${#running[@]}" -ge "$parallel" ]; do
    # Wait for the oldest (targets take the same time).
    t=${running[0]}
    running=("${running[@]:1}")
    status=0
    wait "${pids[$t]}" || status=$?
    report "$t" "$status"
  done
  run_one "$target" &
  pids[$target]=$!
  running+=("$target")
done
for t in "${running[@]}"; do
  status=0
  wait "${pids[$t]}" || status=$?
  report "$t" "$status"
done

if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: FAILED; logs and reproducers under $work"
  exit 1
fi
[ "$keep" -eq 1 ] || rm -rf "$work"
echo "fuzz.sh: every target ran ${seconds} s without a finding"
