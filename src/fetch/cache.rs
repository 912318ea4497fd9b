//! The content-addressed cache and the fetch procedure: cache hit (by hash, or by the source's
//! lookup record) → a file put at the source path by hand → the version-1 blob store → reuse of
//! torch/HF caches → download (under a per-file lock, with retries and mirror failover) →
//! verify → rename.
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::download::{self, Deadline, Limits, Transfer};
use super::existing::ReuseDirs;
use super::hash::sha256_file;
use super::lock::{LockedFile, WeightsLock};
use super::{
    check_file_name, check_hex, redact_url, repin_advice, Expected, FetchError, FetchOptions,
    Fetched, FileSpec, Origin, PinMismatch, Proof, SourceFailure,
};

/// Name of the versioned layout directory under the cache root.
pub const LAYOUT_VERSION: &str = "v2";

/// The previous layout (bare-name links, a lock keyed by file name); only its blobs are used.
const LEGACY_LAYOUT: &str = "v1";

/// Name of the lookup record inside a source directory (hidden, so no file name can clash).
const RECORD_FILE: &str = ".source.json";

/// Longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// zoo's download cache (layout in the [module docs](super)).
#[derive(Debug, Clone)]
pub struct Cache {
    /// `<root>/v2`.
    dir: PathBuf,
    /// `<root>/v1`, the previous layout.
    legacy: PathBuf,
    reuse: ReuseDirs,
}

/// A source's lookup record: which blob its last verified download is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRecord {
    /// The source key with its URL's credentials and query values redacted ([`redact_url`]):
    /// the record needs no secret (the directory name is the full key's hash), and a cache
    /// directory is often shared or shown. Records from before held the full key; both match.
    key: String,
    /// The file name it was fetched under.
    file: String,
    /// sha256 of the content.
    sha256: String,
    /// Size in bytes.
    size: u64,
}

/// Where the expectation for a file's bytes comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Basis {
    /// The spec's full sha256.
    Spec,
    /// The spec's sha256 prefix; nothing pinned yet.
    Prefix(String),
    /// A pin in `lock` (with the spec's prefix, if it has one).
    Pin {
        lock: PathBuf,
        prefix: Option<String>,
        sha256: String,
        size: u64,
    },
    /// Nothing: trust on first use.
    Nothing,
}

/// A spec merged with the lock file.
#[derive(Debug, Clone)]
struct Resolved {
    expected: Expected,
    size: Option<u64>,
    key: Option<String>,
    basis: Basis,
}

impl Resolved {
    /// Whether the bytes' full hash is to be pinned once they are verified.
    fn needs_pin(&self) -> bool {
        matches!(self.basis, Basis::Prefix(_) | Basis::Nothing)
    }

    /// What a verified file was proven against (after pinning, where that applies).
    fn proof(&self, opts: &FetchOptions) -> Proof {
        let new_pin = || self.key.as_ref().and(opts.lock_file.clone());
        match &self.basis {
            Basis::Spec => Proof::Sha256,
            Basis::Prefix(p) => Proof::Sha256Prefix {
                prefix: p.clone(),
                lock: new_pin(),
            },
            Basis::Pin {
                lock,
                prefix: Some(p),
                ..
            } => Proof::Sha256Prefix {
                prefix: p.clone(),
                lock: Some(lock.clone()),
            },
            Basis::Pin { lock, .. } => Proof::FirstUse {
                lock: Some(lock.clone()),
            },
            Basis::Nothing => Proof::FirstUse { lock: new_pin() },
        }
    }

