//! `zoo validate` and `zoo report merge`: a table of every check, then the failures (at their
//! `file:line:col`), then the skips grouped by reason with what would run them; JSON/JUnit for
//! CI.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::Status;
use crate::fetch::Cache;
use crate::registry::Registry;
use crate::report::{
    shard, CheckKind, CheckResult, RegistryInfo, Report, Run, Shard, Status as CheckStatus,
    REGISTRY_ROW,
};
use crate::validate::{
    cost, download_estimate, registry_results, unreadable_results, validate_model, ValidateOptions,
};

/// Arguments of `zoo validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Model names, aliases, collection names (`'Noisy Student'`) or glob patterns over them;
    /// all models if none.
    pub patterns: Vec<String>,
    /// Use only what is cached; never touch the network (also: ZOO_OFFLINE=1).
    #[arg(long, conflicts_with = "fetch")]
    pub offline: bool,
    /// Download missing weights; a download that fails is a failed check.
    #[arg(long)]
    pub fetch: bool,
    /// A skipped check fails the run (exit 1): for CI, where "not checked" must not pass.
    #[arg(long)]
    pub strict: bool,
    /// With --strict: skips of this check do not fail the run (they are still listed as skips,
    /// and a pinned or explained result of it still fails); repeatable. For a registry whose
    /// models have no reference vectors: `--allow-skip inference`.
    #[arg(
        long = "allow-skip",
        value_name = "CHECK",
        requires = "strict",
        value_delimiter = ','
    )]
    pub allow_skips: Vec<crate::report::CheckKind>,
    /// Show every check's detail, passes included.
    #[arg(short, long)]
    pub verbose: bool,
    /// URL prefix tried before each file's own URLs; repeatable; `file:///DIR/` works. The
    /// mirror layout: <PREFIX>/<host>[:<port>]/<URL path>, as `wget -m` saves it; the flat
    /// <PREFIX>/<file name> too where no other registry file has that name or a full sha256 is
    /// given.
    #[arg(long = "mirror", value_name = "URL-PREFIX")]
    pub mirrors: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Check only shard K of N (1-based), balanced by estimated cost.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Also measure each model whose weights are cached on this ImageNet validation set (any
    /// `zoo eval` layout) against its documented accuracy; results are cached.
    #[arg(long, value_name = "DIR")]
    pub dataset: Option<PathBuf>,
    /// Images per forward pass of --dataset.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// Runs `zoo validate`.
pub fn run(args: ValidateArgs, registry_dir: Option<&Path>) -> anyhow::Result<Status> {
    let location = super::locate_registry(registry_dir)?;
    let registry = Registry::open_keep_errors(&location)?;
    let selection = registry.select_checked(&args.patterns)?;
    let selected = selection.names();
    let shard_of = match &args.shard {
        Some(s) => super::parse_shard(s)?,
        None => Shard::ALL,
    };
    let mut models = selection.models.clone();
    let mut unreadable = selection.unreadable.clone();
    if shard_of != Shard::ALL {
        let costs: Vec<(&str, f64)> = models
            .iter()
            .map(|m| (m.name(), cost(m)))
            .chain(unreadable.iter().map(|u| (u.name.as_str(), 0.0)))
            .collect();
        let mine: Vec<String> = shard(&costs, shard_of.index, shard_of.count)
            .into_iter()
            .map(str::to_string)
            .collect();
        models.retain(|m| mine.iter().any(|n| n == m.name()));
        unreadable.retain(|u| mine.contains(&u.name));
    }
    let opts = ValidateOptions {
        fetch: args.fetch,
        offline: args.offline || super::fetch::offline_from_env(),
        mirrors: args.mirrors.clone(),
        eval: match &args.dataset {
            Some(d) => Some(crate::validate::EvalOptions {
                dataset: std::sync::Arc::new(crate::eval::dataset::Dataset::open(d)?),
                batch_size: args.batch_size,
                workers: std::thread::available_parallelism().map_or(1, usize::from),
            }),
            None => None,
        },
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
        results.extend(validate_model(&registry, m, &opts, cache.as_ref()));
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for u in &unreadable {
        results.extend(unreadable_results(u));
    }
    // Registry-wide findings (stray errors, the generated cards) are reported once: by the
    // unsharded run, or by shard 1.
    if shard_of.index == 1 {
        results.extend(registry_results(&registry, &selected));
    }
    let mut checked: Vec<String> = models
        .iter()
        .map(|m| m.name().to_string())
        .chain(unreadable.iter().map(|u| u.name.clone()))
        .collect();
    checked.sort();
    let run = Run {
        registry: RegistryInfo {
            source: location.describe(),
            models: registry.model_count(),
            content_sha256: registry.content_sha256(),
        },
        shard: shard_of,
        strict: args.strict,
        allowed_skips: args.allow_skips.clone(),
        selected,
        models: checked,
    };
    let report = Report::for_run(run, results);
    let out = Output {
        json: args.json,
        junit: args.junit.as_deref(),
        verbose: args.verbose,
    };
    let fix = match registry_dir {
        Some(d) => format!("zoo --registry {} docs", d.display()),
        None => "zoo docs".to_string(),
    };
    let context = Hints {
        registry: Some(&registry),
        found: matches!(location, crate::registry::Location::Dir { found: true, .. }),
        docs_fix: fix,
    };
    emit(&report, &out, &context)
}

/// How a report is written out.
pub(crate) struct Output<'a> {
    pub(crate) json: bool,
    pub(crate) junit: Option<&'a Path>,
    pub(crate) verbose: bool,
}

/// What the human-readable output can say beyond the report.
pub(crate) struct Hints<'a> {
    /// The registry, for download sizes (none when merging).
    pub(crate) registry: Option<&'a Registry>,
    /// Whether the registry was found by searching from the working directory.
    pub(crate) found: bool,
    /// The command that regenerates the cards.
    pub(crate) docs_fix: String,
}

