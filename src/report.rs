//! The result of `zoo validate`: one row per (model, check), each pass, fail, pinned or
//! skipped-with-reason.
//!
//! Reports are plain data with a deterministic order (models by name, checks in [`CheckKind`]
//! order), so shard reports can be merged into exactly the report of an unsharded run, and
//! snapshots are stable. Rendering (table, JSON, JUnit) is done from this data only.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diagnostic::Pos;

/// The checks, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The card parses and its cross-references resolve.
    Schema,
    /// Metadata `Image Size`, `Crop Pct` and `Interpolation` agree with `Zoo: Input`.
    Input,
    /// FLOPs under the card's convention.
    Flops,
    /// Exact parameter count under the card's rounding rule.
    Params,
    /// File size: predicted for the declared container, or exact when cached.
    FileSize,
    /// Top-1/Top-5 results agree with the `Zoo: Reported` sources.
    Accuracy,
    /// sha256 of cached weights.
    Checksum,
    /// Conversion and inference parity.
    Inference,
    /// Accuracy measured on `--dataset` against the documented values.
    Measured,
    /// Converted weights equal the published ones (fingerprint).
    Fingerprint,
    /// The committed cards equal the regenerated ones.
    Docs,
}

impl CheckKind {
    /// Column name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Schema => "schema",
            CheckKind::Input => "input",
            CheckKind::Flops => "flops",
            CheckKind::Params => "params",
            CheckKind::FileSize => "file-size",
            CheckKind::Accuracy => "accuracy",
            CheckKind::Checksum => "checksum",
            CheckKind::Inference => "inference",
            CheckKind::Measured => "measured",
            CheckKind::Fingerprint => "fingerprint",
            CheckKind::Docs => "docs",
        }
    }
}

impl CheckKind {
    /// Every check, in display order.
    pub const ALL: [CheckKind; 11] = [
        CheckKind::Schema,
        CheckKind::Input,
        CheckKind::Flops,
        CheckKind::Params,
        CheckKind::FileSize,
        CheckKind::Accuracy,
        CheckKind::Checksum,
        CheckKind::Inference,
        CheckKind::Measured,
        CheckKind::Fingerprint,
        CheckKind::Docs,
    ];
}

impl std::str::FromStr for CheckKind {
    type Err = String;

    /// A column name (`inference`, `file-size`).
    fn from_str(s: &str) -> Result<Self, String> {
        CheckKind::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CheckKind::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown check `{s}` (expected one of {})", names.join(", "))
            })
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The claim holds.
    Pass,
    /// Not proven: the bytes match a hash pinned on first use (the registry has none for the
    /// file), so they are the same as last time, but nothing vouches for them. Never counted
    /// as a pass.
    Pinned,
    /// The card's value is not what zoo measures, and a known rule accounts for the whole
    /// difference (the detail names the rule and the difference, e.g. a file saved without
    /// `_metadata`). Never counted as a pass; `--strict` fails it.
    Explained,
    /// The claim does not hold.
    Fail,
    /// Not checked (the reason says why). Never counted as a pass.
    Skipped,
}

/// One (model, check) result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Model name; for the `docs` check, the card's path; [`REGISTRY_ROW`] for findings that
    /// belong to no model.
    pub model: String,
    /// Which check.
    pub check: CheckKind,
    /// Outcome.
    pub status: Status,
    /// The card's value, when the check compares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documented: Option<String>,
    /// The value zoo arrived at (measured, counted, or predicted when `predicted` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    /// `measured` is a prediction (the size of a file that is not at hand), not a measurement.
    #[serde(default, skip_serializing_if = "is_false")]
    pub predicted: bool,
    /// Where the checked value is written, `file:line:col`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Explanation: the convention used, the likely cause of a failure, or why it was skipped.
    pub detail: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The row name of findings that belong to no model (a broken import, a bad collection).
pub const REGISTRY_ROW: &str = "(registry)";

impl Status {
    /// As shown in the table and the detail lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Pinned => "pinned",
            Status::Explained => "explained",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        }
    }
}

impl CheckResult {
    /// A result without documented/measured values.
    pub fn new(model: &str, check: CheckKind, status: Status, detail: impl Into<String>) -> Self {
        CheckResult {
            model: model.to_owned(),
            check,
            status,
            documented: None,
            measured: None,
            predicted: false,
            location: None,
            detail: detail.into(),
        }
    }

