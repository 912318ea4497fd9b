//! Hugging Face Hub model-card metadata: the YAML front matter of a model repository's
//! `README.md`, as timm's Hub cards have it.
//!
//! Format facts (huggingface/hub-docs `modelcard.md`, `model-index` section):
//! - The card is markdown whose first line is `---`; the YAML runs up to the next line that is
//!   `---`, and the markdown body follows.
//! - Top-level keys include `language`, `license` (`license_name`, `license_link` for `other`),
//!   `library_name`, `tags`, `datasets`, `metrics`, `base_model`, `pipeline_tag`, `thumbnail`,
//!   `inference`, `widget`, `co2_eq_emissions`, `extra_gated_*` and `model-index`. `language`,
//!   `datasets`, `metrics`, `tags` and `base_model` may be one string or a list of strings.
//! - `model-index` is a list of `{name, results}`. A result has `task` {`type`*, `name`},
//!   `dataset` {`type`*, `name`*, `config`, `split`, `revision`, `args`}, `metrics`, a list of
//!   {`type`*, `value`* (a number), `name`, `config`, `args`, `verified` (a bool)}, and an
//!   optional `source` {`name`, `url`} (* = required).
//!
//! Values are read from the position-carrying [`yaml::Node`] tree into the same scalar types the
//! Papers-with-Code reader uses ([`Text`], [`Number`]), so every finding is located at the
//! offending value. Strings are strict here: a plain `2.0` or `true` is not a string (the Hub
//! reads the YAML as JSON), and a metric value must be an unquoted finite number. Keys the
//! reader does not type are kept in `extra`; one that is a near miss of a known key (`libary_name`)
//! is an error with "did you mean".
use std::ops::Range;
use std::path::Path;

use super::yaml::{self, Map, Node, Origin, Scalar, ScalarValue, Style};
use super::{Ctx, Extra, Number, Text};
use crate::diagnostic::{Diagnostic, Pos, Severity};

// ---------------------------------------------------------------------------------------------
// Finding the front matter

/// Where the front matter sits in a README's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatterSpan {
    /// Byte range of the YAML between the opening and the closing `---` lines.
    pub yaml: Range<usize>,
    /// Byte offset just after the closing `---` line, where the markdown body starts.
    pub body_start: usize,
}

/// Why a README's front matter cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontMatterError {
    /// The text opens with `---` but no later line is `---`.
    #[error("front matter is not closed: no `---` line after the opening `---`")]
    Unclosed,
}

/// Finds the front matter: `Ok(None)` when the text does not start with a `---` line (`\n` or
/// `\r\n`), the span when it does and a later line is `---` (trailing whitespace allowed).
pub fn split_front_matter(text: &str) -> Result<Option<FrontMatterSpan>, FrontMatterError> {
    let yaml_start = if text.starts_with("---\n") {
        4
    } else if text.starts_with("---\r\n") {
        5
    } else {
        return Ok(None);
    };
    let mut at = yaml_start;
    for line in text[yaml_start..].split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Ok(Some(FrontMatterSpan {
                yaml: yaml_start..at,
                body_start: at + line.len(),
            }));
        }
        at += line.len();
    }
    Err(FrontMatterError::Unclosed)
}

/// Reads and checks the front matter at `span` of the README `text` (positions are the file's).
/// Returns the typed front matter, if it could be read, and every finding.
pub fn parse_front_matter(
    path: &Path,
    text: &str,
    span: &FrontMatterSpan,
) -> (Option<FrontMatter>, Vec<Diagnostic>) {
    let start = crate::diagnostic::pos_of(text, span.yaml.start);
    let origin = Origin {
        line_offset: start.line - 1,
        first_line_col_offset: start.col - 1,
    };
    let mut cx = Ctx::new(path);
    let front_matter = match yaml::parse(&text[span.yaml.clone()], origin) {
        Ok(Some(node)) => FrontMatter::from_node(&node, &mut cx),
        Ok(None) => {
            cx.report(Severity::Warning, start, "empty front matter");
            Some(FrontMatter {
                pos: start,
                ..FrontMatter::default()
            })
        }
        Err(e) => {
            cx.error(
                e.pos,
                format!("invalid YAML in front matter: {}", e.message),
            );
            None
        }
    };
    (front_matter, cx.diags)
}

