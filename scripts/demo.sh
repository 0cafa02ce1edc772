#!/usr/bin/env bash
# Installs dependencies, builds (release preset) and runs the main job: `uvmbus demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
exec build/release/src/tools/uvmbus demo "$@"
