//! A YAML document tree that remembers where every node came from and how every scalar was
//! spelled, plus the block-style emitter that writes it back.
//!
//! Why not serde: model cards spell numbers as strings (`Image Size: '224'`), floats in their own
//! way (`1.0e-05`) and leave fields empty (`''`). A serde round trip re-spells all of these. Here a
//! scalar keeps its source text and quoting style, so writing a card back reproduces it byte for
//! byte, and every node keeps its line and column for diagnostics.
//!
//! The emitter writes the layout model-index cards use: block style, two-space indentation, and
//! sequences at the same indentation as their parent key (`Tasks:\n- Image Classification`).
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::Pos;

/// How a scalar was quoted in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Style {
    /// No quotes.
    #[default]
    Plain,
    /// `'…'`.
    SingleQuoted,
    /// `"…"`.
    DoubleQuoted,
    /// A `|` or `>` block scalar (written back double-quoted).
    Block,
}

/// A scalar: its text (after unquoting), how it was quoted, and where it starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scalar {
    /// The value as YAML reads it (quotes removed, escapes resolved).
    pub text: String,
    /// How it was quoted.
    pub style: Style,
    /// Where it starts (the opening quote, if quoted).
    pub pos: Pos,
}

/// A scalar's value read the way model cards mean it.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarValue<'a> {
    /// An empty string (`''`) or a missing plain value.
    Empty,
    /// `null` or `~` (plain only).
    Null,
    /// `true` / `false` (plain only).
    Bool(bool),
    /// An integer, quoted or not (`2048`, `'224'`).
    Int(i64),
    /// A float, quoted or not (`0.128`, `'0.875'`, `1.0e-05`).
    Float(f64),
    /// A percentage (`78.66%`), as the number before the `%`.
    Percent(f64),
    /// Anything else.
    Text(&'a str),
}

impl Scalar {
    /// A scalar with the given text, quoted only if YAML would otherwise read it as something else.
    pub fn new(text: impl Into<String>) -> Scalar {
        let text = text.into();
        let style = if needs_quotes(&text) {
            Style::SingleQuoted
        } else {
            Style::Plain
        };
        Scalar {
            text,
            style,
            pos: Pos::default(),
        }
    }

    /// Reads the text as a card value. Quoted numbers count as numbers: cards quote them.
    pub fn value(&self) -> ScalarValue<'_> {
        let t = self.text.trim();
        if t.is_empty() {
            return ScalarValue::Empty;
        }
        if self.style == Style::Plain {
            match t {
                "null" | "Null" | "NULL" | "~" => return ScalarValue::Null,
                "true" | "True" | "TRUE" => return ScalarValue::Bool(true),
                "false" | "False" | "FALSE" => return ScalarValue::Bool(false),
                _ => {}
            }
        }
        if let Some(num) = t.strip_suffix('%') {
            if let Some(v) = parse_float(num.trim_end()) {
                return ScalarValue::Percent(v);
            }
        }
        if let Ok(v) = t.parse::<i64>() {
            return ScalarValue::Int(v);
        }
        if let Some(v) = parse_float(t) {
            return ScalarValue::Float(v);
        }
        ScalarValue::Text(&self.text)
    }
}

/// Parses a decimal float the way YAML 1.2 core does (no `inf`/`nan`, no hex), without Rust's
/// extras such as `infinity`.
fn parse_float(t: &str) -> Option<f64> {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let ok = !body.is_empty()
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if !ok {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Whether a plain scalar with this text would be misread (as a number, null, bool, or as syntax).
fn needs_quotes(text: &str) -> bool {
    if text.is_empty() || text.trim() != text {
        return true;
    }
    let probe = Scalar {
        text: text.to_string(),
        style: Style::Plain,
        pos: Pos::default(),
    };
    if !matches!(probe.value(), ScalarValue::Text(_)) {
        return true;
    }
    let first = text.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    text.contains(": ") || text.contains(" #") || text.ends_with(':') || text.contains('\n')
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar.
    Scalar(Scalar),
    /// A sequence.
    Seq(Seq),
    /// A mapping.
    Map(Map),
}

/// A sequence and where it starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seq {
    /// The items, in order.
    pub items: Vec<Node>,
    /// Where it starts.
    pub pos: Pos,
}

/// A mapping with scalar keys, in source order, and where it starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    /// Key/value pairs in source order.
    pub entries: Vec<(Scalar, Node)>,
    /// Where it starts.
    pub pos: Pos,
}

