//! Model cards on disk: a model-index YAML file, a markdown card with the index embedded in an
//! HTML comment (`<!--` newline, YAML, `-->`), as timm's docs templates have it, or a Hugging Face
//! Hub README whose metadata is YAML front matter (see [`crate::schema::hf`]).
//!
//! Reading keeps the whole file text; writing replaces only the YAML inside each comment with the
//! emitted index, so an unchanged card is written back byte for byte. Positions in diagnostics are
//! those of the file (for markdown, the line numbers of the `.md`).
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Pos, Severity};
use crate::schema::hf::{self, FrontMatter};
use crate::schema::yaml::{self, Origin};
use crate::schema::{Ctx, ModelIndex};

/// What kind of file a card is, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// `.yml` / `.yaml`: the file is one model-index document.
    Yaml,
    /// `.md`: model-index documents live in `<!-- … -->` comments.
    Markdown,
    /// `.md` that starts with a `---` line: a Hugging Face Hub README, whose metadata is the YAML
    /// front matter (model-index comments in its body are read too).
    HubReadme,
}

impl CardKind {
    /// The kind for a path (markdown for `.md`/`.markdown`, YAML otherwise). Whether a markdown
    /// card is a [`CardKind::HubReadme`] depends on its text ([`Card::parse`] decides).
    pub fn of(path: &Path) -> CardKind {
        match path.extension().and_then(|e| e.to_str()) {
            Some("md" | "markdown") => CardKind::Markdown,
            _ => CardKind::Yaml,
        }
    }
}

/// One model-index document inside a card.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBlock {
    /// Byte range of the YAML in the file text (the whole file for YAML cards).
    pub range: Range<usize>,
    /// The document.
    pub index: ModelIndex,
}

/// A card read from text.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The file, as it is printed in diagnostics.
    pub path: PathBuf,
    /// Its kind.
    pub kind: CardKind,
    /// The full original text.
    pub text: String,
    /// Its model-index documents, in file order.
    pub blocks: Vec<IndexBlock>,
    /// The Hub metadata of a [`CardKind::HubReadme`].
    pub front_matter: Option<FrontMatter>,
}

/// Finds model-index comment blocks in markdown: the byte range of each comment's content, and
/// whether it holds a model index (a line starting with a top-level model-index key).
/// The search starts at byte `from` (after a Hub README's front matter).
fn comment_blocks(
    text: &str,
    from: usize,
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(open) = text[at..].find("<!--").map(|i| i + at) {
        let start = open + 4;
        let Some(close) = text[start..].find("-->").map(|i| i + start) else {
            if looks_like_index(&text[start..]) {
                diags.push(Diagnostic::new(
                    Severity::Error,
                    path,
                    pos_of(text, open),
                    "model-index comment is not closed (no `-->`)",
                ));
            }
            break;
        };
        if looks_like_index(&text[start..close]) {
            out.push(start..close);
        }
        at = close + 3;
    }
    out
}

fn looks_like_index(content: &str) -> bool {
    content.lines().any(|l| {
        ["Type:", "Import:", "Library:", "Collections:", "Models:"]
            .iter()
            .any(|k| l.starts_with(k))
    })
}

pub use crate::diagnostic::{pos_of, PosCursor};

impl Card {
    /// Reads a card from its text. Returns the card (if any document could be read) and every
    /// finding. A markdown card without a model-index comment, or with one that is not valid
    /// YAML, is an error. A markdown card that starts with a `---` line is a Hub README: its
    /// front matter must be closed, valid YAML and valid Hub metadata; model-index comments in
    /// its body are optional.
    pub fn parse(path: &Path, text: &str) -> (Option<Card>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let front = match CardKind::of(path) {
            CardKind::Yaml => None,
            _ => Some(hf::split_front_matter(text)),
        };
        let (kind, ranges, front_matter) = match front {
            None => (
                CardKind::Yaml,
                std::iter::once(0..text.len()).collect(),
                None,
            ),
            Some(Ok(None)) => {
                let ranges = comment_blocks(text, 0, path, &mut diags);
                if ranges.is_empty() && diags.is_empty() {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        path,
                        Pos::new(1, 1),
                        "no model-index block (`<!--` … `Type: model-index` … `-->`) in this card",
                    ));
                }
                (CardKind::Markdown, ranges, None)
            }
            Some(Ok(Some(span))) => {
                let (front_matter, mut found) = hf::parse_front_matter(path, text, &span);
                diags.append(&mut found);
                let ranges = comment_blocks(text, span.body_start, path, &mut diags);
                (CardKind::HubReadme, ranges, front_matter)
            }
            Some(Err(unclosed)) => {
                diags.push(Diagnostic::new(
                    Severity::Error,
                    path,
                    Pos::new(1, 1),
                    unclosed.to_string(),
                ));
                (CardKind::HubReadme, Vec::new(), None)
            }
        };
        Card::read_blocks(path, text, kind, ranges, front_matter, diags)
    }

    /// Reads the model-index documents at `ranges` and assembles the card (`None` when it has
    /// neither a document nor front matter).
    fn read_blocks(
        path: &Path,
        text: &str,
        kind: CardKind,
        ranges: Vec<Range<usize>>,
        front_matter: Option<FrontMatter>,
        mut diags: Vec<Diagnostic>,
    ) -> (Option<Card>, Vec<Diagnostic>) {
        let mut blocks = Vec::new();
        // `ranges` are in file order, so one cursor finds every block's start in one pass.
        let mut cursor = PosCursor::new(text);
        for range in ranges {
            let start = cursor.pos(range.start);
            let origin = Origin {
                line_offset: start.line - 1,
                first_line_col_offset: start.col - 1,
            };
            let node = match yaml::parse(&text[range.clone()], origin) {
                Ok(Some(node)) => node,
                Ok(None) => {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        path,
                        start,
                        "empty model-index document",
                    ));
                    continue;
                }
                Err(e) => {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        path,
                        e.pos,
                        format!("invalid YAML: {}", e.message),
                    ));
                    continue;
                }
            };
            let mut cx = Ctx::new(path);
            let index = ModelIndex::from_node(&node, &mut cx);
            diags.append(&mut cx.diags);
            if let Some(index) = index {
                blocks.push(IndexBlock { range, index });
            }
        }
        let card = (!blocks.is_empty() || front_matter.is_some()).then(|| Card {
            path: path.to_path_buf(),
            kind,
            text: text.to_string(),
            blocks,
            front_matter,
        });
        (card, diags)
    }

    /// The card's text with every model-index document re-emitted from the typed data.
    /// Whitespace around the YAML inside a comment (the newline after `<!--`) is kept.
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for block in &self.blocks {
            let original = &self.text[block.range.clone()];
            let lead_len = original.len() - original.trim_start_matches(['\n', '\r']).len();
            let trail = original.rfind('\n').map_or("", |i| &original[i + 1..]);
            let trail = if trail.trim().is_empty() { trail } else { "" };
            out.push_str(&self.text[at..block.range.start]);
            out.push_str(&original[..lead_len]);
            out.push_str(&block.index.to_yaml());
            out.push_str(trail);
            at = block.range.end;
        }
        out.push_str(&self.text[at..]);
        out
    }

    /// The model-index documents' YAML as written back (joined, for snapshots).
    pub fn index_yaml(&self) -> String {
        self.blocks
            .iter()
            .map(|b| b.index.to_yaml())
            .collect::<Vec<_>>()
            .join("---\n")
    }
}
