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
//! decompressed (skipped members included). A data shard may not be larger than the extent its
//! checkpoint's index declares for it (+ 1 MiB): checked before writing when the index came
//! first in the archive, after extraction otherwise. Errors name the tarball and the member,
//! never only the scratch directory.
//!
//! PAX and GNU long-name headers are applied by the `tar` crate; global PAX headers are skipped.
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
    let mut members = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    {
        let entries = archive
            .entries()
            .map_err(|e| tar_err("the first member header", e))?;
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
            let kind = entry.header().entry_type();
            if kind == EntryType::XGlobalHeader {
                continue;
            }
            let raw_bytes = entry.path_bytes().into_owned();
            let shown = esc_bytes(&raw_bytes);
            let raw = entry
                .path()
                .map_err(|e| tar_err("a member path", e))?
                .into_owned();
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
            match kind {
                EntryType::Directory => {}
                EntryType::Regular | EntryType::Continuous => {
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
                        // Skipped: its data is read past (and counted), never written.
                        continue;
                    }
                    let size = entry.size();
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
                            return Err(BundleError::Tar {
                                archive: archive_path.clone(),
                                what: format!("data of `{}`", esc(&member)),
                                offset: count.get(),
                                reason: format!("ends {left} bytes early"),
                            });
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
                        format!("entry type {other:?} is not a regular file or directory"),
                    ))
                }
            }
        }
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
            return Err(BundleError::Tar {
                archive: archive_path.clone(),
                what: "the data after the end-of-archive block".into(),
                offset: count.get(),
                reason: "non-zero bytes follow the end of the archive (a reader that reads on would see more members)".into(),
            });
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
