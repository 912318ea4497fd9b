//! `zoo eval NAME… --dataset DIR`: measured top-1/top-5 against the card.
use std::io::IsTerminal;
use std::path::PathBuf;

use crate::eval::dataset::{Dataset, Selection, DEFAULT_SEED};
use crate::eval::imagenet::RealLabels;
use crate::eval::model::{eval_model, Device, EvalReport, EvalRequest};
use crate::eval::report_file;
use crate::eval::run::RunOptions;
use crate::eval::verdict::Rule;
use crate::eval::{Normalize, PassOrder};
use crate::registry::Registry;
use crate::report::Shard;
use crate::schema::FileRole;
use crate::source::{self, Retry, SourceOptions};

use super::Status;

/// Arguments of `zoo eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Registry models (names or aliases).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// The validation set: an ImageFolder (`val/<wnid>/*.JPEG`), the devkit's flat
    /// `ILSVRC2012_val_*.JPEG` folder, ImageNetV2 folders, Kaggle's flat folder with
    /// `LOC_val_solution.csv`, or webdataset `.tar` shards.
    #[arg(long, value_name = "DIR")]
    pub dataset: PathBuf,
    /// The weights of each NAME, in order (TF checkpoint, `.pth` or `.safetensors`). Without
    /// it, each model's registry file (timm's `.pth`, else the TF checkpoint) is taken from the
    /// cache, verified, or downloaded.
    #[arg(long, value_name = "FILE")]
    pub weights: Vec<PathBuf>,
    /// With no --weights: read the cache only (also ZOO_OFFLINE); `file:///` mirrors still work.
    #[arg(long)]
    pub offline: bool,
    /// With no --weights: a server or `file:///DIR/` tried before the registry's URLs. The
    /// mirror layout: <PREFIX>/<host>[:<port>]/<URL path>, as `wget -m` saves it; the flat
    /// <PREFIX>/<file name> too where no other registry file has that name or a full sha256 is
    /// given.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Where inference runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Inference in float16 (GPU only); logits and top-k stay f32 on the CPU.
    #[arg(long)]
    pub half: bool,
    /// ImageNet-ReaL labels (`real.json` of google-research/reassessed-imagenet): ReaL top-1/top-5
    /// next to the usual ones.
    #[arg(long, value_name = "FILE")]
    pub real_labels: Option<PathBuf>,
    /// Evaluate only part K of N of the selection (contiguous, deterministic); write each part
    /// with --report and merge them with `zoo report merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Write the full results (counts, bad images, per-image top-5) to FILE, atomically;
    /// gzip-compressed when FILE ends in .gz.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Decode/resize threads (default: the cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Evaluate N images drawn uniformly (seeded) instead of all.
    #[arg(long, value_name = "N", conflicts_with = "per_class")]
    pub subset: Option<usize>,
    /// Evaluate K images of each class (seeded).
    #[arg(long, value_name = "K")]
    pub per_class: Option<usize>,
    /// Seed of --subset/--per-class (recorded in the result).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Count and list unreadable images instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Resize pass order of Pillow >= 13 (the pinned Pillow) or of older Pillow.
    #[arg(long, value_enum, default_value = "pillow13")]
    pub pass_order: PassOrderArg,
    /// Normalisation: create_transform's ToTensor+Normalize, or validate.py's prefetcher.
    #[arg(long, value_enum, default_value = "totensor")]
    pub normalize: NormalizeArg,
    /// Write every image's top-5 (JSON lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// Print JSON (every field of the result).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print timm's results CSV columns.
    #[arg(long)]
    pub csv: bool,
}

/// `--pass-order`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PassOrderArg {
    /// Pillow >= 13.
    Pillow13,
    /// Pillow <= 12.
    Legacy,
}

/// `--normalize`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NormalizeArg {
    /// ToTensor + Normalize.
    Totensor,
    /// (x − 255·mean) / (255·std).
    Prefetcher,
}

