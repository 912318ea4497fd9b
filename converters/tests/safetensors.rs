//! safetensors read/write: the fixture, round trips with `__metadata__`, deterministic bytes,
//! and typed errors for broken files.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_converters::safetensors::{self, Error};
use zoo_converters::{DType, Tensor};

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/efficientnet-tiny")
        .join(name)
}

#[test]
fn reads_the_fixture_in_offset_order() {
    let (sd, meta) = safetensors::read(&tiny("tf_efficientnet_tiny.safetensors")).unwrap();
    assert_eq!(sd.len(), 197);
    assert_eq!(
        meta,
        BTreeMap::from([("format".to_owned(), "pt".to_owned())])
    );
    // the file is in offset order, which the Python writer made dtype-then-name order
    let (first, t) = &sd[0];
    assert!(first.starts_with("blocks.0.0."), "{first}");
    assert_eq!(t.dtype(), DType::F32);
    let stem = sd.iter().find(|(n, _)| n == "conv_stem.weight").unwrap();
    assert_eq!(stem.1.shape(), &[8, 3, 3, 3]);
}

#[test]
fn round_trip_with_metadata_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (sd, _) = safetensors::read(&tiny("tf_efficientnet_tiny.safetensors")).unwrap();
    let mut sd = sd;
    sd.push((
        "z.half".into(),
        Tensor::new("h", DType::F16, vec![2], vec![0, 60, 0, 188]).unwrap(),
    ));
    sd.push((
        "a.count".into(),
        Tensor::new("c", DType::I64, vec![], 5i64.to_le_bytes().to_vec()).unwrap(),
    ));
    let meta: BTreeMap<String, String> = [
        ("format", "pt"),
        ("zoo.source", "tf_efficientnet_tiny"),
        ("zoo.sha256", "00ff"),
        ("zoo.converter", "zoo 0.1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    safetensors::write(&a, &sd, &meta).unwrap();
    safetensors::write(&b, &sd, &meta).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (back, back_meta) = safetensors::read(&a).unwrap();
    assert_eq!(back_meta, meta);
    assert_eq!(back.len(), sd.len());
    for (name, t) in &sd {
        let got = &back.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(got, t, "{name}");
    }
}

#[test]
fn broken_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(tiny("tf_efficientnet_tiny.safetensors")).unwrap();
    let p = dir.path().join("x.safetensors");
    for len in [0, 7, 8, 100, good.len() / 2, good.len() - 1] {
        std::fs::write(&p, &good[..len]).unwrap();
        assert!(safetensors::read(&p).is_err(), "cut at {len}");
    }
    let mut extra = good.clone();
    extra.extend_from_slice(b"polyglot");
    std::fs::write(&p, &extra).unwrap();
    assert!(matches!(safetensors::read(&p), Err(Error::DataSize { .. })));
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &huge).unwrap();
    assert!(matches!(
        safetensors::read(&p),
        Err(Error::HeaderSize { .. })
    ));
}
