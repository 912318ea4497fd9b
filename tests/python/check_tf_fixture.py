"""Checks one real-TensorFlow fixture of tests/fixtures/<family>-tiny against timm.

Usage: check_tf_fixture.py FIXTURE_DIR
Builds the timm model the fixture's MANIFEST.json names (timm.fn, variant, kwargs,
model_kwargs_override, create_fn), loads the
committed converted state dict (timm.files.safetensors) with strict=True, runs it on
input_preprocessed_nchw.npy, and checks that its logits equal logits_timm.npy (within 1e-6:
same library, same input) and TensorFlow's logits.npy within 1e-4. Also checks that the state
dict holds exactly the timm keys of the manifest's mapping, with their shapes. Exit 0 and
prints "strict=True ok" when all hold.

MobileNetV3 (tensorflow/models slim): TF's logits have a background class 0 that timm's
model does not (manifest `classes.offset`), so timm is compared with logits[:, offset:]; and
slim gates squeeze-excite with relu6(x + 3) * 0.16667 where timm divides by 6
(max_abs_diff.se_gate): there the 1e-4 check is made on timm with every SE gate set to TF's
constant, and plain timm is held to max_abs_diff.plain_timm_limit.
"""
import importlib
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

TOLERANCE = 1e-4

fixture = sys.argv[1]
manifest = json.load(open(os.path.join(fixture, "MANIFEST.json")))
t = manifest["timm"]
module_name, fn_name = t["fn"].rsplit(".", 1)
module = importlib.import_module(module_name)
build = getattr(module, fn_name)
override = t.get("model_kwargs_override")
if override:
    # the manifest's model_kwargs_override replaces entries of the model kwargs the generator
    # function hands to _create_effnet (MixNet's head width) or to t["create_fn"]
    # (_create_mnv3: MobileNetV3's scaled stem and head)
    create_name = t.get("create_fn", "_create_effnet")
    create = getattr(module, create_name)
    setattr(module, create_name, lambda variant, pretrained=False, **kw: create(
        variant, pretrained, **{**kw, **override}))
model = build(t["variant"], pretrained=False, **t["kwargs"]).eval()
state_dict = load_file(os.path.join(fixture, t["files"]["safetensors"]))
mapped = {m["timm"]: m["timm_shape"] for m in manifest["mapping"]}
got = {k: list(v.shape) for k, v in state_dict.items()}
if got != mapped:
    sys.exit(f"state dict keys/shapes differ from the manifest's mapping: "
             f"{sorted(set(got.items()) ^ set(mapped.items()))[:6]}")
model.load_state_dict(state_dict, strict=True)
torch.set_num_threads(1)
x = torch.from_numpy(np.load(os.path.join(fixture, "input_preprocessed_nchw.npy")))
with torch.no_grad():
    logits = model(x).numpy()
recorded = np.load(os.path.join(fixture, "logits_timm.npy"))
offset = manifest.get("classes", {}).get("offset", 0)
tf_logits = np.load(os.path.join(fixture, "logits.npy"))[:, offset:]
same = float(np.abs(logits - recorded).max())
diff = float(np.abs(logits - tf_logits).max())
print(f"{manifest['family']}: max |timm - tf| = {diff:.3e}, vs recorded timm {same:.3e}")
if same > 1e-6:
    sys.exit(f"timm's logits differ from logits_timm.npy by {same}")
gate = manifest["max_abs_diff"].get("se_gate")
if gate:
    class TfGate(torch.nn.Module):
        def forward(self, v):
            return torch.nn.functional.relu6(v + 3.0) * 0.16667

    if gate["tf"] != "relu6(x + 3) * 0.16667":
        sys.exit(f"unknown TF gate {gate['tf']!r}")
    gates = [m for m in model.modules() if type(m).__name__ == "SqueezeExcite"]
    if len(gates) != gate["gates"]:
        sys.exit(f"{len(gates)} squeeze-excite gates, the manifest says {gate['gates']}")
    for m in gates:
        m.gate = TfGate()
    with torch.no_grad():
        gated = float(np.abs(model(x).numpy() - tf_logits).max())
    print(f"{manifest['family']}: timm with TF's SE gate: max |timm - tf| = {gated:.3e}")
    if gated > TOLERANCE:
        sys.exit(f"timm with TF's SE gate differs from the TF reference by {gated}")
    limit = manifest["max_abs_diff"]["plain_timm_limit"]
    if diff > limit:
        sys.exit(f"timm's logits differ from the TF reference by {diff} (> {limit})")
elif diff > TOLERANCE:
    sys.exit(f"timm's logits differ from the TF reference by {diff}")
print("strict=True ok")
