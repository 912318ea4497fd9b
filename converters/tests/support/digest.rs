//! What zoo reads from a file, as one JSON line: the input of the differential tests against
//! `torch.load(weights_only=True)` and Python's `tarfile` (`tests/python/diff_fuzz.py`).
//! Shared by `examples/zoo_digest.rs` (the long-lived process the fuzz driver talks to) and
//! `tests/differential.rs` (the corpus replay).
//!
//! - `.pth`: `{"ok": true, "dict": "<key path of the chosen tensor dict>", "tensors": [[name,
//!   dtype, shape, sha256 of the bytes], …]}` in file order;
//! - `.tar.gz`: `{"ok": true, "files": [[path, size, sha256], …]}`, the members zoo extracts,
//!   read back from disk;
//! - a refusal: `{"ok": false, "error": "<message>"}`.
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zoo_converters::{pth, tf_bundle, Limits};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The limits of the differential runs: the defaults, with memory sized for small inputs.
pub fn limits() -> Limits {
    Limits {
        max_memory_bytes: 1 << 30,
        ..Limits::default()
    }
}

/// What zoo's `.pth` reader returns for `path`.
pub fn pth(path: &Path) -> Value {
    let mut tensors = Vec::new();
    let read = pth::read_chosen(path, limits(), &mut |name, t| {
        tensors.push(json!([name, t.dtype().name(), t.shape(), sha256(t.data())]));
        Ok(())
    });
    match read {
        Ok(keys) => json!({"ok": true, "dict": keys, "tensors": tensors}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// The files zoo extracts from the tarball at `path`.
pub fn tar(path: &Path) -> Value {
    let dest = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return json!({"ok": false, "error": format!("tempdir: {e}")}),
    };
    match tf_bundle::extract_members(path, dest.path(), limits()) {
        Ok(files) => {
            let files: Vec<Value> = files
                .iter()
                .map(|f| {
                    let bytes = std::fs::read(dest.path().join(&f.path)).unwrap_or_default();
                    json!([f.path, f.size, sha256(&bytes)])
                })
                .collect();
            json!({"ok": true, "files": files})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}
