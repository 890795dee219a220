#!/usr/bin/env bash
# fp8 block scales on the GPU machine in one short call (carry ".device/cuda", made by
# tools/make_device_bundle.sh from build-cuda with fp8_block_probe built; about a minute):
#   1. the block-scale GPU tests (CudaFp8Blocks.*, BlockFixtures/*), their failures with gtest's
#      "C++ exception with description ..." lines (the exception messages);
#   2. bench/esm_gpu/fp8_block_probe: per candidate cuBLASLt configuration (operand order, VEC128/BLK128x128
#      side, scale layouts, m, 3B shapes, f16/bf16/f32, fast accumulation, bias, beta) whether the heuristic
#      has an algorithm, the relative L2 against a double product of the dequantised operands, TFLOP/s;
#   3. cuBLASLt's own log (CUBLASLT_LOG_LEVEL=3) for the first configuration without an algorithm.
# The probe's table comes last. Logs in $OUT: fp8_tests.log, fp8_probe.log, fp8_probe_lt_log.txt.
#   usage: bash tools/device_fp8_probe.sh
set -uo pipefail
source tools/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1

timeout 90 "$bin/engine_cuda_tests" --gtest_filter='CudaFp8Blocks.*:BlockFixtures/CudaFp8Esm2Blocks.*' \
  > "$out/fp8_tests.log" 2>&1
echo "engine_cuda_tests (fp8 block tests) exit $?"
grep -E "^\[ +(OK|FAILED|PASSED) +\]|Failure|C\+\+ exception|Expected|Which is|relative_l2|row [0-9]+$|min cosine" \
  "$out/fp8_tests.log" | head -60

timeout 120 "$bin/fp8_block_probe" > "$out/fp8_probe.log" 2>&1
echo "fp8_block_probe exit $?"
first=$(awk -F'|' '$1 ~ /^[0-9]/ && $2 + 0 == 0 {split($1, f, " "); print f[1]; exit}' "$out/fp8_probe.log")
if [[ -n $first ]]; then
  CUBLASLT_LOG_LEVEL=3 timeout 30 "$bin/fp8_block_probe" --only "$first" > "$out/fp8_probe_lt_log.txt" 2>&1
  echo "cuBLASLt log (level 3) for probe configuration #$first, the first without an algorithm:"
  grep -v "^\s*$" "$out/fp8_probe_lt_log.txt" | head -25
fi
echo
cat "$out/fp8_probe.log"
