//! `zoo report merge`: shard reports of `zoo validate` or `zoo eval` into one.
use std::path::PathBuf;

use anyhow::{bail, Context};

use super::validate::{emit, Hints, Output};
use super::Status;
use crate::report::Report;

/// Arguments of `zoo report`.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Merge shard reports (`zoo validate --shard K/N --json` outputs, or `zoo eval --shard K/N
    /// --report FILE` files) into one; every shard 1/N … N/N must be given exactly once.
    Merge {
        /// The JSON reports (eval reports may be gzip-compressed).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Print the merged report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// A skipped check fails the merged run (also when the shards ran with `--strict`).
        #[arg(long)]
        strict: bool,
        /// With --strict: skips of this check do not fail the merged run (repeatable); a skip
        /// the shards' own `--allow-skip` all accepted is accepted too.
        #[arg(
            long = "allow-skip",
            value_name = "CHECK",
            requires = "strict",
            value_delimiter = ','
        )]
        allow_skips: Vec<crate::report::CheckKind>,
        /// Show every check's detail, passes included.
        #[arg(short, long)]
        verbose: bool,
    },
}

/// Runs `zoo report …`.
pub fn run(cmd: ReportCommand) -> anyhow::Result<Status> {
    match cmd {
        ReportCommand::Merge {
            reports,
            json,
            junit,
            strict,
            allow_skips,
            verbose,
        } => {
            let mut parsed = vec![];
            let mut evals = vec![];
            for p in &reports {
                if let Some(file) = crate::eval::report_file::read(p)? {
                    evals.push((p.clone(), file));
                    continue;
                }
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let r: Report = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not a `zoo validate --json` report of zoo {}",
                        p.display(),
                        env!("CARGO_PKG_VERSION")
                    )
                })?;
                parsed.push(r);
            }
            if !evals.is_empty() {
                if !parsed.is_empty() {
                    bail!("zoo report merge: give either `zoo eval --report` files or `zoo validate --json` reports, not both");
                }
                return merge_eval(evals, json);
            }
            // A merge that cannot stand for the whole run (a shard missing or repeated, shards
            // of different runs) is a failed verdict, exit 1, not a usage error.
            let mut merged = match Report::merge(parsed) {
                Ok(m) => m,
                Err(e) => {
                    let names: Vec<String> =
                        reports.iter().map(|p| p.display().to_string()).collect();
                    eprintln!("error: merging {}: {e}", names.join(", "));
                    return Ok(Status::Failed);
                }
            };
            merged.strict |= strict;
            merged.allowed_skips.extend(allow_skips);
            merged.allowed_skips.sort();
            merged.allowed_skips.dedup();
            let out = Output {
                json,
                junit: junit.as_deref(),
                verbose,
            };
            let context = Hints {
                registry: None,
                found: false,
                docs_fix: "zoo docs".to_string(),
            };
            emit(&merged, &out, &context)
        }
    }
}

/// Merges `zoo eval --shard K/N --report` files, model by model, and prints the merged results
/// as `zoo eval` would. A shard missing, repeated or from another run fails (exit 1) naming it.
fn merge_eval(
    files: Vec<(PathBuf, crate::eval::report_file::EvalFile)>,
    json: bool,
) -> anyhow::Result<Status> {
    use crate::eval::model::{merge_shards, EvalReport};
    let mut by_model: std::collections::BTreeMap<String, Vec<EvalReport>> = Default::default();
    for (_, f) in &files {
        for r in &f.reports {
            by_model.entry(r.model.clone()).or_default().push(r.clone());
        }
    }
    let mut merged = Vec::new();
    for (_, reports) in by_model {
        match merge_shards(reports) {
            Ok(m) => merged.push(m),
            Err(e) => {
                let names: Vec<String> =
                    files.iter().map(|(p, _)| p.display().to_string()).collect();
                eprintln!("error: merging {}: {e}", names.join(", "));
                return Ok(Status::Failed);
            }
        }
    }
    super::eval::print_reports(&merged, json, false)
}
