//! `zoo fetch`: download (or find) a weight file, verified, into the cache.
//!
//! Exit codes: 0 fetched/verified; 1 the bytes did not verify (hash or size mismatch);
//! 2 anything else, including `--offline` with the file missing (usage/IO/network class).
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zoo_converters::text::esc_text;

use super::Status;
use crate::fetch::{
    Cache, FetchError, FetchOptions, Fetched, FileSpec, Origin, ProgressSink, Proof,
};

/// Arguments of `zoo fetch` (ad-hoc form: the file is described on the command line).
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Registry models (names, aliases or globs) whose weight files to fetch.
    pub models: Vec<String>,
    /// Fetch the files of every registry model.
    #[arg(long, conflicts_with = "models")]
    pub all: bool,
    /// Which of a registry model's files (`timm-pth`, `tf-checkpoint`, `hf-safetensors`); all if not given.
    #[arg(long, value_name = "ROLE")]
    pub role: Vec<String>,
    /// URL of an ad-hoc file; repeat for mirrors of the same bytes (tried in order). http(s):// or file://.
    #[arg(long = "url", value_name = "URL", required_unless_present_any = ["models", "all"], conflicts_with_all = ["models", "all"])]
    pub urls: Vec<String>,
    /// Expected full sha256 (64 hex digits).
    #[arg(long, value_name = "HEX", conflicts_with = "sha256_prefix")]
    pub sha256: Option<String>,
    /// Expected leading hex digits of the sha256 (timm's 8-hex suffix); the full hash is then
    /// pinned in --lock-file.
    #[arg(long, value_name = "HEX")]
    pub sha256_prefix: Option<String>,
    /// Expected size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub size: Option<u64>,
    /// Most bytes accepted for a file whose size is not known (no --size, no registry `Size`):
    /// a plain number of bytes or with a K, M, G or T suffix (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "16G", value_parser = parse_bytes)]
    pub max_size: u64,
    /// File name in the cache (default: last path segment of the first URL).
    #[arg(long, value_name = "FILE")]
    pub name: Option<String>,
    /// Never touch the network (also: ZOO_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Re-hash a cache hit instead of trusting it.
    #[arg(long)]
    pub verify: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// URL prefix tried before the file's own URLs; repeatable; http(s):// or file:///DIR/. The
    /// mirror layout: <PREFIX>/<host>[:<port>]/<URL path>, as `wget -m` saves it; the flat
    /// <PREFIX>/<file name> too where no other registry file has that name or a full sha256 is
    /// given.
    #[arg(long = "mirror", value_name = "URL-PREFIX")]
    pub mirrors: Vec<String>,
    /// Lock file pinning full sha256s learned from prefix-only hashes.
    #[arg(long, value_name = "PATH")]
    pub lock_file: Option<PathBuf>,
    /// Retries per URL on connection errors, timeouts and 5xx.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Stall timeout, in seconds: the longest a connect or a single read may wait. A slow but
    /// moving download is not cut by it; see --deadline.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Write the full sha256 of every fetched registry file that has none in the registry into
    /// the registry's YAML (`Sha256:`), turning a pin into a registry fact. Needs `--registry DIR`.
    #[arg(long, conflicts_with = "urls")]
    pub record: bool,
    /// Total time, in seconds, each file's fetch may take (every mirror, retry and read); no
    /// limit if not given. Ends at most one --timeout late.
    #[arg(long, value_name = "SECONDS")]
    pub deadline: Option<f64>,
}

/// True when `ZOO_OFFLINE` asks for offline mode (`1`, `true`, `yes`, `on`).
pub fn offline_from_env() -> bool {
    std::env::var("ZOO_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Fetch options from the command line, with a progress bar when stderr is a terminal.
fn options(args: &FetchArgs, lock_file: Option<PathBuf>) -> anyhow::Result<FetchOptions> {
    let timeout = seconds("--timeout", args.timeout)?;
    Ok(FetchOptions {
        offline: args.offline || offline_from_env(),
        mirrors: args.mirrors.clone(),
        progress: std::io::stderr()
            .is_terminal()
            .then(|| Arc::new(BarSink::default()) as Arc<dyn ProgressSink>),
        timeout,
        max_size: args.max_size,
        deadline: args
            .deadline
            .map(|d| seconds("--deadline", d))
            .transpose()?,
        retries: args.retries,
        lock_file,
        ..FetchOptions::default()
    })
}

/// Longest `--timeout` (and `--deadline`) accepted: one week.
const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A duration option: a positive, finite number of seconds up to [`MAX_SECONDS`].
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0 && value <= MAX_SECONDS,
        "{flag} must be a number of seconds greater than 0 and at most {MAX_SECONDS} (one week), \
         not {value:?}"
    );
    Ok(Duration::try_from_secs_f64(value)?)
}

