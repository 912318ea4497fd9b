//! PyTorch `torch.save` files (`.pth`, `.pt`, `.bin`): read safely, write deterministically.
//!
//! # Byte layout
//! **Zip format** (torch ≥ 1.6): a zip archive whose entries all sit under one root directory
//! (`archive/` or the file stem): `<root>/data.pkl` (the object pickle), `<root>/data/<key>`
//! (one entry per storage: raw little-endian elements, stored uncompressed, data 64-byte
//! aligned), `<root>/byteorder` (`little`; absent in old files, meaning little),
//! `<root>/version`, and optional `.format_version`, `.storage_alignment`,
//! `.data/serialization_id`. Storages appear in `data.pkl` as persistent ids
//! `('storage', torch.<T>Storage, key, location, numel)`.
//!
//! **Legacy format** (`_use_new_zipfile_serialization=False`): five pickles back to back —
//! the magic number `0x1950a86a20f9469cfc6c`, the protocol version `1001`, a sys-info dict,
//! the object pickle (persistent ids carry a sixth element, view metadata, always `None`), and
//! the list of storage keys — then, for each key in list order, an 8-byte little-endian element
//! count followed by that many elements' raw bytes.
//!
//! The format is detected from the first bytes (`PK\x03\x04` or a pickle `PROTO`), never
//! from the file name. Objects are interpreted by [`crate::pickle`]; nothing is executed.
//!
//! # Checks
//! Every storage's declared size is checked against the zip entry size or the remaining file
//! length before its bytes are allocated, every view (offset, shape, stride) against its
//! storage, and pickle sizes against [`Limits`]. Strided views are materialised contiguous;
//! two tensors on one storage each get their own copy.
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::pickle::{self, ObjId, Object, StorageRef, TensorRef, Unpickled};
use crate::tensor::{byte_len, strides, DType, Limits, StateDict, Tensor};
use crate::writeback::{Abandon, EarlyWriteback, Sealed, ZipSink};

/// The legacy magic number, as the little-endian bytes LONG1 stores.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The legacy protocol version.
const LEGACY_PROTOCOL: i64 = 1001;
/// Data alignment of storages in written zip files (what torch uses).
const ALIGNMENT: u16 = 64;
/// Root directory name of written archives (torch's default), independent of the file name
/// so that the bytes depend only on the tensors.
const ARCHIVE_ROOT: &str = "archive";
/// Keys of a checkpoint dict that hold a state dict, in order of preference for [`read`].
const PREFERRED_KEYS: [&str; 2] = ["state_dict", "model"];
/// How deep [`read_checkpoint`] looks for tensor dicts inside nested dicts.
const MAX_NESTING: usize = 4;

/// Why a `.pth` file could not be read or written.
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
    /// Neither a zip archive nor a pickle.
    #[error("{}: not a torch.save file (starts with {magic:02x?}, expected PK\\x03\\x04 or a pickle PROTO)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        magic: Vec<u8>,
    },
    /// The zip container is malformed.
    #[error("{}: zip: {source}", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// The zip crate's error.
        source: zip::result::ZipError,
    },
    /// The zip has no single `<root>/data.pkl`.
    #[error("{}: expected exactly one `<root>/data.pkl` entry, found {found:?}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// The data.pkl entries found.
        found: Vec<String>,
    },
    /// A required zip entry is missing.
    #[error("{}: missing zip entry `{entry}`", path.display())]
    MissingEntry {
        /// The file.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// A zip entry is compressed (torch stores everything uncompressed).
    #[error("{}: zip entry `{entry}` is compressed with {method}; only stored entries are read", path.display())]
    Compressed {
        /// The file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// The compression method.
        method: String,
    },
    /// `byteorder` is not `little`.
    #[error("{}: byteorder is {found:?}, only little-endian files are supported", path.display())]
    ByteOrder {
        /// The file.
        path: PathBuf,
        /// The recorded byte order.
        found: String,
    },
    /// A global outside the allow-list. Nothing was executed.
    #[error("{}: {part}: global `{module}.{name}` at offset {offset} is not allow-listed; refusing to load", file.display())]
    UnsupportedGlobal {
        /// Module part (e.g. `os`).
        module: String,
        /// Name part (e.g. `system`).
        name: String,
        /// The file.
        file: PathBuf,
        /// Which pickle (zip entry or legacy part).
        part: String,
        /// Byte offset of the opcode within that pickle.
        offset: u64,
    },
    /// Any other pickle error.
    #[error("{}: {part}: {source}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Which pickle.
        part: String,
        /// The interpreter's error.
        source: pickle::Error,
    },
    /// The legacy header pickles are not what torch writes.
    #[error("{}: legacy format: {part} at offset {offset}: {reason}", path.display())]
    Legacy {
        /// The file.
        path: PathBuf,
        /// Which part.
        part: &'static str,
        /// File offset of that part.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A storage's bytes do not match its declaration or the file.
    #[error("{}: storage `{key}` ({what}): expected {expected} bytes, found {actual}", path.display())]
    StorageSize {
        /// The file.
        path: PathBuf,
        /// The storage key.
        key: String,
        /// Where the sizes come from.
        what: &'static str,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A storage is referenced but not present.
    #[error("{}: storage `{key}` is referenced but missing", path.display())]
    MissingStorage {
        /// The file.
        path: PathBuf,
        /// The storage key.
        key: String,
    },
    /// A size or count over a [`Limits`] bound.
    #[error("{}: {what} is {actual}, over the limit of {limit}", path.display())]
    Limit {
        /// The file.
        path: PathBuf,
        /// What was sized.
        what: String,
        /// The value found.
        actual: u64,
        /// The limit.
        limit: u64,
    },
    /// No tensor dict could be chosen unambiguously.
    #[error("{}: {reason}; tensor dicts found: {candidates:?}", path.display())]
    StateDict {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// Key paths of the tensor dicts found (`""` is the top level).
        candidates: Vec<String>,
    },
    /// Two tensors with the same name were written.
    #[error("{}: duplicate tensor name `{name}`", path.display())]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A tensor could not be built (internal size mismatch).
    #[error("{}: {source}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The error.
        source: Box<crate::Error>,
    },
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One tensor dict found in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundStateDict {
    /// Key path from the top level, joined by `.` (`""` for the top level, `state_dict`,
    /// `model_ema`, …).
    pub path: String,
    /// Its tensors, in file order.
    pub tensors: StateDict,
    /// `_metadata` of the dict (torch's per-module `version`), in file order: module prefix
    /// (`""` for the root module) and version. Empty when the file has none.
    pub module_versions: Vec<(String, i64)>,
}

/// Everything [`read_checkpoint`] finds in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Every tensor dict, in file order (outer dicts before the dicts nested in them).
    pub state_dicts: Vec<FoundStateDict>,
    /// Top-level entries holding an int, float, bool or str of up to 1 KiB (e.g. `epoch`,
    /// `arch`), as text.
    pub scalars: Vec<(String, String)>,
}

