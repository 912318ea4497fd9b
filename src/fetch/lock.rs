//! The weights lock file: full sha256s learned for files whose registry entry only carries
//! timm's 8-hex prefix (like `Cargo.lock`, but for weights). Once a hash is recorded here,
//! later fetches enforce it.
//!
//! Format (JSON, keys sorted, two-space indent, trailing newline, so the bytes are stable):
//!
//! ```json
//! {
//!   "version": 1,
//!   "files": {
//!     "tf_efficientnet_b0_ns-c0e6a31c.pth": { "sha256": "c0e6a31c…", "size": 21383997 }
//!   }
//! }
//! ```
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FetchError;

/// The only lock-file version this code reads and writes.
pub const LOCK_VERSION: u32 = 1;

/// A file's pinned content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// Full sha256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The parsed lock file: file name → pinned content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsLock {
    /// Format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// Pinned files, sorted by name.
    pub files: BTreeMap<String, LockedFile>,
}

impl WeightsLock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<Self, FetchError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WeightsLock {
                    version: LOCK_VERSION,
                    files: BTreeMap::new(),
                })
            }
            Err(e) => return Err(FetchError::io(path, e)),
        };
        let lock: WeightsLock = serde_json::from_str(&text).map_err(|e| FetchError::LockFile {
            path: path.to_path_buf(),
            reason: format!("not valid lock JSON: {e}"),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(FetchError::LockFile {
                path: path.to_path_buf(),
                reason: format!("version {} (this zoo reads {LOCK_VERSION})", lock.version),
            });
        }
        Ok(lock)
    }

    /// Pins `file_name` to `entry` in the lock file at `path` (read, modify, atomic rewrite).
    ///
    /// The caller serialises concurrent writers (the cache holds a lock while calling this).
    pub fn record(path: &Path, file_name: &str, entry: LockedFile) -> Result<(), FetchError> {
        let mut lock = Self::read(path)?;
        if lock.files.get(file_name) == Some(&entry) {
            return Ok(());
        }
        lock.files.insert(file_name.to_string(), entry);
        lock.write(path)
    }

    /// Writes the lock file atomically (temp file in the same directory, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), FetchError> {
        let parent: PathBuf = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| FetchError::io(&parent, e))?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| FetchError::LockFile {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
        text.push('\n');
        // Readable by others (0644 under umask 022): the lock file is committed beside the registry.
        let mut tmp =
            crate::fsutil::shared_temp_file(&parent).map_err(|e| FetchError::io(&parent, e))?;
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| FetchError::io(tmp.path(), e))?;
        tmp.persist(path)
            .map_err(|e| FetchError::io(path, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_sorted_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.lock");
        let b = LockedFile {
            sha256: "bb".repeat(32),
            size: 2,
        };
        let a = LockedFile {
            sha256: "aa".repeat(32),
            size: 1,
        };
        WeightsLock::record(&path, "b.pth", b.clone()).unwrap();
        WeightsLock::record(&path, "a.pth", a.clone()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("a.pth").unwrap() < text.find("b.pth").unwrap());
        assert!(text.ends_with("}\n"));
        let lock = WeightsLock::read(&path).unwrap();
        assert_eq!(lock.files.get("a.pth"), Some(&a));
        assert_eq!(lock.files.get("b.pth"), Some(&b));
        // Re-recording the same entry leaves the bytes unchanged.
        WeightsLock::record(&path, "a.pth", a).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn rejects_unknown_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.lock");
        std::fs::write(&path, r#"{"version": 9, "files": {}}"#).unwrap();
        let err = WeightsLock::read(&path).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
