//! TensorFlow V2 checkpoints ("tensor bundles"), read without TensorFlow.
//!
//! A bundle with prefix `P` is the file `P.index` plus `N` data shards
//! `P.data-00000-of-0000N` … (names: `%s.data-%05d-of-%05d`).
//!
//! - `P.index` is a LevelDB table (see [`table`](self) module docs for its byte layout) whose keys
//!   are tensor names in bytewise order. The empty key `""` holds a `BundleHeaderProto`
//!   (number of shards, endianness, format version); every other key holds a
//!   `BundleEntryProto` (dtype, shape, shard id, byte offset and size in that shard, and the
//!   masked crc32c of the tensor's bytes). See the `proto` module for the field numbers.
//! - A data shard is the tensors' raw bytes, row-major, in the header's byte order; each entry
//!   says where its bytes are. Nothing else is in a shard.
//! - The masked crc32c of bytes `b` is `rotr(crc32c(b), 15) + 0xa282ead8` (mod 2^32).
//!
//! What this reader accepts, and why:
//! - numeric dtypes float32/float16/bfloat16/float64/int8/uint8/int16/int32/int64/bool. Strings,
//!   complex, quantized, resource and variant tensors are a typed error naming the dtype number:
//!   model weights never use them, and strings have a different on-disk layout.
//! - little-endian bundles only. A big-endian header is a typed [`BundleError::Unsupported`]
//!   error (rather than byte-swapping): no released checkpoint uses it, and a wrong swap would
//!   give plausible-looking garbage.
//! - whole tensors only. Entries with `slices` (partitioned variables) are rejected.
//! - uncompressed index blocks only (TensorFlow never compresses them).
//!
//! [`Bundle::open`] reads and checks the whole index (bounded by [`Limits::max_metadata_bytes`])
//! and checks every entry against [`Limits`] and the real sizes of the shard files. Reading a
//! tensor is one positioned read of exactly its bytes into a buffer of its checked size,
//! followed by the crc32c check, so memory use is one tensor at a time and no shard is ever
//! loaded whole. `Bundle` is `Sync`: tensors may be read from several threads.
//!
//! Speed: the bytes are read in 256 KiB positioned reads, each checksummed while still in cache
//! (one pass over memory). A fresh `Vec` per tensor costs page faults for large tensors;
//! [`Bundle::read_entry_into`] reuses a previous tensor's allocation and reads at the speed of
//! plain `pread` (see `benches/tf_bundle_read.rs`). No `mmap`: the crate forbids `unsafe`.
mod proto;
mod table;
mod tarball;
mod write;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::limits::LimitKind;
use crate::text::esc;
use crate::{tensor::byte_len, DType, Limits, Result, Tensor};

pub use tarball::{
    extract_members, open_tarball, unpack_tarball, unpack_tarball_with_limits, Extracted,
};
pub use write::BundleWriter;

