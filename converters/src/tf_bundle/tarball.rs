//! Safe extraction of a release tarball (`.tar.gz`) that holds a checkpoint, such as
//! `noisy_student_efficientnet-b0.tar.gz` (`<dir>/model.ckpt.index`, `<dir>/model.ckpt.data-…`,
//! `<dir>/checkpoint`, `<dir>/model.ckpt.meta`).
//!
//! # What is read
//! The whole gzip stream, every member (`gzip`, GNU tar and Python read concatenated gzip
//! members as one stream; reading only the first would let a second member hide or override
//! files), and then the tar archive in it up to its end-of-archive block. Anything but zero
//! padding after that block is refused, as is trailing data after the last gzip member, so
//! no reader that goes on past the end (`tar -i`) can see a different archive.
//!
//! # What is written
//! Only the members a checkpoint needs: files named `*.index`, `*.data-NNNNN-of-NNNNN` and
//! `checkpoint`. Every other regular file (`model.ckpt.meta`, event files, …) and every
//! directory entry is skipped without writing anything. Each written file lies strictly below
//! `dest_dir`:
//! - entry paths must be relative and may not contain `..` (or a root or drive prefix), nor
//!   end in `/` (which old tar readers treat as a directory);
//! - symlinks, hard links, devices, FIFOs and sparse files are refused outright (a checkpoint
//!   never needs them, and refusing them all is simpler to trust than checking where each
//!   one points);
//! - a directory on the way that already exists must be a real directory, not a symlink;
//! - files are created with `create_new`, so an existing file (or symlink) is never written
//!   through or overwritten, and a tarball that lists a file twice is refused;
//! - modes, owners and times from the archive are ignored.
//!
//! # Budget
//! [`Limits::max_entries`] bounds the members of any kind, [`Limits::max_depth`] the
//! components of a path, and [`Limits::max_disk_bytes`] both the bytes written and the bytes
//! decompressed (skipped members included); skipped members may total 1/16 of it, checked from
//! their headers before their data is read past. A data shard may not be larger than the extent its
//! checkpoint's index declares for it (+ 1 MiB): checked before writing when the index came
//! first in the archive, after extraction otherwise. Errors name the tarball and the member,
//! never only the scratch directory.
//!
//! # Reading headers as Python's `tarfile` does
//! Headers are read raw and held to what `tarfile` and the `tar` crate read the same way: every
//! numeric field octal (or base-256), the ustar name prefix only in ustar headers, no data
//! behind a directory, GNU long names that are one NUL-terminated name, PAX local headers with
//! well-formed records and only the `path` keyword (and fields that change nothing here). PAX
//! global headers, long links and Solaris headers are refused.
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use super::{shard_path, Bundle, BundleError, Index};
use crate::limits::LimitKind;
use crate::text::{esc, esc_bytes};
use crate::{Limits, Result};

/// Members that are not part of a checkpoint (`model.ckpt.meta`, event files) may total at
/// most this share of [`Limits::max_disk_bytes`] (1 GiB by default): they are never written,
/// but reading past them still costs decompression time.
const SKIPPED_SHARE: u64 = 16;

/// A data shard may be this much larger than the extent its index declares (alignment).
const SHARD_SLACK: u64 = 1 << 20;

/// One file [`extract_members`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Its path below the destination, `/`-separated, `.` components removed.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Extracts `tar_gz` into `dest_dir` (created if missing) and returns the prefix of the one
/// checkpoint inside (`dest_dir/<dir>/model.ckpt` for `<dir>/model.ckpt.index`), with the
/// process's [`Limits::current`].
pub fn unpack_tarball(tar_gz: &Path, dest_dir: &Path) -> Result<PathBuf> {
    Ok(unpack(tar_gz, dest_dir, &Limits::current())?)
}

/// [`unpack_tarball`] with explicit limits.
pub fn unpack_tarball_with_limits(
    tar_gz: &Path,
    dest_dir: &Path,
    limits: Limits,
) -> Result<PathBuf> {
    Ok(unpack(tar_gz, dest_dir, &limits)?)
}

