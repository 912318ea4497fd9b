//! NumPy `.npy` arrays (reference inputs and logits).
//!
//! # Byte layout
//! `\x93NUMPY`, major and minor version bytes, the header length (u16 LE for version 1.0,
//! u32 LE for 2.0 and 3.0), then the header: a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 10), }` padded with spaces and a
//! newline, then the raw data. Only little-endian (or byte-sized) dtypes in C order are
//! read; anything else is a typed error, never a silent conversion.
//!
//! The header is parsed as the Python dict literal numpy writes, strictly: `{`, the keys
//! `'descr'` (a string), `'fortran_order'` (`True` or `False`) and `'shape'` (a tuple of
//! non-negative ints, `(n,)` for one dimension) each exactly once in any order, separated by
//! commas with an optional trailing comma, `}`, then only spaces and a newline. Anything else,
//! including a key repeated (Python would keep the last value), is refused, so no header can
//! be read differently by zoo and by numpy.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::limits::LimitKind;
use crate::tensor::{byte_len, DType, Limits, Tensor};
use crate::text::esc;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Why a `.npy` file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Not an npy file, or an unknown version.
    #[error("{}: not an .npy file of version 1, 2 or 3 (starts with {start:02x?})", path.display())]
    Magic {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        start: Vec<u8>,
    },
    /// The header dict is malformed.
    #[error("{}: bad header {:?} at byte {at}: {reason}", path.display(), esc(header))]
    Header {
        /// The file.
        path: PathBuf,
        /// The header text.
        header: String,
        /// Offset in the header text.
        at: usize,
        /// What is wrong.
        reason: String,
    },
    /// A dtype descriptor zoo does not read (big-endian, structured, unknown).
    #[error("{}: unsupported dtype descriptor {:?} (only little-endian bool/u8/i8/i16/i32/i64/f16/f32/f64)", path.display(), esc(descr))]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The descriptor.
        descr: String,
    },
    /// Fortran-ordered arrays are not read.
    #[error("{}: fortran_order arrays are not supported", path.display())]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// A size over a [`Limits`] bound.
    #[error("{}: {what} is {actual}, over the {kind} of {limit} ({})", path.display(), kind.hint())]
    Limit {
        /// The file.
        path: PathBuf,
        /// What was sized.
        what: &'static str,
        /// The value.
        actual: u64,
        /// The limit.
        limit: u64,
        /// Which bound.
        kind: LimitKind,
    },
    /// A buffer that passed the limits could still not be allocated.
    #[error("{}: cannot allocate {bytes} bytes for the array", path.display())]
    Alloc {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The data is not as long as dtype and shape require.
    #[error("{}: {descr} {shape:?} needs {} data bytes, file has {actual}", path.display(), expected.map_or_else(|| "more than 2^64".to_owned(), |e| e.to_string()))]
    DataSize {
        /// The file.
        path: PathBuf,
        /// The dtype descriptor.
        descr: String,
        /// The shape.
        shape: Vec<usize>,
        /// Bytes required (`None`: the shape overflows 64 bits).
        expected: Option<u64>,
        /// Bytes present.
        actual: u64,
    },
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn dtype(descr: &str) -> Option<DType> {
    Some(match descr {
        "|b1" => DType::Bool,
        "|u1" | "<u1" => DType::U8,
        "|i1" | "<i1" => DType::I8,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "<f2" => DType::F16,
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        _ => return None,
    })
}

/// Reads an `.npy` file into a [`Tensor`], with the process's [`Limits::current`].
pub fn read(path: &Path) -> Result<Tensor> {
    read_with_limits(path, Limits::current())
}

/// [`read`] with explicit limits: the header is held to [`Limits::max_metadata_bytes`], the
/// array to [`Limits::max_tensor_bytes`] and [`Limits::max_rank`].
pub fn read_with_limits(path: &Path, limits: Limits) -> Result<Tensor> {
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut pre = [0u8; 12];
    let n = file.by_ref().take(12).read(&mut pre).map_err(io)?;
    let magic_err = || Error::Magic {
        path: path.to_owned(),
        start: pre[..n.min(8)].to_vec(),
    };
    if n < 10 || &pre[..6] != MAGIC {
        return Err(magic_err());
    }
    let (header_len, header_at) = match (pre[6], pre[7]) {
        (1, 0) => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        (2 | 3, 0) if n == 12 => (
            u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
            12,
        ),
        _ => return Err(magic_err()),
    };
    let header_err = |header: &str, at: usize, reason: String| Error::Header {
        path: path.to_owned(),
        header: header.to_owned(),
        at,
        reason,
    };
    if header_len > limits.max_metadata_bytes {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "header length",
            actual: header_len,
            limit: limits.max_metadata_bytes,
            kind: LimitKind::MetadataBytes,
        });
    }
    if header_at + header_len > len {
        return Err(header_err(
            "",
            0,
            format!("header length {header_len} exceeds the file ({len} bytes)"),
        ));
    }
    let mut header = crate::alloc::zeroed(header_len).ok_or(Error::Alloc {
        path: path.to_owned(),
        bytes: header_len,
    })?;
    file.seek(SeekFrom::Start(header_at)).map_err(io)?;
    file.read_exact(&mut header).map_err(io)?;
    let header = String::from_utf8(header).map_err(|_| header_err("", 0, "not UTF-8".into()))?;
    let h = parse_header(&header).map_err(|(at, reason)| header_err(&header, at, reason))?;
    if h.shape.len() > limits.max_rank {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "rank",
            actual: h.shape.len() as u64,
            limit: limits.max_rank as u64,
            kind: LimitKind::Rank,
        });
    }
    let dt = dtype(&h.descr).ok_or_else(|| Error::UnsupportedDtype {
        path: path.to_owned(),
        descr: h.descr.clone(),
    })?;
    if h.fortran_order {
        return Err(Error::FortranOrder {
            path: path.to_owned(),
        });
    }
    let expected = byte_len(dt, &h.shape);
    let actual = len - header_at - header_len;
    if expected != Some(actual) {
        return Err(Error::DataSize {
            path: path.to_owned(),
            descr: h.descr,
            shape: h.shape,
            expected,
            actual,
        });
    }
    if actual > limits.max_tensor_bytes {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "array bytes",
            actual,
            limit: limits.max_tensor_bytes,
            kind: LimitKind::TensorBytes,
        });
    }
    let mut data = crate::alloc::zeroed(actual).ok_or(Error::Alloc {
        path: path.to_owned(),
        bytes: actual,
    })?;
    file.read_exact(&mut data).map_err(io)?;
    // Size was checked just above, so this cannot fail.
    Tensor::new(&path.display().to_string(), dt, h.shape.clone(), data).map_err(|_| {
        Error::DataSize {
            path: path.to_owned(),
            descr: h.descr,
            shape: h.shape,
            expected,
            actual,
        }
    })
}