/// Everything that can go wrong reading or writing a tensor bundle. Each variant carries the
/// file and the place in it, and the expected vs actual value where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// An I/O error on a named file.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A structure extends past the end of its file.
    #[error("{}: {what} at offset {offset} needs {needed} bytes, only {available} available", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the structure starts.
        offset: u64,
        /// What was being read (a block, the footer, a tensor `name`).
        what: String,
        /// Bytes it needs from `offset`.
        needed: u64,
        /// Bytes the file has from `offset`.
        available: u64,
    },
    /// The `.index` does not end with the LevelDB table magic number.
    #[error("{}: not a tensor bundle index: magic at offset {offset} is {actual:#018x}, expected {expected:#018x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Offset of the magic number.
        offset: u64,
        /// The table magic.
        expected: u64,
        /// What the file has.
        actual: u64,
    },
    /// A block's trailer checksum does not match its contents.
    #[error("{}: {what} at offset {offset}: masked crc32c is {actual:#010x}, trailer says {expected:#010x}", path.display())]
    BlockChecksum {
        /// The file.
        path: PathBuf,
        /// Offset of the block.
        offset: u64,
        /// Which block.
        what: String,
        /// Checksum stored in the trailer.
        expected: u32,
        /// Checksum of the bytes.
        actual: u32,
    },
    /// The index table is structurally broken.
    #[error("{}: corrupt index at offset {offset}: {what}", path.display())]
    CorruptIndex {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// An entry's protobuf value is malformed or inconsistent.
    #[error("{}: entry `{}` (offset {offset}): {what}", path.display(), esc(entry))]
    BadEntry {
        /// The `.index` file.
        path: PathBuf,
        /// The entry's key (`""` for the header).
        entry: String,
        /// File offset of the entry.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The index has no header entry (key `""`).
    #[error("{}: no BundleHeaderProto (empty key) in the index", path.display())]
    MissingHeader {
        /// The `.index` file.
        path: PathBuf,
    },
    /// A tensor's dtype is not one zoo reads.
    #[error("{}: tensor `{}` has unsupported dtype {dtype} ({})", path.display(), esc(tensor), tf_dtype_name(*dtype))]
    UnsupportedDtype {
        /// The `.index` file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// TensorFlow `DataType` number.
        dtype: i32,
    },
    /// A valid but unsupported feature (compression, big-endian, slices, newer version).
    #[error("{}: {at}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Where (entry or offset).
        at: String,
        /// What.
        what: String,
    },
    /// A tensor's bytes do not match the checksum recorded in the index.
    #[error("{}: tensor `{}` (offset {offset}, {size} bytes): masked crc32c is {actual:#010x}, index says {expected:#010x}", path.display(), esc(tensor))]
    TensorChecksum {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Offset of its bytes in the shard.
        offset: u64,
        /// Its size.
        size: u64,
        /// Masked crc32c recorded in the index.
        expected: u32,
        /// Masked crc32c of the bytes read.
        actual: u32,
    },
    /// A bool tensor holds a byte other than 0 or 1.
    #[error("{}: bool tensor `{}` has byte {value} at element {index}", path.display(), esc(tensor))]
    BadBool {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Element index.
        index: u64,
        /// The byte.
        value: u8,
    },
    /// A size read from the file exceeds a [`Limits`] bound.
    #[error("{what}: {actual} exceeds the {kind} of {limit} ({})", kind.hint())]
    Limit {
        /// What was being sized (names the file and entry, escaped).
        what: String,
        /// The value found.
        actual: u64,
        /// The configured limit.
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
    /// [`Bundle::read`] of a name the index does not have.
    #[error("{}: no tensor named `{}`", path.display(), esc(name))]
    NoSuchTensor {
        /// The `.index` file.
        path: PathBuf,
        /// The requested name.
        name: String,
    },
    /// A tarball entry that extraction refuses.
    #[error("{}: entry `{}`: {reason}", archive.display(), esc(entry))]
    UnsafeTarEntry {
        /// The tarball.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// A tarball without exactly one `*.index` file.
    #[error("{}: expected exactly one checkpoint (*.index), found {found:?}", archive.display())]
    CheckpointNotFound {
        /// The tarball.
        archive: PathBuf,
        /// The `.index` files found.
        found: Vec<String>,
    },
    /// A tarball that cannot be read as a (gzip-compressed) tar archive.
    #[error("{}: {what} at decompressed offset {offset}: {reason}", archive.display())]
    Tar {
        /// The tarball.
        archive: PathBuf,
        /// What was being read (a member header, member data, the end of the archive).
        what: String,
        /// Offset in the decompressed tar stream.
        offset: u64,
        /// The reader's message (escaped; never raw header bytes).
        reason: String,
    },
    /// Writing an extracted member failed.
    #[error("{}: extracting `{}`: {error}", archive.display(), esc(entry))]
    Extract {
        /// The tarball.
        archive: PathBuf,
        /// The member.
        entry: String,
        /// The error.
        error: std::io::Error,
    },
    /// [`BundleWriter`] misuse: an invalid name or a duplicate.
    #[error("{}: cannot write tensor `{}`: {what}", prefix.display(), esc(tensor))]
    Write {
        /// The bundle prefix being written.
        prefix: PathBuf,
        /// The tensor.
        tensor: String,
        /// Why.
        what: String,
    },
}

impl BundleError {
    fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            error,
        }
    }
}

/// `rotr(crc32c(bytes), 15) + 0xa282ead8`: the checksum form LevelDB and TensorFlow store
/// (masking keeps a crc of data that itself contains crcs from being trivially related).
pub(crate) fn masked_crc32c(bytes: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c(bytes))
}

fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The TensorFlow `DataType` enum number of a dtype.
pub fn tf_dtype_number(dtype: DType) -> i32 {
    match dtype {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I32 => 3,
        DType::U8 => 4,
        DType::I16 => 5,
        DType::I8 => 6,
        DType::I64 => 9,
        DType::Bool => 10,
        DType::BF16 => 14,
        DType::F16 => 19,
    }
}

fn dtype_from_tf(n: i32) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| tf_dtype_number(d) == n)
}

