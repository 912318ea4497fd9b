//! NumPy `.npy` arrays (reference inputs and logits).
//!
//! # Byte layout
//! `\x93NUMPY`, major and minor version bytes, the header length (u16 LE for version 1.0,
//! u32 LE for 2.0 and 3.0), then the header: a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 10), }` padded with spaces and a
//! newline, then the raw data. Only little-endian (or byte-sized) dtypes in C order are
//! read; anything else is a typed error, never a silent conversion.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tensor::{byte_len, DType, Limits, Tensor};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Why a `.npy` file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
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
    #[error("{}: bad header {header:?}: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// The header text.
        header: String,
        /// What is wrong.
        reason: String,
    },
    /// A dtype descriptor zoo does not read (big-endian, structured, unknown).
    #[error("{}: unsupported dtype descriptor {descr:?} (only little-endian bool/u8/i8/i16/i32/i64/f16/f32/f64)", path.display())]
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
    /// The data is not as long as dtype and shape require.
    #[error("{}: {descr} {shape:?} needs {expected} data bytes, file has {actual}", path.display())]
    DataSize {
        /// The file.
        path: PathBuf,
        /// The dtype descriptor.
        descr: String,
        /// The shape.
        shape: Vec<usize>,
        /// Bytes required.
        expected: u64,
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

/// Reads an `.npy` file into a [`Tensor`].
pub fn read(path: &Path) -> Result<Tensor> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let limits = Limits::default();
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
    let (header_len, header_at) = match pre[6] {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 if n == 12 => (
            u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
            12,
        ),
        _ => return Err(magic_err()),
    };
    let header_err = |header: &str, reason: String| Error::Header {
        path: path.to_owned(),
        header: header.to_owned(),
        reason,
    };
    if header_at + header_len > len || header_len > limits.max_metadata_bytes {
        return Err(header_err(
            "",
            format!("header length {header_len} exceeds the file ({len} bytes)"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(header_at)).map_err(io)?;
    file.read_exact(&mut header).map_err(io)?;
    let header = String::from_utf8(header).map_err(|_| header_err("", "not UTF-8".into()))?;
    let descr = field(&header, "descr")
        .and_then(|v| quoted(v))
        .ok_or_else(|| header_err(&header, "no 'descr' string".into()))?;
    let fortran = field(&header, "fortran_order")
        .ok_or_else(|| header_err(&header, "no 'fortran_order'".into()))?;
    let shape_text =
        field(&header, "shape").ok_or_else(|| header_err(&header, "no 'shape'".into()))?;
    let shape = parse_shape(shape_text)
        .ok_or_else(|| header_err(&header, "'shape' is not a tuple of ints".into()))?;
    if shape.len() > limits.max_rank {
        return Err(header_err(
            &header,
            format!("rank {} over the limit {}", shape.len(), limits.max_rank),
        ));
    }
    let dt = dtype(descr).ok_or_else(|| Error::UnsupportedDtype {
        path: path.to_owned(),
        descr: descr.to_owned(),
    })?;
    if fortran.starts_with("True") {
        return Err(Error::FortranOrder {
            path: path.to_owned(),
        });
    } else if !fortran.starts_with("False") {
        return Err(header_err(
            &header,
            "'fortran_order' is neither True nor False".into(),
        ));
    }
    let expected = byte_len(dt, &shape).unwrap_or(u64::MAX);
    let actual = len - header_at - header_len;
    if expected != actual {
        return Err(Error::DataSize {
            path: path.to_owned(),
            descr: descr.to_owned(),
            shape,
            expected,
            actual,
        });
    }
    let mut data = vec![0u8; expected as usize];
    file.read_exact(&mut data).map_err(io)?;
    // Size was checked just above, so this cannot fail.
    Tensor::new(&path.display().to_string(), dt, shape.clone(), data).map_err(|_| Error::DataSize {
        path: path.to_owned(),
        descr: descr.to_owned(),
        shape,
        expected,
        actual,
    })
}

/// The text after `'key':` in the header dict (up to the end of the header).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let at = header.find(&pat)? + pat.len();
    Some(header[at..].trim_start())
}

/// The contents of a leading `'...'` string.
fn quoted(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('\'')?;
    Some(&rest[..rest.find('\'')?])
}

/// `(2, 10)`, `(3,)`, `()` → dimensions.
fn parse_shape(s: &str) -> Option<Vec<usize>> {
    let inner = &s.strip_prefix('(')?[..s.find(')')? - 1];
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("(2, 10), }"), Some(vec![2, 10]));
        assert_eq!(parse_shape("(3,), }"), Some(vec![3]));
        assert_eq!(parse_shape("(), }"), Some(vec![]));
        assert_eq!(parse_shape("(a,)"), None);
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
                expected: 16,
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
