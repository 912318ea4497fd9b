//! The result of `zoo validate`: one row per (model, check), each pass, fail, pinned or
//! skipped-with-reason.
//!
//! Reports are plain data with a deterministic order (models by name, checks in [`CheckKind`]
//! order), so shard reports can be merged into exactly the report of an unsharded run, and
//! snapshots are stable. Rendering (table, JSON, JUnit) is done from this data only.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Bumped whenever a check's meaning changes; part of the result-cache key.
pub const CHECK_VERSION: u32 = 1;

/// The checks, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The card parses and its cross-references resolve.
    Schema,
    /// FLOPs under the card's convention.
    Flops,
    /// Exact parameter count under the card's rounding rule.
    Params,
    /// File size: predicted for the declared container, or exact when cached.
    FileSize,
    /// sha256 of cached weights.
    Checksum,
    /// Conversion and inference parity.
    Inference,
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
            CheckKind::Flops => "flops",
            CheckKind::Params => "params",
            CheckKind::FileSize => "file-size",
            CheckKind::Checksum => "checksum",
            CheckKind::Inference => "inference",
            CheckKind::Fingerprint => "fingerprint",
            CheckKind::Docs => "docs",
        }
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
    /// The claim does not hold.
    Fail,
    /// Not checked (the reason says why). Never counted as a pass.
    Skipped,
}

/// One (model, check) result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Model name.
    pub model: String,
    /// Which check.
    pub check: CheckKind,
    /// Outcome.
    pub status: Status,
    /// The card's value, when the check compares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documented: Option<String>,
    /// The measured value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    /// Explanation: the convention used, the likely cause of a failure, or why it was skipped.
    pub detail: String,
}

impl Status {
    /// As shown in the table and the detail lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Pinned => "pinned",
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
            detail: detail.into(),
        }
    }

    /// Adds the documented and measured values.
    pub fn values(mut self, documented: impl ToString, measured: impl ToString) -> Self {
        self.documented = Some(documented.to_string());
        self.measured = Some(measured.to_string());
        self
    }
}

/// A whole validation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// zoo version that produced it.
    pub zoo_version: String,
    /// Results, sorted by (model, check).
    pub results: Vec<CheckResult>,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed checks.
    pub pass: usize,
    /// Failed checks.
    pub fail: usize,
    /// Checks resting on a trust-on-first-use pin (not passes).
    pub pinned: usize,
    /// Skipped checks.
    pub skipped: usize,
}

/// Errors merging reports.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
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
}

impl Report {
    /// Builds a report, sorting the results.
    pub fn new(mut results: Vec<CheckResult>) -> Report {
        results.sort_by(|a, b| a.model.cmp(&b.model).then(a.check.cmp(&b.check)));
        Report {
            zoo_version: env!("CARGO_PKG_VERSION").to_owned(),
            results,
        }
    }

    /// Counts.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.results {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Pinned => s.pinned += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.summary().fail == 0
    }

    /// Combines shard reports into one, as if from a single run.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Result<Report, MergeError> {
        let mut version: Option<String> = None;
        let mut seen = BTreeMap::new();
        for r in reports {
            match &version {
                Some(v) if *v != r.zoo_version => {
                    return Err(MergeError::Version {
                        a: v.clone(),
                        b: r.zoo_version,
                    })
                }
                _ => version = Some(r.zoo_version.clone()),
            }
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
        let mut merged = Report::new(seen.into_values().collect());
        if let Some(v) = version {
            merged.zoo_version = v;
        }
        Ok(merged)
    }

    /// JUnit XML: one test suite, one test case per (model, check); skipped as `<skipped>`, and
    /// pinned as `<skipped message="pinned: …">` too (JUnit knows no "unproven"; a skip is the
    /// outcome CI tools never show as a pass).
    pub fn to_junit(&self) -> String {
        let s = self.summary();
        let not_run = s.skipped + s.pinned;
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"zoo validate\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            self.results.len(),
            s.fail,
            not_run
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"zoo validate\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            self.results.len(),
            s.fail,
            not_run
        );
        for r in &self.results {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&r.model),
                r.check.as_str()
            );
            let text = match (&r.documented, &r.measured) {
                (Some(d), Some(m)) => format!("documented {d}, measured {m}: {}", r.detail),
                _ => r.detail.clone(),
            };
            match r.status {
                Status::Pass => x.push_str("/>\n"),
                Status::Fail => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
                Status::Skipped => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
                Status::Pinned => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"pinned: {}\"/>\n    </testcase>",
                        xml(&text)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
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

    #[test]
    fn merge_rejects_duplicates_and_sorts() {
        let r = |m: &str, c| CheckResult::new(m, c, Status::Pass, "");
        let a = Report::new(vec![r("z", CheckKind::Params), r("a", CheckKind::Flops)]);
        let b = Report::new(vec![r("m", CheckKind::Schema)]);
        let merged = Report::merge([a.clone(), b]).unwrap();
        assert_eq!(
            merged
                .results
                .iter()
                .map(|c| c.model.as_str())
                .collect::<Vec<_>>(),
            ["a", "m", "z"]
        );
        assert!(Report::merge([a.clone(), a]).is_err());
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