/// Extracts `tar_gz` into `dest_dir` and opens the checkpoint inside. Errors about the
/// checkpoint's files name them inside the tarball (`release.tar.gz/<dir>/model.ckpt.index`),
/// not in `dest_dir`.
pub fn open_tarball(tar_gz: &Path, dest_dir: &Path, limits: Limits) -> Result<Bundle> {
    let prefix = unpack(tar_gz, dest_dir, &limits)?;
    let inside = prefix.strip_prefix(dest_dir).unwrap_or(&prefix);
    Bundle::open_as(&prefix, &tar_gz.join(inside), limits)
}

/// Extracts the checkpoint members of `tar_gz` into `dest_dir` (see the module docs) and
/// lists the files written, in archive order, without requiring a checkpoint among them.
/// For tools that compare against other tar readers.
pub fn extract_members(tar_gz: &Path, dest_dir: &Path, limits: Limits) -> Result<Vec<Extracted>> {
    Ok(extract(tar_gz, dest_dir, &limits)?.files)
}

fn unpack(tar_gz: &Path, dest_dir: &Path, limits: &Limits) -> Result<PathBuf, BundleError> {
    let out = extract(tar_gz, dest_dir, limits)?;
    let [index] = out.indexes.as_slice() else {
        return Err(BundleError::CheckpointNotFound {
            archive: tar_gz.to_path_buf(),
            found: out
                .indexes
                .iter()
                .map(|i| esc(&i.member).to_string())
                .collect(),
        });
    };
    let prefix = index.target.with_extension("");
    // Shards that came before their index in the archive are checked now.
    if let Some(extents) = &index.extents {
        for (shard, &extent) in extents.iter().enumerate() {
            let path = shard_path(&prefix, shard as u32, extents.len() as u32);
            if let Some(f) = out.files.iter().find(|f| dest_dir.join(&f.path) == path) {
                check_shard(tar_gz, &f.path, f.size, extent)?;
            }
        }
    }
    Ok(prefix)
}

/// An index file written, and the extent (max offset + size) its entries declare per shard.
struct IndexFile {
    member: String,
    target: PathBuf,
    extents: Option<Vec<u64>>,
}

struct Extraction {
    files: Vec<Extracted>,
    indexes: Vec<IndexFile>,
}

/// Counts the decompressed bytes read and stops at the disk budget.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get().saturating_add(n as u64);
        self.count.set(total);
        if total > self.limit {
            return Err(io::Error::other(OverBudget));
        }
        Ok(n)
    }
}

/// The marker error [`Counted`] returns at the budget.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed size over the disk budget")
    }
}

impl std::error::Error for OverBudget {}

/// Whether a member's file name is one a checkpoint needs.
fn wanted(name: &[u8]) -> bool {
    if name == b"checkpoint" || (name.ends_with(b".index") && name.len() > 6) {
        return true;
    }
    // `<prefix>.data-NNNNN-of-NNNNN`
    let Some(tail) = name.len().checked_sub(20).map(|i| &name[i..]) else {
        return false;
    };
    name.len() > 20
        && tail.starts_with(b".data-")
        && tail[6..11].iter().all(u8::is_ascii_digit)
        && &tail[11..15] == b"-of-"
        && tail[15..].iter().all(u8::is_ascii_digit)
}

fn check_shard(tar_gz: &Path, member: &str, size: u64, extent: u64) -> Result<(), BundleError> {
    if size > extent.saturating_add(SHARD_SLACK) {
        return Err(BundleError::Limit {
            what: format!(
                "{}: member `{}` is larger than its index declares ({extent} bytes + 1 MiB)",
                tar_gz.display(),
                esc(member)
            ),
            actual: size,
            limit: extent.saturating_add(SHARD_SLACK),
            kind: LimitKind::DiskBytes,
        });
    }
    Ok(())
}

/// Largest GNU long-name or PAX record block read (real ones are a few hundred bytes).
const MAX_EXTENSION: u64 = 64 << 10;

/// PAX keywords accepted in a local extended header: the path, and fields that change nothing
/// zoo or Python's `tarfile` extract. Any other keyword (`size`, `linkpath`, `hdrcharset`,
/// `GNU.sparse.*`, vendor keys) is refused rather than interpreted one way or another.
const PAX_KEYS: [&str; 8] = [
    "path", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname",
];

