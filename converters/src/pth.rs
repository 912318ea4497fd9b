//! PyTorch `torch.save` files (`.pth`, `.pt`, `.bin`): read safely, write deterministically.
//!
//! # Byte layout
//! **Zip format** (torch ≥ 1.6): a zip archive whose entries all sit under one root directory
//! (`archive/` or the file stem): `<root>/data.pkl` (the object pickle), `<root>/data/<key>`
//! (one entry per storage: raw little-endian elements, stored uncompressed, data 64-byte
//! aligned), `<root>/byteorder` (`little`; absent in old files, meaning little),
//! `<root>/version` (or `<root>/.data/version`), and optional `.format_version`,
//! `.storage_alignment`, `.data/serialization_id`. Storages appear in `data.pkl` as persistent
//! ids `('storage', torch.<T>Storage, key, location, numel)`.
//!
//! **Legacy format** (`_use_new_zipfile_serialization=False`): five pickles back to back —
//! the magic number `0x1950a86a20f9469cfc6c`, the protocol version `1001`, a sys-info dict,
//! the object pickle (persistent ids carry a sixth element, view metadata, always `None`), and
//! the list of storage keys — then, for each key in list order, an 8-byte little-endian element
//! count followed by that many elements' raw bytes.
//!
//! The format is detected from the first bytes (`PK\x03\x04`, or the whole 14-byte pickle of
//! the legacy magic number), never from the file name. Objects are interpreted by
//! [`crate::pickle`]; nothing is executed.
//!
//! # Reading what torch reads
//! A file is read the way `torch.load(weights_only=True)` reads it, or refused: the zip
//! container through [`crate::zipread`] (one root taken from the first entry as torch takes
//! it, no duplicate names even ignoring case, the `version` record torch requires, CRC-32 of
//! every record read), the pickle through the weights-only subset, and each tensor as the view
//! `_rebuild_tensor_v2` makes of its storage. Where torch would read a file one way and
//! another reader another way (duplicate entries, a storage key declared twice, trailing
//! legacy data that also parses as a tarball), the file is refused with an error naming the
//! entry or key.
//!
//! # Checks and memory
//! Every storage's declared size is checked against its zip entry or the remaining file
//! length, every view (offset, shape, stride) against its storage, and pickle sizes against
//! [`Limits`]. A tensor is read from the file as the span of its storage that it views, not
//! the whole storage, and only when it is built: memory holds the pickle, the tensor being
//! built (twice for a strided view, which is gathered into a fresh contiguous buffer) and what
//! the caller keeps. A view whose span is much larger than the tensor (a sparse view) is
//! refused, so that bound holds for every input. Shared storages are read once per tensor
//! that views them; the total read is bounded by [`EXPANSION`] × the file length.
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::limits::LimitKind;
use crate::pickle::{self, ObjId, Object, PersistentIds, TensorRef, Unpickled};
use crate::tensor::{byte_len, strides, DType, Limits, StateDict, Tensor};
use crate::text::esc;
use crate::writeback::{Abandon, EarlyWriteback, Sealed, ZipSink};
use crate::zipread::{self, ZipIndex, ZipProblem};

/// The legacy magic number, as the little-endian bytes LONG1 stores.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// How a legacy file starts: `PROTO 2`, `LONG1 10`, the magic number (format detection
/// requires all 14 bytes).
pub const LEGACY_HEAD: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];
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
/// The zip format versions torch reads (`kMinSupportedFileFormatVersion` …
/// `kMaxSupportedFileFormatVersion` in `caffe2/serialize/inline_container.h`).
const ZIP_VERSIONS: std::ops::RangeInclusive<u64> = 1..=10;
/// A strided view may span at most this many bytes more than the tensor it makes; beyond,
/// it is refused as a sparse view (reading it would hold far more than the tensor).
const SPARSE_SLACK: u64 = 32 << 20;
/// Shared storages let one stored byte appear in several tensors (tied weights, views).
/// One read may read at most this many times the file length (plus 1 MiB) in total, so a
/// small file cannot make the reader read or allocate without bound (a `memory-bytes` limit
/// raised above its default raises this too).
pub const EXPANSION: u64 = 16;
/// Bytes per read while checking a record's CRC-32.
const CHUNK: usize = 1 << 20;

