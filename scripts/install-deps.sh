#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build and test virnucpro.
# Usage: sudo scripts/install-deps.sh   (root: as in CI and on a fresh machine)
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config git ca-certificates \
  libhts-dev zlib1g-dev libdeflate-dev libopenblas-dev \
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
  libhdf5-dev libssl-dev libdnnl-dev libcurl4-gnutls-dev libbz2-dev liblzma-dev libzstd-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  clang libclang-rt-14-dev clang-format \
  snakemake \
  python3 python3-venv chromium debootstrap >/dev/null
