//! `zoo validate`: every claim of every selected model, checked, as one [`Report`].
//!
//! Each check ends as pass, fail or skipped-with-reason; a skipped check is never a pass.
//! Checks that need weights use only the cache unless fetching is allowed, so `--offline` runs
//! everything that needs no download.
use std::path::Path;

use crate::arch::Spec;
use crate::checkpoint;
use crate::convert::pipeline::{check_inference, InferenceCheck};
use crate::convert::WeightSet;
use crate::diagnostic::{Diagnostic, Severity};
use crate::fetch::{Cache, FetchError, FetchOptions, Fetched};
use crate::filesize::{self, Container, SaveLayout};
use crate::fingerprint::fingerprint;
use crate::flops::{self, Convention};
use crate::registry::{file_spec, ModelEntry, Registry};
use crate::report::{CheckKind, CheckResult, Report, Status};
use crate::schema::FileRole;

/// What `validate` may do.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Download missing weights (otherwise only the cache is used).
    pub fetch: bool,
    /// Never touch the network.
    pub offline: bool,
}

/// Model name used for registry-wide findings that belong to no model.
pub const REGISTRY_ROW: &str = "(registry)";

/// Estimated cost of validating a model: FLOPs at its image size, plus its download size.
pub fn cost(entry: &ModelEntry) -> f64 {
    let image = image_size(entry).unwrap_or(224);
    let flops = entry
        .arch()
        .ok()
        .and_then(|a| a.resolve().ok())
        .and_then(|s| flops::count(&s, Convention::Macs, flops::InputSize::square(image)).ok())
        .map_or(0.0, |n| n as f64);
    let bytes: f64 = entry
        .files()
        .iter()
        .filter_map(|f| f.size.as_ref())
        .map(|c| c.value as f64)
        .sum();
    flops * image as f64 / 1e9 + bytes / 1e6
}

fn image_size(entry: &ModelEntry) -> Option<usize> {
    entry
        .input()
        .and_then(|i| i.image_size.as_ref())
        .or(entry
            .model
            .metadata
            .as_ref()
            .and_then(|m| m.image_size.as_ref()))
        .map(|c| usize::try_from(c.value).unwrap_or(usize::MAX))
}

/// Error diagnostics that fall inside a model's entry: same file, from its first line up to the
/// next model's first line.
fn model_errors<'a>(registry: &'a Registry, entry: &ModelEntry) -> Vec<&'a Diagnostic> {
    let next = registry
        .models()
        .filter(|m| m.file == entry.file && m.pos.line > entry.pos.line)
        .map(|m| m.pos.line)
        .min()
        .unwrap_or(usize::MAX);
    registry
        .diagnostics()
        .iter()
        .filter(|d| {
            d.severity == Severity::Error
                && d.file == entry.file
                && d.line >= entry.pos.line
                && d.line < next
        })
        .collect()
}

/// Runs every check on `models`.
pub fn validate(
    registry: &Registry,
    models: &[&ModelEntry],
    opts: &ValidateOptions,
    cache: Option<&Cache>,
) -> Report {
    let mut results = vec![];
    for entry in models {
        results.extend(validate_model(registry, entry, opts, cache));
    }
    if !models.is_empty() {
        results.extend(docs_results(registry, models));
    }
    // Errors outside every model (a broken import, a bad collection) get a row of their own.
    let all: Vec<&ModelEntry> = registry.models().collect();
    let stray: Vec<String> = registry
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter(|d| !all.iter().any(|e| model_errors(registry, e).contains(d)))
        .map(ToString::to_string)
        .collect();
    if !stray.is_empty() {
        results.push(CheckResult::new(
            REGISTRY_ROW,
            CheckKind::Schema,
            Status::Fail,
            stray.join("; "),
        ));
    }
    Report::new(results)
}

