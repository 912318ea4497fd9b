//! Streaming TF → timm conversion: a few tensors in memory at a time, never the model.
//!
//! [`convert_streaming`] walks a checked [`Plan`] in timm order. For each item it reads the source
//! tensor (its crc32c is verified as it is read), permutes it into torch layout, feeds the
//! [`Fingerprinter`] and every requested writer, and recycles its buffer. Reading+permuting,
//! fingerprinting and writing run on three threads joined by short channels, so at most a dozen
//! tensors are alive at once: peak memory is a small multiple of the largest tensor, never the
//! model (an L2, 1.9 GB, converts in a few hundred MB). The reader asks the OS to prefetch the
//! next tensors ([`Bundle::prefetch`]), so a checkpoint that is not in the page cache is read
//! from disk while the CPU works, not in turns with it.
//!
//! # The `.safetensors` output
//! Byte layout (the safetensors format): an 8-byte little-endian header length `n`, `n` bytes of
//! JSON header padded with spaces to a multiple of 8, then the tensors' bytes back to back in the
//! order their `data_offsets` give. The header is `{"__metadata__":{…sorted keys…},"<name>":
//! {"dtype":…,"shape":[…],"data_offsets":[begin,end]},…}` with tensors in data order: descending
//! dtype, then name — the order the `safetensors` crate uses, so the file is byte-identical to
//! [`zoo_converters::safetensors::write`] of the same state dict.
//!
//! The header is built here rather than by the crate's `serialize_to_file` with lazy views,
//! because that function (a) serialises `__metadata__` from a `HashMap`, so with more than one
//! key the bytes differ from run to run; (b) pulls the tensors in its own (name) order, while
//! the `.pth` is written in timm order, so feeding both from one pass over the source would need
//! a second read of the whole checkpoint; and (c) writes in place, not atomically. Instead every
//! tensor's offset is known from the plan before any data is read: the header is written first
//! and each tensor is written at its offset with a positioned write as it streams by. The
//! crate's own [`Metadata`] still validates the offsets.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use safetensors::tensor::{Metadata, TensorInfo};

use zoo_converters::pth::PthWriter;
use zoo_converters::tf_bundle::Bundle;
use zoo_converters::writeback::{EarlyWriteback, Sealed};
use zoo_converters::{DType, Tensor};

use crate::fingerprint::{Fingerprint, Fingerprinter, FINGERPRINT_KEY};
use crate::mapping::Plan;

/// Hex digits of a fingerprint (a sha256).
const FINGERPRINT_HEX_LEN: usize = 64;

/// Why a streaming conversion failed. Nothing is left at the output paths when it does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The source tensor could not be read (missing, truncated, crc mismatch, …).
    #[error("reading source tensor `{name}`: {error}")]
    Read {
        /// Source tensor name.
        name: String,
        /// The reader's error (boxed: it is large and errors are rare).
        error: Box<zoo_converters::Error>,
    },
    /// The source tensor is not what the plan was made for.
    #[error(
        "source tensor `{name}` is {actual_dtype} {actual:?}, the plan expects F32 {expected:?}"
    )]
    Shape {
        /// Source tensor name.
        name: String,
        /// Shape the plan expects.
        expected: Vec<usize>,
        /// Shape read.
        actual: Vec<usize>,
        /// Dtype read.
        actual_dtype: &'static str,
    },
    /// Writing the `.pth` failed.
    #[error(transparent)]
    Pth(Box<zoo_converters::pth::Error>),
    /// Writing the `.safetensors` failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The output file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A conversion stage stopped without an error of its own (another stage's failed).
    #[error("conversion aborted")]
    Aborted,
    /// The safetensors header could not be built.
    #[error("{}: safetensors header: {reason}", path.display())]
    Header {
        /// The output file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<zoo_converters::pth::Error> for StreamError {
    fn from(e: zoo_converters::pth::Error) -> Self {
        StreamError::Pth(Box::new(e))
    }
}

