#!/usr/bin/env bash
# Builds virnucpro and runs it on the bundled example.
# Usage: bash scripts/demo.sh          (installs Debian packages first; set VNP_SKIP_DEPS=1 to skip)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${VNP_SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target virnucpro
out=demo_output
rm -rf "$out"
./build/src/cli/virnucpro preprocess examples/example.fa -m 500 -o "$out"
echo
echo "Demo finished: chunked and six-frame files are in $out/"
ls -l "$out"
