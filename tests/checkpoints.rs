//! Opening every supported container, mapping TF to timm, and fingerprints across containers.
use std::path::{Path, PathBuf};

use zoo::arch::{ArchConfig, Network};
use zoo::checkpoint::{self, SourceFormat};
use zoo::convert::WeightSet;
use zoo::fingerprint::fingerprint;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet-tiny")
        .join(name)
}

fn tiny() -> Network {
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

/// A safetensors file whose header is exactly `len` bytes (padded with spaces), holding one
/// f32 tensor `w` of 4 values.
fn safetensors_with_header_len(dir: &Path, len: usize) -> PathBuf {
    let json = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    assert!(len >= json.len());
    let mut bytes = (len as u64).to_le_bytes().to_vec();
    bytes.extend(json.as_bytes());
    bytes.resize(8 + len, b' ');
    bytes.extend([0u8; 16]);
    let path = dir.join(format!("h{len}.safetensors"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Issue 14 (H2): the header length's low byte can be anything, including a pickle PROTO
/// (`0x80`) or the gzip magic (`1f 8b`); safetensors is recognised by its whole shape.
#[test]
fn safetensors_is_detected_for_every_header_length_residue() {
    let dir = tempfile::tempdir().unwrap();
    let mut lengths: Vec<usize> = (0..256).map(|r| 512 + r).collect();
    lengths.extend([0x0280, 0x8b1f, 0x4b50 + 0x10000]);
    for len in lengths {
        let path = safetensors_with_header_len(dir.path(), len);
        assert_eq!(
            checkpoint::detect(&path).unwrap(),
            SourceFormat::Safetensors,
            "header length {len} ({len:#x})"
        );
        let opened = checkpoint::open(&path, None, WeightSet::Ema).unwrap();
        assert_eq!(opened.tensors.len(), 1, "{len}");
        std::fs::remove_file(&path).unwrap();
    }
    // zoo's own writer, with a metadata value of every length up to 256
    let t = zoo_converters::Tensor::from_f32(vec![4], &[1.0; 4]).unwrap();
    for n in 0..256 {
        let path = dir.path().join("w.safetensors");
        let meta = [("zoo.source".to_owned(), "a".repeat(n))].into();
        zoo_converters::safetensors::write(&path, &vec![("w".into(), t.clone())], &meta).unwrap();
        assert_eq!(
            checkpoint::detect(&path).unwrap(),
            SourceFormat::Safetensors,
            "{n}"
        );
        assert!(checkpoint::open(&path, None, WeightSet::Ema).is_ok(), "{n}");
    }
}

/// Issue 14 (H2): a legacy `torch.save` file is recognised by the whole pickle of its magic
/// number, not by a leading `0x80`; something that only starts like one is not a checkpoint.
#[test]
fn legacy_pth_needs_its_whole_magic_number() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = std::fs::read(fixture("tf_efficientnet_tiny_legacy.pth")).unwrap();
    for cut in [1, 2, 4, 13] {
        let mut bytes = legacy[..cut].to_vec();
        bytes.extend(b"xxxxxxxxxxxxxxxxxxxxxxxx");
        let path = dir.path().join("x.pth");
        std::fs::write(&path, bytes).unwrap();
        assert!(
            matches!(
                checkpoint::detect(&path),
                Err(checkpoint::CheckpointError::Unknown { .. })
            ),
            "{cut}"
        );
    }
}

/// Issue 14 (Q1): `{:#}` of a reader's error shows each cause once.
#[test]
fn reader_errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pth");
    std::fs::write(&missing, b"PK\x03\x04").unwrap();
    let gone = dir.path().join("gone");
    for path in [missing, gone, dir.path().join("x.safetensors")] {
        let Err(e) = checkpoint::open(&path, Some(&tiny()), WeightSet::Ema) else {
            panic!("{} opened", path.display())
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        let parts: Vec<&str> = text.split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "{text}");
        }
    }
}