impl Checkpoint {
    /// The tensor dict at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&FoundStateDict> {
        self.state_dicts.iter().find(|d| d.path == path)
    }
}

/// Reads the state dict of a `.pth` file with default [`Limits`].
///
/// The file may be a bare state dict or a checkpoint dict; the state dict is the top level if
/// it holds only tensors, else `state_dict`, else `model`, else the only tensor dict there is.
/// Otherwise the error lists the candidates.
pub fn read(path: &Path) -> Result<StateDict> {
    read_with_limits(path, Limits::default())
}

/// [`read`] with explicit limits.
pub fn read_with_limits(path: &Path, limits: Limits) -> Result<StateDict> {
    let (file, len) = open(path)?;
    read_from(path, file, len, &limits)
}

/// Like [`read`], but hands each tensor to `visit` as it is built instead of returning them
/// all: memory holds one tensor (and the storages still to be shared) at a time.
pub fn read_each(path: &Path, visit: &mut dyn FnMut(String, Tensor) -> Result<()>) -> Result<()> {
    let (file, len) = open(path)?;
    read_each_from(path, file, len, &Limits::default(), visit)
}

/// Reads a `.pth` file held in memory (used by the fuzz target and tests).
pub fn read_bytes(data: &[u8], limits: Limits) -> Result<StateDict> {
    read_from(
        Path::new("<memory>"),
        Cursor::new(data),
        data.len() as u64,
        &limits,
    )
}

/// Reads every tensor dict of a `.pth` file (top level, `state_dict`, `model`, `model_ema`,
/// `state_dict_ema`, … at any nesting up to 4 levels), with their `_metadata`.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let limits = Limits::default();
    let (file, len) = open(path)?;
    let mut loaded = load(path, file, len, &limits)?;
    let found = find_tensor_dicts(&loaded.pickle);
    let mut state_dicts = Vec::with_capacity(found.len());
    let all: Vec<&TensorRef> = found
        .iter()
        .flat_map(|f| f.tensors.iter().map(|(_, t)| *t))
        .collect();
    let mut cache = StorageCache::new(&all, len);
    for f in &found {
        let tensors = materialise(path, &f.tensors, &mut cache, &mut loaded.storages)?;
        state_dicts.push(FoundStateDict {
            path: f.path.clone(),
            tensors,
            module_versions: module_versions(&loaded.pickle, f.dict),
        });
    }
    Ok(Checkpoint {
        state_dicts,
        scalars: scalars(&loaded.pickle),
    })
}

fn open(path: &Path) -> Result<(File, u64)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    Ok((file, len))
}