    /// Adds the documented and measured values.
    pub fn values(mut self, documented: impl ToString, measured: impl ToString) -> Self {
        self.documented = Some(documented.to_string());
        self.measured = Some(measured.to_string());
        self
    }

    /// Marks the measured value as a prediction.
    pub fn predicted(mut self, predicted: bool) -> Self {
        self.predicted = predicted;
        self
    }

    /// Where the checked value is written.
    pub fn at(mut self, file: &Path, pos: Pos) -> Self {
        self.location = Some(format!("{}:{}:{}", file.display(), pos.line, pos.col));
        self
    }

    /// Whether this row is about a model (not a card, not the registry as a whole).
    pub fn is_model_row(&self) -> bool {
        self.check != CheckKind::Docs && self.model != REGISTRY_ROW
    }
}

/// Which registry a report checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryInfo {
    /// Its directory, or `embedded, zoo X.Y.Z`.
    pub source: String,
    /// How many models it holds (those of unreadable files included).
    pub models: usize,
    /// sha256 of its whole text ([`crate::registry::Registry::content_sha256`]): shards merge
    /// only when they checked the same content, not just a registry of the same name and size.
    pub content_sha256: String,
}

/// Shard `index` of `count` (1-based), as `--shard K/N` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// K, 1-based.
    pub index: usize,
    /// N.
    pub count: usize,
}

impl Shard {
    /// The whole selection in one run.
    pub const ALL: Shard = Shard { index: 1, count: 1 };
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a run was asked to check, besides the results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// The registry checked.
    pub registry: RegistryInfo,
    /// Which shard this run is.
    pub shard: Shard,
    /// `--strict`: a skipped check fails the run.
    pub strict: bool,
    /// `--allow-skip`: the checks whose skips `--strict` accepts (sorted).
    pub allowed_skips: Vec<CheckKind>,
    /// Every model selected (all shards together), sorted.
    pub selected: Vec<String>,
    /// The models this run checked (its shard's), sorted.
    pub models: Vec<String>,
}

/// A whole validation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// zoo version that produced it.
    pub zoo_version: String,
    /// The registry checked.
    pub registry: RegistryInfo,
    /// Which shard of the selection this report covers (`1/1` for a whole run or a merge).
    pub shard: Shard,
    /// `--strict`: skipped checks fail the run.
    pub strict: bool,
    /// `--allow-skip`: the checks whose skips `--strict` accepts (sorted); a pinned or explained
    /// result of them still fails a strict run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_skips: Vec<CheckKind>,
    /// Every model selected, all shards together (sorted).
    pub selected: Vec<String>,
    /// The models this report checked (sorted).
    pub models: Vec<String>,
    /// Totals over `results`.
    pub summary: Summary,
    /// Results, sorted by (model, check).
    pub results: Vec<CheckResult>,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// All checks.
    pub checks: usize,
    /// Passed checks.
    pub pass: usize,
    /// Failed checks.
    pub fail: usize,
    /// Checks resting on a trust-on-first-use pin (not passes).
    pub pinned: usize,
    /// Checks whose difference a known rule explains (not passes).
    #[serde(default)]
    pub explained: usize,
    /// Skipped checks.
    pub skipped: usize,
}