impl Node {
    /// Where the node starts.
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar(s) => s.pos,
            Node::Seq(s) => s.pos,
            Node::Map(m) => m.pos,
        }
    }

    /// A short name of the node's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(_) => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it found.
    pub message: String,
}

/// Where a YAML text sits in its file, so positions are those of the file (a block embedded in a
/// markdown comment starts on some later line, and its first line may start after `<!--`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// File line of the text's first line, minus one.
    pub line_offset: usize,
    /// Column offset applied on the text's first line only.
    pub first_line_col_offset: usize,
}

impl Origin {
    /// A text that is the whole file.
    pub const FILE: Origin = Origin {
        line_offset: 0,
        first_line_col_offset: 0,
    };

    fn pos(&self, mark: &Marker) -> Pos {
        // yaml-rust2 lines are 1-based and columns 0-based.
        let col = mark.col() + 1;
        let col = if mark.line() == 1 {
            col + self.first_line_col_offset
        } else {
            col
        };
        Pos::new(mark.line() + self.line_offset, col)
    }
}

enum Frame {
    Seq(Seq),
    /// A mapping being read, the key waiting for its value, and its keys so far by hash (see
    /// [`KeyIndex`]).
    Map(Map, Option<Scalar>, KeyIndex),
}

/// The keys of one mapping, for finding a duplicate in constant time (a mapping with n keys is
/// read in O(n), not O(n²)). Keys are hashed once with the process's randomly keyed SipHash
/// (so crafted keys cannot collide on purpose), and the table maps that hash to the index of
/// the first key with it; a hit is confirmed by comparing the texts.
#[derive(Default)]
struct KeyIndex {
    by_hash: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
}

/// The hasher of [`KeyIndex`]'s table: its keys are already keyed SipHash values.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

thread_local! {
    /// One random SipHash key per thread, shared by every mapping read on it.
    static KEY_HASHER: RandomState = RandomState::new();
}

impl KeyIndex {
    /// Records `key` as entry `index` of `entries`; returns the index of an earlier entry with
    /// the same text, if any.
    fn insert(&mut self, key: &str, index: usize, entries: &[(Scalar, Node)]) -> Option<usize> {
        let hash = KEY_HASHER.with(|h| h.hash_one(key));
        match self.by_hash.get(&hash) {
            Some(&first) if entries[first].0.text == key => Some(first),
            // A 64-bit collision of different keys: fall back to a scan for this one key.
            Some(_) => entries.iter().position(|(k, _)| k.text == key),
            None => {
                self.by_hash.insert(hash, index);
                None
            }
        }
    }
}