fn read_from<R: Read + Seek>(
    path: &Path,
    reader: R,
    len: u64,
    limits: &Limits,
) -> Result<StateDict> {
    let mut out = vec![];
    read_each_from(path, reader, len, limits, &mut |name, t| {
        out.push((name, t));
        Ok(())
    })?;
    Ok(out)
}

fn read_each_from<R: Read + Seek>(
    path: &Path,
    reader: R,
    len: u64,
    limits: &Limits,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    let mut loaded = load(path, reader, len, limits)?;
    let found = find_tensor_dicts(&loaded.pickle);
    let chosen = choose(path, &loaded.pickle, &found)?;
    let refs: Vec<&TensorRef> = chosen.tensors.iter().map(|(_, t)| *t).collect();
    if refs.len() as u64 > limits.max_tensors {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "tensor count".into(),
            actual: refs.len() as u64,
            limit: limits.max_tensors,
        });
    }
    let mut cache = StorageCache::new(&refs, len);
    materialise_each(
        path,
        &chosen.tensors,
        &mut cache,
        &mut loaded.storages,
        visit,
    )
}

/// The object pickle plus where its storages live.
struct Loaded<R> {
    pickle: Unpickled,
    storages: Storages<R>,
}

enum Storages<R> {
    Zip {
        archive: ZipArchive<R>,
        root: String,
        len: u64,
    },
    Legacy {
        reader: R,
        /// key → (file offset of the bytes, byte length)
        spans: HashMap<String, (u64, u64)>,
    },
}

fn load<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    len: u64,
    limits: &Limits,
) -> Result<Loaded<R>> {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut reader, &mut magic).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    if n == 4 && &magic == b"PK\x03\x04" {
        load_zip(path, reader, len, limits)
    } else if n >= 2 && magic[0] == 0x80 {
        load_legacy(path, reader, len, limits)
    } else {
        Err(Error::UnknownFormat {
            path: path.to_owned(),
            magic: magic[..n].to_vec(),
        })
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn zip_err(path: &Path) -> impl Fn(zip::result::ZipError) -> Error + '_ {
    move |source| Error::Zip {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole stored zip entry after checking its size against `max` and the file length.
fn read_entry<R: Read + Seek>(
    path: &Path,
    archive: &mut ZipArchive<R>,
    name: &str,
    max: u64,
    file_len: u64,
    what: &str,
) -> Result<Option<Vec<u8>>> {
    let mut entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_err(path)(e)),
    };
    if entry.compression() != CompressionMethod::Stored {
        return Err(Error::Compressed {
            path: path.to_owned(),
            entry: name.to_owned(),
            method: entry.compression().to_string(),
        });
    }
    let size = entry.size();
    if size > max {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: format!("{what} (zip entry `{name}`)"),
            actual: size,
            limit: max,
        });
    }
    if size > file_len || entry.compressed_size() != size {
        return Err(Error::StorageSize {
            path: path.to_owned(),
            key: name.to_owned(),
            what: "zip entry size vs file size",
            expected: size,
            actual: file_len.min(entry.compressed_size()),
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    (&mut entry)
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    if buf.len() as u64 != size {
        return Err(Error::StorageSize {
            path: path.to_owned(),
            key: name.to_owned(),
            what: "zip entry bytes present",
            expected: size,
            actual: buf.len() as u64,
        });
    }
    Ok(Some(buf))
}

fn pickle_error(path: &Path, part: &str, e: pickle::Error) -> Error {
    match e {
        pickle::Error::UnsupportedGlobal {
            module,
            name,
            offset,
        } => Error::UnsupportedGlobal {
            module,
            name,
            file: path.to_owned(),
            part: part.to_owned(),
            offset,
        },
        source => Error::Pickle {
            path: path.to_owned(),
            part: part.to_owned(),
            source,
        },
    }
}

fn load_zip<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    len: u64,
    limits: &Limits,
) -> Result<Loaded<R>> {
    reader.rewind().map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut archive = ZipArchive::new(reader).map_err(zip_err(path))?;
    if archive.len() as u64 > limits.max_tensors.saturating_add(16) {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "zip entry count".into(),
            actual: archive.len() as u64,
            limit: limits.max_tensors.saturating_add(16),
        });
    }
    let roots: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.strip_suffix("/data.pkl"))
        .filter(|r| !r.contains('/'))
        .map(str::to_owned)
        .collect();
    let [root] = roots.as_slice() else {
        return Err(Error::Root {
            path: path.to_owned(),
            found: roots.iter().map(|r| format!("{r}/data.pkl")).collect(),
        });
    };
    let root = root.clone();
    let byteorder_name = format!("{root}/byteorder");
    if let Some(order) = read_entry(path, &mut archive, &byteorder_name, 64, len, "byteorder")? {
        if order != b"little" {
            return Err(Error::ByteOrder {
                path: path.to_owned(),
                found: String::from_utf8_lossy(&order).into_owned(),
            });
        }
    }
    let pkl_name = format!("{root}/data.pkl");
    let data = read_entry(
        path,
        &mut archive,
        &pkl_name,
        limits.max_metadata_bytes,
        len,
        "pickle size",
    )?
    .ok_or_else(|| Error::MissingEntry {
        path: path.to_owned(),
        entry: pkl_name.clone(),
    })?;
    let pickle = pickle::unpickle(&data, limits).map_err(|e| pickle_error(path, &pkl_name, e))?;
    Ok(Loaded {
        pickle,
        storages: Storages::Zip { archive, root, len },
    })
}

