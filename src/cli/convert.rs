//! `zoo convert NAME | --from PATH`: checkpoints to timm `.pth`/`.safetensors`, proven by inference.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::Status;
use crate::arch::ArchConfig;
use crate::checkpoint::SourceFormat;
use crate::convert::output::Format;
use crate::convert::pipeline::{
    self, ConvertOptions, ConvertReport, InferenceCheck, ReferenceVectors,
};
use crate::convert::WeightSet;
use crate::fetch::Cache;
use crate::registry::Registry;
use crate::schema::FileRole;
use crate::scratch::{EXTRACT_PREFIX, STAGING_PREFIX};
use crate::source::{self, Retry, SourceOptions};

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
#[command(group(clap::ArgGroup::new("checkpoint").required(true).multiple(true).args(["name", "from"])))]
pub struct ConvertArgs {
    /// A registry model (name or alias); its source comes from the cache or a download.
    pub name: Option<String>,
    /// A local checkpoint instead: TF bundle prefix/.index/directory/.tar.gz, .pth or .safetensors.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// The architecture (`b6`, `efficientnet:width=0.05,depth=0.5,classes=10`, or a registry
    /// model's: `b6_ns`); default: the model's.
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
    /// Where the registry's source comes from.
    #[command(flatten)]
    pub fetch: SourceFetchArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How `convert` and `export` get a registry model's source file without `--from`: the same
/// flags, with the same meaning, on both.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceFetchArgs {
    /// Never touch the network (also: ZOO_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// URL prefix tried before the source's own URLs; repeatable; `file:///DIR/` works. The
    /// mirror layout: <PREFIX>/<host>[:<port>]/<URL path>, as `wget -m` saves it; the flat
    /// <PREFIX>/<file name> too where no other registry file has that name or a full sha256 is
    /// given.
    #[arg(long = "mirror", value_name = "URL-PREFIX", conflicts_with = "from")]
    pub mirrors: Vec<String>,
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

/// Finds a registry model's source file in the cache, downloading it unless offline (mirrors
/// first), and warns when nothing verified the bytes of the file it found.
pub(crate) fn fetch_source(
    registry: &Registry,
    entry: &crate::registry::ModelEntry,
    role: FileRole,
    fetch: &SourceFetchArgs,
    command: &'static str,
) -> anyhow::Result<PathBuf> {
    let opts = SourceOptions {
        offline: fetch.offline || super::fetch::offline_from_env(),
        download: true,
        mirrors: fetch.mirrors.clone(),
    };
    let warning = entry.file(role).and_then(|file| {
        let spec = registry.fetch_spec(entry, file);
        let lock = Cache::from_env()
            .ok()
            .map(|cache| source::lock_file(registry, &cache));
        super::fetch::unverified_warning(&spec, lock.as_deref())
    });
    let fetched = source::fetch(
        registry,
        entry,
        role,
        &opts,
        Retry::Rerun {
            command,
            from_flag: "--from",
            required: "",
        },
    )?;
    if let Some(w) = warning {
        eprintln!("{}", zoo_converters::text::esc_text(&w));
    }
    Ok(fetched.path)
}

/// Runs `zoo convert`.
pub fn run(
    args: ConvertArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    // The registry is read when a model is named, or `--arch` is not an architecture (a model's).
    let needs_registry = args.name.is_some()
        || args
            .arch
            .as_deref()
            .is_some_and(|a| a.parse::<ArchConfig>().is_err());
    let reg = if needs_registry {
        Some(registry()?)
    } else {
        None
    };
    let (source, default_arch, default_name, registry_ref) = match (&args.from, &args.name, &reg) {
        (Some(from), None, _) => (from.clone(), None, stem(from), None),
        // A local file for a registry model: its architecture, name and reference vectors.
        (Some(from), Some(name), Some(reg)) => {
            let e = reg.resolve(name)?;
            (
                from.clone(),
                Some(e.arch()?),
                e.name().to_owned(),
                e.reference(),
            )
        }
        (None, Some(name), Some(reg)) => {
            let entry = reg.resolve(name)?;
            let role = match args.source {
                SourceKind::Tf => FileRole::TfCheckpoint,
                SourceKind::Pytorch => FileRole::TimmPth,
            };
            let path = fetch_source(reg, entry, role, &args.fetch, "convert")?;
            (
                path,
                Some(entry.arch()?),
                entry.name().to_owned(),
                entry.reference(),
            )
        }
        _ => bail!("give a registry model name or --from PATH"),
    };
    let arch: ArchConfig = match (&args.arch, default_arch) {
        // `needs_registry` loaded the registry when `a` is not an architecture.
        (Some(a), _) => crate::lookup::lookup(reg.as_ref(), a)?.arch().clone(),
        (None, Some(a)) => a,
        (None, None) => bail!(
            "{}: --arch is needed for a local checkpoint",
            source.display()
        ),
    };
    let spec = arch.resolve()?;
    if args.weights == WeightSet::Raw {
        warn_weights_ignored(&source);
    }
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
    let progress = ConversionProgress::new(args.json);
    sweep_leftovers(&args.out);
    let report = pipeline::convert(&source, &spec, &opts, Some(&|d, t| progress.update(d, t)));
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

/// What a conversion shows on stderr (on a terminal, unless the report is JSON): a byte bar
/// while the tensors stream, then a spinner for the read-back and inference checks. It also
/// applies the test-only pause after each tensor ([`TENSOR_DELAY_ENV`]).
pub(crate) struct ConversionProgress {
    bar: Option<indicatif::ProgressBar>,
    delay: Option<std::time::Duration>,
}

impl ConversionProgress {
    /// A bar on a terminal, none when `json` or when stderr is not a terminal.
    pub(crate) fn new(json: bool) -> ConversionProgress {
        let bar = (std::io::stderr().is_terminal() && !json).then(|| {
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
        let delay = std::env::var(TENSOR_DELAY_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis);
        ConversionProgress { bar, delay }
    }

    /// `done` of `total` bytes converted.
    pub(crate) fn update(&self, done: u64, total: u64) {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if let Some(bar) = &self.bar {
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
    }

    /// Clears the bar.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Milliseconds to pause after each converted tensor (for tests that interrupt a conversion).
pub const TENSOR_DELAY_ENV: &str = "ZOO_TEST_TENSOR_DELAY_MS";

/// Removes what killed runs left behind (staging directories in `out`, tarball extractions in
/// the temporary directory) and says so.
fn sweep_leftovers(out: &Path) {
    let mut swept = crate::scratch::sweep(out, STAGING_PREFIX);
    swept.extend(crate::scratch::sweep(&std::env::temp_dir(), EXTRACT_PREFIX));
    for l in swept {
        eprintln!(
            "removed {} ({:.1} MB), left behind by an interrupted zoo run (pid {})",
            l.path.display(),
            l.bytes as f64 / 1e6,
            l.pid
        );
    }
}

/// `--weights` picks one of a TF checkpoint's two weight sets; other sources hold one.
fn warn_weights_ignored(source: &Path) {
    let what = match crate::checkpoint::detect(source) {
        Ok(SourceFormat::PthZip | SourceFormat::PthLegacy) => "a torch.save file",
        Ok(SourceFormat::Safetensors) => "a safetensors file",
        // TF sources use it; an undetectable source fails in the conversion itself.
        Ok(SourceFormat::TfBundle | SourceFormat::TfTarball) | Err(_) => return,
    };
    eprintln!(
        "warning: --weights raw is ignored: {} is {what}, which holds one set of weights \
         (--weights chooses between a TensorFlow checkpoint's EMA and raw variables)",
        source.display()
    );
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
            if let Some(note) = &c.note {
                outln!("  inference: {note}");
            }
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
