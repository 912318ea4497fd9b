//! `zoo export`: Hugging Face Hub folders (model.safetensors, config.json, README.md) and the Hub
//! cards `zoo docs` renders.
use std::path::{Path, PathBuf};

use zoo::registry::Registry;

use crate::{fixture, root, zoo};

const TINY_REGISTRY: &str = "tests/fixtures/registry-tiny";

fn tiny(rel: &str) -> String {
    fixture(&format!("efficientnet-tiny/{rel}"))
        .to_string_lossy()
        .into_owned()
}

/// `zoo --registry <tiny registry> export tiny --from <tarball> --hf DIR [extra…]`.
fn export_tiny(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let tarball = tiny("efficientnet-tiny.tar.gz");
    let dir = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "--registry",
        TINY_REGISTRY,
        "export",
        "tiny",
        "--from",
        &tarball,
        "--hf",
        &dir,
    ];
    args.extend_from_slice(extra);
    zoo(&args)
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn tiny_fixture_exports_the_hub_layout_with_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("efficientnet_tiny.tf_fixture");
    let (code, out, err) = export_tiny(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        names(&dir),
        ["README.md", "config.json", "model.safetensors"],
        "exactly timm's Hub layout"
    );
    assert_eq!(
        names(tmp.path()),
        ["efficientnet_tiny.tf_fixture"],
        "no staging left"
    );
    // The weights are the conversion zoo proves elsewhere: same fingerprint, provenance inside.
    let (tensors, meta) =
        zoo_converters::safetensors::read(&dir.join("model.safetensors")).unwrap();
    assert_eq!(tensors.len(), 197);
    let fp = "33a33ae0de28960e43f54f54cc71c420b038ab84e99d1db88800d403766bad75";
    assert_eq!(meta.get("zoo.fingerprint").map(String::as_str), Some(fp));
    assert_eq!(
        meta.get("zoo.source_sha256").map(String::as_str),
        Some("f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1")
    );
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for needle in [
        "library_name: timm",
        "# Model card for efficientnet_tiny.tf_fixture",
        fp,
        "f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1",
        zoo::convert::tf_efficientnet::MAPPING_VERSION,
        "huggingface-cli upload <your-namespace>/efficientnet_tiny.tf_fixture .",
    ] {
        assert!(card.contains(needle), "{needle} in\n{card}");
    }
    assert!(
        !card.contains("model-index"),
        "no results, so no model-index:\n{card}"
    );
    // With libtorch the registry's reference vectors prove the conversion; without, the card
    // says the check was skipped and why (never that it passed).
    if cfg!(feature = "torch") {
        assert!(
            card.contains("| inference check | pass: largest logit difference "),
            "{card}"
        );
    } else {
        assert!(
            card.contains(
                "| inference check | skipped (zoo was built without the `torch` feature)"
            ),
            "{card}"
        );
    }
    insta::assert_snapshot!(
        "tiny_config_json",
        std::fs::read_to_string(dir.join("config.json")).unwrap()
    );
    // zoo's own check of Hub cards accepts the card it wrote.
    let readme = dir.join("README.md").to_string_lossy().into_owned();
    let (code, out, err) = zoo(&["check-cards", &readme]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn the_same_inputs_give_byte_identical_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(export_tiny(&a, &[]).0, 0);
    assert_eq!(export_tiny(&b, &[]).0, 0);
    for f in ["README.md", "config.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn an_export_never_replaces_files_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let (code, out, err) = export_tiny(&dir, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("exists and is not empty"), "{err}");
    assert_eq!(names(&dir), ["notes.txt"]);
    assert_eq!(names(tmp.path()), ["hub"], "no staging left");
    // An empty directory is filled.
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    assert_eq!(export_tiny(&dir, &[]).0, 0);
    assert_eq!(names(&dir).len(), 3);
}

#[test]
fn weights_that_fail_the_strict_check_write_nothing() {
    // b0_ns's architecture against the tiny model's weights: every shape differs.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let from = tiny("tf_efficientnet_tiny.safetensors");
    let out_dir = dir.to_string_lossy().into_owned();
    let (code, out, err) = zoo(&["export", "b0_ns", "--from", &from, "--hf", &out_dir]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("conv_stem.weight"), "{err}");
    assert!(!dir.exists());
    assert_eq!(names(tmp.path()), Vec::<String>::new(), "no staging left");
}

#[cfg(feature = "torch")]
#[test]
fn a_failed_inference_check_writes_nothing() {
    // The raw weights against the EMA reference logits: the check fails, exit 1, nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let (code, out, err) = export_tiny(&dir, &["--weights", "raw"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("inference: FAIL"), "{out}");
    assert!(out.contains("nothing was written"), "{out}");
    assert!(!dir.exists());
    assert_eq!(names(tmp.path()), Vec::<String>::new(), "no staging left");
}

#[test]
fn a_model_without_a_hub_name_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    crate::copy_dir(&fixture("registry-tiny"), &reg);
    let yml = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        text.replace("    - efficientnet_tiny.tf_fixture\n", ""),
    )
    .unwrap();
    let dir = tmp.path().join("out");
    let tarball = tiny("efficientnet-tiny.tar.gz");
    let (reg_s, dir_s) = (
        reg.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    );
    let (code, _, err) = zoo(&[
        "--registry",
        &reg_s,
        "export",
        "tiny",
        "--from",
        &tarball,
        "--hf",
        &dir_s,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model `efficientnet_tiny`"), "{err}");
    assert!(err.contains("has no Hub name"), "{err}");
    assert!(err.contains("tiny.yml"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn a_hub_name_must_name_the_models_own_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    crate::copy_dir(&root().join("registry"), &reg);
    let yml = reg.join("efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        text.replace(
            "    - tf_efficientnet_b1.ns_jft_in1k\n",
            "    - tf_efficientnet_b0.ns_jft_in1k_b1\n",
        ),
    )
    .unwrap();
    let entry_registry = Registry::load(&reg).unwrap();
    let b1 = entry_registry.resolve("b1_ns").unwrap();
    let err = zoo::hub::hub_name(b1).unwrap_err().to_string();
    assert!(
        err.contains("`tf_efficientnet_b0.ns_jft_in1k_b1` names timm architecture `tf_efficientnet_b0`, but `Zoo: Architecture` resolves to `tf_efficientnet_b1`"),
        "{err}"
    );
}

#[test]
fn registry_configs_are_timms_for_every_model() {
    let registry = Registry::embedded().unwrap();
    let mut configs = String::new();
    for entry in registry.models() {
        let spec = zoo::hub::resolve(entry).unwrap();
        let config = zoo::hub::timm_config(entry, &spec).unwrap();
        let name = zoo::hub::hub_name(entry).unwrap().to_string();
        configs.push_str(&format!("{name}\n{}\n", config.to_json()));
    }
    insta::assert_snapshot!("registry_config_json", configs);
}

/// The registry's Hub names, each with zoo's `config.json` written into `dir/<name>.json`.
fn write_registry_configs(dir: &Path) -> Vec<String> {
    let registry = Registry::embedded().unwrap();
    registry
        .models()
        .map(|entry| {
            let spec = zoo::hub::resolve(entry).unwrap();
            let config = zoo::hub::timm_config(entry, &spec).unwrap();
            let name = zoo::hub::hub_name(entry).unwrap().to_string();
            std::fs::write(dir.join(format!("{name}.json")), config.to_json()).unwrap();
            name
        })
        .collect()
}

/// Runs `tests/python/check_hub_export.py ARGS…`; returns its output, panicking on failure.
fn check_hub_export(args: &[&std::ffi::OsStr]) -> String {
    let text = crate::python_script("check_hub_export.py", args);
    assert!(text.contains("ok"), "{text}");
    text
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn config_json_equals_timms_save_for_hf_for_every_registry_model() {
    let tmp = tempfile::tempdir().unwrap();
    let names = write_registry_configs(tmp.path());
    assert_eq!(names.len(), 48);
    let mut args: Vec<&std::ffi::OsStr> = vec!["config".as_ref(), tmp.path().as_os_str()];
    args.extend(names.iter().map(|n| std::ffi::OsStr::new(n.as_str())));
    let text = check_hub_export(&args);
    assert_eq!(
        text.matches("config.json equals timm's").count(),
        48,
        "{text}"
    );
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with huggingface_hub); `make test` runs it"]
fn hub_cards_parse_with_huggingface_hub_and_their_results_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    assert_eq!(export_tiny(&dir, &[]).0, 0);
    // The tiny fixture has random weights and so no results: no model-index at all.
    let readme = dir.join("README.md");
    let text = check_hub_export(&["card".as_ref(), readme.as_os_str(), "--no-results".as_ref()]);
    assert!(text.contains("card ok"), "{text}");
    let mut cards: Vec<PathBuf> = vec![];
    let registry = Registry::embedded().unwrap();
    for card in zoo::docs::render_hub_cards(&registry).unwrap() {
        let path = tmp.path().join(card.models[0].clone() + ".md");
        std::fs::write(&path, card.text).unwrap();
        cards.push(path);
    }
    assert_eq!(cards.len(), 48);
    for card in &cards {
        let text = check_hub_export(&["card".as_ref(), card.as_os_str()]);
        assert!(text.contains("card ok"), "{text}");
    }
}

/// Writes a little-endian f32 `.npy` (version 1.0), for handing zoo's logits to Python.
#[cfg(feature = "torch")]
fn write_npy(path: &Path, t: &zoo_converters::Tensor) {
    let shape = t
        .shape()
        .iter()
        .map(|d| format!("{d}, "))
        .collect::<String>();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(t.data());
    std::fs::write(path, bytes).unwrap();
}

/// zoo's logits for an exported folder: its model.safetensors, checked against the registry
/// model's architecture, run by zoo's tch model on `input`.
#[cfg(feature = "torch")]
fn zoo_logits(registry: &Registry, model: &str, dir: &Path, input: &Path, out: &Path) {
    let entry = registry.resolve(model).unwrap();
    let spec = zoo::hub::resolve(entry).unwrap();
    let weights = dir.join("model.safetensors");
    let (tensors, _) = zoo_converters::safetensors::read(&weights).unwrap();
    let tensors = zoo::checkpoint::check_against(tensors, &spec, &weights).unwrap();
    let model = zoo::torch::Model::load(&spec, &tensors).unwrap();
    let logits = model
        .forward(&zoo_converters::npy::read(input).unwrap())
        .unwrap();
    write_npy(out, &logits);
}

/// The registry's input config as timm's `resolve_data_config` reports it.
#[cfg(feature = "torch")]
fn input_json(registry: &Registry, model: &str, path: &Path) {
    let entry = registry.resolve(model).unwrap();
    let spec = zoo::hub::resolve(entry).unwrap();
    let cfg = zoo::hub::timm_config(entry, &spec).unwrap().pretrained_cfg;
    let json = serde_json::json!({
        "input_size": cfg.input_size,
        "interpolation": cfg.interpolation,
        "mean": cfg.mean,
        "std": cfg.std,
        "crop_pct": cfg.crop_pct,
        "crop_mode": cfg.crop_mode,
    });
    std::fs::write(path, json.to_string()).unwrap();
}

#[cfg(feature = "torch")]
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn timm_loads_the_exported_tiny_fixture_from_local_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let (code, out, err) = export_tiny(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let registry = Registry::load(&fixture("registry-tiny")).unwrap();
    let input = fixture("efficientnet-tiny/input_preprocessed_nchw.npy");
    let (logits, cfg) = (tmp.path().join("zoo.npy"), tmp.path().join("input.json"));
    zoo_logits(&registry, "tiny", &dir, &input, &logits);
    input_json(&registry, "tiny", &cfg);
    let text = check_hub_export(&[
        "load".as_ref(),
        dir.as_os_str(),
        input.as_os_str(),
        logits.as_os_str(),
        cfg.as_os_str(),
        "--tiny".as_ref(),
    ]);
    assert!(text.contains("local-dir load ok, data config ok"), "{text}");
}

#[cfg(feature = "torch")]
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn timm_loads_an_exported_full_size_b0_from_local_dir() {
    let tmp = tempfile::tempdir().unwrap();
    check_hub_export(&["random-b0".as_ref(), tmp.path().as_os_str()]);
    let dir = tmp.path().join("hub");
    let p = |f: &str| tmp.path().join(f).to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    // timm's own logits are the reference: the export's inference check runs against them.
    let (code, out, err) = zoo(&[
        "export",
        "b0_ns",
        "--from",
        &p("weights.safetensors"),
        "--reference-input",
        &p("input.npy"),
        "--reference-logits",
        &p("logits.npy"),
        "--hf",
        &dir_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("inference: pass"), "{out}");
    let registry = Registry::embedded().unwrap();
    let (logits, cfg) = (tmp.path().join("zoo.npy"), tmp.path().join("input.json"));
    zoo_logits(
        &registry,
        "b0_ns",
        &dir,
        &tmp.path().join("input.npy"),
        &logits,
    );
    input_json(&registry, "b0_ns", &cfg);
    let input = tmp.path().join("input.npy");
    let text = check_hub_export(&[
        "load".as_ref(),
        dir.as_os_str(),
        input.as_os_str(),
        logits.as_os_str(),
        cfg.as_os_str(),
    ]);
    assert!(text.contains("local-dir load ok, data config ok"), "{text}");
}

/// `zoo check-cards` accepts the Hub cards `zoo docs` writes, and reports a seeded wrong value
/// at its line: out of range, or simply not what the registry documents.
#[test]
fn check_cards_accepts_generated_hub_cards_and_locates_a_seeded_wrong_value() {
    let card = "registry/cards/hf/tf_efficientnet_b0.ns_jft_in1k/README.md";
    let (code, out, err) = zoo(&["check-cards", card]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("0 error(s), 0 warning(s), 0 info"), "{err}");
    let text = std::fs::read_to_string(root().join(card)).unwrap();
    let line = text
        .lines()
        .position(|l| l == "      value: 78.66")
        .unwrap()
        + 1;
    let tmp = tempfile::tempdir().unwrap();
    for (wrong, says) in [
        ("76.66", "is 76.66, but the registry documents 78.66%"),
        ("786.6", "must be within 0..=100"),
        ("high", "value"),
    ] {
        let path = tmp.path().join("README.md");
        std::fs::write(
            &path,
            text.replace("      value: 78.66\n", &format!("      value: {wrong}\n")),
        )
        .unwrap();
        let (code, out, err) = zoo(&["check-cards", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{wrong}: {out}{err}");
        let at = format!("README.md:{line}:14: error: ");
        assert!(
            out.lines().any(|l| l.contains(&at) && l.contains(says)),
            "{wrong}: no error at line {line} saying {says:?}:\n{out}{err}"
        );
    }
}
