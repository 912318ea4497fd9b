//! An interrupted `zoo convert` of a `.tar.gz` leaves nothing behind: SIGINT/SIGTERM clean up at
//! once, and the leftovers of a SIGKILLed run are removed by the next run.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{fixture, root};

const TINY: &str = "efficientnet:width=0.05,depth=0.5,classes=10";

/// Milliseconds per tensor: the fixture's 197 tensors then take seconds to convert, so a
/// signal sent once the staging directory exists always lands mid-conversion.
const DELAY_MS: &str = "30";

/// `zoo convert` of the fixture tarball with `$TMPDIR` = `tmp`, in the background.
fn start(tmp: &Path, out: &Path, delay: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
    cmd.args(["convert", "--from"])
        .arg(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz"))
        .args(["--arch", TINY, "--out"])
        .arg(out)
        .current_dir(root())
        .env("TMPDIR", tmp)
        .env_remove(zoo::cli::convert::TENSOR_DELAY_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ms) = delay {
        cmd.env(zoo::cli::convert::TENSOR_DELAY_ENV, ms);
    }
    cmd.spawn().expect("start zoo")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Waits until `dir` holds an entry starting with `prefix`; panics after a minute.
fn wait_for(dir: &Path, prefix: &str) -> PathBuf {
    let start = Instant::now();
    loop {
        if let Some(name) = entries(dir).into_iter().find(|n| n.starts_with(prefix)) {
            return dir.join(name);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {prefix}* in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Starts a slowed conversion, waits until it is staging, and sends `signal`; returns its exit
/// code and stderr, with `tmp` and `out` as it left them.
fn interrupt(tmp: &Path, out: &Path, signal: &str) -> (Option<i32>, String) {
    let child = start(tmp, out, Some(DELAY_MS));
    let staging = wait_for(out, ".zoo-convert-");
    let pid = child.id();
    assert!(
        staging
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!(".zoo-convert-{pid}-")),
        "{staging:?}"
    );
    wait_for(tmp, &format!("zoo-extract-{pid}-"));
    // the staging directory is complete: its owner file exists (and is locked)
    wait_for(&staging, ".zoo-owner");
    send(&child, signal);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn sigint_during_a_tarball_conversion_removes_the_extraction_and_the_staging() {
    let test = tempfile::tempdir().unwrap();
    let tmp = test.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // an output directory the run creates (two levels), to be removed again
    let out = test.path().join("out/models");
    let (code, err) = interrupt(&tmp, &out, "INT");
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("zoo: interrupted (SIGINT)"), "{err}");
    assert!(err.contains("zoo-extract-"), "{err}");
    assert_eq!(entries(&tmp), Vec::<String>::new(), "$TMPDIR is clean");
    assert!(!test.path().join("out").exists(), "{err}");
}

#[test]
fn sigterm_during_a_tarball_conversion_cleans_up_and_keeps_what_was_there() {
    let test = tempfile::tempdir().unwrap();
    let tmp = test.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = test.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("earlier.pth"), b"kept").unwrap();
    let (code, err) = interrupt(&tmp, &out, "TERM");
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("zoo: interrupted (SIGTERM)"), "{err}");
    assert_eq!(entries(&tmp), Vec::<String>::new(), "$TMPDIR is clean");
    assert_eq!(entries(&out), ["earlier.pth"]);
}

#[test]
fn the_next_run_removes_what_a_killed_conversion_left() {
    let test = tempfile::tempdir().unwrap();
    let tmp = test.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = test.path().join("out");
    let (code, _) = interrupt(&tmp, &out, "KILL");
    assert_eq!(code, None, "ended by SIGKILL");
    // SIGKILL cannot be handled: the extraction and the staging directory are left
    let extracted = entries(&tmp);
    let staged = entries(&out);
    assert_eq!(extracted.len(), 1, "{extracted:?}");
    assert!(extracted[0].starts_with("zoo-extract-"), "{extracted:?}");
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert!(staged[0].starts_with(".zoo-convert-"), "{staged:?}");

    let output = start(&tmp, &out, None).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    for left in [tmp.join(&extracted[0]), out.join(&staged[0])] {
        assert!(
            err.contains(&format!("removed {} (", left.display())),
            "{left:?}: {err}"
        );
    }
    assert_eq!(entries(&tmp), Vec::<String>::new());
    let written = entries(&out);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written.iter().all(|n| n.starts_with("efficientnet-tiny-")));
}

/// `zoo export` builds its folder in a scratch directory beside `DIR`: an interrupted export
/// leaves neither the folder, nor the scratch, nor the tarball's extraction, nor the parent
/// directories it made.
#[test]
fn sigint_during_an_export_leaves_no_folder_and_no_scratch() {
    let test = tempfile::tempdir().unwrap();
    let tmp = test.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let parent = test.path().join("hub/models");
    let dir = parent.join("efficientnet_tiny.tf_fixture");
    let child = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args([
            "--registry",
            "tests/fixtures/registry-tiny",
            "export",
            "tiny",
            "--from",
        ])
        .arg(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz"))
        .arg("--hf")
        .arg(&dir)
        .current_dir(root())
        .env("TMPDIR", &tmp)
        .env(zoo::cli::convert::TENSOR_DELAY_ENV, DELAY_MS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zoo");
    let scratch = wait_for(&parent, ".zoo-export-");
    wait_for(&scratch, ".zoo-owner");
    wait_for(&tmp, &format!("zoo-extract-{}-", child.id()));
    send(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert_eq!(entries(&tmp), Vec::<String>::new(), "$TMPDIR is clean");
    assert!(!test.path().join("hub").exists(), "{err}");
}

/// A signal at any moment of a conversion whose inference check runs libtorch ends the run with
/// 128 + the signal (or, before zoo's handler is installed, by the signal itself), or (when the
/// run finished first) 0 without an "interrupted" line: never a
/// crash (the process used to run C++ static destructors under libtorch's threads: SIGSEGV) and
/// never an "interrupted" run that exits 0.
#[cfg(feature = "torch")]
#[test]
fn a_signal_at_any_moment_of_an_inference_check_ends_with_its_status() {
    let dir = fixture("efficientnet-tiny");
    for (i, after_ms) in [0u64, 60, 150, 300, 500, 800, 1200, 1700, 2300, 3000]
        .iter()
        .enumerate()
    {
        let test = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(["convert", "--from"])
            .arg(dir.join("efficientnet-tiny.tar.gz"))
            .args(["--arch", TINY, "--out"])
            .arg(test.path().join("out"))
            .arg("--reference-input")
            .arg(dir.join("input_preprocessed_nchw.npy"))
            .arg("--reference-logits")
            .arg(dir.join("logits.npy"))
            .current_dir(root())
            .env("TMPDIR", test.path())
            .env_remove(zoo::cli::convert::TENSOR_DELAY_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zoo");
        std::thread::sleep(Duration::from_millis(*after_ms));
        let signal = if i % 2 == 0 { "INT" } else { "TERM" };
        // The run may be over already; kill's status does not matter then.
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let output = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        let interrupted = err.contains("zoo: interrupted");
        let number = if signal == "INT" { 2 } else { 15 };
        use std::os::unix::process::ExitStatusExt;
        match (code, output.status.signal()) {
            (Some(0), _) => assert!(!interrupted, "after {after_ms} ms: exit 0 but {err}"),
            (Some(c), _) if c == 128 + number => {
                assert!(interrupted, "after {after_ms} ms: {err}")
            }
            // Before zoo installs its handler, the signal's default action.
            (None, Some(s)) if s == number => {}
            _ => panic!(
                "after {after_ms} ms, SIG{signal}: {:?}\n{err}",
                output.status
            ),
        }
    }
}