struct Builder {
    origin: Origin,
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { pos, message });
        }
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq)) => seq.items.push(node),
            Some(Frame::Map(map, pending, seen)) => match pending.take() {
                Some(key) => {
                    if let Some(first) = seen.insert(&key.text, map.entries.len(), &map.entries) {
                        let msg = format!(
                            "duplicate key `{}` (first at line {})",
                            key.text, map.entries[first].0.pos.line
                        );
                        let pos = key.pos;
                        self.fail(pos, msg);
                        return;
                    }
                    // yaml-rust2 marks a block mapping after its first key; start it at the key.
                    if map.entries.is_empty() && key.pos < map.pos {
                        map.pos = key.pos;
                    }
                    map.entries.push((key, node));
                }
                None => match node {
                    Node::Scalar(key) => *pending = Some(key),
                    other => {
                        let msg = format!("mapping keys must be scalars, found {}", other.kind());
                        self.fail(other.pos(), msg);
                    }
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = self.origin.pos(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    self.fail(pos, "anchors and tags are not used in model cards".into());
                    return;
                }
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted => Style::SingleQuoted,
                    TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    TScalarStyle::Literal | TScalarStyle::Folded => Style::Block,
                };
                self.push_node(Node::Scalar(Scalar { text, style, pos }));
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)
                if anchor != 0 || tag.is_some() =>
            {
                self.fail(pos, "anchors and tags are not used in model cards".into());
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(Seq {
                items: Vec::new(),
                pos,
            })),
            Event::MappingStart(..) => self.stack.push(Frame::Map(
                Map {
                    entries: Vec::new(),
                    pos,
                },
                None,
                KeyIndex::default(),
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(seq)) => Node::Seq(seq),
                    Some(Frame::Map(map, ..)) => Node::Map(map),
                    None => return,
                };
                self.push_node(node);
            }
            Event::Alias(_) => self.fail(pos, "aliases are not used in model cards".into()),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document. `Ok(None)` for an empty document.
