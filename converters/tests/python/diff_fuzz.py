"""Differential fuzzing of zoo's readers against the readers they must agree with.

- `pth`: zoo's `.pth` reader against `torch.load(f, weights_only=True, map_location="cpu")`.
  For every input, either zoo refuses it, or torch loads it too and the tensor dict zoo chose
  holds, in torch's result, exactly the same names in the same order, with the same dtypes,
  shapes and bytes.
- `tar`: zoo's tarball extraction against Python's `tarfile`. Either zoo refuses, or `tarfile`
  reads the archive too and its regular members that a checkpoint needs (`*.index`,
  `*.data-NNNNN-of-NNNNN`, `checkpoint`) are exactly the files zoo wrote, with the same bytes.

Inputs are seeds (small `torch.save`d dicts, zip and legacy, the EfficientNet fixtures, small
tarballs written by `tarfile`) mutated deterministically from `--seed`: raw byte edits, and
mutations that know the container (zip entries rebuilt with valid CRCs, duplicated, renamed;
pickle opcodes and arguments; tar headers with recomputed checksums; gzip members).

zoo answers through `examples/zoo_digest.rs`, one long-lived process (restarted if it dies).

usage:
  diff_fuzz.py seeds OUT_DIR
      write the seed corpus: OUT_DIR/pth_diff/*.pth, OUT_DIR/tar_diff/*.tar.gz
  diff_fuzz.py run pth|tar --zoo ZOO_DIGEST --seeds DIR... [--seconds N] [--seed S]
                   [--save DIR] [--keep N]
      fuzz for N seconds; disagreements go to DIR/disagree-*, and up to N mutants zoo
      accepts (the most useful for replay) to DIR/accepted-*
  diff_fuzz.py compare pth|tar ZOO_JSONL FILE...
      replay: ZOO_JSONL holds zoo's answers for FILE... in order; exits 1 on a disagreement
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import pickletools
import random
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib

warnings.simplefilter("ignore")

# ---------------------------------------------------------------- the Python/torch side

DTYPES = {}


def _torch():
    import torch

    if not DTYPES:
        DTYPES.update({
            torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
            torch.bfloat16: "BF16", torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16",
            torch.int32: "I32", torch.int64: "I64", torch.bool: "BOOL",
        })
    return torch


def torch_view(path):
    torch = _torch()
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except BaseException as e:  # noqa: BLE001 - any failure is a refusal
        if isinstance(e, KeyboardInterrupt):
            raise
        return ("err", f"{type(e).__name__}: {str(e)[:300]}")
    return ("ok", obj)


def tensor_digest(t):
    torch = _torch()
    # a fresh 1-D copy: `contiguous()` keeps odd strides of size-1 dimensions
    flat = torch.empty(t.numel(), dtype=t.dtype)
    flat.copy_(t.detach().reshape(-1))
    raw = flat.view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def compare_pth(zoo, torch_res):
    """None if they agree (or zoo refused), else what differs."""
    torch = _torch()
    if "panic" in zoo:
        return f"zoo panicked: {zoo['panic']}"
    if not zoo["ok"]:
        return None
    if torch_res[0] == "err":
        return f"zoo accepted, torch refused: {torch_res[1]}"
    obj = torch_res[1]
    for key in zoo["dict"]:
        if not isinstance(obj, dict) or key not in obj:
            return f"zoo's dict {zoo['dict']!r} is not in torch's result"
        obj = obj[key]
    if not isinstance(obj, dict):
        return f"zoo's dict {zoo['dict']!r} is a {type(obj).__name__} in torch's result"
    items = list(obj.items())
    if len(items) != len(zoo["tensors"]):
        return f"{len(zoo['tensors'])} tensors in zoo, {len(items)} entries in torch"
    for (k, v), (name, dtype, shape, sha) in zip(items, zoo["tensors"]):
        if k != name:
            return f"name {name!r} in zoo, {k!r} in torch"
        if not isinstance(v, torch.Tensor):
            return f"{name!r} is a {type(v).__name__} in torch"
        if v.layout != torch.strided or v.is_quantized or v.is_conj() or v.is_neg():
            return f"{name!r} is not a plain strided tensor in torch"
        if DTYPES.get(v.dtype) != dtype:
            return f"{name!r}: dtype {dtype} in zoo, {v.dtype} in torch"
        if list(v.shape) != shape:
            return f"{name!r}: shape {shape} in zoo, {list(v.shape)} in torch"
        if tensor_digest(v) != sha:
            return f"{name!r}: bytes differ"
    return None


def wanted(name):
    base = name.rsplit("/", 1)[-1]
    return (base == "checkpoint" or (base.endswith(".index") and len(base) > 6)
            or re.fullmatch(r".+\.data-\d{5}-of-\d{5}", base) is not None)


def norm(name):
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def tar_view(path):
    try:
        files = []
        with tarfile.open(path, mode="r:gz") as t:
            for m in t:
                if m.isreg() and wanted(norm(m.name)):
                    data = t.extractfile(m).read()
                    files.append((norm(m.name), len(data), hashlib.sha256(data).hexdigest()))
        return ("ok", files)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        return ("err", f"{type(e).__name__}: {str(e)[:300]}")


def compare_tar(zoo, py):
    if "panic" in zoo:
        return f"zoo panicked: {zoo['panic']}"
    if not zoo["ok"]:
        return None
    if py[0] == "err":
        return f"zoo accepted, tarfile refused: {py[1]}"
    ours = sorted(tuple(f) for f in zoo["files"])
    theirs = sorted(py[1])
    if len({p for p, _, _ in theirs}) != len(theirs):
        return f"tarfile lists a member twice, zoo accepted: {theirs}"
    if ours != theirs:
        return f"members differ: zoo {ours}, tarfile {theirs}"
    return None


VIEW = {"pth": torch_view, "tar": tar_view}
COMPARE = {"pth": compare_pth, "tar": compare_tar}

# ---------------------------------------------------------------- seeds


def pth_seeds():
    """(name, bytes) of small torch.save files, zip and legacy."""
    torch = _torch()
    g = torch.Generator().manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    dicts = {
        "plain": {"w": torch.randn(3, 4, generator=g), "b": torch.zeros(4)},
        "dtypes": {
            f"t_{str(d).split('.')[-1]}": (torch.arange(6) % 2).to(d).reshape(2, 3)
            for d in DTYPES
        },
        "views": {"base": base, "t": base.t(), "row": base[1], "col": base[:, 2],
                  "strided": base[::2, ::3], "off": base.reshape(-1)[5:9]},
        "shared": {"a": base, "b": base, "c": base.reshape(6, 4)},
        "scalars": {"s": torch.tensor(2.5), "e": torch.zeros(0, 3), "one": torch.ones(1)},
        "nested": {"state_dict": {"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2)},
                   "epoch": 3, "arch": "tiny", "model_ema": {"x": torch.ones(1)}},
        "ema_only": {"model": {"w": torch.ones(2)}, "model_ema": {"w": torch.zeros(2)}},
        "grad": {"p": torch.nn.Parameter(torch.ones(2, 2)), "q": torch.ones(3)},
        "empty": {},
    }
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    dicts["module"] = module.state_dict()
    out = []
    for name, d in dicts.items():
        for legacy in (False, True):
            buf = io.BytesIO()
            torch.save(d, buf, _use_new_zipfile_serialization=not legacy)
            out.append((f"{name}{'_legacy' if legacy else ''}.pth", buf.getvalue()))
    return out


def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    """An uncompressed tar of (name, kind, data) members, kind 'f' file, 'd' dir."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as t:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def tar_seeds():
    rng = random.Random(0)
    blob = lambda n: bytes(rng.randrange(256) for _ in range(n))  # noqa: E731
    ck = [("ck", "d", b""), ("ck/checkpoint", "f", b'model_checkpoint_path: "model.ckpt"\n'),
          ("ck/model.ckpt.index", "f", blob(300)),
          ("ck/model.ckpt.data-00000-of-00001", "f", blob(700)),
          ("ck/model.ckpt.meta", "f", blob(200))]
    out = []
    for i, fmt in enumerate([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]):
        out.append((f"ck_{i}.tar.gz", gzip.compress(tar_bytes(ck, fmt), mtime=0)))
    long = "d" * 120 + "/model.ckpt"
    out.append(("long_gnu.tar.gz", gzip.compress(tar_bytes(
        [(long + ".index", "f", blob(50)), (long + ".data-00000-of-00002", "f", blob(60)),
         (long + ".data-00001-of-00002", "f", blob(10))], tarfile.GNU_FORMAT), mtime=0)))
    out.append(("long_pax.tar.gz", gzip.compress(tar_bytes(
        [("./" + long + ".index", "f", blob(50)), (long + ".data-00000-of-00001", "f", blob(60)),
         ("x/events.out.tfevents.1", "f", blob(90))], tarfile.PAX_FORMAT), mtime=0)))
    # two gzip members (the second one continues the archive)
    a = tar_bytes(ck[:3]).rstrip(b"\0")
    a += b"\0" * ((-len(a)) % 512)
    out.append(("two_members.tar.gz", gzip.compress(a, mtime=0)
                + gzip.compress(tar_bytes(ck[3:]), mtime=0)))
    out.append(("flat.tar.gz", gzip.compress(tar_bytes(
        [("model.ckpt.index", "f", blob(40)), ("model.ckpt.data-00000-of-00001", "f", b"")]),
        mtime=0)))
    return out