/// Runs the pickle at `at`, reading a growing prefix of the file until it fits.
fn legacy_pickle<R: Read + Seek>(
    path: &Path,
    reader: &mut R,
    at: u64,
    len: u64,
    limits: &Limits,
    part: &'static str,
) -> Result<Unpickled> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let max = limits.max_metadata_bytes.min(len.saturating_sub(at));
    let mut chunk = max.min(1 << 20);
    loop {
        reader.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut buf = Vec::with_capacity(chunk as usize);
        reader
            .by_ref()
            .take(chunk)
            .read_to_end(&mut buf)
            .map_err(io)?;
        match pickle::unpickle(&buf, limits) {
            Err(pickle::Error::Truncated { .. }) if chunk < max => {
                chunk = max.min(chunk.saturating_mul(4));
            }
            Err(pickle::Error::Truncated { .. }) if max < len.saturating_sub(at) => {
                return Err(Error::Limit {
                    path: path.to_owned(),
                    what: format!("legacy {part} pickle size"),
                    actual: len - at,
                    limit: limits.max_metadata_bytes,
                })
            }
            r => {
                return r.map_err(|e| {
                    pickle_error(path, &format!("legacy {part} pickle at offset {at}"), e)
                })
            }
        }
    }
}

fn load_legacy<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    len: u64,
    limits: &Limits,
) -> Result<Loaded<R>> {
    let legacy = |part, offset, reason: String| Error::Legacy {
        path: path.to_owned(),
        part,
        offset,
        reason,
    };
    let mut at = 0u64;
    let magic = legacy_pickle(path, &mut reader, at, len, limits, "magic number")?;
    if !matches!(magic.root(), Object::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(legacy(
            "magic number",
            at,
            format!("found {:?}", magic.root()),
        ));
    }
    at += magic.len as u64;
    let proto = legacy_pickle(path, &mut reader, at, len, limits, "protocol version")?;
    if proto.root() != &Object::Int(LEGACY_PROTOCOL) {
        return Err(legacy(
            "protocol version",
            at,
            format!("expected {LEGACY_PROTOCOL}, found {:?}", proto.root()),
        ));
    }
    at += proto.len as u64;
    let sys_info = legacy_pickle(path, &mut reader, at, len, limits, "sys info")?;
    if let Some(le) = dict_get(&sys_info, sys_info.root, "little_endian") {
        if sys_info.get(le) != &Object::Bool(true) {
            return Err(legacy("sys info", at, "file is not little-endian".into()));
        }
    }
    at += sys_info.len as u64;
    let pickle = legacy_pickle(path, &mut reader, at, len, limits, "object")?;
    at += pickle.len as u64;
    let keys_at = at;
    let keys = legacy_pickle(path, &mut reader, at, len, limits, "storage keys")?;
    at += keys.len as u64;
    let Object::List(key_ids) = keys.root() else {
        return Err(legacy(
            "storage keys",
            keys_at,
            format!("expected a list, found {}", keys.root().type_name()),
        ));
    };
    if key_ids.len() as u64 > limits.max_tensors {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "legacy storage count".into(),
            actual: key_ids.len() as u64,
            limit: limits.max_tensors,
        });
    }
    // dtype of each storage, from the persistent ids in the object pickle
    let mut dtypes: HashMap<&str, DType> = HashMap::new();
    for obj in &pickle.objects {
        if let Object::Storage(s) = obj {
            if let Some(&d) = dtypes.get(s.key.as_str()) {
                if d != s.dtype {
                    return Err(legacy(
                        "object",
                        keys_at,
                        format!("storage `{}` declared as {d:?} and {:?}", s.key, s.dtype),
                    ));
                }
            }
            dtypes.insert(&s.key, s.dtype);
        }
    }
    let mut spans = HashMap::with_capacity(key_ids.len());
    for &id in key_ids {
        let key = match keys.get(id) {
            // storage keys are short (checked by the interpreter for the persistent ids)
            Object::Str(s) if s.len() <= 256 => s.clone(),
            Object::Int(i) => i.to_string(),
            other => {
                return Err(legacy(
                    "storage keys",
                    keys_at,
                    format!("key is a {}", other.type_name()),
                ))
            }
        };
        let Some(&dtype) = dtypes.get(key.as_str()) else {
            return Err(legacy(
                "storage keys",
                keys_at,
                format!("key `{key}` is not used by any tensor"),
            ));
        };
        let mut count = [0u8; 8];
        reader
            .seek(SeekFrom::Start(at))
            .and_then(|_| reader.read_exact(&mut count))
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::StorageSize {
                    path: path.to_owned(),
                    key: key.clone(),
                    what: "legacy element count at end of file",
                    expected: 8,
                    actual: len.saturating_sub(at),
                },
                _ => Error::Io {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let count = u64::from_le_bytes(count);
        let bytes = count.saturating_mul(dtype.size() as u64);
        let start = at + 8;
        let available = len.saturating_sub(start);
        if bytes > available {
            return Err(Error::StorageSize {
                path: path.to_owned(),
                key,
                what: "legacy storage vs rest of file",
                expected: bytes,
                actual: available,
            });
        }
        at = start + bytes;
        if spans.insert(key.clone(), (start, bytes)).is_some() {
            return Err(legacy(
                "storage keys",
                keys_at,
                format!("key `{key}` listed twice"),
            ));
        }
    }
    Ok(Loaded {
        pickle,
        storages: Storages::Legacy { reader, spans },
    })
}

