#!/usr/bin/env bash
# Installs dependencies, builds and runs the whole test suite.
#   scripts/test.sh            release preset, then the asan preset (every unit and integration test)
#   scripts/test.sh PRESET...  only the named presets (release, debug, asan, tsan)
#   scripts/test.sh --ci       what CI runs: release + asan, then every fuzzer for 60 s
#                              (scripts/fuzz.sh) and a 2-minute soak on the asan build (scripts/soak.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ci=0
presets=()
for a in "$@"; do
  case "$a" in
    --ci) ci=1 ;;
    *) presets+=("$a") ;;
  esac
done
scripts/install-deps.sh
[ ${#presets[@]} -gt 0 ] || presets=(release asan)
for p in "${presets[@]}"; do
  echo "=== preset $p ==="
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
if [ "$ci" -eq 1 ]; then
  echo "=== fuzzers, 60 s each ==="
  scripts/fuzz.sh --seconds 60 --no-deps
  echo "=== soak, 2 minutes ==="
  soak_build=build/asan
  [ -x "$soak_build/src/tools/uvmbus" ] || soak_build=build/release
  scripts/soak.sh --duration 120 --build-dir "$soak_build"
fi
