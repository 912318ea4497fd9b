//! `zoo convert NAME | --from PATH`: checkpoints to timm `.pth`/`.safetensors`, proven by inference.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::Status;
use crate::arch::ArchConfig;
use crate::convert::output::Format;
use crate::convert::pipeline::{
    self, ConvertOptions, ConvertReport, InferenceCheck, ReferenceVectors,
};
use crate::convert::WeightSet;
use crate::fetch::{Cache, FetchOptions};
use crate::registry::{file_spec, Registry};
use crate::schema::FileRole;

/// Which of a registry model's sources to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// The original TensorFlow checkpoint tarball.
    Tf,
    /// timm's released `.pth`.
    Pytorch,
}

/// Arguments of `zoo convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// A registry model (name or alias); its source comes from the cache or a download.
    #[arg(required_unless_present = "from")]
    pub name: Option<String>,
    /// A local checkpoint instead: TF bundle prefix/.index/directory/.tar.gz, .pth or .safetensors.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// The architecture (`b6`, `efficientnet:width=0.05,depth=0.5,classes=10`); default: the model's.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Output containers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "pth,safetensors")]
    pub format: Vec<Format>,
    /// TF weight set: the EMA shadows the official eval uses, or the raw variables.
    #[arg(long, value_enum, default_value = "ema")]
    pub weights: WeightSet,
    /// Registry source to convert.
    #[arg(long, value_enum, default_value = "tf")]
    pub source: SourceKind,
    /// Reference input (`.npy`, NCHW float32) for the inference check.
    #[arg(long, value_name = "NPY", requires = "reference_logits")]
    pub reference_input: Option<PathBuf>,
    /// Reference logits (`.npy`) from the original framework.
    #[arg(long, value_name = "NPY", requires = "reference_input")]
    pub reference_logits: Option<PathBuf>,
    /// Largest absolute logit difference that passes.
    #[arg(long, default_value_t = crate::torch::DEFAULT_TOLERANCE, value_parser = crate::torch::parse_tolerance)]
    pub tolerance: f64,
    /// Output file stem (default: the model name, or the source file's stem).
    #[arg(long, value_name = "STEM")]
    pub name_as: Option<String>,
    /// Never touch the network (also: ZOO_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [
        ".tar.gz",
        ".tgz",
        ".index",
        ".pth",
        ".pt",
        ".safetensors",
        ".ckpt",
    ] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_owned();
        }
    }
    name
}

/// Finds a registry model's source file in the cache, downloading it unless offline.
pub(crate) fn fetch_source(
    registry: &Registry,
    entry: &crate::registry::ModelEntry,
    role: FileRole,
    offline: bool,
) -> anyhow::Result<PathBuf> {
    let file = entry
        .file(role)
        .with_context(|| format!("{} has no {role:?} file in the registry", entry.name()))?;
    let spec = file_spec(file);
    let cache = Cache::from_env()?;
    let opts = FetchOptions {
        offline: offline || super::fetch::offline_from_env(),
        lock_file: Some(lock_file(registry, &cache)),
        ..FetchOptions::default()
    };
    Ok(cache
        .fetch(&spec, &opts)
        .with_context(|| format!("fetching {}", spec.file_name))?
        .path)
}

/// Where full hashes learned from prefix-only entries are pinned.
pub(crate) fn lock_file(registry: &Registry, cache: &Cache) -> PathBuf {
    match registry.dir() {
        Some(dir) => dir.join("weights.lock"),
        None => cache.dir().join("weights.lock"),
    }
}

/// Runs `zoo convert`.
pub fn run(
    args: ConvertArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    let (entry_registry, source, default_arch, default_name, registry_ref) =
        match (&args.from, &args.name) {
            (Some(from), name) => {
                let reg_arch = match name {
                    Some(n) => {
                        let reg = registry()?;
                        let e = reg.resolve(n)?;
                        Some((e.arch()?, e.name().to_owned()))
                    }
                    None => None,
                };
                let (arch, name) = match reg_arch {
                    Some((a, n)) => (Some(a), n),
                    None => (None, stem(from)),
                };
                (None, from.clone(), arch, name, None)
            }
            (None, Some(name)) => {
                let reg = registry()?;
                let entry = reg.resolve(name)?.clone();
                let role = match args.source {
                    SourceKind::Tf => FileRole::TfCheckpoint,
                    SourceKind::Pytorch => FileRole::TimmPth,
                };
                let path = fetch_source(&reg, &entry, role, args.offline)?;
                let arch = entry.arch()?;
                let reference = entry.reference();
                (
                    Some(reg),
                    path,
                    Some(arch),
                    entry.name().to_owned(),
                    reference,
                )
            }
            (None, None) => bail!("give a registry model name or --from PATH"),
        };
    drop(entry_registry);
    let arch: ArchConfig = match (&args.arch, default_arch) {
        (Some(a), _) => a.parse()?,
        (None, Some(a)) => a,
        (None, None) => bail!(
            "{}: --arch is needed for a local checkpoint",
            source.display()
        ),
    };
    let spec = arch.resolve()?;
    let reference = match (&args.reference_input, &args.reference_logits) {
        (Some(input), Some(logits)) => Some(ReferenceVectors {
            input: input.clone(),
            logits: logits.clone(),
            tolerance: args.tolerance,
        }),
        _ => registry_ref,
    };
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    let opts = ConvertOptions {
        out_dir: args.out.clone(),
        name: args.name_as.clone().unwrap_or(default_name),
        formats,
        weights: args.weights,
        reference,
    };
    // A byte bar on stderr while the tensors stream; it turns into a spinner for the read-back
    // and inference checks.
    let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message("converting");
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
            if done == total {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("static template"),
                );
                bar.set_message("reading the outputs back and running the inference check");
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
            }
        }
    };
    let report = pipeline::convert(&source, &spec, &opts, Some(&progress));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
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

fn print_report(r: &ConvertReport) {
    outln!(
        "converted {} ({:?}, sha256 {}) as {}",
        r.source.display(),
        r.source_format,
        r.source_sha256,
        r.arch
    );
    match r.weights {
        Some(w) => outln!(
            "  {} tensors from the {} weights; {} source tensors skipped (optimizer slots, the other weight set, global_step)",
            r.tensors,
            w.as_str(),
            r.ignored
        ),
        None => outln!("  {} tensors", r.tensors),
    }
    outln!("  fingerprint {}", r.fingerprint.fingerprint);
    match &r.inference {
        InferenceCheck::Ran(c) => {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED);
            t.set_header([
                "inference",
                "max |Δ|",
                "max rel",
                "top-1 agree",
                "top-5 agree",
                "tolerance",
            ]);
            t.add_row([
                if c.passed { "pass" } else { "FAIL" }.to_string(),
                format!("{:.3e}", c.max_abs),
                format!("{:.3e}", c.max_rel),
                format!("{:.0}%", c.top1_agree * 100.0),
                format!("{:.0}%", c.top5_agree * 100.0),
                format!("{:.0e}", c.tolerance),
            ]);
            outln!("{t}");
            if !c.passed {
                outln!(
                    "  the converted model's logits differ from the reference by {:.3e} > {:.0e}: wrong weight set (EMA vs raw), \
                     a layout or padding error, or reference vectors from another model; nothing was written",
                    c.max_abs, c.tolerance
                );
            }
        }
        InferenceCheck::Skipped { reason } => outln!("  inference: skipped ({reason})"),
    }
    for o in &r.outputs {
        outln!(
            "  wrote {} ({} bytes, sha256 {})",
            o.path.display(),
            o.size,
            o.sha256
        );
    }
}