/// Why a `.pth` file could not be read or written.
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
    /// Neither a zip archive nor a legacy `torch.save` file.
    #[error("{}: not a torch.save file (starts with {magic:02x?}, expected PK\\x03\\x04 or the legacy magic number pickle 80 02 8a 0a 6c fc 9c 46 f9 20 6a a8 50 19)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        magic: Vec<u8>,
    },
    /// The zip writer failed.
    #[error("{}: zip: {error}", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// The zip crate's error.
        error: zip::result::ZipError,
    },
    /// The zip container is malformed or not what torch writes.
    #[error("{}: zip container at offset {offset}: {what}", path.display())]
    ZipStructure {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong (names in it are escaped).
        what: String,
    },
    /// Two zip entries with one name (or names equal but for ASCII case, which torch's lookup
    /// does not tell apart): torch and other readers could each read a different one.
    #[error("{}: zip entries `{}` and `{}` have the same name; refusing an archive that readers can read two ways", path.display(), esc(first), esc(second))]
    DuplicateEntry {
        /// The file.
        path: PathBuf,
        /// The first entry's name.
        first: String,
        /// The later entry's name.
        second: String,
    },
    /// The entries are not all under the root directory torch takes from the first entry.
    #[error("{}: {reason}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// What is wrong (names in it are escaped).
        reason: String,
    },
    /// A required zip entry is missing.
    #[error("{}: missing zip entry `{}`", path.display(), esc(entry))]
    MissingEntry {
        /// The file.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// A zip entry is compressed (torch stores everything uncompressed).
    #[error("{}: zip entry `{}` is compressed with method {method}; only stored entries are read", path.display(), esc(entry))]
    Compressed {
        /// The file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// The compression method.
        method: String,
    },
    /// A zip entry's bytes do not match the CRC-32 the archive records for them.
    #[error("{}: zip entry `{}`: CRC-32 is {actual:#010x}, the archive says {expected:#010x}", path.display(), esc(entry))]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// CRC-32 in the central directory.
        expected: u32,
        /// CRC-32 of the bytes.
        actual: u32,
    },
    /// `byteorder` is not `little`.
    #[error("{}: byteorder is \"{found}\", only little-endian files are supported", path.display())]
    ByteOrder {
        /// The file.
        path: PathBuf,
        /// The recorded byte order (escaped).
        found: String,
    },
    /// A record torch parses (`version`, `.storage_alignment`) holds something torch would not
    /// accept.
    #[error("{}: zip entry `{}` is \"{found}\"; expected {expected}", path.display(), esc(entry))]
    Record {
        /// The file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// Its contents (escaped, cut to 64 bytes).
        found: String,
        /// What torch accepts.
        expected: &'static str,
    },
    /// A global outside the allow-list. Nothing was executed.
    #[error("{}: {}: global `{}.{}` at offset {offset} is not allow-listed; refusing to load", file.display(), esc(part), esc(module), esc(name))]
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
    #[error("{}: {}: {error}", path.display(), esc(part))]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Which pickle.
        part: String,
        /// The interpreter's error.
        error: pickle::Error,
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
    #[error("{}: storage `{}` ({what}): expected {expected} bytes, found {actual}", path.display(), esc(key))]
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
    #[error("{}: storage `{}` is referenced but missing", path.display(), esc(key))]
    MissingStorage {
        /// The file.
        path: PathBuf,
        /// The storage key.
        key: String,
    },
    /// A strided view that spans far more of its storage than the tensor it makes.
    #[error("{}: tensor `{}` views {span} bytes of storage `{}` for {bytes} bytes of data; sparse views over {SPARSE_SLACK} extra bytes are not read", path.display(), esc(name), esc(key))]
    SparseView {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its storage key.
        key: String,
        /// Bytes from the first to one past the last element it views.
        span: u64,
        /// Its own size.
        bytes: u64,
    },
    /// A bool tensor holds a byte other than 0 or 1 (which torch would read as `True`, and
    /// other readers as the raw byte).
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
    /// A size or count over a [`Limits`] bound.
    #[error("{}: {what} is {actual}, over the {kind} of {limit} ({})", path.display(), kind.hint())]
    Limit {
        /// The file.
        path: PathBuf,
        /// What was sized (names in it are escaped).
        what: String,
        /// The value found.
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
    #[error("{}: duplicate tensor name `{}`", path.display(), esc(name))]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A tensor could not be built (internal size mismatch).
    #[error("{}: {error}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The error.
        error: Box<crate::Error>,
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

/// Reads the state dict of a `.pth` file with the process's [`Limits::current`].
///
/// The file may be a bare state dict or a checkpoint dict; the state dict is the top level if
/// it holds only tensors, else `state_dict`, else `model`, else the only tensor dict there is.
/// Otherwise the error lists the candidates.
pub fn read(path: &Path) -> Result<StateDict> {
    read_with_limits(path, Limits::current())
}

/// [`read`] with explicit limits.
pub fn read_with_limits(path: &Path, limits: Limits) -> Result<StateDict> {
    let (file, len) = open(path)?;
    read_from(path, file, len, &limits)
}

/// Like [`read`], but hands each tensor to `visit` as it is built instead of returning them
/// all: memory holds one tensor at a time.
pub fn read_each(path: &Path, visit: &mut dyn FnMut(String, Tensor) -> Result<()>) -> Result<()> {
    read_each_with_limits(path, Limits::current(), visit)
}

/// [`read_each`] with explicit limits.
pub fn read_each_with_limits(
    path: &Path,
    limits: Limits,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    let (file, len) = open(path)?;
    read_each_from(path, file, len, &limits, None, visit)
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

/// The tensor dict [`read`] would return, with each tensor handed to `visit`; returns the keys
/// that lead to it from the top level (none for the top level itself). For tools that compare
/// against another reader.
pub fn read_chosen(
    path: &Path,
    limits: Limits,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<Vec<String>> {
    let (file, len) = open(path)?;
    let mut chosen = Vec::new();
    read_each_from(path, file, len, &limits, Some(&mut chosen), visit)?;
    Ok(chosen)
}

/// Reads every tensor dict of a `.pth` file (top level, `state_dict`, `model`, `model_ema`,
/// `state_dict_ema`, … at any nesting up to 4 levels), with their `_metadata`.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let limits = Limits::current();
    let (file, len) = open(path)?;
    let mut loaded = load(path, file, len, &limits)?;
    let found = find_tensor_dicts(&loaded.pickle);
    let mut state_dicts = Vec::with_capacity(found.len());
    let mut budget = Budget::new(len, &limits, true);
    for f in &found {
        let mut tensors = Vec::with_capacity(f.tensors.len());
        materialise_each(
            path,
            &f.tensors,
            &mut loaded.storages,
            &mut budget,
            &mut |name, t| {
                tensors.push((name, t));
                Ok(())
            },
        )?;
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
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
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
    let mut chosen = Vec::new();
    read_each_inner(
        path,
        reader,
        len,
        limits,
        &mut chosen,
        true,
        &mut |name, t| {
            out.push((name, t));
            Ok(())
        },
    )?;
    Ok(out)
}

fn read_each_from<R: Read + Seek>(
    path: &Path,
    reader: R,
    len: u64,
    limits: &Limits,
    chosen: Option<&mut Vec<String>>,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    let mut unused = Vec::new();
    let chosen = chosen.unwrap_or(&mut unused);
    read_each_inner(path, reader, len, limits, chosen, false, visit)
}

fn read_each_inner<R: Read + Seek>(
    path: &Path,
    reader: R,
    len: u64,
    limits: &Limits,
    chosen_keys: &mut Vec<String>,
    collect: bool,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    let mut loaded = load(path, reader, len, limits)?;
    let found = find_tensor_dicts(&loaded.pickle);
    let chosen = choose(path, &loaded.pickle, &found)?;
    if chosen.tensors.len() as u64 > limits.max_tensors {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: "tensor count".into(),
            actual: chosen.tensors.len() as u64,
            limit: limits.max_tensors,
            kind: LimitKind::Tensors,
        });
    }
    chosen_keys.clone_from(&chosen.keys);
    let mut budget = Budget::new(len, limits, collect);
    materialise_each(
        path,
        &chosen.tensors,
        &mut loaded.storages,
        &mut budget,
        visit,
    )
}

/// The object pickle plus where its storages live.
struct Loaded<R> {
    pickle: Unpickled,
    storages: Storages<R>,
}

/// Where one storage's bytes are in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    len: u64,
    /// CRC-32 of the bytes (zip records), checked on first read.
    crc: Option<u32>,
}

