#!/usr/bin/env bash
# Installs every build and test dependency of uvmbus from Debian's archive (Debian 12).
# Idempotent; needs root (or sudo). Usage: scripts/install-deps.sh [--bench]
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=(
  g++ cmake ninja-build pkg-config
  libcli11-dev libfmt-dev nlohmann-json3-dev libexpected-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  iproute2 iputils-ping tcpdump procps
  dpdk
)
# dpdk: dpdk-testpmd drives a uvmbus NIC with DPDK's own netvsc PMD (docs/interop.md) and is the
# memif peer of the benchmarks. --bench adds the profiler used for docs/benchmarks.md.
if [ "${1:-}" = "--bench" ]; then packages+=(linux-perf); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