/// A numeric header field as Python's `tarfile` (`nti`) reads it, restricted to what both it
/// and the `tar` crate read the same way: octal digits with spaces around and a NUL or space
/// end, or base-256 (`0x80` first) for large values. `None` for anything else (signs,
/// underscores, tabs, negative base-256), which is refused.
fn number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(0x80) => field[1..]
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(u64::from(b))),
        Some(0xff) => None,
        _ => {
            let text = &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())];
            let start = text.iter().position(|&b| b != b' ').unwrap_or(text.len());
            let end = text
                .iter()
                .rposition(|&b| b != b' ')
                .map_or(start, |e| e + 1);
            let digits = &text[start..end];
            if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                return None;
            }
            digits.iter().try_fold(0u64, |n, &b| {
                n.checked_mul(8)?.checked_add(u64::from(b - b'0'))
            })
        }
    }
}

/// Checks the fields of a raw header that readers interpret differently: every numeric field
/// parses (Python's `tarfile` stops at a header whose `mtime` does not, where the `tar` crate
/// would read on), and the ustar prefix field is only used by ustar headers (Python prepends
/// it for any header, the `tar` crate only for ustar ones). Returns the size.
fn check_header(h: &[u8; 512]) -> Result<u64, String> {
    for (name, range) in [
        ("mode", 100..108),
        ("uid", 108..116),
        ("gid", 116..124),
        ("size", 124..136),
        ("mtime", 136..148),
        ("checksum", 148..156),
        ("devmajor", 329..337),
        ("devminor", 337..345),
    ] {
        if number(&h[range.clone()]).is_none() {
            return Err(format!(
                "header field {name} is \"{}\", not an octal number",
                esc_bytes(&h[range])
            ));
        }
    }
    let ustar = &h[257..263] == b"ustar\0" && &h[263..265] == b"00";
    if !ustar && h[345] != 0 && !matches!(h[156], b'L' | b'K' | b'S') {
        return Err(
            "a non-ustar header with a ustar name prefix (readers disagree on whether it is part of the name)"
                .into(),
        );
    }
    number(&h[124..136]).ok_or_else(|| "bad size".into())
}