pub(crate) fn emit(report: &Report, out: &Output<'_>, cx: &Hints<'_>) -> anyhow::Result<Status> {
    if let Some(path) = out.junit {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "cannot write the JUnit report {}: no directory {}",
                path.display(),
                dir.display()
            );
        }
        // The error's kind only: the message of a failed temp file would name the temp file.
        crate::fsutil::write_atomic(path, &report.to_junit()).map_err(|e| {
            anyhow::anyhow!(
                "cannot write the JUnit report {}: {}",
                path.display(),
                e.kind()
            )
        })?;
    }
    if out.json {
        outln!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_human(&report.shown(), out.verbose, cx);
    }
    Ok(if report.passed() {
        Status::Ok
    } else {
        Status::Failed
    })
}

// ---------------------------------------------------------------------------------------------
// The human-readable report

/// ANSI colour on a terminal, unless `NO_COLOR` is set (<https://no-color.org>).
struct Paint(bool);

impl Paint {
    fn detect() -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Paint(std::io::stdout().is_terminal() && !no_color && !dumb)
    }

    fn status(&self, s: CheckStatus, text: &str) -> String {
        let code = match s {
            CheckStatus::Pass => "32",
            CheckStatus::Fail => "1;31",
            CheckStatus::Pinned => "36",
            CheckStatus::Explained => "35",
            CheckStatus::Skipped => "33",
        };
        self.wrap(code, text)
    }

    fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Columns available: the terminal's width, or 100 when stdout is not a terminal.
fn width() -> usize {
    if std::io::stdout().is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
            return usize::from(w).max(40);
        }
    }
    100
}

fn word(s: CheckStatus) -> &'static str {
    s.as_str()
}

/// Every line of each result.
fn print_each(results: &[&CheckResult], paint: &Paint) {
    for r in results {
        for line in result_lines(r, paint) {
            outln!("{line}");
        }
    }
}

/// A status in a table cell, at most as wide as the narrowest column (4).
fn cell_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Explained => "expl",
        other => word(other),
    }
}

/// A shorter column label, for narrow terminals.
fn short_label(k: CheckKind) -> &'static str {
    match k {
        CheckKind::FileSize => "size",
        CheckKind::Accuracy => "top-k",
        CheckKind::Checksum => "sha256",
        CheckKind::Inference => "infer",
        CheckKind::Measured => "top-1",
        CheckKind::Fingerprint => "fprint",
        other => other.as_str(),
    }
}

