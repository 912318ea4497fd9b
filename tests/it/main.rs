//! The one integration-test binary (modules per area).
mod bounds;
mod card_scale;
mod cards;
mod convert;
mod convert_cli;
mod docs;
mod eval;
mod export;
mod flops;
mod hf_cards;
mod interrupt;
mod layering;
mod output_paths;
mod pipes;
mod registry;
mod schema_file;
mod tf_fixtures;
mod untrusted_text;
mod validate;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs the built `zoo` binary in the crate root; returns (exit code, stdout, stderr).
pub fn zoo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .current_dir(root())
        .env_remove("ZOO_REGISTRY")
        .output()
        .expect("run the zoo binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the built `zoo` binary in `cwd` with the cache at `cache` and no torch.hub or Hugging
/// Face cache to reuse (`ZOO_OFFLINE`, `ZOO_REGISTRY` and `NO_COLOR` unset); returns (exit
/// code, stdout, stderr).
pub fn zoo_isolated_in(cwd: &Path, cache: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .current_dir(cwd)
        .env("ZOO_CACHE", cache)
        .env("TORCH_HOME", cache.join("no-torch"))
        .env("HF_HOME", cache.join("no-hf"))
        .env_remove("ZOO_OFFLINE")
        .env_remove("ZOO_REGISTRY")
        .env_remove("NO_COLOR")
        .output()
        .expect("run zoo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `tests/python/<script> ARGS…` with `$ZOO_PYTHON` (a python with torch, timm, Pillow
/// and huggingface_hub, as `scripts/setup.sh` makes it); returns its stdout and stderr, and
/// panics with them when it fails.
pub fn python_script<A: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: impl IntoIterator<Item = A>,
) -> String {
    let python = std::env::var("ZOO_PYTHON")
        .expect("set ZOO_PYTHON to a python with torch, timm, Pillow and huggingface_hub");
    let out = Command::new(python)
        .arg(root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run ZOO_PYTHON");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

/// Copies a directory tree (a registry or a project) for a test to edit.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
