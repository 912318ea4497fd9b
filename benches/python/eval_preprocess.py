"""Preprocessing throughput of Pillow + timm's eval transform, for `cargo bench --bench eval`.

Usage: eval_preprocess.py DIR N WORKERS [IMG_SIZE CROP_PCT]

Writes N photo-like 500x375 4:2:0 JPEGs (ImageNet's typical size) into DIR unless they exist,
then decodes, resizes, crops and normalises all of them with `Image.open(f).convert("RGB")` +
`create_transform(..., is_training=False)` in WORKERS processes (like DataLoader workers), and
prints `images/s <value>`.
"""
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

d, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
img_size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
crop_pct = float(sys.argv[5]) if len(sys.argv) > 5 else 0.875
os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(0)
files = [os.path.join(d, f"{i:05}.jpg") for i in range(n)]
for f in files:
    if not os.path.exists(f):
        w, h = (500, 375) if rng.random() < 0.75 else (375, 500)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(x / rng.uniform(5, 40) + c) * np.cos(y / rng.uniform(5, 40)) for c in range(3)], 2)
        arr = np.clip(128 + 90 * base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(f, quality=90)

_t = None


def work(chunk):
    global _t
    if _t is None:
        import torch
        torch.set_num_threads(1)
        from timm.data import create_transform, resolve_data_config
        cfg = resolve_data_config({"input_size": (3, img_size, img_size), "crop_pct": crop_pct, "interpolation": "bicubic"})
        _t = create_transform(**cfg, is_training=False)
    s = 0.0
    for f in chunk:
        s += float(_t(Image.open(f).convert("RGB"))[0, 0, 0])
    return s


if __name__ == "__main__":
    chunks = [files[i::workers * 4] for i in range(workers * 4)]
    with Pool(workers) as pool:
        pool.map(work, [files[:workers]] * workers)  # import torch/timm in every worker first
        t = time.perf_counter()
        pool.map(work, chunks)
        dt = time.perf_counter() - t
    print(f"images/s {n / dt:.1f}")
