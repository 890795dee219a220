#!/usr/bin/env bash
# Builds virnucpro and runs `predict` on the bundled example with the bundled demo models.
# Usage: bash scripts/demo.sh          (installs Debian packages first; set VNP_SKIP_DEPS=1 to skip)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${VNP_SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target virnucpro
out=demo_output
models=examples/demo-models
./build/src/cli/virnucpro predict examples/example.fa -m 500 -o "$out" --force \
  --esm-model "$models/esm2_tiny" --dnabert-model "$models/dnabert2_tiny" --classifier "$models/classifier_500.pth"
cat <<MSG

Demo finished. Results are in $out/:
$(ls -1 "$out" | sed 's/^/  /')

NOTE: the demo models have RANDOM weights: these scores mean nothing. For real predictions fetch the
published models (ESM-2 3B, DNABERT-S, the VirNucPro classifiers); this prints where they are looked
for and the commands that fetch them:
  ./build/src/cli/virnucpro models check
MSG
