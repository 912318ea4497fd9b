//! The LevelDB table ("SSTable") format that a tensor bundle's `.index` file uses.
//!
//! Byte layout (all integers little-endian; `varint` = protobuf base-128 varint):
//! ```text
//! [data block 0][trailer] … [data block N-1][trailer]
//! [metaindex block][trailer]            (empty in TensorFlow's files)
//! [index block][trailer]                (one entry per data block: key >= last key of that
//!                                        block and < first key of the next; value = handle)
//! footer, 48 bytes: metaindex handle, index handle (each `varint offset, varint size`),
//!                   zero padding to 40 bytes, then the magic u64 0xdb4775248b80fb57
//! ```
//! A block is a run of entries, then `u32 restart[num_restarts]`, then `u32 num_restarts`.
//! An entry is `varint shared, varint non_shared, varint value_len, key[non_shared], value`:
//! its key is the first `shared` bytes of the previous key followed by the `non_shared` bytes.
//! Restart points are offsets of entries whose `shared` is 0. A handle's `size` excludes the
//! 5-byte trailer that follows each block: a compression type byte (0 = none, 1 = snappy) and
//! the masked crc32c of the block contents plus that type byte.
//!
//! The reader checks every handle against the file, every trailer checksum, every entry against
//! its block, that keys are strictly increasing (bytewise) across the whole table, that data
//! blocks follow each other without overlap, and that each block's keys are within its index key.
//! Compressed blocks are rejected: TensorFlow writes bundle indexes uncompressed.
use std::path::Path;

use super::proto::{read_varint, write_varint};
use super::{masked_crc32c, BundleError};
use crate::limits::LimitKind;
use crate::Limits;

/// Length of the fixed footer at the end of the file.
pub(crate) const FOOTER_LEN: usize = 48;
/// The footer's magic number.
pub(crate) const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Compression type byte + masked crc32c after every block.
pub(crate) const BLOCK_TRAILER_LEN: usize = 5;

/// Where a block lives in the file (size excludes the trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> BundleError {
    BundleError::CorruptIndex {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

fn varint_at(buf: &[u8], pos: &mut usize, base: u64, path: &Path) -> Result<u64, BundleError> {
    read_varint(buf, pos).map_err(|e| corrupt(path, base + e.offset as u64, e.what))
}

fn varint32_at(buf: &[u8], pos: &mut usize, base: u64, path: &Path) -> Result<usize, BundleError> {
    let at = *pos;
    let v = varint_at(buf, pos, base, path)?;
    u32::try_from(v)
        .map(|v| v as usize)
        .map_err(|_| corrupt(path, base + at as u64, format!("varint32 too large: {v}")))
}

fn decode_handle(
    buf: &[u8],
    pos: &mut usize,
    base: u64,
    path: &Path,
) -> Result<BlockHandle, BundleError> {
    let offset = varint_at(buf, pos, base, path)?;
    let size = varint_at(buf, pos, base, path)?;
    Ok(BlockHandle { offset, size })
}

/// Returns a block's contents after checking its extent, trailer checksum and compression type.
fn block<'a>(
    file: &'a [u8],
    h: BlockHandle,
    what: &str,
    path: &Path,
    limits: &Limits,
) -> Result<&'a [u8], BundleError> {
    if h.size > limits.max_metadata_bytes {
        return Err(BundleError::Limit {
            what: format!("{}: {what} at offset {}", path.display(), h.offset),
            actual: h.size,
            limit: limits.max_metadata_bytes,
            kind: LimitKind::MetadataBytes,
        });
    }
    let needed = h.size.checked_add(BLOCK_TRAILER_LEN as u64);
    let end = needed.and_then(|n| h.offset.checked_add(n));
    let available = (file.len() as u64).saturating_sub(h.offset);
    match end {
        Some(end) if end <= file.len() as u64 => {}
        _ => {
            return Err(BundleError::Truncated {
                path: path.to_path_buf(),
                offset: h.offset,
                what: what.to_string(),
                needed: needed.unwrap_or(u64::MAX),
                available,
            })
        }
    }
    let start = h.offset as usize;
    let len = h.size as usize;
    let contents = &file[start..start + len];
    let trailer = &file[start + len..start + len + BLOCK_TRAILER_LEN];
    let ctype = trailer[0];
    let stored = u32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    let actual = masked_crc32c(&file[start..start + len + 1]);
    // Fuzzing builds (`cargo fuzz` sets `--cfg fuzzing`) skip this one check so that mutated
    // blocks reach the parser instead of all stopping here.
    if stored != actual && !cfg!(fuzzing) {
        return Err(BundleError::BlockChecksum {
            path: path.to_path_buf(),
            offset: h.offset,
            what: what.to_string(),
            expected: stored,
            actual,
        });
    }
    match ctype {
        0 => Ok(contents),
        1 => Err(BundleError::Unsupported {
            path: path.to_path_buf(),
            at: format!("{what} at offset {}", h.offset),
            what: "snappy-compressed index block (TensorFlow writes bundle indexes uncompressed)"
                .into(),
        }),
        t => Err(BundleError::Unsupported {
            path: path.to_path_buf(),
            at: format!("{what} at offset {}", h.offset),
            what: format!("block compression type {t}"),
        }),
    }
}