/// TensorFlow's name for a `DataType` number (for error messages).
pub fn tf_dtype_name(n: i32) -> &'static str {
    match n {
        0 => "DT_INVALID",
        1 => "DT_FLOAT",
        2 => "DT_DOUBLE",
        3 => "DT_INT32",
        4 => "DT_UINT8",
        5 => "DT_INT16",
        6 => "DT_INT8",
        7 => "DT_STRING",
        8 => "DT_COMPLEX64",
        9 => "DT_INT64",
        10 => "DT_BOOL",
        11 => "DT_QINT8",
        12 => "DT_QUINT8",
        13 => "DT_QINT32",
        14 => "DT_BFLOAT16",
        15 => "DT_QINT16",
        16 => "DT_QUINT16",
        17 => "DT_UINT16",
        18 => "DT_COMPLEX128",
        19 => "DT_HALF",
        20 => "DT_RESOURCE",
        21 => "DT_VARIANT",
        22 => "DT_UINT32",
        23 => "DT_UINT64",
        101..=123 => "reference dtype",
        _ => "unknown",
    }
}

/// One tensor of a bundle, as its index entry describes it (checked against [`Limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tensor's name (the index key).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Which data shard holds the bytes.
    pub shard_id: u32,
    /// Byte offset in that shard.
    pub offset: u64,
    /// Byte size (equals `numel * dtype.size()`).
    pub size: u64,
    /// Masked crc32c of the bytes, as stored in the index.
    pub crc32c: u32,
}

impl Entry {
    /// Checks `bytes` (the tensor's bytes from shard file `path`) against the size and crc32c
    /// of this entry and turns them into a [`Tensor`].
    pub fn decode(&self, bytes: Vec<u8>, path: &Path) -> Result<Tensor> {
        let crc = crc32c::crc32c(&bytes);
        self.decode_with_crc(bytes, crc, path)
    }

    /// [`Entry::decode`] with the (unmasked) crc32c of `bytes` already computed.
    fn decode_with_crc(&self, bytes: Vec<u8>, crc: u32, path: &Path) -> Result<Tensor> {
        if bytes.len() as u64 != self.size {
            return Err(BundleError::Truncated {
                path: path.to_path_buf(),
                offset: self.offset,
                what: format!("tensor `{}`", esc(&self.name)),
                needed: self.size,
                available: bytes.len() as u64,
            }
            .into());
        }
        let actual = mask_crc(crc);
        if actual != self.crc32c {
            return Err(BundleError::TensorChecksum {
                path: path.to_path_buf(),
                tensor: self.name.clone(),
                offset: self.offset,
                size: self.size,
                expected: self.crc32c,
                actual,
            }
            .into());
        }
        if self.dtype == DType::Bool {
            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                return Err(BundleError::BadBool {
                    path: path.to_path_buf(),
                    tensor: self.name.clone(),
                    index: i as u64,
                    value: bytes[i],
                }
                .into());
            }
        }
        Tensor::new(&self.name, self.dtype, self.shape.clone(), bytes)
    }
}

/// A parsed and checked `.index`: the header's shard count and the entries in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Number of data shards the header declares.
    pub num_shards: u32,
    /// Tensor entries, sorted by name, header excluded.
    pub entries: Vec<Entry>,
}

/// The reader's format version (TensorFlow's `kTensorBundleVersion`).
const BUNDLE_VERSION: i32 = 1;

impl Index {
    /// Parses the bytes of a `.index` file. `path` is only used in errors. Checks the table
    /// structure and checksums, the header, and each entry's dtype, shape, shard id, size and
    /// rank against `limits`; does not look at the data shards.
    pub fn parse(bytes: &[u8], path: &Path, limits: &Limits) -> Result<Index> {
        Ok(Self::parse_inner(bytes, path, limits)?)
    }

    fn parse_inner(bytes: &[u8], path: &Path, limits: &Limits) -> Result<Index, BundleError> {
        if bytes.len() as u64 > limits.max_metadata_bytes {
            return Err(BundleError::Limit {
                what: format!("{}: index file size", path.display()),
                actual: bytes.len() as u64,
                limit: limits.max_metadata_bytes,
                kind: LimitKind::MetadataBytes,
            });
        }
        let mut num_shards: Option<u32> = None;
        let mut entries = Vec::new();
        table::read_table(bytes, path, limits, |key, value, at| {
            let bad = |entry: &str, what: String| BundleError::BadEntry {
                path: path.to_path_buf(),
                entry: entry.to_owned(),
                offset: at,
                what,
            };
            if key.is_empty() {
                num_shards = Some(parse_header(value, path, at, limits)?);
                return Ok(());
            }
            let Ok(name) = std::str::from_utf8(key) else {
                return Err(bad(
                    &String::from_utf8_lossy(key),
                    "tensor name is not UTF-8".into(),
                ));
            };
            let Some(num_shards) = num_shards else {
                return Err(BundleError::MissingHeader {
                    path: path.to_path_buf(),
                });
            };
            let e = proto::EntryProto::decode(value, limits.max_rank).map_err(|e| {
                bad(
                    name,
                    format!("byte {} of BundleEntryProto: {}", e.offset, e.what),
                )
            })?;
            entries.push(check_entry(name, e, num_shards, path, at, limits)?);
            Ok(())
        })?;
        let Some(num_shards) = num_shards else {
            return Err(BundleError::MissingHeader {
                path: path.to_path_buf(),
            });
        };
        Ok(Index {
            num_shards,
            entries,
        })
    }
}