# ---------------------------------------------------------------- mutators

INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x2f, 0x2e, 0x0a, 0x20, 0x30]


def mutate_bytes(rng, b):
    b = bytearray(b)
    if not b:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    op = rng.randrange(8)
    i = rng.randrange(len(b))
    if op == 0:
        b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        b[i] = rng.choice(INTERESTING)
    elif op == 2:
        b[i] = rng.randrange(256)
    elif op == 3:
        del b[i:i + rng.randrange(1, 9)]
    elif op == 4:
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    elif op == 5:
        j = rng.randrange(len(b))
        n = rng.randrange(1, 33)
        b[i:i] = b[j:j + n]
    elif op == 6:
        del b[i:]
    else:
        w = rng.choice([2, 4, 8])
        v = rng.choice([0, 1, 2**(8 * w - 1) - 1, 2**(8 * w) - 1, rng.randrange(2**(8 * w))])
        b[i:i + w] = v.to_bytes(w, "little")
    return bytes(b)


GLOBALS = [b"collections\nOrderedDict\n", b"torch._utils\n_rebuild_tensor_v2\n",
           b"torch._utils\n_rebuild_parameter\n", b"torch\nFloatStorage\n",
           b"torch\nIntStorage\n", b"torch\nHalfStorage\n", b"torch\nLongStorage\n",
           b"torch\nDoubleStorage\n", b"torch\nByteStorage\n", b"torch\nBoolStorage\n",
           b"torch\nBFloat16Storage\n", b"torch.storage\nUntypedStorage\n",
           b"torch\nUntypedStorage\n", b"builtins\nset\n", b"collections\nCounter\n",
           b"torch._utils\n_rebuild_parameter_with_state\n", b"torch\nSize\n"]


