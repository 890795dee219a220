#!/usr/bin/env bash
# Kernel study on the device (issue 7), run from the repository root with carry ".device/cuda":
#   1. the GPU tests (tools/device_gpu_tests.sh; SKIP_TESTS=1 skips them);
#   2. bench_gemm_algos (SKIP_GEMM_ALGOS=1 skips it): every cuBLASLt algorithm the heuristic offers for the 3B model's GEMM shapes;
#   3. a random full-size ESM-2 3B (tools/esm_reference.py) and bench_esm_gpu --profile on COUNT proteins
#      of 166 aa in PRECISIONS (with the attention kernels' comparison);
#   4. where the GPU's counters can be read (ncu works on Firecracker machines), an Nsight Compute
#      summary of the non-GEMM kernels of a short bf16 run (NCU_KERNELS, a regex, and NCU_COUNT choose
#      them; SKIP_NCU=1 skips it).
# Logs go to $OUT.   usage: tools/device_kernel_study.sh [COUNT=20000] [PRECISIONS=bf16]
set -uo pipefail
count=${1:-20000}
precisions=${2:-bf16}
source tools/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.txt"

[[ ${SKIP_TESTS:-0} == 1 ]] || bash tools/device_gpu_tests.sh
[[ ${SKIP_GEMM_ALGOS:-0} != 1 && -x $bin/bench_gemm_algos ]] && timeout 240 "$bin/bench_gemm_algos" 2>&1 | tee "$out/gemm_algos.log"

start=$SECONDS
if [[ ! -f $work/esm3b/config.json ]]; then
  PYTHONUNBUFFERED=1 timeout 300 python3 tools/esm_reference.py "$work/esm3b" --preset 3B --device cuda \
    --dtype float32 > "$out/gen.log" 2>&1
  echo "esm_reference.py exit $? after $((SECONDS - start)) s"; tail -2 "$out/gen.log"
fi
"$bin/bench_esm_gpu" --model "$work/esm3b" --proteins "$work/prot" --write-proteins --count "$count" --lengths 166
start=$SECONDS
timeout 300 "$bin/bench_esm_gpu" --model "$work/esm3b" --proteins "$work/prot" --count "$count" --lengths 166 \
  --profile --precision "$precisions" 2>&1 | tee "$out/bench.log"
echo "bench_esm_gpu exit $? after $((SECONDS - start)) s"

if [[ ${SKIP_NCU:-0} != 1 ]] && command -v ncu > /dev/null; then
  start=$SECONDS
  timeout 240 ncu --clock-control none --kernel-name regex:"${NCU_KERNELS:-flash|unary|rotary|layer_norm}" \
    --launch-skip 300 --launch-count "${NCU_COUNT:-6}" --section SpeedOfLight --section Occupancy --section LaunchStats \
    "$bin/bench_esm_gpu" --model "$work/esm3b" --proteins "$work/prot" --count 2000 --lengths 166 \
    --skip-accuracy --precision bf16 > "$out/ncu.log" 2>&1
  echo "ncu exit $? after $((SECONDS - start)) s"
  grep -E "^  [a-z_].*\(|Duration|Memory Throughput|Compute \(SM\) Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit" "$out/ncu.log" | head -120
fi