/// Errors merging reports.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// Two reports hold the same (model, check).
    #[error("model `{model}` check `{check}` appears in more than one report")]
    Duplicate {
        /// Model.
        model: String,
        /// Check.
        check: &'static str,
    },
    /// Reports from different zoo versions.
    #[error("reports come from different zoo versions: {a} and {b}")]
    Version {
        /// One version.
        a: String,
        /// Another.
        b: String,
    },
    /// Reports of different registries.
    #[error("reports checked different registries: {a} and {b}")]
    Registry {
        /// One registry.
        a: String,
        /// Another.
        b: String,
    },
    /// Reports of registries with the same name and model count but different text.
    #[error("shard {a} and shard {b} checked different contents of the registry {registry}: its text has sha256 {a_sha256} in shard {a} and {b_sha256} in shard {b}")]
    RegistryContent {
        /// The registry, as both reports name it.
        registry: String,
        /// One shard.
        a: Shard,
        /// The registry content it checked.
        a_sha256: String,
        /// Another shard.
        b: Shard,
        /// The registry content that one checked.
        b_sha256: String,
    },
    /// Reports that split different selections.
    #[error("shard {a} and shard {b} were cut from different model selections ({a_count} and {b_count} models)")]
    Selection {
        /// One shard.
        a: Shard,
        /// Its selection's size.
        a_count: usize,
        /// Another shard.
        b: Shard,
        /// Its selection's size.
        b_count: usize,
    },
    /// Shards of different splits.
    #[error("shard {a} and shard {b} come from different splits (into {} and into {} shards)", .a.count, .b.count)]
    ShardCount {
        /// One shard.
        a: Shard,
        /// Another.
        b: Shard,
    },
    /// The same shard twice.
    #[error("shard {shard} appears twice")]
    DuplicateShard {
        /// The shard.
        shard: Shard,
    },
    /// Shards missing: their models were never checked.
    #[error("{} missing: the merged report would not cover every selected model", list_shards(.missing))]
    MissingShards {
        /// The missing shards.
        missing: Vec<Shard>,
    },
    /// Selected models that no shard checked.
    #[error("no shard checked {}", .models.join(", "))]
    Unchecked {
        /// The models.
        models: Vec<String>,
    },
}

fn list_shards(shards: &[Shard]) -> String {
    let names: Vec<String> = shards.iter().map(ToString::to_string).collect();
    match names.len() {
        1 => format!("shard {} is", names[0]),
        _ => format!("shards {} are", names.join(", ")),
    }
}

impl Report {
    /// This report as a terminal may show it: every text that can come from a file (model
    /// names, card values, details, locations) with its control and invisible format
    /// characters escaped ([`esc_text`](zoo_converters::text::esc_text)). The JSON report keeps
    /// the text as it is (JSON escapes it); the JUnit report escapes it itself.
    pub fn shown(&self) -> Report {
        use zoo_converters::text::esc_text;
        let text = |s: &String| esc_text(s).into_owned();
        let mut shown = self.clone();
        shown.selected = self.selected.iter().map(text).collect();
        shown.models = self.models.iter().map(text).collect();
        for r in &mut shown.results {
            r.model = text(&r.model);
            r.documented = r.documented.as_ref().map(text);
            r.measured = r.measured.as_ref().map(text);
            r.location = r.location.as_ref().map(text);
            r.detail = text(&r.detail);
        }
        shown
    }

    /// A report of an unsharded run over the models its results name.
    pub fn new(results: Vec<CheckResult>) -> Report {
        let mut models: Vec<String> = results
            .iter()
            .filter(|r| r.is_model_row())
            .map(|r| r.model.clone())
            .collect();
        models.sort();
        models.dedup();
        let run = Run {
            registry: RegistryInfo {
                source: String::new(),
                models: models.len(),
                content_sha256: String::new(),
            },
            shard: Shard::ALL,
            strict: false,
            allowed_skips: vec![],
            selected: models.clone(),
            models,
        };
        Report::for_run(run, results)
    }

    /// A report of `run`, sorting the results and counting them.
    pub fn for_run(run: Run, mut results: Vec<CheckResult>) -> Report {
        results.sort_by(|a, b| a.model.cmp(&b.model).then(a.check.cmp(&b.check)));
        let mut summary = Summary {
            checks: results.len(),
            ..Summary::default()
        };
        for r in &results {
            match r.status {
                Status::Pass => summary.pass += 1,
                Status::Fail => summary.fail += 1,
                Status::Pinned => summary.pinned += 1,
                Status::Explained => summary.explained += 1,
                Status::Skipped => summary.skipped += 1,
            }
        }
        Report {
            zoo_version: env!("CARGO_PKG_VERSION").to_owned(),
            registry: run.registry,
            shard: run.shard,
            strict: run.strict,
            allowed_skips: {
                let mut a = run.allowed_skips;
                a.sort();
                a.dedup();
                a
            },
            selected: run.selected,
            models: run.models,
            summary,
            results,
        }
    }

    /// Counts.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// True when no check failed and, under `--strict`, none was skipped (other than a check
    /// of [`Report::allowed_skips`]), explained or rests on a first-use pin.
    pub fn passed(&self) -> bool {
        self.summary.fail == 0 && !(self.strict && self.strict_failures() > 0)
    }

    /// Whether `--strict` fails this result.
    fn fails_strict(&self, r: &CheckResult) -> bool {
        match r.status {
            Status::Pass | Status::Fail => false,
            Status::Pinned | Status::Explained => true,
            Status::Skipped => !self.allowed_skips.contains(&r.check),
        }
    }

