//! Opening every supported container, mapping TF to timm, and fingerprints across containers.
use std::path::{Path, PathBuf};

use zoo::arch::{ArchConfig, Spec};
use zoo::checkpoint::{self, SourceFormat};
use zoo::convert::WeightSet;
use zoo::fingerprint::fingerprint;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet-tiny")
        .join(name)
}

fn tiny() -> Spec {
    "efficientnet:width=0.05,depth=0.5,classes=10"
        .parse::<ArchConfig>()
        .unwrap()
        .resolve()
        .unwrap()
}

fn fp(path: &Path, weights: WeightSet) -> String {
    let opened = checkpoint::open(path, Some(&tiny()), weights).unwrap();
    fingerprint(opened.tensors.iter().map(|(k, t)| (k, t))).fingerprint
}

#[test]
fn formats_are_detected_by_content() {
    let cases = [
        ("efficientnet-tiny.tar.gz", SourceFormat::TfTarball),
        ("ckpt/model.ckpt", SourceFormat::TfBundle),
        ("ckpt/model.ckpt.index", SourceFormat::TfBundle),
        ("ckpt", SourceFormat::TfBundle),
        ("tf_efficientnet_tiny.pth", SourceFormat::PthZip),
        ("tf_efficientnet_tiny_legacy.pth", SourceFormat::PthLegacy),
        (
            "tf_efficientnet_tiny.safetensors",
            SourceFormat::Safetensors,
        ),
    ];
    for (f, want) in cases {
        assert_eq!(checkpoint::detect(&fixture(f)).unwrap(), want, "{f}");
    }
    let err = checkpoint::detect(&fixture("README.md"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a recognised checkpoint"), "{err}");
}

/// TF (mapped) → bit-identical to timm's conversion, key for key, in timm order.
#[test]
fn tf_tarball_maps_to_timm_tensors_exactly() {
    let spec = tiny();
    let from_tf = checkpoint::open(
        &fixture("efficientnet-tiny.tar.gz"),
        Some(&spec),
        WeightSet::Ema,
    )
    .unwrap();
    let (timm, _) =
        zoo_converters::safetensors::read(&fixture("tf_efficientnet_tiny.safetensors")).unwrap();
    let timm: std::collections::BTreeMap<_, _> = timm.into_iter().collect();
    assert_eq!(from_tf.tensors.len(), 197);
    let names: Vec<&str> = from_tf.tensors.iter().map(|(k, _)| k.as_str()).collect();
    let spec_names: Vec<String> = spec.params().into_iter().map(|p| p.name).collect();
    assert_eq!(names, spec_names);
    for (k, t) in &from_tf.tensors {
        assert_eq!(Some(t), timm.get(k), "{k}");
    }
    let plan = from_tf.plan.unwrap();
    assert_eq!(
        plan.ignored.len(),
        271,
        "135 RMSProp + 135 RMSProp_1 + global_step"
    );
}

/// Issue 8: the same weights give the same fingerprint whatever the container.
#[test]
fn fingerprint_is_container_independent() {
    let ema = fp(&fixture("tf_efficientnet_tiny.safetensors"), WeightSet::Ema);
    for f in [
        "tf_efficientnet_tiny.pth",
        "tf_efficientnet_tiny_legacy.pth",
        "efficientnet-tiny.tar.gz",
        "ckpt/model.ckpt",
    ] {
        assert_eq!(fp(&fixture(f), WeightSet::Ema), ema, "{f}");
    }
    let raw = fp(
        &fixture("tf_efficientnet_tiny_raw.safetensors"),
        WeightSet::Ema,
    );
    assert_ne!(raw, ema);
    assert_eq!(
        fp(&fixture("efficientnet-tiny.tar.gz"), WeightSet::Raw),
        raw
    );
}

#[test]
fn tf_source_needs_an_architecture() {
    let err = checkpoint::open(&fixture("ckpt/model.ckpt"), None, WeightSet::Ema).unwrap_err();
    assert!(err.to_string().contains("needs an architecture"), "{err}");
}

/// Issue 8, bad input: missing, extra and wrong-shape keys are all named.
#[test]
fn state_dict_problems_are_all_named() {
    let (mut sd, _) =
        zoo_converters::safetensors::read(&fixture("tf_efficientnet_tiny.safetensors")).unwrap();
    sd.retain(|(k, _)| k != "blocks.3.0.conv_pw.weight");
    sd.push((
        "blocks.9.9.extra".into(),
        zoo_converters::Tensor::from_f32(vec![1], &[0.0]).unwrap(),
    ));
    let i = sd.iter().position(|(k, _)| k == "classifier.bias").unwrap();
    sd[i].1 = zoo_converters::Tensor::from_f32(vec![11], &[0.0; 11]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pth");
    zoo_converters::pth::write(&bad, &sd).unwrap();
    let err = checkpoint::open(&bad, Some(&tiny()), WeightSet::Ema)
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.3.0.conv_pw.weight: missing"), "{err}");
    assert!(err.contains("blocks.9.9.extra: unexpected key"), "{err}");
    assert!(
        err.contains("classifier.bias: shape [11], the architecture needs [10]"),
        "{err}"
    );
}