impl<R: Read + Seek> Storages<R> {
    /// The bytes of one storage, checked against its declared size before allocation.
    fn load(&mut self, path: &Path, s: &StorageRef) -> Result<Vec<u8>> {
        let expected = s.numel.saturating_mul(s.dtype.size() as u64);
        match self {
            Storages::Zip { archive, root, len } => {
                let name = format!("{root}/data/{}", s.key);
                let data = read_entry(path, archive, &name, expected, *len, "storage size")?
                    .ok_or_else(|| Error::MissingStorage {
                        path: path.to_owned(),
                        key: s.key.clone(),
                    })?;
                if data.len() as u64 != expected {
                    return Err(Error::StorageSize {
                        path: path.to_owned(),
                        key: s.key.clone(),
                        what: "zip entry vs declared numel",
                        expected,
                        actual: data.len() as u64,
                    });
                }
                Ok(data)
            }
            Storages::Legacy { reader, spans } => {
                let &(start, bytes) = spans.get(&s.key).ok_or_else(|| Error::MissingStorage {
                    path: path.to_owned(),
                    key: s.key.clone(),
                })?;
                if bytes != expected {
                    return Err(Error::StorageSize {
                        path: path.to_owned(),
                        key: s.key.clone(),
                        what: "legacy element count vs declared numel",
                        expected,
                        actual: bytes,
                    });
                }
                // `bytes` was checked against the file length when the spans were built.
                let mut data = vec![0u8; bytes as usize];
                reader
                    .seek(SeekFrom::Start(start))
                    .and_then(|_| reader.read_exact(&mut data))
                    .map_err(|source| Error::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                Ok(data)
            }
        }
    }
}

/// Storage bytes shared by the tensors that view them; each storage is read once and dropped
/// after its last tensor is built (and moved, not copied, into a tensor that is its only
/// full, contiguous user).
struct StorageCache {
    uses: HashMap<String, usize>,
    data: HashMap<String, Vec<u8>>,
    /// Bytes still allowed for tensors built from this file (see [`EXPANSION`]).
    budget: u64,
}

/// Shared storages let one stored byte appear in several tensors (tied weights, views).
/// A file may expand by at most this factor (plus 1 MiB) when materialised, so a small
/// file cannot make the reader allocate without bound.
const EXPANSION: u64 = 16;

impl StorageCache {
    fn new(tensors: &[&TensorRef], file_len: u64) -> Self {
        let mut uses = HashMap::new();
        for t in tensors {
            *uses.entry(t.storage.key.clone()).or_insert(0) += 1;
        }
        StorageCache {
            uses,
            data: HashMap::new(),
            budget: file_len.saturating_mul(EXPANSION).saturating_add(1 << 20),
        }
    }
}

fn materialise<R: Read + Seek>(
    path: &Path,
    tensors: &[(String, &TensorRef)],
    cache: &mut StorageCache,
    storages: &mut Storages<R>,
) -> Result<StateDict> {
    let mut out = Vec::with_capacity(tensors.len());
    materialise_each(path, tensors, cache, storages, &mut |name, t| {
        out.push((name, t));
        Ok(())
    })?;
    Ok(out)
}

/// Builds each tensor in turn and hands it to `visit`; a storage is dropped after its last use.
fn materialise_each<R: Read + Seek>(
    path: &Path,
    tensors: &[(String, &TensorRef)],
    cache: &mut StorageCache,
    storages: &mut Storages<R>,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    for (name, t) in tensors {
        let key = &t.storage.key;
        let bytes = byte_len(t.storage.dtype, &t.shape).unwrap_or(u64::MAX);
        if bytes > cache.budget {
            return Err(Error::Limit {
                path: path.to_owned(),
                what: format!("bytes of tensors built from shared storages (at `{name}`)"),
                actual: bytes,
                limit: cache.budget,
            });
        }
        cache.budget -= bytes;
        if !cache.data.contains_key(key) {
            let bytes = storages.load(path, &t.storage)?;
            cache.data.insert(key.clone(), bytes);
        }
        let remaining = cache.uses.get_mut(key).map(|u| {
            *u = u.saturating_sub(1);
            *u
        });
        let esize = t.storage.dtype.size();
        // One key can be named by several persistent ids; all must agree on the size.
        let stored = cache.data.get(key).map_or(0, |d| d.len() as u64);
        let declared = t.storage.numel.saturating_mul(esize as u64);
        if stored != declared {
            return Err(Error::StorageSize {
                path: path.to_owned(),
                key: key.clone(),
                what: "storage declared with two different sizes",
                expected: declared,
                actual: stored,
            });
        }
        // The shape passed the tensor byte limit in the pickle interpreter, so this fits.
        let numel: usize = if t.shape.contains(&0) {
            0
        } else {
            t.shape.iter().product()
        };
        let contiguous = numel <= 1 || t.stride == strides(&t.shape);
        let whole = t.offset == 0 && (numel as u64) == t.storage.numel;
        let data = if remaining == Some(0) && contiguous && whole {
            cache.data.remove(key).unwrap_or_default()
        } else {
            let storage = cache.data.get(key).map(Vec::as_slice).unwrap_or_default();
            let view = gather(storage, esize, t);
            if remaining == Some(0) {
                cache.data.remove(key);
            }
            view
        };
        let tensor = Tensor::new(name, t.storage.dtype, t.shape.clone(), data).map_err(|e| {
            Error::Tensor {
                path: path.to_owned(),
                source: Box::new(e),
            }
        })?;
        visit(name.clone(), tensor)?;
    }
    Ok(())
}

/// Copies a strided view out of its storage into contiguous row-major bytes.
/// The view's extent was checked against the storage numel by the pickle interpreter and the
/// storage length against that numel, so indexing is in bounds.
fn gather(storage: &[u8], esize: usize, t: &TensorRef) -> Vec<u8> {
    if t.shape.contains(&0) {
        return Vec::new();
    }
    let numel: usize = t.shape.iter().product();
    let offset = t.offset as usize;
    if numel == 1 || t.stride == strides(&t.shape) {
        return storage[offset * esize..(offset + numel) * esize].to_vec();
    }
    let rank = t.shape.len();
    let mut out = Vec::with_capacity(numel * esize);
    let mut idx = vec![0usize; rank];
    let mut pos = offset;
    // `pos` only leaves the view (and may wrap) after the last element, when it is not read.
    for _ in 0..numel {
        out.extend_from_slice(&storage[pos * esize..(pos + 1) * esize]);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            pos = pos.wrapping_add(t.stride[ax]);
            if idx[ax] < t.shape[ax] {
                break;
            }
            pos = pos.wrapping_sub(t.stride[ax].wrapping_mul(t.shape[ax]));
            idx[ax] = 0;
        }
    }
    out
}