/// The model × check table, laid out to fit `width` columns: full labels with two spaces
/// between columns if they fit, else short labels, else one space, else model names without
/// their common prefix.
fn table(report: &Report, width: usize, paint: &Paint) -> Vec<String> {
    let rows: Vec<&CheckResult> = report
        .results
        .iter()
        .filter(|r| r.check != CheckKind::Docs)
        .collect();
    let mut kinds: Vec<CheckKind> = rows.iter().map(|r| r.check).collect();
    kinds.sort();
    kinds.dedup();
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    if models.is_empty() {
        return vec![];
    }
    // The common prefix of the model names, up to a `_` (`tf_efficientnet_`).
    let named: Vec<&str> = models
        .iter()
        .copied()
        .filter(|m| *m != REGISTRY_ROW)
        .collect();
    let prefix = match named.split_first() {
        Some((first, rest)) if !rest.is_empty() => {
            let mut p = first.len();
            for m in rest {
                p = p.min(
                    first
                        .bytes()
                        .zip(m.bytes())
                        .take_while(|(a, b)| a == b)
                        .count(),
                );
            }
            first[..p].rfind('_').map_or("", |i| &first[..=i])
        }
        _ => "",
    };
    let layouts = [
        (false, 2, false),
        (true, 2, false),
        (true, 1, false),
        (true, 1, true),
    ];
    let mut chosen = layouts[layouts.len() - 1];
    for layout in layouts {
        let (short, gap, strip) = layout;
        let name_w = models
            .iter()
            .map(|m| shown_name(m, prefix, strip).chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let total: usize = name_w
            + kinds
                .iter()
                .map(|k| gap + label(*k, short).len().max(4))
                .sum::<usize>();
        if total <= width {
            chosen = layout;
            break;
        }
    }
    let (short, gap, strip) = chosen;
    let name_w = models
        .iter()
        .map(|m| shown_name(m, prefix, strip).chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let pad = " ".repeat(gap);
    let mut lines = vec![];
    let mut header = format!("{:<name_w$}", "model");
    for k in &kinds {
        let l = label(*k, short);
        header.push_str(&format!("{pad}{l:<w$}", w = l.len().max(4)));
    }
    lines.push(header.trim_end().to_string());
    for m in &models {
        let name = shown_name(m, prefix, strip);
        let mut line = format!("{name:<name_w$}");
        for k in &kinds {
            let w = label(*k, short).len().max(4);
            let cell = rows.iter().find(|r| r.model == *m && r.check == *k);
            let text = cell.map_or("-", |r| cell_word(r.status));
            let padded = format!("{text:<w$}");
            line.push_str(&pad);
            line.push_str(&match cell {
                Some(r) => paint.status(r.status, &padded),
                None => paint.dim(&padded),
            });
        }
        lines.push(line.trim_end().to_string());
    }
    let mut legend: Vec<String> = vec![];
    if strip && !prefix.is_empty() {
        legend.push(format!("models without `{prefix}`"));
    }
    if short {
        legend.extend(
            kinds
                .iter()
                .filter(|k| short_label(**k) != k.as_str())
                .map(|k| format!("{} = {}", short_label(*k), k.as_str())),
        );
    }
    if rows.iter().any(|r| r.status == CheckStatus::Explained) {
        legend.push("expl = explained (below; not a pass)".to_string());
    }
    if !legend.is_empty() {
        // Wrapped to the width, at the commas.
        let text = format!("({})", legend.join(", "));
        let mut line = String::new();
        for part in text.split_inclusive(", ") {
            if !line.is_empty() && line.chars().count() + part.trim_end().chars().count() > width {
                lines.push(paint.dim(line.trim_end()));
                line.clear();
            }
            line.push_str(part);
        }
        lines.push(paint.dim(line.trim_end()));
    }
    lines
}

fn label(k: CheckKind, short: bool) -> &'static str {
    if short {
        short_label(k)
    } else {
        k.as_str()
    }
}

fn shown_name<'a>(m: &'a str, prefix: &str, strip: bool) -> &'a str {
    if strip && !prefix.is_empty() {
        m.strip_prefix(prefix).unwrap_or(m)
    } else {
        m
    }
}