/// Runs `zoo eval`.
pub fn run(
    args: EvalArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    if !args.weights.is_empty() && args.weights.len() != args.names.len() {
        anyhow::bail!(
            "{} models but {} --weights: give one weights file per model, in order (or none, \
             to use the registry's files)",
            args.names.len(),
            args.weights.len()
        );
    }
    let registry = registry()?;
    let entries = args
        .names
        .iter()
        .map(|n| registry.resolve(n))
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<PathBuf> = if args.weights.is_empty() {
        let opts = SourceOptions {
            offline: args.offline || super::fetch::offline_from_env(),
            download: true,
            mirrors: args.mirrors.clone(),
        };
        entries
            .iter()
            .map(|entry| {
                let role = [FileRole::TimmPth, FileRole::TfCheckpoint]
                    .into_iter()
                    .find(|r| entry.file(*r).is_some())
                    .unwrap_or(FileRole::TimmPth);
                source::fetch(
                    &registry,
                    entry,
                    role,
                    &opts,
                    Retry::Rerun {
                        command: "eval",
                        from_flag: "--weights",
                        required: " --dataset DIR",
                    },
                )
                .map(|f| f.path)
            })
            .collect::<Result<_, _>>()?
    } else {
        args.weights.clone()
    };
    let dataset = Dataset::open(&args.dataset)?;
    let shard = match &args.shard {
        Some(s) => super::parse_shard(s)?,
        None => Shard::ALL,
    };
    if shard != Shard::ALL && args.report.is_none() {
        anyhow::bail!(
            "--shard {shard}: give --report FILE, so the shards can be merged (zoo report merge)"
        );
    }
    let real = match &args.real_labels {
        Some(p) => Some(std::sync::Arc::new(
            RealLabels::read(p)?.for_samples(&dataset.samples)?,
        )),
        None => None,
    };
    let selection = match (args.subset, args.per_class) {
        (Some(n), _) => Selection::Subset { n, seed: args.seed },
        (_, Some(k)) => Selection::PerClass { k, seed: args.seed },
        _ => Selection::All,
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut reports = Vec::new();
    for (entry, weights) in entries.iter().zip(&weights) {
        let req = EvalRequest {
            dataset: &dataset,
            weights,
            selection,
            shard,
            device: args.device,
            half: args.half,
            real_labels: args.real_labels.as_deref(),
            run: RunOptions {
                batch_size: args.batch_size,
                workers,
                skip_bad: args.skip_bad,
                keep_predictions: args.predictions.is_some() || args.report.is_some(),
                real: real.clone(),
            },
            pass_order: match args.pass_order {
                PassOrderArg::Pillow13 => PassOrder::Pillow13,
                PassOrderArg::Legacy => PassOrder::Legacy,
            },
            normalize: match args.normalize {
                NormalizeArg::Totensor => Normalize::ToTensor,
                NormalizeArg::Prefetcher => Normalize::Prefetcher,
            },
        };
        let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30} {pos}/{len} {per_sec} ETA {eta} top-1 {msg}",
                )
                .expect("static template"),
            );
            b.set_prefix(entry.name().to_string());
            b
        });
        let report = eval_model(entry, &req, |p| {
            if let Some(b) = &bar {
                b.set_length(p.total as u64);
                b.set_position(p.done as u64);
                if p.classified > 0 {
                    b.set_message(format!(
                        "{:.2}%",
                        100.0 * p.top1 as f64 / p.classified as f64
                    ));
                }
            }
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let report = report?;
        if let Some(path) = &args.predictions {
            let mut text = String::new();
            for p in &report.outcome.predictions {
                text.push_str(&serde_json::to_string(p)?);
                text.push('\n');
            }
            std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        reports.push(report);
    }
    if let Some(path) = &args.report {
        report_file::write(path, &reports)?;
    }
    print_reports(&reports, args.json, args.csv)
}

/// Prints reports as `zoo eval` does (JSON, timm's CSV columns, or text); the status is
/// failed when a verdict failed.
pub fn print_reports(reports: &[EvalReport], json: bool, csv: bool) -> anyhow::Result<Status> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else if csv {
        outln!("model,top1,top1_err,top5,top5_err,param_count,img_size,crop_pct,interpolation");
        for r in reports {
            outln!(
                "{},{:.3},{:.3},{:.3},{:.3},{:.2},{},{},bicubic",
                r.model,
                r.top1,
                100.0 - r.top1,
                r.top5,
                100.0 - r.top5,
                r.param_count,
                r.transform.img_size,
                r.transform.crop_pct
            );
        }
    } else {
        for r in reports {
            print_report(r);
        }
    }
    Ok(if reports.iter().all(EvalReport::passed) {
        Status::Ok
    } else {
        Status::Failed
    })
}

