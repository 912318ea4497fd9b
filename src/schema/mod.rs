//! Typed model-index data (Papers-with-Code `model-index` YAML, as timm's cards use it) and the
//! zoo extension block (`Zoo:`).
//!
//! Every value keeps its source scalar ([`yaml::Scalar`]: text, quoting, position), so that
//! - diagnostics point at `file:line:col`,
//! - writing a card back ([`ModelIndex::to_yaml`]) reproduces it byte for byte, key order included.
//!
//! Records are read by hand from the position-carrying [`yaml::Node`] tree rather than through
//! serde, because cards mix types (`Image Size: '224'`, `LR: 0.128`, `Top 1 Accuracy: 78.66%`,
//! `Training Time: ''`) and every problem must be reported, not just the first. The serde
//! `Serialize` impls give the `--json` view; the `schemars` impls describe the YAML that is
//! accepted (`zoo schema`, `schemas/*.schema.json`).
//!
//! Standard records keep unknown keys (model-index allows custom fields) and report them as info.
//! The `Zoo:` block is zoo's own and rejects unknown keys.
//!
//! [`hf`] reads the other card format, a Hugging Face Hub README's front matter, into the same
//! scalar types.
pub mod hf;
pub mod yaml;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::diagnostic::{Diagnostic, Pos, Severity};
use yaml::{Map, Node, Scalar, ScalarValue, Seq};

/// Collects diagnostics while reading one file.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The file the nodes came from (as it should be printed).
    pub file: &'a Path,
    /// Findings so far.
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    /// A context for `file`.
    pub fn new(file: &'a Path) -> Ctx<'a> {
        Ctx {
            file,
            diags: Vec::new(),
        }
    }

    /// Records a finding.
    pub fn report(&mut self, severity: Severity, pos: Pos, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(severity, self.file, pos, message));
    }

    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.report(Severity::Error, pos, message);
    }
}

/// A value that can sit under a key of a record.
pub trait FieldValue: Sized {
    /// Reads the value, reporting problems; `None` when it is unusable (an error was reported).
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self>;
    /// Writes the value back as a node.
    fn to_node(&self) -> Node;
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

// ---------------------------------------------------------------------------------------------
// Scalars

/// A string value, kept as spelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub Scalar);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
    /// Where it is.
    pub fn pos(&self) -> Pos {
        self.0.pos
    }
    /// A new text value (quoted only if needed).
    pub fn new(text: impl Into<String>) -> Text {
        Text(Scalar::new(text))
    }
}

impl FieldValue for Text {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        expect_scalar(node, key, "a string", cx).map(|s| Text(s.clone()))
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.0.clone())
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.text)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string"})
    }
}

/// A non-negative integer (FLOPs, Parameters, File Size, Epochs, Batch Size, Image Size), which
/// cards sometimes quote (`Image Size: '224'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    /// The value.
    pub value: u64,
    /// As spelled.
    pub raw: Scalar,
}

impl FieldValue for Count {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a non-negative integer", cx)?;
        match s.value() {
            ScalarValue::Int(v) if v >= 0 => Some(Count {
                value: v as u64,
                raw: s.clone(),
            }),
            ScalarValue::Int(_) | ScalarValue::Float(_) => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be a non-negative integer, found `{}`", s.text),
                );
                None
            }
            _ => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be an integer, found `{}`", s.text),
                );
                None
            }
        }
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.raw.clone())
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.value)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A non-negative integer, possibly quoted ('224').",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+$"}
            ]
        })
    }
}

/// A real number (LR, Crop Pct, Dropout, …), possibly quoted (`Crop Pct: '0.875'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// The value.
    pub value: f64,
    /// As spelled.
    pub raw: Scalar,
}

impl FieldValue for Number {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a number", cx)?;
        match s.value() {
            ScalarValue::Int(v) => Some(Number {
                value: v as f64,
                raw: s.clone(),
            }),
            ScalarValue::Float(v) => Some(Number {
                value: v,
                raw: s.clone(),
            }),
            _ => {
                cx.error(
                    s.pos,
                    format!("`{key}` must be a number, found `{}`", s.text),
                );
                None
            }
        }
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.raw.clone())
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.value)
    }
}

impl JsonSchema for Number {
    fn schema_name() -> Cow<'static, str> {
        "Number".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number, possibly quoted ('0.875').",
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": "^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$"}
            ]
        })
    }
}

/// A metric value: a number or a percentage (`78.66%`).
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The number (78.66 for `78.66%`).
    pub value: f64,
    /// Whether it was written with `%`.
    pub percent: bool,
    /// As spelled.
    pub raw: Scalar,
}

impl FieldValue for Measure {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a number or a percentage", cx)?;
        let (value, percent) = match s.value() {
            ScalarValue::Int(v) => (v as f64, false),
            ScalarValue::Float(v) => (v, false),
            ScalarValue::Percent(v) => (v, true),
            _ => {
                cx.error(
                    s.pos,
                    format!(
                        "`{key}` must be a number or a percentage, found `{}`",
                        s.text
                    ),
                );
                return None;
            }
        };
        Some(Measure {
            value,
            percent,
            raw: s.clone(),
        })
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.raw.clone())
    }
}

impl Serialize for Measure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.percent {
            s.serialize_str(self.raw.text.trim())
        } else {
            s.serialize_f64(self.value)
        }
    }
}

impl JsonSchema for Measure {
    fn schema_name() -> Cow<'static, str> {
        "Measure".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number or a percentage ('78.66%').",
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": "^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*%?$"}
            ]
        })
    }
}

