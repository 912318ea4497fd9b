//! The content-addressed cache and the fetch procedure: cache hit → reuse of torch/HF caches →
//! download (under a per-file lock, with retries and mirror failover) → verify → rename.
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::download::{self, Deadline, Limits, Transfer};
use super::existing::ReuseDirs;
use super::hash::sha256_file;
use super::lock::{LockedFile, WeightsLock};
use super::{
    check_file_name, check_hex, redact_url, Expected, FetchError, FetchOptions, Fetched, FileSpec,
    Origin, SourceFailure,
};

/// Name of the versioned layout directory under the cache root.
pub const LAYOUT_VERSION: &str = "v1";

/// Longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// zoo's download cache (layout in the [module docs](super)).
#[derive(Debug, Clone)]
pub struct Cache {
    /// `<root>/v1`.
    dir: PathBuf,
    reuse: ReuseDirs,
}

impl Cache {
    /// Opens (creating if needed) the cache under `root`; other tools' caches to reuse are taken
    /// from the environment ([`ReuseDirs::from_env`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FetchError> {
        let dir = root.into().join(LAYOUT_VERSION);
        for sub in ["blobs/sha256", "by-name", "tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| FetchError::io(&path, e))?;
        }
        Ok(Self {
            dir,
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
                source: std::io::Error::new(
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

    /// The versioned cache directory (`<root>/v1`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where content with this sha256 lives.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(sha256)
    }

    /// The readable name of a file in the cache.
    pub fn by_name_path(&self, file_name: &str) -> PathBuf {
        self.dir.join("by-name").join(file_name)
    }

    /// Directory holding `.part` and `.lock` files.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The partial-download file for `spec` (exists only while a download is unfinished).
    pub fn part_path(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<PathBuf, FetchError> {
        let (expected, _) = self.resolve(spec, opts)?;
        Ok(self
            .tmp_dir()
            .join(format!("{}.part", part_key(&spec.file_name, &expected))))
    }

    /// Finds `spec` in this cache or in a reusable torch/HF cache without touching the network.
    /// Cache hits are checked by size (the blob name is its hash); reused files are hashed.
    pub fn lookup(
        &self,
        spec: &FileSpec,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        let (expected, size) = self.resolve(spec, opts)?;
        if let Some(hit) = self.cached(spec, &expected, size, opts)? {
            return Ok(Some(hit));
        }
        self.reuse_existing(spec, &expected, size, opts)
    }

    /// Re-hashes the cached copy of `spec` (size + sha256). A corrupt blob is removed together
    /// with its readable name, and reported as a [`FetchError::HashMismatch`]/`SizeMismatch`.
    pub fn verify(&self, spec: &FileSpec, opts: &FetchOptions) -> Result<Fetched, FetchError> {
        let (expected, size) = self.resolve(spec, opts)?;
        let Some(hit) = self.cached(spec, &expected, size, opts)? else {
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
        if actual != hit.sha256 || !expected.matches(&actual) {
            remove();
            return Err(FetchError::HashMismatch {
                file_name: spec.file_name.clone(),
                source_name: hit.blob.display().to_string(),
                expected: hit.sha256.clone(),
                actual,
                size: actual_size,
            });
        }
        if let Some(expected) = size.filter(|s| *s != actual_size) {
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
        let (expected, size) = self.resolve(spec, opts)?;
        if let Some(hit) = self.cached(spec, &expected, size, opts)? {
            return Ok(hit);
        }
        if let Some(reused) = self.reuse_existing(spec, &expected, size, opts)? {
            return Ok(reused);
        }
        if opts.offline {
            return Err(FetchError::Offline {
                file_name: spec.file_name.clone(),
            });
        }
        let urls = source_urls(spec, opts);
        if urls.is_empty() {
            return Err(FetchError::NoUrls {
                file_name: spec.file_name.clone(),
            });
        }

        let key = part_key(&spec.file_name, &expected);
        let lock_path = self.tmp_dir().join(format!("{key}.lock"));
        let lock = File::create(&lock_path).map_err(|e| FetchError::io(&lock_path, e))?;
        // Blocks while another process downloads the same file; released when `lock` drops.
        lock.lock().map_err(|e| FetchError::io(&lock_path, e))?;
        if let Some(hit) = self.cached(spec, &expected, size, opts)? {
            return Ok(hit);
        }

        let part = self.tmp_dir().join(format!("{key}.part"));
        let mut client = None;
        let mut failures = Vec::new();
        for url in urls {
            let limits = Limits {
                expected_size: size,
                max_size: opts.max_size,
                deadline,
            };
            match self.fetch_url(&url, &part, spec, &expected, &limits, opts, &mut client) {
                Ok((transfer, origin)) => {
                    return self.finalize(&part, &transfer, spec, &expected, origin, opts)
                }
                Err(error) => failures.push(SourceFailure { url, error }),
            }
        }
        Err(FetchError::AllSourcesFailed {
            file_name: spec.file_name.clone(),
            failures,
        })
    }

    /// One URL, with retries on transient errors; the result is verified against `expected`.
    /// A resumed download that does not verify is retried once from byte zero (the `.part` it
    /// resumed from may be what was wrong).
    #[allow(clippy::too_many_arguments)]
    fn fetch_url(
        &self,
        url: &str,
        part: &Path,
        spec: &FileSpec,
        expected: &Expected,
        limits: &Limits,
        opts: &FetchOptions,
        client: &mut Option<reqwest::blocking::Client>,
    ) -> Result<(Transfer, Origin), FetchError> {
        let size = limits.expected_size;
        let mut fresh_retry_left = true;
        loop {
            let (transfer, origin) = self.transfer(url, part, spec, limits, opts, client)?;
            let mismatch = if size.is_some_and(|s| s != transfer.size) {
                Some(FetchError::SizeMismatch {
                    file_name: spec.file_name.clone(),
                    source_name: redact_url(url).into_owned(),
                    expected: size.unwrap_or_default(),
                    actual: transfer.size,
                })
            } else if !expected.matches(&transfer.sha256) {
                Some(FetchError::HashMismatch {
                    file_name: spec.file_name.clone(),
                    source_name: redact_url(url).into_owned(),
                    expected: expected.describe(),
                    actual: transfer.sha256.clone(),
                    size: transfer.size,
                })
            } else {
                None
            };
            let Some(err) = mismatch else {
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

    /// Moves the verified `.part` into the blob store, links the readable name, pins the hash.
    fn finalize(
        &self,
        part: &Path,
        transfer: &Transfer,
        spec: &FileSpec,
        expected: &Expected,
        origin: Origin,
        opts: &FetchOptions,
    ) -> Result<Fetched, FetchError> {
        let blob = self.blob_path(&transfer.sha256);
        fs::rename(part, &blob).map_err(|e| FetchError::io(&blob, e))?;
        sync_dir(blob.parent().unwrap_or(&self.dir));
        let path = self.link_name(&spec.file_name, &transfer.sha256)?;
        if !matches!(expected, Expected::Full(_)) {
            self.pin(&spec.file_name, &transfer.sha256, transfer.size, opts)?;
        }
        Ok(Fetched {
            file_name: spec.file_name.clone(),
            path,
            blob,
            sha256: transfer.sha256.clone(),
            size: transfer.size,
            origin,
        })
    }

    /// Merges the spec with the lock file: what the bytes must hash to, and their size.
    fn resolve(
        &self,
        spec: &FileSpec,
        opts: &FetchOptions,
    ) -> Result<(Expected, Option<u64>), FetchError> {
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
                crate::schema::MIN_SHA256_PREFIX,
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
        if let Some(full) = full {
            return Ok((Expected::Full(full), spec.size));
        }
        if let Some(lock_path) = &opts.lock_file {
            if let Some(entry) = WeightsLock::read(lock_path)?.files.get(name) {
                let locked = check_hex(name, "locked sha256", &entry.sha256, 64, 64)?;
                if prefix
                    .as_ref()
                    .is_some_and(|p| !locked.starts_with(p.as_str()))
                {
                    return Err(FetchError::LockFile {
                        path: lock_path.clone(),
                        reason: format!(
                            "{name} is pinned to sha256 {locked}, which does not start with the \
                             expected prefix {}",
                            prefix.unwrap_or_default()
                        ),
                    });
                }
                if spec.size.is_some_and(|s| s != entry.size) {
                    return Err(FetchError::LockFile {
                        path: lock_path.clone(),
                        reason: format!(
                            "{name} is pinned to {} bytes, the spec says {:?}",
                            entry.size, spec.size
                        ),
                    });
                }
                return Ok((Expected::Full(locked), Some(entry.size)));
            }
        }
        Ok((
            prefix.map_or(Expected::Unknown, Expected::Prefix),
            spec.size,
        ))
    }

    /// A cache hit: the blob exists with the right size (its name is its verified hash).
    fn cached(
        &self,
        spec: &FileSpec,
        expected: &Expected,
        size: Option<u64>,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        let sha256 = match expected {
            Expected::Full(h) => h.clone(),
            Expected::Prefix(_) | Expected::Unknown => match self.named_blob(&spec.file_name) {
                Some(h) if expected.matches(&h) => h,
                _ => return Ok(None),
            },
        };
        let blob = self.blob_path(&sha256);
        let Ok(meta) = fs::metadata(&blob) else {
            return Ok(None);
        };
        if !meta.is_file() || size.is_some_and(|s| s != meta.len()) {
            return Ok(None);
        }
        let path = self.link_name(&spec.file_name, &sha256)?;
        if !matches!(expected, Expected::Full(_)) {
            self.pin(&spec.file_name, &sha256, meta.len(), opts)?;
        }
        Ok(Some(Fetched {
            file_name: spec.file_name.clone(),
            path,
            blob,
            sha256,
            size: meta.len(),
            origin: Origin::Cache,
        }))
    }

    /// The hash `by-name/<file_name>` points at, if it is a link into the blob store.
    fn named_blob(&self, file_name: &str) -> Option<String> {
        let target = fs::read_link(self.by_name_path(file_name)).ok()?;
        let hex = target.file_name()?.to_str()?.to_string();
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    }

    /// Looks for the file in torch.hub / HF caches, verifies it and imports it into the blobs.
    fn reuse_existing(
        &self,
        spec: &FileSpec,
        expected: &Expected,
        size: Option<u64>,
        opts: &FetchOptions,
    ) -> Result<Option<Fetched>, FetchError> {
        if matches!(expected, Expected::Unknown) {
            return Ok(None); // nothing to verify a foreign file against
        }
        for (origin, candidate) in self.reuse.candidates(spec) {
            let Ok(meta) = fs::metadata(&candidate) else {
                continue;
            };
            if size.is_some_and(|s| s != meta.len()) {
                continue;
            }
            let Ok((sha256, len)) = sha256_file(&candidate) else {
                continue;
            };
            if !expected.matches(&sha256) || size.is_some_and(|s| s != len) {
                continue;
            }
            let blob = self.blob_path(&sha256);
            if !blob.is_file() {
                self.import(&candidate, &blob, &sha256)?;
            }
            let path = self.link_name(&spec.file_name, &sha256)?;
            if !matches!(expected, Expected::Full(_)) {
                self.pin(&spec.file_name, &sha256, len, opts)?;
            }
            return Ok(Some(Fetched {
                file_name: spec.file_name.clone(),
                path,
                blob,
                sha256,
                size: len,
                origin,
            }));
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

    /// Points `by-name/<file_name>` at the blob (replacing any older link atomically).
    fn link_name(&self, file_name: &str, sha256: &str) -> Result<PathBuf, FetchError> {
        let path = self.by_name_path(file_name);
        if self.named_blob(file_name).as_deref() == Some(sha256) {
            return Ok(path);
        }
        let tmp = self
            .dir
            .join("by-name")
            .join(format!(".{file_name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        #[cfg(unix)]
        {
            let target = Path::new("..").join("blobs").join("sha256").join(sha256);
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
        Ok(path)
    }

    /// Records the full hash learned for a prefix-only (or hash-less) spec in the lock file.
    fn pin(
        &self,
        file_name: &str,
        sha256: &str,
        size: u64,
        opts: &FetchOptions,
    ) -> Result<(), FetchError> {
        let Some(lock_path) = &opts.lock_file else {
            return Ok(());
        };
        let guard_path = self.tmp_dir().join("weights-lock.lock");
        let guard = File::create(&guard_path).map_err(|e| FetchError::io(&guard_path, e))?;
        guard.lock().map_err(|e| FetchError::io(&guard_path, e))?;
        WeightsLock::record(
            lock_path,
            file_name,
            LockedFile {
                sha256: sha256.to_string(),
                size,
            },
        )
    }
}

/// Mirror-prefixed URLs first (prefix + file name), then the spec's URLs; no duplicates.
fn source_urls(spec: &FileSpec, opts: &FetchOptions) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for prefix in &opts.mirrors {
        let url = if prefix.ends_with('/') {
            format!("{prefix}{}", spec.file_name)
        } else {
            format!("{prefix}/{}", spec.file_name)
        };
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    for url in &spec.urls {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    urls
}

/// Key of the `.part`/`.lock` files: the expected hash when known, else name + prefix.
fn part_key(file_name: &str, expected: &Expected) -> String {
    match expected {
        Expected::Full(h) => format!("sha256-{h}"),
        Expected::Prefix(p) => format!("name-{file_name}-{p}"),
        Expected::Unknown => format!("name-{file_name}"),
    }
}

/// Makes a rename durable (best effort; not all platforms can open directories).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
