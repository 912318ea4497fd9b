//! A registry model's weight file on this machine: the one place that turns "model + role" into
//! a verified local file, for `zoo convert`, `zoo export`, `zoo validate` and `zoo eval`.
//!
//! The file comes from the content-addressed cache, verified against the registry's sha256 (or
//! its prefix plus the pin in the registry's `weights.lock`), or is downloaded when the caller
//! allows it. Nothing here prints; a file that cannot be had is a [`SourceError`] whose message
//! says what to do next.
use std::path::{Path, PathBuf};

use crate::fetch::{Cache, FetchError, FetchOptions, Fetched, FileSpec, WeightsLock};
use crate::registry::{ModelEntry, Registry};
use crate::schema::FileRole;

/// How a registry file may be had.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// No network request: only the cache and `file:///` mirrors are read (also `ZOO_OFFLINE`,
    /// which the caller folds in).
    pub offline: bool,
    /// Fetch a file that is not cached (from a mirror, or from its URLs unless offline).
    /// Without it, [`locate`] reads the cache only and a missing file is `Ok(None)`.
    pub download: bool,
    /// Mirrors tried before the registry's URLs.
    pub mirrors: Vec<String>,
}

/// One of a model's weight files, as the caller sees it: found (or fetched), absent, or failed.
#[derive(Debug)]
pub struct Located {
    /// The file's role.
    pub role: FileRole,
    /// What was looked for (`None` when the model has no file with this role).
    pub spec: Option<FileSpec>,
    /// The outcome: `Ok(None)` when the file is not cached and downloading was not asked for.
    pub result: Result<Option<Fetched>, FetchError>,
}

/// Which command a user reruns after fixing a failed download (it phrases the next steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// `zoo fetch NAME --role ROLE`.
    Fetch,
    /// `zoo COMMAND NAME`, which also takes the file as `FROM_FLAG PATH` and `--mirror URL`
    /// (`convert`/`export` with `--from`, `eval` with `--weights`).
    Rerun {
        /// The subcommand.
        command: &'static str,
        /// Its flag that takes the file itself.
        from_flag: &'static str,
        /// The command's other required arguments, as its usage writes them (` --dataset DIR`
        /// for eval; empty where there are none).
        required: &'static str,
    },
}

/// A registry file that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The registry lists no file with this role for the model.
    #[error("{model} has no {role} file in the registry")]
    NoFile {
        /// The model.
        model: String,
        /// The role asked for.
        role: &'static str,
    },
    /// The cache directory cannot be used.
    #[error(transparent)]
    Cache(FetchError),
    /// Not cached and not downloadable, or the bytes failed verification; the message holds
    /// every cause and the next steps.
    #[error("{message}")]
    NotFetched {
        /// What went wrong and what to do next (see [`next_steps`]).
        message: String,
        /// The underlying error (its causes are in `message` already, so it is not chained).
        error: Box<FetchError>,
    },
}

/// Where full hashes learned from prefix-only entries are pinned: the registry's own
/// `weights.lock`, or the cache's for the embedded registry.
pub fn lock_file(registry: &Registry, cache: &Cache) -> PathBuf {
    match registry.dir() {
        Some(dir) => dir.join(Registry::LOCK_FILE),
        None => cache.dir().join(Registry::LOCK_FILE),
    }
}

/// The fetch options of one registry lookup.
pub fn fetch_options(registry: &Registry, cache: &Cache, opts: &SourceOptions) -> FetchOptions {
    FetchOptions {
        offline: opts.offline,
        mirrors: opts.mirrors.clone(),
        lock_file: Some(lock_file(registry, cache)),
        ..FetchOptions::default()
    }
}

/// Looks up (and with [`SourceOptions::download`], fetches) `entry`'s `role` file.
pub fn locate(
    cache: &Cache,
    registry: &Registry,
    entry: &ModelEntry,
    role: FileRole,
    opts: &SourceOptions,
) -> Located {
    let Some(file) = entry.file(role) else {
        return Located {
            role,
            spec: None,
            result: Ok(None),
        };
    };
    let spec = registry.fetch_spec(entry, file);
    let fopts = fetch_options(registry, cache, opts);
    let result = if opts.download {
        cache.fetch(&spec, &fopts).map(Some)
    } else {
        cache.lookup(&spec, &fopts)
    };
    Located {
        role,
        spec: Some(spec),
        result,
    }
}