/// Calls `visit(key, value, file offset of the entry)` for every entry of a block, in order.
fn for_each_entry(
    contents: &[u8],
    base: u64,
    path: &Path,
    mut visit: impl FnMut(&[u8], &[u8], u64) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let n = contents.len();
    if n < 4 {
        return Err(corrupt(
            path,
            base,
            format!("block of {n} bytes has no restart count"),
        ));
    }
    let num_restarts = u32::from_le_bytes([
        contents[n - 4],
        contents[n - 3],
        contents[n - 2],
        contents[n - 1],
    ]) as usize;
    let max_restarts = (n - 4) / 4;
    if num_restarts == 0 || num_restarts > max_restarts {
        return Err(corrupt(
            path,
            base + (n - 4) as u64,
            format!("{num_restarts} restart points in a block of {n} bytes (1..={max_restarts} possible)"),
        ));
    }
    let restarts_at = n - 4 - 4 * num_restarts;
    let restart = |i: usize| -> usize {
        let p = restarts_at + 4 * i;
        u32::from_le_bytes([
            contents[p],
            contents[p + 1],
            contents[p + 2],
            contents[p + 3],
        ]) as usize
    };
    let entries = &contents[..restarts_at];
    if restart(0) != 0 {
        return Err(corrupt(
            path,
            base + restarts_at as u64,
            format!("first restart point is {}, not 0", restart(0)),
        ));
    }
    let mut next_restart = 0usize;
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    while pos < entries.len() {
        let at = pos;
        let shared = varint32_at(entries, &mut pos, base, path)?;
        let non_shared = varint32_at(entries, &mut pos, base, path)?;
        let value_len = varint32_at(entries, &mut pos, base, path)?;
        if next_restart < num_restarts {
            let r = restart(next_restart);
            if r < at {
                return Err(corrupt(
                    path,
                    base + restarts_at as u64,
                    format!("restart point {r} is not at an entry boundary"),
                ));
            }
            if r == at {
                if shared != 0 {
                    return Err(corrupt(
                        path,
                        base + at as u64,
                        format!("entry at restart point shares {shared} key bytes"),
                    ));
                }
                next_restart += 1;
            }
        }
        if shared > key.len() {
            return Err(corrupt(
                path,
                base + at as u64,
                format!(
                    "entry shares {shared} key bytes, previous key has {}",
                    key.len()
                ),
            ));
        }
        let remaining = entries.len() - pos;
        let needed = non_shared as u64 + value_len as u64;
        if needed > remaining as u64 {
            return Err(corrupt(
                path,
                base + at as u64,
                format!("entry needs {needed} bytes of key and value, block has {remaining}"),
            ));
        }
        key.truncate(shared);
        key.extend_from_slice(&entries[pos..pos + non_shared]);
        pos += non_shared;
        let value = &entries[pos..pos + value_len];
        pos += value_len;
        visit(&key, value, base + at as u64)?;
    }
    if next_restart < num_restarts {
        // A block without entries carries the single restart point 0.
        if !(entries.is_empty() && num_restarts == 1) {
            return Err(corrupt(
                path,
                base + restarts_at as u64,
                format!(
                    "restart point {} is past the last entry",
                    restart(next_restart)
                ),
            ));
        }
    }
    Ok(())
}