def ops(p):
    """[(op_name, arg, start, end)] of a pickle, or None if pickletools cannot parse it."""
    try:
        out = []
        prev = None
        for op, arg, pos in pickletools.genops(p):
            if prev is not None:
                out.append(prev + (pos,))
            prev = (op.name, arg, pos)
            if op.name == "STOP":
                out.append(prev + (pos + 1,))
                break
        return out
    except Exception:  # noqa: BLE001
        return None


def enc_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def enc_str(s):
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def mutate_pickle(rng, p):
    o = ops(p)
    if not o:
        return mutate_bytes(rng, p)
    k = rng.randrange(len(o))
    name, arg, s, e = o[k]
    strs = [a for (n, a, _, _) in o if n in ("BINUNICODE", "SHORT_BINSTRING") and isinstance(a, str)]
    choice = rng.randrange(10)
    new = None
    if choice == 0 and name in ("BININT1", "BININT2", "BININT", "LONG1"):
        v = arg if isinstance(arg, int) else 0
        new = enc_int(rng.choice([0, 1, -1, v + 1, v - 1, v * 2, 2**31, 2**63, 2**64 + v, 7]))
    elif choice == 1 and name in ("NEWTRUE", "NEWFALSE"):
        new = b"\x89" if name == "NEWTRUE" else b"\x88"
    elif choice == 2 and name == "GLOBAL":
        new = b"c" + rng.choice(GLOBALS)
    elif choice == 3 and name in ("BINUNICODE", "SHORT_BINSTRING"):
        s0 = arg if isinstance(arg, str) else ""
        new = enc_str(rng.choice([s0 + "x", s0.upper(), s0[:-1], "", "storage", "cpu", "cuda:1",
                                  "state_dict", "model", "_metadata", "0", "1", "a.b"]
                                 + strs))
    elif choice == 4:
        new = b""  # delete the op
    elif choice == 5:
        j = rng.randrange(len(o))
        new = p[s:e] + p[o[j][2]:o[j][3]]  # duplicate / insert another op after it
    elif choice == 6 and name in ("BINPUT", "BINGET", "LONG_BINPUT", "LONG_BINGET"):
        idx = rng.randrange(0, 8)
        new = (b"q" if "PUT" in name else b"h") + bytes([idx])
    elif choice == 7:
        new = bytes([rng.choice(b"NKJM)]}(tesuaRbQq.\x85\x86\x87\x88\x89\x8a\x8f\x80")]) + p[s + 1:e]
    elif choice == 8 and name in ("TUPLE1", "TUPLE2", "TUPLE3", "TUPLE", "EMPTY_TUPLE"):
        new = rng.choice([b"\x85", b"\x86", b"\x87", b")", b"t"])
    if new is None:
        return mutate_bytes(rng, p)
    return p[:s] + new + p[e:]


