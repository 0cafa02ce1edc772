#!/usr/bin/env bash
# Installs dependencies, builds and runs the whole test suite.
#   scripts/test.sh            release preset, then the asan preset (what CI runs)
#   scripts/test.sh PRESET...  only the named presets (release, debug, asan, tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(release asan)
for p in "${presets[@]}"; do
  echo "=== preset $p ==="
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p"
done
