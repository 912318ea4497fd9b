//! Out-of-range numbers from cards and the command line are typed errors, never a panic, an
//! overflow or an unbounded allocation (issue 14: M5 and L10).
use std::path::Path;

use crate::{copy_dir, fixture, root, zoo};

/// Runs zoo in the crate root with an isolated cache; returns (exit code, stdout, stderr).
fn zoo_isolated(cache: &Path, args: &[&str]) -> (i32, String, String) {
    crate::zoo_isolated_in(root(), cache, args)
}

/// M5: each extreme architecture value is refused by the spec parser, naming the key, the value
/// as given and the bound (before: overflow panics, or gigabytes allocated for `depth=1e12`).
#[test]
fn flops_refuses_extreme_architecture_values_naming_the_bound() {
    let cases = [
        (
            "width=1e300,depth=1,classes=10",
            "width = 1e300",
            "0 < width <= 16",
        ),
        (
            "width=17,depth=1,classes=10",
            "width = 17",
            "0 < width <= 16",
        ),
        (
            "width=1,depth=1e300,classes=10",
            "depth = 1e300",
            "0 < depth <= 16",
        ),
        (
            "width=1,depth=1e12,classes=10",
            "depth = 1e12",
            "0 < depth <= 16",
        ),
        (
            "width=1,depth=100000,classes=10",
            "depth = 100000",
            "0 < depth <= 16",
        ),
        (
            "width=1,depth=1,classes=18446744073709551615",
            "classes = 18446744073709551615",
            "1 <= classes <= 1000000",
        ),
        (
            "width=1,depth=1,classes=99999999999999999999999",
            "classes = 99999999999999999999999",
            "1 <= classes <= 1000000",
        ),
        (
            "width=1,depth=1,classes=1000001",
            "classes = 1000001",
            "1 <= classes <= 1000000",
        ),
        (
            "width=1,depth=1,in-chans=100000",
            "in-chans = 100000",
            "1 <= in-chans <= 64",
        ),
        (
            "width=1,depth=1,stem=1000000",
            "stem = 1000000",
            "1 <= stem <= 4096",
        ),
        (
            "width=1,depth=1,head=1000000",
            "head = 1000000",
            "1 <= head <= 16384",
        ),
        ("width=1,depth=1,bn-eps=5", "bn-eps = 5", "0 < bn-eps <= 1"),
    ];
    for (overrides, what, bound) in cases {
        let arch = format!("efficientnet:{overrides}");
        for command in ["flops", "arch"] {
            let (code, out, err) = zoo(&[command, &arch]);
            assert_eq!(code, 2, "{command} {arch}: {out}{err}");
            assert!(err.contains(what), "{command} {arch}: {err}");
            assert!(err.contains(bound), "{command} {arch}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // The bounds themselves are accepted.
    let (code, _, err) = zoo(&["flops", "efficientnet:width=16,depth=16,classes=1000000"]);
    assert_eq!(code, 0, "{err}");
}

/// A copy of the tiny registry whose model has `Architecture: <arch>`.
fn registry_with_arch(dir: &Path, arch: &str) -> std::path::PathBuf {
    let reg = dir.join("reg");
    copy_dir(&fixture("registry-tiny"), &reg);
    let card = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&card).unwrap();
    let line = "    Architecture: efficientnet:width=0.05,depth=0.5,classes=10\n";
    assert!(text.contains(line));
    std::fs::write(
        &card,
        text.replace(line, &format!("    Architecture: {arch}\n")),
    )
    .unwrap();
    reg
}

/// M5: `check-cards` resolves `Zoo: Architecture` and reports an invalid one at its line, and
/// `validate`, `show`, `list` and `flops NAME` on such a registry end in an error, not a panic.
#[test]
fn extreme_architecture_in_a_card_is_reported_at_its_line_and_never_panics() {
    for arch in [
        "efficientnet:width=1e300,depth=1,classes=10",
        "efficientnet:width=1,depth=1,classes=18446744073709551615",
        "efficientnet:width=1,depth=1e12,classes=10",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let reg = registry_with_arch(tmp.path(), arch);
        let card = reg.join("tiny.yml").display().to_string();
        let (code, out, err) = zoo(&["check-cards", &card]);
        assert_eq!(code, 1, "{arch}: {out}{err}");
        assert!(
            out.contains(&format!("{card}:15:19: error: `Architecture` `{arch}`")),
            "{arch}: {out}"
        );
        assert!(out.contains("out of range"), "{arch}: {out}");
        let reg_arg = reg.display().to_string();
        for args in [
            vec!["validate", "--offline"],
            vec!["show", "tiny"],
            vec!["list"],
            vec!["flops", "tiny"],
        ] {
            let mut full = vec!["--registry", reg_arg.as_str()];
            full.extend(args.iter().copied());
            let (code, out, err) = zoo_isolated(&tmp.path().join("cache"), &full);
            assert!(code == 1 || code == 2, "{arch} {args:?}: {code} {out}{err}");
            assert!(!err.contains("panicked"), "{arch} {args:?}: {err}");
        }
    }
}

/// L10: `zoo fetch --timeout 1e20` is a usage error (before: `Duration` overflow panic).
#[test]
fn fetch_timeout_out_of_range_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    for t in ["1e20", "inf", "NaN", "0", "-1"] {
        let timeout = format!("--timeout={t}");
        let (code, _, err) = zoo_isolated(
            tmp.path(),
            &["fetch", "--url", "http://127.0.0.1:9/x.bin", &timeout],
        );
        assert_eq!(code, 2, "{t}: {err}");
        assert!(err.contains("--timeout"), "{t}: {err}");
        assert!(!err.contains("panicked"), "{t}: {err}");
    }
}

/// L10: `zoo flops b7 --size 4294967295x4294967295` is a usage error (before: multiply overflow).
#[test]
fn flops_size_out_of_range_is_an_error() {
    for size in [
        "4294967295x4294967295",
        "65537x224",
        "0x224",
        "18446744073709551616x1",
    ] {
        let (code, _, err) = zoo(&["flops", "b7", "--size", size]);
        assert_eq!(code, 2, "{size}: {err}");
        assert!(err.contains("from 1 to 65536"), "{size}: {err}");
    }
    let (code, _, err) = zoo(&["flops", "b7", "--size", "65536x65536", "--per-layer"]);
    assert_eq!(code, 0, "{err}");
}

/// L10: `zoo flops b0 --image-size 18446744073709551615` is a usage error (before: add overflow).
#[test]
fn flops_image_size_out_of_range_is_an_error() {
    for size in ["18446744073709551615", "65537", "0"] {
        let (code, _, err) = zoo(&["flops", "b0", "--image-size", size]);
        assert_eq!(code, 2, "{size}: {err}");
        assert!(err.contains("from 1 to 65536"), "{size}: {err}");
    }
}

/// L10: `--shard 1/18446744073709551615` (before: capacity overflow panic) and `--shard
/// 1/100000000` (before: 53 s of CPU) are usage errors, given before any work.
#[test]
fn validate_shard_count_out_of_range_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    for shard in [
        "1/18446744073709551615",
        "1/100000000",
        "1/1025",
        "0/4",
        "5/4",
        "1/0",
    ] {
        let (code, out, err) =
            zoo_isolated(tmp.path(), &["validate", "--offline", "--shard", shard]);
        assert_eq!(code, 2, "{shard}: {out}{err}");
        assert!(err.contains("--shard"), "{shard}: {err}");
        assert!(out.is_empty(), "{shard}: {out}");
    }
    let (code, _, err) = zoo_isolated(tmp.path(), &["validate", "--offline", "--shard", "1/1024"]);
    assert!(code == 0 || code == 1, "{err}");
}

/// M5: `Zoo: Input: Image Size` is bounded in the schema, at its line.
#[test]
fn card_image_size_out_of_range_is_reported_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("reg");
    copy_dir(&fixture("registry-tiny"), &reg);
    let card = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&card).unwrap();
    let line = "      Image Size: 64\n";
    assert!(text.contains(line));
    std::fs::write(&card, text.replace(line, "      Image Size: 65537\n")).unwrap();
    let path = card.display().to_string();
    let (code, out, err) = zoo(&["check-cards", &path]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "{path}:18:19: error: `Image Size` must be from 1 to 65536"
        )),
        "{out}"
    );
}