def zip_members(b):
    z = zipfile.ZipFile(io.BytesIO(b))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def zip_build(members, align=True):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return out.getvalue()


def mutate_zip(rng, b):
    try:
        m = zip_members(b)
    except Exception:  # noqa: BLE001
        return mutate_bytes(rng, b)
    if not m:
        return mutate_bytes(rng, b)
    root = m[0][0].split("/")[0]
    op = rng.randrange(9)
    i = rng.randrange(len(m))
    name, data = m[i]
    if op in (0, 1, 2):  # the pickle
        j = next((k for k, (n, _) in enumerate(m) if n.endswith("/data.pkl")), i)
        m[j] = (m[j][0], mutate_pickle(rng, m[j][1]))
    elif op == 3:  # a record's bytes
        m[i] = (name, mutate_bytes(rng, data))
    elif op == 4:  # duplicate an entry (same or case-changed name, other or same bytes)
        dup = rng.choice([name, name.upper(), name.swapcase()])
        other = rng.choice([data, mutate_bytes(rng, data), m[rng.randrange(len(m))][1]])
        m.insert(rng.randrange(len(m) + 1), (dup, other))
    elif op == 5:  # rename
        m[i] = (rng.choice([name.replace(root, "other", 1), name + "x", name.upper(),
                            f"{root}/data/{rng.randrange(4)}", f"{root}/version",
                            f"{root}/.data/version", name.split("/", 1)[-1],
                            f"{root}/constants.pkl", f"{root}/data/", f"/{name}",
                            f"{root}/byteorder", f"{root}/.storage_alignment"]), data)
    elif op == 6:  # records torch parses
        rec = rng.choice(["version", ".data/version", "byteorder", ".storage_alignment",
                          ".format_version"])
        val = rng.choice([b"3\n", b"11\n", b"0", b" 3", b"+3", b"big", b"little", b"LITTLE",
                          b"64", b"x", b"", b"10\n", b"1"])
        names = [n for n, _ in m]
        full = f"{root}/{rec}"
        if full in names:
            m[names.index(full)] = (full, val)
        else:
            m.append((full, val))
    elif op == 7:  # drop or reorder
        if rng.random() < 0.5:
            del m[i]
        else:
            rng.shuffle(m)
    else:  # resize a storage record
        m[i] = (name, data + bytes(rng.randrange(1, 9)) if rng.random() < 0.5 else data[:-1])
    return zip_build(m)