/// A duration as cards write it (`6 days`, `12 hours`), or empty (`''`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingTime {
    /// Seconds, when the text is a duration; `None` when empty.
    pub seconds: Option<u64>,
    /// As spelled.
    pub raw: Scalar,
}

fn parse_duration(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() || !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim_end_matches('s') {
        "second" | "sec" => 1.0,
        "minute" | "min" => 60.0,
        "hour" | "h" | "hr" => 3600.0,
        "day" | "d" => 86400.0,
        "week" => 604800.0,
        _ => return None,
    };
    Some((n * secs).round() as u64)
}

impl FieldValue for TrainingTime {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a duration", cx)?;
        let text = s.text.trim();
        let seconds = if text.is_empty() {
            None
        } else {
            match parse_duration(text) {
                Some(v) => Some(v),
                None => {
                    cx.report(
                        Severity::Warning,
                        s.pos,
                        format!("`{key}` is not a duration like `6 days`: `{}`", s.text),
                    );
                    None
                }
            }
        };
        Some(TrainingTime {
            seconds,
            raw: s.clone(),
        })
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.raw.clone())
    }
}

impl Serialize for TrainingTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw.text)
    }
}

impl JsonSchema for TrainingTime {
    fn schema_name() -> Cow<'static, str> {
        "TrainingTime".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "description": "A duration such as '6 days', or empty."})
    }
}

/// A closed set of words (roles, formats, conventions).
pub trait Keyword: Sized + Copy + 'static {
    /// Every spelling and its value.
    const ALL: &'static [(&'static str, Self)];
}

/// A keyword value, kept as spelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged<E> {
    /// The value.
    pub value: E,
    /// As spelled.
    pub raw: Scalar,
}

impl<E: Keyword> FieldValue for Tagged<E> {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        let s = expect_scalar(node, key, "a keyword", cx)?;
        match E::ALL.iter().find(|(name, _)| *name == s.text) {
            Some((_, v)) => Some(Tagged {
                value: *v,
                raw: s.clone(),
            }),
            None => {
                let names: Vec<_> = E::ALL.iter().map(|(n, _)| format!("`{n}`")).collect();
                cx.error(
                    s.pos,
                    format!(
                        "`{key}` must be one of {}, found `{}`",
                        names.join(", "),
                        s.text
                    ),
                );
                None
            }
        }
    }
    fn to_node(&self) -> Node {
        Node::Scalar(self.raw.clone())
    }
}

impl<E: Serialize> Serialize for Tagged<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<E: JsonSchema> JsonSchema for Tagged<E> {
    fn schema_name() -> Cow<'static, str> {
        E::schema_name()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        E::json_schema(g)
    }
}

impl<T: FieldValue> FieldValue for Vec<T> {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        match node {
            Node::Seq(seq) => Some(
                seq.items
                    .iter()
                    .filter_map(|item| T::parse(item, key, cx))
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
    fn to_node(&self) -> Node {
        Node::Seq(Seq {
            items: self.iter().map(FieldValue::to_node).collect(),
            pos: Pos::default(),
        })
    }
}

/// Keys a record does not know, kept in source order so they are written back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra(pub Vec<(Scalar, Node)>);

impl Extra {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct NodeJson<'a>(&'a Node);

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Node::Scalar(sc) => match sc.value() {
                ScalarValue::Null => s.serialize_unit(),
                ScalarValue::Bool(b) if sc.style == yaml::Style::Plain => s.serialize_bool(b),
                ScalarValue::Int(v) if sc.style == yaml::Style::Plain => s.serialize_i64(v),
                ScalarValue::Float(v) if sc.style == yaml::Style::Plain => s.serialize_f64(v),
                _ => s.serialize_str(&sc.text),
            },
            Node::Seq(seq) => {
                let mut out = s.serialize_seq(Some(seq.items.len()))?;
                for item in &seq.items {
                    out.serialize_element(&NodeJson(item))?;
                }
                out.end()
            }
            Node::Map(map) => {
                let mut out = s.serialize_map(Some(map.entries.len()))?;
                for (k, v) in &map.entries {
                    out.serialize_entry(&k.text, &NodeJson(v))?;
                }
                out.end()
            }
        }
    }
}

impl Serialize for Extra {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            out.serialize_entry(&k.text, &NodeJson(v))?;
        }
        out.end()
    }
}

impl JsonSchema for Extra {
    fn schema_name() -> Cow<'static, str> {
        "Extra".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object", "additionalProperties": true})
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// Unknown keys of one mapping reported one by one; the rest are summed up in one finding, so
/// a card with a million stray keys does not produce a million findings.
pub const MAX_UNKNOWN_KEY_FINDINGS: usize = 100;

/// Reads the keys of one mapping, remembering which were used.
struct Fields<'n> {
    map: &'n Map,
    taken: Vec<bool>,
}