fn lookup(
    cache: Option<&Cache>,
    registry: &Registry,
    entry: &ModelEntry,
    role: FileRole,
    opts: &ValidateOptions,
) -> Result<Option<Fetched>, FetchError> {
    let (Some(cache), Some(file)) = (cache, entry.file(role)) else {
        return Ok(None);
    };
    let spec = file_spec(file);
    let fopts = FetchOptions {
        offline: opts.offline || !opts.fetch,
        lock_file: Some(match registry.dir() {
            Some(d) => d.join("weights.lock"),
            None => cache.dir().join("weights.lock"),
        }),
        ..FetchOptions::default()
    };
    if opts.fetch && !opts.offline {
        cache.fetch(&spec, &fopts).map(Some)
    } else {
        cache.lookup(&spec, &fopts)
    }
}

fn validate_model(
    registry: &Registry,
    entry: &ModelEntry,
    opts: &ValidateOptions,
    cache: Option<&Cache>,
) -> Vec<CheckResult> {
    let name = entry.name();
    let mut out = vec![];
    let errors = model_errors(registry, entry);
    out.push(if errors.is_empty() {
        CheckResult::new(
            name,
            CheckKind::Schema,
            Status::Pass,
            "card parses; references resolve",
        )
    } else {
        CheckResult::new(
            name,
            CheckKind::Schema,
            Status::Fail,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    let spec = match entry.arch().and_then(|a| {
        a.resolve()
            .map_err(|error| crate::registry::RegistryError::Arch {
                model: name.into(),
                error,
            })
    }) {
        Ok(s) => s,
        Err(e) => {
            for check in [
                CheckKind::Flops,
                CheckKind::Params,
                CheckKind::FileSize,
                CheckKind::Inference,
            ] {
                out.push(CheckResult::new(
                    name,
                    check,
                    Status::Fail,
                    format!("no architecture: {e}"),
                ));
            }
            return out;
        }
    };
    let meta = entry.model.metadata.as_ref();
    let documented = |f: fn(&crate::schema::Metadata) -> Option<&crate::schema::Count>| {
        meta.and_then(f).map(|c| c.value)
    };
    out.push(flops_result(
        name,
        &spec,
        documented(|m| m.flops.as_ref()),
        image_size(entry),
    ));
    out.push(params_result(
        name,
        &spec,
        documented(|m| m.parameters.as_ref()),
    ));

    // Weights: the published .pth decides file size and checksum; the TF source feeds inference.
    let pth = lookup(cache, registry, entry, FileRole::TimmPth, opts);
    let tf = lookup(cache, registry, entry, FileRole::TfCheckpoint, opts);
    let pth_size = pth.as_ref().ok().and_then(|f| f.as_ref()).map(|f| f.size);
    out.push(size_result(
        name,
        &spec,
        documented(|m| m.file_size.as_ref()),
        pth_size,
    ));
    out.push(checksum_result(name, &pth, &tf));
    out.push(inference_result(name, entry, &spec, &tf));
    out.push(fingerprint_result(name, &spec, &pth, &tf));
    out
}

fn flops_result(
    name: &str,
    spec: &Spec,
    documented: Option<u64>,
    image: Option<usize>,
) -> CheckResult {
    let (Some(doc), Some(s)) = (documented, image) else {
        return CheckResult::new(
            name,
            CheckKind::Flops,
            Status::Skipped,
            "card has no FLOPs or no Image Size",
        );
    };
    let c = match flops::check_flops(spec, doc, s) {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::new(name, CheckKind::Flops, Status::Fail, e.to_string());
        }
    };
    let conv = format!(
        "{} at {}x{}",
        c.expected.convention.name(),
        c.expected.input.height,
        c.expected.input.width
    );
    if c.passed {
        CheckResult::new(
            name,
            CheckKind::Flops,
            Status::Pass,
            format!("exact under {conv}"),
        )
        .values(doc, c.expected.value)
    } else {
        let near = c
            .nearest
            .first()
            .map(|n| {
                format!(
                    "; nearest: {} at {}x{} = {} ({:+.2}%)",
                    n.count.convention.name(),
                    n.count.input.height,
                    n.count.input.width,
                    n.count.value,
                    n.relative * 100.0
                )
            })
            .unwrap_or_default();
        CheckResult::new(
            name,
            CheckKind::Flops,
            Status::Fail,
            format!("{conv} gives {}{near}", c.expected.value),
        )
        .values(doc, c.expected.value)
    }
}

fn params_result(name: &str, spec: &Spec, documented: Option<u64>) -> CheckResult {
    let Some(doc) = documented else {
        return CheckResult::new(
            name,
            CheckKind::Params,
            Status::Skipped,
            "card has no Parameters",
        );
    };
    let c = flops::check_params(spec, doc);
    let status = if c.outcome.passed() {
        Status::Pass
    } else {
        Status::Fail
    };
    CheckResult::new(
        name,
        CheckKind::Params,
        status,
        format!("exact {}: {}", c.exact, c.outcome),
    )
    .values(doc, c.rounded)
}

fn size_result(
    name: &str,
    spec: &Spec,
    documented: Option<u64>,
    actual: Option<u64>,
) -> CheckResult {
    let Some(doc) = documented else {
        return CheckResult::new(
            name,
            CheckKind::FileSize,
            Status::Skipped,
            "card has no File Size",
        );
    };
    let layout = SaveLayout::timm_2020_release(name);
    let c = filesize::check_file_size(spec, doc, Container::Legacy, &layout, actual);
    let how = match actual {
        Some(a) => format!(
            "cached file is {a} bytes; legacy torch.save prediction {}",
            c.predicted.total
        ),
        None => "legacy (pre-1.6) torch.save prediction; file not cached".to_string(),
    };
    let status = if c.passed { Status::Pass } else { Status::Fail };
    CheckResult::new(name, CheckKind::FileSize, status, how)
        .values(doc, actual.unwrap_or(c.predicted.total))
}

fn fetch_failure(name: &str, check: CheckKind, e: &FetchError) -> CheckResult {
    let status = if e.is_verification_failure() {
        Status::Fail
    } else {
        Status::Skipped
    };
    CheckResult::new(name, check, status, e.to_string())
}

fn checksum_result(
    name: &str,
    pth: &Result<Option<Fetched>, FetchError>,
    tf: &Result<Option<Fetched>, FetchError>,
) -> CheckResult {
    let mut verified = vec![];
    for r in [pth, tf] {
        match r {
            Err(e) => return fetch_failure(name, CheckKind::Checksum, e),
            Ok(Some(f)) => verified.push(format!("{} sha256 {}", f.file_name, f.sha256)),
            Ok(None) => {}
        }
    }
    if verified.is_empty() {
        CheckResult::new(
            name,
            CheckKind::Checksum,
            Status::Skipped,
            "weights not cached",
        )
    } else {
        CheckResult::new(
            name,
            CheckKind::Checksum,
            Status::Pass,
            format!("verified: {}", verified.join(", ")),
        )
    }
}

fn inference_result(
    name: &str,
    entry: &ModelEntry,
    spec: &Spec,
    tf: &Result<Option<Fetched>, FetchError>,
) -> CheckResult {
    let reference = entry.reference();
    let source = match tf {
        Err(e) => return fetch_failure(name, CheckKind::Inference, e),
        Ok(None) => {
            return CheckResult::new(
                name,
                CheckKind::Inference,
                Status::Skipped,
                "weights not cached",
            )
        }
        Ok(Some(f)) => f,
    };
    if reference.is_none() {
        return CheckResult::new(
            name,
            CheckKind::Inference,
            Status::Skipped,
            "no reference vectors for this model",
        );
    }
    let run = || -> anyhow::Result<InferenceCheck> {
        let opened = checkpoint::open(&source.path, Some(spec), WeightSet::Ema)?;
        Ok(check_inference(spec, &opened.tensors, reference.as_ref())?)
    };
    match run() {
        Ok(InferenceCheck::Skipped { reason }) => {
            CheckResult::new(name, CheckKind::Inference, Status::Skipped, reason)
        }
        Ok(InferenceCheck::Ran(c)) => {
            let status = if c.passed { Status::Pass } else { Status::Fail };
            let detail = format!(
                "converted {} (EMA) and ran it: top-1 agree {:.0}%, top-5 {:.0}%, tolerance {:.0e}{}",
                source.file_name,
                c.top1_agree * 100.0,
                c.top5_agree * 100.0,
                c.tolerance,
                if c.passed { "" } else { "; likely cause: wrong weight set, layout or padding" }
            );
            CheckResult::new(name, CheckKind::Inference, status, detail).values(
                format!("|Δlogit| <= {:.0e}", c.tolerance),
                format!("{:.3e}", c.max_abs),
            )
        }
        Err(e) => CheckResult::new(name, CheckKind::Inference, Status::Fail, format!("{e:#}")),
    }
}

fn fingerprint_result(
    name: &str,
    spec: &Spec,
    pth: &Result<Option<Fetched>, FetchError>,
    tf: &Result<Option<Fetched>, FetchError>,
) -> CheckResult {
    let (Ok(Some(p)), Ok(Some(t))) = (pth, tf) else {
        return CheckResult::new(
            name,
            CheckKind::Fingerprint,
            Status::Skipped,
            "needs both the TF source and timm's .pth cached",
        );
    };
    let fp = |path: &Path| -> anyhow::Result<String> {
        let o = checkpoint::open(path, Some(spec), WeightSet::Ema)?;
        Ok(fingerprint(o.tensors.iter().map(|(k, t)| (k, t))).fingerprint)
    };
    match (fp(&t.path), fp(&p.path)) {
        (Ok(a), Ok(b)) if a == b => CheckResult::new(
            name,
            CheckKind::Fingerprint,
            Status::Pass,
            "TF conversion equals timm's release",
        )
        .values(&b, &a),
        (Ok(a), Ok(b)) => CheckResult::new(
            name,
            CheckKind::Fingerprint,
            Status::Fail,
            "TF conversion differs from timm's release; run `zoo diff` on the two files",
        )
        .values(&b, &a),
        (Err(e), _) | (_, Err(e)) => {
            CheckResult::new(name, CheckKind::Fingerprint, Status::Fail, format!("{e:#}"))
        }
    }
}

/// Whether each model's cards (its collection's Papers-with-Code card and its Hub card),
/// regenerated from the registry, equal the ones kept in the registry.
pub fn docs_results(registry: &Registry, models: &[&ModelEntry]) -> Vec<CheckResult> {
    let cards = match crate::docs::render(registry, &crate::docs::CardFormat::ALL) {
        Ok(c) => c,
        Err(e) => {
            return models
                .iter()
                .map(|m| {
                    CheckResult::new(
                        m.name(),
                        CheckKind::Docs,
                        // A registry that keeps no card templates has no cards to keep in sync.
                        match e {
                            crate::docs::DocsError::MissingTemplate { .. } => Status::Skipped,
                            _ => Status::Fail,
                        },
                        format!("cards cannot be rendered: {e}"),
                    )
                })
                .collect();
        }
    };
    models
        .iter()
        .map(|m| {
            let mine: Vec<_> = cards
                .iter()
                .filter(|c| c.models.iter().any(|n| n == m.name()))
                .collect();
            if mine.is_empty() {
                return CheckResult::new(
                    m.name(),
                    CheckKind::Docs,
                    Status::Skipped,
                    "no card renders this model",
                );
            }
            let mut in_sync = vec![];
            for card in mine {
                let rel = card.path.to_string_lossy().replace('\\', "/");
                match registry.read_file(&rel) {
                    Ok(committed) if committed == card.text => {
                        in_sync.push(format!("registry/{rel}"))
                    }
                    Ok(_) => {
                        return CheckResult::new(
                            m.name(),
                            CheckKind::Docs,
                            Status::Fail,
                            format!("registry/{rel} is stale: run `zoo docs`"),
                        )
                    }
                    Err(e) => {
                        return CheckResult::new(
                            m.name(),
                            CheckKind::Docs,
                            Status::Fail,
                            format!("registry/{rel}: {e}"),
                        )
                    }
                }
            }
            CheckResult::new(
                m.name(),
                CheckKind::Docs,
                Status::Pass,
                format!("{} in sync", in_sync.join(" and ")),
            )
        })
        .collect()
}
