"""The usual Python path for a TF EfficientNet -> timm conversion, for `benches/convert.rs`.

tf.train.load_checkpoint + numpy transposes + torch.save, the way community conversion scripts
do it. The name map comes from zoo's plan (a JSON list of {source, target, permute}) so both
paths convert exactly the same tensors; this script measures only the I/O and layout work.

Usage: python convert_tf_to_pth.py PREFIX PLAN.json OUT.pth [--fsync]
With --fsync the file is fsynced after torch.save (as zoo does before it renames an output into
place), for a comparison at the same durability; the usual scripts do not.
Prints one JSON line: {"seconds": ..., "peak_rss_bytes": ..., "tensors": ...}.
"""
import json
import os
import resource
import sys
import time

import numpy as np
import tensorflow as tf
import torch


def main() -> None:
    prefix, plan_path, out = sys.argv[1:4]
    fsync = sys.argv[4:] == ["--fsync"]
    with open(plan_path) as f:
        plan = json.load(f)
    start = time.perf_counter()
    reader = tf.train.load_checkpoint(prefix)
    state_dict = {}
    for item in plan:
        value = reader.get_tensor(item["source"])
        if item["permute"] is not None:
            value = np.ascontiguousarray(np.transpose(value, item["permute"]))
        state_dict[item["target"]] = torch.from_numpy(value)
    torch.save(state_dict, out)
    if fsync:
        fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "tensors": len(state_dict)}))


if __name__ == "__main__":
    main()
