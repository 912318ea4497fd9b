//! The libtorch interpreter of the layer graph against the tiny TensorFlow fixture: logits
//! equal TF's within 1e-4, the wrong weight set is caught, and loading is strict.
#![cfg(feature = "torch")]

use std::path::{Path, PathBuf};

use zoo::arch::{ArchConfig, Network};
use zoo::torch::{compare_logits, Model, ParamProblem, TorchError, DEFAULT_TOLERANCE};
use zoo_converters::{DType, StateDict, Tensor};

const TINY: &str = "efficientnet:width=0.05,depth=0.5,classes=10";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet-tiny")
        .join(name)
}

fn spec(arch: &str) -> Network {
    arch.parse::<ArchConfig>().unwrap().resolve().unwrap()
}

/// A libtorch f32 tensor as a zoo tensor (test-side reading only; the library takes zoo tensors).
fn to_zoo(name: &str, t: &tch::Tensor) -> Tensor {
    assert_eq!(t.kind(), tch::Kind::Float, "{name}");
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(&t.contiguous().view([-1i64])).unwrap();
    Tensor::from_f32(shape, &values).unwrap()
}

fn read_safetensors(name: &str) -> StateDict {
    tch::Tensor::read_safetensors(fixture(name))
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let z = to_zoo(&k, &t);
            (k, z)
        })
        .collect()
}

fn read_npy(name: &str) -> Tensor {
    to_zoo(name, &tch::Tensor::read_npy(fixture(name)).unwrap())
}

fn run(weights: &str) -> Tensor {
    let model = Model::load(&spec(TINY), &read_safetensors(weights)).unwrap();
    model
        .forward(&read_npy("input_preprocessed_nchw.npy"))
        .unwrap()
}

#[test]
fn tiny_ema_weights_reproduce_tensorflow_logits() {
    let logits = run("tf_efficientnet_tiny.safetensors");
    assert_eq!(logits.shape(), &[2, 10]);
    let c = compare_logits(&logits, &read_npy("logits.npy"), DEFAULT_TOLERANCE).unwrap();
    eprintln!("EMA vs TF EMA logits: {c:?}");
    assert!(c.passed, "{c:?}");
    assert!(c.max_abs < 1e-4, "{c:?}");
    assert_eq!((c.top1_agree, c.top5_agree), (1.0, 1.0), "{c:?}");
}

#[test]
fn tiny_raw_weights_reproduce_raw_logits_and_ema_does_not() {
    let raw = run("tf_efficientnet_tiny_raw.safetensors");
    let reference_raw = read_npy("logits_raw.npy");
    let c = compare_logits(&raw, &reference_raw, DEFAULT_TOLERANCE).unwrap();
    assert!(c.passed, "raw vs raw: {c:?}");

    let ema = run("tf_efficientnet_tiny.safetensors");
    let wrong = compare_logits(&ema, &reference_raw, DEFAULT_TOLERANCE).unwrap();
    eprintln!("raw vs TF raw: {c:?}\nEMA vs TF raw: {wrong:?}");
    assert!(!wrong.passed, "EMA vs raw reference must fail: {wrong:?}");
    // The fixture's EMA and raw logits differ by about 4.9.
    assert!(wrong.max_abs > 1.0, "{wrong:?}");
}

#[test]
fn load_names_every_missing_misshapen_mistyped_and_unexpected_tensor() {
    let mut weights = read_safetensors("tf_efficientnet_tiny.safetensors");
    let count = weights.len();
    weights.retain(|(k, _)| k != "blocks.3.1.conv_pwl.weight");
    assert_eq!(weights.len(), count - 1);
    for (k, t) in weights.iter_mut() {
        match k.as_str() {
            // Same element count, transposed shape: only the shape check can catch it.
            "classifier.weight" => {
                *t = Tensor::new(k, DType::F32, vec![64, 10], t.data().to_vec()).unwrap()
            }
            "bn2.running_var" => {
                let bytes: Vec<u8> = t
                    .to_f32()
                    .unwrap()
                    .into_iter()
                    .flat_map(|v| f64::from(v).to_le_bytes())
                    .collect();
                *t = Tensor::new(k, DType::F64, vec![64], bytes).unwrap()
            }
            _ => {}
        }
    }
    weights.push((
        "head.fc.weight".into(),
        Tensor::from_f32(vec![2], &[1.0, 2.0]).unwrap(),
    ));
    // Allowed: torch's BatchNorm counter, which inference never reads.
    weights.push((
        "bn1.num_batches_tracked".into(),
        Tensor::new("n", DType::I64, vec![], 0i64.to_le_bytes().to_vec()).unwrap(),
    ));

    let err = Model::load(&spec(TINY), &weights).unwrap_err();
    let TorchError::StateDict { problems, .. } = &err else {
        panic!("expected a state-dict error, got {err}");
    };
    assert_eq!(
        problems,
        &vec![
            ParamProblem::Missing {
                name: "blocks.3.1.conv_pwl.weight".into(),
                shape: vec![8, 48, 1, 1],
            },
            ParamProblem::WrongDType {
                name: "bn2.running_var".into(),
                dtype: "F64",
            },
            ParamProblem::WrongShape {
                name: "classifier.weight".into(),
                expected: vec![10, 64],
                actual: vec![64, 10],
            },
            ParamProblem::Unexpected {
                name: "head.fc.weight".into(),
                shape: vec![2],
            },
        ]
    );
    let msg = err.to_string();
    for name in [
        "blocks.3.1.conv_pwl.weight",
        "bn2.running_var",
        "classifier.weight",
        "head.fc.weight",
    ] {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn load_rejects_duplicate_keys() {
    let mut weights = read_safetensors("tf_efficientnet_tiny.safetensors");
    let first = weights[0].clone();
    weights.push(first.clone());
    let err = Model::load(&spec(TINY), &weights).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("`{}` occurs more than once", first.0)),
        "{err}"
    );
}

