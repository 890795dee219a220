#!/usr/bin/env python3
"""Baseline for bench_esm2_cpu: Hugging Face transformers EsmModel, fp32 on the CPU, same shapes
(random esm2_t12_35M-shaped model, 48 proteins of 166 aa per batch, no padding), same thread count.
Run on a machine with torch + transformers (the GPU machine has them):
    python3 bench/engine/hf_cpu_baseline.py THREADS [SECONDS]
Prints tokens/s, to put next to bench_esm2_cpu's figure from the same run."""
import sys, time
import torch
from transformers import EsmConfig, EsmModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
torch.set_num_threads(threads)
torch.manual_seed(0)
for name, (layers, hidden, heads) in {"small64 shape": (2, 256, 4), "esm2_t12_35M shape": (12, 480, 20)}.items():
    cfg = EsmConfig(vocab_size=33, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    intermediate_size=4 * hidden, position_embedding_type="rotary", token_dropout=True,
                    pad_token_id=1, mask_token_id=32, max_position_embeddings=1026, emb_layer_norm_before=False)
    model = EsmModel(cfg, add_pooling_layer=False).eval()
    ids = torch.randint(4, 24, (48, 168))
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)  # warm-up
        runs, start = 0, time.perf_counter()
        while runs < 2 or time.perf_counter() - start < seconds:
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            h[:, 1:-1].mean(1)
            runs += 1
        elapsed = time.perf_counter() - start
    print(f"HF transformers {torch.__version__} CPU fp32, {name}, {threads} threads: "
          f"{runs * ids.numel() / elapsed:.0f} tokens/s")