def legacy_parts(b):
    """The five pickles and the storage data of a legacy file, or None."""
    parts, at = [], 0
    for _ in range(5):
        o = ops(b[at:])
        if not o:
            return None
        end = at + o[-1][3]
        parts.append(b[at:end])
        at = end
    return parts, b[at:]


def mutate_legacy(rng, b):
    lp = legacy_parts(b)
    if lp is None:
        return mutate_bytes(rng, b)
    parts, data = lp
    op = rng.randrange(6)
    if op in (0, 1, 2):
        parts[3] = mutate_pickle(rng, parts[3])
    elif op == 3:
        k = rng.choice([2, 4])
        parts[k] = mutate_pickle(rng, parts[k])
    elif op == 4 and len(data) >= 8:  # an element count
        cnt = struct.unpack("<Q", data[:8])[0]
        new = rng.choice([0, cnt + 1, max(cnt - 1, 0), 2**40, 2**63]) % 2**64
        data = struct.pack("<Q", new) + data[8:]
    else:
        data = mutate_bytes(rng, data)
    return b"".join(parts) + data


def mutate_pth(rng, b):
    if b[:4] == b"PK\x03\x04" and rng.random() < 0.8:
        return mutate_zip(rng, b)
    if b[:2] == b"\x80\x02" and rng.random() < 0.8:
        return mutate_legacy(rng, b)
    return mutate_bytes(rng, b)


def tar_blocks(t):
    return [bytearray(t[i:i + 512]) for i in range(0, len(t), 512)]


def fix_checksum(h):
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)


def header_indices(blocks):
    """Indices of blocks that look like headers (valid checksum)."""
    out, i = [], 0
    while i < len(blocks):
        h = blocks[i]
        if len(h) == 512 and any(h):
            try:
                size = int(h[124:136].split(b"\0")[0].strip() or b"0", 8)
            except ValueError:
                size = 0
            out.append(i)
            i += 1 + (size + 511) // 512
        else:
            i += 1
    return out