/// Where a streaming conversion writes, and what it reports while it runs.
#[derive(Default)]
pub struct StreamOutputs<'a> {
    /// The `.pth` to write, if any.
    pub pth: Option<&'a Path>,
    /// The `.safetensors` to write, if any.
    pub safetensors: Option<&'a Path>,
    /// The safetensors `__metadata__`. It must be known up front because the header (whose
    /// length fixes every data offset) is written before the data. A
    /// [`FINGERPRINT_KEY`] entry is filled in with the
    /// fingerprint computed while streaming (whatever value it had).
    pub metadata: BTreeMap<String, String>,
    /// Called on the writing thread with the source bytes of each tensor as it is written.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// Converts `plan` from `bundle` into the requested outputs (either may be `None`), streaming
/// a few tensors at a time, and returns the fingerprint of the converted weights.
///
/// Outputs are written to temporary files next to their paths, synced, and renamed into place
/// only when every one of them is complete.
pub fn convert_streaming(
    bundle: &Bundle,
    plan: &Plan,
    outputs: &StreamOutputs<'_>,
) -> Result<Fingerprint, StreamError> {
    let pth = outputs.pth.map(PthWriter::create).transpose()?;
    let st = match outputs.safetensors {
        None => None,
        Some(path) => {
            let declared: Vec<(&str, DType, &[usize])> = plan
                .items
                .iter()
                .map(|i| {
                    (
                        i.map.target.name.as_str(),
                        DType::F32,
                        i.map.target.shape.as_slice(),
                    )
                })
                .collect();
            Some(SafetensorsStream::create(
                path,
                &declared,
                &outputs.metadata,
            )?)
        }
    };
    // Three stages on three threads — read+permute, fingerprint, write — joined by channels of
    // CHANNEL_DEPTH slots, so at most a dozen tensors are alive at once. The files are finished
    // here, once the fingerprint (which the safetensors header records) is known.
    let pool = BufferPool::default();
    let (read, written, fingerprint) = std::thread::scope(|scope| {
        let (hash_tx, hash_rx) = mpsc::sync_channel::<(&str, Arc<Pooled<'_>>)>(CHANNEL_DEPTH);
        let (write_tx, write_rx) = mpsc::sync_channel::<Stage<'_>>(CHANNEL_DEPTH);
        let hasher = scope.spawn(move || {
            let mut fingerprint = Fingerprinter::default();
            for (name, tensor) in hash_rx {
                fingerprint.add(name, &tensor);
            }
            fingerprint
        });
        let writer = scope.spawn(move || write_stage(write_rx, pth, st, outputs.progress));
        let read = read_stage(bundle, plan, &pool, &hash_tx, &write_tx);
        drop(hash_tx);
        if read.is_ok() {
            // If the writer already stopped, its error is reported below.
            let _ = write_tx.send(Stage::Done);
        }
        drop(write_tx);
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let fingerprint = hasher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, written, fingerprint)
    });
    match (read, written) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(false), Ok(_)) | (Ok(true), Ok(None)) => Err(StreamError::Aborted),
        (Ok(true), Ok(Some((pth, st)))) => {
            let fingerprint = fingerprint.finish();
            // Both files are complete and synced before either is renamed into place.
            let sealed: Vec<Sealed> = [
                st.map(|w| w.seal(&fingerprint.fingerprint)).transpose()?,
                pth.map(PthWriter::seal).transpose()?,
            ]
            .into_iter()
            .flatten()
            .collect();
            publish_all(sealed)?;
            Ok(fingerprint)
        }
    }
}

/// Tensors queued between two stages. One slot makes every stage wait for the slowest on each
/// tensor (tensor sizes vary 10,000-fold), so only ~1.3 of 2 cores were busy; with four the
/// stages run apart and a 1.9 GB L2 converts 15–25 % faster when the disk keeps up, for a peak
/// RSS of ~160 MB instead of ~115 MB.
const CHANNEL_DEPTH: usize = 4;

/// Renames every sealed file into place; if one fails, the ones already placed are removed
/// again, so that nothing is left at the output paths.
fn publish_all(sealed: Vec<Sealed>) -> Result<(), StreamError> {
    let mut placed: Vec<PathBuf> = vec![];
    for file in sealed {
        let path = file.path().to_owned();
        if let Err(source) = file.publish() {
            for p in &placed {
                let _ = std::fs::remove_file(p);
            }
            return Err(StreamError::Io {
                path,
                error: source,
            });
        }
        placed.push(path);
    }
    Ok(())
}

