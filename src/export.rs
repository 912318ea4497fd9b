//! `zoo export`: a folder in timm's Hugging Face Hub layout, ready to upload.
//!
//! ```text
//! DIR/model.safetensors   zoo's verified conversion (provenance in its `__metadata__`)
//! DIR/config.json         exactly as timm's `save_for_hf` writes it
//! DIR/README.md           the Hub card: front matter with `model-index`, prose, provenance
//! ```
//!
//! The weights go through [`crate::convert::pipeline::convert`]: the source is mapped (TF) or
//! checked strictly against the architecture (`.pth`/`.safetensors`), written, read back and
//! fingerprinted, and run against reference logits when there are any. The whole folder is built
//! in a private directory beside `DIR` and renamed to `DIR` in one step, so `DIR` either holds
//! all three verified files or does not exist; a failed check leaves nothing behind. `DIR` must
//! not exist yet (or be an empty directory): an export never replaces files it did not write.
//! The same inputs give byte-identical folders.
use std::path::{Path, PathBuf};

use crate::convert::output::Format;
use crate::convert::pipeline::{
    self, ConvertError, ConvertOptions, ConvertReport, Progress, ReferenceVectors,
};
use crate::convert::tf_efficientnet::MAPPING_VERSION;
use crate::convert::WeightSet;
use crate::hub::{self, HubError, Provenance};
use crate::registry::{ModelEntry, Registry};
use crate::scratch::{CreatedDir, ScratchDir};

/// The weight file's name in the folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The config's name in the folder.
pub const CONFIG_FILE: &str = "config.json";
/// The card's name in the folder.
pub const CARD_FILE: &str = "README.md";

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The folder to create.
    pub dir: PathBuf,
    /// TF weight set.
    pub weights: WeightSet,
    /// Reference vectors for the inference check (default: the registry's).
    pub reference: Option<ReferenceVectors>,
}

/// A file of the exported folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedFile {
    /// Its path.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// What an export did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    /// The registry model.
    pub model: String,
    /// Its Hub name (`tf_efficientnet_b0.ns_jft_in1k`).
    pub hub_name: String,
    /// The folder (absent when a check failed).
    pub dir: PathBuf,
    /// The conversion of the weights, with its checks.
    pub conversion: ConvertReport,
    /// The files written, in folder order (empty when a check failed).
    pub files: Vec<ExportedFile>,
    /// Scratch directories of killed exports that were removed before this one.
    pub swept: Vec<PathBuf>,
}