struct Storages<R> {
    reader: R,
    spans: HashMap<String, Span>,
    /// Keys whose CRC has been checked.
    verified: HashSet<String>,
    /// Where the sizes come from, for messages.
    what: &'static str,
    chunk: Vec<u8>,
}

fn load<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    len: u64,
    limits: &Limits,
) -> Result<Loaded<R>> {
    let mut head = [0u8; 512];
    let n = read_up_to(&mut reader, &mut head).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        load_zip(path, reader, len, limits)
    } else if head.starts_with(&LEGACY_HEAD) {
        if looks_like_tar(head) {
            // torch.load tries an old tarball-based format before the legacy pickles.
            return Err(Error::Legacy {
                path: path.to_owned(),
                part: "magic number",
                offset: 0,
                reason: "the first 512 bytes are also a valid tar header, which torch.load would read as its tar-based format; refusing an ambiguous file".into(),
            });
        }
        load_legacy(path, reader, len, limits)
    } else {
        Err(Error::UnknownFormat {
            path: path.to_owned(),
            magic: head[..n.min(14)].to_vec(),
        })
    }
}

/// Whether `block` (the first bytes of a file) carries a tar header checksum that Python's
/// `tarfile` would accept (octal field at 148..156 equal to the unsigned or signed byte sum
/// with that field read as spaces).
fn looks_like_tar(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = &block[148..156];
    let text: Vec<u8> = field.iter().copied().take_while(|&b| b != 0).collect();
    let Ok(text) = std::str::from_utf8(&text) else {
        return false;
    };
    let Ok(stored) = i64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block[..512].iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
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
    move |error| Error::Zip {
        path: path.to_owned(),
        error,
    }
}

