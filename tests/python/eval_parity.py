"""Writes the images and timm's expected eval tensors for zoo's pixel-parity test.

Usage: eval_parity.py OUT_DIR

Writes into OUT_DIR:
  images/<name>.<ext>   images encoded by this Python's Pillow (libjpeg-turbo): 4:2:0, 4:2:2,
                        4:4:4, progressive, grayscale, CMYK JPEGs, RGB/RGBA/palette/gray PNGs,
                        odd sizes, portrait > 2:1, images smaller than the crop
  <name>.rgb            what `Image.open(f).convert("RGB")` gives (the decode, u8 HWC)
  <name>.<cfg>.totensor.f32   timm's `create_transform(**resolve_data_config(cfg),
                        is_training=False)` output (ToTensor + Normalize), f32 CHW little-endian
  <name>.<cfg>.prefetch.f32   validate.py's prefetcher path: the same transform with
                        use_prefetcher=True (uint8 CHW), then `(x - 255*mean) / (255*std)` in f32
  <name>.<cfg>.legacy.u8      the resized + cropped u8 CHW when the two resize passes run
                        horizontal first (Pillow < 13), made with two one-axis resizes
  manifest.json         the list of images, configs, sizes, and which images' pass order
                        differs between Pillow 13 and older Pillow

Everything is from a fixed seed, so a re-run gives the same bytes.
"""
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

out = sys.argv[1]
os.makedirs(os.path.join(out, "images"), exist_ok=True)
rng = np.random.default_rng(20261201)


def photo(w, h, channels=3):
    """A photo-like image: smooth gradients, a few hard-edged shapes and sensor noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, channels))
    for c in range(channels):
        fx, fy, ph = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 6.3)
        img[..., c] = 128 + 90 * np.sin(2 * np.pi * fx * x / w + ph) * np.cos(2 * np.pi * fy * y / h)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * min(w, h)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, channels)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


images = []  # (name, file name)


def save_jpeg(name, w, h, **kw):
    fn = f"{name}.jpg"
    Image.fromarray(photo(w, h)).save(os.path.join(out, "images", fn), "JPEG", **kw)
    images.append((name, fn))


save_jpeg("s420", 500, 375, quality=90, subsampling="4:2:0")
save_jpeg("s422", 375, 500, quality=85, subsampling="4:2:2")
save_jpeg("s444", 480, 360, quality=95, subsampling="4:4:4")  # crop offset 58.5 -> 58 (ties to even)
save_jpeg("progressive", 640, 427, quality=88, progressive=True)
save_jpeg("odd", 333, 217, quality=75, subsampling="4:2:0")
save_jpeg("odd_prog422", 301, 419, quality=80, progressive=True, subsampling="4:2:2")
save_jpeg("portrait3to1", 300, 900, quality=90)  # height shrinks > 2x the width: Pillow 13 vertical first
save_jpeg("tall_upscale", 120, 380, quality=90)  # portrait > 2:1, smaller than the crop's short side
save_jpeg("tiny", 100, 80, quality=90)  # smaller than the crop: upscaled on both axes
save_jpeg("wide", 900, 260, quality=90)

fn = "gray.jpg"
Image.fromarray(photo(353, 271, 1)[..., 0], "L").save(os.path.join(out, "images", fn), quality=90)
images.append(("gray", fn))
fn = "cmyk.jpg"
Image.fromarray(photo(257, 311)).convert("CMYK").save(os.path.join(out, "images", fn), quality=90)
images.append(("cmyk", fn))
fn = "rgb.png"
Image.fromarray(photo(299, 245)).save(os.path.join(out, "images", fn))
images.append(("png_rgb", fn))
fn = "rgba.png"
rgba = np.concatenate([photo(211, 263), rng.integers(0, 256, (263, 211, 1), dtype=np.uint8)], axis=2)
Image.fromarray(rgba, "RGBA").save(os.path.join(out, "images", fn))
images.append(("png_rgba", fn))
fn = "palette.png"
Image.fromarray(photo(190, 230)).convert("P", palette=Image.Palette.ADAPTIVE).save(os.path.join(out, "images", fn))
images.append(("png_palette", fn))
fn = "gray.png"
Image.fromarray(photo(180, 170, 1)[..., 0], "L").save(os.path.join(out, "images", fn))
images.append(("png_gray", fn))

# (name, timm pretrained-cfg fields): b0's and b3's eval inputs, and the tiny fixture's.
configs = [
    ("b0", {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic"}),
    ("b3", {"input_size": (3, 300, 300), "crop_pct": 0.904, "interpolation": "bicubic"}),
    ("tiny", {"input_size": (3, 64, 64), "crop_pct": 1.0, "interpolation": "bicubic"}),
]
mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resize_size(w, h, size):
    """torchvision's shortest-edge output size (long side truncated)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


manifest = {"pillow": Image.__version__, "images": [], "configs": []}
for cname, cfg in configs:
    manifest["configs"].append({"name": cname, "img_size": cfg["input_size"][1], "crop_pct": cfg["crop_pct"]})

for name, fn in images:
    img = Image.open(os.path.join(out, "images", fn)).convert("RGB")
    arr = np.asarray(img)
    arr.tofile(os.path.join(out, f"{name}.rgb"))
    entry = {"name": name, "file": f"images/{fn}", "width": img.width, "height": img.height, "order_differs": []}
    for cname, cfg in configs:
        data_cfg = resolve_data_config({}, pretrained_cfg=cfg)
        t = create_transform(**data_cfg, is_training=False)
        x = t(img)
        assert x.dtype == torch.float32
        x.numpy().astype("<f4").tofile(os.path.join(out, f"{name}.{cname}.totensor.f32"))
        tp = create_transform(**data_cfg, is_training=False, use_prefetcher=True)
        u8 = tp(img)
        assert u8.dtype == torch.uint8, u8.dtype
        m = torch.tensor([v * 255 for v in data_cfg["mean"]], dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor([v * 255 for v in data_cfg["std"]], dtype=torch.float32).view(3, 1, 1)
        u8.to(torch.float32).sub_(m).div_(s).numpy().astype("<f4").tofile(
            os.path.join(out, f"{name}.{cname}.prefetch.f32"))
        # Horizontal pass first (Pillow < 13): two one-axis resizes run exactly one pass each.
        size = math.floor(cfg["input_size"][1] / cfg["crop_pct"])
        w, h = resize_size(img.width, img.height, size)
        legacy = img if (w, h) == img.size else img.resize((w, img.height), Image.BICUBIC).resize((w, h), Image.BICUBIC)
        new13 = img if (w, h) == img.size else img.resize((w, h), Image.BICUBIC)
        crop = cfg["input_size"][1]
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        box = (left, top, left + crop, top + crop)
        legacy_u8 = np.asarray(legacy.crop(box)).transpose(2, 0, 1).copy()
        legacy_u8.tofile(os.path.join(out, f"{name}.{cname}.legacy.u8"))
        if not np.array_equal(legacy_u8, u8.numpy()):
            entry["order_differs"].append(cname)
        assert np.array_equal(np.asarray(new13.crop(box)).transpose(2, 0, 1), u8.numpy()), (name, cname)
    manifest["images"].append(entry)

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print(f"wrote {len(images)} images x {len(configs)} configs to {out}")
