#!/usr/bin/env bash
# One device step for issue 9, run from the repository root on the GPU machine after
# tools/device_esm_gpu.sh (which leaves a random full-size ESM-2 3B in /tmp/vnp/esm3b and DNABERT-S in
# /tmp/vnp/dnabert; carry ".device/cuda"): `virnucpro compare-attention` (packed vs v1 padded attention)
# on N frames of mixed length (reads of 100..500 bp, one stop-free frame each, so proteins of 33..166 aa
# share every batch) in fp16 and bf16, with the full-size classifier of tests/data. Per frame it reports
# cosine and max |Δ| of the ESM-2 embedding and the classifier's agreement (divergence.tsv/json).
#   usage: tools/device_attention_gpu.sh [FRAMES=2000]
set -uo pipefail
frames=${1:-2000}
out=${OUT:-/tmp/vnp-out}
work=/tmp/vnp
bin=$work/bundle/bin
export LD_LIBRARY_PATH=$work/bundle/lib:${LD_LIBRARY_PATH:-}
[[ -x $bin/virnucpro ]] || { mkdir -p "$work" && tar -xJf .device/cuda/bundle.tar.xz -C "$work"; } || exit 1
[[ -d $work/esm3b && -d $work/dnabert ]] || { echo "run tools/device_esm_gpu.sh first (models missing)"; exit 1; }

"$bin/make_coding_reads" --count "$frames" --min-length 100 --fasta "$work/mixed.fa" --proteins "$work/mixed"
for p in fp16 bf16; do
  start=$SECONDS
  timeout 300 "$bin/virnucpro" compare-attention "$work/mixed.fa" -o "$work/attention_$p" --device cuda:0 \
    --precision $p --esm-model "$work/esm3b" --dnabert-model "$work/dnabert" \
    --classifier tests/data/mlp/mlp_full_3328x512.pth 2>&1 | tail -25 | tee "$out/attention_$p.log"
  echo "compare-attention $p exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$out/attention_$p.log"
  cp "$work/attention_$p/divergence.json" "$out/divergence_$p.json" 2>/dev/null
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

# fp8 against fp32 on the same frames (SPEC §9: per-embedding cosine >= 0.995, labels >= 99.5% equal):
# whole `predict` in both precisions with --save-embeddings, compared row by row.
for p in fp32 fp8; do
  timeout 300 "$bin/virnucpro" predict "$work/mixed.fa" -o "$work/pred_$p" --device cuda:0 --precision $p \
    --esm-model "$work/esm3b" --dnabert-model "$work/dnabert" --classifier tests/data/mlp/mlp_full_3328x512.pth \
    --save-embeddings --force -q 2>&1 | tail -3
done
python3 - "$work/pred_fp32" "$work/pred_fp8" <<'PY'
import sys
a = [l.split("\t") for l in open(sys.argv[1] + "/prediction_results.txt")][1:]
b = [l.split("\t") for l in open(sys.argv[2] + "/prediction_results.txt")][1:]
assert [r[0] for r in a] == [r[0] for r in b], "rows differ"
agree = sum(x[1] == y[1] for x, y in zip(a, b))
d = max(abs(float(x[3]) - float(y[3])) for x, y in zip(a, b))
print(f"fp8 vs fp32 predict: {len(a)} frames, labels equal {agree}/{len(a)} = {100 * agree / len(a):.2f} %, "
      f"max |score2 diff| {d:.3e}")
try:
    import h5py, numpy as np
except ImportError:
    print("no h5py: embedding cosines not computed"); sys.exit(0)
for name in ("esm", "dnabert"):
    x = np.asarray(h5py.File(sys.argv[1] + "/embeddings.h5")[name], dtype=np.float64)
    y = np.asarray(h5py.File(sys.argv[2] + "/embeddings.h5")[name], dtype=np.float64)
    cos = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
    print(f"fp8 vs fp32 {name} embeddings: min cosine {cos.min():.6f}, mean {cos.mean():.6f}, "
          f"rows below 0.995: {(cos < 0.995).sum()}")
PY
