//! `zoo export NAME [--from FILE] --hf DIR`: a verified Hugging Face Hub folder.
use std::path::PathBuf;

use super::convert::{SourceFetchArgs, SourceKind};
use super::Status;
use crate::convert::pipeline::ReferenceVectors;
use crate::convert::WeightSet;
use crate::export::{ExportOptions, ExportReport};
use crate::registry::Registry;
use crate::schema::FileRole;

/// Arguments of `zoo export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The registry model (name or alias): its Hub name, config and card come from the registry.
    pub name: String,
    /// The folder to create (timm's Hub layout: model.safetensors, config.json, README.md).
    #[arg(long, value_name = "DIR")]
    pub hf: PathBuf,
    /// Export these weights (TF checkpoint, .pth or .safetensors) instead of the registry's
    /// source; they are checked strictly against the model's architecture.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Registry source to convert when `--from` is not given.
    #[arg(long, value_enum, default_value = "tf")]
    pub source: SourceKind,
    /// TF weight set: the EMA shadows the official eval uses, or the raw variables.
    #[arg(long, value_enum, default_value = "ema")]
    pub weights: WeightSet,
    /// Reference input (`.npy`, NCHW float32) for the inference check (default: the registry's).
    #[arg(long, value_name = "NPY", requires = "reference_logits")]
    pub reference_input: Option<PathBuf>,
    /// Reference logits (`.npy`).
    #[arg(long, value_name = "NPY", requires = "reference_input")]
    pub reference_logits: Option<PathBuf>,
    /// Largest absolute logit difference that passes.
    #[arg(long, default_value_t = crate::torch::DEFAULT_TOLERANCE, value_parser = crate::torch::parse_tolerance)]
    pub tolerance: f64,
    /// Where the registry's source comes from (without `--from`).
    #[command(flatten)]
    pub fetch: SourceFetchArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `zoo export`.
pub fn run(
    args: ExportArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    let registry = registry()?;
    let entry = registry.resolve(&args.name)?;
    let source = match &args.from {
        Some(from) => from.clone(),
        None => {
            let role = match args.source {
                SourceKind::Tf => FileRole::TfCheckpoint,
                SourceKind::Pytorch => FileRole::TimmPth,
            };
            super::convert::fetch_source(&registry, entry, role, &args.fetch, "export")?
        }
    };
    let reference = match (&args.reference_input, &args.reference_logits) {
        (Some(input), Some(logits)) => Some(ReferenceVectors {
            input: input.clone(),
            logits: logits.clone(),
            tolerance: args.tolerance,
        }),
        _ => None,
    };
    let opts = ExportOptions {
        dir: args.hf.clone(),
        weights: args.weights,
        reference,
    };
    let progress = super::convert::ConversionProgress::new(args.json);
    let report = crate::export::export(
        &registry,
        entry,
        &source,
        &opts,
        Some(&|d, t| progress.update(d, t)),
    );
    progress.finish();
    let report = report?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.passed() {
        Status::Ok
    } else {
        Status::Failed
    })
}

fn print_report(r: &ExportReport) {
    for p in &r.swept {
        eprintln!(
            "removed {}, left behind by an interrupted zoo export",
            p.display()
        );
    }
    let c = &r.conversion;
    outln!(
        "{} as {}: {} ({:?}, sha256 {})",
        r.model,
        r.hub_name,
        c.source.display(),
        c.source_format,
        c.source_sha256
    );
    outln!(
        "  {} tensors, fingerprint {}",
        c.tensors,
        c.fingerprint.fingerprint
    );
    outln!("  inference: {}", c.inference);
    if !r.passed() {
        outln!("  the converted model disagrees with the reference logits; nothing was written");
        return;
    }
    for f in &r.files {
        outln!(
            "  wrote {} ({} bytes, sha256 {})",
            f.path.display(),
            f.size,
            f.sha256
        );
    }
    outln!(
        "upload: huggingface-cli upload <namespace>/{} {}",
        r.hub_name,
        r.dir.display()
    );
}
