//! `zoo validate`: every claim of every selected model, checked, as one [`Report`].
//!
//! Each check ends as pass, fail, pinned or skipped-with-reason; neither a skipped nor a pinned
//! check is a pass. Checks that need weights use only the cache unless fetching is allowed, so
//! `--offline` runs everything that needs no download; when fetching is allowed, a download
//! that fails is a failure (naming the URL and the cause), never a skip.
//!
//! Every field of a card that has a second source is compared with it: FLOPs, Parameters and
//! File Size with what the architecture gives; Metadata `Image Size`, `Crop Pct` and
//! `Interpolation` with `Zoo: Input`; Top-1/Top-5 results with the `Zoo: Reported` sources. A
//! failure names the `file:line:col` of the card's value ([`CheckResult::location`]).
//!
//! Findings about the registry as a whole (errors outside every model, the generated cards)
//! are [`registry_results`], one row per card: a collection edit makes one card stale, not
//! every model in it.
use std::path::{Path, PathBuf};

use crate::arch::Network;
use crate::checkpoint;
use crate::convert::pipeline::{check_inference, InferenceCheck};
use crate::convert::WeightSet;
use crate::diagnostic::{Diagnostic, Severity};
use crate::fetch::{Cache, FetchError, Fetched, Proof};
use crate::filesize::{self, Container, SaveLayout};
use crate::fingerprint::fingerprint;
use crate::flops::InputSize;
use crate::flops::{self, Convention};
use crate::lookup;
use crate::registry::{ModelEntry, Registry, Selection, UnreadableModel};
use crate::report::{CheckKind, CheckResult, Report, Run, Status};
use crate::schema::{Count, FileRole, Measure};
use crate::source::{self, Located, SourceOptions};

/// What `validate` may do.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Download missing weights (otherwise only the cache is used).
    pub fetch: bool,
    /// Never touch the network.
    pub offline: bool,
    /// URL prefixes tried before the files' own URLs (the `wget -m` layout, see `--mirror`).
    pub mirrors: Vec<String>,
    /// `--dataset DIR`: measure each model whose weights are cached on this dataset.
    pub eval: Option<EvalOptions>,
}

/// How `zoo validate --dataset` measures accuracy.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The dataset, opened once.
    pub dataset: std::sync::Arc<crate::eval::dataset::Dataset>,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Decode/resize threads.
    pub workers: usize,
}

/// Model name used for registry-wide findings that belong to no model.
pub use crate::report::REGISTRY_ROW;

/// How far a card's Top-1/Top-5 may be from a `Zoo: Reported` source, in percentage points.
///
/// 0.3 pp is the sum of the spreads measured for the same weights (reference notes,
/// eval-pipeline.md): a different decoder and resize pipeline (TF vs PIL preprocessing) moves
/// these models by up to 0.15 pp; timm's own results drift by up to 0.09 pp across versions;
/// the TF README prints one decimal, so its numbers are within 0.05 pp of what it measured.
/// Anything further apart is a different number, not the same measurement retold.
pub const ACCURACY_TOLERANCE_PP: f64 = 0.3;

/// How far from the card's `Image Size` the FLOPs check looks for a size that gives the
/// documented FLOPs exactly (a mistyped or stale `Image Size` shows up this way).
pub const NEARBY_IMAGE_SIZES: usize = 64;

