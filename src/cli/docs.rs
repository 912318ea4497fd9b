//! `zoo docs [--check] [--out DIR] [--format pwc,hf]`: regenerate the model cards (Papers-with-Code
//! collection cards and Hugging Face Hub model cards) and schemas, or check them.
//!
//! The registry is found by the rule every command follows (`--registry`, `ZOO_REGISTRY`, then
//! `registry/` in the working directory or a parent), and must be on disk, not the embedded
//! copy, so an edited registry is rendered without rebuilding. Cards go to `<registry>/cards/`,
//! schemas to `<registry>/../schemas/`; with `--out DIR`, to `DIR/cards/` and `DIR/schemas/`.
//!
//! While the registry fails its own checks (`zoo validate`'s checks that need no weights), zoo
//! does not advise regenerating the cards: that would publish the errors.
use std::path::{Path, PathBuf};

use clap::Args;

use super::Status;
use crate::docs;

/// Options of `zoo docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Compare the committed files with freshly generated ones; exit 1 with a diff if stale.
    #[arg(long, conflicts_with = "out")]
    check: bool,
    /// Write into DIR (`DIR/cards/*.md`, `DIR/schemas/*.json`) instead of the registry's own
    /// places: `<registry>/cards/` and the schemas in `<registry>/../schemas/` (the project
    /// root beside the registry directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Card formats to write: Papers-with-Code collection cards (`cards/<slug>.md`) and Hugging
    /// Face Hub model cards (`cards/hf/<name>/README.md`). `--check` always checks both.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "pwc,hf",
        conflicts_with = "check"
    )]
    format: Vec<docs::CardFormat>,
}

pub(super) fn run(args: DocsArgs, registry_dir: Option<&Path>) -> anyhow::Result<Status> {
    let location = super::locate_registry(registry_dir)?;
    let Some(dir) = location.dir() else {
        anyhow::bail!(
            "zoo docs works on a registry on disk, and there is no registry/{} in {} or its \
             parents; run it inside a checkout or pass --registry DIR",
            crate::registry::ROOT_FILE,
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| ".".into())
        );
    };
    let registry = super::load_registry(&Some(dir.to_path_buf()))?;
    let failing = crate::validate::failing_checks(&registry);
    let fix = match registry_dir {
        Some(d) => format!("zoo --registry {} docs", d.display()),
        None => "zoo docs".to_string(),
    };
    if args.check {
        let stale = docs::check(&registry, dir)?;
        for s in &stale {
            out!("{}", s.diff);
        }
        if stale.is_empty() {
            eprintln!("docs: cards and schemas are up to date");
            return Ok(Status::Ok);
        }
        for s in &stale {
            eprintln!("stale: {}", s.path.display());
        }
        if failing.is_empty() {
            eprintln!("{} generated file(s) are stale; run `{fix}`", stale.len());
        } else {
            report_failing(&failing);
            eprintln!(
                "{} generated file(s) are stale, and the registry fails {} of its own checks: \
                 fix those first (`zoo validate` lists them); regenerating the cards now would \
                 publish the errors",
                stale.len(),
                failing.len()
            );
        }
        return Ok(Status::Failed);
    }
    if !failing.is_empty() {
        report_failing(&failing);
        eprintln!(
            "warning: the registry fails {} of its own checks; the cards written now carry \
             those values (`zoo validate` lists them)",
            failing.len()
        );
    }
    let (cards_root, schemas_root) = match &args.out {
        Some(out) => (out.clone(), out.clone()),
        None => (dir.to_path_buf(), docs::project_root(dir)),
    };
    let cards = docs::render(&registry, &args.format)?;
    for orphan in docs::orphan_cards(&cards, &cards_root, &args.format)? {
        std::fs::remove_file(&orphan)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", orphan.display()))?;
        eprintln!(
            "removed {} (a card zoo docs generated earlier; nothing generates it now)",
            orphan.display()
        );
    }
    let mut files: Vec<(PathBuf, String)> = cards
        .into_iter()
        .map(|c| (cards_root.join(c.path), c.text))
        .collect();
    files.extend(
        docs::schema_files()
            .into_iter()
            .map(|(rel, text)| (schemas_root.join(rel), text)),
    );
    for (path, text) in &files {
        if std::fs::read_to_string(path).is_ok_and(|t| t == *text) {
            eprintln!("unchanged {}", path.display());
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        crate::fsutil::write_atomic(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(Status::Ok)
}

/// The first few failed checks, one line each.
fn report_failing(failing: &[crate::report::CheckResult]) {
    const SHOWN: usize = 5;
    for r in failing.iter().take(SHOWN) {
        let at = r
            .location
            .as_deref()
            .map_or(String::new(), |l| format!("{l}: "));
        let first = r.detail.lines().next().unwrap_or("");
        eprintln!("failed: {at}{} {}: {first}", r.model, r.check.as_str());
    }
    if failing.len() > SHOWN {
        eprintln!("failed: … and {} more", failing.len() - SHOWN);
    }
}