    /// [`Report::allowed_skips`] as `--allow-skip` spells them, comma-separated (empty: none).
    pub fn allowed_skips_text(&self) -> String {
        let names: Vec<&str> = self.allowed_skips.iter().map(|c| c.as_str()).collect();
        names.join(",")
    }

    /// The results that are not passes and that `--strict` fails (skips of allowed checks
    /// excepted).
    pub fn strict_failures(&self) -> usize {
        self.results.iter().filter(|r| self.fails_strict(r)).count()
    }

    /// Combines shard reports into one, as if from a single run. Every shard `1/N … N/N` of one
    /// selection of one registry must be there exactly once; a missing or repeated shard is an
    /// error that names it.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Result<Report, MergeError> {
        let reports: Vec<Report> = reports.into_iter().collect();
        let first = reports.first().ok_or(MergeError::Empty)?;
        let mut shards = BTreeSet::new();
        for r in &reports {
            if r.zoo_version != first.zoo_version {
                return Err(MergeError::Version {
                    a: first.zoo_version.clone(),
                    b: r.zoo_version.clone(),
                });
            }
            if (&r.registry.source, r.registry.models)
                != (&first.registry.source, first.registry.models)
            {
                return Err(MergeError::Registry {
                    a: describe(&first.registry),
                    b: describe(&r.registry),
                });
            }
            if r.registry.content_sha256 != first.registry.content_sha256 {
                return Err(MergeError::RegistryContent {
                    registry: describe(&first.registry),
                    a: first.shard,
                    a_sha256: first.registry.content_sha256.clone(),
                    b: r.shard,
                    b_sha256: r.registry.content_sha256.clone(),
                });
            }
            if r.shard.count != first.shard.count {
                return Err(MergeError::ShardCount {
                    a: first.shard,
                    b: r.shard,
                });
            }
            if r.selected != first.selected {
                return Err(MergeError::Selection {
                    a: first.shard,
                    a_count: first.selected.len(),
                    b: r.shard,
                    b_count: r.selected.len(),
                });
            }
            if !shards.insert(r.shard.index) {
                return Err(MergeError::DuplicateShard { shard: r.shard });
            }
        }
        let count = first.shard.count;
        let missing: Vec<Shard> = (1..=count)
            .filter(|k| !shards.contains(k))
            .map(|index| Shard { index, count })
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::MissingShards { missing });
        }
        let checked: BTreeSet<&String> = reports.iter().flat_map(|r| &r.models).collect();
        let unchecked: Vec<String> = first
            .selected
            .iter()
            .filter(|m| !checked.contains(m))
            .cloned()
            .collect();
        if !unchecked.is_empty() {
            return Err(MergeError::Unchecked { models: unchecked });
        }
        let run = Run {
            registry: first.registry.clone(),
            shard: Shard::ALL,
            strict: reports.iter().any(|r| r.strict),
            // A skip is accepted only where every shard accepted it.
            allowed_skips: first
                .allowed_skips
                .iter()
                .filter(|c| reports.iter().all(|r| r.allowed_skips.contains(c)))
                .copied()
                .collect(),
            selected: first.selected.clone(),
            models: first.selected.clone(),
        };
        let version = first.zoo_version.clone();
        let mut seen = BTreeMap::new();
        for r in reports {
            for c in r.results {
                let key = (c.model.clone(), c.check);
                if seen.contains_key(&key) {
                    return Err(MergeError::Duplicate {
                        model: c.model,
                        check: c.check.as_str(),
                    });
                }
                seen.insert(key, c);
            }
        }
        let mut merged = Report::for_run(run, seen.into_values().collect());
        merged.zoo_version = version;
        Ok(merged)
    }

    /// JUnit XML: one test suite, one test case per (model, check); skipped and pinned as
    /// `<skipped>` (pinned with `message="pinned: …"`: JUnit knows no "unproven", and a skip is
    /// the outcome CI tools never show as a pass), or both as `<failure>` under `--strict`. The
    /// suite's properties name the registry and the shard.
    pub fn to_junit(&self) -> String {
        let s = self.summary;
        let (failures, skipped) = if self.strict {
            let strict = self.strict_failures();
            (s.fail + strict, s.skipped + s.pinned + s.explained - strict)
        } else {
            (s.fail, s.skipped + s.pinned + s.explained)
        };
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"zoo validate\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            s.checks,
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"zoo validate\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            s.checks,
        );
        x.push_str("    <properties>\n");
        for (name, value) in [
            ("registry", describe(&self.registry)),
            ("shard", self.shard.to_string()),
            (
                "models",
                format!("{} of {} selected", self.models.len(), self.selected.len()),
            ),
            ("strict", self.strict.to_string()),
            ("allowed-skips", self.allowed_skips_text()),
            ("zoo", self.zoo_version.clone()),
        ] {
            let _ = writeln!(
                x,
                "      <property name=\"{name}\" value=\"{}\"/>",
                xml(&value)
            );
        }
        x.push_str("    </properties>\n");
        for r in &self.results {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&r.model),
                r.check.as_str()
            );
            let mut text = match (&r.documented, &r.measured) {
                (Some(d), Some(m)) => format!(
                    "documented {d}, {} {m}: {}",
                    if r.predicted { "predicted" } else { "measured" },
                    r.detail
                ),
                _ => r.detail.clone(),
            };
            if let Some(at) = &r.location {
                text = format!("{at}: {text}");
            }
            match r.status {
                Status::Pass => x.push_str("/>\n"),
                Status::Fail => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
                Status::Skipped if self.strict && self.fails_strict(r) => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml(&format!("skipped, which --strict fails: {text}"))
                    );
                }
                Status::Skipped => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
                Status::Pinned if self.strict => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml(&format!(
                            "pinned on first use, which --strict fails: {text}"
                        ))
                    );
                }
                Status::Pinned => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"pinned: {}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
                Status::Explained if self.strict => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml(&format!("explained, which --strict fails: {text}"))
                    );
                }
                Status::Explained => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"explained: {}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// `<source>, N models`.
