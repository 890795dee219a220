#!/usr/bin/env python3
"""Writes tests/data/mlp/mlp_tiny_160x32.legacy.pth: the tiny MLP state dict in the legacy (pre-1.6,
non-zip) torch.save layout, built with Python's own pickle module (no torch needed), from the
storages of mlp_tiny_160x32.state_dict.pth. Layout (reference/models.md 4.4): magic, protocol
version, sys_info, the object pickle with 6-tuple persistent ids, the sorted storage keys, then
per key an int64 element count and the raw little-endian bytes.

Extra entries exercise the view logic: `extra.transposed` = hidden_layer.weight seen with strides
(1, 160) as a [160, 32] tensor (non-contiguous, same storage), `extra.bias_tail` = hidden_layer.bias
from storage offset 2 ([30])."""
import collections, io, pickle, struct, sys, types, zipfile, os

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

# Stand-ins whose pickled names are torch's (pickle records module + qualname only).
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils
def storage_class(name):
    cls = type(name, (), {}); cls.__module__ = "torch"; setattr(torch, name, cls); return cls
FloatStorage, LongStorage = storage_class("FloatStorage"), storage_class("LongStorage")
def _rebuild_tensor_v2(*args): raise RuntimeError("never called")
_rebuild_tensor_v2.__module__ = "torch._utils"; utils._rebuild_tensor_v2 = _rebuild_tensor_v2

class StorageRef:
    def __init__(self, key, cls, numel): self.key, self.cls, self.numel = key, cls, numel
class TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, tuple(shape), tuple(stride), False, collections.OrderedDict())
    def __reduce__(self): return (_rebuild_tensor_v2, self.args)
class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef): return ("storage", obj.cls, obj.key, "cpu", obj.numel, None)
        return None

zf = zipfile.ZipFile(os.path.join(here, "mlp/mlp_tiny_160x32.state_dict.pth"))
prefix = zf.namelist()[0].split("/")[0]
layout = [  # name, storage key, class, shape (contiguous)
    ("hidden_layer.weight", "0", FloatStorage, (32, 160)), ("hidden_layer.bias", "1", FloatStorage, (32,)),
    ("bn1.weight", "2", FloatStorage, (32,)), ("bn1.bias", "3", FloatStorage, (32,)),
    ("bn1.running_mean", "4", FloatStorage, (32,)), ("bn1.running_var", "5", FloatStorage, (32,)),
    ("bn1.num_batches_tracked", "6", LongStorage, ()), ("output_layer.weight", "7", FloatStorage, (2, 32)),
    ("output_layer.bias", "8", FloatStorage, (2,))]
# Legacy keys are str(pointer); use distinct made-up ones so that sorting-as-strings matters.
legacy_key = {k: str(94000000000000 + 8 * (9 - int(k)) + (3 if k == "6" else 0)) for _, k, _, _ in layout}
storages, data = {}, {}
for name, key, cls, shape in layout:
    raw = zf.read(f"{prefix}/data/{key}")
    size = 8 if cls is LongStorage else 4
    storages[key] = StorageRef(legacy_key[key], cls, len(raw) // size)
    data[legacy_key[key]] = raw
def contiguous_stride(shape):
    stride, acc = [], 1
    for d in reversed(shape): stride.insert(0, acc); acc *= d
    return stride
state = collections.OrderedDict()
for name, key, cls, shape in layout:
    state[name] = TensorRef(storages[key], 0, shape, contiguous_stride(shape))
state["extra.transposed"] = TensorRef(storages["0"], 0, (160, 32), (1, 160))
state["extra.bias_tail"] = TensorRef(storages["1"], 2, (30,), (1,))

out = io.BytesIO()
pickle.dump(0x1950a86a20f9469cfc6c, out, protocol=2)
pickle.dump(1001, out, protocol=2)
pickle.dump({"protocol_version": 1001, "little_endian": True,
             "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
LegacyPickler(out, protocol=2).dump(state)
keys = sorted(data)
pickle.dump(keys, out, protocol=2)
for k in keys:
    size = 8 if k == legacy_key["6"] else 4
    out.write(struct.pack("<q", len(data[k]) // size)); out.write(data[k])
with open(os.path.join(here, "mlp/mlp_tiny_160x32.legacy.pth"), "wb") as f: f.write(out.getvalue())