/// Estimated cost of validating a model: FLOPs at its image size, plus its download size.
pub fn cost(entry: &ModelEntry) -> f64 {
    let image = lookup::card_flops(entry).image_size.unwrap_or(224);
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

/// Runs every check on the selection, and the registry-wide ones ([`registry_results`]), as
/// one unsharded report of `run`.
pub fn validate(
    registry: &Registry,
    selection: &Selection<'_>,
    run: Run,
    opts: &ValidateOptions,
    cache: Option<&Cache>,
) -> Report {
    let mut results = vec![];
    for entry in &selection.models {
        results.extend(validate_model(registry, entry, opts, cache));
    }
    for u in &selection.unreadable {
        results.extend(unreadable_results(u));
    }
    results.extend(registry_results(registry, &selection.names()));
    Report::for_run(run, results)
}

/// The checks of every model that fail without weights (schema, input, FLOPs, parameters,
/// predicted file size, accuracy): whether the registry passes its own checks.
pub fn failing_checks(registry: &Registry) -> Vec<CheckResult> {
    let opts = ValidateOptions {
        fetch: false,
        offline: true,
        mirrors: vec![],
        eval: None,
    };
    let mut failing: Vec<CheckResult> = registry
        .models()
        .flat_map(|m| validate_model(registry, m, &opts, None))
        .filter(|r| r.status == Status::Fail)
        .collect();
    failing.extend(
        registry_results(registry, &[])
            .into_iter()
            .filter(|r| r.status == Status::Fail),
    );
    failing
}

/// The rows of a model whose file does not parse: its schema check fails at the file's error.
pub fn unreadable_results(u: &UnreadableModel) -> Vec<CheckResult> {
    vec![CheckResult::new(
        &u.name,
        CheckKind::Schema,
        Status::Fail,
        // The same words for every model of the file, so that reports can show it once.
        format!(
            "{}: {}; {} does not parse, so none of its models could be checked",
            u.error.severity,
            u.error.message,
            u.file.display()
        ),
    )
    .at(
        &u.error.file,
        crate::diagnostic::Pos::new(u.error.line, u.error.col),
    )]
}

/// Findings about the registry as a whole, reported once per run (by the unsharded run, or by
/// shard 1): errors that fall inside no model (one [`REGISTRY_ROW`] row), and one `docs` row per
/// generated card that covers a model of `selected`.
pub fn registry_results(registry: &Registry, selected: &[String]) -> Vec<CheckResult> {
    let mut results = vec![];
    let all: Vec<&ModelEntry> = registry.models().collect();
    let mut claimed: Vec<&Diagnostic> =
        all.iter().flat_map(|e| model_errors(registry, e)).collect();
    claimed.extend(
        registry
            .unreadable()
            .iter()
            .filter(|u| !u.models.is_empty())
            .map(|u| &u.error),
    );
    let stray: Vec<String> = registry
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter(|d| !claimed.contains(d))
        .map(ToString::to_string)
        .collect();
    if !stray.is_empty() {
        results.push(CheckResult::new(
            REGISTRY_ROW,
            CheckKind::Schema,
            Status::Fail,
            stray.join("\n"),
        ));
    }
    if !selected.is_empty() {
        results.extend(card_results(registry, selected));
    }
    results
}

fn lookup(
    cache: Option<&Cache>,
    registry: &Registry,
    entry: &ModelEntry,
    role: FileRole,
    opts: &ValidateOptions,
) -> Located {
    let Some(cache) = cache else {
        return Located {
            role,
            spec: None,
            result: Ok(None),
        };
    };
    let sopts = SourceOptions {
        offline: opts.offline,
        download: opts.fetch && !opts.offline,
        mirrors: opts.mirrors.clone(),
    };
    source::locate(cache, registry, entry, role, &sopts)
}

/// Every check of one model (without the registry-wide ones).
pub fn validate_model(
    registry: &Registry,
    entry: &ModelEntry,
    opts: &ValidateOptions,
    cache: Option<&Cache>,
) -> Vec<CheckResult> {
    let name = entry.name();
    let mut out = vec![];
    let errors = model_errors(registry, entry);
    out.push(match errors.first() {
        None => CheckResult::new(
            name,
            CheckKind::Schema,
            Status::Pass,
            "card parses; references resolve",
        ),
        Some(first) => CheckResult::new(
            name,
            CheckKind::Schema,
            Status::Fail,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .at(
            &first.file,
            crate::diagnostic::Pos::new(first.line, first.col),
        ),
    });
    out.push(input_result(entry));
    out.push(accuracy_result(entry));
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
    let documented = |f: fn(&crate::schema::Metadata) -> Option<&Count>| meta.and_then(f);
    out.push(flops_result(entry, &spec, documented(|m| m.flops.as_ref())));
    out.push(params_result(
        entry,
        &spec,
        documented(|m| m.parameters.as_ref()),
    ));

    // Weights: the published .pth decides file size and checksum; the TF source feeds inference.
    let pth = lookup(cache, registry, entry, FileRole::TimmPth, opts);
    let tf = lookup(cache, registry, entry, FileRole::TfCheckpoint, opts);
    let pth_size = pth
        .result
        .as_ref()
        .ok()
        .and_then(|f| f.as_ref())
        .map(|f| f.size);
    out.push(size_result(
        entry,
        &spec,
        documented(|m| m.file_size.as_ref()),
        pth_size,
    ));
    out.push(checksum_result(name, &[&pth, &tf], cache));
    // The TF source, mapped and read once for both checks that need it (a release tarball is
    // unpacked once, not once per check).
    let tf_opened = match &tf.result {
        Ok(Some(f)) => Some(
            checkpoint::open(&f.path, Some(&spec), WeightSet::Ema).map_err(anyhow::Error::from),
        ),
        _ => None,
    };
    out.push(inference_result(
        name,
        entry,
        &spec,
        &tf,
        tf_opened.as_ref(),
        cache,
    ));
    out.push(fingerprint_result(
        name,
        &spec,
        &pth.result,
        tf_opened.as_ref(),
    ));
    if let Some(eval) = &opts.eval {
        out.push(measured_result(entry, &[&pth, &tf], cache, eval));
    }
    out
}

/// Where `zoo validate --dataset` keeps measured results: `<cache>/eval/<key>.json`, the key a
/// sha256 over everything the counts depend on.
pub fn eval_cache_path(
    cache: &Cache,
    model: &str,
    weights_sha256: &str,
    manifest: &crate::eval::dataset::Manifest,
    transform: &str,
) -> PathBuf {
    let key = sha256_hex(
        format!(
            "zoo {}\npipeline {}\nmodel {model}\nweights {weights_sha256}\ndataset {} {} {}\ntransform {transform}\n",
            env!("CARGO_PKG_VERSION"),
            crate::eval::model::PIPELINE_VERSION,
            serde_json::to_string(&manifest.layout).unwrap_or_default(),
            manifest.images,
            manifest.listing_sha256,
        )
        .as_bytes(),
    );
    cache.dir().join("eval").join(format!("{key}.json"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The measured-accuracy check: the first cached weights file (published `.pth`, else the TF
/// checkpoint) evaluated on `--dataset`, judged against every documented value; results are
/// cached by (weights sha256, dataset listing, pipeline and zoo version, model input).
fn measured_result(
    entry: &ModelEntry,
    weights: &[&Located],
    cache: Option<&Cache>,
    eval: &EvalOptions,
) -> CheckResult {
    use crate::eval::model::{documented_values, eval_model, EvalReport, EvalRequest};
    let name = entry.name();
    let new = |status, detail: String| CheckResult::new(name, CheckKind::Measured, status, detail);
    if let Some((w, e)) = weights
        .iter()
        .find_map(|w| w.result.as_ref().err().map(|e| (w, e)))
    {
        return new(Status::Fail, failure_detail(w, e, cache));
    }
    let Some(file) = weights
        .iter()
        .find_map(|w| w.result.as_ref().ok().and_then(|f| f.as_ref()))
    else {
        return new(
            Status::Skipped,
            "weights not cached (`zoo fetch NAME`, or `zoo validate --fetch`)".into(),
        );
    };
    if !crate::torch::available() {
        return new(
            Status::Skipped,
            "zoo was built without the `torch` feature".into(),
        );
    }
    let Some(cache) = cache else {
        return new(Status::Skipped, "no cache directory".into());
    };
    let ds = &eval.dataset;
    let manifest = ds.manifest();
    let input = format!("{:?}", entry.input());
    let path = eval_cache_path(cache, name, &file.sha256, &manifest, &input);
    let cached: Option<EvalReport> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (mut report, was_cached) = match cached {
        Some(r) => (r, true),
        None => {
            let req = EvalRequest {
                dataset: ds,
                weights: &file.path,
                selection: crate::eval::dataset::Selection::All,
                shard: crate::report::Shard::ALL,
                device: crate::eval::model::Device::Cpu,
                half: false,
                run: crate::eval::run::RunOptions::new(eval.batch_size, eval.workers),
                real_labels: None,
                pass_order: crate::eval::PassOrder::default(),
                normalize: crate::eval::Normalize::default(),
            };
            match eval_model(entry, &req, |_| {}) {
                Ok(r) => {
                    if let Err(e) = store_atomically(&path, &r) {
                        return new(
                            Status::Fail,
                            format!("measured, but the result could not be cached: {e}"),
                        );
                    }
                    (r, false)
                }
                Err(e) => {
                    return new(
                        Status::Fail,
                        format!("{} on {}: {e}", file.file_name, ds.root.display()),
                    )
                }
            }
        }
    };
    report.documented = documented_values(entry);
    report.conclude();
    let o = &report.outcome;
    let mut detail = format!(
        "{} on {} ({} images): top-1 {:.3}% ({}/{}), top-5 {:.3}% ({}/{}){}",
        file.file_name,
        ds.root.display(),
        manifest.images,
        report.top1,
        o.top1,
        o.n,
        report.top5,
        o.top5,
        o.n,
        if was_cached { " [cached result]" } else { "" }
    );
    for j in &report.verdicts {
        detail.push_str(&format!(
            "; {} {} {} vs {}: documented {:.3}, measured {:.3}",
            if j.verdict.pass { "pass" } else { "FAIL" },
            j.benchmark.as_str(),
            j.metric,
            j.source,
            j.verdict.documented,
            j.verdict.measured
        ));
    }
    if report.verdicts.is_empty() {
        let why = report
            .verdict_skipped
            .clone()
            .unwrap_or_else(|| "nothing documented to judge against".into());
        return new(Status::Skipped, format!("{detail}; not judged: {why}"));
    }
    let status = if report.passed() {
        Status::Pass
    } else {
        Status::Fail
    };
    let first = &report.verdicts[0];
    new(status, detail).values(
        format!("{:.3}", first.verdict.documented),
        format!("{:.3}", first.verdict.measured),
    )
}

/// Writes `report` (without per-image predictions) to `path`: a temporary file, then renamed.
fn store_atomically(path: &Path, report: &crate::eval::model::EvalReport) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut r = report.clone();
    r.outcome.predictions.clear();
    r.outcome.image_sha256.clear();
    let bytes = serde_json::to_vec(&r).map_err(std::io::Error::other)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn flops_result(entry: &ModelEntry, spec: &Network, documented: Option<&Count>) -> CheckResult {
    let name = entry.name();
    let card = lookup::card_flops(entry);
    let (Some(doc_count), Some(s), Some((counted, declared))) =
        (documented, card.image_size, card.checked_as())
    else {
        return CheckResult::new(
            name,
            CheckKind::Flops,
            Status::Skipped,
            "card has no FLOPs or no Image Size",
        );
    };
    let doc = doc_count.value;
    let c = match flops::check_flops(spec, doc, s, counted.convention, counted.input) {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::new(name, CheckKind::Flops, Status::Fail, e.to_string());
        }
    };
    let conv = format!(
        "{} at {}x{}{}",
        c.expected.convention.name(),
        c.expected.input.height,
        c.expected.input.width,
        if declared {
            " (`Zoo: Flops`)"
        } else {
            " (no `Zoo: Flops` on the card; timm's cards were counted so)"
        }
    );
    if c.passed {
        return CheckResult::new(
            name,
            CheckKind::Flops,
            Status::Pass,
            format!("exact under {conv}"),
        )
        .values(doc, c.expected.value)
        .at(&entry.file, doc_count.raw.pos);
    }
    let diff = doc as i128 - c.expected.value as i128;
    let mut detail = format!(
        "the card's value is {} {} than {conv} gives",
        diff.unsigned_abs(),
        if diff > 0 { "more" } else { "fewer" }
    );
    if let Some(n) = c.nearest.first().filter(|n| n.count != c.expected) {
        detail.push_str(&format!(
            "; nearest convention at Image Size {s}: {} at {}x{} = {} ({:+})",
            n.count.convention.name(),
            n.count.input.height,
            n.count.input.width,
            n.count.value,
            n.difference
        ));
    }
    if c.nearest.first().is_none_or(|n| n.difference != 0) {
        let found = nearby_image_sizes(spec, doc, s);
        if found.is_empty() {
            detail.push_str(&format!(
                "; no convention gives it at any Image Size within {NEARBY_IMAGE_SIZES} of {s}"
            ));
        } else {
            detail.push_str(&format!("; {}", describe_nearby(&found, s)));
        }
    }
    CheckResult::new(name, CheckKind::Flops, Status::Fail, detail)
        .values(doc, c.expected.value)
        .at(&entry.file, doc_count.raw.pos)
}

/// Every image size within [`NEARBY_IMAGE_SIZES`] of `s` (not `s`) at which some convention
/// gives exactly `documented`, with the first such count, nearest size first: searched over the inputs the
/// FLOPs check considers (square, the 1546:1213 rule, and its transpose). More than one size
/// can give the same count (with TF 'same' padding, S and S+1 often do), so all are kept.
fn nearby_image_sizes(spec: &Network, documented: u64, s: usize) -> Vec<(usize, flops::Count)> {
    let mut sizes: Vec<usize> = (s.saturating_sub(NEARBY_IMAGE_SIZES).max(1)
        ..=s + NEARBY_IMAGE_SIZES)
        .filter(|&x| x != s)
        .collect();
    sizes.sort_by_key(|&x| (x.abs_diff(s), x));
    let mut found = vec![];
    for size in sizes {
        let inputs = [
            InputSize::square(size),
            InputSize::thop_2020(size),
            InputSize::thop_2020(size).transposed(),
        ];
        for input in inputs {
            let Ok(walked) = flops::layers(spec, input) else {
                continue;
            };
            for convention in Convention::ALL {
                let value: u64 = walked.iter().map(|l| l.count(convention)).sum();
                let count = flops::Count {
                    convention,
                    input,
                    value,
                };
                // One count per size (the first of square, rule, transpose): the sizes are
                // what differ, and a transposed input often counts the same.
                if value == documented && !found.iter().any(|(at, _)| *at == size) {
                    found.push((size, count));
                }
            }
        }
    }
    found
}

/// The sizes of [`nearby_image_sizes`] in words, every one named: "exactly macs at 463x463
/// or 464x464, i.e. Image Size 463 or 464 (463 is nearest to 456), not 456".
fn describe_nearby(found: &[(usize, flops::Count)], s: usize) -> String {
    let counts: Vec<String> = found
        .iter()
        .map(|(_, c)| format!("{} at {}", c.convention.name(), c.input))
        .collect();
    let mut sizes: Vec<usize> = found.iter().map(|(size, _)| *size).collect();
    sizes.dedup();
    let nearest = sizes[0];
    let mut listed = sizes.clone();
    listed.sort_unstable();
    let listed: Vec<String> = listed.iter().map(usize::to_string).collect();
    if sizes.len() == 1 {
        format!(
            "the card's value is exactly {}, i.e. Image Size {nearest}, not {s}",
            counts.join(" or ")
        )
    } else {
        format!(
            "the card's value is exactly {}, i.e. Image Size {} (each gives this count; {nearest} \
             is nearest to {s}), not {s}",
            counts.join(" or "),
            listed.join(" or ")
        )
    }
}

fn params_result(entry: &ModelEntry, spec: &Network, documented: Option<&Count>) -> CheckResult {
    let name = entry.name();
    let Some(doc_count) = documented else {
        return CheckResult::new(
            name,
            CheckKind::Params,
            Status::Skipped,
            "card has no Parameters",
        );
    };
    let doc = doc_count.value;
    let c = flops::check_params(spec, doc);
    let (status, matched, detail) = match c.outcome {
        flops::ParamsOutcome::Exact => (
            Status::Pass,
            c.exact,
            format!("exact {}: {}", c.exact, c.outcome),
        ),
        flops::ParamsOutcome::Mismatch => {
            let diff = doc as i128 - c.rounded as i128;
            (
                Status::Fail,
                c.rounded,
                format!(
                    "exact {}, which the card's rounding int(round(n/1e6, 2)*1e6) makes {}; the card's value is {} {}: {}",
                    c.exact,
                    c.rounded,
                    diff.unsigned_abs(),
                    if diff > 0 { "more" } else { "fewer" },
                    c.outcome
                ),
            )
        }
        _ => (
            Status::Pass,
            c.rounded,
            format!("exact {}: {}", c.exact, c.outcome),
        ),
    };
    CheckResult::new(name, CheckKind::Params, status, detail)
        .values(doc, matched)
        .at(&entry.file, doc_count.raw.pos)
}

fn size_result(
    entry: &ModelEntry,
    spec: &Network,
    documented: Option<&Count>,
    actual: Option<u64>,
) -> CheckResult {
    let name = entry.name();
    let Some(doc_count) = documented else {
        return CheckResult::new(
            name,
            CheckKind::FileSize,
            Status::Skipped,
            "card has no File Size",
        );
    };
    let doc = doc_count.value;
    // The container and zip root the card declares, as `zoo docs` predicts them.
    let card = lookup::card_pth(entry);
    let declared = card.as_ref().and_then(|c| c.container);
    let container = declared.unwrap_or(Container::Legacy);
    let layout = card.map_or_else(|| SaveLayout::timm_2020_release(name), |c| c.layout);
    let c = filesize::check_file_size(spec, doc, container, &layout, actual);
    let result = |status, detail: String| {
        CheckResult::new(name, CheckKind::FileSize, status, detail)
            .values(doc, actual.unwrap_or(c.predicted.total))
            .predicted(actual.is_none())
            .at(&entry.file, doc_count.raw.pos)
    };
    let saved = container.describe();
    let format = match declared {
        Some(d) => format!(" (`Format: {}`)", d.format_name()),
        None => " (the card declares no `.pth` `Format`; assumed pth-legacy)".to_string(),
    };
    let cached = |a: u64| format!("cached file is {a} bytes; ");
    if c.passed {
        let how = match actual {
            Some(a) => format!(
                "{}{saved} prediction {}{format}",
                cached(a),
                c.predicted.total
            ),
            None => {
                format!("{saved} layout{format}; the file is not cached, so this is a prediction")
            }
        };
        return result(Status::Pass, how);
    }
    let default = format!(
        "{saved}{format} with {} predicts {} ({:+} bytes from the card)",
        layout.metadata.describe(),
        c.predicted.total,
        i128::from(doc) - i128::from(c.predicted.total)
    );
    if actual.is_some_and(|a| a != doc) {
        return result(
            Status::Fail,
            format!("{}{default}", cached(actual.unwrap_or(0))),
        );
    }
    let others: Vec<_> = filesize::other_layouts(spec, container, &layout).collect();
    match others.iter().find(|(_, p)| p.total == doc) {
        Some((l, _)) => result(
            Status::Explained,
            format!(
                "{}the card is exactly a {saved}{format} with {}; {:+} bytes from {}",
                actual.map(cached).unwrap_or_default(),
                l.metadata.describe(),
                i128::from(doc) - i128::from(c.predicted.total),
                layout.metadata.describe()
            ),
        ),
        None => {
            let others: Vec<String> = others
                .iter()
                .map(|(l, p)| format!("{} {}", l.metadata.describe(), p.total))
                .collect();
            result(
                Status::Fail,
                format!(
                    "{}{default}; no known layout gives the card's value ({}){}",
                    actual.map(cached).unwrap_or_default(),
                    others.join(", "),
                    if actual.is_some() {
                        ""
                    } else {
                        "; the file is not cached, so these are predictions"
                    }
                ),
            )
        }
    }
}

/// Why a weight file could not be had or did not verify, naming the file, each URL with its
/// cause, and (for a download that failed) where to put the file instead.
fn failure_detail(w: &Located, e: &FetchError, cache: Option<&Cache>) -> String {
    let file = w
        .spec
        .as_ref()
        .map_or_else(|| w.role.as_str().to_string(), |s| s.file_name.clone());
    let causes = e.causes().join("; ");
    if e.is_verification_failure() {
        return format!("{file}: {causes}");
    }
    let unavailable = matches!(
        e,
        FetchError::AllSourcesFailed { .. }
            | FetchError::NoUrls { .. }
            | FetchError::Offline { .. }
    );
    let place = w
        .spec
        .as_ref()
        .zip(cache)
        .and_then(|(s, c)| c.source_path(s));
    match place {
        Some(path) if unavailable => format!(
            "{file} could not be downloaded: {causes}; put the file at {}, or pass --mirror URL",
            path.display()
        ),
        _ if unavailable => format!("{file} could not be downloaded: {causes}"),
        _ => format!("{file}: {causes}"),
    }
}

/// The registry's claim about the weights' bytes. Pass only when a hash from the registry (full,
/// or a prefix with the full hash pinned from the file that matched it) vouches for every file
/// found; pinned when a file was only trusted on first use; fail when a file could not be had
/// (with fetching allowed) or did not verify.
fn checksum_result(name: &str, weights: &[&Located], cache: Option<&Cache>) -> CheckResult {
    let mut failed = vec![];
    let mut verified = vec![];
    let mut pinned = vec![];
    for w in weights {
        match &w.result {
            Err(e) => failed.push(failure_detail(w, e, cache)),
            Ok(None) => {}
            Ok(Some(f)) => match &f.proof {
                Proof::Sha256 => verified.push(format!(
                    "{} sha256 {} (the registry's sha256)",
                    f.file_name, f.sha256
                )),
                Proof::Sha256Prefix { prefix, lock } => verified.push(format!(
                    "{} sha256 {} (the registry's prefix {prefix}{})",
                    f.file_name,
                    f.sha256,
                    lock.as_ref()
                        .map(|l| format!("; full hash pinned in {}", l.display()))
                        .unwrap_or_default()
                )),
                Proof::FirstUse { lock } => pinned.push(format!(
                    "{} sha256 {}: the registry has no sha256 for it; pinned on first use{} \
                     (`zoo fetch {name} --role {} --record` writes it into the registry)",
                    f.file_name,
                    f.sha256,
                    lock.as_ref()
                        .map(|l| format!(" in {}", l.display()))
                        .unwrap_or_default(),
                    w.role.as_str()
                )),
            },
        }
    }
    let verified = (!verified.is_empty()).then(|| format!("verified: {}", verified.join(", ")));
    let pinned = (!pinned.is_empty()).then(|| format!("not verified: {}", pinned.join(", ")));
    if !failed.is_empty() {
        let rest: Vec<String> = [pinned, verified].into_iter().flatten().collect();
        let mut detail = failed.join("; ");
        if !rest.is_empty() {
            detail = format!("{detail}; {}", rest.join("; "));
        }
        return CheckResult::new(name, CheckKind::Checksum, Status::Fail, detail);
    }
    match (pinned, verified) {
        (Some(p), v) => CheckResult::new(
            name,
            CheckKind::Checksum,
            Status::Pinned,
            [Some(p), v]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, Some(v)) => CheckResult::new(name, CheckKind::Checksum, Status::Pass, v),
        (None, None) => CheckResult::new(
            name,
            CheckKind::Checksum,
            Status::Skipped,
            "weights not cached",
        ),
    }
}

fn inference_result(
    name: &str,
    entry: &ModelEntry,
    spec: &Network,
    tf: &Located,
    opened: Option<&anyhow::Result<checkpoint::Opened>>,
    cache: Option<&Cache>,
) -> CheckResult {
    let reference = entry.reference();
    let (source, opened) = match (&tf.result, opened) {
        (Err(e), _) => {
            return CheckResult::new(
                name,
                CheckKind::Inference,
                Status::Fail,
                failure_detail(tf, e, cache),
            )
        }
        (Ok(Some(f)), Some(Ok(o))) => (f, o),
        (Ok(Some(_)), Some(Err(e))) => {
            return CheckResult::new(name, CheckKind::Inference, Status::Fail, format!("{e:#}"))
        }
        (Ok(_), _) => {
            return CheckResult::new(
                name,
                CheckKind::Inference,
                Status::Skipped,
                "weights not cached",
            )
        }
    };
    if reference.is_none() {
        // Nothing to run the model against, but the checkpoint was still mapped onto the
        // architecture (every tensor it needs, with its shape): a checkpoint of another
        // architecture failed above, with the diagnosis. One wording for every model, so the
        // skips group into one line.
        return CheckResult::new(
            name,
            CheckKind::Inference,
            Status::Skipped,
            "no reference vectors for this model (its checkpoint does map onto the architecture: every tensor there, with its shape)",
        );
    }
    match check_inference(spec, &opened.tensors, reference.as_ref()) {
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
        Err(e) => CheckResult::new(
            name,
            CheckKind::Inference,
            Status::Fail,
            format!("{:#}", anyhow::Error::from(e)),
        ),
    }
}

fn fingerprint_result(
    name: &str,
    spec: &Network,
    pth: &Result<Option<Fetched>, FetchError>,
    tf: Option<&anyhow::Result<checkpoint::Opened>>,
) -> CheckResult {
    let (Ok(Some(p)), Some(t)) = (pth, tf) else {
        return CheckResult::new(
            name,
            CheckKind::Fingerprint,
            Status::Skipped,
            "needs both the TF source and timm's .pth cached",
        );
    };
    let of =
        |o: &checkpoint::Opened| fingerprint(o.tensors.iter().map(|(k, t)| (k, t))).fingerprint;
    let tf_fp = t.as_ref().map(of).map_err(|e| format!("{e:#}"));
    let pth_fp = checkpoint::open(&p.path, Some(spec), WeightSet::Ema)
        .map(|o| of(&o))
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)));
    match (tf_fp, pth_fp) {
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
            CheckResult::new(name, CheckKind::Fingerprint, Status::Fail, e)
        }
    }
}

/// One `docs` row per generated card (its collection's Papers-with-Code card, each model's Hub
/// card) that covers a model of `selected`: does the registry's copy equal what the registry
/// generates? The row is named by the card's path. When the cards cannot be rendered at all, one
/// [`REGISTRY_ROW`] row says why.
pub fn card_results(registry: &Registry, selected: &[String]) -> Vec<CheckResult> {
    let cards = match crate::docs::render(registry, &crate::docs::CardFormat::ALL) {
        Ok(c) => c,
        Err(e) => {
            return vec![CheckResult::new(
                REGISTRY_ROW,
                CheckKind::Docs,
                // A registry that keeps no card templates has no cards to keep in sync.
                match e {
                    crate::docs::DocsError::MissingTemplate { .. } => Status::Skipped,
                    _ => Status::Fail,
                },
                format!("cards cannot be rendered: {e}"),
            )];
        }
    };
    let mut out = vec![];
    for card in cards {
        if !card.models.iter().any(|m| selected.contains(m)) {
            continue;
        }
        let rel = card.path.to_string_lossy().replace('\\', "/");
        let shown = registry.display_path(&rel).display().to_string();
        let covers = match card.models.as_slice() {
            [one] => format!("model {one}"),
            many => format!("{} models", many.len()),
        };
        out.push(match registry.read_file(&rel) {
            Ok(committed) if committed == card.text => CheckResult::new(
                &shown,
                CheckKind::Docs,
                Status::Pass,
                format!("in sync with the registry ({covers})"),
            ),
            Ok(_) => CheckResult::new(
                &shown,
                CheckKind::Docs,
                Status::Fail,
                format!("stale: differs from the card the registry generates ({covers})"),
            ),
            Err(crate::registry::RegistryError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                CheckResult::new(
                    &shown,
                    CheckKind::Docs,
                    Status::Fail,
                    format!("missing: the registry generates this card ({covers})"),
                )
            }
            Err(e) => CheckResult::new(&shown, CheckKind::Docs, Status::Fail, e.to_string()),
        });
    }
    out
}

/// `file:line:col` of a value in a model's file.
fn loc(entry: &ModelEntry, pos: crate::diagnostic::Pos) -> String {
    format!("{}:{}", entry.file.display(), pos)
}

/// Metadata `Image Size`, `Crop Pct` and `Interpolation` (what the card tells readers) against
/// `Zoo: Input` (what zoo counts, converts and runs with).
fn input_result(entry: &ModelEntry) -> CheckResult {
    let name = entry.name();
    let Some(input) = entry.input() else {
        return CheckResult::new(
            name,
            CheckKind::Input,
            Status::Skipped,
            "no `Zoo: Input` to compare the card's Metadata with",
        );
    };
    let meta = entry.model.metadata.as_ref();
    // (field, card value, its position, Zoo: Input value, its position, equal?)
    let mut compared: Vec<(
        &str,
        String,
        crate::diagnostic::Pos,
        String,
        crate::diagnostic::Pos,
        bool,
    )> = vec![];
    if let (Some(m), Some(z)) = (
        meta.and_then(|m| m.image_size.as_ref()),
        input.image_size.as_ref(),
    ) {
        compared.push((
            "Image Size",
            m.raw.text.clone(),
            m.raw.pos,
            z.raw.text.clone(),
            z.raw.pos,
            m.value == z.value,
        ));
    }
    if let (Some(m), Some(z)) = (
        meta.and_then(|m| m.crop_pct.as_ref()),
        input.crop_pct.as_ref(),
    ) {
        compared.push((
            "Crop Pct",
            m.raw.text.clone(),
            m.raw.pos,
            z.raw.text.clone(),
            z.raw.pos,
            // Both are decimals as written ('0.875'); equal up to float spelling.
            (m.value - z.value).abs() < 1e-9,
        ));
    }
    if let (Some(m), Some(z)) = (
        meta.and_then(|m| m.interpolation.as_ref()),
        input.interpolation.as_ref(),
    ) {
        compared.push((
            "Interpolation",
            m.as_str().to_string(),
            m.pos(),
            z.value.as_str().to_string(),
            z.raw.pos,
            m.as_str() == z.value.as_str(),
        ));
    }
    if compared.is_empty() {
        return CheckResult::new(
            name,
            CheckKind::Input,
            Status::Skipped,
            "the card's Metadata has no Image Size, Crop Pct or Interpolation",
        );
    }
    let wrong: Vec<_> = compared.iter().filter(|c| !c.5).collect();
    if let Some(first) = wrong.first() {
        // The first mismatch is at the result's location; the others name their own.
        let detail = wrong
            .iter()
            .enumerate()
            .map(|(i, (field, card, at, zoo, zoo_at, _))| {
                format!(
                    "{}Metadata `{field}` is {card}, but `Zoo: Input: {field}` is {zoo} (at {})",
                    if i == 0 {
                        String::new()
                    } else {
                        format!("{}: ", loc(entry, *at))
                    },
                    loc(entry, *zoo_at)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        return CheckResult::new(name, CheckKind::Input, Status::Fail, detail)
            .at(&entry.file, first.2);
    }
    CheckResult::new(
        name,
        CheckKind::Input,
        Status::Pass,
        format!(
            "{} {} with `Zoo: Input`",
            compared
                .iter()
                .map(|(field, v, ..)| format!("{field} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            if compared.len() == 1 {
                "agrees"
            } else {
                "agree"
            }
        ),
    )
}

/// The card's Top-1/Top-5 results against every `Zoo: Reported` source that gives the same
/// metric, within [`ACCURACY_TOLERANCE_PP`].
fn accuracy_result(entry: &ModelEntry) -> CheckResult {
    let name = entry.name();
    let reported = entry
        .zoo()
        .and_then(|z| z.reported.as_deref())
        .unwrap_or_default();
    type Pick = fn(&crate::schema::ReportedResult) -> Option<&Measure>;
    let metrics: [(&str, Pick); 2] = [
        ("Top 1 Accuracy", |r| r.top_1_accuracy.as_ref()),
        ("Top 5 Accuracy", |r| r.top_5_accuracy.as_ref()),
    ];
    let mut passes = vec![];
    let mut explanations: Vec<String> = vec![];
    let mut failures: Vec<(String, crate::diagnostic::Pos)> = vec![];
    let mut uncompared = vec![];
    let mut any_card_metric = false;
    // A `Reported` entry is compared with the card's result on the same dataset only.
    let card_dataset = |r: &crate::schema::ResultEntry| {
        r.dataset
            .as_ref()
            .map_or(crate::schema::DEFAULT_REPORTED_DATASET, |d| d.as_str())
            .to_string()
    };
    let mut other_datasets: Vec<&str> = vec![];
    for s in reported {
        let d = s.dataset();
        let on_card = entry
            .model
            .results
            .iter()
            .flatten()
            .any(|r| r.metrics.is_some() && card_dataset(r) == d);
        if !on_card && !other_datasets.contains(&d) {
            other_datasets.push(d);
        }
    }
    for r in entry.model.results.iter().flatten() {
        let Some(m) = &r.metrics else { continue };
        let dataset = card_dataset(r);
        for (metric, pick) in metrics {
            let Some(card) = m.get(metric) else { continue };
            any_card_metric = true;
            let sources: Vec<(&str, &Measure, Option<&str>)> = reported
                .iter()
                .filter(|s| s.dataset() == dataset)
                .filter_map(|s| {
                    pick(s).map(|v| {
                        (
                            s.source.as_ref().map_or("(unnamed source)", |t| t.as_str()),
                            v,
                            s.model_change.as_ref().map(|t| t.as_str()),
                        )
                    })
                })
                .collect();
            if sources.is_empty() {
                uncompared.push(metric);
                continue;
            }
            let show = |v: &Measure| v.raw.text.trim().to_string();
            let far = |v: &Measure| (v.value - card.value).abs() > ACCURACY_TOLERANCE_PP + 1e-9;
            // Explained: every far source ran a changed model definition, and a source on the
            // card's own definition agrees with the card.
            let explained = sources.iter().any(|(_, v, _)| far(v))
                && sources
                    .iter()
                    .all(|(_, v, change)| !far(v) || change.is_some())
                && sources
                    .iter()
                    .any(|(_, v, change)| !far(v) && change.is_none());
            if sources.iter().any(|(_, v, _)| far(v)) {
                // Every source, near ones too, so the reader sees which side is off.
                let said: Vec<String> = sources
                    .iter()
                    .map(|(src, v, change)| {
                        format!(
                            "{src} reports {} ({}), {:.2} pp {}{}",
                            show(v),
                            loc(entry, v.raw.pos),
                            (v.value - card.value).abs(),
                            if far(v) {
                                "away"
                            } else {
                                "away, within the tolerance"
                            },
                            change
                                .map(|c| format!(" (measured after a model change: {c})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let text = format!(
                    "{metric} is {}, but {}; the tolerance is {ACCURACY_TOLERANCE_PP} pp",
                    show(card),
                    said.join(", and ")
                );
                if explained {
                    explanations.push(text);
                } else {
                    failures.push((
                        format!(
                            "{}{text}",
                            if failures.is_empty() {
                                String::new()
                            } else {
                                format!("{}: ", loc(entry, card.raw.pos))
                            },
                        ),
                        card.raw.pos,
                    ));
                }
            } else {
                passes.push(format!(
                    "{metric} {} is within {ACCURACY_TOLERANCE_PP} pp of {}",
                    show(card),
                    sources
                        .iter()
                        .map(|(src, v, _)| format!("{src} ({})", show(v)))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        }
    }
    if !any_card_metric {
        return CheckResult::new(
            name,
            CheckKind::Accuracy,
            Status::Skipped,
            "the card has no Top 1 or Top 5 Accuracy",
        );
    }
    if let Some((_, pos)) = failures.first() {
        let pos = *pos;
        return CheckResult::new(
            name,
            CheckKind::Accuracy,
            Status::Fail,
            failures
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .at(&entry.file, pos);
    }
    if !explanations.is_empty() {
        let mut all = explanations;
        all.extend(passes);
        return CheckResult::new(name, CheckKind::Accuracy, Status::Explained, all.join("\n"));
    }
    if passes.is_empty() {
        return CheckResult::new(
            name,
            CheckKind::Accuracy,
            Status::Skipped,
            "no `Zoo: Reported` source gives the card's Top 1 or Top 5 Accuracy",
        );
    }
    let mut detail = passes.join("; ");
    if !uncompared.is_empty() {
        detail.push_str(&format!(
            "; {} not compared: no source reports it",
            uncompared.join(", ")
        ));
    }
    if !other_datasets.is_empty() {
        detail.push_str(&format!(
            "; Reported results on {} not compared: the card has no result on {}",
            other_datasets.join(", "),
            if other_datasets.len() == 1 {
                "that dataset"
            } else {
                "those datasets"
            }
        ));
    }
    CheckResult::new(name, CheckKind::Accuracy, Status::Pass, detail)
}

/// What `zoo validate --fetch` would download for `models`: their timm `.pth` and TF
/// checkpoint files (the ones the weight checks read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Download {
    /// Bytes of the files whose size the registry gives.
    pub bytes: u64,
    /// How many files that is.
    pub sized: usize,
    /// Files whose size the registry does not give.
    pub unsized_files: usize,
}

/// The download [`Download`] `zoo validate --fetch` needs for `models` (names in `registry`;
/// unknown names are ignored), at most: files already cached are not fetched again.
pub fn download_estimate(registry: &Registry, models: &[&str]) -> Download {
    let mut d = Download::default();
    for name in models {
        let Ok(entry) = registry.resolve(name) else {
            continue;
        };
        for role in [FileRole::TimmPth, FileRole::TfCheckpoint] {
            match entry.file(role).map(|f| f.size.as_ref().map(|s| s.value)) {
                Some(Some(bytes)) => {
                    d.bytes += bytes;
                    d.sized += 1;
                }
                Some(None) => d.unsized_files += 1,
                None => {}
            }
        }
    }
    d
}