/// A dict of str → tensor found in the pickle.
struct TensorDict<'a> {
    path: String,
    dict: ObjId,
    tensors: Vec<(String, &'a TensorRef)>,
}

/// `Some(entries)` if `id` is a dict whose keys are all str and values all tensors.
fn as_tensor_dict(u: &Unpickled, id: ObjId) -> Option<Vec<(String, &TensorRef)>> {
    let Object::Dict { items, .. } = u.get(id) else {
        return None;
    };
    items
        .iter()
        .map(|&(k, v)| match (u.get(k), u.get(v)) {
            (Object::Str(k), Object::Tensor(t)) => Some((k.clone(), t)),
            _ => None,
        })
        .collect()
}

/// All tensor dicts: the root if it is one (even empty), else non-empty ones in nested dicts.
fn find_tensor_dicts(u: &Unpickled) -> Vec<TensorDict<'_>> {
    let mut found = Vec::new();
    if let Some(tensors) = as_tensor_dict(u, u.root) {
        found.push(TensorDict {
            path: String::new(),
            dict: u.root,
            tensors,
        });
        return found;
    }
    // Depth-first in file order, without recursion; each dict is looked at once (under the
    // first path that reaches it), which also stops cycles and shared-reference blow-ups.
    let mut seen = HashSet::from([u.root]);
    let mut todo = vec![(u.root, String::new(), 0usize)];
    while let Some((id, path, depth)) = todo.pop() {
        let Object::Dict { items, .. } = u.get(id) else {
            continue;
        };
        let mut children = Vec::new();
        for &(k, v) in items {
            let Object::Str(key) = u.get(k) else { continue };
            if !matches!(u.get(v), Object::Dict { .. }) || !seen.insert(v) {
                continue;
            }
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match as_tensor_dict(u, v) {
                Some(tensors) if !tensors.is_empty() => found.push(TensorDict {
                    path: child,
                    dict: v,
                    tensors,
                }),
                Some(_) => {}
                None if depth + 1 < MAX_NESTING => children.push((v, child, depth + 1)),
                None => {}
            }
        }
        todo.extend(children.into_iter().rev());
    }
    found
}

