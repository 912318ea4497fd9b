//! Verified, resumable downloads of weight files into a content-addressed cache.
//!
//! Every file that leaves this module has been hashed (sha256) and compared with what the caller
//! expects: a full sha256, or only timm's 8-hex filename prefix (then the full hash is recorded
//! in a lock file and enforced from then on). Nothing ever appears under a final name before it
//! is verified: downloads stream into `tmp/<key>.part` while being hashed, are fsynced, and only
//! then renamed into `blobs/sha256/<hex>`.
//!
//! Cache layout (version 1), rooted at `$ZOO_CACHE` or the platform cache dir (`…/zoo`):
//!
//! ```text
//! <root>/v1/blobs/sha256/<64 hex>   verified content, named by its sha256
//! <root>/v1/by-name/<file_name>     symlink (hardlink off unix) to the blob, for humans and tools
//! <root>/v1/tmp/<key>.part          partial download, resumed with `Range: bytes=<len>-`
//! <root>/v1/tmp/<key>.lock          per-file lock: one process downloads, the others wait
//! ```
//!
//! Files already present in the torch.hub cache or the Hugging Face cache are verified and
//! hardlinked (or copied) into the blob store instead of being downloaded again ([`existing`]).
pub mod cache;
pub mod download;
pub mod existing;
pub mod hash;
pub mod lock;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use cache::Cache;
pub use existing::ReuseDirs;
pub use hash::sha256_file;
pub use lock::{LockedFile, WeightsLock};

/// One weight file to fetch: where it can be downloaded from and what its bytes must hash to.
///
/// This is the fetcher's own input type; the registry converts its entries into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Name of the file as users know it (`tf_efficientnet_b0_ns-c0e6a31c.pth`); no path parts.
    pub file_name: String,
    /// Mirrors serving the same bytes, tried in order (`https://`, `http://`, `file://`).
    pub urls: Vec<String>,
    /// Expected size in bytes, when known.
    pub size: Option<u64>,
    /// Expected full sha256 (64 lowercase hex digits), when known.
    pub sha256: Option<String>,
    /// Expected leading hex digits of the sha256 (timm's 8-hex filename suffix), when only that
    /// is known.
    pub sha256_prefix: Option<String>,
}

/// Receives download progress; the CLI draws a bar from it, the library never prints.
pub trait ProgressSink: Send + Sync {
    /// A transfer starts from `url`; `already` bytes are on disk (resume), `total` is the size
    /// when the server or the spec says it.
    fn start(&self, file_name: &str, url: &str, total: Option<u64>, already: u64);
    /// `bytes` more bytes were written.
    fn advance(&self, bytes: u64);
    /// The transfer ended (successfully or not).
    fn finish(&self);
}

/// How to fetch: network policy, mirrors, timeouts, retries and where the lock file lives.
#[derive(Clone)]
pub struct FetchOptions {
    /// Never touch the network; only the cache and existing torch/HF caches are consulted.
    pub offline: bool,
    /// URL prefixes (e.g. `file:///mnt/weights/`, `http://mirror.internal/zoo/`) tried before
    /// the spec's own URLs; the file name is appended to each.
    pub mirrors: Vec<String>,
    /// Progress receiver, `None` for quiet operation.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Connect timeout, and the longest a single read may stall.
    pub timeout: Duration,
    /// Retries per URL after a connection error, a timeout or a 5xx answer.
    pub retries: u32,
    /// Delay before the first retry; doubled on each further retry (capped at 10 s).
    pub backoff: Duration,
    /// Lock file recording full sha256s learned from prefix-only specs (JSON, see [`lock`]).
    pub lock_file: Option<PathBuf>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            offline: false,
            mirrors: Vec::new(),
            progress: None,
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(250),
            lock_file: None,
        }
    }
}

impl fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchOptions")
            .field("offline", &self.offline)
            .field("mirrors", &self.mirrors)
            .field("progress", &self.progress.is_some())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("lock_file", &self.lock_file)
            .finish()
    }
}

/// Where a fetched file came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Already in zoo's cache.
    Cache,
    /// Downloaded from this URL (`http(s)://`).
    Download { url: String },
    /// Copied from a `file://` URL.
    LocalFile { path: PathBuf },
    /// Reused from the torch.hub checkpoint cache.
    TorchHub { path: PathBuf },
    /// Reused from the Hugging Face hub cache.
    HfCache { path: PathBuf },
}

/// A verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    /// The spec's file name.
    pub file_name: String,
    /// Readable path: `<root>/v1/by-name/<file_name>`, pointing at `blob`.
    pub path: PathBuf,
    /// Content-addressed path: `<root>/v1/blobs/sha256/<sha256>`.
    pub blob: PathBuf,
    /// Full sha256 of the content (lowercase hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes came from.
    pub origin: Origin,
}

/// One source (URL) that failed, kept so the final error shows every attempt.
#[derive(Debug)]
pub struct SourceFailure {
    /// The URL tried.
    pub url: String,
    /// Why it failed (after retries).
    pub error: FetchError,
}

