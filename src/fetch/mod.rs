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
//!
//! Nothing a server or a URL says is trusted to stay in bounds: a transfer never writes more
//! than the expected size, or [`FetchOptions::max_size`] when no size is known; a fetch can be
//! given an overall [`FetchOptions::deadline`]; and credentials in URLs
//! (`https://user:password@host/…`) never appear in an error, a JSON report or progress output
//! ([`redact_url`]).
pub mod cache;
pub mod download;
pub mod existing;
pub mod hash;
pub mod lock;

use std::borrow::Cow;
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

/// Default [`FetchOptions::max_size`]: 16 GiB, several times the largest registry file.
pub const DEFAULT_MAX_SIZE: u64 = 16 << 30;

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
    /// Connect timeout, and the longest a single read may stall (not a limit on the whole
    /// transfer: a slow but moving download may take longer; see `deadline`).
    pub timeout: Duration,
    /// The most bytes a file of unknown size may have ([`DEFAULT_MAX_SIZE`] by default). A
    /// known size (the spec's, or the lock file's) bounds the transfer instead.
    pub max_size: u64,
    /// How long one fetch may take in all (every mirror, retry and read), if bounded.
    pub deadline: Option<Duration>,
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
            max_size: DEFAULT_MAX_SIZE,
            deadline: None,
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
            .field(
                "mirrors",
                &self
                    .mirrors
                    .iter()
                    .map(|m| redact_url(m))
                    .collect::<Vec<_>>(),
            )
            .field("progress", &self.progress.is_some())
            .field("timeout", &self.timeout)
            .field("max_size", &self.max_size)
            .field("deadline", &self.deadline)
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
    /// The server redirected somewhere zoo does not follow (another scheme, e.g. `file://`, or
    /// too many hops).
    #[error("{url}: HTTP {status} redirect to {}, not followed (only http(s) redirects are)", .location.as_deref().unwrap_or("nowhere (no Location header)"))]
    Redirect {
        /// The URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Where it pointed (credentials redacted).
        location: Option<String>,
    },
    /// The content is larger than it may be: its expected size, or the maximum for a file of
    /// unknown size. Nothing past the bound was written, and the partial file was removed.
    #[error("{source_name}: {file_name} is larger than {}{}", limit_text(*.limit, *.expected), .size.map(|s| format!(" (it announced {s} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The file.
        file_name: String,
        /// URL or path the bytes came from.
        source_name: String,
        /// The bound.
        limit: u64,
        /// The size the source announced or has, when known.
        size: Option<u64>,
        /// Whether the bound is the expected size (else it is the maximum for unknown sizes).
        expected: bool,
    },
    /// The fetch ran past its deadline (`--deadline`); a partial download is kept for resuming.
    #[error("{url}: not finished within the {}s deadline (partial download kept for resuming)", .after.as_secs_f64())]
    Deadline {
        /// The URL.
        url: String,
        /// The deadline it was given.
        after: Duration,
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

fn limit_text(limit: u64, expected: bool) -> String {
    if expected {
        format!("its expected size of {limit} bytes")
    } else {
        format!(
            "{limit} bytes, the most accepted for a file of unknown size (give its size, or a \
             larger --max-size)"
        )
    }
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
            FetchError::TooLarge { expected, .. } => *expected,
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

    /// The same error with credentials removed from every URL in it ([`redact_url`]), so it
    /// can be printed, logged or serialised.
    pub fn redacted(self) -> Self {
        let r = |s: String| redact_url(&s).into_owned();
        match self {
            FetchError::InvalidSpec { file_name, reason } => FetchError::InvalidSpec {
                file_name,
                reason: r(reason),
            },
            FetchError::HashMismatch {
                file_name,
                source_name,
                expected,
                actual,
                size,
            } => FetchError::HashMismatch {
                file_name,
                source_name: r(source_name),
                expected,
                actual,
                size,
            },
            FetchError::SizeMismatch {
                file_name,
                source_name,
                expected,
                actual,
            } => FetchError::SizeMismatch {
                file_name,
                source_name: r(source_name),
                expected,
                actual,
            },
            FetchError::Http { url, status } => FetchError::Http {
                url: r(url),
                status,
            },
            FetchError::Redirect {
                url,
                status,
                location,
            } => FetchError::Redirect {
                url: r(url),
                status,
                location: location.map(r),
            },
            FetchError::TooLarge {
                file_name,
                source_name,
                limit,
                size,
                expected,
            } => FetchError::TooLarge {
                file_name,
                source_name: r(source_name),
                limit,
                size,
                expected,
            },
            FetchError::Deadline { url, after } => FetchError::Deadline { url: r(url), after },
            FetchError::Network {
                url,
                message,
                timed_out,
            } => FetchError::Network {
                url: r(url),
                message: r(message),
                timed_out,
            },
            FetchError::Protocol { url, reason } => FetchError::Protocol {
                url: r(url),
                reason: r(reason),
            },
            FetchError::UnsupportedUrl { url } => FetchError::UnsupportedUrl { url: r(url) },
            FetchError::AllSourcesFailed {
                file_name,
                failures,
            } => FetchError::AllSourcesFailed {
                file_name,
                failures: failures
                    .into_iter()
                    .map(|f| SourceFailure {
                        url: r(f.url),
                        error: f.error.redacted(),
                    })
                    .collect(),
            },
            other @ (FetchError::Io { .. }
            | FetchError::Offline { .. }
            | FetchError::NoUrls { .. }
            | FetchError::NotCached { .. }
            | FetchError::LockFile { .. }) => other,
        }
    }
}

/// `text` with the credentials of every URL in it replaced by `***`:
/// `https://user:secret@host/x` → `https://***@host/x`. Text without `://` comes back
/// unchanged (borrowed).
///
/// A URL ends at whitespace, a quote, `<`, `>`, `(`, `)` or a backtick. Its userinfo is what comes
/// before the last
/// `@` ahead of the first `/`, `?` or `#`; a password holding `/` (not a valid URL, but still a
/// secret) is caught too when the text before that `/` is `user:password` rather than
/// `host:port`.
pub fn redact_url(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let after = i + 3;
        out.push_str(&rest[..after]);
        let tail = &rest[after..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'<>()`".contains(c))
            .unwrap_or(tail.len());
        let token = &tail[..end];
        let path = token.find(['/', '?', '#']).unwrap_or(token.len());
        let userinfo_end = token[..path].rfind('@').or_else(|| {
            // `user:pa/ss@host`: the part before the first `/` is `user:pa`, not `host:port`.
            let before = &token[..path];
            let looks_like_password = before
                .split_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()));
            looks_like_password.then(|| token.rfind('@')).flatten()
        });
        match userinfo_end {
            Some(at) => {
                out.push_str("***");
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        let cases = [
            (
                "http://alice:S3cretPassw0rd@127.0.0.1:18080/x.bin",
                "http://***@127.0.0.1:18080/x.bin",
            ),
            ("https://token@host/a@b", "https://***@host/a@b"),
            (
                "error sending request for url (http://u:p@h:1/f): connection refused",
                "error sending request for url (http://***@h:1/f): connection refused",
            ),
            ("http://a:b/c@host/x", "http://***@host/x"),
            ("http://host:8080/a@b", "http://host:8080/a@b"),
            ("http://host/path", "http://host/path"),
            (
                "two: http://x:y@a/ and https://p:q@b/",
                "two: http://***@a/ and https://***@b/",
            ),
            ("no url here", "no url here"),
            ("http://u:p@[::1]:80/", "http://***@[::1]:80/"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_url(text), want, "{text}");
        }
    }

    #[test]
    fn redacted_errors_hold_no_credentials() {
        let err = FetchError::AllSourcesFailed {
            file_name: "f".into(),
            failures: vec![SourceFailure {
                url: "http://alice:pw@h/f".into(),
                error: FetchError::Network {
                    url: "http://alice:pw@h/f".into(),
                    message: "for url (http://alice:pw@h/f)".into(),
                    timed_out: false,
                },
            }],
        }
        .redacted();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("pw"), "{text}");
        assert!(text.contains("http://***@h/f"), "{text}");
    }
}
