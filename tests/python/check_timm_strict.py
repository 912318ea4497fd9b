"""Loads a zoo-converted tiny EfficientNet .pth the way users do, and checks its logits.

Usage: check_timm_strict.py CONVERTED.pth INPUT_NCHW.npy REFERENCE_LOGITS.npy
Exit 0 and prints "strict=True ok" when torch.load(weights_only=True) works, timm's
EfficientNet (tiny multipliers, bn_eps=1e-3, pad_type='same') loads it with strict=True, and
its logits match the TensorFlow reference within 1e-4.
"""
import sys

import numpy as np
import torch
from timm.models.efficientnet import _gen_efficientnet

path, input_path, logits_path = sys.argv[1:4]
state_dict = torch.load(path, weights_only=True, map_location="cpu")
model = _gen_efficientnet(
    "tf_efficientnet_b0", pretrained=False, channel_multiplier=0.05, depth_multiplier=0.5,
    num_classes=10, bn_eps=1e-3, pad_type="same",
)
model.load_state_dict(state_dict, strict=True)
model.eval()
with torch.no_grad():
    logits = model(torch.from_numpy(np.load(input_path))).numpy()
reference = np.load(logits_path)
diff = float(np.abs(logits - reference).max())
print(f"max |timm - tf| = {diff:.3e}")
if diff > 1e-4:
    sys.exit(f"logits differ from the TF reference by {diff}")
print("strict=True ok")
