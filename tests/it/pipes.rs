//! Every subcommand piped into a reader that stops early (`zoo show b0_ns | head -1`): it ends
//! quietly with its own exit code, never with a panic (exit 101).
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{copy_dir, fixture, root};

/// How the reader treats zoo's stdout.
#[derive(Debug, Clone, Copy)]
enum Reader {
    /// Reads one line, then closes the pipe.
    OneLine,
    /// Closes the pipe before zoo writes anything.
    ClosedAtOnce,
}

/// Runs zoo in the crate root with stdout piped into `reader`; returns the exit code and stderr.
fn run_piped(args: &[&str], cache: &Path, reader: Reader) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .current_dir(root())
        .env("ZOO_CACHE", cache)
        .env("TORCH_HOME", cache.join("no-torch"))
        .env("HF_HOME", cache.join("no-hf"))
        .env("RUST_BACKTRACE", "1")
        .env_remove("ZOO_REGISTRY")
        .env_remove("ZOO_OFFLINE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zoo");
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = child.stdout.take().unwrap();
    match reader {
        Reader::OneLine => {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
        }
        Reader::ClosedAtOnce => drop(stdout),
    }
    let status = child.wait().unwrap();
    (status.code(), err.join().unwrap())
}

/// Row 17 of the new-user report, for every subcommand: the reader going away is not an error.
#[test]
fn no_subcommand_panics_when_its_reader_stops_early() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tiny = fixture("efficientnet-tiny");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let pth = path(&tiny.join("tf_efficientnet_tiny.pth"));
    let st = path(&tiny.join("tf_efficientnet_tiny.safetensors"));
    let tarball = path(&tiny.join("efficientnet-tiny.tar.gz"));

    // A registry whose cards are stale, so `docs --check` prints a diff.
    let stale = t.join("stale/registry");
    copy_dir(&root().join("registry"), &stale);
    let f = stale.join("efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replacen("Epochs: 700", "Epochs: 701", 1)).unwrap();
    // A report to merge.
    let report = t.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(["validate", "--offline", "--json"])
        .current_dir(root())
        .env("ZOO_CACHE", t.join("cache"))
        .env_remove("ZOO_REGISTRY")
        .output()
        .unwrap();
    std::fs::write(&report, &out.stdout).unwrap();

    let sha = "f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1";
    let url = format!("file://{tarball}");
    let tiny_registry = path(&fixture("registry-tiny"));
    let stale_registry = path(&stale);
    let report_path = path(&report);
    for (i, reader) in [Reader::OneLine, Reader::ClosedAtOnce]
        .into_iter()
        .enumerate()
    {
        let convert_out = path(&t.join(format!("converted-{i}")));
        let hf_out = path(&t.join(format!("hf-{i}")));
        let cache = t.join(format!("cache-{i}"));
        let cases: Vec<(Vec<&str>, &[i32])> = vec![
            (vec!["--help"], &[0]),
            (vec!["--version"], &[0]),
            (vec!["validate", "--help"], &[0]),
            (vec!["list"], &[0]),
            (vec!["list", "--json"], &[0]),
            (vec!["show", "b0_ns"], &[0]),
            (vec!["show", "b0_ns", "--json"], &[0]),
            (vec!["schema"], &[0]),
            (vec!["flops", "b0"], &[0]),
            (vec!["arch", "b0"], &[0]),
            (vec!["validate", "--offline"], &[0]),
            (vec!["validate", "--offline", "-v"], &[0]),
            (vec!["validate", "--offline", "--json"], &[0]),
            (vec!["report", "merge", &report_path], &[0]),
            (
                vec!["check-cards", "tests/fixtures/cards/bad/errors.yml"],
                &[1],
            ),
            (vec!["--registry", &stale_registry, "docs", "--check"], &[1]),
            (vec!["hash", "Cargo.toml", "Cargo.lock"], &[0]),
            (vec!["fingerprint", &pth, &st], &[0]),
            (vec!["diff", &pth, &st], &[0]),
            (
                vec![
                    "convert",
                    "--from",
                    &tarball,
                    "--arch",
                    "efficientnet:width=0.05,depth=0.5,classes=10",
                    "--out",
                    &convert_out,
                ],
                &[0],
            ),
            (vec!["fetch", "--url", &url, "--sha256", sha], &[0]),
            (
                vec![
                    "--registry",
                    &tiny_registry,
                    "export",
                    "tiny",
                    "--from",
                    &tarball,
                    "--hf",
                    &hf_out,
                ],
                &[0],
            ),
        ];
        for (args, codes) in cases {
            let (code, err) = run_piped(&args, &cache, reader);
            assert!(
                !err.contains("panicked"),
                "zoo {args:?} ({reader:?}) panicked:\n{err}"
            );
            assert_ne!(code, Some(101), "zoo {args:?} ({reader:?}):\n{err}");
            assert!(
                code.is_some_and(|c| codes.contains(&c)),
                "zoo {args:?} ({reader:?}) exited {code:?}, expected one of {codes:?}:\n{err}"
            );
        }
    }
}
