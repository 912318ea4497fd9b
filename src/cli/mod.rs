//! The command line: clap definitions, dispatch, and all printing.
//!
//! Exit codes: 0 ok, 1 a check failed, 2 usage or I/O error.
//! Each subcommand's handler lives in its own file (`cli/<command>.rs`); this file holds the
//! clap definitions and the dispatch.
use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `println!` that is quiet when stdout is a closed pipe (`zoo list | head`): the rest of the
/// output is dropped instead of panicking, and the command still ends with its own exit code
/// (a failed `zoo validate | head` exits 1, not 0).
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}

/// `print!` that, like [`outln!`], is quiet when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout_with(format_args!($($arg)*), "") };
}

/// Set once a write to stdout found the pipe closed: later output is dropped.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to stdout; a broken pipe means the reader is done, which is not an error.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    write_stdout_with(args, "\n");
}

/// Writes `args` and then `end` to stdout (flushed). A broken pipe drops this and all later
/// output; any other write error ends the process with exit 2.
pub(crate) fn write_stdout_with(args: std::fmt::Arguments<'_>, end: &str) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_fmt(args)
        .and_then(|()| out.write_all(end.as_bytes()))
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(2);
    }
}

mod check_cards;
pub mod convert;
mod docs;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod flops;
pub mod hash;
mod hint;
mod list;
mod report;
mod schema;
mod show;
mod signals;
pub mod validate;
pub mod weights;

/// zoo: keep a model zoo honest.
#[derive(Debug, Parser)]
#[command(name = "zoo", version, about, long_about = None)]
pub struct Cli {
    /// The registry: a directory holding `model-index.yml` (or that file). Without it (and
    /// without ZOO_REGISTRY), `registry/model-index.yml` in the current directory or the nearest
    /// parent, else the registry embedded in zoo.
    #[arg(long, global = true, value_name = "DIR", env = "ZOO_REGISTRY")]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the resolved architecture of an EfficientNet description or a registry model.
    Arch {
        /// A registry model or alias (`b6_ns`), a timm architecture (`tf_efficientnet_b6`,
        /// `tf_mixnet_l`, …), or `efficientnet:width=…,depth=…,classes=…`.
        spec: String,
    },
    /// Count operations under every named convention (macs, flops, fvcore, thop-2020).
    Flops(flops::FlopsArgs),
    /// List the registry's models (name, aliases, image size, parameters, FLOPs).
    List {
        /// Glob patterns over names, aliases and collection names (`*b6*`, `tf_efficientnet_b?_ns`,
        /// `'Noisy Student'`); all if none.
        patterns: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show everything the registry knows about one model.
    Show {
        /// A model name or alias (`b6_ns`, `tf_efficientnet_b6.ns_jft_in1k`).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of model-index files (with the `Zoo:` extension).
    Schema {
        /// Write `model-index.schema.json` and `zoo-extension.schema.json` into DIR instead.
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "schemas")]
        write: Option<PathBuf>,
        /// Compare the files in DIR with the generated ones; exit 1 if stale.
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "schemas", conflicts_with = "write")]
        check: Option<PathBuf>,
    },
    /// Strictly check model-index YAML files and markdown cards; exit 1 on errors.
    CheckCards {
        /// Files to check (`.yml`/`.yaml`, or `.md` with the index in an HTML comment).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Convert a checkpoint to timm `.pth`/`.safetensors`, verified by running it.
    Convert(convert::ConvertArgs),
    /// Write a verified Hugging Face Hub folder (model.safetensors, config.json, README.md).
    Export(export::ExportArgs),
    /// Print container-independent weight fingerprints.
    Fingerprint(weights::FingerprintArgs),
    /// Compare two checkpoints tensor by tensor (exit 1 when they differ).
    Diff(weights::DiffArgs),
    /// Check every claim of every selected model; exit 1 if any check fails.
    Validate(validate::ValidateArgs),
    /// Work with validation reports.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Download (or find in a cache) a weight file, verified by sha256.
    Fetch(fetch::FetchArgs),
    /// Print the sha256 and size of files.
    Hash(hash::HashArgs),
    /// Measure top-1/top-5 on an ImageNet validation set, preprocessed exactly as timm does, and
    /// judge the card's documented accuracy; exit 1 if a documented value is not reached.
    Eval(eval::EvalArgs),
    /// Regenerate the model cards (one per collection) and schemas from the registry; `--check`
    /// exits 1 with a diff when the committed ones are stale.
    Docs(docs::DocsArgs),
}

