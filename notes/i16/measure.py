"""Measures, for timm models built with one timm version, what the 2021 cards' Parameters,
File Size and FLOPs rules give. Prints one JSON object per model.

Usage: PYTHONPATH=<timm dir>[:<thop 0.0.31 dir>] python measure.py [--flops] MODEL...

File sizes are those of a legacy (`_use_new_zipfile_serialization=False`) `torch.save` of the
state dict, with the storage keys normalised to 14 decimal digits (`str(storage._cdata)` is a
pointer; the 2020 release files have 14-digit keys). Candidates:
  meta      Module.state_dict() of this timm version (its `_metadata` module tree)
  meta_se   the same plus one `blocks.i.j.se.avg_pool` entry per SE module (timm 0.1.x had it)
  nometa    the same tensors in a plain OrderedDict (no `_metadata`)
  *_nbt0    the same without the BatchNorm `num_batches_tracked` buffers
Parameters: exact trainable count n and int(round(n / 1e6, 2) * 1e6).
FLOPs (--flops, needs thop 0.0.31): thop.profile MACs at S x floor(S * 1546 / 1213).
"""
import collections
import io
import json
import pickle
import sys
import types

# timm < 0.4 imports torch._six, which torch 2.x no longer has.
six = types.ModuleType('torch._six')
import collections.abc as _abc
six.container_abcs = _abc
six.string_classes = (str, bytes)
six.int_classes = int
six.inf = float('inf')
sys.modules.setdefault('torch._six', six)
# thop 0.0.31 imports collections.Iterable (removed in Python 3.10).
collections.Iterable = _abc.Iterable

import torch  # noqa: E402
import timm  # noqa: E402

KEY_WIDTH = 14


class _Skip(pickle.Unpickler):
    def __init__(self, f, keys):
        super().__init__(f)
        self.keys = keys

    def persistent_load(self, pid):
        self.keys.append(pid[2])
        return None

    def find_class(self, module, name):
        if module.startswith('torch'):
            return lambda *a, **k: None
        return super().find_class(module, name)


def legacy_size(sd):
    f = io.BytesIO()
    torch.save(sd, f, _use_new_zipfile_serialization=False)
    raw = f.getvalue()
    f.seek(0)
    for _ in range(3):
        pickle.load(f)
    keys = []
    _Skip(f, keys).load()
    listed = pickle.load(f)
    assert sorted(set(keys)) == sorted(listed), 'shared storages?'
    # each key occurs once in the state-dict pickle and once in the key list
    return len(raw) - 2 * sum(len(k) - KEY_WIDTH for k in listed)


def with_meta(sd, meta):
    out = collections.OrderedDict(sd)
    out._metadata = meta
    return out


def variants(model):
    sd = model.state_dict()
    meta = sd._metadata
    se = collections.OrderedDict(meta)
    for name, m in model.named_modules():
        if type(m).__name__ in ('SqueezeExcite', 'SEModule') and f'{name}.avg_pool' not in se:
            se[f'{name}.avg_pool'] = {'version': 1}
    nbt0 = collections.OrderedDict((k, v) for k, v in sd.items() if not k.endswith('num_batches_tracked'))
    bare = collections.OrderedDict(sd)
    return {
        'meta': legacy_size(sd),
        'meta_se': legacy_size(with_meta(sd, se)),
        'nometa': legacy_size(bare),
        'meta_nbt0': legacy_size(with_meta(nbt0, meta)),
        'nometa_nbt0': legacy_size(collections.OrderedDict(nbt0)),
        'n_meta': len(meta),
        'n_se_added': len(se) - len(meta),
    }


def main():
    args = sys.argv[1:]
    flops = '--flops' in args
    args = [a for a in args if a != '--flops']
    for spec in args:
        name, _, size = spec.partition('@')
        try:
            model = timm.create_model(name, pretrained=False).eval()
        except Exception as e:  # not in this timm version
            print(json.dumps({'model': name, 'timm': timm.__version__, 'error': repr(e)[:200]}), flush=True)
            continue
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rec = {'model': name, 'timm': timm.__version__, 'params': n,
               'params_card_rule': int(round(n / 1e6, 2) * 1e6)}
        rec.update(variants(model))
        if flops:
            import thop
            s = int(size)
            x = torch.randn(1, 3, s, s * 1546 // 1213)
            with torch.no_grad():
                macs, _ = thop.profile(model, inputs=(x,), verbose=False)
            rec['flops_thop2020'] = int(macs)
            rec['input'] = [s, s * 1546 // 1213]
        print(json.dumps(rec), flush=True)
        del model


if __name__ == '__main__':
    main()
