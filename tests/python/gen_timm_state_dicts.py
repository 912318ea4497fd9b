"""timm's own state dicts and FLOP counts for every architecture zoo builds by timm name.

Usage:
  gen_timm_state_dicts.py golden OUT.json
      Writes, per architecture, the number of state-dict entries (without
      `num_batches_tracked`), the trainable parameter count, and the sha256 of the lines
      `<name> <d0>x<d1>x...\\n` in `state_dict()` order. Regenerate tests/fixtures/timm/
      state-dicts.json with it when the architecture list grows.
  gen_timm_state_dicts.py dump NAME
      Prints NAME's lines (to see where zoo and timm differ).
  gen_timm_state_dicts.py macs NAME HxW [HxW ...]
      Prints `HxW <torch.utils.flop_counter.FlopCounterMode total>` per input size, on timm's
      randomly initialised NAME in eval mode, batch 1.

Models are built with `pretrained=False`; nothing is downloaded.
"""
import hashlib
import json
import sys

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

ARCHS = [
    *[f"tf_efficientnet_b{i}" for i in range(9)],
    "tf_efficientnet_l2",
    "tf_efficientnet_es", "tf_efficientnet_em", "tf_efficientnet_el",
    *[f"tf_efficientnet_lite{i}" for i in range(5)],
    "tf_efficientnet_cc_b0_4e", "tf_efficientnet_cc_b0_8e", "tf_efficientnet_cc_b1_8e",
    "tf_mixnet_s", "tf_mixnet_m", "tf_mixnet_l",
    "tf_mobilenetv3_large_075", "tf_mobilenetv3_large_100", "tf_mobilenetv3_large_minimal_100",
    "tf_mobilenetv3_small_075", "tf_mobilenetv3_small_100", "tf_mobilenetv3_small_minimal_100",
]


def lines(name):
    model = timm.create_model(name, pretrained=False)
    out = []
    for key, t in model.state_dict().items():
        if key.endswith(".num_batches_tracked"):
            continue
        out.append(f"{key} {'x'.join(str(d) for d in t.shape)}\n")
    trainable = sum(p.numel() for p in model.parameters())
    return out, trainable


def golden(path):
    result = {}
    for name in ARCHS:
        ls, trainable = lines(name)
        result[name] = {
            "entries": len(ls),
            "trainable": trainable,
            "sha256": hashlib.sha256("".join(ls).encode()).hexdigest(),
        }
        print(name, len(ls), trainable, file=sys.stderr)
    meta = {"timm": timm.__version__, "torch": torch.__version__}
    with open(path, "w") as f:
        json.dump({"generator": meta, "architectures": result}, f, indent=1, sort_keys=True)
        f.write("\n")


def macs(name, sizes):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    for size in sizes:
        h, w = (int(v) for v in size.split("x"))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, 3, h, w))
        print(size, counter.get_total_flops())


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "golden":
        golden(sys.argv[2])
    elif mode == "dump":
        sys.stdout.write("".join(lines(sys.argv[2])[0]))
    elif mode == "macs":
        macs(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"unknown mode {mode!r}")
