//! `zoo convert` on the inputs a new user gives it: a checkpoint directory, a wrong `--arch`,
//! a registry model with a local file, flags that do not apply.
use std::path::Path;

use crate::{fixture, zoo};

const TINY: &str = "efficientnet:width=0.05,depth=0.5,classes=10";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn report(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Copies the fixture checkpoint (`model.ckpt.{index,data-…}`) into `dir`, named `prefix`.
fn copy_checkpoint(dir: &Path, prefix: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(fixture("efficientnet-tiny/ckpt")).unwrap() {
        let e = e.unwrap();
        let name = e
            .file_name()
            .to_string_lossy()
            .replace("model.ckpt", prefix);
        std::fs::copy(e.path(), dir.join(name)).unwrap();
    }
}

#[test]
fn convert_from_a_directory_with_one_checkpoint_converts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("efficientnet-tiny/ckpt");
    let (code, out, err) = zoo(&[
        "convert",
        "--from",
        path(&dir),
        "--arch",
        TINY,
        "--out",
        path(&tmp.path().join("dir")),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let by_dir = report(&out);
    let (code, out, err) = zoo(&[
        "convert",
        "--from",
        path(&dir.join("model.ckpt")),
        "--arch",
        TINY,
        "--out",
        path(&tmp.path().join("prefix")),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let by_prefix = report(&out);
    assert_eq!(by_dir["fingerprint"], by_prefix["fingerprint"]);
    assert_eq!(by_dir["source_format"], "tf-bundle");
    // the source is identified by its `.index`, as for a prefix
    let index_sha = zoo::fetch::sha256_file(&dir.join("model.ckpt.index"))
        .unwrap()
        .0;
    assert_eq!(by_dir["source_sha256"], index_sha.as_str());
    assert_eq!(by_prefix["source_sha256"], index_sha.as_str());
    assert_eq!(by_dir["outputs"].as_array().unwrap().len(), 2);
}

#[test]
fn convert_from_a_directory_with_two_checkpoints_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("two");
    copy_checkpoint(&dir, "model.ckpt-100");
    copy_checkpoint(&dir, "model.ckpt-200");
    let out = tmp.path().join("out");
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        path(&dir),
        "--arch",
        TINY,
        "--out",
        path(&out),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("2 TensorFlow checkpoints in this directory"),
        "{err}"
    );
    assert!(err.contains("model.ckpt-100.index"), "{err}");
    assert!(err.contains("model.ckpt-200.index"), "{err}");
    // The error, then the hint in convert's own flag.
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.lines()
            .nth(1)
            .unwrap()
            .starts_with("hint: give one as --from "),
        "{err}"
    );
    assert!(!out.exists(), "nothing is created for a refused source");

    // fingerprint takes the checkpoint as FILE, not --from: its hint says so.
    let (code, _, err) = zoo(&["fingerprint", path(&dir), "--arch", TINY]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("2 TensorFlow checkpoints in this directory"),
        "{err}"
    );
    assert!(!err.contains("--from"), "{err}");
    assert!(
        err.contains("hint: give `zoo fingerprint` one by its prefix as FILE, e.g. "),
        "{err}"
    );

    match zoo::checkpoint::detect(&dir) {
        Err(zoo::checkpoint::CheckpointError::SeveralCheckpoints { indexes, .. }) => {
            assert_eq!(
                indexes,
                [
                    dir.join("model.ckpt-100.index"),
                    dir.join("model.ckpt-200.index")
                ]
            )
        }
        other => panic!("{other:?}"),
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        zoo::checkpoint::detect(&empty),
        Err(zoo::checkpoint::CheckpointError::NoCheckpointInDir { .. })
    ));
}