/// The path of a PAX local extended header's records, if any, refusing anything but
/// well-formed `"<len> <key>=<value>\n"` records that tile the data exactly, with keys from
/// [`PAX_KEYS`] each at most once.
fn pax_path(data: &[u8]) -> Result<Option<String>, String> {
    let mut path = None;
    let mut seen = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len_text = &rest[..sp];
        if len_text.is_empty()
            || len_text.len() > 6
            || !len_text.iter().all(u8::is_ascii_digit)
            || (len_text[0] == b'0')
        {
            return Err(format!("PAX record length \"{}\"", esc_bytes(len_text)));
        }
        let len: usize = std::str::from_utf8(len_text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or("PAX record length")?;
        if len > rest.len() || len < sp + 4 || rest[len - 1] != b'\n' {
            return Err(format!(
                "PAX record of length {len} does not end in a newline"
            ));
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without `=`")?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| "PAX key is not UTF-8")?;
        let value = std::str::from_utf8(&record[eq + 1..]).map_err(|_| "PAX value is not UTF-8")?;
        if !PAX_KEYS.contains(&key) {
            return Err(format!("PAX keyword {:?} is not read", esc(key)));
        }
        if seen.contains(&key) {
            return Err(format!("PAX keyword {:?} given twice", esc(key)));
        }
        seen.push(key);
        if key == "path" {
            path = Some(value.to_owned());
        }
        rest = &rest[len..];
    }
    Ok(path)
}

/// Reads the data of an extension header (GNU long name, PAX records): at most
/// [`MAX_EXTENSION`] bytes, and the padding up to the next block must be zeros (Python reads
/// the padded blocks and could see records or name bytes there).
fn extension_data<R: Read>(entry: &mut tar::Entry<'_, R>, size: u64) -> Result<Vec<u8>, String> {
    if size > MAX_EXTENSION {
        return Err(format!("an extension header of {size} bytes"));
    }
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .map_err(|e| esc(&e.to_string()).to_string())?;
    if data.len() as u64 != size {
        return Err("extension header data ends early".into());
    }
    Ok(data)
}

fn extract(tar_gz: &Path, dest_dir: &Path, limits: &Limits) -> Result<Extraction, BundleError> {
    let archive_path = tar_gz.to_path_buf();
    let refuse = |entry: &str, reason: String| BundleError::UnsafeTarEntry {
        archive: archive_path.clone(),
        entry: entry.to_owned(),
        reason,
    };
    let count = Rc::new(Cell::new(0u64));
    let tar_err = |what: &str, e: io::Error| -> BundleError {
        if e.get_ref().is_some_and(|inner| inner.is::<OverBudget>()) {
            return BundleError::Limit {
                what: format!("{}: decompressed bytes", tar_gz.display()),
                actual: count.get(),
                limit: limits.max_disk_bytes,
                kind: LimitKind::DiskBytes,
            };
        }
        BundleError::Tar {
            archive: archive_path.clone(),
            what: what.to_owned(),
            offset: count.get(),
            reason: esc(&e.to_string()).to_string(),
        }
    };
    let bad = |what: &str, reason: String| BundleError::Tar {
        archive: archive_path.clone(),
        what: what.to_owned(),
        offset: count.get(),
        reason,
    };
    let file = File::open(tar_gz).map_err(|e| BundleError::io(tar_gz, e))?;
    fs::create_dir_all(dest_dir).map_err(|e| BundleError::io(dest_dir, e))?;
    let reader = Counted {
        inner: MultiGzDecoder::new(io::BufReader::new(file)),
        count: Rc::clone(&count),
        limit: limits.max_disk_bytes,
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = Extraction {
        files: Vec::new(),
        indexes: Vec::new(),
    };
    // Per checkpoint prefix (relative path), the shard extents its index declares.
    let mut declared: HashMap<PathBuf, Vec<u64>> = HashMap::new();
    let mut written = 0u64;
    let mut skipped = 0u64;
    let mut members = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    {
        // Raw headers: GNU long names and PAX headers are read here, strictly, rather than
        // by the `tar` crate, whose rules differ from Python's in places.
        let entries = archive
            .entries()
            .map_err(|e| tar_err("the first member header", e))?
            .raw(true);
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_name: Option<Option<String>> = None;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_err("a member header", e))?;
            members += 1;
            if members > limits.max_entries {
                return Err(BundleError::Limit {
                    what: format!("{}: members", tar_gz.display()),
                    actual: members,
                    limit: limits.max_entries,
                    kind: LimitKind::Entries,
                });
            }
            let header = *entry.header().as_bytes();
            let header_name = esc_bytes(&entry.header().path_bytes());
            let size = check_header(&header).map_err(|r| refuse(&header_name, r))?;
            if size != entry.size() {
                return Err(refuse(&header_name, "size field read two ways".into()));
            }
            let typeflag = header[156];
            // Python's `tarfile` turns a `\0`-type member whose own name field ends in `/`
            // into a directory (V7 style), even when a long name or PAX path replaces that
            // name; the `tar` crate keeps it a file. Refused for every file type.
            let own = &header[..100];
            let own = &own[..own.iter().position(|&b| b == 0).unwrap_or(100)];
            if matches!(typeflag, b'0' | b'\0' | b'7') && own.ends_with(b"/") {
                return Err(refuse(
                    &header_name,
                    "a file whose name field ends in `/` (a directory to some tar readers)".into(),
                ));
            }
            match typeflag {
                b'L' => {
                    if long_name.is_some() || pax_name.is_some() {
                        return Err(refuse(
                            &header_name,
                            "two extension headers for one member".into(),
                        ));
                    }
                    let data =
                        extension_data(&mut entry, size).map_err(|r| refuse(&header_name, r))?;
                    // GNU tar writes the name and one NUL; anything else is read differently
                    // by readers that stop at the first NUL and readers that do not.
                    match data.split_last() {
                        Some((0, name)) if !name.is_empty() && !name.contains(&0) => {
                            long_name = Some(name.to_vec())
                        }
                        _ => {
                            return Err(refuse(
                                &header_name,
                                "a GNU long name that is not one NUL-terminated name".into(),
                            ))
                        }
                    }
                    continue;
                }
                b'x' => {
                    if long_name.is_some() || pax_name.is_some() {
                        return Err(refuse(
                            &header_name,
                            "two extension headers for one member".into(),
                        ));
                    }
                    let data =
                        extension_data(&mut entry, size).map_err(|r| refuse(&header_name, r))?;
                    pax_name = Some(pax_path(&data).map_err(|r| refuse(&header_name, r))?);
                    continue;
                }
                b'g' | b'X' | b'K' => {
                    return Err(refuse(
                        &header_name,
                        format!(
                            "{} headers are not read",
                            match typeflag {
                                b'g' => "PAX global",
                                b'X' => "Solaris extended",
                                _ => "GNU long link",
                            }
                        ),
                    ))
                }
                _ => {}
            }
            let raw_bytes: Vec<u8> = match (long_name.take(), pax_name.take()) {
                (Some(name), None) => name,
                (None, Some(Some(path))) => path.into_bytes(),
                (None, Some(None)) | (None, None) => entry.header().path_bytes().into_owned(),
                (Some(_), Some(_)) => unreachable!("refused above"),
            };
            let shown = esc_bytes(&raw_bytes);
            let Ok(raw_text) = std::str::from_utf8(&raw_bytes) else {
                return Err(refuse(&shown, "member name is not UTF-8".into()));
            };
            let raw = PathBuf::from(raw_text);
            let rel = relative_path(&raw).map_err(|reason| refuse(&shown, reason))?;
            let depth = rel.components().count() as u64;
            if depth > limits.max_depth {
                return Err(BundleError::Limit {
                    what: format!("{}: path depth of `{shown}`", tar_gz.display()),
                    actual: depth,
                    limit: limits.max_depth,
                    kind: LimitKind::Depth,
                });
            }
            match typeflag {
                b'5' => {
                    // Python reads no data for a directory; the `tar` crate skips `size` bytes.
                    if size != 0 {
                        return Err(refuse(
                            &shown,
                            format!("a directory with {size} bytes of data"),
                        ));
                    }
                }
                b'0' | b'\0' | b'7' => {
                    if raw_bytes.ends_with(b"/") {
                        return Err(refuse(
                            &shown,
                            "a file whose name ends in `/` (a directory to some tar readers)"
                                .into(),
                        ));
                    }
                    let name = rel
                        .file_name()
                        .map(|n| n.as_encoded_bytes().to_vec())
                        .unwrap_or_default();
                    if !wanted(&name) {
                        // Skipped: its data is read past (and counted), never written. Its
                        // size is known before, so an oversized one stops the read at once.
                        skipped = skipped.saturating_add(size);
                        if skipped > limits.max_disk_bytes / SKIPPED_SHARE {
                            return Err(BundleError::Limit {
                                what: format!(
                                    "{}: bytes of members that are not part of a checkpoint (at `{shown}`; at most 1/{SKIPPED_SHARE} of the disk budget)",
                                    tar_gz.display()
                                ),
                                actual: skipped,
                                limit: limits.max_disk_bytes / SKIPPED_SHARE,
                                kind: LimitKind::DiskBytes,
                            });
                        }
                        continue;
                    }
                    let member = rel.to_string_lossy().replace('\\', "/");
                    if written.saturating_add(size) > limits.max_disk_bytes {
                        return Err(BundleError::Limit {
                            what: format!(
                                "{}: bytes extracted (at `{}`)",
                                tar_gz.display(),
                                esc(&member)
                            ),
                            actual: written.saturating_add(size),
                            limit: limits.max_disk_bytes,
                            kind: LimitKind::DiskBytes,
                        });
                    }
                    if let Some((prefix, shard, of)) = shard_of(&rel) {
                        if let Some(extents) = declared.get(&prefix) {
                            if of as usize == extents.len() && (shard as usize) < extents.len() {
                                check_shard(tar_gz, &member, size, extents[shard as usize])?;
                            }
                        }
                    }
                    if let Some(parent) = rel.parent() {
                        make_dirs(dest_dir, parent).map_err(|reason| refuse(&shown, reason))?;
                    }
                    let target = dest_dir.join(&rel);
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&target)
                        .map_err(|e| {
                            if e.kind() == io::ErrorKind::AlreadyExists {
                                refuse(&shown, "listed twice (or over an existing path)".into())
                            } else {
                                BundleError::Extract {
                                    archive: archive_path.clone(),
                                    entry: member.clone(),
                                    error: e,
                                }
                            }
                        })?;
                    let mut left = size;
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        let n = entry
                            .read(&mut buf[..want])
                            .map_err(|e| tar_err(&format!("data of `{}`", esc(&member)), e))?;
                        if n == 0 {
                            return Err(bad(
                                &format!("data of `{}`", esc(&member)),
                                format!("ends {left} bytes early"),
                            ));
                        }
                        file.write_all(&buf[..n])
                            .map_err(|e| BundleError::Extract {
                                archive: archive_path.clone(),
                                entry: member.clone(),
                                error: e,
                            })?;
                        left -= n as u64;
                    }
                    written += size;
                    if name.ends_with(b".index") {
                        let extents = index_extents(&target, &member, limits);
                        if let Some(e) = &extents {
                            declared.insert(rel.with_extension(""), e.clone());
                        }
                        out.indexes.push(IndexFile {
                            member: member.clone(),
                            target,
                            extents,
                        });
                    }
                    out.files.push(Extracted { path: member, size });
                }
                other => {
                    return Err(refuse(
                        &shown,
                        format!(
                            "entry type {:?} is not a regular file or directory",
                            EntryType::new(other)
                        ),
                    ))
                }
            }
        }
        if long_name.is_some() || pax_name.is_some() {
            return Err(bad(
                "the end of the archive",
                "an extension header describes no member".into(),
            ));
        }
    }
    // Python's `tarfile` refuses a stream shorter than one block ("empty file").
    if count.get() < 512 {
        return Err(bad(
            "the first block",
            format!(
                "the archive is {} bytes, less than one 512-byte block",
                count.get()
            ),
        ));
    }
    // After the end-of-archive block: zero padding only, then the end of the gzip stream.
    let mut rest = archive.into_inner();
    loop {
        let n = rest
            .read(&mut buf)
            .map_err(|e| tar_err("the data after the end-of-archive block", e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(bad(
                "the data after the end-of-archive block",
                "non-zero bytes follow the end of the archive (a reader that reads on would see more members)".into(),
            ));
        }
    }
    Ok(out)
}

