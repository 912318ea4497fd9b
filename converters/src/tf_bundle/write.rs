//! Writing tensor bundles (for tests, fuzz seeds and benchmarks; and for anyone who needs a
//! TensorFlow-readable checkpoint).
//!
//! Streaming: each added tensor's bytes go straight to the current data shard; only the index
//! entries (names and metadata) are kept in memory. The shard count is only known at the end, so
//! shards are written as temporary files next to the prefix and renamed to their
//! `.data-NNNNN-of-MMMMM` names by [`BundleWriter::finish`], which then writes the `.index`
//! the same way (temp file, fsync, rename). The index layout matches TensorFlow's: a header
//! under the empty key, then entries in bytewise name order, little-endian, version 1.
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::proto::{EntryProto, HeaderProto};
use super::table::TableBuilder;
use super::{index_path, mask_crc, shard_path, tf_dtype_number, BundleError};
use crate::{Result, Tensor};

/// A temp file in `dir` with ordinary permissions (rw-r--r-- before the umask), not the 0600
/// that temp files get by default: the result is a checkpoint, not a secret.
fn new_temp(dir: &Path) -> Result<NamedTempFile, BundleError> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".zoo-bundle-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| BundleError::io(dir, e))
}

/// TensorFlow's index block size (256 KiB).
const DEFAULT_BLOCK_SIZE: usize = 256 * 1024;

/// Writes a V2 tensor bundle (`<prefix>.index` + `<prefix>.data-NNNNN-of-MMMMM`), one tensor at
/// a time.
pub struct BundleWriter {
    prefix: PathBuf,
    dir: PathBuf,
    max_shard_bytes: u64,
    block_size: usize,
    done: Vec<NamedTempFile>,
    current: Option<BufWriter<NamedTempFile>>,
    current_len: u64,
    entries: BTreeMap<String, EntryProto>,
}

impl std::fmt::Debug for BundleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("prefix", &self.prefix)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl BundleWriter {
    /// Starts a bundle at `prefix` (e.g. `dir/model.ckpt`; `dir` must exist). By default all
    /// tensors go into one shard.
    pub fn create(prefix: impl AsRef<Path>) -> Result<Self> {
        let prefix = prefix.as_ref().to_path_buf();
        let dir = match prefix.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(BundleWriter {
            prefix,
            dir,
            max_shard_bytes: u64::MAX,
            block_size: DEFAULT_BLOCK_SIZE,
            done: Vec::new(),
            current: None,
            current_len: 0,
            entries: BTreeMap::new(),
        })
    }

    /// Starts a new shard whenever the current one holds data and the next tensor would take it
    /// past `bytes`.
    pub fn with_max_shard_bytes(mut self, bytes: u64) -> Self {
        self.max_shard_bytes = bytes;
        self
    }

    /// Target size of an index data block (default 256 KiB, as TensorFlow). Small values make
    /// multi-block indexes.
    pub fn with_index_block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }

    fn io(&self, e: std::io::Error) -> BundleError {
        BundleError::io(&self.prefix, e)
    }

    fn roll_shard(&mut self) -> Result<(), BundleError> {
        if let Some(w) = self.current.take() {
            let f = w.into_inner().map_err(|e| self.io(e.into_error()))?;
            f.as_file().sync_all().map_err(|e| self.io(e))?;
            self.done.push(f);
        }
        let f = new_temp(&self.dir)?;
        self.current = Some(BufWriter::with_capacity(1 << 20, f));
        self.current_len = 0;
        Ok(())
    }

    /// Appends a tensor. Names must be unique and non-empty (the empty key is the header).
    pub fn add(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        let prefix = self.prefix.clone();
        let fail = |what: &str| BundleError::Write {
            prefix: prefix.clone(),
            tensor: name.to_owned(),
            what: what.to_owned(),
        };
        if name.is_empty() {
            return Err(fail("the empty name is reserved for the header").into());
        }
        if self.entries.contains_key(name) {
            return Err(fail("duplicate name").into());
        }
        let data = tensor.data();
        let size = data.len() as u64;
        let needs_new = match self.current {
            None => true,
            Some(_) => {
                self.current_len > 0 && self.current_len.saturating_add(size) > self.max_shard_bytes
            }
        };
        if needs_new {
            self.roll_shard()?;
        }
        let shard_id = self.done.len() as i32;
        let offset = self.current_len;
        let Some(w) = self.current.as_mut() else {
            return Err(fail("no open shard").into());
        };
        w.write_all(data)
            .map_err(|e| BundleError::io(&self.prefix, e))?;
        self.current_len += size;
        let proto = EntryProto {
            dtype: tf_dtype_number(tensor.dtype()),
            dims: tensor.shape().iter().map(|&d| d as i64).collect(),
            unknown_rank: false,
            shard_id,
            offset: offset as i64,
            size: size as i64,
            crc32c: mask_crc(crc32c::crc32c(data)),
            slices: 0,
        };
        self.entries.insert(name.to_owned(), proto);
        Ok(())
    }

    /// Writes the shards and the index under their final names and returns the paths written
    /// (shards in order, then the index).
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        if self.current.is_none() {
            self.roll_shard()?;
        }
        self.roll_shard()?; // moves the last shard to `done` (and opens an unused temp file)
        drop(self.current.take());
        let n = self.done.len() as u32;
        let mut written = Vec::with_capacity(n as usize + 1);
        for (i, f) in std::mem::take(&mut self.done).into_iter().enumerate() {
            let path = shard_path(&self.prefix, i as u32, n);
            f.persist(&path)
                .map_err(|e| BundleError::io(&path, e.error))?;
            written.push(path);
        }
        let mut table = TableBuilder::new(self.block_size);
        let header = HeaderProto {
            num_shards: n as i32,
            endianness: 0,
            producer: 1,
            min_consumer: 0,
            bad_consumers: Vec::new(),
        };
        table.add(b"", &header.encode());
        for (name, proto) in &self.entries {
            table.add(name.as_bytes(), &proto.encode());
        }
        let bytes = table.finish();
        let path = index_path(&self.prefix);
        let mut f = new_temp(&self.dir)?;
        f.write_all(&bytes).map_err(|e| BundleError::io(&path, e))?;
        f.as_file()
            .sync_all()
            .map_err(|e| BundleError::io(&path, e))?;
        f.persist(&path)
            .map_err(|e| BundleError::io(&path, e.error))?;
        written.push(path);
        Ok(written)
    }
}