impl ExportReport {
    /// True unless a check ran and failed.
    pub fn passed(&self) -> bool {
        self.conversion.passed()
    }
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The registry model lacks what the Hub files need.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The conversion failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The folder exists and holds files.
    #[error("{}: exists and is not empty; export into a new or empty directory", .dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// The generated card fails zoo's own Hub card check (a template error).
    #[error("the generated {CARD_FILE} fails its own check:\n  {}", .findings.join("\n  "))]
    CardCheck {
        /// The findings.
        findings: Vec<String>,
    },
    /// File system error.
    #[error("{}: {source}", .path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Exports a registry model's weights from `source` (a TF checkpoint, `.pth` or
/// `.safetensors`) into a Hub folder.
pub fn export(
    registry: &Registry,
    entry: &ModelEntry,
    source: &Path,
    opts: &ExportOptions,
    progress: Option<Progress<'_>>,
) -> Result<ExportReport, ExportError> {
    // Everything the registry must provide is checked before anything is written.
    let hub = hub::hub_name(entry)?;
    let spec = hub::resolve(entry)?;
    let config = hub::timm_config(entry, &spec)?;
    hub::render_card(registry, entry, &spec, None)?;
    let dir = &opts.dir;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::NotEmpty { dir: dir.clone() });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Directories made for the folder's parent are removed again unless the export lands.
    let mut made = MadeDirs::create(&parent).map_err(io(&parent))?;
    // A scratch directory beside `DIR` (same file system, so publishing is one rename); it is
    // removed on any error, on SIGINT/SIGTERM, and by the next export when a killed run left it.
    let swept: Vec<PathBuf> = crate::scratch::sweep(&parent, EXPORT_PREFIX)
        .into_iter()
        .map(|l| l.path)
        .collect();
    let staging = ScratchDir::new_in(&parent, EXPORT_PREFIX).map_err(io(&parent))?;
    let folder = staging.path().join("hub");
    std::fs::create_dir(&folder).map_err(io(&folder))?;
    let opts_convert = ConvertOptions {
        out_dir: staging.path().join("weights"),
        name: "model".into(),
        formats: vec![Format::Safetensors],
        weights: opts.weights,
        reference: opts.reference.clone().or_else(|| entry.reference()),
    };
    let conversion = pipeline::convert(source, &spec, &opts_convert, progress)?;
    let mut report = ExportReport {
        model: entry.name().to_string(),
        hub_name: hub.to_string(),
        dir: dir.clone(),
        conversion,
        files: vec![],
        swept,
    };
    if !report.passed() {
        return Ok(report);
    }
    let weights = report
        .conversion
        .outputs
        .first()
        .cloned()
        .ok_or_else(|| io(dir)(std::io::Error::other("the conversion wrote no file")))?;
    let staged_weights = folder.join(WEIGHTS_FILE);
    std::fs::rename(&weights.path, &staged_weights).map_err(io(&weights.path))?;
    let provenance = provenance(&report.conversion, &weights.sha256);
    let card = hub::render_card(registry, entry, &spec, Some(&provenance))?;
    check_card(&card)?;
    write_file(&folder.join(CONFIG_FILE), config.to_json().as_bytes())?;
    write_file(&folder.join(CARD_FILE), card.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&folder))?;
    }
    sync_dir(&folder)?;
    // One rename publishes the folder (over an empty directory, if there was one).
    std::fs::rename(&folder, dir).map_err(io(dir))?;
    made.keep();
    drop(staging);
    sync_dir(&parent)?;
    report.files = [WEIGHTS_FILE, CONFIG_FILE, CARD_FILE]
        .iter()
        .map(|f| {
            let path = dir.join(f);
            let (sha256, size) = crate::fetch::sha256_file(&path).map_err(io(&path))?;
            Ok(ExportedFile { path, sha256, size })
        })
        .collect::<Result<_, ExportError>>()?;
    Ok(report)
}

/// Prefix of an export's scratch directory (beside the exported folder).
pub const EXPORT_PREFIX: &str = ".zoo-export-";

/// The directories [`MadeDirs::create`] made (the missing ancestors of a path, deepest first);
/// removed again when dropped, if still empty, unless [`MadeDirs::keep`] was called.
/// They are registered with the signal handler too ([`CreatedDir`]).
struct MadeDirs(Vec<PathBuf>, Vec<CreatedDir>);

impl MadeDirs {
    fn create(dir: &Path) -> std::io::Result<MadeDirs> {
        let made: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        let registered = made.iter().rev().map(|d| CreatedDir::register(d)).collect();
        std::fs::create_dir_all(dir)?;
        Ok(MadeDirs(made, registered))
    }

    fn keep(&mut self) {
        self.0.clear();
        self.1.clear();
    }
}

impl Drop for MadeDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}

/// The card's provenance section from a conversion.
fn provenance(c: &ConvertReport, safetensors_sha256: &str) -> Provenance {
    Provenance {
        source: c
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: c.source_sha256.clone(),
        zoo_version: env!("CARGO_PKG_VERSION").to_string(),
        mapping: MAPPING_VERSION.to_string(),
        weights: c.weights.map(|w| w.as_str().to_string()),
        fingerprint: c.fingerprint.fingerprint.clone(),
        safetensors_sha256: safetensors_sha256.to_string(),
        inference: c.inference.to_string(),
    }
}

/// Checks a generated card with the same reader `zoo check-cards` uses.
fn check_card(card: &str) -> Result<(), ExportError> {
    let (_, diags) = crate::card::Card::parse(Path::new(CARD_FILE), card);
    let findings: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if findings.is_empty() {
        Ok(())
    } else {
        Err(ExportError::CardCheck { findings })
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
