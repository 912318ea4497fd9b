"""Loads a zoo-written .pth with torch.load(weights_only=True) and compares it to a manifest.

The manifest (JSON, written by converters/tests/pth.rs) lists, in order, each tensor's name,
dtype (safetensors spelling), shape and the hex of its contiguous little-endian bytes.
Exit status 0 and `ok N tensors` on stdout when every tensor matches; 1 with the first
difference otherwise.

usage: python check_torch_load.py FILE.pth MANIFEST.json
"""
import json
import sys

import torch

DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def main():
    pth, manifest = sys.argv[1], sys.argv[2]
    sd = torch.load(pth, weights_only=True, map_location="cpu")
    want = json.load(open(manifest))
    if not isinstance(sd, dict):
        sys.exit(f"torch.load returned {type(sd).__name__}, not a dict")
    got_names = list(sd.keys())
    want_names = [w["name"] for w in want]
    if got_names != want_names:
        sys.exit(f"key order differs: {got_names[:5]}... vs {want_names[:5]}...")
    for w in want:
        t = sd[w["name"]]
        if not isinstance(t, torch.Tensor):
            sys.exit(f"{w['name']}: {type(t).__name__}, not a tensor")
        if t.dtype != DTYPES[w["dtype"]]:
            sys.exit(f"{w['name']}: dtype {t.dtype}, expected {w['dtype']}")
        if list(t.shape) != w["shape"]:
            sys.exit(f"{w['name']}: shape {list(t.shape)}, expected {w['shape']}")
        data = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        if data != bytes.fromhex(w["hex"]):
            sys.exit(f"{w['name']}: bytes differ")
    print(f"ok {len(want)} tensors, torch {torch.__version__}")


if __name__ == "__main__":
    main()