fn parse_header(value: &[u8], path: &Path, at: u64, limits: &Limits) -> Result<u32, BundleError> {
    let bad = |what: String| BundleError::BadEntry {
        path: path.to_path_buf(),
        entry: String::new(),
        offset: at,
        what,
    };
    let unsupported = |what: String| BundleError::Unsupported {
        path: path.to_path_buf(),
        at: format!("header at offset {at}"),
        what,
    };
    let h = proto::HeaderProto::decode(value).map_err(|e| {
        bad(format!(
            "byte {} of BundleHeaderProto: {}",
            e.offset, e.what
        ))
    })?;
    if h.endianness != 0 {
        return Err(unsupported(format!(
            "endianness {} (only little-endian bundles are read)",
            h.endianness
        )));
    }
    if h.min_consumer > BUNDLE_VERSION || h.bad_consumers.contains(&BUNDLE_VERSION) {
        return Err(unsupported(format!(
            "bundle version producer {} min_consumer {} bad_consumers {:?}; this reader is version {BUNDLE_VERSION}",
            h.producer, h.min_consumer, h.bad_consumers
        )));
    }
    if h.num_shards < 1 {
        return Err(bad(format!(
            "num_shards is {}, expected at least 1",
            h.num_shards
        )));
    }
    let n = h.num_shards as u64;
    if n > limits.max_tensors.max(1) {
        return Err(BundleError::Limit {
            what: format!("{}: num_shards in the header", path.display()),
            actual: n,
            limit: limits.max_tensors.max(1),
            kind: LimitKind::Tensors,
        });
    }
    Ok(h.num_shards as u32)
}

fn check_entry(
    name: &str,
    e: proto::EntryProto,
    num_shards: u32,
    path: &Path,
    at: u64,
    limits: &Limits,
) -> Result<Entry, BundleError> {
    let bad = |what: String| BundleError::BadEntry {
        path: path.to_path_buf(),
        entry: name.to_owned(),
        offset: at,
        what,
    };
    let unsupported = |what: String| BundleError::Unsupported {
        path: path.to_path_buf(),
        at: format!("tensor `{}`", esc(name)),
        what,
    };
    let Some(dtype) = dtype_from_tf(e.dtype) else {
        return Err(BundleError::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            dtype: e.dtype,
        });
    };
    if e.slices > 0 {
        return Err(unsupported(format!(
            "{} slices (partitioned variable)",
            e.slices
        )));
    }
    if e.unknown_rank {
        return Err(bad("shape has unknown rank".into()));
    }
    let mut shape = Vec::with_capacity(e.dims.len());
    for &d in &e.dims {
        let d =
            usize::try_from(d).map_err(|_| bad(format!("dimension {d} in shape {:?}", e.dims)))?;
        shape.push(d);
    }
    let shard_id = u32::try_from(e.shard_id)
        .ok()
        .filter(|&s| s < num_shards)
        .ok_or_else(|| bad(format!("shard_id {} not in 0..{num_shards}", e.shard_id)))?;
    let offset =
        u64::try_from(e.offset).map_err(|_| bad(format!("negative offset {}", e.offset)))?;
    let size = u64::try_from(e.size).map_err(|_| bad(format!("negative size {}", e.size)))?;
    if size > limits.max_tensor_bytes {
        return Err(BundleError::Limit {
            what: format!("{}: size of tensor `{}`", path.display(), esc(name)),
            actual: size,
            limit: limits.max_tensor_bytes,
            kind: LimitKind::TensorBytes,
        });
    }
    let expected = byte_len(dtype, &shape)
        .ok_or_else(|| bad(format!("shape {shape:?} overflows the byte size")))?;
    if expected != size {
        return Err(bad(format!(
            "{} {shape:?} needs {expected} bytes, entry says size {size}",
            dtype.name()
        )));
    }
    if offset.checked_add(size).is_none() {
        return Err(bad(format!("offset {offset} + size {size} overflows")));
    }
    Ok(Entry {
        name: name.to_owned(),
        dtype,
        shape,
        shard_id,
        offset,
        size,
        crc32c: e.crc32c,
    })
}