fn print_report(r: &EvalReport) {
    let o = &r.outcome;
    outln!(
        "{}: top-1 {:.3}% ({}/{}), top-5 {:.3}% ({}/{})",
        r.model,
        r.top1,
        o.top1,
        o.n,
        r.top5,
        o.top5,
        o.n
    );
    if let (Some(t1), Some(t5), Some(c)) = (r.real_top1, r.real_top5, r.outcome.real) {
        outln!(
            "  ReaL: top-1 {t1:.3}% ({}/{}), top-5 {t5:.3}% ({}/{}) over the images with ReaL labels",
            c.top1,
            c.n,
            c.top5,
            c.n
        );
    }
    outln!(
        "  dataset {} ({}, {} images, {} classes; listing sha256 {}, content sha256 {})",
        r.dataset.display(),
        serde_json::to_value(r.manifest.layout)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.manifest.images,
        r.manifest.classes,
        &r.manifest.listing_sha256[..12],
        &o.content_sha256[..12]
    );
    let mut sel = match r.selection {
        Selection::All => "all images".to_string(),
        Selection::Subset { n, seed } => format!("--subset {n} --seed {seed}"),
        Selection::PerClass { k, seed } => format!("--per-class {k} --seed {seed}"),
    };
    if r.shard != Shard::ALL {
        sel.push_str(&format!(", shard {}", r.shard));
    }
    outln!(
        "  {sel}; {}x{} crop_pct {} bicubic ({}, {}); {} batch {}; {:.1} s, {:.1} images/s",
        r.transform.img_size,
        r.transform.img_size,
        r.transform.crop_pct,
        r.transform.pass_order,
        r.transform.normalize.as_str(),
        if r.half {
            format!("{} half", r.device)
        } else {
            r.device.to_string()
        },
        r.batch_size,
        o.seconds,
        o.n as f64 / o.seconds.max(1e-9)
    );
    if !o.bad.is_empty() {
        outln!("  skipped {} unreadable images:", o.bad.len());
        for b in &o.bad {
            outln!(
                "    {}",
                zoo_converters::text::esc_text(&b.error.to_string())
            );
        }
    }
    for j in &r.verdicts {
        let v = &j.verdict;
        let status = if v.pass { "pass" } else { "FAIL" };
        match &v.rule {
            Rule::FullSet { tolerance_pp } => outln!(
                "  {status} {} {} vs {}: documented {:.3}, measured {:.3}, |Δ| {:.3} pp (tolerance {tolerance_pp} pp)",
                j.benchmark.as_str(),
                j.metric,
                j.source,
                v.documented,
                v.measured,
                (v.measured - v.documented).abs()
            ),
            Rule::Hypergeometric { confidence, slack_pp, low, high, .. } => outln!(
                "  {status} {} {} vs {}: documented {:.3}; {} correct of {} must lie in [{low}, {high}] ({:.1}% hypergeometric interval of the documented count, widened by {slack_pp} pp)",
                j.benchmark.as_str(),
                j.metric,
                j.source,
                v.documented,
                v.correct,
                v.n,
                confidence * 100.0
            ),
        }
    }
    if let Some(why) = &r.verdict_skipped {
        outln!("  skip verdict: {why}");
    }
}
