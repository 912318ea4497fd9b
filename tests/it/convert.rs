//! `zoo convert`, `zoo fingerprint` and `zoo diff` on the real TF fixture (issues 5 and 8).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_converters::tf_bundle::{Bundle, BundleWriter};
use zoo_converters::Tensor;

use crate::{fixture, zoo};

const TINY: &str = "efficientnet:width=0.05,depth=0.5,classes=10";

fn tiny(rel: &str) -> String {
    fixture(&format!("efficientnet-tiny/{rel}"))
        .display()
        .to_string()
}

fn outputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    let sd = if path.extension().is_some_and(|e| e == "safetensors") {
        zoo_converters::safetensors::read(path).unwrap().0
    } else {
        zoo_converters::pth::read(path).unwrap()
    };
    sd.into_iter().collect()
}

fn convert(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    convert_tiny(Path::new(&tiny("efficientnet-tiny.tar.gz")), dir, extra)
}

/// Issue 5: TF tarball → .pth and .safetensors equal to timm's conversion, key for key, and
/// converting twice gives identical bytes.
#[test]
fn tarball_converts_to_timm_tensors_deterministically() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (code, out, err) = convert(a.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = convert(b.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let files = outputs(a.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let want = tensors(&fixture(
        "efficientnet-tiny/tf_efficientnet_tiny.safetensors",
    ));
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // timm's naming: <name>-<first 8 hex of sha256>.<ext>
        let sha = zoo::fetch::sha256_file(f).unwrap().0;
        assert!(
            name.starts_with(&format!("efficientnet-tiny-{}", &sha[..8])),
            "{name}"
        );
        assert_eq!(tensors(f), want, "{name}");
        assert_eq!(
            std::fs::read(f).unwrap(),
            std::fs::read(b.path().join(&name)).unwrap(),
            "{name}"
        );
    }
    let st = files
        .iter()
        .find(|f| f.extension().unwrap() == "safetensors")
        .unwrap();
    let (_, meta) = zoo_converters::safetensors::read(st).unwrap();
    assert_eq!(meta["zoo.weights"], "ema");
    assert_eq!(
        meta["zoo.mapping"],
        zoo::convert::tf_efficientnet::MAPPING_VERSION
    );
    assert_eq!(
        meta["zoo.source_sha256"],
        "f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"
    );
    assert_eq!(meta["zoo.version"], env!("CARGO_PKG_VERSION"));
    assert!(meta.contains_key("zoo.fingerprint"));
}

/// Writes a copy of the fixture bundle with `edit` applied to each (name, tensor).
fn edited_bundle(dir: &Path, edit: impl Fn(&str, Tensor) -> Option<Tensor>) -> PathBuf {
    let src = Bundle::open(fixture("efficientnet-tiny/ckpt/model.ckpt")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let prefix = dir.join("model.ckpt");
    let mut w = BundleWriter::create(&prefix).unwrap();
    for e in src.entries() {
        if let Some(t) = edit(&e.name, src.read(&e.name).unwrap()) {
            w.add(&e.name, &t).unwrap();
        }
    }
    w.finish().unwrap();
    prefix
}

/// `zoo convert --from SOURCE --arch <tiny> --out OUT EXTRA…`.
fn convert_tiny(source: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let (source, out) = (source.display().to_string(), out.display().to_string());
    let mut args = vec!["convert", "--from", &source, "--arch", TINY, "--out", &out];
    args.extend_from_slice(extra);
    zoo(&args)
}

const VICTIM: &str = "efficientnet-b0/blocks_3/conv2d/kernel/ExponentialMovingAverage";

/// Issue 5: a missing or wrong-shape source tensor fails, naming it; nothing is written.
#[test]
fn corrupt_sources_fail_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = edited_bundle(&tmp.path().join("missing"), |n, t| {
        (n != VICTIM).then_some(t)
    });
    let reshaped = edited_bundle(&tmp.path().join("shape"), |n, t| {
        Some(if n == VICTIM {
            let v = t.to_f32().unwrap();
            Tensor::from_f32(vec![1, 1, 48, 8], &v).unwrap()
        } else {
            t
        })
    });
    for (prefix, needle) in [
        (&missing, "blocks.3.0.conv_pw.weight: missing source tensor"),
        (
            &reshaped,
            "has shape [1, 1, 48, 8], the architecture needs [1, 1, 8, 48]",
        ),
    ] {
        let out = tmp.path().join("out");
        let (code, _, err) = convert_tiny(prefix, &out, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(VICTIM.trim_end_matches("/ExponentialMovingAverage")),
            "{err}"
        );
        assert!(err.contains(needle), "{err}");
        // the plan fails before anything is created
        assert!(!out.exists(), "nothing may be written");
    }
    // A flipped data byte is caught by the tensor's crc32c.
    let flipped = tmp.path().join("flip");
    std::fs::create_dir_all(&flipped).unwrap();
    for f in ["model.ckpt.index", "model.ckpt.data-00000-of-00001"] {
        std::fs::copy(fixture("efficientnet-tiny/ckpt").join(f), flipped.join(f)).unwrap();
    }
    let entry = Bundle::open(flipped.join("model.ckpt"))
        .unwrap()
        .entry(VICTIM)
        .unwrap()
        .clone();
    let data = flipped.join("model.ckpt.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[entry.offset as usize + 5] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    // The crc fails while streaming into the staging directory: that, and the output
    // directories it needed, are gone again.
    for out in [tmp.path().join("out2"), tmp.path().join("a/b/out3")] {
        let (code, _, err) = convert_tiny(&flipped.join("model.ckpt"), &out, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(VICTIM) && err.to_lowercase().contains("crc"),
            "{err}"
        );
        assert!(!out.exists(), "nothing may be left in {}", out.display());
    }
    assert!(
        !tmp.path().join("a").exists(),
        "created directories are removed"
    );
}

/// Issue 8: legacy .pth → safetensors bit-identical to timm's file.
#[test]
fn legacy_pth_converts_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = convert_tiny(
        Path::new(&tiny("tf_efficientnet_tiny_legacy.pth")),
        tmp.path(),
        &["--format", "safetensors"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let files = outputs(tmp.path());
    assert_eq!(files.len(), 1);
    assert_eq!(
        tensors(&files[0]),
        tensors(&fixture(
            "efficientnet-tiny/tf_efficientnet_tiny.safetensors"
        ))
    );
}

/// A `.pth` repacked as safetensors records its source, but no TF map or weight set: neither
/// applies to a source already in timm's names.
#[test]
fn a_pth_repack_records_no_tf_mapping() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        &tiny("tf_efficientnet_tiny.pth"),
        "--arch",
        "efficientnet:width=0.05,depth=0.5,classes=10",
        "--format",
        "safetensors",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let st = outputs(tmp.path())
        .into_iter()
        .find(|f| f.extension().unwrap() == "safetensors")
        .unwrap();
    let (_, meta) = zoo_converters::safetensors::read(&st).unwrap();
    assert_eq!(meta["zoo.source"], "tf_efficientnet_tiny.pth");
    assert!(!meta.contains_key("zoo.mapping"), "{meta:?}");
    assert!(!meta.contains_key("zoo.weights"), "{meta:?}");
}

/// Issue 8: fingerprints agree across containers (and with zoo's own conversion); raw differs.
#[test]
fn fingerprints_via_cli() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(convert(tmp.path(), &["--format", "pth"]).0, 0);
    let converted = outputs(tmp.path())[0].display().to_string();
    let (code, out, err) = zoo(&[
        "fingerprint",
        &tiny("tf_efficientnet_tiny_legacy.pth"),
        &tiny("tf_efficientnet_tiny.pth"),
        &tiny("tf_efficientnet_tiny.safetensors"),
        &converted,
        &tiny("tf_efficientnet_tiny_raw.safetensors"),
    ]);
    assert_eq!(code, 0, "{err}");
    let fps: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(fps.len(), 5, "{out}");
    assert!(fps[..4].iter().all(|f| *f == fps[0]), "{out}");
    assert_ne!(fps[4], fps[0], "{out}");
}

/// Issue 8: diff lists every tensor of EMA vs raw; legacy vs zip is identical.
#[test]
fn diff_reports_identical_and_different() {
    let (code, out, _) = zoo(&[
        "diff",
        &tiny("tf_efficientnet_tiny_legacy.pth"),
        &tiny("tf_efficientnet_tiny.pth"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("identical: 197 tensors (197 bit-identical)"),
        "{out}"
    );
    let (code, out, _) = zoo(&[
        "diff",
        "--json",
        &tiny("tf_efficientnet_tiny.safetensors"),
        &tiny("tf_efficientnet_tiny_raw.safetensors"),
    ]);
    assert_eq!(code, 1, "{out}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = d["tensors"].as_array().unwrap();
    assert_eq!(t.len(), 197);
    assert!(t.iter().all(|x| x["max_abs"].as_f64().unwrap() > 0.0));
    let worst: Vec<f64> = t.iter().map(|x| x["max_abs"].as_f64().unwrap()).collect();
    assert!(worst.windows(2).all(|w| w[0] >= w[1]), "sorted worst first");
}

#[cfg(feature = "torch")]
mod inference {
    use super::*;

    fn with_reference(dir: &Path, weights: &str, logits: &str) -> (i32, String, String) {
        let input = tiny("input_preprocessed_nchw.npy");
        let logits = tiny(logits);
        convert(
            dir,
            &[
                "--weights",
                weights,
                "--reference-input",
                &input,
                "--reference-logits",
                &logits,
            ],
        )
    }

    /// Issue 5: the tch forward of the converted weights matches TF's logits within 1e-4.
    #[test]
    fn ema_matches_tf_logits() {
        let tmp = tempfile::tempdir().unwrap();
        let (code, out, err) = with_reference(tmp.path(), "ema", "logits.npy");
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("│ pass"), "{out}");
        assert_eq!(outputs(tmp.path()).len(), 2);
    }

    #[test]
    fn raw_matches_raw_logits() {
        let tmp = tempfile::tempdir().unwrap();
        let (code, out, err) = with_reference(tmp.path(), "raw", "logits_raw.npy");
        assert_eq!(code, 0, "{out}{err}");
    }

    /// EMA weights against the raw reference fail, with an explanation, and write nothing.
    #[test]
    fn wrong_weight_set_fails_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (code, out, _) = with_reference(tmp.path(), "ema", "logits_raw.npy");
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("FAIL") && out.contains("wrong weight set (EMA vs raw)"),
            "{out}"
        );
        assert!(outputs(tmp.path()).is_empty());
    }

    /// Issue 8: the legacy .pth converted through zoo runs to TF's logits.
    #[test]
    fn legacy_pth_runs_to_tf_logits() {
        let tmp = tempfile::tempdir().unwrap();
        let (code, out, err) = convert_tiny(
            Path::new(&tiny("tf_efficientnet_tiny_legacy.pth")),
            tmp.path(),
            &[
                "--format",
                "safetensors",
                "--reference-input",
                &tiny("input_preprocessed_nchw.npy"),
                "--reference-logits",
                &tiny("logits.npy"),
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("│ pass"), "{out}");
    }
}

/// Issue 5: the converted .pth loads with torch.load(weights_only=True) and into timm's
/// EfficientNet with strict=True, and timm's logits match TF's.
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn converted_pth_loads_in_timm_strict() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(convert(tmp.path(), &["--format", "pth"]).0, 0);
    let pth = outputs(tmp.path())[0].clone();
    let text = crate::python_script(
        "check_timm_strict.py",
        [
            pth,
            fixture("efficientnet-tiny/input_preprocessed_nchw.npy"),
            fixture("efficientnet-tiny/logits.npy"),
        ],
    );
    assert!(text.contains("strict=True ok"), "{text}");
}

/// Issue 14 (H2): zoo's own safetensors output is read back by every command whatever the
/// length of the source name it records, in particular when that name puts the header length
/// at 128 mod 256, whose low byte is a pickle PROTO.
#[test]
fn converted_safetensors_of_a_long_source_name_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let convert_named = |prefix_len: usize| {
        let source = tmp.path().join(format!(
            "{}-efficientnet-tiny.tar.gz",
            "a".repeat(prefix_len)
        ));
        std::fs::copy(tiny("efficientnet-tiny.tar.gz"), &source).unwrap();
        let out = tmp.path().join(format!("out{prefix_len}"));
        let (code, _, err) = convert_tiny(&source, &out, &["--name-as", "t"]);
        assert_eq!(code, 0, "{err}");
        outputs(&out)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .unwrap()
    };
    let header_len = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        u64::from_le_bytes(b[..8].try_into().unwrap())
    };
    // the header grows by one byte per name character, padded to a multiple of 8
    let first = header_len(&convert_named(16));
    let st = convert_named(16 + ((128 + 256 - first % 256) % 256) as usize);
    assert_eq!(header_len(&st) % 256, 128);
    let (code, out, err) = zoo(&["fingerprint", &st.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Issue 14 (L11): a tolerance that is NaN, infinite or negative is refused where it is
/// parsed; an infinite one would pass any logits.
#[test]
fn tolerance_must_be_finite_and_non_negative() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["inf", "NaN", "-1", "-0.5", "x"] {
        let arg = format!("--tolerance={bad}");
        let (code, _, err) = convert(tmp.path(), &[&arg]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("tolerance"), "{bad}: {err}");
    }
    assert!(outputs(tmp.path()).is_empty());
}

/// Issue 14: an invalid `ZOO_LIMITS` is a usage error naming the item, not a silent default.
#[test]
fn invalid_zoo_limits_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(["fingerprint", &tiny("tf_efficientnet_tiny.pth")])
        .env("ZOO_LIMITS", "disk-bytes=lots")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ZOO_LIMITS") && err.contains("disk-bytes=lots"),
        "{err}"
    );
    // a valid one applies: too small a tensor limit stops the read, naming it
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(["fingerprint", &tiny("tf_efficientnet_tiny.pth")])
        .env("ZOO_LIMITS", "tensor-bytes=1K")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ZOO_LIMITS=tensor-bytes="), "{err}");
}

/// A reference vector that cannot be read is named once, with what is wrong with it (no
/// "X: X" doubling).
#[test]
fn an_unreadable_reference_vector_is_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("input.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}\n").unwrap();
    let bad_s = bad.to_str().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = crate::zoo(&[
        "convert",
        "--from",
        fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")
            .to_str()
            .unwrap(),
        "--arch",
        "efficientnet:width=0.05,depth=0.5,classes=10",
        "--out",
        out.to_str().unwrap(),
        "--reference-input",
        bad_s,
        "--reference-logits",
        fixture("efficientnet-tiny/logits.npy").to_str().unwrap(),
    ]);
    if cfg!(feature = "torch") {
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.matches(bad_s).count(), 1, "{err}");
        assert!(!out.exists(), "{err}");
    } else {
        // without libtorch the inference check is skipped and the reference is not read
        assert_eq!(code, 0, "{err}");
    }
}
