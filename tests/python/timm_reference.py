"""A seeded random timm model and its logits, for checking zoo's tch interpreter against timm.

Usage: timm_reference.py NAME OUTDIR
Writes OUTDIR/weights.safetensors (the state dict without `num_batches_tracked`; BatchNorm
running statistics and every weight randomised, so no layer is an identity) and
OUTDIR/io.safetensors (`input` [2, 3, 193, 225] and timm's eval-mode `logits`).
"""
import os
import sys

import timm
import torch
from safetensors.torch import save_file

name, out = sys.argv[1:3]
torch.manual_seed(0)
model = timm.create_model(name, pretrained=False).eval()
with torch.no_grad():
    for key, t in model.state_dict().items():
        if key.endswith("running_var"):
            t.copy_(torch.rand_like(t) + 0.5)
        elif t.is_floating_point():
            t.copy_(torch.randn_like(t) * 0.1)
    x = torch.randn(2, 3, 193, 225)
    logits = model(x)
state = {k: v.contiguous() for k, v in model.state_dict().items()
         if not k.endswith("num_batches_tracked")}
os.makedirs(out, exist_ok=True)
save_file(state, os.path.join(out, "weights.safetensors"))
save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(out, "io.safetensors"))
print(f"{name}: {len(state)} tensors, logits {tuple(logits.shape)}")
