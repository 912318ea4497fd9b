//! A strict reader of the zip container `torch.save` writes: the central directory and the
//! local headers, nothing else. It exists so that what zoo reads from a `.pth` is what torch
//! reads, and so that an archive that could be read two ways is refused instead of read one
//! way.
//!
//! # What is accepted
//! - the end-of-central-directory record (EOCD) ends the file: no archive comment, no trailing
//!   bytes. A zip64 EOCD and locator (which torch always writes) are read when the locator is
//!   there; the 32-bit fields must then agree with them or hold the 0xFFFF… placeholders.
//! - one disk; the central directory ends exactly where the (zip64) EOCD starts.
//! - every entry stored (method 0), not encrypted or otherwise flagged (only the data
//!   descriptor and UTF-8 flags), not marked as a directory, with equal compressed and uncompressed
//!   sizes (zip64 extra field honoured), a local header whose name and method match the
//!   central directory's, and data inside the file before the central directory. Entries
//!   do not overlap.
//! - names are UTF-8 and distinct even ignoring ASCII case: torch's miniz looks records up
//!   with a case-insensitive binary search, so `a/data/0` and `A/DATA/0` would be one record
//!   to torch and two to a case-sensitive reader. Any duplicate is refused by name.
//!
//! CRCs are not checked here; [`crate::pth`] checks each record's CRC-32 as it reads it.
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use crate::limits::LimitKind;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOCATOR_SIG: u32 = 0x0706_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZipEntry {
    /// The name as stored.
    pub name: String,
    /// File offset of the local header.
    pub header_offset: u64,
    /// File offset of the first data byte.
    pub data_start: u64,
    /// Data length.
    pub size: u64,
    /// CRC-32 recorded in the central directory.
    pub crc32: u32,
}

/// The entries of an archive, in central directory order.
#[derive(Debug)]
pub(crate) struct ZipIndex {
    pub entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
}

impl ZipIndex {
    /// The entry named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }
}

/// Why the container was refused.
#[derive(Debug)]
pub(crate) enum ZipProblem {
    /// A structural problem at a file offset.
    At { offset: u64, what: String },
    /// Two entries with one name (ignoring ASCII case).
    Duplicate { first: String, second: String },
    /// A compressed entry.
    Compressed { name: String, method: u16 },
    /// Too many entries, or too large a central directory.
    Limit {
        what: &'static str,
        actual: u64,
        limit: u64,
        kind: LimitKind,
    },
    /// Reading failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for ZipProblem {
    fn from(e: std::io::Error) -> Self {
        ZipProblem::Io(e)
    }
}

fn at(offset: u64, what: impl Into<String>) -> ZipProblem {
    ZipProblem::At {
        offset,
        what: what.into(),
    }
}

fn u16le(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32le(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64le(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Reads `n` bytes at `offset`, which the caller has checked lie inside the file.
fn read_at<R: Read + Seek>(r: &mut R, offset: u64, n: usize) -> Result<Vec<u8>, ZipProblem> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = crate::alloc::zeroed(n as u64)
        .ok_or_else(|| at(offset, format!("cannot allocate {n} bytes")))?;
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => at(offset, format!("{n} bytes expected, file ends")),
        _ => ZipProblem::Io(e),
    })?;
    Ok(buf)
}