/// Everything that can go wrong while fetching; each variant names the file/URL and evidence.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The spec itself is unusable (bad name, malformed hash).
    #[error("invalid spec for {file_name:?}: {reason}")]
    InvalidSpec {
        /// The spec's file name.
        file_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Offline, and the file is neither in the cache nor in a reusable torch/HF cache.
    #[error("{file_name}: not in the cache and offline (no request made)")]
    Offline {
        /// The missing file.
        file_name: String,
    },
    /// The spec lists no URL and no mirror applies.
    #[error("{file_name}: no URL to fetch from")]
    NoUrls {
        /// The file.
        file_name: String,
    },
    /// The content's sha256 is not the expected one (or does not start with the prefix).
    #[error("{source_name}: sha256 mismatch for {file_name}: expected {expected}, actual {actual} ({size} bytes)")]
    HashMismatch {
        /// The file.
        file_name: String,
        /// URL or path the bytes came from.
        source_name: String,
        /// Expected sha256 (or prefix).
        expected: String,
        /// Actual full sha256.
        actual: String,
        /// Size of the content that was hashed.
        size: u64,
    },
    /// The content's size is not the expected one.
    #[error(
        "{source_name}: size mismatch for {file_name}: expected {expected} bytes, actual {actual}"
    )]
    SizeMismatch {
        /// The file.
        file_name: String,
        /// URL or path the bytes came from.
        source_name: String,
        /// Expected size.
        expected: u64,
        /// Actual (or announced) size.
        actual: u64,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}")]
    Http {
        /// The URL.
        url: String,
        /// HTTP status code.
        status: u16,
    },
    /// Connecting, sending or reading failed (including timeouts and dropped connections).
    #[error("{url}: {message}")]
    Network {
        /// The URL.
        url: String,
        /// The error chain, flattened.
        message: String,
        /// Whether the read stalled past the timeout.
        timed_out: bool,
    },
    /// The server's answer breaks the protocol (e.g. a 206 for a range we did not ask for).
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The URL scheme is not `http`, `https` or `file`.
    #[error("{url}: unsupported URL (expected http://, https:// or file://)")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// Every URL failed; each failure is listed.
    #[error("{file_name}: every source failed:{}", list_failures(failures))]
    AllSourcesFailed {
        /// The file.
        file_name: String,
        /// One entry per URL, in the order tried.
        failures: Vec<SourceFailure>,
    },
    /// The file is not in the cache (for [`Cache::verify`]).
    #[error("{file_name}: not in the cache")]
    NotCached {
        /// The file.
        file_name: String,
    },
    /// The lock file cannot be read or written, or contradicts the spec.
    #[error("lock file {}: {reason}", path.display())]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn list_failures(failures: &[SourceFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("\n  - {}", f.error))
        .collect::<String>()
}

impl FetchError {
    /// True when the bytes were obtained but did not verify (hash or size mismatch, or a lock
    /// file contradicting the spec): the CLI exits 1 for these, 2 for everything else.
    pub fn is_verification_failure(&self) -> bool {
        match self {
            FetchError::HashMismatch { .. } | FetchError::SizeMismatch { .. } => true,
            FetchError::AllSourcesFailed { failures, .. } => {
                failures.iter().any(|f| f.error.is_verification_failure())
            }
            _ => false,
        }
    }

    /// True for failures worth retrying on the same URL: connection errors, timeouts, dropped
    /// connections, 5xx, 408 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FetchError::Io {
            path: path.into(),
            source,
        }
    }
}

/// What the fetched bytes must match, after merging the spec with the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// The full sha256.
    Full(String),
    /// Only leading hex digits.
    Prefix(String),
    /// Nothing known: trust on first use, then pin in the lock file.
    Unknown,
}

impl Expected {
    /// Whether `actual` (full lowercase hex) satisfies this expectation.
    pub(crate) fn matches(&self, actual: &str) -> bool {
        match self {
            Expected::Full(h) => h == actual,
            Expected::Prefix(p) => actual.starts_with(p.as_str()),
            Expected::Unknown => true,
        }
    }

    /// The expected value for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Expected::Full(h) => h.clone(),
            Expected::Prefix(p) => format!("{p}…"),
            Expected::Unknown => "(anything)".to_string(),
        }
    }
}

/// Checks that `value` is lowercase hex of the given length range; returns it lowercased.
pub(crate) fn check_hex(
    file_name: &str,
    what: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, FetchError> {
    let lower = value.trim().to_ascii_lowercase();
    let ok = (min..=max).contains(&lower.len()) && lower.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(lower)
    } else {
        Err(FetchError::InvalidSpec {
            file_name: file_name.to_string(),
            reason: format!("{what} {value:?} is not {min}..={max} hex digits"),
        })
    }
}

/// Checks that a file name is a single path component usable under `by-name/`
/// ([`crate::fsutil::check_component`]).
pub(crate) fn check_file_name(file_name: &str) -> Result<(), FetchError> {
    crate::fsutil::check_component(file_name).map_err(|e| FetchError::InvalidSpec {
        file_name: file_name.to_string(),
        reason: format!(
            "file name must be a single, non-hidden path component: {}",
            e.reason
        ),
    })
}