/// `--max-size`: bytes, optionally with a binary K/M/G/T suffix (`16G`, `500M`, `1024`).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("`{s}`: unknown unit `{c}` (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("`{s}` is not a positive byte count below 2^64"))
}

/// The warning for a file nothing will verify (no sha256, no prefix, no pin in the lock file),
/// decided before the fetch (which pins it) and printed only once the file is there: a fetch
/// that fails used no bytes.
pub(crate) fn unverified_warning(
    spec: &FileSpec,
    lock_file: Option<&std::path::Path>,
) -> Option<String> {
    crate::source::unverified(spec, lock_file).then(|| {
        format!(
            "warning: {}: no sha256 to verify against (pass --sha256, or --sha256-prefix with at \
             least 8 hex digits); the bytes are taken as they come",
            spec.file_name
        )
    })
}

/// Runs `zoo fetch NAME… | --all` over registry files.
fn run_registry(args: &FetchArgs, registry: &crate::registry::Registry) -> anyhow::Result<Status> {
    if args.record && registry.dir().is_none() {
        anyhow::bail!(
            "--record writes into the registry's YAML files: pass --registry DIR (the registry \
             embedded in zoo cannot be written)"
        );
    }
    let patterns = if args.all {
        vec!["*".to_string()]
    } else {
        args.models.clone()
    };
    let cache = Cache::from_env()?;
    let opts = options(args, Some(crate::source::lock_file(registry, &cache)))?;
    let mut status = Status::Ok;
    let mut failures = vec![];
    let mut learned = vec![];
    for entry in registry.select(&patterns)? {
        for file in entry.files() {
            let role = file
                .role
                .as_ref()
                .map(|r| r.raw.text.clone())
                .unwrap_or_default();
            if !args.role.is_empty() && !args.role.contains(&role) {
                continue;
            }
            let spec = registry.fetch_spec(entry, file);
            let warning = unverified_warning(&spec, opts.lock_file.as_deref());
            let result = if args.verify {
                cache.verify(&spec, &opts)
            } else {
                cache.fetch(&spec, &opts)
            };
            match result {
                Ok(fetched) => {
                    if let Some(w) = &warning {
                        eprintln!("{}", esc_text(w));
                    }
                    print_fetched(&fetched, args.json)?;
                    if args.record && file.sha256.is_none() {
                        learned.push(crate::record::LearnedHash {
                            card: entry.file.clone(),
                            model: entry.name().to_string(),
                            role: role.clone(),
                            file_name: spec.file_name.clone(),
                            sha256: fetched.sha256.clone(),
                        });
                    }
                }
                Err(err) => {
                    if err.is_verification_failure() {
                        status = Status::Failed;
                    }
                    failures.push(crate::source::next_steps(
                        &err,
                        &spec,
                        &cache,
                        crate::source::Retry::Fetch,
                    ));
                }
            }
        }
    }
    for f in &failures {
        eprintln!("error: {}", esc_text(f));
    }
    if !learned.is_empty() {
        for r in crate::record::record_hashes(&learned)? {
            eprintln!(
                "recorded Sha256: {} for {} of {} ({}) in {}",
                r.sha256,
                r.file_name,
                r.model,
                r.role,
                r.card.display()
            );
        }
    }
    if status == Status::Ok && !failures.is_empty() {
        anyhow::bail!("{} file(s) could not be fetched", failures.len());
    }
    Ok(status)
}

