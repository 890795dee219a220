#!/usr/bin/env python3
"""Hugging Face transformers baseline for bench/esm_gpu (issue 7): ESM-2 embeddings of the same proteins.

Runs on the GPU machine. For each proteins_<len>.faa in --proteins (written by bench_esm_gpu
--write-proteins), embeds every protein with transformers' EsmModel in bf16 with SDPA attention, in
length-sorted token-budget batches (padded rectangles, attention mask), mean over residues (BOS, EOS
and pads excluded) brought back to the host, as a real pipeline would. Writes hf_<len>.json:
{tokens, seconds, tokens_per_s, proteins, dtype, attention}, tokens = every real token (length + 2 per
protein, pads not counted), timed after one warm-up batch. With --reference, also the min cosine of
its own means vs the reference fp32 means (reference.json of tools/esm_reference.py).

  esm_hf_baseline.py --model DIR --proteins DIR [--lengths 166,100,50] [--batch-tokens 65536]
                     [--dtype bfloat16] [--reference DIR/reference.json]
"""
import argparse, json, os, time
import torch
from transformers import EsmModel

VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
         "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
TOK = {t: i for i, t in enumerate(VOCAB)}

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True); ap.add_argument("--proteins", required=True)
ap.add_argument("--lengths", default="166,100,50"); ap.add_argument("--batch-tokens", type=int, default=65536)
ap.add_argument("--dtype", default="bfloat16"); ap.add_argument("--reference")
a = ap.parse_args()
dtype = getattr(torch, a.dtype)

def load(attn):
    try:
        return EsmModel.from_pretrained(a.model, dtype=dtype, attn_implementation=attn, add_pooling_layer=False)
    except TypeError:
        return EsmModel.from_pretrained(a.model, torch_dtype=dtype, attn_implementation=attn, add_pooling_layer=False)

try:
    model, attention = load("sdpa"), "sdpa"
except (ValueError, ImportError) as e:
    print("SDPA unavailable, eager attention:", e)
    model, attention = load("eager"), "eager"
model = model.cuda().eval()
print("model loaded:", a.model, dtype, "attention", model.config._attn_implementation, flush=True)

def ids_of(protein):
    return [TOK["<cls>"]] + [TOK.get(c, TOK["<unk>"]) for c in protein] + [TOK["<eos>"]]

def batches(proteins):
    """Length-sorted (longest first) greedy token-budget batches: rows * longest <= budget."""
    order = sorted(range(len(proteins)), key=lambda i: -len(proteins[i]))
    out, cur = [], []
    for i in order:
        longest = len(proteins[cur[0]]) + 2 if cur else len(proteins[i]) + 2
        if cur and (len(cur) + 1) * longest > a.batch_tokens:
            out.append(cur); cur = []
        cur.append(i)
    if cur: out.append(cur)
    result = []
    for idx in out:
        rows = [ids_of(proteins[i]) for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), TOK["<pad>"], dtype=torch.long)
        residues = torch.zeros((len(rows), width), dtype=dtype)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = torch.tensor(r)
            residues[j, 1:len(r) - 1] = 1
        result.append((idx, ids.cuda(), (ids != TOK["<pad>"]).long().cuda(), residues.cuda()))
    return result

@torch.inference_mode()
def embed(batch):
    idx, ids, mask, residues = batch
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    mean = (h * residues.unsqueeze(-1)).sum(1) / residues.sum(1, keepdim=True)
    return idx, mean.float().cpu()

def read_fasta(path):
    return [l.strip() for l in open(path) if l.strip() and not l.startswith(">")]

for length in [int(x) for x in a.lengths.split(",")]:
    proteins = read_fasta(os.path.join(a.proteins, f"proteins_{length}.faa"))
    bs = batches(proteins)
    embed(bs[0]); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in bs: embed(b)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(len(p) + 2 for p in proteins)
    res = {"length": length, "proteins": len(proteins), "tokens": tokens, "seconds": seconds,
           "tokens_per_s": tokens / seconds, "batches": len(bs), "batch_tokens": a.batch_tokens,
           "dtype": a.dtype, "attention": model.config._attn_implementation,
           "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    json.dump(res, open(os.path.join(a.proteins, f"hf_{length}.json"), "w"))
    print(json.dumps(res), flush=True)

if a.reference:
    ref = json.load(open(a.reference))
    worst = 1.0
    with torch.inference_mode():
        for s in ref["sequences"]:
            ids = torch.tensor([s["tokens"]]).cuda()
            h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0].double()
            got = h[1:len(s["protein"]) + 1].mean(0).cpu()
            want = torch.tensor(s["mean"], dtype=torch.float64)
            worst = min(worst, torch.nn.functional.cosine_similarity(got, want, dim=0).item())
    print(json.dumps({"hf_" + a.dtype + "_min_cosine_vs_reference_fp32": worst}), flush=True)
