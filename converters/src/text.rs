//! Names that come from files (tensor names, zip and tar entry names, pickle globals, storage
//! keys, header text) are shown in error messages through [`Escaped`], so a crafted name cannot
//! send escape sequences to the terminal (clear the screen, retitle the window, hide text) or
//! flip the reading direction of the rest of the line.
use std::fmt;

/// Shows a string with control characters, bidirectional-text controls and other invisible
/// format characters written as `\u{..}` escapes (`\n`, `\t`, `\\` stay readable as `\n`,
/// `\t`, `\\`). Everything else, including non-ASCII letters, is shown as is.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// [`Escaped`] of a string.
pub fn esc(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// Escaped text of arbitrary bytes: valid UTF-8 as [`Escaped`], other bytes as `\xNN`.
pub fn esc_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&Escaped(chunk.valid()).to_string());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A whole message or report line for a terminal or a report file: like [`esc`] for every
/// control or invisible format character, but line breaks and tabs stay as they are (a message
/// may have several lines) and so do backslashes (the parts of the message that need it were
/// escaped with [`esc`] already). Borrowed when there is nothing to escape.
pub fn esc_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .chars()
        .any(|c| needs_escape(c) && !matches!(c, '\\' | '\n' | '\t'))
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '\n' | '\t' => out.push(c),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}' // word joiner, bidi isolates, invisible operators
            | '\u{feff}'              // zero-width no-break space
            | '\u{fff9}'..='\u{fffb}' // interlinear annotation controls
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.chars().any(needs_escape) {
            return f.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                '\\' => f.write_str("\\\\")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        let evil = "\u{1b}[2J\u{1b}[31mos\u{7}\u{9b}x\u{202e}abc\u{0}";
        let shown = esc(evil).to_string();
        assert!(
            shown.chars().all(|c| c == '\\' || !needs_escape(c)),
            "{shown}"
        );
        assert_eq!(
            shown,
            "\\u{1b}[2J\\u{1b}[31mos\\u{7}\\u{9b}x\\u{202e}abc\\u{0}"
        );
        assert_eq!(
            esc("blocks.0.conv_dw.weight").to_string(),
            "blocks.0.conv_dw.weight"
        );
        assert_eq!(esc("größe").to_string(), "größe");
        assert_eq!(esc_bytes(b"a\xffb\x1b"), "a\\xffb\\u{1b}");
        assert_eq!(
            esc_text("line 1\n\tC:\\x \u{1b}[31m\u{7}\r\u{202e}"),
            "line 1\n\tC:\\x \\u{1b}[31m\\u{7}\\u{d}\\u{202e}"
        );
        assert!(matches!(esc_text("plain\n"), std::borrow::Cow::Borrowed(_)));
    }
}
