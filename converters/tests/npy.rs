//! `.npy` reading of the fixture's reference arrays.
use std::path::{Path, PathBuf};

use zoo_converters::{npy, DType};

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/efficientnet-tiny")
        .join(name)
}

#[test]
fn reads_logits_and_uint8_input() {
    let logits = npy::read(&tiny("logits.npy")).unwrap();
    assert_eq!(
        (logits.dtype(), logits.shape()),
        (DType::F32, &[2usize, 10][..])
    );
    assert!(logits.to_f32().unwrap().iter().all(|v| v.is_finite()));
    let input = npy::read(&tiny("input_uint8.npy")).unwrap();
    assert_eq!(
        (input.dtype(), input.shape()),
        (DType::U8, &[2usize, 64, 64, 3][..])
    );
    assert!(input.data().iter().any(|&b| b != 0));
}

#[test]
fn truncated_npy_is_an_error() {
    let good = std::fs::read(tiny("logits.npy")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    for len in 0..good.len() {
        std::fs::write(&p, &good[..len]).unwrap();
        assert!(npy::read(&p).is_err(), "cut at {len}");
    }
}
