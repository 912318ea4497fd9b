"""Writes registry/efficientnet/{tf-efficientnet,advprop,tf-efficientnet-lite,
tf-efficientnet-condconv,tf-mixnet,tf-mobilenet-v3}.yml and adds the ReaL / ImageNetV2 entries.

Standard fields: copied verbatim from timm's 2021 cards (docs/models/.templates/models/<card>.md
at 4fb878bd^, i.e. f96e3696...). `Zoo:` block: from timm's pretrained cfgs at the mirror's HEAD
(timm/models/efficientnet.py, mobilenetv3.py; read through the venv's timm 1.0.31 and checked
against the HEAD file text), the TF checkpoint URLs Google published (tensorflow/tpu and
tensorflow/models READMEs), and timm's results CSVs at 4e5207c7 (the commit the Noisy Student
entries already cite).

Run from the repository root: .venv/bin/python notes/i16/import_2021_cards.py
"""
import csv
import io
import os
import re
import subprocess
import sys

import timm
from timm.models import get_pretrained_cfg

TIMM = '/work/.mirror/huggingface+pytorch-image-models/repo'
CARD_COMMIT = '4fb878bd^'
CSV_COMMIT = '4e5207c7'
OUT = 'registry/efficientnet'


def git(*args, repo=TIMM):
    return subprocess.run(['git', '-C', repo, *args], check=True, capture_output=True, text=True).stdout


HEAD_SRC = git('show', 'HEAD:timm/models/efficientnet.py') + git('show', 'HEAD:timm/models/mobilenetv3.py')


def csv_rows(name, commit=CSV_COMMIT):
    text = git('show', f'{commit}:results/{name}')
    return {r['model']: r for r in csv.DictReader(io.StringIO(text))}


IMAGENET = csv_rows('results-imagenet.csv')
# The run the 2021 cards were made from: every card's Top-1/Top-5 is this file's value rounded
# to two decimals (checked in main()). It still uses the pre-0.9 names, which are the card names.
CARD_RUN = 'a7d0a8b5'
CARD_CSV = csv_rows('results-imagenet.csv', CARD_RUN)
REAL = csv_rows('results-imagenet-real.csv')
V2 = csv_rows('results-imagenetv2-matched-frequency.csv')

TPU = 'https://storage.googleapis.com/cloud-tpu-checkpoints'
MNV3 = 'https://storage.googleapis.com/mobilenet_v3/checkpoints'


def tf_ckpt(name):
    """The TF checkpoint Google published for timm model `name` (see the module docstring)."""
    m = re.fullmatch(r'tf_efficientnet_b(\d)', name)
    if m:
        b = m.group(1)
        # tensorflow/tpu models/official/efficientnet/README.md: AutoAugment row (ckptsaug) for
        # b0-b4, b6; RandAugment row for b5, b7 (HEAD) and b8 (fd9509d..9e9110f^ only).
        if b in '578':
            return f'{TPU}/efficientnet/randaug/efficientnet-b{b}-randaug.tar.gz'
        return f'{TPU}/efficientnet/ckptsaug/efficientnet-b{b}.tar.gz'
    m = re.fullmatch(r'tf_efficientnet_b(\d)_ap', name)
    if m:
        return f'{TPU}/efficientnet/advprop/efficientnet-b{m.group(1)}.tar.gz'
    m = re.fullmatch(r'tf_efficientnet_e([sml])', name)
    if m:  # .../efficientnet/edgetpu/README.md
        return f'{TPU}/efficientnet/efficientnet-edgetpu-{m.group(1).upper()}.tar.gz'
    m = re.fullmatch(r'tf_efficientnet_lite(\d)', name)
    if m:  # .../efficientnet/lite/README.md
        return f'{TPU}/efficientnet/lite/efficientnet-lite{m.group(1)}.tar.gz'
    cc = {  # .../efficientnet/condconv/README.md; timm's cc_b1_8e is "CondConv-B0-Depth"
        'tf_efficientnet_cc_b0_4e': 'efficientnet-condconv-b0-4e',
        'tf_efficientnet_cc_b0_8e': 'efficientnet-condconv-b0-8e',
        'tf_efficientnet_cc_b1_8e': 'efficientnet-condconv-b0-8e-depth',
    }
    if name in cc:
        return f'{TPU}/efficientnet/condconv/{cc[name]}.tar.gz'
    m = re.fullmatch(r'tf_mixnet_([sml])', name)
    if m:  # models/official/mnasnet/mixnet/README.md
        return f'{TPU}/mixnet/mixnet-{m.group(1)}.tar.gz'
    mn = {  # tensorflow/models research/slim/nets/mobilenet/README.md, the float checkpoints
        'tf_mobilenetv3_large_075': 'v3-large_224_0.75_float',
        'tf_mobilenetv3_large_100': 'v3-large_224_1.0_float',
        'tf_mobilenetv3_large_minimal_100': 'v3-large-minimalistic_224_1.0_float',
        'tf_mobilenetv3_small_075': 'v3-small_224_0.75_float',
        'tf_mobilenetv3_small_100': 'v3-small_224_1.0_float',
        'tf_mobilenetv3_small_minimal_100': 'v3-small-minimalistic_224_1.0_float',
    }
    if name in mn:
        return f'{MNV3}/{mn[name]}.tgz'
    raise KeyError(name)