/// Reads and checks a Hub model card (a whole `README.md`): its front matter must be present,
/// closed, valid YAML and valid Hub metadata. Returns the typed front matter, if it could be
/// read, and every finding (`Severity::Error` ones make the card invalid).
pub fn read_readme(path: &Path, text: &str) -> (Option<FrontMatter>, Vec<Diagnostic>) {
    match split_front_matter(text) {
        Ok(Some(span)) => parse_front_matter(path, text, &span),
        Ok(None) => (
            None,
            vec![Diagnostic::new(
                Severity::Error,
                path,
                Pos::new(1, 1),
                "no front matter: a Hub model card starts with a `---` line",
            )],
        ),
        Err(e) => (
            None,
            vec![Diagnostic::new(
                Severity::Error,
                path,
                Pos::new(1, 1),
                e.to_string(),
            )],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// A value under a key of the front matter.
pub trait HubValue: Sized {
    /// Reads the value, reporting problems; `None` when it is unusable (an error was reported).
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self>;
}

fn expect_scalar<'n>(node: &'n Node, key: &str, want: &str, cx: &mut Ctx) -> Option<&'n Scalar> {
    match node {
        Node::Scalar(s) => Some(s),
        other => {
            cx.error(
                other.pos(),
                format!("`{key}` must be {want}, found {}", other.kind()),
            );
            None
        }
    }
}

/// A string: any quoted or block scalar, or a plain one YAML reads as text (not a number, bool
/// or null).
impl HubValue for Text {
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a string", cx)?;
        if s.style != Style::Plain {
            return Some(Text(s.clone()));
        }
        let found = match s.value() {
            ScalarValue::Text(_) | ScalarValue::Percent(_) => return Some(Text(s.clone())),
            ScalarValue::Empty | ScalarValue::Null => {
                cx.error(s.pos, format!("`{key}` must be a string, found no value"));
                return None;
            }
            ScalarValue::Bool(_) => "a bool",
            ScalarValue::Int(_) | ScalarValue::Float(_) => "a number",
        };
        cx.error(
            s.pos,
            format!(
                "`{key}` must be a string, found `{}` (YAML reads it as {found}; quote it)",
                s.text
            ),
        );
        None
    }
}

/// A metric value: an unquoted finite number.
impl HubValue for Number {
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a number", cx)?;
        match s.value() {
            ScalarValue::Int(v) if s.style == Style::Plain => Some(Number {
                value: v as f64,
                raw: s.clone(),
            }),
            ScalarValue::Float(v) if s.style == Style::Plain => Some(Number {
                value: v,
                raw: s.clone(),
            }),
            ScalarValue::Int(_) | ScalarValue::Float(_) => {
                cx.error(
                    s.pos,
                    format!(
                        "`{key}` must be a number, found the string `{}` (remove the quotes)",
                        s.text
                    ),
                );
                None
            }
            _ if is_non_finite(&s.text) => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be a finite number, found `{}`", s.text),
                );
                None
            }
            _ => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be a number, found `{}`", s.text),
                );
                None
            }
        }
    }
}

/// YAML's `.inf`/`.nan` spellings, or a decimal too large for a float (`1e999`).
fn is_non_finite(text: &str) -> bool {
    let t = text.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t).to_ascii_lowercase();
    body == ".inf"
        || body == ".nan"
        || (t
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+')
            && t.parse::<f64>().is_ok_and(|v| !v.is_finite()))
}

/// A bool (`verified: true`), kept as spelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// The value.
    pub value: bool,
    /// As spelled.
    pub raw: Scalar,
}

impl HubValue for Flag {
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "`true` or `false`", cx)?;
        match s.value() {
            ScalarValue::Bool(value) => Some(Flag {
                value,
                raw: s.clone(),
            }),
            _ => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be `true` or `false`, found `{}`", s.text),
                );
                None
            }
        }
    }
}

/// A value of any shape (`inference`, `widget`, `args`), kept as written.
impl HubValue for Node {
    fn read(node: &Node, _key: &str, _cx: &mut Ctx) -> Option<Self> {
        Some(node.clone())
    }
}

impl<T: HubValue> HubValue for Vec<T> {
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        match node {
            Node::Seq(seq) => Some(
                seq.items
                    .iter()
                    .filter_map(|item| T::read(item, key, cx))
                    .collect(),
            ),
            other => {
                cx.error(
                    other.pos(),
                    format!("`{key}` must be a list, found {}", other.kind()),
                );
                None
            }
        }
    }
}

