"""Checks that zoo's .pth loads with torch.load(weights_only=True) and equals the Python path's.

Usage: python compare_pth.py ZOO.pth OTHER.pth
Prints one JSON line: {"tensors": n, "equal": true}; exits 1 (naming the tensors) otherwise.
"""
import json
import sys

import torch


def main() -> None:
    zoo_path, other_path = sys.argv[1:3]
    zoo = torch.load(zoo_path, weights_only=True, mmap=True)
    other = torch.load(other_path, weights_only=True, mmap=True)
    problems = []
    if list(zoo) != list(other):
        problems.append(f"keys differ: {sorted(set(zoo) ^ set(other))[:10]}")
    for key, t in zoo.items():
        o = other.get(key)
        if o is None:
            continue
        if t.dtype != o.dtype or t.shape != o.shape:
            problems.append(f"{key}: {t.dtype} {tuple(t.shape)} vs {o.dtype} {tuple(o.shape)}")
        elif not t.is_contiguous():
            problems.append(f"{key}: zoo's tensor is not contiguous")
        elif not torch.equal(t, o):
            problems.append(f"{key}: values differ")
    print(json.dumps({"tensors": len(zoo), "equal": not problems, "problems": problems[:20]}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