pub fn describe(r: &RegistryInfo) -> String {
    format!(
        "{}, {} model{}",
        r.source,
        r.models,
        if r.models == 1 { "" } else { "s" }
    )
}

/// Text for an XML attribute or element. Control characters (which XML 1.0 does not allow, not
/// even as character references) and invisible format characters are written as visible
/// `\u{..}` escapes ([`esc_text`](zoo_converters::text::esc_text)), so a card value or a name
/// from a file cannot make the report unparsable.
fn xml(s: &str) -> String {
    zoo_converters::text::esc_text(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
}

/// Splits models across `n` shards: deterministic, balanced by cost (greedy longest-first onto the
/// least-loaded shard, ties broken by name and shard index). Returns the models of shard `k`
/// (1-based), sorted by name.
pub fn shard<'a>(models: &[(&'a str, f64)], k: usize, n: usize) -> Vec<&'a str> {
    let mut order: Vec<&(&str, f64)> = models.iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut load = vec![0f64; n.max(1)];
    let mut mine = vec![];
    for (name, cost) in order {
        let (idx, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .unwrap_or((0, &0.0));
        load[idx] += cost.max(0.0);
        if idx + 1 == k {
            mine.push(*name);
        }
    }
    mine.sort_unstable();
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_balance() {
        let models = [("a", 10.0), ("b", 1.0), ("c", 9.0), ("d", 2.0), ("e", 5.0)];
        let shards: Vec<Vec<&str>> = (1..=2).map(|k| shard(&models, k, 2)).collect();
        let mut all: Vec<&str> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, ["a", "b", "c", "d", "e"]);
        assert_eq!(shards[0], ["a", "b", "d"]);
        assert_eq!(shards[1], ["c", "e"]);
    }

    /// Shard `k` of `n` over `selected`, holding one passing `schema` row per model of `mine`.
    fn shard_report(k: usize, n: usize, selected: &[&str], mine: &[&str]) -> Report {
        let run = Run {
            registry: RegistryInfo {
                source: "registry".into(),
                models: 4,
                content_sha256: "ab".repeat(32),
            },
            shard: Shard { index: k, count: n },
            strict: false,
            allowed_skips: vec![],
            selected: selected.iter().map(|s| s.to_string()).collect(),
            models: mine.iter().map(|s| s.to_string()).collect(),
        };
        let results = mine
            .iter()
            .map(|m| CheckResult::new(m, CheckKind::Schema, Status::Pass, ""))
            .collect();
        Report::for_run(run, results)
    }

    #[test]
    fn merge_of_every_shard_equals_the_unsharded_report_and_sorts() {
        let all = ["a", "m", "z"];
        let merged = Report::merge([
            shard_report(2, 2, &all, &["z", "a"]),
            shard_report(1, 2, &all, &["m"]),
        ])
        .unwrap();
        assert_eq!(merged, shard_report(1, 1, &all, &all));
        assert_eq!(merged.summary.checks, 3);
    }

    /// Shards of two registries with the same label and model count, but different text, do
    /// not merge: the error names both contents.
    #[test]
    fn merge_refuses_shards_of_different_registry_contents_naming_both() {
        let all = ["a", "m"];
        let mut other = shard_report(2, 2, &all, &["m"]);
        other.registry.content_sha256 = "cd".repeat(32);
        let err = Report::merge([shard_report(1, 2, &all, &["a"]), other]).unwrap_err();
        assert!(matches!(err, MergeError::RegistryContent { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        assert!(text.contains(&"cd".repeat(32)), "{text}");
        assert!(text.contains("shard 1/2 and shard 2/2 checked different contents of the registry registry, 4 models"), "{text}");
    }

    #[test]
    fn merge_fails_on_a_missing_or_repeated_shard_and_names_it() {
        let all = ["a", "b", "c", "d"];
        let s = |k: usize| shard_report(k, 4, &all, &all[k - 1..k]);
        let err = Report::merge([s(1), s(2), s(4)]).unwrap_err();
        assert!(
            matches!(&err, MergeError::MissingShards { missing } if missing == &[Shard { index: 3, count: 4 }])
        );
        assert_eq!(
            err.to_string(),
            "shard 3/4 is missing: the merged report would not cover every selected model"
        );
        let err = Report::merge([s(1), s(2), s(2), s(3), s(4)]).unwrap_err();
        assert_eq!(err.to_string(), "shard 2/4 appears twice");
        let err = Report::merge([s(1), shard_report(2, 3, &all, &["b"])]).unwrap_err();
        assert!(matches!(err, MergeError::ShardCount { .. }), "{err}");
        let err =
            Report::merge([s(1), s(2), s(3), shard_report(4, 4, &all[..3], &[])]).unwrap_err();
        assert!(matches!(err, MergeError::Selection { .. }), "{err}");
        // Every shard there, but a model fell between them.
        let err = Report::merge([s(1), s(2), s(3), shard_report(4, 4, &all, &[])]).unwrap_err();
        assert_eq!(err.to_string(), "no shard checked d");
    }

    /// `--allow-skip inference` accepts inference skips under `--strict`, and nothing else:
    /// another check's skip, or a pinned inference result, still fails; JUnit shows the allowed
    /// skip as `<skipped>` and counts it so.
    #[test]
    fn allowed_skips_are_accepted_by_strict_for_their_check_only() {
        let result = |model: &str, check, status| {
            CheckResult::new(model, check, status, "no reference vectors for this model")
        };
        let run = |results: Vec<CheckResult>| {
            let mut r = Report::new(results);
            r.strict = true;
            r.allowed_skips = vec![CheckKind::Inference];
            r
        };
        let only_inference = run(vec![
            result("a", CheckKind::Flops, Status::Pass),
            result("a", CheckKind::Inference, Status::Skipped),
        ]);
        assert!(only_inference.passed());
        assert_eq!(only_inference.strict_failures(), 0);
        let junit = only_inference.to_junit();
        assert!(junit.contains("failures=\"0\" skipped=\"1\""), "{junit}");
        assert!(junit.contains("<property name=\"allowed-skips\" value=\"inference\"/>"));
        assert!(!run(vec![result("a", CheckKind::Checksum, Status::Skipped)]).passed());
        assert!(!run(vec![result("a", CheckKind::Inference, Status::Pinned)]).passed());
        let mut not_strict = run(vec![result("a", CheckKind::Checksum, Status::Skipped)]);
        not_strict.strict = false;
        assert!(not_strict.passed());
        assert_eq!("file-size".parse::<CheckKind>(), Ok(CheckKind::FileSize));
        assert!("nope"
            .parse::<CheckKind>()
            .unwrap_err()
            .contains("inference"));
    }

    #[test]
    fn strict_turns_a_skip_into_a_failed_run() {
        let rep = Report::new(vec![CheckResult::new(
            "m",
            CheckKind::Checksum,
            Status::Skipped,
            "weights not cached",
        )]);
        assert!(rep.passed());
        let strict = Report {
            strict: true,
            ..rep
        };
        assert!(!strict.passed());
        assert!(
            strict.to_junit().contains(
                "<failure message=\"skipped, which --strict fails: weights not cached\"/>"
            ),
            "{}",
            strict.to_junit()
        );
    }

    #[test]
    fn pinned_is_counted_apart_from_passes_everywhere() {
        let rep = Report::new(vec![
            CheckResult::new("m", CheckKind::Checksum, Status::Pinned, "pinned in w.lock"),
            CheckResult::new("m", CheckKind::Flops, Status::Pass, ""),
        ]);
        let s = rep.summary();
        assert_eq!((s.pass, s.pinned, s.fail, s.skipped), (1, 1, 0, 0));
        assert!(rep.passed(), "pinned is not a failure");
        let x = rep.to_junit();
        assert!(
            x.contains("<skipped message=\"pinned: pinned in w.lock\"/>"),
            "{x}"
        );
        assert!(
            x.contains("tests=\"2\" failures=\"0\" skipped=\"1\""),
            "{x}"
        );
        let json = serde_json::to_value(&rep).unwrap();
        let checksum = json["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == "checksum")
            .unwrap();
        assert_eq!(checksum["status"], "pinned");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, rep);
    }

    #[test]
    fn explained_is_counted_apart_from_passes_and_fails_under_strict() {
        let results = vec![
            CheckResult::new(
                "m",
                CheckKind::FileSize,
                Status::Explained,
                "saved without _metadata: -1234 bytes",
            ),
            CheckResult::new("m", CheckKind::Flops, Status::Pass, ""),
        ];
        let rep = Report::new(results.clone());
        let s = rep.summary();
        assert_eq!((s.pass, s.explained, s.fail, s.skipped), (1, 1, 0, 0));
        assert!(rep.passed(), "explained is not a failure");
        let x = rep.to_junit();
        assert!(
            x.contains("<skipped message=\"explained: saved without _metadata: -1234 bytes\"/>"),
            "{x}"
        );
        assert!(x.contains("failures=\"0\" skipped=\"1\""), "{x}");
        let json = serde_json::to_value(&rep).unwrap();
        assert_eq!(json["summary"]["explained"], 1);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, rep);
        let mut strict = Report::new(results);
        strict.strict = true;
        assert!(!strict.passed(), "--strict: only passes pass");
        assert!(strict
            .to_junit()
            .contains("explained, which --strict fails"));
    }

    /// XML 1.0 allows no C0 control but tab and line breaks, not even as `&#1;`: a detail
    /// from a card with one is written as a visible escape, and the text report's copy too.
    #[test]
    fn junit_and_text_escape_control_characters() {
        let rep = Report::new(vec![CheckResult::new(
            "m\u{1b}[31m",
            CheckKind::Accuracy,
            Status::Fail,
            "tensorflow\u{1}\u{1b}tpu\nline two",
        )]);
        let x = rep.to_junit();
        assert!(!x.contains(['\u{1}', '\u{1b}']), "{x}");
        assert!(x.contains("tensorflow\\u{1}\\u{1b}tpu&#10;line two"), "{x}");
        assert!(x.contains("classname=\"m\\u{1b}[31m\""), "{x}");
        let shown = rep.shown();
        assert_eq!(
            shown.results[0].detail,
            "tensorflow\\u{1}\\u{1b}tpu\nline two"
        );
        assert_eq!(shown.results[0].model, "m\\u{1b}[31m");
        assert_eq!(rep.results[0].detail, "tensorflow\u{1}\u{1b}tpu\nline two");
    }

    #[test]
    fn junit_marks_skips_and_failures() {
        let rep = Report::new(vec![
            CheckResult::new(
                "m",
                CheckKind::Checksum,
                Status::Skipped,
                "weights not cached",
            ),
            CheckResult::new("m", CheckKind::Flops, Status::Fail, "off by <1>").values(1, 2),
        ]);
        let x = rep.to_junit();
        assert!(
            x.contains("<skipped message=\"weights not cached\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<failure message=\"documented 1, measured 2: off by &lt;1&gt;\"/>"),
            "{x}"
        );
        assert!(!rep.passed());
    }
}