    /// The error for bytes (`actual`, when hashed) of `actual_size` that do not match.
    fn mismatch(
        &self,
        spec: &FileSpec,
        source_name: &str,
        actual: Option<&str>,
        actual_size: u64,
    ) -> Option<FetchError> {
        let size_bad = self.size.is_some_and(|s| s != actual_size);
        let hash_bad = actual.is_some_and(|h| !self.expected.matches(h));
        if !size_bad && !hash_bad {
            return None;
        }
        if let Basis::Pin {
            lock, sha256, size, ..
        } = &self.basis
        {
            return Some(FetchError::PinMismatch(Box::new(PinMismatch {
                file_name: spec.file_name.clone(),
                source_name: source_name.to_string(),
                lock: lock.clone(),
                key: self.key.clone().unwrap_or_default(),
                pinned: sha256.clone(),
                pinned_size: *size,
                actual: actual.map(str::to_string),
                actual_size,
                entry: spec.entry.clone(),
            })));
        }
        Some(match (size_bad, actual) {
            (false, Some(actual)) => FetchError::HashMismatch {
                file_name: spec.file_name.clone(),
                source_name: source_name.to_string(),
                expected: self.expected.describe(),
                actual: actual.to_string(),
                size: actual_size,
            },
            _ => FetchError::SizeMismatch {
                file_name: spec.file_name.clone(),
                source_name: source_name.to_string(),
                expected: self.size.unwrap_or_default(),
                actual: actual_size,
            },
        })
    }

    /// A transfer's size or hash mismatch restated against the pin, when a pin set the
    /// expectation (so the message names the lock file and how to re-pin).
    fn against_pin(&self, spec: &FileSpec, error: FetchError) -> FetchError {
        if !matches!(self.basis, Basis::Pin { .. }) {
            return error;
        }
        match &error {
            FetchError::SizeMismatch {
                source_name,
                actual,
                ..
            } => self
                .mismatch(spec, source_name, None, *actual)
                .unwrap_or(error),
            FetchError::HashMismatch {
                source_name,
                actual,
                size,
                ..
            } => self
                .mismatch(spec, source_name, Some(actual), *size)
                .unwrap_or(error),
            _ => error,
        }
    }
}

