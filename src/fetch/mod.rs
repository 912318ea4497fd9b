//! Verified, resumable downloads of weight files into a content-addressed cache.
//!
//! Every file that leaves this module has been hashed (sha256) and compared with what the caller
//! expects, and says what it was compared with ([`Proof`]): a full sha256 from the spec, a sha256
//! prefix from the spec (timm's 8-hex file-name suffix; the full hash of the file that matched is
//! then pinned in the lock file), or nothing (trust on first use: the full hash is pinned and
//! enforced from then on, but nothing vouches for the first file). Nothing ever appears under a
//! final name before it is verified: downloads stream into `tmp/<key>.part` while being hashed,
//! are fsynced, and only then renamed into `blobs/sha256/<hex>`.
//!
//! A file is identified by its source, never by its bare name: many files are called
//! `model.safetensors`. The source key ([`FileSpec::source_key`]) is the spec's first URL, else the
//! registry model and role, else the full sha256. Lookups of files whose full hash is not known
//! in advance and lock-file pins go through that key.
//!
//! Cache layout (version 2), rooted at `$ZOO_CACHE` or the platform cache dir (`…/zoo`):
//!
//! ```text
//! <root>/v2/blobs/sha256/<64 hex>                 verified content, named by its sha256
//! <root>/v2/sources/<host>-<32 hex>/<file_name>   symlink (hardlink off unix) to the blob; the
//!                                                 directory is sha256(source key); a file put
//!                                                 here by hand is verified and taken in
//! <root>/v2/sources/<host>-<32 hex>/.source.json  {key, file, sha256, size}: the lookup record
//! <root>/v2/tmp/<key>.part                        partial download, resumed with `Range: bytes=<len>-`
//! <root>/v2/tmp/<key>.lock                        per-file lock: one process downloads, the others wait
//! <root>/v2/weights.lock                          pins for the embedded registry ([`lock`])
//! ```
//!
//! The version-1 layout (`<root>/v1/`, zoo before issue 13) named files by their bare name
//! (`by-name/<file_name>`, and a lock keyed by file name), which cannot tell two
//! `model.safetensors` apart. Its names and its lock are never read. Its blobs are
//! content-addressed, so they are taken over (re-hashed first) when a spec's full sha256 or
//! sha256 prefix names them.
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use cache::Cache;
pub use existing::ReuseDirs;
pub use hash::sha256_file;
pub use lock::{LockedFile, WeightsLock};

/// The registry entry a file belongs to: model and role (`hf-safetensors`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistryFile {
    /// The model's canonical name.
    pub model: String,
    /// The file's role, as the registry spells it.
    pub role: String,
}

/// One weight file to fetch: where it can be downloaded from and what its bytes must hash to.
///
/// This is the fetcher's own input type; the registry converts its entries into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The registry model and role, when the file comes from the registry.
    pub entry: Option<RegistryFile>,
    /// No other file the caller knows of (the registry's) has this file name, so a mirror may
    /// also serve it flat, as `<prefix>/<file_name>` ([`FetchOptions::mirrors`]).
    pub unique_name: bool,
}

impl FileSpec {
    /// What identifies this file in the cache's lookup records and in the lock file: the first
    /// URL; without one, the registry model and role; without those, the full sha256. `None`
    /// when nothing but the file name is known (a name is never an identity).
    pub fn source_key(&self) -> Option<String> {
        if let Some(url) = self.urls.first() {
            return Some(url.clone());
        }
        if let Some(e) = &self.entry {
            return Some(format!("zoo-registry:{}/{}", e.model, e.role));
        }
        self.sha256
            .as_ref()
            .map(|h| format!("sha256:{}", h.trim().to_ascii_lowercase()))
    }