impl<'n> Fields<'n> {
    fn new(map: &'n Map) -> Fields<'n> {
        Fields {
            map,
            taken: vec![false; map.entries.len()],
        }
    }

    fn get<T: FieldValue>(&mut self, key: &str, cx: &mut Ctx) -> Option<T> {
        let i = self.map.entries.iter().position(|(k, _)| k.text == key)?;
        self.taken[i] = true;
        T::parse(&self.map.entries[i].1, key, cx)
    }

    fn finish(
        self,
        what: &str,
        strict: bool,
        known: &[&str],
        cx: &mut Ctx,
    ) -> (Extra, Vec<String>) {
        let order = self
            .map
            .entries
            .iter()
            .map(|(k, _)| k.text.clone())
            .collect();
        let mut extra = Vec::new();
        let mut unknown = 0usize;
        let mut first_unlisted = None;
        for ((k, v), taken) in self.map.entries.iter().zip(self.taken) {
            if taken {
                continue;
            }
            unknown += 1;
            let near = near_miss(&k.text, known);
            if !strict {
                extra.push((k.clone(), v.clone()));
            }
            if let (Some(known), false) = (near, strict) {
                // A misspelt standard key is not a custom field: the value it holds would go
                // unchecked and the real key would be missing. Always reported.
                cx.error(
                    k.pos,
                    format!(
                        "unknown key `{}` in {what}{}",
                        k.text,
                        did_you_mean(Some(known))
                    ),
                );
            } else if unknown > MAX_UNKNOWN_KEY_FINDINGS {
                first_unlisted.get_or_insert(k.pos);
            } else if strict {
                cx.error(
                    k.pos,
                    format!("unknown key `{}` in {what}{}", k.text, did_you_mean(near)),
                );
            } else {
                cx.report(
                    Severity::Info,
                    k.pos,
                    format!("unknown key `{}` in {what} (kept)", k.text),
                );
            }
        }
        if let Some(pos) = first_unlisted {
            let more = unknown - MAX_UNKNOWN_KEY_FINDINGS;
            if strict {
                cx.error(pos, format!("… and {more} more unknown keys in {what}"));
            } else {
                cx.report(
                    Severity::Info,
                    pos,
                    format!("… and {more} more unknown keys in {what} (kept)"),
                );
            }
        }
        (Extra(extra), order)
    }
}

/// The known key `key` is most likely a misspelling of: same letters up to case, spaces,
/// `_` and `-`, or a small edit distance (1 for keys of up to 4 characters, 2 up to 12, 3
/// beyond). `None` when no known key is that close.
pub fn near_miss<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    if known.contains(&key) {
        return None;
    }
    let k = norm(key);
    known
        .iter()
        .map(|&c| {
            let n = norm(c);
            let limit = match n.chars().count() {
                0..=4 => 1,
                5..=12 => 2,
                _ => 3,
            };
            (strsim::levenshtein(&k, &n), limit, c)
        })
        .filter(|(d, limit, _)| d <= limit)
        .min_by_key(|(d, _, c)| (*d, *c))
        .map(|(_, _, c)| c)
}

fn did_you_mean(near: Option<&str>) -> String {
    near.map_or_else(String::new, |k| format!("; did you mean `{k}`?"))
}

/// Metric names zoo checks; a name close to one of them is taken for a misspelling.
pub const KNOWN_METRICS: [&str; 2] = ["Top 1 Accuracy", "Top 5 Accuracy"];

/// Builds a mapping node from fields, in source key order where known.
struct MapOut {
    entries: Vec<(Scalar, Node)>,
}

impl MapOut {
    fn new() -> MapOut {
        MapOut {
            entries: Vec::new(),
        }
    }
    fn field<T: FieldValue>(&mut self, key: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.entries.push((Scalar::new(key), v.to_node()));
        }
    }
    fn finish(mut self, extra: &Extra, order: &[String], pos: Pos) -> Node {
        self.entries.extend(extra.0.iter().cloned());
        // Source position of each key, looked up once per entry (linear in the keys).
        let ranks: std::collections::HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .rev()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let rank = |k: &Scalar| ranks.get(k.text.as_str()).copied().unwrap_or(usize::MAX);
        self.entries.sort_by_key(|(k, _)| rank(k));
        Node::Map(Map {
            entries: self.entries,
            pos,
        })
    }
}

/// Declares a record: a struct of optional fields (each under a model-index key), plus the
/// unknown keys (`extra`), the source key order and position; and its reader and writer.
macro_rules! record {
    (
        $(#[$m:meta])*
        pub struct $name:ident ($what:literal, strict = $strict:literal) {
            $( $(#[$fm:meta])* $field:ident : $ty:ty = $key:literal ),* $(,)?
        }
    ) => {
        #[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
        $(#[$m])*
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $key, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Keys this record does not know, in source order (kept, written back).
            #[serde(flatten)]
            pub extra: Extra,
            /// Source key order, so writing back keeps it.
            #[serde(skip)]
            #[schemars(skip)]
            pub order: Vec<String>,
            /// Where the record starts.
            #[serde(skip)]
            #[schemars(skip)]
            pub pos: Pos,
        }

        impl FieldValue for $name {
            fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
                let Node::Map(map) = node else {
                    cx.error(node.pos(), format!("`{key}` must be a mapping, found {}", node.kind()));
                    return None;
                };
                let mut f = Fields::new(map);
                $( let $field = f.get::<$ty>($key, cx); )*
                let (extra, order) = f.finish($what, $strict, &[$($key),*], cx);
                Some($name { $($field,)* extra, order, pos: map.pos })
            }
            fn to_node(&self) -> Node {
                let mut out = MapOut::new();
                $( out.field($key, &self.$field); )*
                out.finish(&self.extra, &self.order, self.pos)
            }
        }
    };
}

/// A paper reference: a URL, or `{Title, URL}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Paper {
    /// `Paper: https://…`.
    Link(Text),
    /// `Paper: {Title, URL}`.
    Ref(PaperRef),
}

record! {
    /// `Paper: {Title, URL}`.
    pub struct PaperRef ("a paper", strict = false) {
        /// The paper title.
        title: Text = "Title",
        /// Its page.
        url: Text = "URL",
    }
}

impl FieldValue for Paper {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        match node {
            Node::Scalar(s) => Some(Paper::Link(Text(s.clone()))),
            _ => PaperRef::parse(node, key, cx).map(Paper::Ref),
        }
    }
    fn to_node(&self) -> Node {
        match self {
            Paper::Link(t) => t.to_node(),
            Paper::Ref(r) => r.to_node(),
        }
    }
}