impl Cache {
    /// Opens (creating if needed) the cache under `root`; other tools' caches to reuse are taken
    /// from the environment ([`ReuseDirs::from_env`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FetchError> {
        let root = root.into();
        let dir = root.join(LAYOUT_VERSION);
        for sub in ["blobs/sha256", "sources", "tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| FetchError::io(&path, e))?;
        }
        Ok(Self {
            dir,
            legacy: root.join(LEGACY_LAYOUT),
            reuse: ReuseDirs::from_env(),
        })
    }

    /// Opens the cache at `$ZOO_CACHE`, else `<platform cache dir>/zoo` (`~/.cache/zoo` on Linux).
    pub fn from_env() -> Result<Self, FetchError> {
        Self::open(Self::default_root()?)
    }

    /// The root [`Cache::from_env`] uses.
    pub fn default_root() -> Result<PathBuf, FetchError> {
        if let Some(root) = std::env::var_os("ZOO_CACHE").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(root));
        }
        dirs::cache_dir()
            .map(|d| d.join("zoo"))
            .ok_or_else(|| FetchError::Io {
                path: PathBuf::from("$ZOO_CACHE"),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no platform cache directory; set ZOO_CACHE",
                ),
            })
    }

    /// Replaces the torch/HF cache directories consulted for reuse.
    pub fn with_reuse(mut self, reuse: ReuseDirs) -> Self {
        self.reuse = reuse;
        self
    }

    /// The versioned cache directory (`<root>/v2`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where content with this sha256 lives.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(sha256)
    }

    /// The directory of one source: `sources/<host>-<first 32 hex of sha256(key)>`.
    pub fn source_dir(&self, key: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        self.dir
            .join("sources")
            .join(format!("{}-{}", source_label(key), &digest[..32]))
    }

    /// The readable path of `spec`'s file: `sources/<dir>/<file_name>`, a link to its blob once
    /// fetched. A file put there by hand is verified and taken in by the next lookup, so this is
    /// where to put a file zoo cannot download. `None` when the spec has no source key or its
    /// file name is unusable.
    pub fn source_path(&self, spec: &FileSpec) -> Option<PathBuf> {
        check_file_name(&spec.file_name).ok()?;
        Some(self.source_dir(&spec.source_key()?).join(&spec.file_name))
    }

    /// Directory holding `.part` and `.lock` files.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The partial-download file for `spec` (exists only while a download is unfinished).
    pub fn part_path(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<PathBuf, FetchError> {
        let r = self.resolve(spec, opts)?;
        Ok(self.tmp_dir().join(format!("{}.part", part_key(&r))))
    }

    /// Finds `spec` in this cache or in a reusable torch/HF cache without touching the network.
    /// Cache hits are checked by size (the blob name is its hash); other files are hashed.
    pub fn lookup(
        &self,
        spec: &FileSpec,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        let r = self.resolve(spec, opts)?;
        if let Some(hit) = self.cached(spec, &r, opts)? {
            return Ok(Some(hit));
        }
        self.reuse_existing(spec, &r, opts)
    }

    /// Re-hashes the cached copy of `spec` (size + sha256). A corrupt blob is removed together
    /// with its readable name, and reported as a [`FetchError::HashMismatch`]/`SizeMismatch`.
    pub fn verify(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<Fetched, FetchError> {
        let r = self.resolve(spec, opts)?;
        let Some(hit) = self.cached(spec, &r, opts)? else {
            return Err(FetchError::NotCached {
                file_name: spec.file_name.clone(),
            });
        };
        let (actual, actual_size) =
            sha256_file(&hit.blob).map_err(|e| FetchError::io(&hit.blob, e))?;
        let remove = || {
            let _ = fs::remove_file(&hit.blob);
            let _ = fs::remove_file(&hit.path);
        };
        if actual != hit.sha256 || !r.expected.matches(&actual) {
            remove();
            return Err(FetchError::HashMismatch {
                file_name: spec.file_name.clone(),
                source_name: hit.blob.display().to_string(),
                expected: hit.sha256.clone(),
                actual,
                size: actual_size,
            });
        }
        if let Some(expected) = r.size.filter(|s| *s != actual_size) {
            remove();
            return Err(FetchError::SizeMismatch {
                file_name: spec.file_name.clone(),
                source_name: hit.blob.display().to_string(),
                expected,
                actual: actual_size,
            });
        }
        Ok(hit)
    }

    /// Returns a verified copy of `spec`: from this cache, from a torch/HF cache, or downloaded
    /// (mirrors first, then the spec's URLs, each with retries). Concurrent callers in other
    /// processes wait on a per-file lock and reuse the first one's download. Errors name URLs
    /// without their credentials.
    pub fn fetch(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<Fetched, FetchError> {
        self.fetch_inner(spec, opts).map_err(FetchError::redacted)
    }

    fn fetch_inner(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<Fetched, FetchError> {
        let deadline = opts.deadline.map(Deadline::after);
        let r = self.resolve(spec, opts)?;
        if let Some(hit) = self.cached(spec, &r, opts)? {
            return Ok(hit);
        }
        if let Some(reused) = self.reuse_existing(spec, &r, opts)? {
            return Ok(reused);
        }
        let mut urls = source_urls(spec, opts);
        if opts.offline {
            // Offline still reads local files (`--mirror file:///DIR/`): they are no network.
            urls.retain(|u| u.starts_with("file:"));
            if urls.is_empty() {
                return Err(FetchError::Offline {
                    file_name: spec.file_name.clone(),
                });
            }
        }
        if urls.is_empty() {
            return Err(FetchError::NoUrls {
                file_name: spec.file_name.clone(),
            });
        }

        let key = part_key(&r);
        let lock_path = self.tmp_dir().join(format!("{key}.lock"));
        let lock = File::create(&lock_path).map_err(|e| FetchError::io(&lock_path, e))?;
        // Blocks while another process downloads the same file; released when `lock` drops.
        lock.lock().map_err(|e| FetchError::io(&lock_path, e))?;
        if let Some(hit) = self.cached(spec, &r, opts)? {
            return Ok(hit);
        }

        let part = self.tmp_dir().join(format!("{key}.part"));
        let mut client = None;
        let mut failures = Vec::new();
        for url in urls {
            let limits = Limits {
                expected_size: r.size,
                max_size: opts.max_size,
                deadline,
            };
            match self.fetch_url(&url, &part, spec, &r, &limits, opts, &mut client) {
                Ok((transfer, origin)) => {
                    return self.finalize(&part, &transfer, spec, &r, origin, opts)
                }
                Err(error) => failures.push(SourceFailure {
                    url,
                    error: r.against_pin(spec, error),
                }),
            }
        }
        // A `.part` with bytes is kept for the next run to resume; an empty one (the connection
        // was refused, or the first byte never came) is nothing to resume, so it goes. The lock
        // file stays: another process may be waiting on it.
        if fs::metadata(&part).is_ok_and(|m| m.len() == 0) {
            fs::remove_file(&part).map_err(|e| FetchError::io(&part, e))?;
        }
        Err(FetchError::AllSourcesFailed {
            file_name: spec.file_name.clone(),
            failures,
        })
    }

    /// One URL, with retries on transient errors; the result is verified against `r`. A
    /// resumed download that does not verify is retried once from byte zero (the `.part` it
    /// resumed from may be what was wrong).
    #[allow(clippy::too_many_arguments)]
    fn fetch_url(
        &self,
        url: &str,
        part: &Path,
        spec: &FileSpec,
        r: &Resolved,
        limits: &Limits,
        opts: &FetchOptions,
        client: &mut Option<reqwest::blocking::Client>,
    ) -> Result<(Transfer, Origin), FetchError> {
        let mut fresh_retry_left = true;
        loop {
            let (transfer, origin) = self.transfer(url, part, spec, limits, opts, client)?;
            let shown = redact_url(url);
            let Some(err) = r.mismatch(spec, &shown, Some(&transfer.sha256), transfer.size) else {
                return Ok((transfer, origin));
            };
            // Wrong bytes must not be resumed from either.
            fs::remove_file(part).map_err(|e| FetchError::io(part, e))?;
            if transfer.resumed_from > 0 && fresh_retry_left {
                fresh_retry_left = false;
                continue;
            }
            return Err(err);
        }
    }

    /// One transfer from `url` (with retries on transient errors), not yet verified.
    fn transfer(
        &self,
        url: &str,
        part: &Path,
        spec: &FileSpec,
        limits: &Limits,
        opts: &FetchOptions,
        client: &mut Option<reqwest::blocking::Client>,
    ) -> Result<(Transfer, Origin), FetchError> {
        let progress = opts.progress.as_deref();
        if url.starts_with("file:") {
            let path = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| FetchError::UnsupportedUrl {
                    url: redact_url(url).into_owned(),
                })?;
            let t = download::copy_local(&path, part, &spec.file_name, limits, progress)?;
            Ok((t, Origin::LocalFile { path }))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let client = match client {
                Some(c) => c,
                None => client.insert(download::client(opts.timeout)?),
            };
            let mut attempt = 0u32;
            let t = loop {
                match download::download_http(client, url, part, &spec.file_name, limits, progress)
                {
                    Ok(t) => break t,
                    Err(e) if e.is_transient() && attempt < opts.retries => {
                        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
                        let pause = opts.backoff.saturating_mul(factor).min(MAX_BACKOFF);
                        if limits.deadline.is_some_and(|d| d.remaining() <= pause) {
                            return Err(e);
                        }
                        std::thread::sleep(pause);
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            Ok((
                t,
                Origin::Download {
                    url: redact_url(url).into_owned(),
                },
            ))
        } else {
            Err(FetchError::UnsupportedUrl {
                url: redact_url(url).into_owned(),
            })
        }
    }

    /// Moves the verified `.part` into the blob store, links the source's name, pins the hash.
    fn finalize(
        &self,
        part: &Path,
        transfer: &Transfer,
        spec: &FileSpec,
        r: &Resolved,
        origin: Origin,
        opts: &FetchOptions,
    ) -> Result<Fetched, FetchError> {
        let blob = self.blob_path(&transfer.sha256);
        fs::rename(part, &blob).map_err(|e| FetchError::io(&blob, e))?;
        sync_dir(blob.parent().unwrap_or(&self.dir));
        self.hit(spec, r, &transfer.sha256, transfer.size, origin, opts)
    }

    /// Merges the spec with the lock file: what the bytes must hash to, their size, and why.
    fn resolve(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<Resolved, FetchError> {
        let name = &spec.file_name;
        check_file_name(name)?;
        let full = match &spec.sha256 {
            Some(h) => Some(check_hex(name, "sha256", h, 64, 64)?),
            None => None,
        };
        let prefix = match &spec.sha256_prefix {
            Some(p) => Some(check_hex(
                name,
                "sha256 prefix",
                p,
                super::MIN_SHA256_PREFIX,
                64,
            )?),
            None => None,
        };
        if let (Some(full), Some(prefix)) = (&full, &prefix) {
            if !full.starts_with(prefix.as_str()) {
                return Err(FetchError::InvalidSpec {
                    file_name: name.clone(),
                    reason: format!("sha256 {full} does not start with prefix {prefix}"),
                });
            }
        }
        let key = spec.source_key();
        if let Some(full) = full {
            return Ok(Resolved {
                expected: Expected::Full(full),
                size: spec.size,
                key,
                basis: Basis::Spec,
            });
        }
        let Some(key) = key else {
            return Err(FetchError::InvalidSpec {
                file_name: name.clone(),
                reason: "nothing but the file name identifies this file (no URL, no registry \
                         entry, no full sha256), and a name is not an identity"
                    .to_string(),
            });
        };
        if let Some(lock_path) = &opts.lock_file {
            if let Some(entry) = WeightsLock::read(lock_path)?.pins.get(&key) {
                let locked = check_hex(name, "pinned sha256", &entry.sha256, 64, 64)?;
                let contradiction = if prefix
                    .as_ref()
                    .is_some_and(|p| !locked.starts_with(p.as_str()))
                {
                    Some(format!(
                        "{name} is pinned to sha256 {locked}, which does not start with the \
                         expected prefix {}",
                        prefix.clone().unwrap_or_default()
                    ))
                } else if spec.size.is_some_and(|s| s != entry.size) {
                    Some(format!(
                        "{name} is pinned to {} bytes, the spec says {}",
                        entry.size,
                        spec.size.unwrap_or_default()
                    ))
                } else {
                    None
                };
                if let Some(reason) = contradiction {
                    return Err(FetchError::LockFile {
                        path: lock_path.clone(),
                        reason: format!(
                            "{reason}; {}",
                            repin_advice(lock_path, &key, spec.entry.as_ref())
                        ),
                    });
                }
                return Ok(Resolved {
                    expected: Expected::Full(locked.clone()),
                    size: Some(entry.size),
                    key: Some(key),
                    basis: Basis::Pin {
                        lock: lock_path.clone(),
                        prefix,
                        sha256: locked,
                        size: entry.size,
                    },
                });
            }
        }
        Ok(Resolved {
            expected: prefix.clone().map_or(Expected::Unknown, Expected::Prefix),
            size: spec.size,
            key: Some(key),
            basis: prefix.map_or(Basis::Nothing, Basis::Prefix),
        })
    }

    /// A hit in this cache: a file put at the source path by hand (it says what the user
    /// wants, so it is checked first and never overwritten unverified); else the blob named by
    /// the expected hash or by the source's lookup record; else a version-1 blob.
    fn cached(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        if let Some(placed) = self.take_placed(spec, r, opts)? {
            return Ok(Some(placed));
        }
        let known = match &r.expected {
            Expected::Full(h) => Some(h.clone()),
            Expected::Prefix(_) | Expected::Unknown => r
                .key
                .as_deref()
                .and_then(|k| self.read_record(k))
                .map(|rec| rec.sha256)
                .filter(|h| r.expected.matches(h)),
        };
        if let Some(sha256) = known {
            if let Some(size) = self.blob_size(&sha256, r.size) {
                return self
                    .hit(spec, r, &sha256, size, Origin::Cache, opts)
                    .map(Some);
            }
        }
        self.take_legacy(spec, r, opts)
    }

    /// The size of the blob with this hash, if it is a file of the expected size.
    fn blob_size(&self, sha256: &str, size: Option<u64>) -> Option<u64> {
        let meta = fs::metadata(self.blob_path(sha256)).ok()?;
        (meta.is_file() && size.is_none_or(|s| s == meta.len())).then_some(meta.len())
    }

    /// Links the source's readable name and lookup record to a verified blob, pins its hash
    /// where the spec did not give it, and describes the result.
    fn hit(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        sha256: &str,
        size: u64,
        origin: Origin,
        opts: &FetchOptions,
    ) -> Result<Fetched, FetchError> {
        let path = self.link(spec, r.key.as_deref(), sha256, size)?;
        if r.needs_pin() {
            self.pin(spec, r, sha256, size, opts)?;
        }
        Ok(Fetched {
            file_name: spec.file_name.clone(),
            path,
            blob: self.blob_path(sha256),
            sha256: sha256.to_string(),
            size,
            origin,
            proof: r.proof(opts),
        })
    }

    /// A file a user put at the source path (not one of zoo's links): hashed, checked against
    /// the expectation, taken into the blob store. A file that does not verify is an error
    /// naming its path.
    fn take_placed(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        let Some(key) = &r.key else {
            return Ok(None);
        };
        let path = self.source_dir(key).join(&spec.file_name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(None);
        };
        if meta.file_type().is_symlink() && link_target_hash(&path).is_some() {
            return Ok(None); // zoo's own link, to a blob that is gone or not the expected one
        }
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let (sha256, size) = sha256_file(&path).map_err(|e| FetchError::io(&path, e))?;
        if let Some(err) = r.mismatch(spec, &path.display().to_string(), Some(&sha256), size) {
            return Err(err);
        }
        let blob = self.blob_path(&sha256);
        if !blob.is_file() {
            self.import(&path, &blob, &sha256)?;
        }
        self.hit(spec, r, &sha256, size, Origin::Placed { path }, opts)
            .map(Some)
    }

    /// A blob of the version-1 layout that the expected full hash or prefix names, re-hashed and
    /// taken over. Without a hash there is nothing to find it by: version 1's names and lock
    /// cannot tell two files with one name apart, so they are never read.
    fn take_legacy(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        let dir = self.legacy.join("blobs").join("sha256");
        let candidates: Vec<String> = match &r.expected {
            Expected::Full(h) => vec![h.clone()],
            Expected::Prefix(p) => {
                let Ok(entries) = fs::read_dir(&dir) else {
                    return Ok(None);
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| is_sha256_hex(n) && n.starts_with(p.as_str()))
                    .collect();
                names.sort();
                names
            }
            Expected::Unknown => return Ok(None),
        };
        for hex in candidates {
            let path = dir.join(&hex);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || r.size.is_some_and(|s| s != meta.len()) {
                continue;
            }
            let Ok((sha256, size)) = sha256_file(&path) else {
                continue;
            };
            if sha256 != hex || r.mismatch(spec, "", Some(&sha256), size).is_some() {
                continue; // a damaged blob: the name is not the content's hash
            }
            let blob = self.blob_path(&sha256);
            if !blob.is_file() {
                self.import(&path, &blob, &sha256)?;
            }
            return self
                .hit(spec, r, &sha256, size, Origin::LegacyCache { path }, opts)
                .map(Some);
        }
        Ok(None)
    }

    /// Looks for the file in torch.hub / HF caches, verifies it and imports it into the blobs.
    fn reuse_existing(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        if matches!(r.expected, Expected::Unknown) {
            return Ok(None); // nothing to verify a foreign file against
        }
        for (origin, candidate) in self.reuse.candidates(spec) {
            let Ok(meta) = fs::metadata(&candidate) else {
                continue;
            };
            if r.size.is_some_and(|s| s != meta.len()) {
                continue;
            }
            let Ok((sha256, len)) = sha256_file(&candidate) else {
                continue;
            };
            if r.mismatch(spec, "", Some(&sha256), len).is_some() {
                continue;
            }
            let blob = self.blob_path(&sha256);
            if !blob.is_file() {
                self.import(&candidate, &blob, &sha256)?;
            }
            return self.hit(spec, r, &sha256, len, origin, opts).map(Some);
        }
        Ok(None)
    }

    /// Hardlinks (or, across file systems, copies and fsyncs) a verified foreign file into
    /// the blob store via a temp name, so the blob appears atomically.
    fn import(&self, source: &Path, blob: &Path, sha256: &str) -> Result<(), FetchError> {
        let source = fs::canonicalize(source).map_err(|e| FetchError::io(source, e))?;
        let tmp = self
            .tmp_dir()
            .join(format!("{sha256}.import-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(&source, &tmp).is_err() {
            fs::copy(&source, &tmp).map_err(|e| FetchError::io(&tmp, e))?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| FetchError::io(&tmp, e))?;
        }
        fs::rename(&tmp, blob).map_err(|e| FetchError::io(blob, e))?;
        sync_dir(blob.parent().unwrap_or(&self.dir));
        Ok(())
    }

    /// The lookup record of a source, if there is a readable one for exactly this key.
    fn read_record(&self, key: &str) -> Option<SourceRecord> {
        let text = fs::read_to_string(self.source_dir(key).join(RECORD_FILE)).ok()?;
        let rec: SourceRecord = serde_json::from_str(&text).ok()?;
        let matches = rec.key == redact_url(key) || rec.key == key;
        (matches && is_sha256_hex(&rec.sha256)).then_some(rec)
    }

    /// Points `sources/<dir>/<file_name>` at the blob (replacing any older link atomically) and
    /// writes the source's lookup record. A spec without a source key is filed under its hash.
    fn link(
        &self,
        spec: &FileSpec,
        key: Option<&str>,
        sha256: &str,
        size: u64,
    ) -> Result<PathBuf, FetchError> {
        let key = key.map_or_else(|| format!("sha256:{sha256}"), str::to_string);
        let dir = self.source_dir(&key);
        fs::create_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
        let path = dir.join(&spec.file_name);
        if link_target_hash(&path).as_deref() != Some(sha256) {
            let tmp = dir.join(format!(".{}.{}.tmp", spec.file_name, std::process::id()));
            let _ = fs::remove_file(&tmp);
            #[cfg(unix)]
            {
                let target = Path::new("../..").join("blobs").join("sha256").join(sha256);
                std::os::unix::fs::symlink(&target, &tmp).map_err(|e| FetchError::io(&tmp, e))?;
            }
            #[cfg(not(unix))]
            {
                let blob = self.blob_path(sha256);
                if fs::hard_link(&blob, &tmp).is_err() {
                    fs::copy(&blob, &tmp).map_err(|e| FetchError::io(&tmp, e))?;
                }
            }
            fs::rename(&tmp, &path).map_err(|e| FetchError::io(&path, e))?;
        }
        let record = SourceRecord {
            key: redact_url(&key).into_owned(),
            file: spec.file_name.clone(),
            sha256: sha256.to_string(),
            size,
        };
        if self.read_record(&key).as_ref() != Some(&record) {
            write_record(&dir, &record)?;
        }
        Ok(path)
    }

    /// Records the full hash learned for a prefix-only (or hash-less) spec in the lock file.
    fn pin(
        &self,
        spec: &FileSpec,
        r: &Resolved,
        sha256: &str,
        size: u64,
        opts: &FetchOptions,
    ) -> Result<(), FetchError> {
        let (Some(lock_path), Some(key)) = (&opts.lock_file, &r.key) else {
            return Ok(());
        };
        let guard_path = self.tmp_dir().join("weights-lock.lock");
        let guard = File::create(&guard_path).map_err(|e| FetchError::io(&guard_path, e))?;
        guard.lock().map_err(|e| FetchError::io(&guard_path, e))?;
        WeightsLock::record(
            lock_path,
            key,
            LockedFile {
                file: spec.file_name.clone(),
                model: spec.entry.as_ref().map(|e| e.model.clone()),
                role: spec.entry.as_ref().map(|e| e.role.clone()),
                sha256: sha256.to_string(),
                size,
            },
        )
    }
}

/// Writes a lookup record atomically (temp file in `dir`, fsync, rename).
fn write_record(dir: &Path, record: &SourceRecord) -> Result<(), FetchError> {
    let path = dir.join(RECORD_FILE);
    let mut text = serde_json::to_string_pretty(record).map_err(|e| FetchError::Io {
        path: path.clone(),
        error: std::io::Error::other(e),
    })?;
    text.push('\n');
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| FetchError::io(dir, e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| FetchError::io(tmp.path(), e))?;
    tmp.persist(&path)
        .map_err(|e| FetchError::io(&path, e.error))?;
    Ok(())
}

/// The hash a zoo link points at (`…/blobs/sha256/<hex>`), if `path` is such a link.
fn link_target_hash(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    let hex = target.file_name()?.to_str()?.to_string();
    is_sha256_hex(&hex).then_some(hex)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A readable label for a source key: the URL's host (`huggingface.co`, `127.0.0.1_8000`), or
/// the key's scheme (`zoo-registry`, `sha256`, `file`); only `[A-Za-z0-9._-]`, at most 64.
fn source_label(key: &str) -> String {
    let label = match key.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or_default();
            if host.is_empty() {
                scheme
            } else {
                host
            }
        }
        None => key.split(':').next().unwrap_or_default(),
    };
    let clean: String = label
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        format!("_{clean}")
    } else {
        clean
    }
}

/// The URLs to try: each mirror's candidates first ([`mirror_urls`]), then the spec's URLs; no
/// duplicates.
fn source_urls(spec: &FileSpec, opts: &FetchOptions) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for prefix in &opts.mirrors {
        for url in mirror_urls(prefix, spec) {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    for url in &spec.urls {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    urls
}

/// Where a mirror at `prefix` may hold `spec`'s file: `<prefix>/<host>[:<port>]/<path>` for each
/// http(s) URL of the spec (the `wget -m` layout: distinct URLs never share a place), then
/// `<prefix>/<file_name>` where that name cannot be mistaken for another file's (the spec's
/// name is unique, or its full sha256 rejects any other file).
fn mirror_urls(prefix: &str, spec: &FileSpec) -> Vec<String> {
    let base = prefix.trim_end_matches('/');
    let mut urls: Vec<String> = spec
        .urls
        .iter()
        .filter_map(|u| reqwest::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .filter_map(|u| {
            let host = u.host_str()?;
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            Some(format!("{base}/{host}{port}{}", u.path()))
        })
        .collect();
    if (spec.unique_name || spec.sha256.is_some()) && !spec.file_name.is_empty() {
        urls.push(format!("{base}/{}", spec.file_name));
    }
    urls
}

/// Key of the `.part`/`.lock` files: the expected hash when known, else the source key's hash
/// (never the file name: two sources may share it).
fn part_key(r: &Resolved) -> String {
    match (&r.expected, &r.key) {
        (Expected::Full(h), _) => format!("sha256-{h}"),
        (_, Some(key)) => {
            let digest = hex::encode(Sha256::digest(key.as_bytes()));
            match &r.expected {
                Expected::Prefix(p) => format!("source-{}-{p}", &digest[..32]),
                _ => format!("source-{}", &digest[..32]),
            }
        }
        // `resolve` refuses a spec with neither a full hash nor a key.
        (_, None) => "unidentified".to_string(),
    }
}

/// Makes a rename durable (best effort; not all platforms can open directories).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::source_label;

    #[test]
    fn source_labels_are_hosts_or_schemes() {
        assert_eq!(
            source_label("https://huggingface.co/timm/x/resolve/main/model.safetensors"),
            "huggingface.co"
        );
        assert_eq!(
            source_label("http://user@127.0.0.1:8000/a"),
            "127.0.0.1_8000"
        );
        assert_eq!(source_label("file:///tmp/a.bin"), "file");
        assert_eq!(source_label("zoo-registry:m/timm-pth"), "zoo-registry");
        assert_eq!(source_label("http://../x"), "_..");
    }
}