def mutate_tar_stream(rng, t):
    blocks = tar_blocks(t)
    heads = header_indices(blocks)
    op = rng.randrange(10)
    if heads and op < 5:
        h = blocks[rng.choice(heads)]
        field = rng.choice([(0, 100), (100, 8), (124, 12), (156, 1), (157, 100), (257, 8),
                            (345, 155)])
        off, n = field
        if field == (156, 1):
            h[156] = rng.choice(b"0123456\0gxLKS7D5")
        elif field == (124, 12):
            size = rng.choice([0, 1, 511, 512, 513, 2**33, rng.randrange(4096)])
            h[124:136] = (b"%011o\0" % size if size < 8**11 else
                          b"\x80" + size.to_bytes(11, "big"))
        elif field == (0, 100):
            name = rng.choice([b"ck/model.ckpt.index", b"./ck/checkpoint", b"ck//checkpoint",
                               b"ck/model.ckpt.index/", b"../x.index", b"/abs.index",
                               b"ck/model.ckpt.data-00000-of-00001", b"CK/checkpoint",
                               b"a\x1b[2J.index", b"ck/x.data-0-of-1"])
            h[0:100] = name.ljust(100, b"\0")
        else:
            h[off:off + n] = mutate_bytes(rng, bytes(h[off:off + n]))[:n].ljust(n, b"\0")
        if rng.random() < 0.9:
            fix_checksum(h)
    elif op == 5 and heads:  # duplicate a member (header + data)
        i = rng.choice(heads)
        j = heads[heads.index(i) + 1] if heads.index(i) + 1 < len(heads) else len(blocks)
        blocks[j:j] = [bytearray(x) for x in blocks[i:j]]
    elif op == 6:  # a zero block somewhere, or garbage at the end
        if rng.random() < 0.5:
            blocks.insert(rng.randrange(len(blocks) + 1), bytearray(512))
        else:
            blocks.append(bytearray(mutate_bytes(rng, bytes(512))))
    elif op == 7:  # a PAX or GNU long-name record before a member
        if heads:
            i = rng.choice(heads)
            if rng.random() < 0.5:
                rec = rng.choice([b"path=ck/model.ckpt.index", b"size=5", b"path=../evil.index",
                                  b"linkpath=x", b"size=999999"])
                body = b"%d %s\n" % (len(rec) + 3 + len(str(len(rec))), rec)
                ti = tarfile.TarInfo("././@PaxHeader")
                ti.type = tarfile.XHDTYPE
            else:
                body = rng.choice([b"ck/model.ckpt.data-00000-of-00001\0", b"evil/../../x.index\0",
                                   b"z" * 300 + b".index\0"])
                ti = tarfile.TarInfo("././@LongLink")
                ti.type = tarfile.GNUTYPE_LONGNAME
            ti.size = len(body)
            hb = bytearray(ti.tobuf(format=tarfile.GNU_FORMAT)[:512])
            data = body + b"\0" * ((-len(body)) % 512)
            blocks[i:i] = [hb] + tar_blocks(data)
    else:
        return mutate_bytes(rng, t)
    return b"".join(bytes(b) for b in blocks)


def mutate_tar(rng, b):
    try:
        t = gzip.decompress(b)
    except Exception:  # noqa: BLE001
        return mutate_bytes(rng, b)
    op = rng.randrange(10)
    if op < 7:
        t = mutate_tar_stream(rng, t)
    if op == 7:  # raw gzip damage
        return mutate_bytes(rng, b)
    if op == 8 or rng.random() < 0.2:  # split into gzip members
        cut = rng.randrange(len(t) + 1)
        out = gzip.compress(t[:cut], mtime=0) + gzip.compress(t[cut:], mtime=0)
        if rng.random() < 0.2:
            out += rng.choice([b"\0" * 8, b"garbage", gzip.compress(b"\0" * 1024, mtime=0)])
        return out
    return gzip.compress(t, mtime=0)


MUTATE = {"pth": mutate_pth, "tar": mutate_tar}

# ---------------------------------------------------------------- driver