fn zip_problem(path: &Path, p: ZipProblem) -> Error {
    let path = path.to_owned();
    match p {
        ZipProblem::At { offset, what } => Error::ZipStructure { path, offset, what },
        ZipProblem::Duplicate { first, second } => Error::DuplicateEntry {
            path,
            first,
            second,
        },
        ZipProblem::Compressed { name, method } => Error::Compressed {
            path,
            entry: name,
            method: method.to_string(),
        },
        ZipProblem::Limit {
            what,
            actual,
            limit,
            kind,
        } => Error::Limit {
            path,
            what: what.into(),
            actual,
            limit,
            kind,
        },
        ZipProblem::Io(error) => Error::Io { path, error },
    }
}

fn alloc_err(path: &Path, what: String, bytes: u64) -> Error {
    Error::Alloc {
        path: path.to_owned(),
        what,
        bytes,
    }
}

/// Reads a whole small zip record (at most `max` bytes) and checks its CRC-32.
fn read_record<R: Read + Seek>(
    path: &Path,
    reader: &mut R,
    index: &ZipIndex,
    name: &str,
    max: u64,
    kind: LimitKind,
) -> Result<Option<Vec<u8>>> {
    let Some(entry) = index.get(name) else {
        return Ok(None);
    };
    if entry.size > max {
        return Err(Error::Limit {
            path: path.to_owned(),
            what: format!("size of zip entry `{}`", esc(name)),
            actual: entry.size,
            limit: max,
            kind,
        });
    }
    let mut buf = crate::alloc::zeroed(entry.size)
        .ok_or_else(|| alloc_err(path, format!("zip entry `{}`", esc(name)), entry.size))?;
    reader
        .seek(SeekFrom::Start(entry.data_start))
        .and_then(|_| reader.read_exact(&mut buf))
        .map_err(|error| Error::Io {
            path: path.to_owned(),
            error,
        })?;
    let actual = crc32fast::hash(&buf);
    if actual != entry.crc32 {
        return Err(Error::Checksum {
            path: path.to_owned(),
            entry: name.to_owned(),
            expected: entry.crc32,
            actual,
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
        error => Error::Pickle {
            path: path.to_owned(),
            part: part.to_owned(),
            error,
        },
    }
}

/// The shown form of a record's bytes: escaped, cut to 64 bytes.
fn shown_record(bytes: &[u8]) -> String {
    let mut s = crate::text::esc_bytes(&bytes[..bytes.len().min(64)]);
    if bytes.len() > 64 {
        s.push('…');
    }
    s
}

fn load_zip<R: Read + Seek>(
    path: &Path,
    mut reader: R,
    len: u64,
    limits: &Limits,
) -> Result<Loaded<R>> {
    let index = zipread::read_index(
        &mut reader,
        len,
        limits.max_tensors.saturating_add(16),
        LimitKind::Tensors,
        limits.max_metadata_bytes,
    )
    .map_err(|p| zip_problem(path, p))?;
    // torch takes the root directory from the first entry's name.
    let root_err = |reason: String| Error::Root {
        path: path.to_owned(),
        reason,
    };
    let first = index
        .entries
        .first()
        .ok_or_else(|| root_err("the zip archive has no entries".into()))?;
    let Some((root, _)) = first.name.split_once('/') else {
        return Err(root_err(format!(
            "the first zip entry `{}` is not in a directory (torch takes the root directory from it)",
            esc(&first.name)
        )));
    };
    if root.is_empty() {
        return Err(root_err(format!(
            "the first zip entry `{}` has an empty root directory",
            esc(&first.name)
        )));
    }
    let prefix = format!("{root}/");
    // torch.load treats an archive with this record as TorchScript, which weights_only refuses.
    if index.get(&format!("{prefix}constants.pkl")).is_some() {
        return Err(root_err(format!(
            "zip entry `{}/constants.pkl` makes this a TorchScript archive, which torch.load(weights_only=True) refuses",
            esc(root)
        )));
    }
    if let Some(stray) = index.entries.iter().find(|e| !e.name.starts_with(&prefix)) {
        return Err(root_err(format!(
            "zip entry `{}` is outside the root directory `{}/` of the first entry",
            esc(&stray.name),
            esc(root)
        )));
    }
    let record = |reader: &mut R, name: &str, max: u64| {
        read_record(
            path,
            reader,
            &index,
            &format!("{prefix}{name}"),
            max,
            LimitKind::MetadataBytes,
        )
    };
    // torch reads `.data/version`, else `version`, and refuses the file without one.
    let (version_name, version) = match record(&mut reader, ".data/version", 64)? {
        Some(v) => (".data/version", v),
        None => match record(&mut reader, "version", 64)? {
            Some(v) => ("version", v),
            None => {
                return Err(Error::MissingEntry {
                    path: path.to_owned(),
                    entry: format!("{prefix}version"),
                })
            }
        },
    };
    let digits = version.strip_suffix(b"\n").unwrap_or(&version);
    let parsed = std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok());
    if !parsed.is_some_and(|v| ZIP_VERSIONS.contains(&v)) {
        return Err(Error::Record {
            path: path.to_owned(),
            entry: format!("{prefix}{version_name}"),
            found: shown_record(&version),
            expected: "a decimal format version from 1 to 10 (and a newline)",
        });
    }
    if let Some(order) = record(&mut reader, "byteorder", 64)? {
        if order != b"little" {
            return Err(Error::ByteOrder {
                path: path.to_owned(),
                found: shown_record(&order),
            });
        }
    }
    // torch parses this with int() whether it needs it or not.
    if let Some(align) = record(&mut reader, ".storage_alignment", 64)? {
        let ok = std::str::from_utf8(&align)
            .ok()
            .map(str::trim)
            .is_some_and(|d| {
                !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit())
            });
        if !ok {
            return Err(Error::Record {
                path: path.to_owned(),
                entry: format!("{prefix}.storage_alignment"),
                found: shown_record(&align),
                expected: "a decimal number",
            });
        }
    }
    // torch decodes this one as UTF-8 (and fails on anything else).
    if let Some(id) = record(&mut reader, ".data/serialization_id", 4096)? {
        if std::str::from_utf8(&id).is_err() {
            return Err(Error::Record {
                path: path.to_owned(),
                entry: format!("{prefix}.data/serialization_id"),
                found: shown_record(&id),
                expected: "UTF-8 text",
            });
        }
    }
    let pkl_name = format!("{prefix}data.pkl");
    let data = record(&mut reader, "data.pkl", limits.max_metadata_bytes)?.ok_or_else(|| {
        Error::MissingEntry {
            path: path.to_owned(),
            entry: pkl_name.clone(),
        }
    })?;
    let pickle = pickle::unpickle_as(&data, limits, PersistentIds::Zip)
        .map_err(|e| pickle_error(path, &pkl_name, e))?;
    drop(data);
    let data_prefix = format!("{prefix}data/");
    let spans = index
        .entries
        .iter()
        .filter_map(|e| {
            let key = e.name.strip_prefix(&data_prefix)?;
            Some((
                key.to_owned(),
                Span {
                    start: e.data_start,
                    len: e.size,
                    crc: Some(e.crc32),
                },
            ))
        })
        .collect();
    let storages = Storages::new(reader, spans, "zip entry vs declared numel");
    storages.check_all(path, &pickle)?;
    Ok(Loaded { pickle, storages })
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
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    let max = limits.max_metadata_bytes.min(len.saturating_sub(at));
    let mut chunk = max.min(1 << 20);
    loop {
        reader.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut buf = crate::alloc::with_capacity(chunk)
            .ok_or_else(|| alloc_err(path, format!("legacy {part} pickle"), chunk))?;
        reader
            .by_ref()
            .take(chunk)
            .read_to_end(&mut buf)
            .map_err(io)?;
        match pickle::unpickle_as(&buf, limits, PersistentIds::Legacy) {
            Err(pickle::Error::Truncated { .. }) if chunk < max => {
                chunk = max.min(chunk.saturating_mul(4));
            }
            Err(pickle::Error::Truncated { .. }) if max < len.saturating_sub(at) => {
                return Err(Error::Limit {
                    path: path.to_owned(),
                    what: format!("legacy {part} pickle size"),
                    actual: len - at,
                    limit: limits.max_metadata_bytes,
                    kind: LimitKind::MetadataBytes,
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
            kind: LimitKind::Tensors,
        });
    }
    // dtype of each storage, from the persistent ids in the object pickle (the interpreter
    // refuses a key declared with two dtypes or sizes)
    let dtypes: HashMap<&str, DType> = pickle
        .objects
        .iter()
        .filter_map(|obj| match obj {
            Object::Storage(s) => Some((s.key.as_str(), s.dtype)),
            _ => None,
        })
        .collect();
    let mut spans = HashMap::with_capacity(key_ids.len());
    for &id in key_ids {
        let key = match keys.get(id) {
            // storage keys are short (checked by the interpreter for the persistent ids)
            Object::Str(s) if s.len() <= 256 => s.clone(),
            other => {
                return Err(legacy(
                    "storage keys",
                    keys_at,
                    format!("key is a {}, expected a str", other.type_name()),
                ))
            }
        };
        let Some(&dtype) = dtypes.get(key.as_str()) else {
            return Err(legacy(
                "storage keys",
                keys_at,
                format!("key `{}` is not used by any tensor", esc(&key)),
            ));
        };
        let mut count = [0u8; 8];
        reader
            .seek(SeekFrom::Start(at))
            .and_then(|_| reader.read_exact(&mut count))
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::StorageSize {
                    path: path.to_owned(),
                    key: key.clone(),
                    what: "legacy element count at end of file",
                    expected: 8,
                    actual: len.saturating_sub(at),
                },
                _ => Error::Io {
                    path: path.to_owned(),
                    error,
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
        let span = Span {
            start,
            len: bytes,
            crc: None,
        };
        if spans.insert(key.clone(), span).is_some() {
            return Err(legacy(
                "storage keys",
                keys_at,
                format!("key `{}` listed twice", esc(&key)),
            ));
        }
    }
    let storages = Storages::new(reader, spans, "legacy element count vs declared numel");
    storages.check_all(path, &pickle)?;
    Ok(Loaded { pickle, storages })
}

/// What one read may still read from the file and hand back.
struct Budget {
    /// Bytes still allowed to be read from storages (see [`EXPANSION`]).
    read: u64,
    read_limit: u64,
    /// Bytes of tensors still allowed to be handed back, when they are all kept (`read`,
    /// `read_checkpoint`); `None` for streaming reads, whose caller keeps one at a time.
    keep: Option<u64>,
    keep_limit: u64,
}

impl Budget {
    fn new(file_len: u64, limits: &Limits, collect: bool) -> Budget {
        // Raising `memory-bytes` above its default also allows more expansion than 16×.
        let raised = if limits.max_memory_bytes > Limits::DEFAULT.max_memory_bytes {
            limits.max_memory_bytes
        } else {
            0
        };
        let read = file_len
            .saturating_mul(EXPANSION)
            .saturating_add(1 << 20)
            .max(raised);
        Budget {
            read,
            read_limit: read,
            keep: collect.then_some(limits.max_memory_bytes),
            keep_limit: limits.max_memory_bytes,
        }
    }

    fn spend_read(&mut self, path: &Path, name: &str, bytes: u64) -> Result<()> {
        self.read = self.read.checked_sub(bytes).ok_or_else(|| Error::Limit {
            path: path.to_owned(),
            what: format!(
                "bytes read for tensors (at `{}`; at most {EXPANSION} × the file length + 1 MiB unless `memory-bytes` is raised above its default)",
                esc(name)
            ),
            actual: self.read_limit - self.read + bytes,
            limit: self.read_limit,
            kind: LimitKind::MemoryBytes,
        })?;
        Ok(())
    }

    fn spend_keep(&mut self, path: &Path, name: &str, bytes: u64) -> Result<()> {
        // Even a streaming read holds each tensor whole.
        if bytes > self.keep_limit {
            return Err(Error::Limit {
                path: path.to_owned(),
                what: format!("bytes of tensor `{}`", esc(name)),
                actual: bytes,
                limit: self.keep_limit,
                kind: LimitKind::MemoryBytes,
            });
        }
        if let Some(keep) = self.keep {
            self.keep = Some(keep.checked_sub(bytes).ok_or_else(|| Error::Limit {
                path: path.to_owned(),
                what: format!("bytes of all tensors read (at `{}`)", esc(name)),
                actual: self.keep_limit - keep + bytes,
                limit: self.keep_limit,
                kind: LimitKind::MemoryBytes,
            })?);
        }
        Ok(())
    }
}

impl<R: Read + Seek> Storages<R> {
    fn new(reader: R, spans: HashMap<String, Span>, what: &'static str) -> Self {
        Storages {
            reader,
            spans,
            verified: HashSet::new(),
            what,
            chunk: Vec::new(),
        }
    }

    /// Checks every storage the pickle names, not only those of the tensors that will be
    /// read: torch loads them all, so one it cannot load makes the whole file unloadable.
    fn check_all(&self, path: &Path, pickle: &Unpickled) -> Result<()> {
        for obj in &pickle.objects {
            let Object::Storage(s) = obj else { continue };
            let span = self
                .spans
                .get(&s.key)
                .ok_or_else(|| Error::MissingStorage {
                    path: path.to_owned(),
                    key: s.key.clone(),
                })?;
            let declared = s.numel.saturating_mul(s.dtype.size() as u64);
            if span.len != declared {
                return Err(Error::StorageSize {
                    path: path.to_owned(),
                    key: s.key.clone(),
                    what: self.what,
                    expected: declared,
                    actual: span.len,
                });
            }
        }
        Ok(())
    }

    /// Whether reading `key` next streams its whole record to check the CRC-32 (the first
    /// read of a zip record) rather than just the bytes wanted.
    fn checks_crc(&self, key: &str, span: Span) -> bool {
        span.crc.is_some() && !self.verified.contains(key)
    }

    /// Fills `buf` with the storage's bytes from byte `from`; on the first read of a zip
    /// record, streams the whole record to check its CRC-32.
    fn fill(
        &mut self,
        path: &Path,
        key: &str,
        span: Span,
        from: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let io = |error| Error::Io {
            path: path.to_owned(),
            error,
        };
        match span.crc {
            Some(crc) if !self.verified.contains(key) => {
                if self.chunk.len() < CHUNK && !crate::alloc::resize(&mut self.chunk, CHUNK as u64)
                {
                    return Err(alloc_err(path, "a read buffer".into(), CHUNK as u64));
                }
                self.reader.seek(SeekFrom::Start(span.start)).map_err(io)?;
                let mut hasher = crc32fast::Hasher::new();
                let want = from..from + buf.len() as u64;
                let mut pos = 0u64;
                while pos < span.len {
                    let n = (span.len - pos).min(CHUNK as u64) as usize;
                    let chunk = &mut self.chunk[..n];
                    self.reader.read_exact(chunk).map_err(io)?;
                    hasher.update(chunk);
                    let (lo, hi) = (pos.max(want.start), (pos + n as u64).min(want.end));
                    if lo < hi {
                        buf[(lo - from) as usize..(hi - from) as usize]
                            .copy_from_slice(&chunk[(lo - pos) as usize..(hi - pos) as usize]);
                    }
                    pos += n as u64;
                }
                let actual = hasher.finalize();
                if actual != crc {
                    return Err(Error::Checksum {
                        path: path.to_owned(),
                        entry: format!("data/{key}"),
                        expected: crc,
                        actual,
                    });
                }
                self.verified.insert(key.to_owned());
            }
            _ => {
                self.reader
                    .seek(SeekFrom::Start(span.start + from))
                    .and_then(|_| self.reader.read_exact(buf))
                    .map_err(io)?;
            }
        }
        Ok(())
    }

    /// Builds the tensor `t` views, reading only the part of its storage the view spans.
    fn tensor(
        &mut self,
        path: &Path,
        name: &str,
        t: &TensorRef,
        budget: &mut Budget,
    ) -> Result<Tensor> {
        let key = &t.storage.key;
        let span = *self.spans.get(key).ok_or_else(|| Error::MissingStorage {
            path: path.to_owned(),
            key: key.clone(),
        })?;
        let esize = t.storage.dtype.size() as u64;
        let declared = t.storage.numel.saturating_mul(esize);
        if span.len != declared {
            return Err(Error::StorageSize {
                path: path.to_owned(),
                key: key.clone(),
                what: self.what,
                expected: declared,
                actual: span.len,
            });
        }
        // The interpreter checked the view against the storage and the tensor size limit.
        let bytes = byte_len(t.storage.dtype, &t.shape).unwrap_or(u64::MAX);
        budget.spend_keep(path, name, bytes)?;
        let (lo, hi) = match pickle::view_end(t.offset, &t.shape, &t.stride) {
            Some(end) => (t.offset, end),
            None => (0, 0),
        };
        let span_bytes = (hi - lo).saturating_mul(esize);
        if span_bytes > bytes.saturating_add(SPARSE_SLACK) {
            return Err(Error::SparseView {
                path: path.to_owned(),
                name: name.to_owned(),
                key: key.clone(),
                span: span_bytes,
                bytes,
            });
        }
        let mut buf = crate::alloc::zeroed(span_bytes)
            .ok_or_else(|| alloc_err(path, format!("tensor `{}`", esc(name)), span_bytes))?;
        if span_bytes > 0 {
            let read = if self.checks_crc(key, span) {
                span.len
            } else {
                span_bytes
            };
            budget.spend_read(path, name, read)?;
            self.fill(path, key, span, lo * esize, &mut buf)?;
        }
        let numel = if t.shape.contains(&0) {
            0
        } else {
            t.shape.iter().product::<usize>()
        };
        let data = if numel <= 1 || t.stride == strides(&t.shape) {
            buf
        } else {
            gather(&buf, esize as usize, &t.shape, &t.stride)
                .ok_or_else(|| alloc_err(path, format!("tensor `{}`", esc(name)), bytes))?
        };
        if t.storage.dtype == DType::Bool {
            if let Some(i) = data.iter().position(|&b| b > 1) {
                return Err(Error::BadBool {
                    path: path.to_owned(),
                    name: name.to_owned(),
                    index: i as u64,
                    value: data[i],
                });
            }
        }
        Tensor::new(name, t.storage.dtype, t.shape.clone(), data).map_err(|e| Error::Tensor {
            path: path.to_owned(),
            error: Box::new(e),
        })
    }
}

/// Builds each tensor in turn and hands it to `visit`.
fn materialise_each<R: Read + Seek>(
    path: &Path,
    tensors: &[(String, &TensorRef)],
    storages: &mut Storages<R>,
    budget: &mut Budget,
    visit: &mut dyn FnMut(String, Tensor) -> Result<()>,
) -> Result<()> {
    for (name, t) in tensors {
        let tensor = storages.tensor(path, name, t, budget)?;
        visit(name.clone(), tensor)?;
    }
    Ok(())
}

/// Copies a strided view out of `span` (its storage from the view's first element on) into
/// contiguous row-major bytes, or `None` if the output cannot be allocated. The view was
/// checked to lie inside the span, so indexing is in bounds.
fn gather(span: &[u8], esize: usize, shape: &[usize], stride: &[usize]) -> Option<Vec<u8>> {
    if shape.contains(&0) {
        return Some(Vec::new());
    }
    let numel: usize = shape.iter().product();
    let rank = shape.len();
    let mut out = crate::alloc::with_capacity((numel * esize) as u64)?;
    let mut idx = vec![0usize; rank];
    let mut pos = 0usize;
    // `pos` only leaves the view (and may wrap) after the last element, when it is not read.
    for _ in 0..numel {
        out.extend_from_slice(&span[pos * esize..(pos + 1) * esize]);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            pos = pos.wrapping_add(stride[ax]);
            if idx[ax] < shape[ax] {
                break;
            }
            pos = pos.wrapping_sub(stride[ax].wrapping_mul(shape[ax]));
            idx[ax] = 0;
        }
    }
    Some(out)
}

/// A dict of str → tensor found in the pickle.
struct TensorDict<'a> {
    /// The keys leading to it from the top level.
    keys: Vec<String>,
    /// `keys` joined by `.`.
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
            (Object::Str(k), Object::Tensor(t)) => Some((k.clone(), &**t)),
            _ => None,
        })
        .collect()
}

