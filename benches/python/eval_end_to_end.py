"""End to end, for `cargo bench --bench eval`: timm's evaluation loop against `zoo eval`, with a
full-width tf_efficientnet_b0 on CPU, the same images, cores and worker count.

Usage: eval_end_to_end.py DIR N WORKERS ZOO_BINARY

Writes (once) DIR/val/<class>/<i>.jpg: N photo-like 500x375 / 375x500 4:2:0 JPEGs in 10 classes,
and DIR/b0.pth: a seeded random tf_efficientnet_b0 (1000 classes, random BatchNorm statistics).
Then runs, each twice (the first run warms the page cache; the second is timed):
- timm: ImageDataset + create_transform(is_training=False) + DataLoader(num_workers=WORKERS,
  batch_size=32) + model(x).topk(5), as timm's validate.py without the CUDA prefetcher;
- zoo: `ZOO_BINARY eval b0_ns --weights DIR/b0.pth --dataset DIR/val --workers WORKERS
  --batch-size 32 --json`, in a child process.
Prints one line per side: `<side> images/s <v> top1 <count> top5 <count> maxrss_mib <v> user_s <v>
sys_s <v>` (CPU seconds of the timed run, all processes), then `same_top5 <k> of <n>`: the images
whose top-5 (classes, in order) zoo's `--predictions` and timm's loop agree on (the counts alone
prove little with random weights: the 10 folder labels are rarely in a random 1000-way top-5).
The peak RSS of timm is the largest of this process and its DataLoader workers (each is a
process with its own copy of the interpreter); zoo's is its process's (measured through a small
wrapper process whose only child is zoo). zoo's time includes its start-up and model load.
"""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

d, n, workers, zoo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
val = os.path.join(d, "val")
weights = os.path.join(d, "b0.pth")
rng = np.random.default_rng(1)
for i in range(n):
    f = os.path.join(val, f"class{i % 10}", f"{i:05}.jpg")
    if os.path.exists(f):
        continue
    os.makedirs(os.path.dirname(f), exist_ok=True)
    w, h = (500, 375) if rng.random() < 0.75 else (375, 500)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / rng.uniform(5, 40) + c) * np.cos(y / rng.uniform(5, 40)) for c in range(3)], 2)
    arr = np.clip(128 + 90 * base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(f, quality=90)

import timm  # noqa: E402
from timm.data import ImageDataset, create_transform, resolve_data_config  # noqa: E402

torch.manual_seed(16)
model = timm.create_model("tf_efficientnet_b0", pretrained=False)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
if not os.path.exists(weights):
    torch.save(model.state_dict(), weights)
model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
model.eval()
cfg = resolve_data_config({}, model=model)


def cpu_seconds():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + kids.ru_utime, own.ru_stime + kids.ru_stime


def timm_loop():
    dataset = ImageDataset(val, transform=create_transform(**cfg, is_training=False))
    names = [os.path.relpath(p, val) for p, _ in dataset.reader.samples]
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False, num_workers=workers)
    top1 = top5 = seen = 0
    tops = []
    cpu = cpu_seconds()
    start = time.perf_counter()
    with torch.no_grad():
        for x, target in loader:
            top = model(x).topk(5, dim=1).indices
            top1 += int((top[:, 0] == target).sum())
            top5 += int((top == target[:, None]).any(dim=1).sum())
            seen += len(target)
            tops += top.tolist()
    elapsed = time.perf_counter() - start
    del loader  # its worker processes exit, and their CPU time is counted
    user, sys_ = (b - a for a, b in zip(cpu, cpu_seconds()))
    return seen / elapsed, top1, top5, user, sys_, dict(zip(names, tops))


# Runs a command as this wrapper's only child and reports the child's peak RSS (KiB) on stderr.
WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(r.ru_maxrss, r.ru_utime, r.ru_stime, file=sys.stderr)")


def zoo_run():
    preds = os.path.join(d, "zoo-predictions.jsonl")
    cmd = [zoo, "eval", "b0_ns", "--weights", weights, "--dataset", val, "--workers", str(workers),
           "--batch-size", "32", "--json", "--predictions", preds]
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", WRAP, *cmd], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    r = json.loads(p.stdout)[0]["outcome"]
    rss, user, sys_ = p.stderr.strip().splitlines()[-1].split()
    with open(preds) as f:
        tops = {p["image"]: p["top5"] for p in map(json.loads, f)}
    return r["n"] / elapsed, r["top1"], r["top5"], int(rss), float(user), float(sys_), tops


def mib(kib):
    return kib / 1024


timm_loop()
rate, top1, top5, user, sys_, timm_tops = timm_loop()
timm_rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"timm images/s {rate:.2f} top1 {top1} top5 {top5} maxrss_mib {mib(timm_rss):.0f} "
      f"user_s {user:.1f} sys_s {sys_:.1f}", flush=True)
zoo_run()
rate, top1, top5, zoo_rss, user, sys_, zoo_tops = zoo_run()
print(f"zoo images/s {rate:.2f} top1 {top1} top5 {top5} maxrss_mib {mib(zoo_rss):.0f} "
      f"user_s {user:.1f} sys_s {sys_:.1f}", flush=True)
same = sum(zoo_tops.get(k) == v for k, v in timm_tops.items())
print(f"same_top5 {same} of {len(timm_tops)}", flush=True)