def all_tags():
    out = {}
    for arch in timm.list_models(['tf_efficientnet*', 'tf_mixnet*', 'tf_mobilenetv3*'], pretrained=True):
        cfg = get_pretrained_cfg(arch)
        if cfg and cfg.url:
            out.setdefault(os.path.basename(cfg.url), []).append((arch, cfg))
    return out


TAGS = all_tags()


def card_blocks(card):
    """(header lines up to `Models:`, [(model name, block lines)]) of the card's model index."""
    text = git('show', f'{CARD_COMMIT}:docs/models/.templates/models/{card}.md')
    body = text.split('<!--\n', 1)[1].split('\n-->', 1)[0].split('\n')
    i = body.index('Models:')
    head, models = body[: i + 1], []
    for line in body[i + 1:]:
        if line.startswith('- Name: '):
            models.append((line[len('- Name: '):].strip(), []))
        models[-1][1].append(line)
    return head, models


def num(v):
    return repr(float(v)) if float(v) != int(float(v)) else str(int(float(v)))


def reported(tag, indent='    ', card_name=None):
    out = []
    card_run = []
    if card_name is not None:
        card_run = [(f'timm results-imagenet.csv {CARD_RUN} (2021-01-03)', None,
                     {tag: CARD_CSV[card_name]})]
    for src, dataset, rows in [
        ('timm results-imagenet.csv', None, IMAGENET), *card_run,
        ('timm results-imagenet-real.csv', 'ImageNet ReaL', REAL),
        ('timm results-imagenetv2-matched-frequency.csv', 'ImageNetV2 matched-frequency', V2),
    ]:
        r = rows.get(tag)
        if r is None:
            print(f'warning: {tag} is not in {src}', file=sys.stderr)
            continue
        out.append(f'{indent}- Source: {src}')
        if dataset:
            out.append(f'{indent}  Dataset: {dataset}')
        out.append(f'{indent}  Top 1 Accuracy: {r["top1"]}%')
        out.append(f'{indent}  Top 5 Accuracy: {r["top5"]}%')
    return out


def zoo_block(name, block):
    weights = next(l.split(': ', 1)[1] for l in block if l.startswith('  Weights: '))
    size = next(l.split(': ', 1)[1] for l in block if l.startswith('    File Size: '))
    file = os.path.basename(weights)
    (tag, cfg), = TAGS[file]
    arch = tag.split('.', 1)[0]
    assert cfg.url in HEAD_SRC, (tag, cfg.url)  # the same URL at the mirror's HEAD
    assert f"'{tag}'" in HEAD_SRC, tag
    sha = re.fullmatch(r'.*-([0-9a-f]{8})\.pth', file).group(1)
    urls = [weights] + ([cfg.url] if cfg.url != weights else [])
    tf = tf_ckpt(name)
    hf = cfg.hf_hub_id.rstrip('/') if cfg.hf_hub_id else None
    hf = tag if hf in (None, 'timm') else hf.split('/', 1)[1]
    lines = [
        '  Zoo:',
        '    Aliases:',
        f'    - {tag}',
        f'    Architecture: {arch}',
        f'    License: {cfg.license}',
        '    Input:',
        f'      Image Size: {cfg.input_size[-1]}',
        f'      Crop Pct: {num(cfg.crop_pct)}',
        f'      Interpolation: {cfg.interpolation}',
        '      Mean:', *[f'      - {num(v)}' for v in cfg.mean],
        '      Std:', *[f'      - {num(v)}' for v in cfg.std],
        '    Flops:',
        '      Convention: thop-2020',
        '      Input Rule: dog-jpg-short-side',
        '    Files:',
        '    - Role: timm-pth',
        f'      File: {file}',
        '      Urls:', *[f'      - {u}' for u in urls],
        f'      Size: {size}',
        f"      Sha256 Prefix: '{sha}'",
        '      Format: pth-legacy',
        '    - Role: tf-checkpoint',
        f'      File: {os.path.basename(tf)}',
        '      Urls:',
        f'      - {tf}',
        '      Format: tf-bundle-tar-gz',
        '    - Role: hf-safetensors',
        '      File: model.safetensors',
        '      Urls:',
        f'      - https://huggingface.co/timm/{hf}/resolve/main/model.safetensors',
        '      Format: safetensors',
        '    Reported:',
        *reported(tag, card_name=name),
    ]
    return lines, tag