    /// `model (role)` or the file name, for messages.
    pub fn describe(&self) -> String {
        match &self.entry {
            Some(e) => format!("{} of {} ({})", self.file_name, e.model, e.role),
            None => self.file_name.clone(),
        }
    }
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

/// Fewest hex digits a `Sha256 Prefix` may have: timm's file-name suffix has 8 (32 bits).
pub const MIN_SHA256_PREFIX: usize = 8;

/// How to fetch: network policy, mirrors, timeouts, retries and where the lock file lives.
#[derive(Clone)]
pub struct FetchOptions {
    /// Never touch the network; only the cache, existing torch/HF caches and `file://` URLs
    /// (a `file:///DIR/` mirror) are consulted.
    pub offline: bool,
    /// URL prefixes (e.g. `file:///mnt/weights/`, `http://mirror.internal/zoo/`) tried before
    /// the spec's own URLs. A mirror holds each file where `wget -m` puts it:
    /// `<prefix>/<host>[:<port>]/<path of the URL>` for each of the spec's http(s) URLs (no
    /// query). The flat `<prefix>/<file_name>` is tried after that only where a file name
    /// cannot be mistaken for another file's: the spec says so ([`FileSpec::unique_name`]),
    /// or its full sha256 rejects any other file. So two `model.safetensors` never collide.
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
    /// Put into the cache by hand, at the file's source path ([`Cache::source_path`]).
    Placed { path: PathBuf },
    /// Taken over from the version-1 cache layout's blob store.
    LegacyCache { path: PathBuf },
}

/// What a fetched file's bytes were proven against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proof {
    /// The full sha256 the spec gives (for registry files: a registry fact).
    Sha256,
    /// The sha256 prefix the spec gives; the full hash of the file that matched it is pinned in
    /// `lock` (absent when no lock file was given).
    Sha256Prefix {
        /// The prefix.
        prefix: String,
        /// The lock file holding the full hash.
        lock: Option<PathBuf>,
    },
    /// Nothing in the spec: the file was trusted on first use and its hash pinned in `lock`
    /// (absent when no lock file was given); later fetches must match the pin, but nothing
    /// vouches for the first file.
    FirstUse {
        /// The lock file holding the pin.
        lock: Option<PathBuf>,
    },
}

impl Proof {
    /// True when a hash from the spec vouches for the bytes (full, or a prefix).
    pub fn is_from_spec(&self) -> bool {
        !matches!(self, Proof::FirstUse { .. })
    }
}

/// A verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    /// The spec's file name.
    pub file_name: String,
    /// Readable path: `<root>/v2/sources/<dir>/<file_name>`, pointing at `blob`.
    pub path: PathBuf,
    /// Content-addressed path: `<root>/v2/blobs/sha256/<sha256>`.
    pub blob: PathBuf,
    /// Full sha256 of the content (lowercase hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes came from.
    pub origin: Origin,
    /// What the bytes were proven against.
    pub proof: Proof,
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
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error (in the message, so not also a `source`: it would print twice).
        error: std::io::Error,
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
    #[error("{file_name}: not in the cache, and offline (no request made)")]
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
    /// The bytes do not match the hash pinned for this source in the lock file (trust on first
    /// use, or learned from a prefix): either the file changed upstream or the pin is wrong.
    #[error("{0}")]
    PinMismatch(Box<PinMismatch>),
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

/// How to re-pin a source whose pin is wrong or outdated.
pub(crate) fn repin_advice(lock: &Path, key: &str, entry: Option<&RegistryFile>) -> String {
    let mut advice = format!(
        "if the new file is the right one, delete the entry \"{key}\" from {} and fetch again",
        lock.display()
    );
    if let Some(e) = entry {
        advice.push_str(&format!(
            " (`zoo fetch {} --role {}` then pins the new file; add `--record` to write its \
             sha256 into the registry)",
            e.model, e.role
        ));
    }
    advice
}

