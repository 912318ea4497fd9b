//! `zoo check-cards PATH... [--json]`: strict schema check of model-index YAML, markdown cards and
//! Hugging Face Hub READMEs (front matter); exit 1 on errors.
use std::path::PathBuf;

use super::Status;
use crate::diagnostic::Severity;

pub(super) fn run(
    paths: &[PathBuf],
    json: bool,
    registry: impl FnOnce() -> anyhow::Result<crate::registry::Registry>,
) -> anyhow::Result<Status> {
    for p in paths {
        if p.is_dir() {
            anyhow::bail!(
                "{} is a directory; check-cards takes card files (`.yml`, `.md`), e.g. {}/*.yml",
                p.display(),
                p.display()
            );
        }
        // Says what is there: missing, unreadable, or a FIFO, socket or device.
        if let Err(e) = crate::fsutil::require_regular_file(p) {
            anyhow::bail!("cannot read {}: {e}", p.display());
        }
    }
    let mut diags = crate::registry::check_cards(paths);
    diags.extend(hub_values(paths, registry));
    crate::diagnostic::sort(&mut diags);
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

/// Hub cards' values compared with the registry (see [`crate::hub::check_against_registry`]).
fn hub_values(
    paths: &[PathBuf],
    registry: impl FnOnce() -> anyhow::Result<crate::registry::Registry>,
) -> Vec<crate::diagnostic::Diagnostic> {
    let hub_cards: Vec<(PathBuf, crate::schema::hf::FrontMatter)> = paths
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            // Only Hub READMEs (markdown with front matter) are read a second time.
            let markdown = crate::card::CardKind::of(p) != crate::card::CardKind::Yaml;
            if !(markdown && matches!(crate::schema::hf::split_front_matter(&text), Ok(Some(_)))) {
                return None;
            }
            let (card, _) = crate::card::Card::parse(p, &text);
            Some((p.clone(), card?.front_matter?))
        })
        .collect();
    if hub_cards.is_empty() {
        return vec![];
    }
    match registry() {
        Ok(registry) => hub_cards
            .iter()
            .flat_map(|(p, f)| crate::hub::check_against_registry(p, f, &registry))
            .collect(),
        Err(e) => hub_cards
            .iter()
            .map(|(p, _)| {
                crate::diagnostic::Diagnostic::new(
                    Severity::Warning,
                    p,
                    crate::diagnostic::Pos::new(1, 1),
                    format!("the registry could not be read, so values were not compared: {e:#}"),
                )
            })
            .collect(),
    }
}
