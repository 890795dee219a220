#!/usr/bin/env bash
# One device step for issue 9, run from the repository root on the GPU machine after
# tools/device_esm_gpu.sh (which leaves a random full-size ESM-2 3B in /tmp/vnp/esm3b and DNABERT-S in
# /tmp/vnp/dnabert; carry ".device/cuda"): `virnucpro compare-attention` (packed vs v1 padded attention)
# on N frames of mixed length (reads of 100..500 bp, one stop-free frame each, so proteins of 33..166 aa
# share every batch) in fp16 and bf16, with the full-size classifier of tests/data. Per frame it reports
# cosine and max |Δ| of the ESM-2 embedding and the classifier's agreement (divergence.tsv/json).
#   usage: tools/device_attention_gpu.sh [FRAMES=2000]
#   COMPARE_PRECISIONS (default "fp16 bf16"; empty skips compare-attention), RUNS (predict runs compared
#   with the first, default "fp32 fp16 fp16_v1 fp8")
set -uo pipefail
frames=${1:-2000}
source tools/device_env.sh
[[ -d $work/esm3b && -d $work/dnabert ]] || { echo "run tools/device_esm_gpu.sh first (models missing)"; exit 1; }

"$bin/make_coding_reads" --count "$frames" --min-length 100 --fasta "$work/mixed.fa" --proteins "$work/mixed"
for p in ${COMPARE_PRECISIONS-fp16 bf16}; do
  start=$SECONDS
  timeout 300 "$bin/virnucpro" compare-attention "$work/mixed.fa" -o "$work/attention_$p" --device cuda:0 \
    --precision $p --esm-model "$work/esm3b" --dnabert-model "$work/dnabert" \
    --classifier tests/data/mlp/mlp_full_3328x512.pth 2>&1 | tail -25 | tee "$out/attention_$p.log"
  echo "compare-attention $p exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$out/attention_$p.log"
  python3 - "$work/attention_$p/divergence.tsv" "$p" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
col = {name: i for i, name in enumerate(head)}
cos = [float(r[col["cosine"]]) for r in rows]
dmax = [float(r[col["max_abs_diff"]]) for r in rows]
print(f"{sys.argv[2]}: {len(rows)} frames; per-frame ESM-2 cosine min {min(cos):.7f}, max |diff| max {max(dmax):.3e}; "
      f"frames with cosine <= 0.999: {sum(c <= 0.999 for c in cos)}, with max |diff| >= 1e-3: {sum(d >= 1e-3 for d in dmax)}")
PY
done

# The same frames through the whole `predict` in fp32, fp16 (packed and v1) and fp8, embeddings saved:
# each against fp32 (the floor of the precision itself, next to the packed-vs-v1 difference above, and
# SPEC §9's fp8 check: cosine >= 0.995, labels >= 99.5 % equal).
for run in ${RUNS:-fp32 fp16 fp16_v1 fp8}; do
  p=${run%_v1}; extra=(); [[ $run == *_v1 ]] && extra=(--v1-attention)
  timeout 300 "$bin/virnucpro" predict "$work/mixed.fa" -o "$work/pred_$run" --device cuda:0 --precision $p \
    "${extra[@]}" --esm-model "$work/esm3b" --dnabert-model "$work/dnabert" \
    --classifier tests/data/mlp/mlp_full_3328x512.pth --save-embeddings --force -q 2>&1 | tail -3
done
python3 - "$work" "${RUNS:-fp32 fp16 fp16_v1 fp8}" <<'PY'
import sys
import h5py, numpy as np
work = sys.argv[1]
def load(run):
    rows = [l.split("\t") for l in open(f"{work}/pred_{run}/prediction_results.txt")][1:]
    with h5py.File(f"{work}/pred_{run}/embeddings.h5") as f:
        return rows, np.asarray(f["esm"], dtype=np.float64)
ref_rows, ref = load("fp32")
print(f"fp32 ESM-2 embeddings: {ref.shape[0]} frames, max |value| {np.abs(ref).max():.3f}, mean |value| {np.abs(ref).mean():.3f}")
for run in sys.argv[2].split()[1:]:
    rows, emb = load(run)
    assert [r[0] for r in rows] == [r[0] for r in ref_rows], "rows differ"
    cos = (emb * ref).sum(1) / np.sqrt((emb * emb).sum(1) * (ref * ref).sum(1))
    diff = np.abs(emb - ref).max(1)
    agree = sum(x[1] == y[1] for x, y in zip(rows, ref_rows))
    d2 = max(abs(float(x[3]) - float(y[3])) for x, y in zip(rows, ref_rows))
    print(f"{run} vs fp32: ESM-2 cosine min {cos.min():.7f} mean {cos.mean():.7f}; per-frame max |diff| "
          f"max {diff.max():.3e} median {np.median(diff):.3e}; labels equal {agree}/{len(rows)} "
          f"({100 * agree / len(rows):.2f} %); max |score2 diff| {d2:.3e}")
PY
