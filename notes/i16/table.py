"""Combines measure.py's JSON lines (one file per timm version) with the cards' values into the
markdown tables of notes/i16-filesize.md.

Usage: python table.py m-0.1.14.jsonl m-0.1.30.jsonl m-0.4.5.jsonl m-1.0.31.jsonl
"""
import glob
import os
import json
import re
import sys

CARD = {}
for path in sorted(glob.glob(os.environ.get('REGISTRY_DIR', 'registry/efficientnet') + '/*.yml')):
    text = open(path).read().split('\nModels:\n', 1)[1]
    for blk in text.split('- Name: ')[1:]:
        name = blk.split('\n', 1)[0]
        get = lambda k: int(re.search(rf'\n    {k}: (\d+)', blk).group(1))
        CARD[name] = {'file': path.split('/')[-1], 'flops': get('FLOPs'), 'params': get('Parameters'),
                      'size': get('File Size')}

RUNS = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        RUNS.setdefault(r['model'], {})[r['timm']] = r

# Module trees by timm version: T1 = 0.1.1-0.1.14, T2 = 0.1.18-0.2.1, T3 = 0.3.x-0.4.5.
TREES = [('0.1.14', 'T1 (timm 0.1.1-0.1.14)'), ('0.1.30', 'T2 (timm 0.1.18-0.2.1)'),
         ('0.4.5', 'T3 (timm 0.3-0.4.5)'), ('1.0.31', 'timm 1.0.31')]


def candidates(runs):
    out = []
    for v, label in TREES:
        r = runs.get(v)
        if not r or 'error' in r:
            continue
        out.append((f'{label} `_metadata`', r['meta']))
        out.append((f'{label} `_metadata` without num_batches_tracked', r['meta_nbt0']))
        if r['n_se_added']:
            out.append((f'{label} `_metadata` + `se.avg_pool` per SE', r['meta_se']))
    r = runs.get('0.4.5') or runs.get('1.0.31')
    out.append(('no `_metadata`', r['nometa']))
    out.append(('no `_metadata`, no num_batches_tracked', r['nometa_nbt0']))
    return out


def fmt(n):
    return f'{n:,}'


print('## File Size\n')
print('| model | card File Size | T1 | T2 | T3 | timm 1.0.31 | no `_metadata` | verdict |')
print('|---|---:|---:|---:|---:|---:|---:|---|')
summary = {}
for name, card in CARD.items():
    runs = RUNS.get(name)
    if not runs:
        continue
    cells = []
    for v, _ in TREES:
        r = runs.get(v)
        cells.append('n/a' if not r or 'error' in r else fmt(r['meta']))
    base = runs.get('0.4.5') or runs.get('1.0.31')
    cells.append(fmt(base['nometa']))
    cands = candidates(runs)
    exact = [l for l, s in cands if s == card['size']]
    if exact:
        verdict = 'exact: ' + exact[0] + (f' (also {len(exact) - 1} more)' if len(exact) > 1 else '')
    else:
        label, s = min(cands, key=lambda c: abs(c[1] - card['size']))
        verdict = f'NO candidate; nearest {label}: card − predicted = {card["size"] - s:+,} bytes'
    summary[name] = verdict
    print(f'| {name} | {fmt(card["size"])} | ' + ' | '.join(cells) + f' | {verdict} |')

print('\n## Parameters and FLOPs\n')
print('| model | exact params (timm 0.4.5) | card Parameters | int(round(n/1e6,2)*1e6) | params | card FLOPs | thop-2020 (timm 0.4.5, thop 0.0.31) | input | FLOPs |')
print('|---|---:|---:|---:|---|---:|---:|---|---|')
for name, card in CARD.items():
    r = (RUNS.get(name) or {}).get('0.4.5')
    if not r or 'error' in r:
        continue
    p_ok = 'exact' if r['params_card_rule'] == card['params'] else f'DIFFERS by {card["params"] - r["params_card_rule"]:+,}'
    cur = RUNS[name].get('1.0.31')
    if cur and 'error' not in cur and cur['params'] != r['params']:
        p_ok += f' (timm 1.0.31 counts {cur["params"]:,})'
    f = r.get('flops_thop2020')
    f_ok = 'n/a' if f is None else ('exact' if f == card['flops'] else f'DIFFERS by {card["flops"] - f:+,}')
    inp = 'x'.join(map(str, r.get('input', [])))
    print(f'| {name} | {fmt(r["params"])} | {fmt(card["params"])} | {fmt(r["params_card_rule"])} | {p_ok} | '
          f'{fmt(card["flops"])} | {fmt(f) if f is not None else "n/a"} | {inp} | {f_ok} |')
