"""Builds a 10-class ImageFolder and runs timm's evaluation loop on it with the tiny fixture model.

Usage: eval_predictions.py OUT_DIR WEIGHTS.pth [b0]

Writes OUT_DIR/val/class<k>/<i>.{jpg,png} (4 images per class: 4:2:0, 4:4:4, progressive,
greyscale JPEGs and a PNG, of varied sizes and aspect ratios, encoded by this Python's Pillow)
and OUT_DIR/timm.json: per image (relative path, label, top-5 class indices best first) and the
top-1/top-5 counts of timm's loop (ImageDataset + create_transform(is_training=False) + DataLoader,
as validate.py without the prefetcher), with the tiny EfficientNet of the fixtures
(width 0.05, depth 0.5, 10 classes, bn_eps 1e-3, 'same' padding) at zoo's `Zoo: Input` (64,
crop_pct 1.0, bicubic).

With `b0`, the model is a full-width `tf_efficientnet_b0` (1000 classes) with seeded random
weights and BatchNorm statistics, written to WEIGHTS.pth, and the input config is timm's own
for that architecture (224, crop_pct 0.875, bicubic): the same as the registry's b0 models.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from timm.data import ImageDataset, create_transform, resolve_data_config
import timm
from timm.models.efficientnet import _gen_efficientnet

out, weights = sys.argv[1], sys.argv[2]
full_b0 = sys.argv[3:] == ["b0"]
rng = np.random.default_rng(15)
root = os.path.join(out, "val")

kinds = [("jpg", {"quality": 90, "subsampling": "4:2:0"}), ("jpg", {"quality": 95, "subsampling": "4:4:4"}),
         ("jpg", {"quality": 85, "progressive": True}), ("png", {})]
for k in range(10):
    d = os.path.join(root, f"class{k}")
    os.makedirs(d, exist_ok=True)
    for i, (ext, kw) in enumerate(kinds):
        w, h = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(x / (5 + k) + c) * np.cos(y / (7 + i) - c) for c in range(3)], axis=2)
        arr = np.clip(128 + 100 * base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
        if i == 2 and k % 3 == 0:
            img = img.convert("L")
        img.save(os.path.join(d, f"{i}.{ext}"), **kw)

if full_b0:
    torch.manual_seed(16)
    model = timm.create_model("tf_efficientnet_b0", pretrained=False)
    # Non-trivial BatchNorm statistics, so a wrong running mean/var changes the logits.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), weights)
    model.eval()
    cfg = resolve_data_config({}, model=model)
    assert (cfg["input_size"], cfg["crop_pct"], cfg["interpolation"]) == ((3, 224, 224), 0.875, "bicubic"), cfg
else:
    model = _gen_efficientnet("tf_efficientnet_b0", pretrained=False, channel_multiplier=0.05,
                              depth_multiplier=0.5, num_classes=10, bn_eps=1e-3, pad_type="same")
    model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"), strict=True)
    model.eval()
    cfg = resolve_data_config({"input_size": (3, 64, 64), "crop_pct": 1.0, "interpolation": "bicubic"}, model=model)
dataset = ImageDataset(root, transform=create_transform(**cfg, is_training=False))
loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False, num_workers=0)
names = [os.path.relpath(p, root) for p, _ in dataset.reader.samples]
images, top1, top5, i = [], 0, 0, 0
with torch.no_grad():
    for x, target in loader:
        logits = model(x)
        top = logits.topk(5, dim=1).indices
        for t, row, lg in zip(target.tolist(), top.tolist(), logits.tolist()):
            images.append({"image": names[i], "label": t, "top5": row, "logits": lg})
            top1 += int(row[0] == t)
            top5 += int(t in row)
            i += 1
with open(os.path.join(out, "timm.json"), "w") as f:
    json.dump({"images": images, "top1": top1, "top5": top5, "n": i}, f, indent=1)
print(f"timm: {i} images, top-1 {top1}, top-5 {top5}")
