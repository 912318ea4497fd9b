"""Writes the small torch.save fixtures that converters/tests/pth.rs reads.

Each state dict is saved twice: zip format (`<name>.pth`) and legacy format
(`<name>_legacy.pth`, `_use_new_zipfile_serialization=False`). `expected.json` records, for
every tensor of every file, dtype, shape and the hex of its contiguous little-endian bytes,
so the Rust test checks values without Python.

usage: ZOO_PYTHON-style interpreter with torch: python make_pth_fixtures.py OUT_DIR
"""
import collections
import json
import os
import sys

import torch


def contiguous_hex(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()


DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def describe(sd):
    return [{"name": k, "dtype": DTYPES[v.dtype], "shape": list(v.shape), "hex": contiguous_hex(v)}
            for k, v in sd.items()]


def views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict()
    sd["base"] = base                      # storage shared with the next three
    sd["transposed"] = base.t()            # non-contiguous view, stride (1, 6)
    sd["row_offset"] = base[2]             # storage offset 12
    sd["strided"] = base[1:, ::2]          # offset 6, stride (6, 2)
    sd["half"] = torch.tensor([[0.5, -1.25, 65504.0], [1e-3, 0.0, -0.0]], dtype=torch.float16)
    sd["long"] = torch.tensor([-(2 ** 40), 0, 7, 2 ** 62], dtype=torch.int64)
    sd["bf16_t"] = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3).t()
    sd["mask"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    assert not sd["transposed"].is_contiguous() and sd["row_offset"].storage_offset() == 12
    assert sd["base"].untyped_storage().data_ptr() == sd["strided"].untyped_storage().data_ptr()
    return sd


def small(seed):
    g = torch.Generator().manual_seed(seed)
    return collections.OrderedDict(
        [("fc.weight", torch.randn(3, 2, generator=g)), ("fc.bias", torch.randn(3, generator=g))])


def module():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    return m.state_dict()  # OrderedDict with _metadata; num_batches_tracked is int64


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {
        "views": views(),
        "module": module(),
        "nested_state_dict": {"state_dict": small(1), "epoch": 3, "arch": "tiny"},
        "nested_model_ema": {"model": small(2), "model_ema": small(3),
                             "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}},
        "ambiguous": {"model_ema": small(4), "state_dict_ema": small(5)},
    }
    expected = {}
    for name, obj in files.items():
        torch.save(obj, os.path.join(out, f"{name}.pth"))
        torch.save(obj, os.path.join(out, f"{name}_legacy.pth"), _use_new_zipfile_serialization=False)
        dicts = {k: v for k, v in obj.items() if isinstance(v, dict) and v and
                 all(isinstance(t, torch.Tensor) for t in v.values())}
        if all(isinstance(t, torch.Tensor) for t in obj.values()):
            dicts = {"": obj}
        expected[name] = {path: describe(sd) for path, sd in dicts.items()}
        if name == "module":
            expected[name + "_metadata"] = [[k, v["version"]] for k, v in obj._metadata.items()]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