/// `entry`'s `role` file as a verified local path, downloaded unless offline; the error says
/// what to do next, phrased for `retry`.
pub fn fetch(
    registry: &Registry,
    entry: &ModelEntry,
    role: FileRole,
    opts: &SourceOptions,
    retry: Retry,
) -> Result<Fetched, SourceError> {
    let file = entry.file(role).ok_or_else(|| SourceError::NoFile {
        model: entry.name().to_owned(),
        role: role.as_str(),
    })?;
    let cache = Cache::from_env().map_err(SourceError::Cache)?;
    let spec = registry.fetch_spec(entry, file);
    cache
        .fetch(&spec, &fetch_options(registry, &cache, opts))
        .map_err(|error| SourceError::NotFetched {
            message: next_steps(&error, &spec, &cache, retry),
            error: Box::new(error),
        })
}

/// `true` when nothing will verify the bytes of `spec`: no sha256, no prefix, and no pin in
/// the lock file. The caller warns.
pub fn unverified(spec: &FileSpec, lock_file: Option<&Path>) -> bool {
    if spec.sha256.is_some() || spec.sha256_prefix.is_some() {
        return false;
    }
    let pinned = lock_file
        .and_then(|p| WeightsLock::read(p).ok())
        .is_some_and(|l| {
            spec.source_key()
                .is_some_and(|key| l.pins.contains_key(&key))
        });
    !pinned
}

/// What went wrong getting a registry file, one cause a line, and, when the file could not be
/// had at all (offline, or every source failed without a wrong byte), what to do next: where to
/// put the file, `--from`, `--mirror`, `zoo fetch`. Verification failures are stated as they are
/// (their message says which hash, which lock file).
pub fn next_steps(err: &FetchError, spec: &FileSpec, cache: &Cache, retry: Retry) -> String {
    let what = spec.describe();
    let unavailable = matches!(
        err,
        FetchError::Offline { .. }
            | FetchError::NoUrls { .. }
            | FetchError::AllSourcesFailed { .. }
    ) && !err.is_verification_failure();
    if !unavailable {
        return format!("{what}: {err}");
    }
    let mut out = match err {
        FetchError::Offline { .. } => format!(
            "{what} is not in the cache, and zoo is offline (--offline or ZOO_OFFLINE): no request \
             was made"
        ),
        FetchError::NoUrls { .. } => format!("{what} has no URL to download it from"),
        _ => format!("{what} could not be downloaded:"),
    };
    if let FetchError::AllSourcesFailed { .. } = err {
        for cause in err.causes() {
            out.push_str(&format!("\n  - {cause}"));
        }
    }
    let file = &spec.file_name;
    let (model, role) = match &spec.entry {
        Some(e) => (e.model.as_str(), e.role.as_str()),
        None => ("NAME", "ROLE"),
    };
    out.push_str("\nnext steps (any one):");
    if let Some(path) = cache.source_path(spec) {
        out.push_str(&format!(
            "\n  - put {file} at {} (it is verified and taken in on the next run)",
            path.display()
        ));
    }
    match retry {
        Retry::Rerun {
            command,
            from_flag,
            required,
        } => out.push_str(&format!(
            "\n  - zoo {command} {model}{required} {from_flag} PATH, PATH being a copy of {file}\n  \
             - zoo {command} {model}{required} --mirror URL, URL being a server or file:///DIR/ \
             that has {file} where `wget -m` saves it (<host>/<path of its URL>)"
        )),
        Retry::Fetch => {}
    }
    out.push_str(&format!(
        "\n  - zoo fetch {model} --role {role} --mirror URL{}",
        match retry {
            Retry::Fetch => "",
            Retry::Rerun { .. } => ", then run this again",
        }
    ));
    if matches!(err, FetchError::Offline { .. }) {
        out.push_str(
            "\n  - run again without --offline (and ZOO_OFFLINE unset); offline, only file:/// \
             mirrors are read",
        );
    }
    out
}