/// Parses and checks the central directory of the `len`-byte archive in `r`. At most
/// `max_entries` entries (`kind` names that bound in the error) and a central directory of at
/// most `max_bytes` bytes are accepted.
pub(crate) fn read_index<R: Read + Seek>(
    r: &mut R,
    len: u64,
    max_entries: u64,
    kind: LimitKind,
    max_bytes: u64,
) -> Result<ZipIndex, ZipProblem> {
    if len < 22 {
        return Err(at(0, format!("{len} bytes is too short for a zip archive")));
    }
    let eocd_at = len - 22;
    let eocd = read_at(r, eocd_at, 22)?;
    if u32le(&eocd, 0) != EOCD_SIG {
        return Err(at(
            eocd_at,
            "no end-of-central-directory record in the last 22 bytes (archive comments and trailing data are not read)",
        ));
    }
    if u16le(&eocd, 20) != 0 {
        return Err(at(eocd_at, "inconsistent comment length"));
    }
    let (disk, cd_disk) = (u16le(&eocd, 4), u16le(&eocd, 6));
    let (n_disk, n_total) = (u16le(&eocd, 8), u16le(&eocd, 10));
    let (cd_size32, cd_offset32) = (u32le(&eocd, 12), u32le(&eocd, 16));
    if disk != 0 || cd_disk != 0 || n_disk != n_total {
        return Err(at(eocd_at, "multi-disk archives are not read"));
    }
    // The zip64 locator, if present, sits just before the EOCD.
    let locator = if eocd_at >= 20 {
        let l = read_at(r, eocd_at - 20, 20)?;
        (u32le(&l, 0) == LOCATOR_SIG).then_some(l)
    } else {
        None
    };
    let (entries, cd_size, cd_offset, cd_end) = match locator {
        Some(l) => {
            let eocd64_at = u64le(&l, 8);
            if u32le(&l, 4) != 0 || u32le(&l, 16) != 1 {
                return Err(at(eocd_at - 20, "multi-disk zip64 archives are not read"));
            }
            if eocd64_at
                .checked_add(56)
                .is_none_or(|end| end > eocd_at - 20)
            {
                return Err(at(
                    eocd_at - 20,
                    format!("zip64 end of central directory offset {eocd64_at} is out of place"),
                ));
            }
            let e = read_at(r, eocd64_at, 56)?;
            if u32le(&e, 0) != EOCD64_SIG {
                return Err(at(
                    eocd64_at,
                    "zip64 end of central directory signature missing",
                ));
            }
            // The record (with any extensible data) must end where the locator starts.
            let record_len = u64le(&e, 4);
            if eocd64_at
                .checked_add(12)
                .and_then(|x| x.checked_add(record_len))
                != Some(eocd_at - 20)
            {
                return Err(at(
                    eocd64_at,
                    "zip64 end of central directory size does not reach the locator",
                ));
            }
            if u32le(&e, 16) != 0 || u32le(&e, 20) != 0 || u64le(&e, 24) != u64le(&e, 32) {
                return Err(at(eocd64_at, "multi-disk zip64 archives are not read"));
            }
            let (n, size, offset) = (u64le(&e, 32), u64le(&e, 40), u64le(&e, 48));
            let agrees = (n_total == 0xffff || u64::from(n_total) == n)
                && (cd_size32 == u32::MAX || u64::from(cd_size32) == size)
                && (cd_offset32 == u32::MAX || u64::from(cd_offset32) == offset);
            if !agrees {
                return Err(at(
                    eocd_at,
                    "end of central directory disagrees with its zip64 record",
                ));
            }
            (n, size, offset, eocd64_at)
        }
        None => {
            if n_total == 0xffff || cd_size32 == u32::MAX || cd_offset32 == u32::MAX {
                return Err(at(eocd_at, "zip64 placeholders without a zip64 locator"));
            }
            (
                u64::from(n_total),
                u64::from(cd_size32),
                u64::from(cd_offset32),
                eocd_at,
            )
        }
    };
    if entries > max_entries {
        return Err(ZipProblem::Limit {
            what: "zip entry count",
            actual: entries,
            limit: max_entries,
            kind,
        });
    }
    if cd_offset.checked_add(cd_size) != Some(cd_end) {
        return Err(at(
            cd_end,
            format!(
                "central directory at {cd_offset} of {cd_size} bytes does not end at the end record ({cd_end})"
            ),
        ));
    }
    if cd_size > max_bytes {
        return Err(ZipProblem::Limit {
            what: "zip central directory size",
            actual: cd_size,
            limit: max_bytes,
            kind: LimitKind::MetadataBytes,
        });
    }
    // Entries are at least 46 bytes each.
    if entries.saturating_mul(46) > cd_size {
        return Err(at(
            cd_offset,
            format!("{entries} entries cannot fit in {cd_size} bytes"),
        ));
    }
    let cd = read_at(r, cd_offset, cd_size as usize)?;
    let mut list = Vec::with_capacity(entries as usize);
    let mut by_name = HashMap::with_capacity(entries as usize);
    let mut folded: HashMap<String, usize> = HashMap::with_capacity(entries as usize);
    let mut p = 0usize;
    for _ in 0..entries {
        let here = cd_offset + p as u64;
        if cd.len() - p < 46 || u32le(&cd, p) != CENTRAL_SIG {
            return Err(at(here, "central directory entry expected"));
        }
        let h = &cd[p..p + 46];
        let flags = u16le(h, 8);
        let method = u16le(h, 10);
        let crc32 = u32le(h, 16);
        let (mut csize, mut usize_) = (u64::from(u32le(h, 20)), u64::from(u32le(h, 24)));
        let (n, m, k) = (
            usize::from(u16le(h, 28)),
            usize::from(u16le(h, 30)),
            usize::from(u16le(h, 32)),
        );
        let disk_start = u16le(h, 34);
        let mut offset = u64::from(u32le(h, 42));
        if cd.len() - p - 46 < n + m + k {
            return Err(at(here, "central directory entry runs past its end"));
        }
        let name_bytes = &cd[p + 46..p + 46 + n];
        let extra = &cd[p + 46 + n..p + 46 + n + m];
        let name = match std::str::from_utf8(name_bytes) {
            Ok(s) if !s.is_empty() && !s.contains('\0') => s.to_owned(),
            _ => {
                return Err(at(
                    here,
                    format!(
                        "entry name {} is not UTF-8 text",
                        crate::text::esc_bytes(name_bytes)
                    ),
                ))
            }
        };
        let shown = || crate::text::esc(&name).to_string();
        // Only "data descriptor follows", "UTF-8 name" and the deflate option bits: torch's
        // miniz refuses encryption (0x1, 0x40), patch data (0x20) and masked headers (0x2000).
        if flags & !(0x0002 | 0x0004 | 0x0008 | 0x0800) != 0 {
            return Err(at(
                here,
                format!("entry `{}` has general purpose flags {flags:#06x}", shown()),
            ));
        }
        // miniz treats an entry as a directory (and "extracts" it without reading a byte, so
        // torch would get uninitialised memory) when its name ends in `/` or its DOS
        // attributes have the directory bit.
        let external = u32le(h, 38);
        if name.ends_with('/') || external & 0x10 != 0 {
            return Err(at(
                here,
                format!(
                    "entry `{}` is marked as a directory (external attributes {external:#010x})",
                    shown()
                ),
            ));
        }
        if disk_start != 0 {
            return Err(at(
                here,
                format!("entry `{}` starts on another disk", shown()),
            ));
        }
        // zip64 extra field: the 8-byte values of exactly the fields that hold 0xFFFFFFFF.
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let (id, size) = (u16le(extra, e), usize::from(u16le(extra, e + 2)));
            if e + 4 + size > extra.len() {
                return Err(at(
                    here,
                    format!("entry `{}`: extra field overruns", shown()),
                ));
            }
            if id == 1 {
                let data = &extra[e + 4..e + 4 + size];
                let mut q = 0usize;
                for field in [&mut usize_, &mut csize, &mut offset] {
                    if *field == u64::from(u32::MAX) {
                        if q + 8 > data.len() {
                            return Err(at(
                                here,
                                format!("entry `{}`: zip64 extra field too short", shown()),
                            ));
                        }
                        *field = u64le(data, q);
                        q += 8;
                    }
                }
            }
            e += 4 + size;
        }
        if e != extra.len() {
            return Err(at(
                here,
                format!("entry `{}`: malformed extra field", shown()),
            ));
        }
        if method != 0 {
            return Err(ZipProblem::Compressed { name, method });
        }
        if csize != usize_ {
            return Err(at(
                here,
                format!(
                    "stored entry `{}` has compressed size {csize} and size {usize_}",
                    shown()
                ),
            ));
        }
        let key = name.to_ascii_lowercase();
        if let Some(&first) = folded.get(&key) {
            let first: &ZipEntry = &list[first];
            return Err(ZipProblem::Duplicate {
                first: first.name.clone(),
                second: name,
            });
        }
        folded.insert(key, list.len());
        by_name.insert(name.clone(), list.len());
        list.push(ZipEntry {
            name,
            header_offset: offset,
            data_start: 0,
            size: usize_,
            crc32,
        });
        p += 46 + n + m + k;
    }
    if p != cd.len() {
        return Err(at(
            cd_offset + p as u64,
            "bytes after the last central directory entry",
        ));
    }
    // Local headers: same name and method, data before the central directory, no overlaps.
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by_key(|&i| list[i].header_offset);
    let mut free_from = 0u64;
    for i in order {
        let entry = &mut list[i];
        let off = entry.header_offset;
        let shown = crate::text::esc(&entry.name).to_string();
        if off < free_from || off.checked_add(30).is_none_or(|e| e > cd_offset) {
            return Err(at(
                off,
                format!(
                    "local header of `{shown}` overlaps another entry or the central directory"
                ),
            ));
        }
        let h = read_at(r, off, 30)?;
        if u32le(&h, 0) != LOCAL_SIG {
            return Err(at(off, format!("local header of `{shown}` expected")));
        }
        let (n, m) = (u64::from(u16le(&h, 26)), u64::from(u16le(&h, 28)));
        if u16le(&h, 8) != 0 {
            return Err(at(
                off,
                format!("local header of `{shown}` says compressed"),
            ));
        }
        let data_start = off + 30 + n + m;
        let data_end = data_start.checked_add(entry.size);
        if data_end.is_none_or(|e| e > cd_offset) {
            return Err(at(
                off,
                format!(
                    "data of `{shown}` ({} bytes from {data_start}) runs into the central directory at {cd_offset}",
                    entry.size
                ),
            ));
        }
        let local_name = read_at(r, off + 30, n as usize)?;
        if local_name != entry.name.as_bytes() {
            return Err(at(
                off,
                format!(
                    "local header names `{}`, central directory `{shown}`",
                    crate::text::esc_bytes(&local_name)
                ),
            ));
        }
        entry.data_start = data_start;
        free_from = data_end.unwrap_or(u64::MAX);
    }
    Ok(ZipIndex {
        entries: list,
        by_name,
    })
}