/// Reads every key/value of a table held in `file`, in order, calling
/// `visit(key, value, file offset of the entry)`.
pub(crate) fn read_table(
    file: &[u8],
    path: &Path,
    limits: &Limits,
    mut visit: impl FnMut(&[u8], &[u8], u64) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    if file.len() < FOOTER_LEN {
        return Err(BundleError::Truncated {
            path: path.to_path_buf(),
            offset: 0,
            what: "table footer".into(),
            needed: FOOTER_LEN as u64,
            available: file.len() as u64,
        });
    }
    let footer_at = file.len() - FOOTER_LEN;
    let footer = &file[footer_at..];
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&footer[40..]);
    let magic = u64::from_le_bytes(magic);
    if magic != TABLE_MAGIC {
        return Err(BundleError::BadMagic {
            path: path.to_path_buf(),
            offset: (footer_at + 40) as u64,
            expected: TABLE_MAGIC,
            actual: magic,
        });
    }
    let mut pos = 0;
    let handles = &footer[..40];
    let meta = decode_handle(handles, &mut pos, footer_at as u64, path)?;
    let index = decode_handle(handles, &mut pos, footer_at as u64, path)?;
    // The metaindex is not used (bundles have no filter blocks) but must be intact.
    block(file, meta, "metaindex block", path, limits)?;
    let index_block = block(file, index, "index block", path, limits)?;

    let max_entries = limits.max_tensors.saturating_add(1);
    let mut blocks = 0u64;
    let mut entries = 0u64;
    let mut data_end = 0u64;
    let mut last_key: Option<Vec<u8>> = None;
    let mut prev_separator: Option<Vec<u8>> = None;
    for_each_entry(index_block, index.offset, path, |sep, handle_bytes, at| {
        blocks += 1;
        if blocks > max_entries {
            return Err(BundleError::Limit {
                what: format!("{}: data blocks in the index block", path.display()),
                actual: blocks,
                limit: max_entries,
                kind: LimitKind::Tensors,
            });
        }
        if let Some(prev) = &prev_separator {
            if sep <= prev.as_slice() {
                return Err(corrupt(
                    path,
                    at,
                    "index block keys are not strictly increasing",
                ));
            }
        }
        prev_separator = Some(sep.to_vec());
        let mut p = 0;
        let h = decode_handle(handle_bytes, &mut p, at, path)?;
        if h.offset < data_end {
            return Err(corrupt(
                path,
                at,
                format!(
                    "data block at offset {} overlaps the previous block ending at {data_end}",
                    h.offset
                ),
            ));
        }
        let what = format!("data block {}", blocks - 1);
        let contents = block(file, h, &what, path, limits)?;
        data_end = h.offset + h.size + BLOCK_TRAILER_LEN as u64;
        for_each_entry(contents, h.offset, path, |key, value, at| {
            entries += 1;
            if entries > max_entries {
                return Err(BundleError::Limit {
                    what: format!("{}: index entries", path.display()),
                    actual: entries,
                    limit: max_entries,
                    kind: LimitKind::Tensors,
                });
            }
            if let Some(prev) = &last_key {
                if key <= prev.as_slice() {
                    return Err(corrupt(path, at, "keys are not strictly increasing"));
                }
            }
            if key > sep {
                return Err(corrupt(
                    path,
                    at,
                    format!("key is past its {what}'s index key"),
                ));
            }
            match &mut last_key {
                Some(k) => {
                    k.clear();
                    k.extend_from_slice(key);
                }
                None => last_key = Some(key.to_vec()),
            }
            visit(key, value, at)
        })
    })
}

/// Builds a block: prefix-compressed entries with a restart point every `interval` entries.
struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    since_restart: usize,
    interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    fn new(interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            since_restart: 0,
            interval: interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.since_restart < self.interval {
            key.iter()
                .zip(&self.last_key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        };
        write_varint(&mut self.buf, shared as u64);
        write_varint(&mut self.buf, (key.len() - shared) as u64);
        write_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.since_restart += 1;
        self.entries += 1;
    }

    fn size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        *self = BlockBuilder::new(self.interval);
        out
    }
}

/// Writes a table into memory. Keys must be added in strictly increasing order (the caller
/// sorts); blocks are cut once they reach `block_size` bytes.
pub(crate) struct TableBuilder {
    out: Vec<u8>,
    data: BlockBuilder,
    index: BlockBuilder,
    block_size: usize,
}