/// Allocations of tensors that every stage is done with, for the next reads and permutes: a
/// recycled buffer is already paged in, a fresh one page-faults on every 4 KiB.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// More than the tensors alive at once (read, permuted, up to [`CHANNEL_DEPTH`] queued per
    /// channel, one in each stage).
    const KEEP: usize = 2 * CHANNEL_DEPTH + 6;

    /// A free buffer for a tensor of `len` bytes. Safe Rust initialises a `Vec` up to its length,
    /// so a recycled buffer is zero-filled from its last tensor's length up to `len`. First
    /// choice: a buffer whose last tensor was `len` to twice `len` long, the shortest (no zero
    /// fill; the layers of a stage repeat, so this is common); then the smallest that holds `len`
    /// without growing; else the largest (a grown buffer page-faults its new part).
    fn take(&self, len: usize) -> Vec<u8> {
        let Ok(mut free) = self.0.lock() else {
            return Vec::new();
        };
        let initialised = free
            .iter()
            .enumerate()
            .filter(|(_, b)| (len..=len.saturating_mul(2)).contains(&b.len()))
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let fits = || {
            free.iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
        };
        let largest = || {
            free.iter()
                .enumerate()
                .max_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
        };
        let pick = initialised.or_else(fits).or_else(largest);
        pick.map(|i| free.swap_remove(i)).unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut free) = self.0.lock() {
            if free.len() < Self::KEEP {
                free.push(buf);
            }
        }
    }
}

/// A tensor whose allocation returns to the pool when the last stage drops it.
struct Pooled<'p> {
    tensor: Option<Tensor>,
    pool: &'p BufferPool,
}

impl Deref for Pooled<'_> {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        // Some until drop
        self.tensor
            .as_ref()
            .expect("a pooled tensor is taken only by drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.tensor.take() {
            self.pool.give(t.into_data());
        }
    }
}

/// A message to the writing thread.
enum Stage<'a> {
    /// The next tensor, in plan order.
    Tensor(&'a str, Arc<Pooled<'a>>),
    /// Every tensor was sent: finish the files.
    Done,
}

/// How far ahead of the tensor being converted the source is prefetched, in bytes.
const PREFETCH_BYTES: u64 = 64 << 20;