fn choose<'a, 'b>(
    path: &Path,
    u: &Unpickled,
    found: &'b [TensorDict<'a>],
) -> Result<&'b TensorDict<'a>> {
    let candidates = || found.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    if !matches!(u.root(), Object::Dict { .. }) {
        return Err(Error::StateDict {
            path: path.to_owned(),
            reason: format!("top-level object is a {}, not a dict", u.root().type_name()),
            candidates: candidates(),
        });
    }
    for want in std::iter::once("").chain(PREFERRED_KEYS) {
        if let Some(f) = found.iter().find(|f| f.path == want) {
            return Ok(f);
        }
    }
    match found {
        [only] => Ok(only),
        [] => Err(Error::StateDict {
            path: path.to_owned(),
            reason: "no dict of tensors found".into(),
            candidates: Vec::new(),
        }),
        _ => Err(Error::StateDict {
            path: path.to_owned(),
            reason: "several tensor dicts and none is the top level, `state_dict` or `model`"
                .into(),
            candidates: candidates(),
        }),
    }
}

fn dict_get(u: &Unpickled, dict: ObjId, key: &str) -> Option<ObjId> {
    let Object::Dict { items, .. } = u.get(dict) else {
        return None;
    };
    items
        .iter()
        .find(|&&(k, _)| u.as_str(k) == Some(key))
        .map(|&(_, v)| v)
}

/// `state._metadata` of an OrderedDict state dict: prefix → `{'version': n}`.
fn module_versions(u: &Unpickled, dict: ObjId) -> Vec<(String, i64)> {
    let Object::Dict {
        state: Some(state), ..
    } = u.get(dict)
    else {
        return Vec::new();
    };
    let Some(meta) = dict_get(u, *state, "_metadata") else {
        return Vec::new();
    };
    let Object::Dict { items, .. } = u.get(meta) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|&(k, v)| {
            let prefix = u.as_str(k)?;
            match u.get(dict_get(u, v, "version")?) {
                Object::Int(n) => Some((prefix.to_owned(), *n)),
                _ => None,
            }
        })
        .collect()
}

fn scalars(u: &Unpickled) -> Vec<(String, String)> {
    let Object::Dict { items, .. } = u.root() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|&(k, v)| {
            let key = u.as_str(k)?.to_owned();
            let value = match u.get(v) {
                Object::Str(s) if s.len() <= 1024 => s.clone(),
                Object::Int(i) => i.to_string(),
                Object::Float(f) => f.to_string(),
                Object::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
                _ => return None,
            };
            Some((key, value))
        })
        .collect()
}

/// Writes `tensors` as a zip `.pth` that `torch.load(weights_only=True)` accepts.
/// Atomic (temp file + rename) and deterministic (see [`PthWriter`]).
pub fn write(path: &Path, tensors: &StateDict) -> Result<()> {
    let mut w = PthWriter::create(path)?;
    for (name, t) in tensors {
        w.add(name, t)?;
    }
    w.finish()
}

/// Streams a zip `.pth` file tensor by tensor, so a conversion never holds every tensor at once.
///
/// Entry order: `archive/data/0`, `archive/data/1`, … (one storage per tensor, in `add`
/// order, 64-byte aligned), then `archive/data.pkl`, `archive/byteorder`, `archive/version`.
/// All entries are stored uncompressed with the zip epoch (1980-01-01) as mtime and fixed
/// permissions, so the bytes depend only on the names, dtypes, shapes and data added.
/// Nothing appears at `path` until [`PthWriter::finish`] succeeds.
pub struct PthWriter {
    path: PathBuf,
    /// Dropped before `zip`: an unfinished archive is then finalized into nothing, quietly.
    abandon: Abandon,
    zip: ZipWriter<ZipSink<BufWriter<File>>>,
    temp_path: tempfile::TempPath,
    pickler: pickle::StateDictPickler,
    names: HashSet<String>,
    writeback: EarlyWriteback,
}

impl std::fmt::Debug for PthWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PthWriter")
            .field("path", &self.path)
            .field("tensors", &self.names.len())
            .finish()
    }
}

fn entry_options(len: u64, alignment: u16) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::DEFAULT)
        .unix_permissions(0o644)
        .large_file(len >= u64::from(u32::MAX))
        .with_alignment(alignment)
}