/// Outcome of a command that ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything checked out.
    Ok,
    /// A check failed.
    Failed,
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // An invalid $ZOO_LIMITS is a usage error, not a silent fallback to the defaults.
    if let Err(err) = zoo_converters::Limits::from_env() {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    signals::install();
    let flags = cli.command.flags();
    let outcome = run(cli);
    signals::settle();
    match outcome {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Failed) => ExitCode::from(1),
        Err(err) => {
            // Errors quote names from files (tar members, tensors, URLs): no raw control
            // characters reach the terminal.
            eprintln!(
                "error: {}",
                zoo_converters::text::esc_text(&format!("{err:#}"))
            );
            if let Some(hint) = hint::hint(flags, &err) {
                eprintln!("{}", zoo_converters::text::esc_text(&hint));
            }
            ExitCode::from(2)
        }
    }
}

impl Command {
    /// The flags of this command that an error's hint may name ([`hint::hint`]).
    fn flags(&self) -> hint::Flags {
        use hint::Flags;
        match self {
            Command::Convert(_) => Flags {
                command: "convert",
                arch: true,
                weight_set: true,
                path: Some("--from"),
                name_as: true,
                skip_bad: false,
            },
            Command::Export(_) => Flags {
                weight_set: true,
                path: Some("--from"),
                ..Flags::none("export")
            },
            Command::Fingerprint(_) => Flags {
                arch: true,
                weight_set: true,
                path: Some("FILE"),
                ..Flags::none("fingerprint")
            },
            Command::Diff(_) => Flags {
                arch: true,
                weight_set: true,
                path: Some("A or B"),
                ..Flags::none("diff")
            },
            Command::Eval(_) => Flags {
                path: Some("--weights"),
                skip_bad: true,
                ..Flags::none("eval")
            },
            Command::Arch { .. } => Flags::none("arch"),
            Command::Flops(_) => Flags::none("flops"),
            Command::List { .. } => Flags::none("list"),
            Command::Show { .. } => Flags::none("show"),
            Command::Schema { .. } => Flags::none("schema"),
            Command::CheckCards { .. } => Flags::none("check-cards"),
            Command::Validate(_) => Flags::none("validate"),
            Command::Report(_) => Flags::none("report"),
            Command::Fetch(_) => Flags::none("fetch"),
            Command::Hash(_) => Flags::none("hash"),
            Command::Docs(_) => Flags::none("docs"),
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Status> {
    let flags = cli.command.flags();
    match cli.command {
        Command::Arch { spec } => {
            let cfg = arch_named(&spec, || load_registry(&cli.registry))?;
            let spec = cfg.resolve()?;
            outln!("{}", serde_json::to_string_pretty(&spec)?);
            Ok(Status::Ok)
        }
        Command::Flops(args) => flops::run(args, || load_registry(&cli.registry)),
        Command::List { patterns, json } => {
            let (registry, errors) = load_registry_reporting_errors(&cli.registry)?;
            let status = list::run(&registry, &patterns, json)?;
            // An incomplete listing must not look like a whole one to a script.
            Ok(if errors > 0 { Status::Failed } else { status })
        }
        Command::Show { name, json } => {
            let (registry, _) = load_registry_reporting_errors(&cli.registry)?;
            show::run(&registry, &name, json)
        }
        Command::Schema { write, check } => schema::run(write.as_deref(), check.as_deref()),
        Command::CheckCards { paths, json } => {
            check_cards::run(&paths, json, || load_registry(&cli.registry))
        }
        Command::Convert(args) => convert::run(args, || load_registry(&cli.registry)),
        Command::Export(args) => export::run(args, || load_registry(&cli.registry)),
        Command::Fingerprint(args) => {
            weights::fingerprint_cmd(args, flags, || load_registry(&cli.registry))
        }
        Command::Diff(args) => weights::diff_cmd(args, || load_registry(&cli.registry)),
        Command::Validate(args) => validate::run(args, cli.registry.as_deref()),
        Command::Report(cmd) => report::run(cmd),
        Command::Fetch(args) => fetch::run(args, || load_registry(&cli.registry)),
        Command::Hash(args) => hash::run(args),
        Command::Eval(args) => eval::run(args, || load_registry(&cli.registry)),
        Command::Docs(args) => docs::run(args, cli.registry.as_deref()),
    }
}

/// The architecture `text` names for `--arch` and `zoo arch`: a registry model's (by name or
/// alias), or an architecture description. The registry is loaded only when `text` is not an
/// architecture, so a broken registry does not stop `--arch b0`.
pub(crate) fn arch_named(
    text: &str,
    registry: impl FnOnce() -> anyhow::Result<crate::registry::Registry>,
) -> anyhow::Result<crate::arch::ArchConfig> {
    let not_arch = match text.parse::<crate::arch::ArchConfig>() {
        Ok(arch) => return Ok(arch),
        Err(e) => e,
    };
    let registry = registry().map_err(|e| {
        anyhow::anyhow!("`{text}` is not an architecture ({not_arch}), and the registry, where it might be a model, did not load: {e:#}")
    })?;
    Ok(crate::lookup::lookup(Some(&registry), text)?.arch().clone())
}

/// Where the registry is, by the one rule every command follows ([`crate::registry::locate`]):
/// `--registry PATH`, else `ZOO_REGISTRY`, else `registry/model-index.yml` in the working
/// directory or a parent, else the embedded one.
pub(crate) fn locate_registry(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<crate::registry::Location> {
    let cwd = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the working directory: {e}"))?;
    Ok(crate::registry::locate(dir, &cwd)?)
}

/// The registry by the one rule ([`locate_registry`]); one with errors fails.
fn load_registry(dir: &Option<PathBuf>) -> anyhow::Result<crate::registry::Registry> {
    let registry = crate::registry::Registry::open(&locate_registry(dir.as_deref())?)?;
    for d in registry.diagnostics() {
        if d.severity == crate::diagnostic::Severity::Warning {
            eprintln!("{}", zoo_converters::text::esc_text(&d.to_string()));
        }
    }
    Ok(registry)
}

/// The registry for commands that only read it (`list`, `show`): a file with errors does not stop
/// them. Its errors go to stderr, with the models they leave out, and their count is returned.
fn load_registry_reporting_errors(
    dir: &Option<PathBuf>,
) -> anyhow::Result<(crate::registry::Registry, usize)> {
    let registry = crate::registry::Registry::open_keep_errors(&locate_registry(dir.as_deref())?)?;
    let mut errors = 0;
    for d in registry.diagnostics() {
        if d.is_error() {
            errors += 1;
        }
        eprintln!("{}", zoo_converters::text::esc_text(&d.to_string()));
    }
    if errors > 0 {
        let lost: Vec<&str> = registry
            .unreadable()
            .iter()
            .flat_map(|u| u.models.iter().map(|(name, _)| name.as_str()))
            .collect();
        eprintln!(
            "the registry has {errors} error(s) (above; `zoo validate` reports them with every other check){}",
            if lost.is_empty() {
                String::new()
            } else {
                format!(
                    "; not loaded: {}",
                    zoo_converters::text::esc_text(&lost.join(", "))
                )
            }
        );
    }
    Ok((registry, errors))
}

/// Most shards `--shard K/N` may split a run into (far more than any CI matrix runs).
const MAX_SHARDS: usize = 1024;

/// Parses `--shard K/N`.
pub(crate) fn parse_shard(s: &str) -> anyhow::Result<crate::report::Shard> {
    use anyhow::Context;
    let (k, n) = s.split_once('/').context("--shard takes K/N, e.g. 2/4")?;
    let number = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=MAX_SHARDS).contains(v))
            .with_context(|| format!("--shard {s}: `{v}` is not a number from 1 to {MAX_SHARDS}"))
    };
    let (k, n) = (number(k)?, number(n)?);
    if k > n {
        anyhow::bail!("--shard {s}: need 1 <= K <= N");
    }
    Ok(crate::report::Shard { index: k, count: n })
}
