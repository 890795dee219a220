#!/usr/bin/env python3
"""ESM-2 on the CPU: virnucpro (fp32, bf16) next to what a user would run instead, in one run, on the
same random checkpoint and the same proteins (issue 17).

  esm_cpu_bench.py VIRNUCPRO WORK_DIR [--layers 33 --hidden 1280 --heads 20] [--threads 2] [--proteins 60]

Makes a random ESM-2 (650M shape by default) with fair-esm 2.0.0 and saves it as a fair-esm `.pt`
(fp32) and as a Hugging Face `model.safetensors` (for esm-cpp); writes N random proteins of 40-166 aa;
then measures tokens/s (every token of the forward pass, length + 2 per protein) of:
  - fair-esm 2.0.0 on PyTorch, fp32, then the model in bf16 (batches of 2,048 tokens, as VirNucPro);
  - esm-cpp (PyPI), fp32 and its INT8 mode (quantize_weights), packed forward;
  - ours: `virnucpro embed esm --device cpu --threads T --precision fp32|bf16` (the rate its log reports,
    which excludes loading; the wall time with loading is printed too);
and the per-embedding cosine of ours bf16 against ours fp32, and of ours fp32 against fair-esm fp32.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("virnucpro")
p.add_argument("work")
p.add_argument("--layers", type=int, default=33)
p.add_argument("--hidden", type=int, default=1280)
p.add_argument("--heads", type=int, default=20)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--proteins", type=int, default=60)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--skip", default="", help="comma-separated: fair-esm,esm-cpp")
a = p.parse_args()
skip = set(filter(None, a.skip.split(",")))
os.makedirs(a.work, exist_ok=True)
os.environ["ESM_NUM_THREADS"] = str(a.threads)  # esm-cpp sizes its pool from it at first load

import torch  # noqa: E402
import esm  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)
results = {}


def say(*args):
    print(*args, flush=True)


# ---- the random model ------------------------------------------------------------------------------
alphabet = esm.Alphabet.from_architecture("ESM-1b")
model = esm.model.esm2.ESM2(num_layers=a.layers, embed_dim=a.hidden, attention_heads=a.heads, alphabet=alphabet,
                            token_dropout=True).eval()
with torch.no_grad():  # nn.Linear's init is tiny for 33 layers; layer norms and biases get some spread too
    for name, t in model.named_parameters():
        if name.endswith("bias") or "layer_norm" in name:
            t.add_(torch.randn_like(t) * 0.02)
    for name, buf in model.named_buffers():  # the published checkpoints hold fp16-rounded rotary frequencies
        if name.endswith("inv_freq"):
            buf.copy_(buf.half().float())
sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
pt_path = os.path.join(a.work, "esm2_random.pt")
fair = {"encoder.sentence_encoder." + k if not k.startswith(("lm_head", "contact_head")) else
        ("encoder." + k if k.startswith("lm_head") else k): v for k, v in sd.items()}
ns = argparse.Namespace(encoder_layers=a.layers, encoder_embed_dim=a.hidden, encoder_ffn_embed_dim=4 * a.hidden,
                        encoder_attention_heads=a.heads, token_dropout=True, arch="roberta_large")
torch.save({"model": fair, "cfg": {"model": ns}, "args": None}, pt_path)
say(f"model: {a.layers} layers, hidden {a.hidden}, {sum(v.numel() for k, v in sd.items())} values -> {pt_path}")

HF = [(r"^embed_tokens\.", "esm.embeddings.word_embeddings."),
      (r"^layers\.(\d+)\.self_attn\.q_proj\.", r"esm.encoder.layer.\1.attention.self.query."),
      (r"^layers\.(\d+)\.self_attn\.k_proj\.", r"esm.encoder.layer.\1.attention.self.key."),
      (r"^layers\.(\d+)\.self_attn\.v_proj\.", r"esm.encoder.layer.\1.attention.self.value."),
      (r"^layers\.(\d+)\.self_attn\.rot_emb\.", r"esm.encoder.layer.\1.attention.self.rotary_embeddings."),
      (r"^layers\.(\d+)\.self_attn\.out_proj\.", r"esm.encoder.layer.\1.attention.output.dense."),
      (r"^layers\.(\d+)\.self_attn_layer_norm\.", r"esm.encoder.layer.\1.attention.LayerNorm."),
      (r"^layers\.(\d+)\.fc1\.", r"esm.encoder.layer.\1.intermediate.dense."),
      (r"^layers\.(\d+)\.fc2\.", r"esm.encoder.layer.\1.output.dense."),
      (r"^layers\.(\d+)\.final_layer_norm\.", r"esm.encoder.layer.\1.LayerNorm."),
      (r"^emb_layer_norm_after\.", "esm.encoder.emb_layer_norm_after."),
      (r"^lm_head\.weight$", "lm_head.decoder.weight"),
      (r"^lm_head\.bias$", "lm_head.bias"),
      (r"^lm_head\.dense\.", "lm_head.dense."),
      (r"^lm_head\.layer_norm\.", "lm_head.layer_norm."),
      (r"^contact_head\.", "esm.contact_head.")]


def write_safetensors(tensors, path):  # the format is a JSON header and the raw little-endian data
    header, offset, blobs = {}, 0, []
    for k, v in tensors.items():
        b = v.numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- the proteins ----------------------------------------------------------------------------------
aa = "ACDEFGHIKLMNPQRSTVWY"
proteins = ["".join(rng.choice(list(aa), size=int(n))) for n in rng.integers(40, 167, size=a.proteins)]
faa = os.path.join(a.work, "proteins.faa")
with open(faa, "w") as f:
    for i, s in enumerate(proteins):
        f.write(f">p{i}\n{s}\n")
tokens = sum(len(s) + 2 for s in proteins)
say(f"proteins: {len(proteins)}, {min(map(len, proteins))}-{max(map(len, proteins))} aa, {tokens} tokens; "
    f"{a.threads} threads")


# ---- fair-esm ---------------------------------------------------------------------------------------
def fair_esm(dtype):
    # bf16: fair-esm 2.0.0 cannot run with the model cast to bf16 (its softmax returns fp32, and
    # torch.bmm(attn_probs, v) then refuses the bf16 v), so bf16 runs under torch.autocast, as PyTorch
    # recommends: the matmuls in bf16 (oneDNN, AMX where present), the rest in fp32.
    m = model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    dataset = esm.FastaBatchedDataset([f"p{i}" for i in range(len(proteins))], proteins)
    batches = dataset.get_batch_indices(2048, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(dataset, collate_fn=alphabet.get_batch_converter(), batch_sampler=batches)
    means = {}
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for labels, strs, toks in loader:
            out = m(toks, repr_layers=[a.layers])["representations"][a.layers].float()
            for i, (label, s) in enumerate(zip(labels, strs)):
                means[label] = out[i, 1:len(s) + 1].mean(0).numpy()
    seconds = time.perf_counter() - start
    return tokens / seconds, np.stack([means[f"p{i}"] for i in range(len(proteins))])


if "fair-esm" not in skip:
    for name, dtype in (("fair-esm fp32", torch.float32), ("fair-esm bf16 (autocast)", torch.bfloat16)):
        rate, means = fair_esm(dtype)
        results[name] = {"tokens_per_s": rate}
        if dtype == torch.float32:
            fair_means = means
        say(f"{name}: {rate:.1f} tokens/s (torch {torch.__version__})")


# ---- esm-cpp ----------------------------------------------------------------------------------------
def esm_cpp_runs():
    import esm_cpp
    st = os.path.join(a.work, "model.safetensors")
    hf = {}
    for k, v in sd.items():
        for pat, rep in HF:
            if re.match(pat, k):
                hf[re.sub(pat, rep, k)] = v
                break
    write_safetensors(hf, st)
    for mode in ("fp32", "int8"):
        m = esm_cpp.Model.load(st)
        if mode == "int8":
            m.quantize_weights()
        tok = esm_cpp.Tokenizer()
        ids = [np.asarray(tok.encode(s), dtype=np.int32) for s in proteins]
        packed = np.concatenate(ids)
        cu = np.concatenate([[0], np.cumsum([len(x) for x in ids])]).astype(np.int32)
        start = time.perf_counter()
        for lo in range(0, len(ids), 16):  # packed batches of at most 16 proteins (~2,000 tokens)
            hi = min(len(ids), lo + 16)
            m.forward_packed(packed[cu[lo]:cu[hi]], (cu[lo:hi + 1] - cu[lo]).astype(np.int32))
        rate = tokens / (time.perf_counter() - start)
        results[f"esm-cpp {mode}"] = {"tokens_per_s": rate}
        say(f"esm-cpp {mode}: {rate:.1f} tokens/s (isa {esm_cpp.current_isa()}, {esm_cpp.Model.num_threads} threads)")


if "esm-cpp" not in skip:
    try:
        esm_cpp_runs()
    except Exception as e:  # report exactly why, and go on with the rest
        results["esm-cpp"] = {"error": f"{type(e).__name__}: {e}"}
        say(f"esm-cpp failed: {type(e).__name__}: {e}")


# ---- ours -------------------------------------------------------------------------------------------
def ours(precision):
    out = os.path.join(a.work, f"ours_{precision}.tsv")
    start = time.perf_counter()
    r = subprocess.run([a.virnucpro, "embed", "esm", faa, "--model", pt_path, "--device", "cpu", "--threads",
                        str(a.threads), "--precision", precision, "--token-budget", "4096", "-o", out],
                       capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"virnucpro --precision {precision} failed ({r.returncode}): {r.stderr}")
    rate = float(re.search(r"at (\d+) tokens/s", r.stderr).group(1))
    say(f"ours {precision}: {rate:.1f} tokens/s (wall {wall:.1f} s with loading) | "
        + " | ".join(l for l in r.stderr.splitlines() if "computing in" in l))
    rows = [line.split("\t") for line in open(out)]
    return rate, wall, np.array([[float(x) for x in row[1:]] for row in rows])


def cosines(x, y):
    return (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)


for precision in ("fp32", "bf16"):
    rate, wall, means = ours(precision)
    results[f"ours {precision}"] = {"tokens_per_s": rate, "wall_s_with_load": wall}
    if precision == "fp32":
        ours_fp32 = means
    else:
        c = cosines(means, ours_fp32)
        results["bf16 vs fp32 cosine"] = {"min": float(c.min()), "mean": float(c.mean())}
        say(f"ours bf16 vs ours fp32: per-embedding cosine min {c.min():.6f}, mean {c.mean():.6f}")
if "fair-esm" not in skip:
    c = cosines(ours_fp32, fair_means)
    results["ours fp32 vs fair-esm fp32 cosine"] = {"min": float(c.min())}
    say(f"ours fp32 vs fair-esm fp32: per-embedding cosine min {c.min():.7f}")

say("\nratios (tokens/s over tokens/s):")
for ours_name in ("ours fp32", "ours bf16"):
    for base in ("fair-esm fp32", "fair-esm bf16 (autocast)", "esm-cpp fp32", "esm-cpp int8"):
        if base in results and "tokens_per_s" in results[base]:
            say(f"  {ours_name} / {base}: {results[ours_name]['tokens_per_s'] / results[base]['tokens_per_s']:.2f}x")
with open(os.path.join(a.work, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