/// The file name of data shard `shard` of `num_shards` for bundle `prefix`.
pub fn shard_path(prefix: &Path, shard: u32, num_shards: u32) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".data-{shard:05}-of-{num_shards:05}"));
    PathBuf::from(s)
}

/// The `.index` file name for bundle `prefix`.
pub fn index_path(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

#[derive(Debug)]
struct Shard {
    path: PathBuf,
    file: File,
    len: u64,
}

/// An open tensor bundle: its checked index, with the data shards open for positioned reads.
#[derive(Debug)]
pub struct Bundle {
    index_path: PathBuf,
    index: Index,
    shards: Vec<Shard>,
}

impl Bundle {
    /// Opens the bundle with prefix `prefix` (e.g. `dir/model.ckpt`) with default [`Limits`].
    pub fn open(prefix: impl AsRef<Path>) -> Result<Bundle> {
        Self::open_with_limits(prefix, Limits::current())
    }

    /// Opens the bundle, checking the index and every entry's extent against `limits` and the
    /// real shard sizes. Does not read tensor data.
    pub fn open_with_limits(prefix: impl AsRef<Path>, limits: Limits) -> Result<Bundle> {
        let prefix = prefix.as_ref();
        Self::open_as(prefix, prefix, limits)
    }

    /// [`Bundle::open_with_limits`] of the bundle at `prefix`, whose files are named in errors
    /// as if the prefix were `shown` (e.g. `release.tar.gz/ckpt/model.ckpt` for a bundle
    /// extracted from a tarball into a scratch directory that is gone by the time the error is
    /// read).
    pub fn open_as(prefix: &Path, shown: &Path, limits: Limits) -> Result<Bundle> {
        let index_path = index_path(shown);
        let bytes = read_bounded(
            &self::index_path(prefix),
            &index_path,
            limits.max_metadata_bytes,
        )?;
        let index = Index::parse(&bytes, &index_path, &limits)?;
        drop(bytes);
        let mut shards = Vec::with_capacity(index.num_shards as usize);
        for i in 0..index.num_shards {
            let path = shard_path(shown, i, index.num_shards);
            let file = File::open(shard_path(prefix, i, index.num_shards))
                .map_err(|e| BundleError::io(&path, e))?;
            let len = file
                .metadata()
                .map_err(|e| BundleError::io(&path, e))?
                .len();
            shards.push(Shard { path, file, len });
        }
        for e in &index.entries {
            let shard = &shards[e.shard_id as usize];
            let available = shard.len.saturating_sub(e.offset);
            if e.size > available {
                return Err(BundleError::Truncated {
                    path: shard.path.clone(),
                    offset: e.offset,
                    what: format!("tensor `{}`", esc(&e.name)),
                    needed: e.size,
                    available,
                }
                .into());
            }
        }
        Ok(Bundle {
            index_path,
            index,
            shards,
        })
    }

    /// All tensor entries, sorted by name (the index order), header excluded.
    pub fn entries(&self) -> &[Entry] {
        &self.index.entries
    }

    /// The number of data shards.
    pub fn num_shards(&self) -> u32 {
        self.index.num_shards
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.index
            .entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.index.entries[i])
    }

    /// Reads one tensor: exactly its bytes, verified against the index's crc32c.
    pub fn read(&self, name: &str) -> Result<Tensor> {
        let entry = self.entry(name).ok_or_else(|| BundleError::NoSuchTensor {
            path: self.index_path.clone(),
            name: name.to_owned(),
        })?;
        let buf = self.buffer(entry)?;
        self.fill_and_decode(entry, buf)
    }

    /// A zeroed buffer for `entry`'s bytes (its size was checked against [`Limits`] at open).
    fn buffer(&self, entry: &Entry) -> Result<Vec<u8>, BundleError> {
        crate::alloc::zeroed(entry.size).ok_or_else(|| self.alloc_err(entry))
    }

    fn alloc_err(&self, entry: &Entry) -> BundleError {
        BundleError::Alloc {
            path: self.index_path.clone(),
            what: format!("tensor `{}`", esc(&entry.name)),
            bytes: entry.size,
        }
    }

    /// Reads the tensor of one of this bundle's entries (an entry that is not exactly one of
    /// [`Bundle::entries`] is a [`BundleError::NoSuchTensor`] error).
    pub fn read_entry(&self, entry: &Entry) -> Result<Tensor> {
        let entry = self.own_entry(entry)?;
        // The size was checked against Limits and the shard length at open.
        let buf = self.buffer(entry)?;
        self.fill_and_decode(entry, buf)
    }

    /// Like [`Bundle::read_entry`], but reuses the allocation of `buf` (e.g. from the previous
    /// tensor's [`Tensor::into_data`]). When streaming many tensors this saves the page faults
    /// of a fresh allocation per tensor.
    pub fn read_entry_into(&self, entry: &Entry, mut buf: Vec<u8>) -> Result<Tensor> {
        let entry = self.own_entry(entry)?;
        // Every byte is overwritten by the read (or the buffer is dropped with the error), so
        // only growth needs initialising.
        buf.truncate(entry.size as usize);
        if !crate::alloc::resize(&mut buf, entry.size) {
            return Err(self.alloc_err(entry).into());
        }
        self.fill_and_decode(entry, buf)
    }

    /// Asks the OS to start reading `entry`'s bytes into the page cache, so that a later
    /// [`Bundle::read_entry_into`] of it finds them there: a streaming reader prefetches the next
    /// tensors while it works on this one, and the disk is never idle. Only a hint
    /// (`posix_fadvise(WILLNEED)` on Linux, nothing elsewhere). It does not wait for the data,
    /// but queueing the reads can block while the disk's queue is full. An entry that is not this
    /// bundle's is ignored.
    pub fn prefetch(&self, entry: &Entry) {
        #[cfg(target_os = "linux")]
        if let (Ok(own), Some(size)) =
            (self.own_entry(entry), std::num::NonZeroU64::new(entry.size))
        {
            if let Some(shard) = self.shards.get(own.shard_id as usize) {
                // a failed hint costs nothing but the prefetch
                let _ = rustix::fs::fadvise(
                    &shard.file,
                    own.offset,
                    Some(size),
                    rustix::fs::Advice::WillNeed,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = entry;
    }

    /// This bundle's (checked) entry equal to `entry`.
    fn own_entry(&self, entry: &Entry) -> Result<&Entry, BundleError> {
        match self.entry(&entry.name) {
            Some(own) if own == entry => Ok(own),
            _ => Err(BundleError::NoSuchTensor {
                path: self.index_path.clone(),
                name: entry.name.clone(),
            }),
        }
    }

    fn fill_and_decode(&self, entry: &Entry, mut buf: Vec<u8>) -> Result<Tensor> {
        let shard =
            self.shards
                .get(entry.shard_id as usize)
                .ok_or_else(|| BundleError::NoSuchTensor {
                    path: self.index_path.clone(),
                    name: entry.name.clone(),
                })?;
        // Read in chunks and checksum each chunk while it is still in cache: one pass over
        // memory instead of two.
        let mut crc = 0u32;
        let mut done = 0usize;
        while done < buf.len() {
            let end = buf.len().min(done + READ_CHUNK);
            let chunk = &mut buf[done..end];
            if let Err(e) = shard.file.read_exact_at(chunk, entry.offset + done as u64) {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    let len = shard.file.metadata().map(|m| m.len()).unwrap_or(0);
                    return Err(BundleError::Truncated {
                        path: shard.path.clone(),
                        offset: entry.offset,
                        what: format!("tensor `{}`", esc(&entry.name)),
                        needed: entry.size,
                        available: len.saturating_sub(entry.offset),
                    }
                    .into());
                }
                return Err(BundleError::io(&shard.path, e).into());
            }
            crc = crc32c::crc32c_append(crc, chunk);
            done = end;
        }
        entry.decode_with_crc(buf, crc, &shard.path)
    }
}

/// Bytes per positioned read: small enough to stay in L2 for the checksum that follows.
const READ_CHUNK: usize = 256 * 1024;

/// Reads a whole (metadata) file, refusing files larger than `limit`.
fn read_bounded(real: &Path, path: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
    use std::io::Read;
    let file = File::open(real).map_err(|e| BundleError::io(path, e))?;
    let len = file.metadata().map_err(|e| BundleError::io(path, e))?.len();
    if len > limit {
        return Err(BundleError::Limit {
            what: format!("{}: index file size", path.display()),
            actual: len,
            limit,
            kind: LimitKind::MetadataBytes,
        });
    }
    let mut bytes = crate::alloc::with_capacity(len).ok_or_else(|| BundleError::Alloc {
        path: path.to_path_buf(),
        what: "the index file".into(),
        bytes: len,
    })?;
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(BundleError::Limit {
            what: format!("{}: index file size", path.display()),
            actual: bytes.len() as u64,
            limit,
            kind: LimitKind::MetadataBytes,
        });
    }
    Ok(bytes)
}

/// What the `tf_index` fuzz target does with one input, kept here so the fuzz target and the
/// corpus-replay test run the same code. Input layout: `u16 LE n`, `n` bytes of `.index`, then the
/// data of every shard. Must never panic; decoded tensors must match their entries.
#[doc(hidden)]
pub fn fuzz_index(input: &[u8]) {
    let (index, data) = match input {
        [a, b, rest @ ..] => {
            let n = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
            rest.split_at(n)
        }
        _ => (input, &[][..]),
    };
    let limits = crate::Limits {
        max_tensor_bytes: 1 << 20,
        max_tensors: 1 << 12,
        max_metadata_bytes: 1 << 20,
        ..Limits::default()
    };
    let Ok(index) = Index::parse(index, Path::new("fuzz.index"), &limits) else {
        return;
    };
    for e in &index.entries {
        let (Ok(start), Ok(size)) = (usize::try_from(e.offset), usize::try_from(e.size)) else {
            continue;
        };
        let Some(bytes) = start.checked_add(size).and_then(|end| data.get(start..end)) else {
            continue;
        };
        if let Ok(t) = e.decode(bytes.to_vec(), Path::new("fuzz.data")) {
            assert_eq!(t.shape(), e.shape.as_slice());
            assert_eq!(t.data(), bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_documented_formula() {
        for crc in [0u32, 1, 0xdead_beef, u32::MAX] {
            #[allow(clippy::manual_rotate)] // the formula as TensorFlow documents it
            let formula = ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8);
            assert_eq!(mask_crc(crc), formula);
        }
        // crc32c("123456789") = 0xe3069283 (the standard check value)
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn dtype_numbers_round_trip() {
        for n in -1..130 {
            if let Some(d) = dtype_from_tf(n) {
                assert_eq!(tf_dtype_number(d), n);
            }
        }
        assert_eq!(dtype_from_tf(7), None, "DT_STRING must be rejected");
        assert_eq!(tf_dtype_name(7), "DT_STRING");
    }

    fn index_bytes(
        header: Option<proto::HeaderProto>,
        entries: &[(&str, proto::EntryProto)],
    ) -> Vec<u8> {
        let mut t = table::TableBuilder::new(1 << 16);
        if let Some(h) = header {
            t.add(b"", &h.encode());
        }
        for (name, e) in entries {
            t.add(name.as_bytes(), &e.encode());
        }
        t.finish()
    }

    fn header() -> proto::HeaderProto {
        proto::HeaderProto {
            num_shards: 1,
            producer: 1,
            ..Default::default()
        }
    }

    fn f32_entry() -> proto::EntryProto {
        proto::EntryProto {
            dtype: 1,
            dims: vec![2, 3],
            size: 24,
            ..Default::default()
        }
    }

    fn parse(bytes: &[u8]) -> Result<Index, BundleError> {
        Index::parse_inner(bytes, Path::new("x.index"), &Limits::default())
    }

    #[test]
    fn well_formed_index_parses() {
        let idx = parse(&index_bytes(Some(header()), &[("a", f32_entry())])).unwrap();
        assert_eq!(idx.num_shards, 1);
        assert_eq!(idx.entries[0].shape, vec![2, 3]);
        assert_eq!(idx.entries[0].dtype, DType::F32);
    }

    #[test]
    fn string_and_unknown_dtypes_are_typed_errors() {
        for (n, name) in [
            (7, "DT_STRING"),
            (8, "DT_COMPLEX64"),
            (20, "DT_RESOURCE"),
            (0, "DT_INVALID"),
            (999, "unknown"),
        ] {
            let e = proto::EntryProto {
                dtype: n,
                ..f32_entry()
            };
            let err = parse(&index_bytes(Some(header()), &[("s", e)])).unwrap_err();
            assert!(
                matches!(&err, BundleError::UnsupportedDtype { dtype, tensor, .. } if *dtype == n && tensor == "s"),
                "{err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn slices_big_endian_and_newer_versions_are_unsupported() {
        let sliced = proto::EntryProto {
            slices: 1,
            ..f32_entry()
        };
        // `encode` does not write slices; append one empty field 7 by hand.
        let mut t = table::TableBuilder::new(1 << 16);
        t.add(b"", &header().encode());
        let mut v = sliced.encode();
        v.extend_from_slice(&[(7 << 3) | 2, 0]);
        t.add(b"p", &v);
        let err = parse(&t.finish()).unwrap_err();
        assert!(
            matches!(err, BundleError::Unsupported { ref what, .. } if what.contains("slices")),
            "{err}"
        );

        let big = proto::HeaderProto {
            endianness: 1,
            ..header()
        };
        let err = parse(&index_bytes(Some(big), &[])).unwrap_err();
        assert!(
            matches!(err, BundleError::Unsupported { ref what, .. } if what.contains("endianness 1")),
            "{err}"
        );

        let newer = proto::HeaderProto {
            min_consumer: 2,
            ..header()
        };
        let err = parse(&index_bytes(Some(newer), &[])).unwrap_err();
        assert!(
            matches!(err, BundleError::Unsupported { ref what, .. } if what.contains("min_consumer 2")),
            "{err}"
        );
    }

    #[test]
    fn inconsistent_entries_are_rejected() {
        let cases: Vec<(proto::EntryProto, &str)> = vec![
            (
                proto::EntryProto {
                    size: 25,
                    ..f32_entry()
                },
                "needs 24 bytes, entry says size 25",
            ),
            (
                proto::EntryProto {
                    shard_id: 1,
                    ..f32_entry()
                },
                "shard_id 1 not in 0..1",
            ),
            (
                proto::EntryProto {
                    shard_id: -1,
                    ..f32_entry()
                },
                "shard_id -1",
            ),
            (
                proto::EntryProto {
                    offset: -5,
                    ..f32_entry()
                },
                "negative offset",
            ),
            (
                proto::EntryProto {
                    dims: vec![-1, 3],
                    ..f32_entry()
                },
                "dimension -1",
            ),
            (
                proto::EntryProto {
                    unknown_rank: true,
                    ..f32_entry()
                },
                "unknown rank",
            ),
            (
                proto::EntryProto {
                    dims: vec![i64::MAX, i64::MAX],
                    size: 0,
                    ..f32_entry()
                },
                "overflows",
            ),
        ];
        for (e, want) in cases {
            let mut t = table::TableBuilder::new(1 << 16);
            t.add(b"", &header().encode());
            let mut v = e.encode();
            if e.unknown_rank {
                // `encode` does not write unknown_rank: add `shape { unknown_rank: true }`.
                v.extend_from_slice(&[(2 << 3) | 2, 2, 3 << 3, 1]);
            }
            t.add(b"t", &v);
            let err = parse(&t.finish()).unwrap_err();
            assert!(
                matches!(err, BundleError::BadEntry { ref entry, .. } if entry == "t"),
                "{err}"
            );
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }

    /// Issue 14 (Q2): a dtype varint that does not fit an int32 is reported whole, not as the
    /// low 32 bits a protobuf parser would keep (2^40 would read as 0, DT_INVALID).
    #[test]
    fn dtype_beyond_int32_is_reported_whole() {
        for dtype in [1u64 << 40, (1 << 32) + 1, i32::MAX as u64 + 1] {
            let mut value = vec![1 << 3];
            proto::write_varint(&mut value, dtype);
            let mut t = table::TableBuilder::new(1 << 16);
            t.add(b"", &header().encode());
            t.add(b"t", &value);
            let err = parse(&t.finish()).unwrap_err();
            assert!(
                matches!(&err, BundleError::BadEntry { entry, .. } if entry == "t"),
                "{err}"
            );
            assert!(err.to_string().contains(&dtype.to_string()), "{err}");
        }
        // negative int32 values are sign-extended to ten bytes and still read
        let mut value = vec![1 << 3];
        proto::write_varint(&mut value, -5i64 as u64);
        let mut t = table::TableBuilder::new(1 << 16);
        t.add(b"", &header().encode());
        t.add(b"t", &value);
        let err = parse(&t.finish()).unwrap_err();
        assert!(
            matches!(err, BundleError::UnsupportedDtype { dtype: -5, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_header_is_an_error() {
        let err = parse(&index_bytes(None, &[("a", f32_entry())])).unwrap_err();
        assert!(matches!(err, BundleError::MissingHeader { .. }), "{err}");
        let err = parse(&index_bytes(None, &[])).unwrap_err();
        assert!(matches!(err, BundleError::MissingHeader { .. }), "{err}");
        let zero = proto::HeaderProto {
            num_shards: 0,
            ..header()
        };
        let err = parse(&index_bytes(Some(zero), &[])).unwrap_err();
        assert!(err.to_string().contains("num_shards is 0"), "{err}");
    }

    #[test]
    fn shard_names_follow_tensorflow() {
        assert_eq!(
            shard_path(Path::new("d/model.ckpt"), 3, 12),
            PathBuf::from("d/model.ckpt.data-00003-of-00012")
        );
        assert_eq!(
            index_path(Path::new("d/model.ckpt")),
            PathBuf::from("d/model.ckpt.index")
        );
    }
}