/// One string or a list of strings (`language: en` or `language: [en, fr]`).
#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany {
    /// A single string.
    One(Text),
    /// A list.
    Many(Vec<Text>),
}

impl OneOrMany {
    /// The strings, in order.
    pub fn as_slice(&self) -> &[Text] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

impl HubValue for OneOrMany {
    fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        match node {
            Node::Seq(_) => Vec::<Text>::read(node, key, cx).map(OneOrMany::Many),
            Node::Scalar(_) => Text::read(node, key, cx).map(OneOrMany::One),
            Node::Map(m) => {
                cx.error(
                    m.pos,
                    format!("`{key}` must be a string or a list of strings, found a mapping"),
                );
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// Keys accepted anywhere without being typed (the Hub's gated-access form fields).
fn is_free_form_key(key: &str) -> bool {
    key.starts_with("extra_gated_")
}

/// The known key nearest to `key`, if it is close enough to be a typo: compared case-blind with
/// `-` and `_` alike, within a third of the known key's length (at least 2 edits).
fn nearest_key<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let fold = |s: &str| s.to_lowercase().replace('-', "_");
    let key = fold(key);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&key, &fold(k)), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Reads the keys of one mapping, remembering which were used.
struct KeyReader<'n> {
    map: &'n Map,
    taken: Vec<bool>,
}

impl<'n> KeyReader<'n> {
    fn new(map: &'n Map) -> KeyReader<'n> {
        KeyReader {
            map,
            taken: vec![false; map.entries.len()],
        }
    }

    fn get<T: HubValue>(&mut self, key: &str, cx: &mut Ctx) -> Option<T> {
        let i = self.map.entries.iter().position(|(k, _)| k.text == key)?;
        self.taken[i] = true;
        T::read(&self.map.entries[i].1, key, cx)
    }

    fn has(&self, key: &str) -> bool {
        self.map.entries.iter().any(|(k, _)| k.text == key)
    }

    /// Keeps the keys not read in `extra`. A near miss of a known key is an error; any other
    /// unknown key is info. Returns the extra keys and the known keys that a near miss named.
    fn finish<'k>(self, what: &str, known: &[&'k str], cx: &mut Ctx) -> (Extra, Vec<&'k str>) {
        let mut extra = Vec::new();
        let mut suggested = Vec::new();
        for ((k, v), taken) in self.map.entries.iter().zip(self.taken) {
            if taken {
                continue;
            }
            extra.push((k.clone(), v.clone()));
            if is_free_form_key(&k.text) {
                continue;
            }
            match nearest_key(&k.text, known) {
                Some(near) => {
                    cx.error(
                        k.pos,
                        format!("unknown key `{}` in {what}; did you mean `{near}`?", k.text),
                    );
                    suggested.push(near);
                }
                None => cx.report(
                    Severity::Info,
                    k.pos,
                    format!("unknown key `{}` in {what} (kept)", k.text),
                ),
            }
        }
        (Extra(extra), suggested)
    }
}

/// Declares a front-matter record: a struct of optional fields (each under a Hub key), the keys
/// it does not type (`extra`) and its position; and its reader, which reports missing required
/// keys at the mapping (unless a near-miss key already named them).
macro_rules! hub_record {
    (
        $(#[$m:meta])*
        pub struct $name:ident ($what:literal, required = [$($req:literal),* $(,)?]) {
            $( $(#[$fm:meta])* $field:ident : $ty:ty = $key:literal ),* $(,)?
        }
    ) => {
        #[derive(Debug, Clone, PartialEq, Default)]
        $(#[$m])*
        pub struct $name {
            $(
                $(#[$fm])*
                pub $field: Option<$ty>,
            )*
            /// Keys this record does not type, in source order.
            pub extra: Extra,
            /// Where the record starts.
            pub pos: Pos,
        }

        impl $name {
            /// The keys this record types.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl HubValue for $name {
            fn read(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
                let Node::Map(map) = node else {
                    cx.error(
                        node.pos(),
                        format!("`{key}` must be a mapping, found {}", node.kind()),
                    );
                    return None;
                };
                let mut keys = KeyReader::new(map);
                $( let $field = keys.get::<$ty>($key, cx); )*
                let missing: Vec<&str> = [$($req),*]
                    .into_iter()
                    .filter(|k: &&str| !keys.has(k))
                    .collect();
                let (extra, suggested) = keys.finish($what, Self::KEYS, cx);
                for k in missing {
                    if !suggested.contains(&k) {
                        cx.error(map.pos, format!("{} is missing `{k}`", $what));
                    }
                }
                Some($name { $($field,)* extra, pos: map.pos })
            }
        }
    };
}

hub_record! {
    /// A Hub model card's metadata (the README's front matter).
    pub struct FrontMatter ("the front matter", required = []) {
        /// Languages (`en`, or a list).
        language: OneOrMany = "language",
        /// License id (`apache-2.0`, or `other`).
        license: Text = "license",
        /// The license's id when `license: other`.
        license_name: Text = "license_name",
        /// The license file or URL when `license: other`.
        license_link: Text = "license_link",
        /// The library that loads the model (`timm`).
        library_name: Text = "library_name",
        /// That library's version.
        library_version: Text = "library_version",
        /// Tags (`image-classification`, `timm`).
        tags: OneOrMany = "tags",
        /// Training data sets (Hub dataset ids).
        datasets: OneOrMany = "datasets",
        /// Metric ids.
        metrics: OneOrMany = "metrics",
        /// The model(s) this one derives from.
        base_model: OneOrMany = "base_model",
        /// How it derives (`finetune`, `quantized`, …).
        base_model_relation: Text = "base_model_relation",
        /// A newer model that supersedes this one.
        new_version: Text = "new_version",
        /// The Hub task (`image-classification`).
        pipeline_tag: Text = "pipeline_tag",
        /// A display name.
        model_name: Text = "model_name",
        /// Thumbnail image URL.
        thumbnail: Text = "thumbnail",
        /// Inference widget switch or settings.
        inference: Node = "inference",
        /// Widget examples.
        widget: Node = "widget",
        /// Training emissions.
        co2_eq_emissions: Node = "co2_eq_emissions",
        /// Structured evaluation results.
        model_index: Vec<ModelIndexEntry> = "model-index",
    }
}

hub_record! {
    /// One `model-index` entry: a model and its results.
    pub struct ModelIndexEntry ("a `model-index` entry", required = ["name", "results"]) {
        /// The model's name.
        name: Text = "name",
        /// Its results.
        results: Vec<EvalResult> = "results",
    }
}

hub_record! {
    /// One result: a task on a dataset, with metrics.
    pub struct EvalResult ("a `model-index` result", required = ["task", "dataset", "metrics"]) {
        /// The task.
        task: Task = "task",
        /// The dataset.
        dataset: Dataset = "dataset",
        /// The numbers.
        metrics: Vec<Metric> = "metrics",
        /// Where the numbers come from.
        source: Source = "source",
    }
}

hub_record! {
    /// A result's task.
    pub struct Task ("a `model-index` task", required = ["type"]) {
        /// Task id (`image-classification`).
        type_: Text = "type",
        /// Display name (`Image Classification`).
        name: Text = "name",
    }
}

hub_record! {
    /// A result's dataset.
    pub struct Dataset ("a `model-index` dataset", required = ["type", "name"]) {
        /// Dataset id (`imagenet-1k`).
        type_: Text = "type",
        /// Display name (`ImageNet`).
        name: Text = "name",
        /// Its configuration.
        config: Text = "config",
        /// The split evaluated (`validation`).
        split: Text = "split",
        /// Its revision.
        revision: Text = "revision",
        /// Loading arguments.
        args: Node = "args",
    }
}

hub_record! {
    /// One metric of a result.
    pub struct Metric ("a `model-index` metric", required = ["type", "value"]) {
        /// Metric id (`accuracy`).
        type_: Text = "type",
        /// The value.
        value: Number = "value",
        /// Display name (`Top 1 Accuracy`).
        name: Text = "name",
        /// Its configuration.
        config: Text = "config",
        /// Its arguments.
        args: Node = "args",
        /// Whether the Hub verified it.
        verified: Flag = "verified",
        /// The Hub's verification token.
        verify_token: Text = "verifyToken",
    }
}

hub_record! {
    /// Where a result was published.
    pub struct Source ("a `model-index` source", required = []) {
        /// Who published it.
        name: Text = "name",
        /// Where.
        url: Text = "url",
    }
}

// ---------------------------------------------------------------------------------------------
// Checks across values

impl FrontMatter {
    /// Reads a parsed front matter and checks it: types, required keys, accuracy ranges and
    /// duplicate results.
    pub fn from_node(node: &Node, cx: &mut Ctx) -> Option<FrontMatter> {
        if !matches!(node, Node::Map(_)) {
            cx.error(
                node.pos(),
                format!("front matter must be a mapping, found {}", node.kind()),
            );
            return None;
        }
        let front_matter = FrontMatter::read(node, "front matter", cx)?;
        for entry in front_matter.model_index.iter().flatten() {
            check_entry(entry, cx);
        }
        Some(front_matter)
    }
}

impl Metric {
    /// Whether the metric is an accuracy in percent: type `accuracy`, or a name that says
    /// accuracy or top-1/top-5.
    pub fn is_accuracy(&self) -> bool {
        let by_type = self
            .type_
            .as_ref()
            .is_some_and(|t| t.as_str().eq_ignore_ascii_case("accuracy"));
        let by_name = self.name.as_ref().is_some_and(|n| {
            let n = n.as_str().to_lowercase().replace(['-', '_'], " ");
            ["accuracy", "top 1", "top 5", "top1", "top5"]
                .iter()
                .any(|w| n.contains(w))
        });
        by_type || by_name
    }
}

fn check_entry(entry: &ModelIndexEntry, cx: &mut Ctx) {
    // (task type, dataset type, split, metric name) → line of the first result.
    let mut seen: Vec<([&str; 4], usize)> = Vec::new();
    for result in entry.results.iter().flatten() {
        let task = result.task.as_ref().and_then(|t| t.type_.as_ref());
        let dataset = result.dataset.as_ref();
        let dataset_type = dataset.and_then(|d| d.type_.as_ref());
        let split = dataset
            .and_then(|d| d.split.as_ref())
            .map_or("", Text::as_str);
        for metric in result.metrics.iter().flatten() {
            if let Some(v) = &metric.value {
                if metric.is_accuracy() && !(0.0..=100.0).contains(&v.value) {
                    cx.error(
                        v.raw.pos,
                        format!(
                            "accuracy `{}` must be within 0..=100, found `{}`",
                            metric_label(metric),
                            v.raw.text
                        ),
                    );
                }
            }
            let (Some(task), Some(dataset_type)) = (task, dataset_type) else {
                continue;
            };
            let Some(label) = metric.name.as_ref().or(metric.type_.as_ref()) else {
                continue;
            };
            let key = [task.as_str(), dataset_type.as_str(), split, label.as_str()];
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                let split = if split.is_empty() {
                    String::new()
                } else {
                    format!(" split `{split}`")
                };
                let [task, dataset, _, metric] = key;
                cx.error(
                    label.pos(),
                    format!(
                        "duplicate result for task `{task}`, dataset `{dataset}`{split}, \
                         metric `{metric}` (first at line {first})"
                    ),
                );
            } else {
                seen.push((key, label.pos().line));
            }
        }
    }
}

/// The name a metric is shown by: its name, else its type.
fn metric_label(metric: &Metric) -> &str {
    metric
        .name
        .as_ref()
        .or(metric.type_.as_ref())
        .map_or("", Text::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_the_closing_line_with_crlf() {
        let text = "---\r\nlicense: mit\r\n---\r\n# Card\r\n";
        let span = split_front_matter(text).unwrap().unwrap();
        assert_eq!(&text[span.yaml.clone()], "license: mit\r\n");
        assert_eq!(&text[span.body_start..], "# Card\r\n");
        assert_eq!(split_front_matter("# no\n"), Ok(None));
        assert_eq!(
            split_front_matter("---\nlicense: mit\n"),
            Err(FrontMatterError::Unclosed)
        );
        // A closing line at the very end, without a newline.
        let text = "---\na: b\n---";
        let span = split_front_matter(text).unwrap().unwrap();
        assert_eq!((span.yaml, span.body_start), (4..9, text.len()));
    }

    #[test]
    fn near_misses_are_suggested() {
        let known = FrontMatter::KEYS;
        assert_eq!(nearest_key("libary_name", known), Some("library_name"));
        assert_eq!(nearest_key("model_index", known), Some("model-index"));
        assert_eq!(nearest_key("Pipeline-Tag", known), Some("pipeline_tag"));
        assert_eq!(nearest_key("pretty_name", known), None);
    }

    #[test]
    fn non_finite_spellings() {
        for t in [".inf", "-.inf", ".NaN", "1e999"] {
            assert!(is_non_finite(t), "{t}");
        }
        for t in ["high", "78.66", "inf"] {
            assert!(!is_non_finite(t), "{t}");
        }
    }
}
