//! The zoo side of the differential fuzzers (`tests/python/diff_fuzz.py`): reads requests
//! `pth <path>` or `tar <path>` from stdin, one per line, and answers each with one JSON line
//! on stdout (see `tests/support/digest.rs`). A panic is answered `{"panic": "<message>"}`
//! and the process goes on, so the driver can record it and continue.
//!
//! `cargo run --release -p zoo-converters --example zoo_digest`
use std::io::{BufRead, Write};
use std::path::Path;

#[path = "../tests/support/digest.rs"]
mod digest;

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (kind, path) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let path = Path::new(path);
        let answer = std::panic::catch_unwind(|| match kind {
            "pth" => digest::pth(path),
            "tar" => digest::tar(path),
            other => {
                serde_json::json!({"ok": false, "error": format!("unknown request {other:?}")})
            }
        })
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            serde_json::json!({"panic": msg})
        });
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
