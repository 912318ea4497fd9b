//! Safe extraction of a release tarball (`.tar.gz`) that holds a checkpoint, such as
//! `noisy_student_efficientnet-b0.tar.gz` (`<dir>/model.ckpt.index`, `<dir>/model.ckpt.data-…`,
//! `<dir>/checkpoint`, `<dir>/model.ckpt.meta`).
//!
//! Only directories and regular files are extracted, each strictly below `dest_dir`:
//! - entry paths must be relative and may not contain `..` (or a root or drive prefix);
//! - symlinks, hard links, devices and FIFOs are refused outright (a checkpoint never needs them,
//!   and refusing them all is simpler to trust than checking where each one points);
//! - a directory on the way that already exists must be a real directory, not a symlink;
//! - files are created with `create_new`, so an existing file (or symlink) is never written
//!   through or overwritten, and a tarball that lists a file twice is refused;
//! - modes, owners and times from the archive are ignored;
//! - the number of entries and each file's size are bounded by [`Limits`].
//!
//! PAX and GNU long-name headers are applied by the `tar` crate; global PAX headers are skipped.
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

use super::BundleError;
use crate::{Limits, Result};

/// Extracts `tar_gz` into `dest_dir` (created if missing) and returns the prefix of the one
/// checkpoint inside (`dest_dir/<dir>/model.ckpt` for `<dir>/model.ckpt.index`).
pub fn unpack_tarball(tar_gz: &Path, dest_dir: &Path) -> Result<PathBuf> {
    Ok(unpack(tar_gz, dest_dir, &Limits::default())?)
}

fn unpack(tar_gz: &Path, dest_dir: &Path, limits: &Limits) -> Result<PathBuf, BundleError> {
    let archive_path = tar_gz.to_path_buf();
    let refuse = |entry: &Path, reason: String| BundleError::UnsafeTarEntry {
        archive: archive_path.clone(),
        entry: entry.display().to_string(),
        reason,
    };
    let io_err = |e: io::Error| BundleError::io(tar_gz, e);
    let file = File::open(tar_gz).map_err(io_err)?;
    fs::create_dir_all(dest_dir).map_err(|e| BundleError::io(dest_dir, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let mut indexes = Vec::new();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        count += 1;
        if count > limits.max_tensors {
            return Err(BundleError::Limit {
                what: format!("{}: tarball entries", tar_gz.display()),
                actual: count,
                limit: limits.max_tensors,
            });
        }
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let raw = entry.path().map_err(io_err)?.into_owned();
        let rel = relative_path(&raw).map_err(|reason| refuse(&raw, reason))?;
        let target = dest_dir.join(&rel);
        match kind {
            EntryType::Directory => {
                make_dirs(dest_dir, &rel).map_err(|reason| refuse(&raw, reason))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.header().size().map_err(io_err)?;
                if size > limits.max_tensor_bytes {
                    return Err(BundleError::Limit {
                        what: format!("{}: size of `{}`", tar_gz.display(), raw.display()),
                        actual: size,
                        limit: limits.max_tensor_bytes,
                    });
                }
                if let Some(parent) = rel.parent() {
                    make_dirs(dest_dir, parent).map_err(|reason| refuse(&raw, reason))?;
                }
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            refuse(&raw, format!("{} already exists", target.display()))
                        } else {
                            BundleError::io(&target, e)
                        }
                    })?;
                io::copy(&mut entry, &mut out).map_err(|e| BundleError::io(&target, e))?;
                if rel.extension().is_some_and(|e| e == "index") {
                    indexes.push(target);
                }
            }
            other => {
                return Err(refuse(
                    &raw,
                    format!("entry type {other:?} is not a regular file or directory"),
                ))
            }
        }
    }
    match indexes.as_slice() {
        [one] => Ok(one.with_extension("")),
        _ => Err(BundleError::CheckpointNotFound {
            archive: tar_gz.to_path_buf(),
            found: indexes.iter().map(|p| p.display().to_string()).collect(),
        }),
    }
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
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} exists and is not a directory", cur.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| format!("creating {}: {e}", cur.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", cur.display())),
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
}
