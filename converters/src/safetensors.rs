//! safetensors files: read and write, with the `__metadata__` string map for provenance.
//!
//! # Byte layout
//! 8 bytes: `N`, the header length, u64 little-endian; `N` bytes: a JSON object mapping each
//! tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` plus an optional
//! `"__metadata__"` object of strings, padded with spaces to a multiple of 8; then the data
//! buffer, where each tensor occupies `[begin, end)` (relative to the buffer start), contiguous,
//! little-endian, row-major, with no gaps and nothing after the last tensor.
//!
//! # Crate use
//! The header is parsed and validated by the `safetensors` crate (`Metadata`: offsets
//! contiguous from 0, sizes matching dtype × shape). Writing uses the crate's ordering
//! (descending dtype alignment, then name) and its `TensorInfo`/`Dtype` serialisation, but this
//! module assembles the header itself: the crate keeps `__metadata__` in a `HashMap`, whose
//! iteration order (and so the written bytes) changes from run to run. Here metadata keys are
//! sorted, so the same input always gives the same bytes; with at most one metadata key the
//! output is byte-identical to `safetensors::serialize`.
//! Reading streams each tensor from the file after checking the header against the file
//! length, so memory use is the tensors plus the header.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ::safetensors::tensor::{Metadata, TensorInfo};
use ::safetensors::Dtype;

use crate::limits::LimitKind;
use crate::tensor::{DType, Limits, StateDict, Tensor};
use crate::text::esc;

/// One entry of a [`StateDict`].
type Named = (String, Tensor);

/// The safetensors crate's bound on the header size.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Why a safetensors file could not be read or written.
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
    /// The declared header length does not fit the file or the limit.
    #[error("{}: header length {declared} does not fit (file has {available} bytes after the length; the {} is {limit}; {})", path.display(), LimitKind::MetadataBytes, LimitKind::MetadataBytes.hint())]
    HeaderSize {
        /// The file.
        path: PathBuf,
        /// Declared header length.
        declared: u64,
        /// Bytes available.
        available: u64,
        /// The limit.
        limit: u64,
    },
    /// The header is not valid safetensors JSON.
    #[error("{}: invalid header: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data buffer is not exactly as long as the header declares.
    #[error("{}: data buffer should be {expected} bytes, file has {actual}", path.display())]
    DataSize {
        /// The file.
        path: PathBuf,
        /// Bytes the header declares.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A dtype zoo has no [`DType`] for.
    #[error("{}: tensor `{}` has unsupported dtype {dtype}", path.display(), esc(name))]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype.
        dtype: String,
    },
    /// A size over a [`Limits`] bound.
    #[error("{}: {what} is {actual}, over the {kind} of {limit} ({})", path.display(), kind.hint())]
    Limit {
        /// The file.
        path: PathBuf,
        /// What was sized (names in it are escaped).
        what: String,
        /// The value.
        actual: u64,
        /// The limit.
        limit: u64,
        /// Which bound.
        kind: LimitKind,
    },
    /// A buffer that passed the limits could still not be allocated.
    #[error("{}: cannot allocate {bytes} bytes for {what}", path.display())]
    Alloc {
        /// The file.
        path: PathBuf,
        /// What the buffer was for (names in it are escaped).
        what: String,
        /// Its size.
        bytes: u64,
    },
    /// A bool tensor holds a byte other than 0 or 1.
    #[error("{}: bool tensor `{}` has byte {value} at element {index}", path.display(), esc(name))]
    BadBool {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Element index.
        index: u64,
        /// The byte.
        value: u8,
    },
    /// Two tensors with one name.
    #[error("{}: duplicate tensor name `{}`", path.display(), esc(name))]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn to_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::BOOL => DType::Bool,
        Dtype::U8 => DType::U8,
        Dtype::I8 => DType::I8,
        Dtype::I16 => DType::I16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        _ => return None,
    })
}

