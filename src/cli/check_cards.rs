//! `zoo check-cards PATH... [--json]`: strict schema check; exit 1 on errors.
use std::path::PathBuf;

use super::Status;
use crate::diagnostic::Severity;

pub(super) fn run(paths: &[PathBuf], json: bool) -> anyhow::Result<Status> {
    for p in paths {
        if p.is_dir() {
            anyhow::bail!(
                "{} is a directory; check-cards takes card files (`.yml`, `.md`), e.g. {}/*.yml",
                p.display(),
                p.display()
            );
        }
        if !p.is_file() {
            anyhow::bail!("cannot read {}: no such file", p.display());
        }
    }
    let diags = crate::registry::check_cards(paths);
    let count = |s| diags.iter().filter(|d| d.severity == s).count();
    let errors = count(Severity::Error);
    if json {
        outln!("{}", serde_json::to_string_pretty(&diags)?);
    } else {
        for d in &diags {
            outln!("{d}");
        }
        eprintln!(
            "checked {} file(s): {errors} error(s), {} warning(s), {} info",
            paths.len(),
            count(Severity::Warning),
            count(Severity::Info)
        );
    }
    Ok(if errors > 0 {
        Status::Failed
    } else {
        Status::Ok
    })
}