record! {
    /// `Library:` — the code base the index describes.
    pub struct Library ("Library", strict = false) {
        /// Name.
        name: Text = "Name",
        /// One-line description.
        headline: Text = "Headline",
        /// Home page.
        website: Text = "Website",
        /// Source repository.
        repository: Text = "Repository",
        /// Documentation.
        docs: Text = "Docs",
        /// README path.
        readme: Text = "README",
    }
}

record! {
    /// `Metadata:` of a model or collection. Known keys are typed; any other key is kept.
    pub struct Metadata ("Metadata", strict = false) {
        /// Documented FLOPs (see the model's `Zoo: Flops` for the counting convention).
        flops: Count = "FLOPs",
        /// How `FLOPs` was counted (`thop-2020`, `macs`); cards that `zoo docs` writes carry it,
        /// since they have no `Zoo:` block.
        flops_convention: Tagged<FlopsCounter> = "FLOPs Convention",
        /// Documented parameter count.
        parameters: Count = "Parameters",
        /// Documented weight file size in bytes.
        file_size: Count = "File Size",
        /// Architecture components.
        architecture: Vec<Text> = "Architecture",
        /// Tasks.
        tasks: Vec<Text> = "Tasks",
        /// Training techniques.
        training_techniques: Vec<Text> = "Training Techniques",
        /// Training data sets.
        training_data: Vec<Text> = "Training Data",
        /// Hardware.
        training_resources: Text = "Training Resources",
        /// Wall-clock training time.
        training_time: TrainingTime = "Training Time",
        /// Model id.
        id: Text = "ID",
        /// Learning rate.
        lr: Number = "LR",
        /// Epochs.
        epochs: Count = "Epochs",
        /// Dropout rate.
        dropout: Number = "Dropout",
        /// Centre-crop ratio.
        crop_pct: Number = "Crop Pct",
        /// Optimizer momentum.
        momentum: Number = "Momentum",
        /// Batch size.
        batch_size: Count = "Batch Size",
        /// Evaluation image size.
        image_size: Count = "Image Size",
        /// Weight decay.
        weight_decay: Number = "Weight Decay",
        /// Resize interpolation.
        interpolation: Text = "Interpolation",
        /// RMSProp decay.
        rmsprop_decay: Number = "RMSProp Decay",
        /// Label smoothing.
        label_smoothing: Number = "Label Smoothing",
        /// BatchNorm momentum.
        batchnorm_momentum: Number = "BatchNorm Momentum",
        /// Stochastic depth survival probability.
        stochastic_depth_survival: Number = "Stochastic Depth Survival",
    }
}

/// `Metrics:` as a map (`Top 1 Accuracy: 78.66%`) or a list (`- Name: …, Value: …`).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum Metrics {
    /// Name → value, in source order.
    Map(#[schemars(with = "BTreeMap<String, Measure>")] Vec<(Text, Measure)>),
    /// A list of `{Name, Value}`.
    List(Vec<Metric>),
}

impl Metrics {
    /// The value of the named metric.
    pub fn get(&self, name: &str) -> Option<&Measure> {
        match self {
            Metrics::Map(v) => v.iter().find(|(k, _)| k.as_str() == name).map(|(_, m)| m),
            Metrics::List(v) => v
                .iter()
                .find(|m| m.name.as_ref().is_some_and(|n| n.as_str() == name))
                .and_then(|m| m.value.as_ref()),
        }
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Metrics::Map(v) => {
                let mut out = s.serialize_map(Some(v.len()))?;
                for (k, m) in v {
                    out.serialize_entry(k.as_str(), m)?;
                }
                out.end()
            }
            Metrics::List(v) => v.serialize(s),
        }
    }
}

record! {
    /// One metric in list form.
    pub struct Metric ("a metric", strict = false) {
        /// Metric name.
        name: Text = "Name",
        /// Its value.
        value: Measure = "Value",
    }
}

