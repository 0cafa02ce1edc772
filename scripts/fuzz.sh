#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (CMake preset `fuzz`: clang-14, ASan + UBSan) and runs each for a
# fixed time from a COPY of its committed seed corpus (tests/fuzz/corpus/<name>/ is never
# modified). Fails if any fuzzer finds a crash, a leak, a timeout or a sanitizer report, and then
# prints the crash file and the command that reproduces it. See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [--seconds N] [--jobs J] [--no-deps] [--no-build] [--keep] [NAME...]
#   --seconds N  run each fuzzer N seconds (default 60)
#   --jobs J     fuzzers run at the same time, one core each (default 2)
#   --no-deps    do not call scripts/install-deps.sh
#   --no-build   use the fuzzers already in build/fuzz
#   --keep       keep the work directory (grown corpora, logs) even when everything passed
#   NAME...      fuzzers to run (default: all, e.g. `ring rndis`; see tests/fuzz/*_fuzzer.cc)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=60
jobs=2
deps=1
build=1
keep=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --no-deps) deps=0; shift ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done

cd "$root"
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/*_fuzzer.cc; do
    n="$(basename "$f" _fuzzer.cc)"
    names+=("$n")
  done
fi

start=$(date +%s)
if [ "$deps" = 1 ]; then
  scripts/install-deps.sh
fi
if [ "$build" = 1 ]; then
  launcher=()
  if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake --preset fuzz "${launcher[@]}" >/dev/null
  cmake --build --preset fuzz
fi
built=$(date +%s)
bin="$root/build/fuzz/tests/fuzz"

work="$root/build/fuzz/run-$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# One fuzzer: corpus copy, artifacts and log under $work/<name>/.
run_one() {
  local name="$1" dir="$work/$1" exe="$bin/$1_fuzzer"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ ! -x "$exe" ]; then
    echo "missing fuzzer $exe" >"$dir/log"
    echo 127 >"$dir/rc"
    return
  fi
  if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$dir/corpus/"; fi
  local extra=()
  if [ -f "tests/fuzz/dict/$name.dict" ]; then extra+=("-dict=tests/fuzz/dict/$name.dict"); fi
  local rc=0
  # -timeout: one input taking > 10 s is a hang; -rss_limit_mb: unbounded growth is a finding.
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${extra[@]}" "$dir/corpus" \
    >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

echo "fuzz.sh: running ${names[*]} for ${seconds}s each, ${jobs} at a time (work dir $work)"
running=0
for name in "${names[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$name" &
  running=$((running + 1))
done
wait || true
end=$(date +%s)

failed=0
printf '%-18s %12s %10s %8s  %s\n' fuzzer execs exec/s cov result
for name in "${names[@]}"; do
  dir="$work/$name"
  rc="$(cat "$dir/rc" 2>/dev/null || echo 1)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)"
  crashes=("$dir"/artifacts/*)
  if [ "$rc" = 0 ] && [ ! -e "${crashes[0]}" ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-18s %12s %10s %8s  %s\n' "$name" "${execs:--}" "${speed:--}" "${cov:--}" "$result"
done

for name in "${names[@]}"; do
  dir="$work/$name"
  rc="$(cat "$dir/rc" 2>/dev/null || echo 1)"
  crashes=("$dir"/artifacts/*)
  if [ "$rc" = 0 ] && [ ! -e "${crashes[0]}" ]; then continue; fi
  echo
  echo "=== $name: finding (log: $dir/log)"
  grep -E 'ERROR|SUMMARY|fuzz invariant|runtime error|Test unit written' "$dir/log" | head -20 || true
  for c in "${crashes[@]}"; do
    [ -e "$c" ] || continue
    echo "crash file: $c"
    echo "reproduce:  $bin/${name}_fuzzer $c"
  done
done

echo
echo "fuzz.sh: build $((built - start))s, fuzzing $((end - built))s, total $((end - start))s"
if [ "$failed" = 0 ] && [ "$keep" = 0 ]; then rm -rf "$work"; fi
if [ "$failed" != 0 ]; then
  echo "fuzz.sh: FAILED (artifacts kept in $work)"
  exit 1
fi
echo "fuzz.sh: all fuzzers ran ${seconds}s without a finding"