/// The three fields of an npy header.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A cursor over the header text; errors are `(offset, reason)`.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

type PResult<T> = std::result::Result<T, (usize, String)>;

impl Cursor<'_> {
    fn err<T>(&self, reason: impl Into<String>) -> PResult<T> {
        Err((self.at, reason.into()))
    }

    fn skip_spaces(&mut self) {
        while self.at < self.s.len() && self.s[self.at] == b' ' {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_spaces();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(format!("expected `{}`", c as char))
        }
    }

    /// A quoted string without escapes: `'…'` or `"…"`.
    fn string(&mut self) -> PResult<String> {
        self.skip_spaces();
        let Some(&q @ (b'\'' | b'"')) = self.s.get(self.at) else {
            return self.err("expected a quoted string");
        };
        let start = self.at + 1;
        let Some(len) = self.s[start..].iter().position(|&c| c == q) else {
            return self.err("unterminated string");
        };
        let body = &self.s[start..start + len];
        if body.iter().any(|&c| c == b'\\' || c < 0x20) {
            return self.err("escapes and control characters are not read in header strings");
        }
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(body).into_owned())
    }

    fn word(&mut self, w: &str) -> bool {
        self.skip_spaces();
        let end = self.at + w.len();
        let next_ok = self
            .s
            .get(end)
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
        if self.s.get(self.at..end) == Some(w.as_bytes()) && next_ok {
            self.at = end;
            true
        } else {
            false
        }
    }

    /// A non-negative decimal int as Python writes it (no sign, no leading zeros).
    fn int(&mut self) -> PResult<usize> {
        self.skip_spaces();
        let start = self.at;
        while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
            self.at += 1;
        }
        let digits = &self.s[start..self.at];
        if digits.is_empty() {
            return self.err("expected a non-negative int");
        }
        if digits.len() > 1 && digits[0] == b'0' {
            self.at = start;
            return self.err("leading zero in an int");
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or((start, "dimension does not fit usize".into()))
    }

    /// `()`, `(n,)`, `(n, m)`, `(n, m,)`, …
    fn shape(&mut self) -> PResult<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        if self.eat(b')') {
            return Ok(dims);
        }
        loop {
            dims.push(self.int()?);
            if self.eat(b')') {
                if dims.len() == 1 {
                    return self.err("`(n)` is an int, not a tuple; numpy writes `(n,)`");
                }
                return Ok(dims);
            }
            self.expect(b',')?;
            if self.eat(b')') {
                return Ok(dims);
            }
            if dims.len() > 64 {
                return self.err("more than 64 dimensions");
            }
        }
    }
}