impl FieldValue for Metrics {
    fn parse(node: &Node, key: &str, cx: &mut Ctx) -> Option<Self> {
        match node {
            Node::Map(map) => Some(Metrics::Map(
                map.entries
                    .iter()
                    .filter_map(|(k, v)| {
                        if let Some(known) = near_miss(&k.text, &KNOWN_METRICS) {
                            cx.error(
                                k.pos,
                                format!("unknown metric `{}`{}", k.text, did_you_mean(Some(known))),
                            );
                        }
                        Measure::parse(v, &k.text, cx).map(|m| (Text(k.clone()), m))
                    })
                    .collect(),
            )),
            Node::Seq(_) => Vec::<Metric>::parse(node, key, cx).map(Metrics::List),
            other => {
                cx.error(
                    other.pos(),
                    format!(
                        "`{key}` must be a mapping or a list, found {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }
    fn to_node(&self) -> Node {
        match self {
            Metrics::Map(v) => Node::Map(Map {
                entries: v.iter().map(|(k, m)| (k.0.clone(), m.to_node())).collect(),
                pos: Pos::default(),
            }),
            Metrics::List(v) => v.to_node(),
        }
    }
}

record! {
    /// One evaluation result.
    pub struct ResultEntry ("a result", strict = false) {
        /// Task (`Image Classification`).
        task: Text = "Task",
        /// Dataset (`ImageNet`).
        dataset: Text = "Dataset",
        /// The numbers.
        metrics: Metrics = "Metrics",
    }
}

record! {
    /// A collection of models sharing a paper and metadata.
    pub struct Collection ("a collection", strict = false) {
        /// Name (models refer to it by `In Collection`).
        name: Text = "Name",
        /// Paper.
        paper: Paper = "Paper",
        /// Shared metadata.
        metadata: Metadata = "Metadata",
        /// README.
        readme: Text = "README",
        /// Code.
        code: Text = "Code",
    }
}

record! {
    /// One model of the index.
    pub struct Model ("a model", strict = false) {
        /// Name (unique in a registry); one path component, as it names output files.
        #[schemars(regex(pattern = r"^[^./\\\u0000-\u001f\u007f-\u009f][^/\\\u0000-\u001f\u007f-\u009f]*$"))]
        name: Text = "Name",
        /// The collection it belongs to.
        in_collection: Text = "In Collection",
        /// Paper.
        paper: Paper = "Paper",
        /// Metadata.
        metadata: Metadata = "Metadata",
        /// Code link.
        code: Text = "Code",
        /// Weights URL.
        weights: Text = "Weights",
        /// Config path.
        config: Text = "Config",
        /// README.
        readme: Text = "README",
        /// Image.
        image: Text = "Image",
        /// Results.
        results: Vec<ResultEntry> = "Results",
        /// zoo's own facts about the model.
        zoo: Zoo = "Zoo",
    }
}

impl Model {
    /// The name, or `""` when missing (reported as an error when read).
    pub fn name(&self) -> &str {
        self.name.as_ref().map_or("", Text::as_str)
    }

    /// The top-1 accuracy of the first result that has one.
    pub fn top1(&self) -> Option<&Measure> {
        self.results
            .iter()
            .flatten()
            .filter_map(|r| r.metrics.as_ref())
            .find_map(|m| m.get("Top 1 Accuracy"))
    }
}

record! {
    /// A model-index document: a root with `Import:`, or collections and models.
    pub struct ModelIndex ("the model index", strict = false) {
        /// `model-index`.
        type_: Text = "Type",
        /// Other index files to read, as globs relative to this file.
        import: Vec<Text> = "Import",
        /// The code base.
        library: Library = "Library",
        /// Collections.
        collections: Vec<Collection> = "Collections",
        /// Models.
        models: Vec<Model> = "Models",
    }
}

// ---------------------------------------------------------------------------------------------
// The zoo extension

record! {
    /// `Zoo:` — what zoo needs to fetch, convert, count and run a model. Unknown keys are errors.
    #[schemars(extend("additionalProperties" = false))]
    pub struct Zoo ("the Zoo block", strict = true) {
        /// Other names that resolve to this model (`b6_ns`, `tf_efficientnet_b6.ns_jft_in1k`).
        aliases: Vec<Text> = "Aliases",
        /// The architecture, as `zoo::arch::ArchConfig` parses it: a timm name (`tf_efficientnet_b6`,
        /// `tf_mixnet_l`), a family with overrides (`efficientnet:width=…`), or a deprecated short
        /// name (`b6`).
        architecture: Text = "Architecture",
        /// Evaluation input settings.
        input: InputSettings = "Input",
        /// How the documented FLOPs were counted.
        flops: FlopsConvention = "Flops",
        /// Weight files, by role.
        files: Vec<WeightFile> = "Files",
        /// Reference test vectors.
        reference: ReferenceVectors = "Reference",
        /// Top-1 accuracies published elsewhere for the same weights.
        reported: Vec<ReportedResult> = "Reported",
        /// The weights' license as the Hugging Face Hub spells it (`apache-2.0`); `zoo export`
        /// writes it into `config.json` and the Hub card.
        license: Text = "License",
    }
}

record! {
    /// Evaluation preprocessing.
    #[schemars(extend("additionalProperties" = false))]
    pub struct InputSettings ("Zoo: Input", strict = true) {
        /// Square evaluation size in pixels.
        image_size: Count = "Image Size",
        /// Centre-crop ratio: resize the short side to `Image Size / Crop Pct`, then crop.
        crop_pct: Number = "Crop Pct",
        /// Resize interpolation.
        interpolation: Tagged<Interpolation> = "Interpolation",
        /// Per-channel RGB mean on the 0..1 scale (×255 gives TF's pixel-scale values).
        mean: Vec<Number> = "Mean",
        /// Per-channel RGB std on the 0..1 scale.
        std: Vec<Number> = "Std",
    }
}

record! {
    /// How a documented FLOPs value was counted.
    #[schemars(extend("additionalProperties" = false))]
    pub struct FlopsConvention ("Zoo: Flops", strict = true) {
        /// Convention name (see `metadata-conventions`).
        convention: Tagged<FlopsCounter> = "Convention",
        /// How the counted input size follows from `Image Size`.
        input_rule: Tagged<InputRule> = "Input Rule",
    }
}

record! {
    /// One weight file and where to get it.
    #[schemars(extend("additionalProperties" = false))]
    pub struct WeightFile ("Zoo: Files entry", strict = true) {
        /// What the file is.
        role: Tagged<FileRole> = "Role",
        /// File name (as published): one path component, linked as `by-name/<File>`.
        #[schemars(regex(pattern = r"^[^./\\\u0000-\u001f\u007f-\u009f][^/\\\u0000-\u001f\u007f-\u009f]*$"))]
        file: Text = "File",
        /// Download URLs, first preferred; the rest are mirrors.
        urls: Vec<Text> = "Urls",
        /// Size in bytes.
        size: Count = "Size",
        /// Full sha256 (64 hex digits).
        #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
        sha256: Text = "Sha256",
        /// Leading hex digits of the sha256 (timm/torch.hub's 8-digit suffix), at least 8.
        #[schemars(regex(pattern = r"^[0-9a-f]{8,64}$"))]
        sha256_prefix: Text = "Sha256 Prefix",
        /// Container format.
        format: Tagged<FileFormat> = "Format",
        /// A content fingerprint other than a hash (free form).
        fingerprint: Text = "Fingerprint",
    }
}

record! {
    /// Reference input and output for an inference check.
    #[schemars(extend("additionalProperties" = false))]
    pub struct ReferenceVectors ("Zoo: Reference", strict = true) {
        /// Input tensor file (`.npy`).
        input: Text = "Input",
        /// Expected logits file (`.npy`).
        logits: Text = "Logits",
        /// Maximum absolute difference allowed.
        tolerance: Number = "Tolerance",
    }
}

record! {
    /// A result for the same weights published elsewhere.
    #[schemars(extend("additionalProperties" = false))]
    pub struct ReportedResult ("Zoo: Reported entry", strict = true) {
        /// Who published it.
        source: Text = "Source",
        /// The evaluation set the numbers are for, named as in a `Results` entry's `Dataset`
        /// (`ImageNet ReaL`, `ImageNetV2 matched-frequency`); absent means `ImageNet`.
        dataset: Text = "Dataset",
        /// Top-1 accuracy.
        top_1_accuracy: Measure = "Top 1 Accuracy",
        /// Top-5 accuracy.
        top_5_accuracy: Measure = "Top 5 Accuracy",
        /// The source ran these weights on a model definition that changed after the card was
        /// measured (what changed, e.g. a timm commit): a card value far from this source, but
        /// near a source without a model change, is `explained`, not failed.
        model_change: Text = "Model Change",
    }
}

/// The dataset a `Zoo: Reported` entry without `Dataset` is for.
pub const DEFAULT_REPORTED_DATASET: &str = "ImageNet";

impl ReportedResult {
    /// The dataset the entry's numbers are for ([`DEFAULT_REPORTED_DATASET`] when unnamed).
    pub fn dataset(&self) -> &str {
        self.dataset
            .as_ref()
            .map_or(DEFAULT_REPORTED_DATASET, Text::as_str)
    }
}

macro_rules! keyword {
    ($(#[$m:meta])* pub enum $name:ident { $( $(#[$vm:meta])* $variant:ident = $text:literal ),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
        $(#[$m])*
        pub enum $name { $( $(#[$vm])* #[serde(rename = $text)] $variant, )* }
        impl Keyword for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),*];
        }
        impl $name {
            /// The spelling used in cards.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

keyword! {
    /// Resize interpolation.
    pub enum Interpolation {
        /// Bicubic.
        Bicubic = "bicubic",
        /// Bilinear.
        Bilinear = "bilinear",
        /// Nearest neighbour.
        Nearest = "nearest",
    }
}

keyword! {
    /// A FLOPs counting convention.
    pub enum FlopsCounter {
        /// thop 0.0.31 on timm 0.4.x: MACs; TF-'same' strided convs and the classifier count 0;
        /// BN 2 per element; pool C·(h·w+1).
        Thop2020 = "thop-2020",
        /// Plain conv + linear multiply-accumulates.
        Macs = "macs",
    }
}

keyword! {
    /// How the counted input size follows from `Image Size` S.
    pub enum InputRule {
        /// S × S.
        Square = "square",
        /// S × floor(S · 1546 / 1213): the docs' `dog.jpg` (1546×1213) resized to short side S, no crop.
        DogJpgShortSide = "dog-jpg-short-side",
    }
}

keyword! {
    /// What a weight file is.
    pub enum FileRole {
        /// timm's released PyTorch checkpoint.
        TimmPth = "timm-pth",
        /// The original TensorFlow checkpoint.
        TfCheckpoint = "tf-checkpoint",
        /// Hugging Face hub safetensors.
        HfSafetensors = "hf-safetensors",
    }
}

keyword! {
    /// Container format of a weight file.
    pub enum FileFormat {
        /// Pre-1.6 (non-zip) `torch.save`.
        PthLegacy = "pth-legacy",
        /// Zip `torch.save`.
        PthZip = "pth-zip",
        /// A `.tar.gz` of a TF checkpoint bundle (`model.ckpt.{index,data-*}`).
        TfBundleTarGz = "tf-bundle-tar-gz",
        /// safetensors.
        Safetensors = "safetensors",
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and checking one document

impl ModelIndex {
    /// Reads a parsed document and checks it on its own (fields, types, required keys, the Zoo
    /// block). Cross-document checks (dangling `In Collection`, duplicates) are the caller's.
    pub fn from_node(node: &Node, cx: &mut Ctx) -> Option<ModelIndex> {
        let index = ModelIndex::parse(node, "the model index", cx)?;
        index.check(cx);
        Some(index)
    }

    /// Writes the document back as YAML.
    pub fn to_yaml(&self) -> String {
        yaml::emit(&self.to_node())
    }

    fn check(&self, cx: &mut Ctx) {
        if let Some(t) = &self.type_ {
            if t.as_str() != "model-index" {
                cx.report(
                    Severity::Warning,
                    t.pos(),
                    format!("`Type` is `{}`, expected `model-index`", t.as_str()),
                );
            }
        }
        for c in self.collections.iter().flatten() {
            if c.name.is_none() {
                cx.error(c.pos, "collection is missing `Name`");
            }
            if let Some(Paper::Ref(p)) = &c.paper {
                require(
                    cx,
                    p.pos,
                    "paper",
                    &[("Title", p.title.is_some()), ("URL", p.url.is_some())],
                );
            }
        }
        for m in self.models.iter().flatten() {
            check_model(m, cx);
        }
    }
}

fn require(cx: &mut Ctx, pos: Pos, what: &str, fields: &[(&str, bool)]) {
    for (key, present) in fields {
        if !present {
            cx.error(pos, format!("{what} is missing `{key}`"));
        }
    }
}

fn check_model(m: &Model, cx: &mut Ctx) {
    require(cx, m.pos, "model", &[("Name", m.name.is_some())]);
    if let Some(name) = &m.name {
        // The name becomes a file name (`zoo convert NAME` writes `<name>-<sha8>.pth`).
        check_path_component(name, "Name", cx);
    }
    for r in m.results.iter().flatten() {
        require(
            cx,
            r.pos,
            "result",
            &[
                ("Task", r.task.is_some()),
                ("Dataset", r.dataset.is_some()),
                ("Metrics", r.metrics.is_some()),
            ],
        );
    }
    if let Some(z) = &m.zoo {
        check_zoo(z, cx);
        let documented = m
            .metadata
            .as_ref()
            .and_then(|meta| meta.flops_convention.as_ref());
        let counted = z.flops.as_ref().and_then(|f| f.convention.as_ref());
        if let (Some(d), Some(c)) = (documented, counted) {
            if d.value != c.value {
                cx.error(
                    d.raw.pos,
                    format!(
                        "`FLOPs Convention` is `{}`, but `Zoo: Flops: Convention` is `{}`",
                        d.raw.text, c.raw.text
                    ),
                );
            }
        }
    }
}

/// Reports `value` unless it is one safe path component ([`crate::fsutil::check_component`]).
fn check_path_component(value: &Text, key: &str, cx: &mut Ctx) {
    if let Err(e) = crate::fsutil::check_component(value.as_str()) {
        cx.error(
            value.pos(),
            format!(
                "`{key}` `{}` must be a single file name: {}",
                value.as_str().escape_debug(),
                e.reason
            ),
        );
    }
}

pub use crate::fetch::MIN_SHA256_PREFIX;

fn is_hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn check_zoo(z: &Zoo, cx: &mut Ctx) {
    require(
        cx,
        z.pos,
        "Zoo block",
        &[("Architecture", z.architecture.is_some())],
    );
    if let Some(a) = &z.architecture {
        // Parsed and resolved, so an out-of-range width, depth or class count is reported here,
        // at its line, rather than when `validate` or `flops` first counts the model.
        match crate::arch::ArchConfig::from_str(a.as_str()) {
            Err(e) => cx.error(
                a.pos(),
                format!("`Architecture` `{}` does not parse: {e}", a.as_str()),
            ),
            Ok(cfg) => {
                if let Err(e) = cfg.resolve() {
                    cx.error(
                        a.pos(),
                        format!("`Architecture` `{}` does not resolve: {e}", a.as_str()),
                    );
                } else if crate::arch::ArchConfig::is_short_name(a.as_str()) {
                    cx.report(
                        Severity::Warning,
                        a.pos(),
                        format!(
                            "`Architecture` `{}` is a deprecated short name; write the timm name `tf_efficientnet_{}`",
                            a.as_str(),
                            a.as_str()
                        ),
                    );
                }
            }
        }
    }
    if let Some(i) = &z.input {
        require(
            cx,
            i.pos,
            "Zoo: Input",
            &[
                ("Image Size", i.image_size.is_some()),
                ("Crop Pct", i.crop_pct.is_some()),
                ("Interpolation", i.interpolation.is_some()),
                ("Mean", i.mean.is_some()),
                ("Std", i.std.is_some()),
            ],
        );
        for (key, v) in [("Mean", &i.mean), ("Std", &i.std)] {
            if let Some(v) = v {
                if v.len() != 3 {
                    cx.error(
                        i.pos,
                        format!("`{key}` must have 3 values (RGB), found {}", v.len()),
                    );
                }
            }
        }
        if let Some(s) = &i.image_size {
            let max = crate::flops::MAX_INPUT_SIDE as u64;
            if !(1..=max).contains(&s.value) {
                cx.error(
                    s.raw.pos,
                    format!(
                        "`Image Size` must be from 1 to {max} pixels, found `{}`",
                        s.raw.text
                    ),
                );
            }
        }
        if let Some(c) = &i.crop_pct {
            if !(c.value > 0.0 && c.value <= 1.0) {
                cx.error(
                    c.raw.pos,
                    format!("`Crop Pct` must be in (0, 1], found `{}`", c.raw.text),
                );
            }
        }
    }
    if let Some(f) = &z.flops {
        require(
            cx,
            f.pos,
            "Zoo: Flops",
            &[
                ("Convention", f.convention.is_some()),
                ("Input Rule", f.input_rule.is_some()),
            ],
        );
    }
    for f in z.files.iter().flatten() {
        require(
            cx,
            f.pos,
            "file",
            &[
                ("Role", f.role.is_some()),
                ("File", f.file.is_some()),
                ("Urls", f.urls.as_ref().is_some_and(|u| !u.is_empty())),
                ("Format", f.format.is_some()),
            ],
        );
        if let Some(file) = &f.file {
            // The cache links the download as `by-name/<File>`.
            check_path_component(file, "File", cx);
        }
        if let Some(h) = &f.sha256 {
            if h.as_str().len() != 64 || !is_hex(h.as_str()) {
                cx.error(
                    h.pos(),
                    format!(
                        "`Sha256` must be 64 lowercase hex digits, found `{}`",
                        h.as_str()
                    ),
                );
            }
        }
        for h in [&f.sha256, &f.sha256_prefix].into_iter().flatten() {
            if h.0.style == yaml::Style::Plain && !matches!(h.0.value(), ScalarValue::Text(_)) {
                cx.report(
                    Severity::Warning,
                    h.pos(),
                    format!("quote `{}`: YAML reads it as a number", h.as_str()),
                );
            }
        }
        if let Some(p) = &f.sha256_prefix {
            let s = p.as_str();
            if s.len() < MIN_SHA256_PREFIX || s.len() > 64 || !is_hex(s) {
                cx.error(
                    p.pos(),
                    format!(
                        "`Sha256 Prefix` must be {MIN_SHA256_PREFIX} to 64 lowercase hex digits \
                         (fewer verify almost nothing), found `{s}`"
                    ),
                );
            } else if let Some(named) = f
                .file
                .as_ref()
                .and_then(|n| n.as_str().rsplit_once('-'))
                .and_then(|(_, tail)| tail.split('.').next())
                .filter(|h| h.len() >= 8 && is_hex(h))
            {
                if !named.starts_with(s) && !s.starts_with(named) {
                    cx.error(
                        p.pos(),
                        format!(
                            "`Sha256 Prefix` `{s}` disagrees with the file name's hash `{named}`"
                        ),
                    );
                }
            } else if let Some(full) = &f.sha256 {
                if !full.as_str().starts_with(s) {
                    cx.error(
                        p.pos(),
                        format!("`Sha256 Prefix` `{s}` is not a prefix of `Sha256`"),
                    );
                }
            }
        }
        for u in f.urls.iter().flatten() {
            // Printed without credentials, whatever is wrong with it.
            let shown = crate::fetch::redact_url(u.as_str());
            if !(u.as_str().starts_with("https://") || u.as_str().starts_with("http://")) {
                cx.error(u.pos(), format!("URL must be http(s), found `{shown}`"));
            } else if shown != u.as_str() {
                cx.error(
                    u.pos(),
                    format!(
                        "URL must not carry credentials (`user:password@`), found `{shown}`; \
                         a card is public"
                    ),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema

/// Draft 2020-12.
fn generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft2020_12().into_generator()
}

/// Optional keys are absent rather than `null` in cards (`null` is not a valid value for any of
/// them), so drop the `{"type": "null"}` alternative that `Option` adds.
fn drop_null_alternatives(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(obj) => {
            if let Some(serde_json::Value::Array(alts)) = obj.get_mut("anyOf") {
                alts.retain(|a| a != &serde_json::json!({"type": "null"}));
                if alts.len() == 1 {
                    if let Some(serde_json::Value::Object(only)) = alts.pop() {
                        obj.remove("anyOf");
                        for (k, val) in only {
                            obj.entry(k).or_insert(val);
                        }
                    }
                }
            }
            obj.values_mut().for_each(drop_null_alternatives);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_alternatives),
        _ => {}
    }
}

/// The generated schema files: (`file name`, pretty JSON with a trailing newline). The first is
/// the full model-index schema; the second is the `Zoo:` block alone.
pub fn schema_files() -> Vec<(&'static str, String)> {
    let render = |schema: Schema, id: &str| {
        let mut value = schema.to_value();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("$id".into(), serde_json::Value::String(id.into()));
        }
        drop_null_alternatives(&mut value);
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        (
            "model-index.schema.json",
            render(
                generator().into_root_schema_for::<ModelIndex>(),
                "model-index.schema.json",
            ),
        ),
        (
            "zoo-extension.schema.json",
            render(
                generator().into_root_schema_for::<Zoo>(),
                "zoo-extension.schema.json",
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_are_near_misses_and_custom_keys_are_not() {
        let known = [
            "Parameters",
            "FLOPs",
            "Image Size",
            "ID",
            "LR",
            "Top 1 Accuracy",
        ];
        assert_eq!(near_miss("Paramters", &known), Some("Parameters"));
        assert_eq!(near_miss("parameters", &known), Some("Parameters"));
        assert_eq!(near_miss("Image_Size", &known), Some("Image Size"));
        assert_eq!(near_miss("FLOP", &known), Some("FLOPs"));
        assert_eq!(near_miss("Top 1 Acuracy", &known), Some("Top 1 Accuracy"));
        assert_eq!(near_miss("Parameters", &known), None, "a known key");
        assert_eq!(near_miss("FLOPs Convention", &known), None);
        assert_eq!(near_miss("Training Hours", &known), None);
        // Two-letter keys need an exact neighbour: `IO` is one edit from `ID`, `XY` is not.
        assert_eq!(near_miss("IO", &known), Some("ID"));
        assert_eq!(near_miss("XY", &known), None);
        assert_eq!(near_miss("Top 5 Accuracy", &KNOWN_METRICS), None);
    }
}