/// `FAIL model check: documented X, measured Y; detail`, with the value's location under it
/// and a multi-line detail indented.
fn result_lines(r: &CheckResult, paint: &Paint) -> Vec<String> {
    let values = match (&r.documented, &r.measured) {
        (Some(d), Some(m)) => format!(
            "documented {d}, {} {m}; ",
            if r.predicted { "predicted" } else { "measured" }
        ),
        _ => String::new(),
    };
    let mut detail = r.detail.lines();
    let mut lines = vec![format!(
        "{} {} {}: {values}{}",
        paint.status(r.status, word(r.status)),
        r.model,
        r.check.as_str(),
        detail.next().unwrap_or("")
    )];
    lines.extend(detail.map(|l| format!("  {l}")));
    if r.status == CheckStatus::Fail {
        if let Some(at) = r
            .location
            .as_ref()
            .filter(|at| !r.detail.starts_with(at.as_str()))
        {
            lines.push(format!("  --> {at}"));
        }
    }
    lines
}

/// `1 check`, `2 checks`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `4.58 GB`.
fn bytes(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} GB", n as f64 / 1e9)
    } else {
        format!("{:.0} MB", n as f64 / 1e6)
    }
}

/// What would turn skips with this reason into real checks, if zoo knows.
fn how_to(reason: &str, models: &[&str], cx: &Hints<'_>) -> Option<String> {
    if reason.contains("not cached") || reason.contains("cached") && reason.contains("needs") {
        let size = cx.registry.map(|reg| download_estimate(reg, models));
        let amount = match size {
            Some(d) if d.sized > 0 && d.unsized_files > 0 => format!(
                " {} ({}) plus {} whose size the registry does not give",
                bytes(d.bytes),
                count(d.sized, "file"),
                count(d.unsized_files, "file")
            ),
            Some(d) if d.sized > 0 => format!(" {} ({})", bytes(d.bytes), count(d.sized, "file")),
            Some(d) if d.unsized_files > 0 => format!(
                " {} whose size the registry does not give",
                count(d.unsized_files, "file")
            ),
            _ => String::new(),
        };
        let one = models.first().copied().unwrap_or("NAME");
        let what = if amount.is_empty() {
            " them".to_string()
        } else {
            format!(" at most{amount}")
        };
        return Some(format!(
            "`zoo validate --fetch` downloads{what}; or `zoo fetch {one}` for one model"
        ));
    }
    if reason.contains("`torch` feature") {
        return Some(
            "build zoo with `--features torch` (libtorch; `make test` sets it up)".to_string(),
        );
    }
    if reason.contains("no reference vectors") {
        return Some(
            "give the model `Zoo: Reference` (input and logits `.npy`) in the registry".to_string(),
        );
    }
    if reason.contains("no card template") {
        return Some("add the collection's template under `templates/collections/`".to_string());
    }
    None
}