pub fn parse(text: &str, origin: Origin) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder {
        origin,
        stack: Vec::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(err) = parser.load(&mut builder, false) {
        return Err(SyntaxError {
            pos: origin.pos(err.marker()),
            message: err.info().to_string(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    // A second document would be silently ignored by `load(_, false)`; refuse it instead.
    let mut rest = Builder {
        origin,
        stack: Vec::new(),
        root: None,
        error: None,
    };
    if let Err(err) = parser.load(&mut rest, false) {
        return Err(SyntaxError {
            pos: origin.pos(err.marker()),
            message: err.info().to_string(),
        });
    }
    if let Some(node) = rest.root {
        return Err(SyntaxError {
            pos: node.pos(),
            message: "a second YAML document; a model index is one document".into(),
        });
    }
    Ok(builder.root)
}

/// Writes a node as block-style YAML (see the module docs), ending with a newline.
pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(map) if !map.entries.is_empty() => emit_map(&mut out, map, 0, false),
        Node::Seq(seq) if !seq.items.is_empty() => emit_seq(&mut out, seq, 0),
        other => {
            emit_inline(&mut out, other);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Emits an empty collection or a scalar on the current line.
fn emit_inline(out: &mut String, node: &Node) {
    match node {
        Node::Scalar(s) => emit_scalar(out, s),
        Node::Seq(_) => out.push_str("[]"),
        Node::Map(_) => out.push_str("{}"),
    }
}

/// `first_inline`: the first key goes on the current line (after `- `).
fn emit_map(out: &mut String, map: &Map, level: usize, first_inline: bool) {
    for (i, (key, value)) in map.entries.iter().enumerate() {
        if !(i == 0 && first_inline) {
            indent(out, level);
        }
        emit_scalar(out, key);
        out.push(':');
        match value {
            Node::Map(m) if !m.entries.is_empty() => {
                out.push('\n');
                emit_map(out, m, level + 2, false);
            }
            Node::Seq(s) if !s.items.is_empty() => {
                out.push('\n');
                emit_seq(out, s, level);
            }
            Node::Scalar(s) if s.text.is_empty() && s.style == Style::Plain => out.push('\n'),
            other => {
                out.push(' ');
                emit_inline(out, other);
                out.push('\n');
            }
        }
    }
}

fn emit_seq(out: &mut String, seq: &Seq, level: usize) {
    for item in &seq.items {
        indent(out, level);
        out.push('-');
        match item {
            Node::Map(m) if !m.entries.is_empty() => {
                out.push(' ');
                emit_map(out, m, level + 2, true);
            }
            Node::Seq(s) if !s.items.is_empty() => {
                out.push('\n');
                emit_seq(out, s, level + 2);
            }
            other => {
                out.push(' ');
                emit_inline(out, other);
                out.push('\n');
            }
        }
    }
}

fn emit_scalar(out: &mut String, s: &Scalar) {
    let style = match s.style {
        Style::Plain if needs_quotes(&s.text) && !s.text.is_empty() => {
            // A plain scalar whose text now needs quotes (edited, or it was a multi-line plain).
            if matches!(s.value(), ScalarValue::Text(_)) {
                Style::SingleQuoted
            } else {
                Style::Plain
            }
        }
        Style::Block => Style::DoubleQuoted,
        other => other,
    };
    match style {
        Style::Plain => out.push_str(&s.text),
        Style::SingleQuoted if !s.text.contains('\n') => {
            out.push('\'');
            out.push_str(&s.text.replace('\'', "''"));
            out.push('\'');
        }
        _ => {
            out.push('"');
            for c in s.text.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_styles_kept() {
        let node = parse("a: 1\nb:\n- 'x'\n", Origin::FILE).unwrap().unwrap();
        let Node::Map(m) = node else { panic!() };
        assert_eq!(m.entries[0].0.pos, Pos::new(1, 1));
        assert_eq!(m.entries[0].1.pos(), Pos::new(1, 4));
        let Node::Seq(s) = &m.entries[1].1 else {
            panic!()
        };
        let Node::Scalar(x) = &s.items[0] else {
            panic!()
        };
        assert_eq!((x.pos, x.style), (Pos::new(3, 3), Style::SingleQuoted));
    }

    #[test]
    fn values_are_typed() {
        let s = |t: &str, style| Scalar {
            text: t.into(),
            style,
            pos: Pos::default(),
        };
        assert_eq!(s("224", Style::SingleQuoted).value(), ScalarValue::Int(224));
        assert_eq!(
            s("1.0e-05", Style::Plain).value(),
            ScalarValue::Float(1.0e-05)
        );
        assert_eq!(
            s("78.66%", Style::Plain).value(),
            ScalarValue::Percent(78.66)
        );
        assert_eq!(s("", Style::SingleQuoted).value(), ScalarValue::Empty);
        assert_eq!(s("lots", Style::Plain).value(), ScalarValue::Text("lots"));
        assert_eq!(s("inf", Style::Plain).value(), ScalarValue::Text("inf"));
    }

    #[test]
    fn emit_reproduces_block_style() {
        let text = "Models:\n- Name: a\n  Metadata:\n    Tasks:\n    - X\n    Crop Pct: '0.875'\n    E: ''\n  Results:\n  - Task: T\n    Metrics:\n      Top 1: 1%\n";
        let node = parse(text, Origin::FILE).unwrap().unwrap();
        assert_eq!(emit(&node), text);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n", Origin::FILE).unwrap_err();
        assert_eq!(err.pos, Pos::new(2, 1));
        let err = parse("a: 1\nb: 2\nc:\n  a: 3\n  a: 4\n", Origin::FILE).unwrap_err();
        assert_eq!(err.pos, Pos::new(5, 3));
        assert!(err.message.contains("first at line 4"), "{}", err.message);
    }

    /// Different keys whose hashes collide are still told apart by their text.
    #[test]
    fn key_index_confirms_hash_hits_by_text() {
        let mut index = KeyIndex::default();
        let hash = KEY_HASHER.with(|h| h.hash_one("a"));
        // Plant "b" under the hash of "a", as a collision would.
        index.by_hash.insert(hash, 0);
        let entries = vec![(Scalar::new("b"), Node::Scalar(Scalar::new("1")))];
        assert_eq!(index.insert("a", 1, &entries), None);
        let entries = vec![
            (Scalar::new("b"), Node::Scalar(Scalar::new("1"))),
            (Scalar::new("a"), Node::Scalar(Scalar::new("1"))),
        ];
        assert_eq!(index.insert("a", 2, &entries), Some(1));
    }
}
