#!/usr/bin/env bash
# The GPU tests on the device machine (carry ".device/cuda", made by tools/make_device_bundle.sh), in
# separate processes per group so that a crash in one group does not hide the others' results.
# Output: $OUT/tests.log; a summary on stdout.
set -uo pipefail
source tools/device_env.sh
: > "$out/tests.log"
timeout 120 "$bin/cuda_nodevice_tests" >> "$out/tests.log" 2>&1
echo "cuda_nodevice_tests exit $?"
for filter in '-*Fp8*' 'CudaFp8.*' 'Fixtures/CudaFp8Esm2.*/0' 'Fixtures/CudaFp8Esm2.*/1' \
              'CudaFp8Blocks.*' 'BlockFixtures/CudaFp8Esm2Blocks.*'; do
  timeout 300 "$bin/engine_cuda_tests" --gtest_filter="$filter" >> "$out/tests.log" 2>&1
  rc=$?
  echo "engine_cuda_tests --gtest_filter='$filter' exit $rc"
  [[ $rc -ne 0 ]] && tail -4 "$out/tests.log"
done
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]|Failure|C\+\+ exception|Expected|Which is|actual|fp8 vs|what\(\)" "$out/tests.log" | head -60
