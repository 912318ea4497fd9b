//! `zoo validate` and `zoo report merge`: one table of every check, JSON/JUnit for CI.
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::Status;
use crate::fetch::Cache;
use crate::registry::Registry;
use crate::report::{shard, CheckKind, Report, Status as CheckStatus};
use crate::validate::{cost, validate, ValidateOptions};

/// Arguments of `zoo validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Model names, aliases or glob patterns; all models if none.
    pub patterns: Vec<String>,
    /// Use only what is cached; never touch the network (also: ZOO_OFFLINE=1).
    #[arg(long, conflicts_with = "fetch")]
    pub offline: bool,
    /// Download missing weights.
    #[arg(long)]
    pub fetch: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Check only shard K of N (1-based), balanced by estimated cost.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}

/// Arguments of `zoo report`.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Merge shard reports (`zoo validate --json` outputs) into one.
    Merge {
        /// The JSON reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Print the merged report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

/// Most shards `--shard K/N` may split a run into (far more than any CI matrix runs).
const MAX_SHARDS: usize = 1024;

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let (k, n) = s.split_once('/').context("--shard takes K/N, e.g. 2/4")?;
    let number = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=MAX_SHARDS).contains(v))
            .with_context(|| format!("--shard {s}: `{v}` is not a number from 1 to {MAX_SHARDS}"))
    };
    let (k, n) = (number(k)?, number(n)?);
    if k > n {
        bail!("--shard {s}: need 1 <= K <= N");
    }
    Ok((k, n))
}

/// Runs `zoo validate`.
pub fn run(args: ValidateArgs, registry_dir: Option<&std::path::Path>) -> anyhow::Result<Status> {
    let registry = Registry::load_keep_errors(registry_dir)?;
    let mut models = registry.select(&args.patterns)?;
    if let Some(s) = &args.shard {
        let (k, n) = parse_shard(s)?;
        let costs: Vec<(&str, f64)> = models.iter().map(|m| (m.name(), cost(m))).collect();
        let mine = shard(&costs, k, n);
        models.retain(|m| mine.contains(&m.name()));
    }
    let opts = ValidateOptions {
        fetch: args.fetch,
        offline: args.offline || super::fetch::offline_from_env(),
    };
    let cache = Cache::from_env().ok();
    let progress = std::io::stderr().is_terminal() && !args.json && models.len() > 1;
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(models.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .expect("static template"),
        );
        b
    });
    let mut results = vec![];
    for m in &models {
        if let Some(b) = &bar {
            b.set_message(m.name().to_owned());
        }
        results.extend(validate(&registry, &[m], &opts, cache.as_ref()).results);
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Registry-wide problems are reported once, by the unsharded run or shard 1.
    if args.shard.as_deref().is_none_or(|s| s.starts_with("1/")) {
        results.extend(validate(&registry, &[], &opts, cache.as_ref()).results);
    }
    let report = Report::new(results);
    emit(&report, args.json, args.junit.as_deref())
}

fn emit(report: &Report, json: bool, junit: Option<&std::path::Path>) -> anyhow::Result<Status> {
    if let Some(path) = junit {
        crate::card::write_atomic(path, &report.to_junit())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_table(report);
    }
    Ok(if report.passed() {
        Status::Ok
    } else {
        Status::Failed
    })
}

/// Runs `zoo report …`.
pub fn report(cmd: ReportCommand) -> anyhow::Result<Status> {
    match cmd {
        ReportCommand::Merge {
            reports,
            json,
            junit,
        } => {
            let mut parsed = vec![];
            for p in &reports {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let r: Report = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a zoo report", p.display()))?;
                parsed.push(r);
            }
            emit(&Report::merge(parsed)?, json, junit.as_deref())
        }
    }
}

fn cell(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Skipped => "skip",
    }
}

fn print_table(report: &Report) {
    let mut kinds: Vec<CheckKind> = report.results.iter().map(|r| r.check).collect();
    kinds.sort();
    kinds.dedup();
    let mut models: Vec<&str> = report.results.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let mut header = vec!["model".to_string()];
    header.extend(kinds.iter().map(|k| k.as_str().to_string()));
    t.set_header(header);
    for m in &models {
        let mut row = vec![m.to_string()];
        for k in &kinds {
            let r = report
                .results
                .iter()
                .find(|r| r.model == *m && r.check == *k);
            row.push(r.map_or("", |r| cell(r.status)).to_string());
        }
        t.add_row(row);
    }
    outln!("{t}");
    outln!();
    for r in &report.results {
        let values = match (&r.documented, &r.measured) {
            (Some(d), Some(m)) => format!("documented {d}, measured {m}; "),
            _ => String::new(),
        };
        outln!(
            "{} {} {}: {values}{}",
            cell(r.status),
            r.model,
            r.check.as_str(),
            r.detail
        );
    }
    let s = report.summary();
    outln!();
    outln!(
        "{} passed, {} failed, {} skipped (skipped checks are not passes)",
        s.pass,
        s.fail,
        s.skipped
    );
}