class Zoo:
    """The long-lived zoo_digest process."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = None
        self.deaths = 0

    def ask(self, kind, path):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            self.proc.stdin.write(f"{kind} {path}\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if line:
            return json.loads(line)
        # It died on this input (an abort, a stack overflow, the OOM killer): a finding.
        self.deaths += 1
        code = self.proc.wait()
        self.proc = None
        return {"panic": f"zoo_digest died with exit status {code}"}


def load_seeds(dirs):
    seeds = []
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                p = os.path.join(root, f)
                if os.path.getsize(p) <= 4 << 20:
                    with open(p, "rb") as fh:
                        seeds.append((p, fh.read()))
    return seeds


def cmd_seeds(args):
    for kind, seeds in (("pth_diff", pth_seeds()), ("tar_diff", tar_seeds())):
        d = os.path.join(args.out, kind)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{len(seeds)} seeds in {d}")


def cmd_run(args):
    import resource

    _torch()  # import before capping the address space
    cap = 24 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    kind = args.kind
    rng = random.Random(args.seed)
    seeds = load_seeds(args.seeds)
    if not seeds:
        sys.exit("no seeds")
    zoo = Zoo(args.zoo.split())
    save = args.save
    if save:
        os.makedirs(save, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="diff_fuzz_")
    path = os.path.join(tmp, "input" + (".pth" if kind == "pth" else ".tar.gz"))
    stats = {"execs": 0, "zoo_ok": 0, "other_ok": 0, "both_ok": 0, "disagree": 0, "kept": 0}
    seen_disagree = {}
    start = time.time()
    pool = [s for _, s in seeds]
    while time.time() - start < args.seconds:
        data = rng.choice(pool)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data = MUTATE[kind](rng, data)
        with open(path, "wb") as f:
            f.write(data)
        z = zoo.ask(kind, path)
        other = VIEW[kind](path)
        stats["execs"] += 1
        stats["zoo_ok"] += bool(z.get("ok"))
        stats["other_ok"] += other[0] == "ok"
        stats["both_ok"] += bool(z.get("ok")) and other[0] == "ok"
        problem = COMPARE[kind](z, other)
        name = hashlib.sha1(data).hexdigest()[:16]
        if problem:
            stats["disagree"] += 1
            key = re.sub(r"0x[0-9a-f]+|\d+", "_", problem)[:120]
            seen_disagree.setdefault(key, 0)
            seen_disagree[key] += 1
            if save and seen_disagree[key] <= 5:
                with open(os.path.join(save, f"disagree-{name}"), "wb") as f:
                    f.write(data)
                with open(os.path.join(save, f"disagree-{name}.txt"), "w") as f:
                    f.write(f"{problem}\nzoo: {json.dumps(z)[:2000]}\n")
            print(f"DISAGREE {name}: {problem[:300]}", flush=True)
        elif z.get("ok") and save and stats["kept"] < args.keep and rng.random() < 0.05:
            stats["kept"] += 1
            with open(os.path.join(save, f"accepted-{name}"), "wb") as f:
                f.write(data)
        # grow the pool with accepted mutants, so mutations stack on inputs that get deep
        if z.get("ok") and len(pool) < 2000 and len(data) < (1 << 20):
            pool.append(data)
        if stats["execs"] % 500 == 0:
            print(json.dumps({**stats, "seconds": round(time.time() - start)}), flush=True)
    stats["seconds"] = round(time.time() - start)
    stats["zoo_restarts"] = zoo.deaths
    stats["disagreement_kinds"] = seen_disagree
    print(json.dumps(stats), flush=True)


def cmd_compare(args):
    with open(args.zoo_jsonl) as f:
        answers = [json.loads(line) for line in f if line.strip()]
    if len(answers) != len(args.files):
        sys.exit(f"{len(answers)} answers for {len(args.files)} files")
    bad = 0
    accepted = 0
    for path, z in zip(args.files, answers):
        problem = COMPARE[args.kind](z, VIEW[args.kind](path))
        accepted += bool(z.get("ok"))
        if problem:
            bad += 1
            print(f"DISAGREE {path}: {problem}")
    print(f"{len(args.files)} inputs, zoo accepted {accepted}, {bad} disagreements")
    sys.exit(1 if bad else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seeds")
    s.add_argument("out")
    r = sub.add_parser("run")
    r.add_argument("kind", choices=["pth", "tar"])
    r.add_argument("--zoo", required=True, help="command of the zoo_digest example")
    r.add_argument("--seeds", nargs="+", required=True)
    r.add_argument("--seconds", type=float, default=600)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--save")
    r.add_argument("--keep", type=int, default=60)
    c = sub.add_parser("compare")
    c.add_argument("kind", choices=["pth", "tar"])
    c.add_argument("zoo_jsonl")
    c.add_argument("files", nargs="+")
    args = ap.parse_args()
    {"seeds": cmd_seeds, "run": cmd_run, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    main()
