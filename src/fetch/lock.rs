//! The weights lock file: full sha256s learned for files whose spec carries no full hash (like
//! `Cargo.lock`, but for weights). A file whose spec has only timm's 8-hex prefix gets the full
//! hash of the file that matched the prefix; a file with no hash at all gets the hash of the
//! first file seen (trust on first use). Once a hash is recorded here, later fetches enforce it.
//!
//! Pins are keyed by the file's source key ([`FileSpec::source_key`](super::FileSpec::source_key):
//! its URL), never by its bare name, so two models' `model.safetensors` have two pins.
//!
//! Format (JSON, two-space indent, trailing newline; pins sorted by key, fields in a fixed
//! order, so the bytes are stable):
//!
//! ```json
//! {
//!   "version": 2,
//!   "pins": {
//!     "https://huggingface.co/timm/tf_efficientnet_b0.ns_jft_in1k/resolve/main/model.safetensors": {
//!       "file": "model.safetensors",
//!       "model": "tf_efficientnet_b0_ns",
//!       "role": "hf-safetensors",
//!       "sha256": "…",
//!       "size": 21383997
//!     }
//!   }
//! }
//! ```
//!
//! Version 1 (zoo before issue 13) keyed pins by file name. Such a file is read as holding no
//! pins (its entries cannot be told apart), and the next pin rewrites it as version 2.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FetchError;

/// The lock-file version this code writes (and, with pins, reads).
pub const LOCK_VERSION: u32 = 2;

/// The version keyed by bare file name: recognised, never read for pins.
const LEGACY_VERSION: u32 = 1;

/// A source's pinned content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// The file's name (for humans; not part of the key).
    pub file: String,
    /// The registry model, when the file comes from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The registry role, when the file comes from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Full sha256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The parsed lock file: source key → pinned content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsLock {
    /// Format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// Pinned sources, sorted by key.
    pub pins: BTreeMap<String, LockedFile>,
    /// File names of a version-1 lock's entries, which were not read.
    #[serde(skip)]
    pub ignored_v1: Vec<String>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

#[derive(Deserialize)]
struct LegacyLock {
    #[serde(default)]
    files: BTreeMap<String, serde_json::Value>,
}

impl WeightsLock {
    fn empty() -> Self {
        WeightsLock {
            version: LOCK_VERSION,
            ..WeightsLock::default()
        }
    }

    /// Reads the lock file; a missing file is an empty lock, and so is a version-1 file (whose
    /// ignored entries are listed in [`WeightsLock::ignored_v1`]).
    pub fn read(path: &Path) -> Result<Self, FetchError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(e) => return Err(FetchError::io(path, e)),
        };
        let invalid = |e: serde_json::Error| FetchError::LockFile {
            path: path.to_path_buf(),
            reason: format!("not valid lock JSON: {e}"),
        };
        let version = serde_json::from_str::<VersionOnly>(&text)
            .map_err(invalid)?
            .version;
        match version {
            LOCK_VERSION => serde_json::from_str(&text).map_err(invalid),
            LEGACY_VERSION => {
                let legacy: LegacyLock = serde_json::from_str(&text).map_err(invalid)?;
                Ok(WeightsLock {
                    ignored_v1: legacy.files.into_keys().collect(),
                    ..Self::empty()
                })
            }
            other => Err(FetchError::LockFile {
                path: path.to_path_buf(),
                reason: format!("version {other} (this zoo reads {LOCK_VERSION})"),
            }),
        }
    }

    /// Pins `key` to `entry` in the lock file at `path` (read, modify, atomic rewrite).
    ///
    /// The caller serialises concurrent writers (the cache holds a lock while calling this).
    pub fn record(path: &Path, key: &str, entry: LockedFile) -> Result<(), FetchError> {
        let mut lock = Self::read(path)?;
        if lock.pins.get(key) == Some(&entry) && lock.ignored_v1.is_empty() {
            return Ok(());
        }
        lock.pins.insert(key.to_string(), entry);
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

    fn pin(file: &str, byte: &str, size: u64) -> LockedFile {
        LockedFile {
            file: file.to_string(),
            model: None,
            role: None,
            sha256: byte.repeat(32),
            size,
        }
    }

    #[test]
    fn record_is_sorted_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.lock");
        let b = pin("model.safetensors", "bb", 2);
        let a = pin("model.safetensors", "aa", 1);
        WeightsLock::record(&path, "https://h/b/model.safetensors", b.clone()).unwrap();
        WeightsLock::record(&path, "https://h/a/model.safetensors", a.clone()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("h/a/").unwrap() < text.find("h/b/").unwrap());
        assert!(text.ends_with("}\n"));
        let lock = WeightsLock::read(&path).unwrap();
        assert_eq!(lock.pins.get("https://h/a/model.safetensors"), Some(&a));
        assert_eq!(lock.pins.get("https://h/b/model.safetensors"), Some(&b));
        // Re-recording the same entry leaves the bytes unchanged.
        WeightsLock::record(&path, "https://h/a/model.safetensors", a).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn rejects_unknown_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.lock");
        std::fs::write(&path, r#"{"version": 9, "pins": {}}"#).unwrap();
        let err = WeightsLock::read(&path).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    #[test]
    fn a_version_1_lock_keyed_by_file_name_is_read_as_no_pins_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.lock");
        let v1 = format!(
            r#"{{"version": 1, "files": {{"model.safetensors": {{"sha256": "{}", "size": 3}}}}}}"#,
            "cc".repeat(32)
        );
        std::fs::write(&path, v1).unwrap();
        let lock = WeightsLock::read(&path).unwrap();
        assert!(lock.pins.is_empty());
        assert_eq!(lock.ignored_v1, ["model.safetensors"]);
        let a = pin("model.safetensors", "aa", 1);
        WeightsLock::record(&path, "https://h/a/model.safetensors", a.clone()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"version\": 2") && !text.contains("cccc"),
            "{text}"
        );
        let lock = WeightsLock::read(&path).unwrap();
        assert_eq!(lock.pins.len(), 1);
        assert!(lock.ignored_v1.is_empty());
    }
}