CARDS = [
    ('tf-efficientnet', "tf_efficientnet_b0…b8 (AutoAugment; b5, b7, b8 RandAugment), the EdgeTPU es/em/el\n"
                        "# and tf_efficientnet_l2_ns_475"),
    ('advprop', 'the AdvProp EfficientNets tf_efficientnet_b0_ap…b8_ap'),
    ('tf-efficientnet-lite', 'tf_efficientnet_lite0…lite4'),
    ('tf-efficientnet-condconv', 'the CondConv EfficientNets (cc_b0_4e, cc_b0_8e, cc_b1_8e)'),
    ('tf-mixnet', 'tf_mixnet_s/m/l'),
    ('tf-mobilenet-v3', 'the TF-ported MobileNetV3s (large/small 0.75/1.0, minimalistic 1.0)'),
]

HEADER = """# {what}, from timm's 2021 card
# (docs/models/.templates/models/{card}.md at pytorch-image-models f96e3696, the parent of
# 4fb878bd). Standard fields exactly as published; `Zoo:` holds zoo's own facts: the timm >= 0.9
# name, architecture, license and input settings from timm's pretrained cfgs (HEAD aa4b5850), the
# timm release file (size = the card's File Size), the original TF checkpoint Google published,
# and timm's results CSVs (results/*.csv at 4e5207c7) for ImageNet, ReaL and ImageNetV2."""


def existing_zoo(path, name):
    """The `Zoo:` block already in `path` for `name` (kept as written), without its `Reported`."""
    lines = open(path).read().split('\n')
    start = lines.index(f'- Name: {name}')
    z = next(i for i in range(start, len(lines)) if lines[i] == '  Zoo:')
    end = next((i for i in range(z + 1, len(lines)) if lines[i].startswith('- ')), len(lines))
    block = lines[z:end]
    while block and block[-1] == '':
        block.pop()
    r = block.index('    Reported:')
    return block[:r]


def add_ns_results(path='registry/efficientnet/noisy-student.yml'):
    """Appends the ReaL and ImageNetV2 entries to each Noisy Student model's `Reported`."""
    lines = open(path).read().rstrip('\n').split('\n')
    out, name, models = [], None, False
    for i, line in enumerate(lines):
        models = models or line == 'Models:'
        if models and line.startswith('- Name: '):
            name = line[len('- Name: '):]
        out.append(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else '- '
        if name and nxt.startswith('- ') and not line.startswith('- '):
            if 'Dataset: ImageNet ReaL' in '\n'.join(out[-12:]):
                continue  # already there
            tag = next(l.split('- ', 1)[1] for l in lines[lines.index(f'- Name: {name}'):]
                       if '.ns_jft_in1k' in l and l.startswith('    - '))
            out += reported(tag)[3:]  # skip the ImageNet entry already present
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')


def check_card_run():
    """Every card's Top-1/Top-5 is the card run's value, rounded to two decimals."""
    import glob
    for path in sorted(glob.glob(f'{OUT}/*.yml')):
        text = open(path).read().split('\nModels:\n', 1)[1]
        for blk in text.split('- Name: ')[1:]:
            name = blk.split('\n', 1)[0]
            t1 = float(re.search(r'Top 1 Accuracy: ([\d.]+)%', blk).group(1))
            t5 = float(re.search(r'Top 5 Accuracy: ([\d.]+)%', blk).group(1))
            r = CARD_CSV[name]
            ok = round(float(r['top1']), 2) == t1 and round(float(r['top5']), 2) == t5
            print(f'card run {CARD_RUN}: {name}: card {t1}/{t5}, csv {r["top1"]}/{r["top5"]}'
                  f'{"" if ok else "  MISMATCH"}')


def main():
    total = 0
    for card, what in CARDS:
        path = f'{OUT}/{card}.yml'
        head, models = card_blocks(card)
        out = [HEADER.format(what=what, card=card)] + head
        for name, block in models:
            if name == 'tf_efficientnet_l2_ns_475':
                z = existing_zoo(path, name) + ['    Reported:', '    - Source: tensorflow/tpu efficientnet README',
                                                '      Top 1 Accuracy: 88.2%'] + reported('tf_efficientnet_l2.ns_jft_in1k_475')
            else:
                z, _ = zoo_block(name, block)
                total += 1
            out += block + z
        with open(path, 'w') as f:
            f.write('\n'.join(out) + '\n')
        print(path, len(models))
    print('new models:', total)
    add_ns_results()
    check_card_run()


if __name__ == '__main__':
    main()