#[test]
fn a_wrong_arch_is_reported_in_a_few_lines_with_the_arch_that_fits() {
    let tmp = tempfile::tempdir().unwrap();
    for source in ["efficientnet-tiny.tar.gz", "tf_efficientnet_tiny.pth"] {
        let source = fixture(&format!("efficientnet-tiny/{source}"));
        let out = tmp.path().join("out");
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            "b0",
            "--out",
            path(&out),
        ]);
        assert_eq!(code, 2, "{err}");
        let lines = err.lines().count();
        assert!(lines <= 15, "{lines} lines:\n{err}");
        assert!(
            err.contains("311 "),
            "the count of every problem is kept: {err}"
        );
        assert!(err.contains("… and 301 more"), "{err}");
        assert!(
            err.contains("the checkpoint has a stem of 8 channels, 10 blocks, a head of 64 channels, 10 classes; `tf_efficientnet_b0` has a stem of 32 channels, 16 blocks, a head of 1280 channels, 1000 classes"),
            "{err}"
        );
        assert!(
            err.contains(&format!("the checkpoint fits --arch {TINY}")),
            "{err}"
        );
        assert!(!out.exists());
        // and the suggestion works
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            TINY,
            "--out",
            path(&out),
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// The diagnosis follows each family's own rules (MixNet's and MobileNetV3's unscaled head, a
/// narrow MobileNetV3's unscaled stem) and reads TF-slim's names; the architecture it suggests
/// converts.
#[test]
fn a_wrong_arch_of_another_family_gets_the_arch_that_fits() {
    let tmp = tempfile::tempdir().unwrap();
    for (fixture_dir, requested, outline) in [
        (
            "mixnet-tiny",
            "tf_mixnet_s",
            "a stem of 8 channels, 16 blocks, a head of 128 channels, 10 classes",
        ),
        (
            "mobilenetv3-tiny",
            "tf_mobilenetv3_large_100",
            "a stem of 8 channels, 16 blocks, a head of 64 channels, 10 classes",
        ),
        (
            "mobilenetv3-small-tiny",
            "tf_mobilenetv3_small_100",
            "a stem of 8 channels, 12 blocks, a head of 48 channels, 10 classes",
        ),
        (
            "efficientnet-edgetpu-tiny",
            "tf_efficientnet_es",
            "a stem of 8 channels, 7 blocks, a head of 64 channels, 10 classes",
        ),
    ] {
        let source = fixture(&format!("{fixture_dir}/ckpt"));
        let out = tmp.path().join(fixture_dir);
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            requested,
            "--out",
            path(&out),
        ]);
        assert_eq!(code, 2, "{fixture_dir}: {err}");
        assert!(
            err.contains(&format!("the checkpoint has {outline}; `{requested}` has")),
            "{fixture_dir}: {err}"
        );
        let fits = err
            .lines()
            .find_map(|l| l.strip_prefix("hint: the checkpoint fits --arch "))
            .unwrap_or_else(|| panic!("{fixture_dir}: no suggestion in {err}"));
        assert!(!out.exists());
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            fits,
            "--out",
            path(&out),
        ]);
        assert_eq!(code, 0, "{fixture_dir} with --arch {fits}: {err}");
    }
}

/// Without a model name or `--from`, the usage error names both ways to give a checkpoint.
#[test]
fn convert_without_a_checkpoint_names_both_ways_to_give_one() {
    let (code, _, err) = zoo(&["convert"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<NAME|--from <PATH>>"), "{err}");
}

#[test]
fn convert_name_from_path_keeps_the_models_reference_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = fixture("registry-tiny");
    let source = fixture("efficientnet-tiny/efficientnet-tiny.tar.gz");
    let (code, out, err) = zoo(&[
        "--registry",
        path(&registry),
        "convert",
        "tiny",
        "--from",
        path(&source),
        "--out",
        path(tmp.path()),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let inference = &report(&out)["inference"];
    if zoo::torch::available() {
        assert_eq!(inference["status"], "ran", "{inference}");
        assert_eq!(inference["passed"], true, "{inference}");
    } else {
        assert_eq!(
            inference["reason"], "zoo was built without the `torch` feature",
            "the registry's reference vectors were kept: {inference}"
        );
    }
    // without the model name there are none
    let (code, out, err) = zoo(&[
        "convert",
        "--from",
        path(&source),
        "--arch",
        TINY,
        "--out",
        path(tmp.path()),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        report(&out)["inference"]["reason"],
        "no reference vectors for this model"
    );
}

#[test]
fn weights_raw_is_reported_as_ignored_for_a_pth_or_safetensors_source() {
    let tmp = tempfile::tempdir().unwrap();
    for source in [
        "tf_efficientnet_tiny.pth",
        "tf_efficientnet_tiny.safetensors",
    ] {
        let source = fixture(&format!("efficientnet-tiny/{source}"));
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            TINY,
            "--weights",
            "raw",
            "--out",
            path(tmp.path()),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("warning: --weights raw is ignored"),
            "{source:?}: {err}"
        );
    }
    // a TF source uses it, and the default warns about nothing
    for (source, weights) in [
        ("efficientnet-tiny.tar.gz", "raw"),
        ("tf_efficientnet_tiny.pth", "ema"),
    ] {
        let source = fixture(&format!("efficientnet-tiny/{source}"));
        let (code, _, err) = zoo(&[
            "convert",
            "--from",
            path(&source),
            "--arch",
            TINY,
            "--weights",
            weights,
            "--out",
            path(tmp.path()),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("warning"), "{source:?}: {err}");
    }
}