/// Reads, checks and permutes each planned tensor and hands it on. `Ok(false)` when a later
/// stage hung up early (the writer failed; its error is the one to report).
fn read_stage<'a>(
    bundle: &Bundle,
    plan: &'a Plan,
    pool: &'a BufferPool,
    hash_tx: &mpsc::SyncSender<(&'a str, Arc<Pooled<'a>>)>,
    write_tx: &mpsc::SyncSender<Stage<'a>>,
) -> Result<bool, StreamError> {
    let entries: Vec<_> = plan.items.iter().map(|i| bundle.entry(&i.source)).collect();
    let size = |i: usize| entries[i].map_or(0, |e| e.size);
    // Entries `[i, ahead)` (`window` bytes) have been prefetched: the next tensor and up to
    // PREFETCH_BYTES are read from disk while this one is checked and permuted.
    let (mut ahead, mut window) = (0usize, 0u64);
    for (i, item) in plan.items.iter().enumerate() {
        while ahead < entries.len() && (ahead <= i + 1 || window < PREFETCH_BYTES) {
            if let Some(e) = entries[ahead] {
                bundle.prefetch(e);
            }
            window += size(ahead);
            ahead += 1;
        }
        window -= size(i);
        let read = match entries[i] {
            Some(entry) => {
                bundle.read_entry_into(entry, pool.take(usize::try_from(entry.size).unwrap_or(0)))
            }
            // the reader's own "no such tensor" error
            None => bundle.read(&item.source),
        };
        let tensor = read.map_err(|source| StreamError::Read {
            name: item.source.clone(),
            error: Box::new(source),
        })?;
        let expected = item.map.tf_shape();
        if tensor.shape() != expected || tensor.dtype() != DType::F32 {
            return Err(StreamError::Shape {
                name: item.source.clone(),
                expected,
                actual: tensor.shape().to_vec(),
                actual_dtype: tensor.dtype().name(),
            });
        }
        let tensor = match item.map.layout.permutation() {
            None => tensor,
            // The rank equals the permutation's: the shape was checked against the layout above.
            Some(_) => {
                let permuted = item
                    .map
                    .to_timm(&tensor, pool.take(tensor.data().len()))
                    .ok_or_else(|| StreamError::Shape {
                        name: item.source.clone(),
                        expected: item.map.tf_shape(),
                        actual: tensor.shape().to_vec(),
                        actual_dtype: tensor.dtype().name(),
                    })?;
                pool.give(tensor.into_data());
                permuted
            }
        };
        let name = item.map.target.name.as_str();
        let tensor = Arc::new(Pooled {
            tensor: Some(tensor),
            pool,
        });
        if hash_tx.send((name, Arc::clone(&tensor))).is_err()
            || write_tx.send(Stage::Tensor(name, tensor)).is_err()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The writers, with every tensor written but not yet finished.
type Written = (Option<PthWriter>, Option<SafetensorsStream>);

/// Writes tensors as they come and hands the writers back on [`Stage::Done`]. `Ok(None)` when
/// the reader hung up without it (dropping the writers removes their temporary files).
fn write_stage(
    rx: mpsc::Receiver<Stage<'_>>,
    mut pth: Option<PthWriter>,
    mut st: Option<SafetensorsStream>,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<Option<Written>, StreamError> {
    for message in rx {
        match message {
            Stage::Tensor(name, tensor) => {
                if let Some(w) = pth.as_mut() {
                    w.add(name, &tensor)?;
                }
                if let Some(w) = st.as_mut() {
                    w.add(name, &tensor)?;
                }
                if let Some(report) = progress {
                    report(tensor.data().len() as u64);
                }
            }
            Stage::Done => return Ok(Some((pth, st))),
        }
    }
    Ok(None)
}

/// A safetensors file whose header is fixed up front and whose tensors arrive in any order.
struct SafetensorsStream {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
    flusher: EarlyWriteback,
    /// File offset of the fingerprint's placeholder in the header, if the metadata has one.
    fingerprint_at: Option<u64>,
    /// Per name: where its bytes start in the file, dtype, shape, and whether it was written.
    slots: HashMap<String, Slot>,
}

struct Slot {
    start: u64,
    dtype: DType,
    shape: Vec<usize>,
    written: bool,
}

impl SafetensorsStream {
    fn create(
        path: &Path,
        declared: &[(&str, DType, &[usize])],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, StreamError> {
        let header_err = |reason: String| StreamError::Header {
            path: path.to_owned(),
            reason,
        };
        let io = |source| StreamError::Io {
            path: path.to_owned(),
            error: source,
        };
        let mut order: Vec<&(&str, DType, &[usize])> = declared.iter().collect();
        order.sort_by(|(ln, ld, _), (rn, rd, _)| {
            zoo_converters::safetensors::to_safetensors_dtype(*rd)
                .cmp(&zoo_converters::safetensors::to_safetensors_dtype(*ld))
                .then(ln.cmp(rn))
        });
        let json = |v: &dyn erased::Json| v.to_json().map_err(|e| header_err(e.to_string()));
        // The fingerprint is known only at the end; its hex has a fixed length, so a placeholder
        // of that length holds its place and is overwritten by `finish`.
        let mut metadata = metadata.clone();
        let placeholder = "0".repeat(FINGERPRINT_HEX_LEN);
        if let Some(v) = metadata.get_mut(FINGERPRINT_KEY) {
            v.clone_from(&placeholder);
        }
        let metadata = &metadata;
        let mut header = b"{".to_vec();
        let mut fingerprint_at = None;
        if !metadata.is_empty() {
            header.extend(b"\"__metadata__\":");
            let meta = json(metadata)?;
            if metadata.contains_key(FINGERPRINT_KEY) {
                let needle = [json(&FINGERPRINT_KEY)?, b":".to_vec(), json(&placeholder)?].concat();
                let at = meta
                    .windows(needle.len())
                    .position(|w| w == needle)
                    .ok_or_else(|| header_err("fingerprint placeholder not found".into()))?;
                // after the key, the colon and the value's opening quote
                let value = at + needle.len() - placeholder.len() - 1;
                fingerprint_at = Some((8 + header.len() + value) as u64);
            }
            header.extend(meta);
        }
        let mut infos = Vec::with_capacity(order.len());
        let mut placed = Vec::with_capacity(order.len());
        let mut offset = 0usize;
        for (name, dtype, shape) in order {
            let len = zoo_converters::tensor::byte_len(*dtype, shape)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| header_err(format!("`{name}` {shape:?} is too large")))?;
            let info = TensorInfo {
                dtype: zoo_converters::safetensors::to_safetensors_dtype(*dtype),
                shape: shape.to_vec(),
                data_offsets: (offset, offset + len),
            };
            placed.push((name.to_string(), offset, *dtype, shape.to_vec()));
            offset += len;
            if header.len() > 1 {
                header.push(b',');
            }
            header.extend(json(&name.to_string())?);
            header.push(b':');
            header.extend(json(&info)?);
            infos.push((name.to_string(), info));
        }
        header.push(b'}');
        header.resize(header.len().next_multiple_of(8), b' ');
        let meta_map = (!metadata.is_empty()).then(|| {
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        // The crate checks that the offsets are contiguous.
        Metadata::new(meta_map, infos).map_err(|e| header_err(e.to_string()))?;
        let data_start = 8 + header.len() as u64;
        let mut slots = HashMap::with_capacity(placed.len());
        for (name, rel, dtype, shape) in placed {
            let slot = Slot {
                start: data_start + rel as u64,
                dtype,
                shape,
                written: false,
            };
            if slots.insert(name.clone(), slot).is_some() {
                return Err(header_err(format!("tensor `{name}` declared twice")));
            }
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
        {
            let f: &File = temp.as_file();
            f.set_len(data_start + offset as u64).map_err(io)?;
            let mut head = (header.len() as u64).to_le_bytes().to_vec();
            head.extend(&header);
            f.write_all_at(&head, 0).map_err(io)?;
        }
        Ok(SafetensorsStream {
            path: path.to_owned(),
            flusher: EarlyWriteback::start(temp.as_file()).map_err(io)?,
            fingerprint_at,
            temp,
            slots,
        })
    }

    fn add(&mut self, name: &str, tensor: &Tensor) -> Result<(), StreamError> {
        let header_err = |reason: String| StreamError::Header {
            path: self.path.clone(),
            reason,
        };
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| header_err(format!("`{name}` was not declared")))?;
        if slot.written || slot.dtype != tensor.dtype() || slot.shape != tensor.shape() {
            return Err(header_err(format!(
                "`{name}` declared {} {:?} once, got {} {:?}{}",
                slot.dtype.name(),
                slot.shape,
                tensor.dtype().name(),
                tensor.shape(),
                if slot.written { " a second time" } else { "" }
            )));
        }
        slot.written = true;
        self.temp
            .as_file()
            .write_all_at(tensor.data(), slot.start)
            .map_err(|source| StreamError::Io {
                path: self.path.clone(),
                error: source,
            })?;
        self.flusher.wrote(tensor.data().len() as u64);
        Ok(())
    }

    /// Checks every tensor was written, fills in the fingerprint and syncs; see [`Sealed`].
    fn seal(self, fingerprint: &str) -> Result<Sealed, StreamError> {
        let io = |source| StreamError::Io {
            path: self.path.clone(),
            error: source,
        };
        let mut missing: Vec<&str> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.written)
            .map(|(n, _)| n.as_str())
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            return Err(StreamError::Header {
                path: self.path.clone(),
                reason: format!("tensors declared but never written: {}", missing.join(", ")),
            });
        }
        if let Some(at) = self.fingerprint_at {
            if fingerprint.len() != FINGERPRINT_HEX_LEN {
                return Err(StreamError::Header {
                    path: self.path.clone(),
                    reason: format!(
                        "fingerprint `{fingerprint}` is not {FINGERPRINT_HEX_LEN} hex digits"
                    ),
                });
            }
            self.temp
                .as_file()
                .write_all_at(fingerprint.as_bytes(), at)
                .map_err(io)?;
        }
        self.flusher.finish().map_err(io)?;
        let mut temp = self.temp;
        temp.flush().map_err(io)?;
        temp.as_file().sync_all().map_err(io)?;
        Ok(Sealed::new(temp, self.path))
    }
}

/// `serde_json::to_vec` behind a trait object, so one closure serves every header part.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::mapping::{inventory, plan_tf, WeightSet};
    use zoo_converters::tf_bundle::unpack_tarball;
    use zoo_converters::StateDict;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/efficientnet-tiny"
    );

    #[test]
    fn the_pool_hands_out_the_buffer_that_needs_no_zero_fill_then_the_tightest_then_the_largest() {
        let pool = BufferPool::default();
        let buffer = |len: usize, capacity: usize| {
            let mut b = Vec::with_capacity(capacity);
            b.resize(len, 7u8);
            b
        };
        for b in [
            buffer(100, 1000),
            buffer(10, 5000),
            buffer(300, 300),
            buffer(1000, 2000),
        ] {
            pool.give(b);
        }
        // 250..=500 long: the 300 one, no zero fill
        let b = pool.take(250);
        assert_eq!((b.len(), b.capacity()), (300, 300));
        // nothing 900..=1800 long but the 1000 one
        assert_eq!(pool.take(900).len(), 1000);
        // none long enough: the smallest that holds 800 without growing
        assert_eq!(pool.take(800).capacity(), 1000);
        // none holds it: the largest
        assert_eq!(pool.take(9000).capacity(), 5000);
        assert!(pool.take(1).is_empty(), "the pool is empty");
        for _ in 0..2 * BufferPool::KEEP {
            pool.give(vec![0; 8]);
        }
        assert_eq!(pool.0.lock().unwrap().len(), BufferPool::KEEP);
    }

    #[test]
    fn a_failed_rename_takes_back_the_files_already_published() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = |name: &str, to: PathBuf| {
            let mut temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
            temp.write_all(name.as_bytes()).unwrap();
            Sealed::new(temp, to)
        };
        let first = dir.path().join("first.safetensors");
        let nowhere = dir.path().join("no-such-dir/second.pth");
        let err = publish_all(vec![
            sealed("first", first.clone()),
            sealed("second", nowhere.clone()),
        ])
        .unwrap_err();
        assert!(
            matches!(&err, StreamError::Io { path, .. } if *path == nowhere),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");

        publish_all(vec![sealed("first", first.clone())]).unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), b"first");
    }

    fn tiny_plan(bundle: &Bundle, weights: WeightSet) -> Plan {
        let spec = "efficientnet:width=0.05,depth=0.5,classes=10"
            .parse::<ArchConfig>()
            .unwrap()
            .resolve()
            .unwrap();
        plan_tf(&spec, &inventory(bundle), weights).unwrap()
    }

    fn sorted(mut sd: StateDict) -> StateDict {
        sd.sort_by(|a, b| a.0.cmp(&b.0));
        sd
    }

    fn meta() -> BTreeMap<String, String> {
        [
            ("format".to_owned(), "pt".to_owned()),
            ("zoo.weights".to_owned(), "ema".to_owned()),
            ("zoo.source_sha256".to_owned(), "ab".repeat(32)),
            // filled in by the streamer
            (FINGERPRINT_KEY.to_owned(), "pending".to_owned()),
        ]
        .into()
    }

    #[test]
    fn tiny_fixture_streams_to_the_reference_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unpack_tarball(
            &Path::new(FIXTURE).join("efficientnet-tiny.tar.gz"),
            dir.path(),
        )
        .unwrap();
        let bundle = Bundle::open(&prefix).unwrap();
        let plan = tiny_plan(&bundle, WeightSet::Ema);
        let (want, _) = zoo_converters::safetensors::read(
            &Path::new(FIXTURE).join("tf_efficientnet_tiny.safetensors"),
        )
        .unwrap();

        let mut runs = vec![];
        for run in 0..2 {
            let pth = dir.path().join(format!("out{run}.pth"));
            let st = dir.path().join(format!("out{run}.safetensors"));
            let outputs = StreamOutputs {
                pth: Some(&pth),
                safetensors: Some(&st),
                metadata: meta(),
                progress: None,
            };
            let fp = convert_streaming(&bundle, &plan, &outputs).unwrap();
            let (got_st, got_meta) = zoo_converters::safetensors::read(&st).unwrap();
            let mut want_meta = meta();
            want_meta.insert(FINGERPRINT_KEY.into(), fp.fingerprint.clone());
            assert_eq!(got_meta, want_meta);
            assert_eq!(sorted(got_st), sorted(want.clone()));
            let got_pth = zoo_converters::pth::read(&pth).unwrap();
            // timm order in the .pth, the plan's order
            let names: Vec<&str> = got_pth.iter().map(|(n, _)| n.as_str()).collect();
            let plan_names: Vec<&str> = plan
                .items
                .iter()
                .map(|i| i.map.target.name.as_str())
                .collect();
            assert_eq!(names, plan_names);
            assert_eq!(sorted(got_pth), sorted(want.clone()));
            assert_eq!(
                fp,
                crate::fingerprint::fingerprint(want.iter().map(|(k, t)| (k, t)))
            );
            runs.push((std::fs::read(&pth).unwrap(), std::fs::read(&st).unwrap()));
        }
        assert!(runs[0] == runs[1], "two conversions gave different bytes");

        // Same bytes as the in-memory writers given the same state dict in timm order.
        let in_memory: StateDict = plan
            .items
            .iter()
            .map(|i| {
                let t = bundle.read(&i.source).unwrap();
                let t = i.map.to_timm(&t, vec![]).unwrap();
                (i.map.target.name.clone(), t)
            })
            .collect();
        let pth = dir.path().join("mem.pth");
        let st = dir.path().join("mem.safetensors");
        zoo_converters::pth::write(&pth, &in_memory).unwrap();
        let mut with_fingerprint = meta();
        with_fingerprint.insert(
            FINGERPRINT_KEY.into(),
            crate::fingerprint::fingerprint(want.iter().map(|(k, t)| (k, t))).fingerprint,
        );
        zoo_converters::safetensors::write(&st, &in_memory, &with_fingerprint).unwrap();
        assert!(
            std::fs::read(&pth).unwrap() == runs[0].0,
            ".pth differs from pth::write"
        );
        assert!(
            std::fs::read(&st).unwrap() == runs[0].1,
            ".safetensors differs from safetensors::write"
        );
    }

    #[test]
    fn corrupt_tensor_is_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unpack_tarball(
            &Path::new(FIXTURE).join("efficientnet-tiny.tar.gz"),
            dir.path(),
        )
        .unwrap();
        let victim = "efficientnet-b0/blocks_3/conv2d/kernel/ExponentialMovingAverage";
        let (shard, offset) = {
            let bundle = Bundle::open(&prefix).unwrap();
            let e = bundle.entry(victim).unwrap();
            assert_eq!(bundle.num_shards(), 1);
            (
                zoo_converters::tf_bundle::shard_path(&prefix, 0, 1),
                e.offset + 5,
            )
        };
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[offset as usize] ^= 0x40;
        std::fs::write(&shard, bytes).unwrap();
        let bundle = Bundle::open(&prefix).unwrap();
        let plan = tiny_plan(&bundle, WeightSet::Ema);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let pth = out.join("x.pth");
        let st = out.join("x.safetensors");
        let outputs = StreamOutputs {
            pth: Some(&pth),
            safetensors: Some(&st),
            metadata: meta(),
            progress: None,
        };
        let err = convert_streaming(&bundle, &plan, &outputs).unwrap_err();
        assert!(err.to_string().contains(victim), "{err}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "partial output left"
        );
    }
}