/// Parses the header dict (see the module docs).
fn parse_header(text: &str) -> PResult<Header> {
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    c.expect(b'{')?;
    loop {
        if c.eat(b'}') {
            break;
        }
        let key_at = c.at;
        let key = c.string()?;
        c.expect(b':')?;
        let fresh = match key.as_str() {
            "descr" => descr.replace(c.string()?).is_none(),
            "fortran_order" => {
                let v = if c.word("True") {
                    true
                } else if c.word("False") {
                    false
                } else {
                    return c.err("'fortran_order' is neither True nor False");
                };
                fortran.replace(v).is_none()
            }
            "shape" => shape.replace(c.shape()?).is_none(),
            other => return Err((key_at, format!("unexpected key {:?}", esc(other)))),
        };
        if !fresh {
            return Err((key_at, format!("key '{key}' appears twice")));
        }
        if c.eat(b'}') {
            break;
        }
        c.expect(b',')?;
    }
    let rest = &c.s[c.at..];
    if !rest.iter().all(|&b| b == b' ' || b == b'\n') {
        return c.err("only spaces and a newline may follow the dict");
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err((
            0,
            "the header must have the keys 'descr', 'fortran_order' and 'shape'".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(h: &str) -> PResult<Vec<usize>> {
        parse_header(h).map(|h| h.shape)
    }

    #[test]
    fn headers_parse_as_numpy_writes_them() {
        let ok = |h: &str| parse_header(h).unwrap();
        let h = ok("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 10), }          \n");
        assert_eq!(
            h,
            Header {
                descr: "<f4".into(),
                fortran_order: false,
                shape: vec![2, 10]
            }
        );
        assert_eq!(
            shape_of("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
            Ok(vec![3])
        );
        assert_eq!(
            shape_of("{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
            Ok(vec![])
        );
        assert_eq!(
            shape_of("{'shape': (1, 2,), 'fortran_order': True, 'descr': \"|u1\"}"),
            Ok(vec![1, 2])
        );
    }

    #[test]
    fn headers_numpy_would_read_differently_are_refused() {
        for (bad, why) in [
            // the substring-search trap: a value that looks like a key
            ("{'y': \"'fortran_order': False\", 'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "unexpected key"),
            ("{'descr': '<f4', 'fortran_order': False, 'fortran_order': True, 'shape': (2,), }", "twice"),
            ("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "twice"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "is an int"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", "expected"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "non-negative"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "neither"),
            ("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }", "neither"),
            ("{'descr': '<f4', 'shape': (2,), }", "must have"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", "follow"),
            ("{'descr': '<\\x66', 'fortran_order': False, 'shape': (2,), }", "escapes"),
            ("{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", "expected `,`"),
        ] {
            let (_, reason) = parse_header(bad).unwrap_err();
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

    fn write_npy(dir: &Path, header: &str, data: &[u8]) -> PathBuf {
        let mut h = header.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = MAGIC.to_vec();
        b.extend([1, 0]);
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        let p = dir.join("a.npy");
        std::fs::write(&p, b).unwrap();
        p
    }

    #[test]
    fn rejects_big_endian_fortran_and_short_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_npy(
            dir.path(),
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        assert!(matches!(read(&p), Err(Error::UnsupportedDtype { .. })));
        let p = write_npy(
            dir.path(),
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        );
        assert!(matches!(read(&p), Err(Error::FortranOrder { .. })));
        let p = write_npy(
            dir.path(),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 15],
        );
        assert!(matches!(
            read(&p),
            Err(Error::DataSize {
                expected: Some(16),
                actual: 15,
                ..
            })
        ));
        let p = write_npy(
            dir.path(),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &[1; 16],
        );
        let t = read(&p).unwrap();
        assert_eq!((t.dtype(), t.shape()), (DType::I64, &[2usize][..]));
    }
}