/// Runs `zoo fetch`.
pub fn run(
    args: FetchArgs,
    registry: impl FnOnce() -> anyhow::Result<crate::registry::Registry>,
) -> anyhow::Result<Status> {
    if !args.models.is_empty() || args.all {
        return run_registry(&args, &registry()?);
    }
    let file_name = match &args.name {
        Some(n) => n.clone(),
        None => name_from_url(&args.urls[0]).with_context(|| {
            format!(
                "cannot derive a file name from {}; pass --name",
                crate::fetch::redact_url(&args.urls[0])
            )
        })?,
    };
    let spec = FileSpec {
        file_name,
        urls: args.urls.clone(),
        size: args.size,
        sha256: args.sha256.clone(),
        sha256_prefix: args.sha256_prefix.clone(),
        entry: None,
        // One ad-hoc file: nothing says its name (often `model.safetensors`) is unique.
        unique_name: false,
    };
    let opts = options(&args, args.lock_file.clone())?;
    let warning = unverified_warning(&spec, opts.lock_file.as_deref());
    let cache = Cache::from_env()?;
    let result = if args.verify {
        match cache.verify(&spec, &opts) {
            Err(FetchError::NotCached { .. }) => cache.fetch(&spec, &opts),
            other => other,
        }
    } else {
        cache.fetch(&spec, &opts)
    };
    match result {
        Ok(fetched) => {
            if let Some(w) = &warning {
                eprintln!("{}", esc_text(w));
            }
            print_fetched(&fetched, args.json)?;
            Ok(Status::Ok)
        }
        Err(err) if err.is_verification_failure() => {
            eprintln!("error: verification failed: {}", esc_text(&err.to_string()));
            Ok(Status::Failed)
        }
        Err(err) => Err(err.into()),
    }
}

fn print_fetched(fetched: &Fetched, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(fetched)?);
        return Ok(());
    }
    let origin = match &fetched.origin {
        Origin::Cache => "cache".to_string(),
        Origin::Download { url } => format!("downloaded from {url}"),
        Origin::LocalFile { path } => format!("copied from {}", path.display()),
        Origin::TorchHub { path } => format!("reused torch.hub file {}", path.display()),
        Origin::HfCache { path } => format!("reused Hugging Face file {}", path.display()),
        Origin::Placed { path } => format!("taken in from {}", path.display()),
        Origin::LegacyCache { path } => format!("taken over from {}", path.display()),
    };
    let proof = match &fetched.proof {
        Proof::Sha256 => "matches the expected sha256".to_string(),
        Proof::Sha256Prefix { prefix, lock } => match lock {
            Some(lock) => format!(
                "matches sha256 prefix {prefix}; full hash pinned in {}",
                lock.display()
            ),
            None => format!("matches sha256 prefix {prefix}"),
        },
        Proof::FirstUse { lock } => match lock {
            Some(lock) => format!(
                "unverified: no hash to check; pinned on first use in {}",
                lock.display()
            ),
            None => "unverified: no hash to check".to_string(),
        },
    };
    let line = format!(
        "{}  {}  {} bytes  {} ({origin}; {proof})",
        fetched.sha256,
        fetched.file_name,
        fetched.size,
        fetched.path.display()
    );
    outln!("{}", esc_text(&line));
    Ok(())
}

/// Last non-empty path segment of a URL, without query or fragment.
fn name_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty() && !name.contains(':')).then(|| name.to_string())
}

/// indicatif bar on stderr (only created when stderr is a terminal).
#[derive(Default)]
struct BarSink {
    bar: Mutex<Option<ProgressBar>>,
}

impl ProgressSink for BarSink {
    fn start(&self, file_name: &str, _url: &str, total: Option<u64>, already: u64) {
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(esc_text(file_name).into_owned());
        bar.set_position(already);
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(bytes);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_from_url;

    #[test]
    fn byte_counts_take_binary_units() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("16G"), Ok(16 << 30));
        assert_eq!(parse_bytes("500m"), Ok(500 << 20));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("17179869184T").is_err());
        assert!(parse_bytes("5X").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn derives_names() {
        assert_eq!(
            name_from_url("https://h/a/b/model.safetensors?download=1").as_deref(),
            Some("model.safetensors")
        );
        assert_eq!(name_from_url("https://h/").as_deref(), Some("h"));
    }
}