fn print_human(report: &Report, verbose: bool, cx: &Hints<'_>) {
    let paint = Paint::detect();
    for line in table(report, width(), &paint) {
        outln!("{line}");
    }
    let cards: Vec<&CheckResult> = report
        .results
        .iter()
        .filter(|r| r.check == CheckKind::Docs && r.model != REGISTRY_ROW)
        .collect();
    if !cards.is_empty() {
        let in_sync = cards
            .iter()
            .filter(|r| r.status == CheckStatus::Pass)
            .count();
        outln!(
            "cards: {in_sync} of {} in sync with the registry",
            cards.len()
        );
    }

    if verbose {
        // Models first, cards after.
        let mut passes: Vec<&CheckResult> = report
            .results
            .iter()
            .filter(|r| r.status == CheckStatus::Pass)
            .collect();
        passes.sort_by_key(|r| r.check == CheckKind::Docs);
        if !passes.is_empty() {
            outln!();
            outln!("passed ({}):", passes.len());
            for r in passes {
                for line in result_lines(r, &paint) {
                    outln!("{line}");
                }
            }
        }
    }

    // Failures: the real errors first, stale cards last.
    let (docs_failed, failed): (Vec<&CheckResult>, Vec<&CheckResult>) = report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Fail)
        .partition(|r| r.check == CheckKind::Docs);
    if !failed.is_empty() || !docs_failed.is_empty() {
        outln!();
        outln!("failed ({}):", failed.len() + docs_failed.len());
        // The same finding for several models (every model of a file that does not parse) is
        // shown once, with the models it hits.
        let same = |a: &CheckResult, b: &CheckResult| {
            (a.check, &a.detail, &a.location, &a.documented, &a.measured)
                == (b.check, &b.detail, &b.location, &b.documented, &b.measured)
        };
        let mut shown: Vec<&CheckResult> = vec![];
        for r in &failed {
            if shown.iter().any(|s| same(s, r)) {
                continue;
            }
            shown.push(r);
            let hits: Vec<&str> = failed
                .iter()
                .filter(|o| same(o, r))
                .map(|o| o.model.as_str())
                .collect();
            if hits.len() == 1 {
                for line in result_lines(r, &paint) {
                    outln!("{line}");
                }
            } else {
                let many = CheckResult {
                    model: count(hits.len(), "model"),
                    ..(*r).clone()
                };
                for line in result_lines(&many, &paint) {
                    outln!("{line}");
                }
                outln!("  models: {}", hits.join(", "));
            }
        }
        // Hub cards (one per model, `…/cards/hf/<name>/README.md`) go stale together when a
        // collection changes: one line for them all.
        let hub = |r: &CheckResult| {
            r.model
                .find("/cards/hf/")
                .map(|i| r.model[..i + "/cards/hf/".len()].to_string())
        };
        let mut hub_groups: Vec<(String, usize)> = vec![];
        for r in &docs_failed {
            match hub(r) {
                Some(dir)
                    if docs_failed
                        .iter()
                        .filter(|o| hub(o).as_ref() == Some(&dir))
                        .count()
                        > 1 =>
                {
                    match hub_groups.iter_mut().find(|(d, _)| *d == dir) {
                        Some((_, n)) => *n += 1,
                        None => hub_groups.push((dir, 1)),
                    }
                }
                _ => {
                    for line in result_lines(r, &paint) {
                        outln!("{line}");
                    }
                }
            }
        }
        for (dir, n) in hub_groups {
            outln!(
                "{} {dir} docs: {n} cards are stale: they differ from the cards the registry generates",
                paint.status(CheckStatus::Fail, "FAIL")
            );
        }
        let stale = docs_failed.iter().any(|r| r.model != REGISTRY_ROW);
        if stale {
            if failed.is_empty() {
                outln!(
                    "  → `zoo docs --check` shows how the cards differ; `{}` regenerates them",
                    cx.docs_fix
                );
            } else {
                outln!(
                    "  → the cards differ because the registry changed, and the registry fails its own checks above: fix those first (regenerating the cards now would publish the errors)"
                );
            }
        }
    }

    // Pins: each is shown (it names the lock file and how to record the hash), never hidden
    // among the passes.
    let pinned: Vec<&CheckResult> = report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Pinned)
        .collect();
    if !pinned.is_empty() {
        outln!();
        outln!(
            "pinned ({}): checked only against a hash pinned on first use, not a pass:",
            pinned.len()
        );
        print_each(&pinned, &paint);
    }

    // Explained differences: with `-v` each with its rule and its difference; by default one
    // line per (check, rule), naming the models.
    let explained: Vec<&CheckResult> = report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Explained)
        .collect();
    if !explained.is_empty() {
        outln!();
        outln!(
            "explained ({}): the card differs from the measurement by a known rule, not a pass{}:",
            explained.len(),
            if verbose { "" } else { " (-v shows each)" }
        );
        if verbose {
            print_each(&explained, &paint);
        } else {
            // The rule is the detail's first clause (the differences come after it).
            let mut groups: Vec<(CheckKind, &str, Vec<&str>)> = vec![];
            for r in &explained {
                let rule = r.detail.split("; ").next().unwrap_or(&r.detail);
                match groups
                    .iter_mut()
                    .find(|(k, g, _)| *k == r.check && *g == rule)
                {
                    Some((_, _, models)) => models.push(&r.model),
                    None => groups.push((r.check, rule, vec![&r.model])),
                }
            }
            for (check, rule, models) in groups {
                if let [model] = models.as_slice() {
                    let one = explained
                        .iter()
                        .find(|r| r.model == *model && r.check == check);
                    if let Some(r) = one {
                        for line in result_lines(r, &paint) {
                            outln!("{line}");
                        }
                    }
                    continue;
                }
                outln!(
                    "{} {} {}: {rule}",
                    paint.status(CheckStatus::Explained, "explained"),
                    count(models.len(), "model"),
                    check.as_str()
                );
                outln!("  models: {}", models.join(", "));
            }
        }
    }

    // Skips, grouped by reason, with what would run them.
    let mut groups: Vec<(&str, Vec<&CheckResult>)> = vec![];
    for r in report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Skipped)
    {
        match groups.iter_mut().find(|(reason, _)| *reason == r.detail) {
            Some((_, v)) => v.push(r),
            None => groups.push((&r.detail, vec![r])),
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    if !groups.is_empty() {
        outln!();
        outln!(
            "skipped ({}){}:",
            report.summary.skipped,
            match (report.strict, report.allowed_skips.is_empty()) {
                (false, _) => String::new(),
                (true, true) => ", which --strict counts as failures".to_string(),
                (true, false) => format!(
                    ", which --strict counts as failures except those of --allow-skip {}",
                    report.allowed_skips_text()
                ),
            }
        );
        let mut hints: Vec<String> = vec![];
        for (reason, rs) in &groups {
            let mut per_check: Vec<(CheckKind, usize)> = vec![];
            for r in rs {
                match per_check.iter_mut().find(|(k, _)| *k == r.check) {
                    Some((_, n)) => *n += 1,
                    None => per_check.push((r.check, 1)),
                }
            }
            per_check.sort();
            let checks = per_check
                .iter()
                .map(|(k, n)| format!("{} ×{n}", k.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            outln!(
                "{} {}: {reason} ({checks})",
                paint.status(CheckStatus::Skipped, "skip"),
                count(rs.len(), "check")
            );
            let mut models: Vec<&str> = rs.iter().map(|r| r.model.as_str()).collect();
            models.sort_unstable();
            models.dedup();
            if let Some(hint) = how_to(reason, &models, cx) {
                if hints.contains(&hint) {
                    outln!("  → the same as above");
                } else {
                    outln!("  → {hint}");
                    hints.push(hint);
                }
            }
        }
    }

    outln!();
    let found = if cx.found {
        " (found from the working directory)"
    } else {
        ""
    };
    let checked = count(report.models.len(), "model");
    let scope = if report.shard != Shard::ALL {
        format!(
            "; {checked} checked: shard {} of {} selected",
            report.shard,
            report.selected.len()
        )
    } else if report.selected.len() < report.registry.models {
        format!("; {checked} checked (selected by name)")
    } else {
        format!("; {checked} checked")
    };
    outln!(
        "registry: {}{found}, {}{scope}",
        report.registry.source,
        count(report.registry.models, "model")
    );
    let s = report.summary;
    let verdict = if report.passed() {
        paint.status(CheckStatus::Pass, "ok")
    } else {
        paint.status(CheckStatus::Fail, "FAILED")
    };
    let explained = if s.explained > 0 {
        format!(", {} explained", s.explained)
    } else {
        String::new()
    };
    outln!(
        "{verdict}: {} passed, {} failed, {} pinned{explained}, {} skipped ({})",
        s.pass,
        s.fail,
        s.pinned,
        s.skipped,
        match (report.strict, s.explained > 0) {
            (true, false) => "--strict: a pinned or skipped check fails the run",
            (true, true) => "--strict: a pinned, explained or skipped check fails the run",
            (false, false) => "pinned and skipped checks are not passes",
            (false, true) => "pinned, explained and skipped checks are not passes",
        }
    );
    if report.strict && !report.allowed_skips.is_empty() {
        outln!(
            "  (--allow-skip {}: those skips do not fail the run)",
            report.allowed_skips_text()
        );
    }
}