impl PthWriter {
    /// Starts writing to a temporary file next to `path`.
    pub fn create(path: &Path) -> Result<PthWriter> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
        let (file, temp_path) = temp.into_parts();
        let writeback = EarlyWriteback::start(&file).map_err(io)?;
        let (sink, abandon) = ZipSink::new(BufWriter::with_capacity(1 << 20, file));
        Ok(PthWriter {
            path: path.to_owned(),
            abandon,
            zip: ZipWriter::new(sink),
            temp_path,
            pickler: pickle::StateDictPickler::new(),
            names: HashSet::new(),
            writeback,
        })
    }

    fn zip_err(&self) -> impl Fn(zip::result::ZipError) -> Error + '_ {
        zip_err(&self.path)
    }

    /// Appends one tensor (its bytes are written now and not kept).
    pub fn add(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        if !self.names.insert(name.to_owned()) {
            return Err(Error::DuplicateName {
                path: self.path.clone(),
                name: name.to_owned(),
            });
        }
        debug_assert_eq!(
            byte_len(tensor.dtype(), tensor.shape()),
            Some(tensor.data().len() as u64)
        );
        let key = self.pickler.add(name, tensor.dtype(), tensor.shape());
        let data = tensor.data();
        self.zip
            .start_file(
                format!("{ARCHIVE_ROOT}/data/{key}"),
                entry_options(data.len() as u64, ALIGNMENT),
            )
            .map_err(self.zip_err())?;
        self.zip.write_all(data).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.writeback.wrote(data.len() as u64);
        Ok(())
    }

    /// Writes the pickle and the trailer entries, fsyncs and renames into place.
    pub fn finish(self) -> Result<()> {
        let sealed = self.seal()?;
        let path = sealed.path().to_owned();
        sealed
            .publish()
            .map_err(|source| Error::Io { path, source })
    }

    /// Writes the pickle and the trailer entries and fsyncs, but does not rename yet: see
    /// [`Sealed`].
    pub fn seal(mut self) -> Result<Sealed> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io {
                path: path.clone(),
                source,
            }
        };
        let pickle = std::mem::take(&mut self.pickler).finish();
        let small: [(&str, &[u8]); 3] = [
            ("data.pkl", &pickle),
            ("byteorder", b"little"),
            ("version", b"3\n"),
        ];
        for (name, bytes) in small {
            self.zip
                .start_file(
                    format!("{ARCHIVE_ROOT}/{name}"),
                    entry_options(bytes.len() as u64, ALIGNMENT),
                )
                .map_err(self.zip_err())?;
            self.zip.write_all(bytes).map_err(io(&self.path))?;
        }
        let writer = self
            .zip
            .finish()
            .map_err(zip_err(&self.path))?
            .into_inner()
            .map_err(io(&self.path))?;
        drop(self.abandon);
        self.writeback.finish().map_err(io(&self.path))?;
        let file = writer.into_inner().map_err(|e| Error::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&self.path))?;
        let temp = tempfile::NamedTempFile::from_parts(file, self.temp_path);
        Ok(Sealed::new(temp, self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize]) -> Tensor {
        let n = byte_len(dtype, shape).unwrap() as usize;
        Tensor::new(
            "t",
            dtype,
            shape.to_vec(),
            (0..n).map(|i| (i * 7 + 3) as u8).collect(),
        )
        .unwrap()
    }

    #[test]
    fn writes_and_reads_back_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pth");
        let sd: StateDict = DType::ALL
            .iter()
            .enumerate()
            .map(|(i, &d)| (format!("t{i}"), t(d, &[2, 3])))
            .chain([
                ("scalar".to_owned(), t(DType::F32, &[])),
                ("empty".to_owned(), t(DType::F32, &[0, 4])),
            ])
            .collect();
        write(&p, &sd).unwrap();
        assert_eq!(read(&p).unwrap(), sd);
    }

    #[test]
    fn rejects_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pth");
        let mut w = PthWriter::create(&p).unwrap();
        w.add("a", &t(DType::F32, &[1])).unwrap();
        let e = w.add("a", &t(DType::F32, &[1])).unwrap_err();
        assert!(matches!(e, Error::DuplicateName { .. }), "{e}");
        drop(w);
        assert!(!p.exists());
    }

    #[test]
    fn gather_transposed_view() {
        // storage 0..6 as [2,3]; view .t() = shape [3,2] stride [1,3]
        let storage: Vec<u8> = (0..6).collect();
        let r = TensorRef {
            storage: StorageRef {
                key: "0".into(),
                dtype: DType::U8,
                location: "cpu".into(),
                numel: 6,
            },
            offset: 0,
            shape: vec![3, 2],
            stride: vec![1, 3],
        };
        assert_eq!(gather(&storage, 1, &r), vec![0, 3, 1, 4, 2, 5]);
        // a size-1 dimension may carry any stride (torch does not normalise it)
        let odd = TensorRef {
            shape: vec![1, 3],
            stride: vec![usize::MAX / 2, 1],
            offset: 2,
            ..r
        };
        assert_eq!(gather(&storage, 1, &odd), vec![2, 3, 4]);
    }
}
