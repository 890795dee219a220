#!/usr/bin/env bash
# Issue 8's "identical across token budgets (fp32)" on the GPU machine (carry ".device/cuda"): `predict`
# in fp32 on one GPU with several --token-budget values, on the tiny fixtures and (with PRESET=3B) on
# 2,000 mixed-length frames with random full-size models; prints whether the result files are
# byte-identical and, if not, the largest score difference.
#   usage: tools/device_budget_identity.sh [PRESET=none|3B] [BUDGETS="256 4096 65536"]
set -uo pipefail
preset=${1:-none}
budgets=${2:-256 4096 65536}
source tools/device_env.sh

compare() {  # compare RUN_DIR... : every prediction_results.txt against the first
  python3 - "$@" <<'PY'
import sys
first = open(sys.argv[1] + "/prediction_results.txt").read()
a = [l.split("\t") for l in first.splitlines()][1:]
for d in sys.argv[2:]:
    text = open(d + "/prediction_results.txt").read()
    b = [l.split("\t") for l in text.splitlines()][1:]
    diff = max((abs(float(x[3]) - float(y[3])) for x, y in zip(a, b)), default=0.0)
    print(f"  {d.rsplit('/', 1)[-1]} vs {sys.argv[1].rsplit('/', 1)[-1]}: byte-identical {text == first}, "
          f"{len(b)} frames, max |score2 diff| {diff:.2e}")
PY
}

tiny=(--esm-model tests/data/esm2_tiny --dnabert-model tests/data/dnabert2_tiny
      --classifier tests/data/mlp/mlp_tiny_160x32.pth -q --force --device cuda:0 --precision fp32)
dirs=()
for b in $budgets; do
  "$bin/virnucpro" predict tests/data/preprocess/coding.fa -o "$work/tiny_budget_$b" --token-budget "$b" "${tiny[@]}"
  dirs+=("$work/tiny_budget_$b")
done
echo "tiny fixtures, fp32, token budgets $budgets:"
compare "${dirs[@]}"
[[ $preset == none ]] && exit 0

esm=$work/esm${preset,,}
[[ -f $esm/config.json ]] || PYTHONUNBUFFERED=1 timeout 300 python3 tools/esm_reference.py "$esm" --preset "$preset" \
  --device cuda --dtype float32 > /dev/null 2>&1 || exit 1
[[ -f $work/dnabert/config.json ]] || PYTHONUNBUFFERED=1 timeout 200 python3 tools/dnabert_reference.py \
  "$work/dnabert" --preset full --device cuda --dtype float32 \
  --tokenizer tests/data/tokenizers/dnabert2-117m.tokenizer.json > /dev/null 2>&1 || exit 1
"$bin/make_coding_reads" --count 2000 --min-length 100 --fasta "$work/mixed.fa" --proteins "$work/mixed"
dirs=()
for b in $budgets; do
  timeout 300 "$bin/virnucpro" predict "$work/mixed.fa" -o "$work/full_budget_$b" --token-budget "$b" \
    --device cuda:0 --precision fp32 --esm-model "$esm" --dnabert-model "$work/dnabert" \
    --classifier tests/data/mlp/mlp_full_3328x512.pth -q --force
  dirs+=("$work/full_budget_$b")
done
echo "ESM-2 $preset + DNABERT-S, 2,000 mixed-length frames, fp32, token budgets $budgets:"
compare "${dirs[@]}"