/// The shard extents an extracted `.index` declares, if it parses (a broken index is reported
/// when the bundle is opened).
fn index_extents(path: &Path, member: &str, limits: &Limits) -> Option<Vec<u64>> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > limits.max_metadata_bytes {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    let index = Index::parse(&bytes, Path::new(member), limits).ok()?;
    let mut extents = vec![0u64; index.num_shards as usize];
    for e in &index.entries {
        let end = e.offset.saturating_add(e.size);
        let slot = &mut extents[e.shard_id as usize];
        *slot = (*slot).max(end);
    }
    Some(extents)
}

/// `(prefix, shard, of)` for a path `<prefix>.data-<shard>-of-<of>`.
fn shard_of(rel: &Path) -> Option<(PathBuf, u32, u32)> {
    let s = rel.to_str()?;
    let (prefix, tail) = s.rsplit_once(".data-")?;
    let (shard, of) = tail.split_once("-of-")?;
    Some((PathBuf::from(prefix), shard.parse().ok()?, of.parse().ok()?))
}

/// The entry path as a plain relative path (`.` components dropped), or why it is refused.
fn relative_path(raw: &Path) -> std::result::Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("empty path".into());
    }
    Ok(out)
}

/// Creates `dest/rel` one component at a time, refusing to pass through anything that is not a
/// real directory (e.g. a symlink placed there before).
fn make_dirs(dest: &Path, rel: &Path) -> std::result::Result<(), String> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        let shown = || esc(&cur.to_string_lossy()).to_string();
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} exists and is not a directory", shown())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| format!("creating {}: {e}", shown()))?;
            }
            Err(e) => return Err(format!("{}: {e}", shown())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert!(relative_path(Path::new("a/../../b"))
            .unwrap_err()
            .contains(".."));
        assert!(relative_path(Path::new("/etc/passwd"))
            .unwrap_err()
            .contains("absolute"));
        assert!(relative_path(Path::new("./")).is_err());
    }

    #[test]
    fn only_checkpoint_members_are_wanted() {
        for yes in [
            &b"model.ckpt.index"[..],
            b"model.ckpt.data-00000-of-00001",
            b"x.data-00012-of-00100",
            b"checkpoint",
        ] {
            assert!(wanted(yes), "{}", esc_bytes(yes));
        }
        for no in [
            &b"model.ckpt.meta"[..],
            b".index",
            b"events.out.tfevents.1",
            b"model.ckpt.data-0-of-1",
            b"model.ckpt.data-00000-of-0000a",
            b"checkpoint.bak",
            b"pad.bin",
        ] {
            assert!(!wanted(no), "{}", esc_bytes(no));
        }
        assert_eq!(
            shard_of(Path::new("d/m.ckpt.data-00003-of-00012")),
            Some((PathBuf::from("d/m.ckpt"), 3, 12))
        );
    }
}
