//! Diagnostics: one finding about one place in one file, printed as `file:line:col: severity: message`
//! (the format compilers use, so editors can jump to it).
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a finding is. Errors fail `zoo check-cards`; warnings and info do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The card is wrong: a required field is missing, a value has the wrong type, a reference dangles.
    Error,
    /// The card is suspicious but usable.
    Warning,
    /// Worth knowing, e.g. a key zoo does not know (it is kept).
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

impl Pos {
    /// A position.
    pub fn new(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One finding, located in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// The file as given (or as the registry names it, `registry/...`).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, naming the field and the value found.
    pub message: String,
}

impl Diagnostic {
    /// A finding at `pos` in `file`.
    pub fn new(
        severity: Severity,
        file: impl Into<PathBuf>,
        pos: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            file: file.into(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    /// Whether this finding fails a check.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.severity,
            self.message
        )
    }
}

/// Sorts diagnostics by file, line, column, severity and message, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity, &a.message)
            .cmp(&(&b.file, b.line, b.col, b.severity, &b.message))
    });
}

/// 1-based line and column (in characters) of a byte offset.
pub fn pos_of(text: &str, offset: usize) -> Pos {
    PosCursor::new(text).pos(offset)
}

/// Positions of increasing byte offsets in one text, each byte scanned once: asking for the
/// positions of n blocks costs O(file), not O(n × file) as [`pos_of`] per block would.
#[derive(Debug, Clone)]
pub struct PosCursor<'t> {
    text: &'t str,
    offset: usize,
    line: usize,
    col: usize,
}

impl<'t> PosCursor<'t> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'t str) -> PosCursor<'t> {
        PosCursor {
            text,
            offset: 0,
            line: 1,
            col: 1,
        }
    }

    /// 1-based line and column (in characters) of byte `offset` (clamped to the text). An
    /// offset before the previous one rescans from the start.
    pub fn pos(&mut self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            *self = PosCursor::new(self.text);
        }
        for &b in &self.text.as_bytes()[self.offset..offset] {
            if b == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                // not a UTF-8 continuation byte: a new character
                self.col += 1;
            }
        }
        self.offset = offset;
        Pos::new(self.line, self.col)
    }
}
