#!/usr/bin/env bash
# One device call for issue 7, run from the repository root on the GPU machine (carry ".device/cuda",
# made here by tools/make_device_bundle.sh; nothing is built there):
#   1. the GPU tests (engine_cuda_tests, label "gpu") and cuda_nodevice_tests;
#   2. a random full-size ESM-2 3B with Hugging Face fp32 reference means (tools/esm_reference.py);
#   3. the Hugging Face transformers baseline (tools/esm_hf_baseline.py, bf16, SDPA) and then ours
#      (bench_esm_gpu) on the same proteins; ours prints both and the ratio.
#   4. a random full-size DNABERT-S (tools/dnabert_reference.py) and bench_dnabert_gpu.
# Logs go to $OUT (gpu.txt, tests.log, gen.log, hf.log, bench.log, dnabert.log).
#   usage: tools/device_esm_gpu.sh [PROTEINS_PER_LENGTH=20000] [LENGTHS=166,100,50] [BENCH_ARGS...]
#   SKIP_DNABERT_BENCH=1 makes the DNABERT-S model (for later steps) without benchmarking it.
set -uo pipefail
count=${1:-20000}
lengths=${2:-166,100,50}
shift 2 2>/dev/null || shift $#
source tools/device_env.sh

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.txt"

bash tools/device_gpu_tests.sh

start=$SECONDS
if [[ ! -f $work/esm3b/config.json ]]; then
  PYTHONUNBUFFERED=1 timeout 300 python3 tools/esm_reference.py "$work/esm3b" --preset 3B --device cuda \
    --dtype float32 > "$out/gen.log" 2>&1
  echo "esm_reference.py exit $? after $((SECONDS - start)) s"; tail -2 "$out/gen.log"
fi

"$bin/bench_esm_gpu" --model "$work/esm3b" --proteins "$work/prot" --write-proteins --count "$count" --lengths "$lengths"
start=$SECONDS
PYTHONUNBUFFERED=1 timeout 400 python3 tools/esm_hf_baseline.py --model "$work/esm3b" --proteins "$work/prot" \
  --lengths "$lengths" --reference "$work/esm3b/reference.json" > "$out/hf.log" 2>&1
echo "esm_hf_baseline.py exit $? after $((SECONDS - start)) s"; cat "$out/hf.log"
start=$SECONDS
timeout 400 "$bin/bench_esm_gpu" --model "$work/esm3b" --proteins "$work/prot" --count "$count" --lengths "$lengths" \
  --profile "$@" 2>&1 | tee "$out/bench.log"
echo "bench_esm_gpu exit $? after $((SECONDS - start)) s"

start=$SECONDS
[[ -f $work/dnabert/config.json ]] || PYTHONUNBUFFERED=1 timeout 200 python3 tools/dnabert_reference.py \
  "$work/dnabert" --preset full --device cuda --dtype float32 \
  --tokenizer tests/data/tokenizers/dnabert2-117m.tokenizer.json > "$out/dnabert.log" 2>&1
[[ ${SKIP_DNABERT_BENCH:-0} == 1 ]] ||
  timeout 200 "$bin/bench_dnabert_gpu" --model "$work/dnabert" --count "$count" 2>&1 | tee -a "$out/dnabert.log"
echo "bench_dnabert_gpu exit $? after $((SECONDS - start)) s"
