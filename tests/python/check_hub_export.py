"""Checks zoo's Hugging Face Hub exports with timm and huggingface_hub themselves.

Usage:
  check_hub_export.py config DIR NAME...
      DIR/<NAME>.json holds zoo's config.json for timm model NAME (`arch.tag`); each must equal,
      byte for byte and key for key, what timm's save_config_for_hf writes for that model.
  check_hub_export.py random-b0 OUT
      writes a seeded random-weight timm tf_efficientnet_b0 as OUT/weights.safetensors, a seeded
      input OUT/input.npy (2x3x224x224) and timm's logits on it, OUT/logits.npy.
  check_hub_export.py load DIR INPUT.npy ZOO_LOGITS.npy INPUT_JSON [--tiny]
      timm.create_model('local-dir:DIR', pretrained=True) loads the folder; its logits on INPUT
      equal zoo's within 1e-5; resolve_data_config returns the input config in INPUT_JSON.
      --tiny registers the fixture's architecture `efficientnet_tiny` first (timm has none).
  check_hub_export.py card README.md [--no-results]
      huggingface_hub parses the front matter (ModelCard, metadata_load), and its model-index
      round-trips through model_index_to_eval_results / eval_results_to_model_index; with
      --no-results the card must have no model-index (a model without documented results).
Prints "ok" and exits 0 when every check holds.
"""
import json
import os
import sys
import tempfile

import numpy as np


def check_config(out_dir, names):
    import timm
    from timm.models._hub import save_config_for_hf

    for name in names:
        model = timm.create_model(name, pretrained=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "config.json")
            save_config_for_hf(model, path)
            with open(path, "rb") as f:
                theirs = f.read()
        with open(os.path.join(out_dir, name + ".json"), "rb") as f:
            ours = f.read()
        if json.loads(ours) != json.loads(theirs):
            sys.exit(f"{name}: config differs\nzoo:\n{ours.decode()}\ntimm:\n{theirs.decode()}")
        if ours != theirs:
            sys.exit(f"{name}: same keys and values, different bytes")
        print(f"{name}: config.json equals timm's")


def random_b0(out):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_b0", pretrained=False)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.uniform_(0.5, 1.5)
                else:
                    t.normal_(0, 0.1)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, os.path.join(out, "weights.safetensors"), metadata={"format": "pt"})
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    np.save(os.path.join(out, "input.npy"), x.numpy())
    np.save(os.path.join(out, "logits.npy"), logits.numpy())
    print("ok")


def register_tiny():
    from timm.models import register_model
    from timm.models.efficientnet import _gen_efficientnet

    @register_model
    def efficientnet_tiny(pretrained=False, **kwargs):
        """The bundled fixture's architecture: b0 blocks at width 0.05, depth 0.5, TF padding."""
        kwargs.setdefault("bn_eps", 1e-3)
        kwargs.setdefault("pad_type", "same")
        return _gen_efficientnet(
            "efficientnet_tiny", channel_multiplier=0.05, depth_multiplier=0.5,
            pretrained=pretrained, **kwargs)


def load(folder, input_path, zoo_logits_path, input_json, tiny):
    import timm
    import torch

    if tiny:
        register_tiny()
    model = timm.create_model("local-dir:" + os.path.abspath(folder), pretrained=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.load(input_path))).numpy()
    zoo = np.load(zoo_logits_path)
    diff = float(np.abs(logits - zoo).max())
    print(f"max |timm - zoo| = {diff:.3e}")
    if diff > 1e-5:
        sys.exit(f"timm's logits on the exported folder differ from zoo's by {diff}")
    cfg = timm.data.resolve_data_config({}, model=model)
    with open(input_json) as f:
        expected = json.load(f)
    got = {
        "input_size": list(cfg["input_size"]),
        "interpolation": cfg["interpolation"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "crop_pct": cfg["crop_pct"],
        "crop_mode": cfg["crop_mode"],
    }
    if got != expected:
        sys.exit(f"resolve_data_config gives {got}, the registry says {expected}")
    print("local-dir load ok, data config ok")


def card(path, no_results):
    from huggingface_hub import ModelCard, metadata_load
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    loaded = ModelCard.load(path)
    meta = metadata_load(path)
    if meta is None:
        sys.exit("metadata_load found no front matter")
    for key in ("library_name", "tags", "license", "pipeline_tag"):
        if key not in meta:
            sys.exit(f"front matter lacks {key}")
    if loaded.data.library_name != "timm":
        sys.exit(f"library_name is {loaded.data.library_name}")
    if no_results:
        if "model-index" in meta or loaded.data.eval_results:
            sys.exit("a card without results has a model-index")
        print("card ok")
        return
    if "model-index" not in meta:
        sys.exit("front matter lacks model-index")
    name, results = model_index_to_eval_results(meta["model-index"])
    if not results:
        sys.exit("model-index has no eval results")
    again = eval_results_to_model_index(name, results)
    name2, results2 = model_index_to_eval_results(again)
    if name2 != name or results2 != results:
        sys.exit(f"model-index does not round-trip:\n{meta['model-index']}\n{again}")
    if loaded.data.eval_results != results:
        sys.exit("ModelCard's eval_results differ from metadata_load's")
    for r in results:
        print(f"{name}: {r.dataset_type} {r.metric_name} = {r.metric_value}")
    print("card ok")


def main(argv):
    cmd = argv[1]
    if cmd == "config":
        check_config(argv[2], argv[3:])
    elif cmd == "random-b0":
        random_b0(argv[2])
    elif cmd == "load":
        load(argv[2], argv[3], argv[4], argv[5], "--tiny" in argv[6:])
    elif cmd == "card":
        card(argv[2], "--no-results" in argv[3:])
    else:
        sys.exit(f"unknown command {cmd}")
    print("ok")


if __name__ == "__main__":
    main(sys.argv)