/// The safetensors crate's dtype for a zoo dtype.
pub fn to_safetensors_dtype(d: DType) -> Dtype {
    match d {
        DType::Bool => Dtype::BOOL,
        DType::U8 => Dtype::U8,
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// Whether a file that starts with `head` and is `len` bytes long has the shape of a
/// safetensors file: an 8-byte little-endian header length `N` with `8 + N <= len`, and `{`
/// right after it. (The length's bytes can be anything, so only this whole shape tells
/// safetensors apart from other formats.)
pub fn looks_like(head: &[u8], len: u64) -> bool {
    let Some(n) = head.get(..8) else {
        return false;
    };
    let mut b = [0u8; 8];
    b.copy_from_slice(n);
    let n = u64::from_le_bytes(b);
    n >= 2 && n.checked_add(8).is_some_and(|end| end <= len) && head.get(8) == Some(&b'{')
}

/// Reads every tensor (in file offset order) and the `__metadata__` map, with the process's
/// [`Limits::current`].
pub fn read(path: &Path) -> Result<(StateDict, BTreeMap<String, String>)> {
    read_with_limits(path, Limits::current())
}

/// [`read`] with explicit limits.
pub fn read_with_limits(
    path: &Path,
    limits: Limits,
) -> Result<(StateDict, BTreeMap<String, String>)> {
    let mut tensors = vec![];
    let metadata = read_each_with_limits(path, limits, &mut |name, t| {
        tensors.push((name, t));
        Ok(())
    })?;
    Ok((tensors, metadata))
}

/// Like [`read`], but hands each tensor to `visit` as it is read instead of returning them all
/// (memory holds one tensor at a time); returns the `__metadata__`.
pub fn read_each(
    path: &Path,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<BTreeMap<String, String>> {
    read_each_with_limits(path, Limits::current(), visit)
}

/// [`read_each`] with explicit limits.
pub fn read_each_with_limits(
    path: &Path,
    limits: Limits,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<BTreeMap<String, String>> {
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::HeaderSize {
                path: path.to_owned(),
                declared: 8,
                available: len,
                limit: 8,
            },
            _ => io(error),
        })?;
    let n = u64::from_le_bytes(n);
    let available = len - 8;
    let limit = limits.max_metadata_bytes.min(MAX_HEADER_BYTES);
    if n > available || n > limit {
        return Err(Error::HeaderSize {
            path: path.to_owned(),
            declared: n,
            available,
            limit,
        });
    }
    let alloc = |what: String, bytes: u64| Error::Alloc {
        path: path.to_owned(),
        what,
        bytes,
    };
    let mut header = crate::alloc::zeroed(n).ok_or_else(|| alloc("the header".into(), n))?;
    file.read_exact(&mut header).map_err(io)?;
    let header_err = |reason: String| Error::Header {
        path: path.to_owned(),
        reason,
    };
    if header.first() != Some(&b'{') {
        return Err(header_err("does not start with `{`".into()));
    }
    let meta: Metadata = serde_json::from_slice(&header).map_err(|e| header_err(e.to_string()))?;
    let data_len = meta.data_len() as u64;
    if data_len != available - n {
        return Err(Error::DataSize {
            path: path.to_owned(),
            expected: data_len,
            actual: available - n,
        });
    }
    let names = meta.offset_keys();
    if names.len() as u64 > limits.max_tensors {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "tensor count".into(),
            actual: names.len() as u64,
            limit: limits.max_tensors,
            kind: LimitKind::Tensors,
        });
    }
    let base = 8 + n;
    file.seek(SeekFrom::Start(base)).map_err(io)?;
    let mut file = std::io::BufReader::with_capacity(1 << 20, file);
    for name in names {
        let Some(info) = meta.info(&name) else {
            return Err(header_err(format!("tensor `{}` has no entry", esc(&name))));
        };
        let dtype = to_dtype(info.dtype).ok_or_else(|| Error::UnsupportedDtype {
            path: path.to_owned(),
            name: name.clone(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let (begin, end) = info.data_offsets;
        let bytes = (end - begin) as u64;
        if bytes > limits.max_tensor_bytes {
            return Err(Error::Limit {
                path: path.to_owned(),
                what: format!("size of tensor `{}`", esc(&name)),
                actual: bytes,
                limit: limits.max_tensor_bytes,
                kind: LimitKind::TensorBytes,
            });
        }
        // Offsets are contiguous from 0 (checked by `Metadata`) and end at the file end
        // (checked above), so this reads the next `bytes` bytes, all present.
        let mut data = crate::alloc::zeroed(bytes)
            .ok_or_else(|| alloc(format!("tensor `{}`", esc(&name)), bytes))?;
        file.read_exact(&mut data).map_err(io)?;
        if dtype == DType::Bool {
            if let Some(i) = data.iter().position(|&b| b > 1) {
                return Err(Error::BadBool {
                    path: path.to_owned(),
                    name,
                    index: i as u64,
                    value: data[i],
                });
            }
        }
        let tensor = Tensor::new(&name, dtype, info.shape.clone(), data)
            .map_err(|e| header_err(e.to_string()))?;
        visit(name, tensor)?;
    }
    Ok(meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// Builds the padded header: `__metadata__` (sorted keys) first, then tensors in data order
/// (descending dtype alignment, then name, as the safetensors crate orders them). Returns the
/// header and the tensors in data order.
fn header<'a>(
    path: &Path,
    tensors: &'a StateDict,
    metadata: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, Vec<&'a Named>)> {
    let mut order: Vec<&(String, Tensor)> = tensors.iter().collect();
    order.sort_by(|(ln, lt), (rn, rt)| {
        to_safetensors_dtype(rt.dtype())
            .cmp(&to_safetensors_dtype(lt.dtype()))
            .then(ln.cmp(rn))
    });
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(Error::DuplicateName {
                path: path.to_owned(),
                name: pair[0].0.clone(),
            });
        }
    }
    let mut infos = Vec::with_capacity(order.len());
    let mut offset = 0usize;
    for (name, t) in &order {
        let info = TensorInfo {
            dtype: to_safetensors_dtype(t.dtype()),
            shape: t.shape().to_vec(),
            data_offsets: (offset, offset + t.data().len()),
        };
        offset += t.data().len();
        infos.push((name.clone(), info));
    }
    let json_err = |e: serde_json::Error| Error::Header {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut out = b"{".to_vec();
    let mut first = true;
    let mut entry = |key: &str, value: Vec<u8>| -> Result<()> {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend(serde_json::to_vec(key).map_err(json_err)?);
        out.push(b':');
        out.extend(value);
        Ok(())
    };
    if !metadata.is_empty() {
        entry(
            "__metadata__",
            serde_json::to_vec(metadata).map_err(json_err)?,
        )?;
    }
    for (name, info) in &infos {
        entry(name, serde_json::to_vec(info).map_err(json_err)?)?;
    }
    out.push(b'}');
    // Let the crate validate what we built (offsets, sizes).
    let meta_map: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    Metadata::new(meta_map, infos).map_err(|e| Error::Header {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    out.resize(out.len().next_multiple_of(8), b' ');
    if out.len() as u64 > MAX_HEADER_BYTES {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "header size (the safetensors format's bound)".into(),
            actual: out.len() as u64,
            limit: MAX_HEADER_BYTES,
            kind: LimitKind::MetadataBytes,
        });
    }
    Ok((out, order))
}

/// Writes `tensors` and `metadata` as safetensors, atomically (temp file, fsync, rename) and
/// deterministically (see the module docs).
pub fn write(path: &Path, tensors: &StateDict, metadata: &BTreeMap<String, String>) -> Result<()> {
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    let (header, order) = header(path, tensors, metadata)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&header).map_err(io)?;
        for (_, t) in order {
            w.write_all(t.data()).map_err(io)?;
        }
        w.flush().map_err(io)?;
    }
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateDict {
        vec![
            ("b".into(), Tensor::from_f32(vec![2], &[1.0, 2.0]).unwrap()),
            (
                "a".into(),
                Tensor::new("a", DType::I64, vec![1], 7i64.to_le_bytes().to_vec()).unwrap(),
            ),
            (
                "c".into(),
                Tensor::new("c", DType::U8, vec![3], vec![1, 2, 3]).unwrap(),
            ),
        ]
    }

    #[test]
    fn matches_the_crate_bytes_with_one_metadata_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        let meta: BTreeMap<String, String> = [("format".to_owned(), "pt".to_owned())].into();
        write(&p, &sample(), &meta).unwrap();
        let owned = sample();
        let views: Vec<(String, ::safetensors::tensor::TensorView<'_>)> = owned
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    ::safetensors::tensor::TensorView::new(
                        to_safetensors_dtype(t.dtype()),
                        t.shape().to_vec(),
                        t.data(),
                    )
                    .unwrap(),
                )
            })
            .collect();
        let want =
            ::safetensors::serialize(views, Some(meta.clone().into_iter().collect())).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), want);
        let (sd, m) = read(&p).unwrap();
        assert_eq!(m, meta);
        let names: Vec<&str> = sd.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
