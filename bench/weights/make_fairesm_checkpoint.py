#!/usr/bin/env python3
"""Writes a random ESM-2 checkpoint laid out as fair-esm publishes it (esm2_t33_650M_UR50D.pt and
friends): a torch.save zip of {"model": {name: fp16 tensor}, "cfg": {"model": Namespace}, "args": None}
with 'encoder.sentence_encoder.' names, one storage per tensor, records stored and 64-byte aligned
like torch's writer, ZIP64 end records. Plain Python (no torch, no numpy): values are random fp16 of
magnitude < 2, rotary frequencies the published fp16-rounded ones.

usage: make_fairesm_checkpoint.py OUT.pt [--layers 33 --hidden 1280 --heads 20 --ffn 5120 --seed 0]
"""
import argparse
import math
import os
import random
import struct
import zlib

# Clears the top exponent bit of each fp16's high byte: every value is finite and below 2.
FINITE_HIGH_BYTE = bytes(b & 0xBF for b in range(256))


def random_fp16(rng, count):
    data = bytearray(rng.randbytes(2 * count))
    data[1::2] = data[1::2].translate(FINITE_HIGH_BYTE)
    return bytes(data)


def fp16_bits(x):
    return struct.pack("<e", x)


def tensors(a):
    """(name, shape, bytes) in fair-esm's state-dict order."""
    rng = random.Random(a.seed)
    d, f, half = a.hidden, a.ffn, a.hidden // a.heads // 2
    p = "encoder.sentence_encoder."
    inv_freq = b"".join(fp16_bits(1.0 / (10000.0 ** (2 * i / (2 * half)))) for i in range(half))
    yield p + "embed_tokens.weight", (33, d), random_fp16(rng, 33 * d)
    for i in range(a.layers):
        q = f"{p}layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            yield q + f"self_attn.{proj}.weight", (d, d), random_fp16(rng, d * d)
            yield q + f"self_attn.{proj}.bias", (d,), random_fp16(rng, d)
        yield q + "self_attn.rot_emb.inv_freq", (half,), inv_freq
        for ln in ("self_attn_layer_norm",):
            yield q + f"{ln}.weight", (d,), random_fp16(rng, d)
            yield q + f"{ln}.bias", (d,), random_fp16(rng, d)
        yield q + "fc1.weight", (f, d), random_fp16(rng, f * d)
        yield q + "fc1.bias", (f,), random_fp16(rng, f)
        yield q + "fc2.weight", (d, f), random_fp16(rng, d * f)
        yield q + "fc2.bias", (d,), random_fp16(rng, d)
        yield q + "final_layer_norm.weight", (d,), random_fp16(rng, d)
        yield q + "final_layer_norm.bias", (d,), random_fp16(rng, d)
    yield p + "emb_layer_norm_after.weight", (d,), random_fp16(rng, d)
    yield p + "emb_layer_norm_after.bias", (d,), random_fp16(rng, d)
    yield "encoder.lm_head.dense.weight", (d, d), random_fp16(rng, d * d)
    yield "encoder.lm_head.dense.bias", (d,), random_fp16(rng, d)


# ---- a protocol-2 pickle, written the way torch's pickler does ----
def unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def integer(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def int_tuple(xs):
    return b"(" + b"".join(integer(x) for x in xs) + b"t"


def tensor_pickle(key, shape):
    numel = math.prod(shape)
    stride = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    pid = b"(" + unicode("storage") + b"ctorch\nHalfStorage\n" + unicode(key) + unicode("cpu") + integer(numel) + b"t"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"Q" + integer(0) + int_tuple(shape) +
            int_tuple(stride) + b"\x89ccollections\nOrderedDict\n)RtR")


def namespace(a):
    fields = {"encoder_layers": a.layers, "encoder_embed_dim": a.hidden, "encoder_ffn_embed_dim": a.ffn,
              "encoder_attention_heads": a.heads}
    body = b"".join(unicode(k) + integer(v) for k, v in fields.items()) + unicode("token_dropout") + b"\x88"
    return b"cargparse\nNamespace\n)\x81}(" + body + b"ub"


# ---- a torch-style zip: stored records, data 64-byte aligned, ZIP64 end records ----
class TorchZipWriter:
    def __init__(self, path, folder):
        self.out = open(path, "wb")
        self.folder = folder
        self.central = []

    def record(self, name, data):
        name = (self.folder + "/" + name).encode()
        offset = self.out.tell()
        pad = -(offset + 30 + len(name) + 4) % 64
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # torch's "FB" alignment field
        crc = zlib.crc32(data)
        self.out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data),
                                   len(name), len(extra)) + name + extra)
        self.out.write(data)
        self.central.append((name, crc, len(data), offset))

    def close(self):
        start = self.out.tell()
        for name, crc, size, offset in self.central:
            zip64 = struct.pack("<HHQQQ", 1, 24, size, size, offset)
            self.out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                                       0xFFFFFFFF, len(name), len(zip64), 0, 0, 0, 0, 0xFFFFFFFF) + name + zip64)
        end = self.out.tell()
        n = len(self.central)
        self.out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, end - start, start))
        self.out.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        self.out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        self.out.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=33)
    ap.add_argument("--hidden", type=int, default=1280)
    ap.add_argument("--heads", type=int, default=20)
    ap.add_argument("--ffn", type=int, default=5120)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    folder = os.path.splitext(os.path.basename(a.out))[0]
    items, storages = [], []
    for key, (name, shape, data) in enumerate(tensors(a)):
        items.append(unicode(name) + tensor_pickle(str(key), shape))
        storages.append(data)
    pkl = (b"\x80\x02}(" + unicode("model") + b"}(" + b"".join(items) + b"u" + unicode("cfg") + b"}" +
           unicode("model") + namespace(a) + b"s" + unicode("args") + b"Nu.")
    z = TorchZipWriter(a.out, folder)
    z.record("data.pkl", pkl)
    for key, data in enumerate(storages):
        z.record(f"data/{key}", data)
    z.record("version", b"3\n")
    z.close()
    print(f"{a.out}: {len(storages)} tensors, {os.path.getsize(a.out) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