/// All tensor dicts: the root if it is one (even empty), else non-empty ones in nested dicts.
fn find_tensor_dicts(u: &Unpickled) -> Vec<TensorDict<'_>> {
    let mut found = Vec::new();
    if let Some(tensors) = as_tensor_dict(u, u.root) {
        found.push(TensorDict {
            keys: Vec::new(),
            path: String::new(),
            dict: u.root,
            tensors,
        });
        return found;
    }
    // Depth-first in file order, without recursion; each dict is looked at once (under the
    // first path that reaches it), which also stops cycles and shared-reference blow-ups.
    let mut seen = HashSet::from([u.root]);
    let mut todo = vec![(u.root, Vec::<String>::new(), 0usize)];
    while let Some((id, keys, depth)) = todo.pop() {
        let Object::Dict { items, .. } = u.get(id) else {
            continue;
        };
        let mut children = Vec::new();
        for &(k, v) in items {
            let Object::Str(key) = u.get(k) else { continue };
            if !matches!(u.get(v), Object::Dict { .. }) || !seen.insert(v) {
                continue;
            }
            let mut child = keys.clone();
            child.push(key.clone());
            match as_tensor_dict(u, v) {
                Some(tensors) if !tensors.is_empty() => found.push(TensorDict {
                    path: child.join("."),
                    keys: child,
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
        let io = |error| Error::Io {
            path: path.to_owned(),
            error,
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
        self.zip.write_all(data).map_err(|error| Error::Io {
            path: self.path.clone(),
            error,
        })?;
        self.writeback.wrote(data.len() as u64);
        Ok(())
    }

    /// Writes the pickle and the trailer entries, fsyncs and renames into place.
    pub fn finish(self) -> Result<()> {
        let sealed = self.seal()?;
        let path = sealed.path().to_owned();
        sealed.publish().map_err(|error| Error::Io { path, error })
    }

    /// Writes the pickle and the trailer entries and fsyncs, but does not rename yet: see
    /// [`Sealed`].
    pub fn seal(mut self) -> Result<Sealed> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| Error::Io {
                path: path.clone(),
                error,
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
            error: e.into_error(),
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
            (0..n)
                .map(|i| {
                    if dtype == DType::Bool {
                        (i % 2) as u8
                    } else {
                        (i * 7 + 3) as u8
                    }
                })
                .collect(),
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
        assert_eq!(
            gather(&storage, 1, &[3, 2], &[1, 3]).unwrap(),
            vec![0, 3, 1, 4, 2, 5]
        );
        // a size-1 dimension may carry any stride (torch does not normalise it); the span
        // starts at the view's first element
        assert_eq!(
            gather(&storage[2..], 1, &[1, 3], &[usize::MAX / 2, 1]).unwrap(),
            vec![2, 3, 4]
        );
    }
}