#[test]
fn forward_rejects_nhwc_input() {
    let model = Model::zeroed(&spec(TINY)).unwrap();
    let err = model
        .forward(&read_npy("input_preprocessed.npy"))
        .unwrap_err();
    assert!(matches!(err, TorchError::Input { .. }), "{err}");
    assert!(err.to_string().contains("[2, 64, 64, 3]"), "{err}");
}

/// Deterministic pseudo-random numbers in [-1, 1) (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        (bits as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// Random weights scaled so activations stay finite: He-like conv/linear weights, BN close to
/// identity with positive variances.
fn random_weights(spec: &Network, seed: u64) -> StateDict {
    let mut rng = Rng(seed);
    spec.params()
        .into_iter()
        .map(|p| {
            let n = p.numel() as usize;
            let fan_in: usize = p.shape.iter().skip(1).product::<usize>().max(1);
            let scale = (3.0 / fan_in as f32).sqrt();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    let u = rng.next();
                    match (p.shape.len(), p.name.rsplit('.').next()) {
                        (1, Some("running_var")) => 1.0 + 0.5 * u.abs(),
                        (1, Some("weight")) => 1.0 + 0.1 * u,
                        (1, _) => 0.1 * u,
                        _ => scale * u,
                    }
                })
                .collect();
            let t = Tensor::from_f32(p.shape.clone(), &values).unwrap();
            (p.name, t)
        })
        .collect()
}

#[test]
fn b0_with_random_weights_gives_1000_logits_at_224() {
    let spec = spec("b0");
    let model = Model::load(&spec, &random_weights(&spec, 7)).unwrap();
    let mut rng = Rng(11);
    let pixels: Vec<f32> = (0..3 * 224 * 224).map(|_| rng.next()).collect();
    let input = Tensor::from_f32(vec![1, 3, 224, 224], &pixels).unwrap();
    let logits = model.forward(&input).unwrap();
    assert_eq!(logits.shape(), &[1, 1000]);
    let values = logits.to_f32().unwrap();
    assert!(values.iter().all(|v| v.is_finite()), "non-finite logits");
    assert!(values.iter().any(|&v| v != values[0]), "constant logits");
}

fn read_safetensors_at(path: &Path) -> StateDict {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let z = to_zoo(&k, &t);
            (k, z)
        })
        .collect()
}

/// The interpreter's new ops (ReLU6, hard-swish and hard-sigmoid, mixed kernels, grouped 1×1,
/// `er` and `cn` blocks, CondConv routing, MobileNetV3's pool-before-head) against timm's own
/// forward pass on a seeded random model of each family, at an odd, non-square input.
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm/safetensors); `make test` runs it"]
fn every_family_reproduces_timms_logits() {
    let python = std::env::var("ZOO_PYTHON").expect("set ZOO_PYTHON");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/timm_reference.py");
    let mut wrong = vec![];
    for name in [
        "tf_efficientnet_lite0",
        "tf_efficientnet_es",
        "tf_efficientnet_cc_b0_4e",
        "tf_mixnet_s",
        "tf_mobilenetv3_large_100",
        "tf_mobilenetv3_small_minimal_100",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(name)
            .arg(dir.path())
            .env("OMP_NUM_THREADS", "1")
            .output()
            .expect("run ZOO_PYTHON");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let net = spec(name);
        let model = Model::load(
            &net,
            &read_safetensors_at(&dir.path().join("weights.safetensors")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let io = read_safetensors_at(&dir.path().join("io.safetensors"));
        let get = |k: &str| io.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let logits = model.forward(&get("input")).unwrap();
        let c = compare_logits(&logits, &get("logits"), DEFAULT_TOLERANCE).unwrap();
        eprintln!("{name}: {c:?}");
        if !c.passed {
            wrong.push(format!("{name}: {c:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
