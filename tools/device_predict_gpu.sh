#!/usr/bin/env bash
# One device call for issue 8, run from the repository root on the GPU machine (carry ".device/cuda",
# made here by tools/make_device_bundle.sh with virnucpro and make_coding_reads in it):
#   1. `predict` on the tiny fixtures on the GPU (fp32 and fp16) against the CPU run of the same binary;
#   2. with PRESET set (e.g. 3B), full-size random models: N synthetic 500 bp coding reads through the
#      whole `predict`, next to bench_esm_gpu on the same proteins, and the ratio.
#   usage: tools/device_predict_gpu.sh [READS=100000] [PRESET=none|650M|3B] [DEVICES="cuda:0 cuda:0,1"]
#   environment: PRECISION (default fp16), ESM_ONLY_COUNT (proteins for the ESM-2-only rate; default READS),
#   GPU_TESTS=1 (run tools/device_gpu_tests.sh first)
set -uo pipefail
reads=${1:-100000}
preset=${2:-none}
devices=${3:-cuda:0}
source tools/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
[[ ${GPU_TESTS:-0} == 1 ]] && bash tools/device_gpu_tests.sh

tiny=(--esm-model tests/data/esm2_tiny --dnabert-model tests/data/dnabert2_tiny
      --classifier tests/data/mlp/mlp_tiny_160x32.pth -q --force)
"$bin/virnucpro" predict tests/data/preprocess/coding.fa -o "$work/cpu" --device cpu --precision fp32 "${tiny[@]}"
for d in $devices; do
  for p in fp32 fp16 bf16; do
    o="$work/gpu_${p}_${d//[:,]/_}"
    "$bin/virnucpro" predict tests/data/preprocess/coding.fa -o "$o" --device "$d" --precision $p "${tiny[@]}"
    python3 - "$work/cpu/prediction_results.txt" "$o/prediction_results.txt" "$d $p" <<'PY'
import sys
a=[l.split('\t') for l in open(sys.argv[1])][1:]; b=[l.split('\t') for l in open(sys.argv[2])][1:]
assert [r[0] for r in a]==[r[0] for r in b], "rows differ"
d=max(abs(float(x[3])-float(y[3])) for x,y in zip(a,b)); agree=sum(x[1]==y[1] for x,y in zip(a,b))
print(f"tiny fixtures, {sys.argv[3]} vs CPU fp32: {len(a)} frames, max |score2 diff| {d:.2e}, labels equal {agree}/{len(a)}")
PY
  done
done
set -- $devices
if [[ $# -gt 1 ]]; then
  cmp "$work/gpu_fp32_${1//[:,]/_}/prediction_results.txt" "$work/gpu_fp32_${2//[:,]/_}/prediction_results.txt" \
    && echo "tiny fixtures, fp32: $1 and $2 give byte-identical prediction_results.txt"
fi
[[ $preset == none ]] && exit 0

# Models: reused when an earlier step of the same device call made them (tools/device_esm_gpu.sh).
esm=$work/esm${preset,,}
start=$SECONDS
if [[ ! -f $esm/config.json ]]; then
  PYTHONUNBUFFERED=1 timeout 300 python3 tools/esm_reference.py "$esm" --preset "$preset" --device cuda \
    --dtype float32 > "$out/gen.log" 2>&1 || { tail -5 "$out/gen.log"; exit 1; }
fi
if [[ ! -f $work/dnabert/config.json ]]; then
  PYTHONUNBUFFERED=1 timeout 200 python3 tools/dnabert_reference.py "$work/dnabert" --preset full --device cuda \
    --dtype float32 --tokenizer tests/data/tokenizers/dnabert2-117m.tokenizer.json >> "$out/gen.log" 2>&1
fi
echo "models ready in $((SECONDS - start)) s"
"$bin/make_coding_reads" --count "$reads" --fasta "$work/reads.fa" --proteins "$work/prot_reads"
# ESM-2 alone on the first ESM_ONLY_COUNT of the same proteins (all 166 aa, so the rate does not depend
# on how many are taken; default: all of them).
esm_only=${ESM_ONLY_COUNT:-$reads}
timeout 300 "$bin/bench_esm_gpu" --model "$esm" --proteins "$work/prot_reads" --lengths 166 --count "$esm_only" \
  --precision "${PRECISION:-fp16}" --skip-accuracy 2>&1 | grep -A2 "throughput" | tee "$out/esm_only.log"
for d in $devices; do
  start=$SECONDS
  timeout 500 "$bin/virnucpro" predict "$work/reads.fa" -o "$work/pred_${d//[:,]/_}" --device "$d" \
    --precision "${PRECISION:-fp16}" --esm-model "$esm" --dnabert-model "$work/dnabert" --classifier tests/data/mlp/mlp_full_3328x512.pth \
    --force 2>&1 | tail -3 | tee -a "$out/predict.log"
  python3 - "$work/pred_${d//[:,]/_}/run.json" "$d" <<'PY'
import json,sys
j=json.load(open(sys.argv[1])); s=j["stage_seconds"]["predict"]; c=j["counts"]
print(f"predict on {sys.argv[2]}: {c['frames']} frames in {s:.1f} s = {c['frames']/s:.0f} frames/s, "
      f"{c['esm_tokens']/s:.0f} ESM tokens/s, {(c['esm_tokens']+c['dnabert_tokens'])/s:.0f} tokens/s (both encoders)")
PY
done
set -- $devices
if [[ $# -gt 1 ]]; then
  python3 - "$work/pred_${1//[:,]/_}/prediction_results.txt" "$work/pred_${2//[:,]/_}/prediction_results.txt" "$1" "$2" <<'PY'
import sys
a=[l.split('\t') for l in open(sys.argv[1])][1:]; b=[l.split('\t') for l in open(sys.argv[2])][1:]
same=open(sys.argv[1]).read()==open(sys.argv[2]).read()
d=max(abs(float(x[3])-float(y[3])) for x,y in zip(a,b)); agree=sum(x[1]==y[1] for x,y in zip(a,b))
print(f"{sys.argv[3]} vs {sys.argv[4]}: byte-identical {same}, max |score2 diff| {d:.2e}, labels equal {agree}/{len(a)}")
PY
fi
