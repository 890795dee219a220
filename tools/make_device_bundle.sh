#!/usr/bin/env bash
# Packs the CUDA build's test and benchmark programs, with the shared libraries the GPU machine lacks,
# into .device/cuda/bundle.tar.xz, compressed because the working tree that travels is limited to
# 64 MiB and OpenBLAS alone is 35 MB. Run here after building BUILD_DIR; carry ".device/cuda" and
# start the device command with tools/device_esm_gpu.sh (which unpacks it).
#   usage: tools/make_device_bundle.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build-cuda}
stage=$(mktemp -d /tmp/vnp-cuda-bundle.XXXXXX)
programs=("$build/tests/engine_cuda/engine_cuda_tests" "$build/tests/engine_cuda/cuda_nodevice_tests"
          "$build/bench/esm_gpu/bench_esm_gpu" "$build/bench/esm_gpu/bench_dnabert_gpu")
for extra in src/cli/virnucpro bench/predict_gpu/make_coding_reads bench/esm_gpu/bench_gemm_algos \
             bench/esm_gpu/fp8_block_probe; do
  [[ -x "$build/$extra" ]] && programs+=("$build/$extra")
done
"$(dirname "$0")/device-bundle.sh" "$stage/bundle" "${programs[@]}"
strip --strip-unneeded "$stage"/bundle/bin/* "$stage"/bundle/lib/* 2>/dev/null || true
mkdir -p .device/cuda
tar -C "$stage" -cf - bundle | xz -T2 -6 > .device/cuda/bundle.tar.xz
rm -rf "$stage"
du -sh .device/cuda/bundle.tar.xz