/// Bytes that contradict a lock-file pin: the evidence, and how to re-pin.
#[derive(Debug)]
pub struct PinMismatch {
    /// The file.
    pub file_name: String,
    /// URL or path the bytes came from.
    pub source_name: String,
    /// The lock file.
    pub lock: PathBuf,
    /// The pin's key in the lock file (the source key).
    pub key: String,
    /// Pinned sha256.
    pub pinned: String,
    /// Pinned size.
    pub pinned_size: u64,
    /// Actual sha256, when the bytes were hashed (a size announced too large is rejected
    /// before).
    pub actual: Option<String>,
    /// Actual (or announced) size.
    pub actual_size: u64,
    /// The registry model and role, when known (for the re-pin command).
    pub entry: Option<RegistryFile>,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let got = match &self.actual {
            Some(h) => format!("sha256 {h} ({} bytes)", self.actual_size),
            None => format!("{} bytes", self.actual_size),
        };
        write!(
            f,
            "{}: {} does not match the hash pinned for it in {}: pinned sha256 {} ({} bytes), \
             got {got}; {}",
            self.source_name,
            self.file_name,
            self.lock.display(),
            self.pinned,
            self.pinned_size,
            repin_advice(&self.lock, &self.key, self.entry.as_ref())
        )
    }
}

fn limit_text(limit: u64, expected: bool) -> String {
    if expected {
        format!("its expected size of {limit} bytes")
    } else {
        format!(
            "{limit} bytes, the most accepted for a file of unknown size (give its size in the \
             registry, or fetch it with `zoo fetch --max-size BYTES`)"
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
            FetchError::HashMismatch { .. }
            | FetchError::SizeMismatch { .. }
            | FetchError::PinMismatch(_) => true,
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

    /// One line per cause: `url: cause` for each source that failed, else the error itself.
    pub fn causes(&self) -> Vec<String> {
        match self {
            FetchError::AllSourcesFailed { failures, .. } => {
                failures.iter().map(|f| f.error.to_string()).collect()
            }
            other => vec![other.to_string()],
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        FetchError::Io {
            path: path.into(),
            error,
        }
    }

    /// The same error with credentials removed from every URL in it ([`redact_url`]), so it
    /// can be printed, logged or serialised.
    pub fn redacted(self) -> Self {
        let r = |s: String| redact_url(&s).into_owned();
        match self {
            FetchError::PinMismatch(mut p) => {
                p.source_name = r(p.source_name);
                FetchError::PinMismatch(p)
            }
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
/// `https://user:secret@host/x` → `https://***@host/x`, and every query value too (signed URLs
/// carry their tokens there): `https://host/x?token=abc&X-Amz-Signature=f0` →
/// `https://host/x?token=***&X-Amz-Signature=***`. Text without `://` comes back unchanged
/// (borrowed).
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
        let token = match userinfo_end {
            Some(at) => {
                out.push_str("***");
                &token[at..]
            }
            None => token,
        };
        redact_query(token, &mut out);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends `token` (a URL without its scheme and credentials) with each query value replaced by
/// `***` (`k=v` → `k=***`, a bare `v` → `***`); the fragment is kept.
fn redact_query(token: &str, out: &mut String) {
    let Some(q) = token.find('?') else {
        out.push_str(token);
        return;
    };
    out.push_str(&token[..=q]);
    let rest = &token[q + 1..];
    let (query, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() => {
                out.push_str(k);
                out.push_str("=***");
            }
            Some((k, _)) => {
                out.push_str(k);
                out.push('=');
            }
            None if !pair.is_empty() => out.push_str("***"),
            None => {}
        }
    }
    out.push_str(fragment);
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
            (
                "https://b.s3.amazonaws.com/m.bin?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00d",
                "https://b.s3.amazonaws.com/m.bin?X-Amz-Credential=***&X-Amz-Signature=***",
            ),
            (
                "for url (http://u:p@h/f?token=s3cr3t&dl=1#top): refused",
                "for url (http://***@h/f?token=***&dl=***#top): refused",
            ),
            ("http://h/f?s3cr3t", "http://h/f?***"),
            ("http://h/f?a=&&b", "http://h/f?a=&&***"),
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