impl TableBuilder {
    /// `block_size`: target size of a data block (TensorFlow uses 256 KiB… smaller values give
    /// multi-block indexes for tests).
    pub(crate) fn new(block_size: usize) -> Self {
        TableBuilder {
            out: Vec::new(),
            data: BlockBuilder::new(16),
            index: BlockBuilder::new(1),
            block_size: block_size.max(1),
        }
    }

    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.data.entries == 0 || key > self.data.last_key.as_slice());
        self.data.add(key, value);
        if self.data.size_estimate() >= self.block_size {
            self.flush_data();
        }
    }

    fn write_block(&mut self, contents: &[u8]) -> (u64, u64) {
        let offset = self.out.len() as u64;
        self.out.extend_from_slice(contents);
        self.out.push(0);
        let crc = masked_crc32c(&self.out[offset as usize..]);
        self.out.extend_from_slice(&crc.to_le_bytes());
        (offset, contents.len() as u64)
    }

    fn flush_data(&mut self) {
        if self.data.entries == 0 {
            return;
        }
        let last = self.data.last_key.clone();
        let contents = self.data.finish();
        let (offset, size) = self.write_block(&contents);
        let mut handle = Vec::new();
        write_varint(&mut handle, offset);
        write_varint(&mut handle, size);
        self.index.add(&last, &handle);
    }

    /// Finishes the table and returns its bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.flush_data();
        let meta = BlockBuilder::new(16).finish();
        let (meta_off, meta_size) = self.write_block(&meta);
        let index = self.index.finish();
        let (index_off, index_size) = self.write_block(&index);
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for v in [meta_off, meta_size, index_off, index_size] {
            write_varint(&mut footer, v);
        }
        footer.resize(40, 0);
        footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        self.out.extend_from_slice(&footer);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn collect(bytes: &[u8]) -> Result<Pairs, BundleError> {
        let mut v = Vec::new();
        read_table(
            bytes,
            Path::new("t.index"),
            &Limits::default(),
            |k, val, _| {
                v.push((k.to_vec(), val.to_vec()));
                Ok(())
            },
        )?;
        Ok(v)
    }

    fn sample(n: usize, block_size: usize) -> (Pairs, Vec<u8>) {
        let kv: Vec<_> = (0..n)
            .map(|i| {
                (
                    format!("layer/{i:06}/kernel").into_bytes(),
                    vec![i as u8; i % 7],
                )
            })
            .collect();
        let mut b = TableBuilder::new(block_size);
        for (k, v) in &kv {
            b.add(k, v);
        }
        (kv, b.finish())
    }

    #[test]
    fn round_trip_single_and_many_blocks() {
        for (n, bs) in [(0, 4096), (1, 4096), (50, 4096), (500, 256), (300, 1)] {
            let (kv, bytes) = sample(n, bs);
            assert_eq!(collect(&bytes).unwrap(), kv, "n={n} block_size={bs}");
        }
    }

    #[test]
    fn every_single_byte_flip_is_an_error_or_same_data() {
        let (kv, bytes) = sample(40, 200);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            // Flips in the footer padding are the only harmless ones.
            if let Ok(got) = collect(&b) {
                assert_eq!(got, kv, "flip at {i} changed the data silently");
                let footer_at = bytes.len() - FOOTER_LEN;
                assert!(
                    i >= footer_at && i < footer_at + 40,
                    "flip at {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncation_is_typed() {
        let (_, bytes) = sample(40, 200);
        for len in [0, 10, 47, bytes.len() - 1, bytes.len() / 2] {
            let e = collect(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    e,
                    BundleError::Truncated { .. } | BundleError::BadMagic { .. }
                ),
                "len {len}: {e}"
            );
        }
    }

    #[test]
    fn compressed_block_is_unsupported() {
        // One data block, rewritten with compression type 1 and a correct checksum.
        let (_, mut bytes) = sample(3, 4096);
        let mut pos = 0;
        let footer_at = bytes.len() - FOOTER_LEN;
        let _meta = decode_handle(&bytes[footer_at..], &mut pos, 0, Path::new("")).unwrap();
        // data block 0 starts at 0; find its size from the index block.
        let index = decode_handle(&bytes[footer_at..], &mut pos, 0, Path::new("")).unwrap();
        let ib = bytes[index.offset as usize..(index.offset + index.size) as usize].to_vec();
        let mut handle = None;
        for_each_entry(&ib, 0, Path::new(""), |_, v, _| {
            let mut p = 0;
            handle = Some(decode_handle(v, &mut p, 0, Path::new(""))?);
            Ok(())
        })
        .unwrap();
        let h = handle.unwrap();
        let t = (h.offset + h.size) as usize;
        bytes[t] = 1;
        let crc = masked_crc32c(&bytes[h.offset as usize..=t]);
        bytes[t + 1..t + 5].copy_from_slice(&crc.to_le_bytes());
        let e = collect(&bytes).unwrap_err();
        assert!(matches!(e, BundleError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("snappy"), "{e}");
    }
}
