//! Opening any supported checkpoint as a timm state dict.
//!
//! The format is detected from the content, never from the extension alone:
//! - a directory, a `.tar.gz` release tarball, a `<prefix>.index` file or a bare `<prefix>`
//!   whose `.index` exists → TensorFlow tensor bundle (needs an architecture to map names);
//! - an 8-byte little-endian header length that fits the file, followed by `{` → safetensors
//!   (tested first: the length's low byte can be anything, including `0x80` or `0x1f`);
//! - `PK\x03\x04` → `torch.save` zip format; the whole 14-byte pickle of the legacy magic
//!   number (`80 02 8a 0a 6c fc 9c 46 f9 20 6a a8 50 19`) → legacy `torch.save`;
//! - the gzip magic `1f 8b` → a release tarball.
use std::path::{Path, PathBuf};

use zoo_converters::{pth, safetensors, tf_bundle::Bundle, StateDict};

use crate::arch::Network;
use crate::mapping::fit::{Diagnosis, Outline};
#[cfg(doc)]
use crate::mapping::SHOWN_PROBLEMS;
use crate::mapping::{inventory, plan_tf, problem_list, MappingError, Plan, WeightSet};
use crate::scratch::{ScratchDir, EXTRACT_PREFIX};

/// A detected container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// TensorFlow V2 checkpoint.
    TfBundle,
    /// TF checkpoint inside a `.tar.gz` release tarball.
    TfTarball,
    /// `torch.save` zip.
    PthZip,
    /// `torch.save` legacy (pre-1.6).
    PthLegacy,
    /// safetensors.
    Safetensors,
}

/// Errors opening a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Could not tell what the file is.
    #[error("{path}: not a recognised checkpoint (expected a TF bundle prefix/.index/.tar.gz, a torch.save .pth, or .safetensors; first bytes {head:02x?})")]
    Unknown {
        /// The path.
        path: PathBuf,
        /// Its first bytes.
        head: Vec<u8>,
    },
    /// A TF checkpoint needs an architecture to map its names.
    #[error(
        "{path}: a TensorFlow checkpoint needs an architecture to map its variables to timm names"
    )]
    NeedsArch {
        /// The path.
        path: PathBuf,
    },
    /// The format reader failed.
    #[error(transparent)]
    Read(#[from] zoo_converters::Error),
    /// The TF checkpoint does not match the architecture.
    #[error("{path}: {error}")]
    Mapping {
        /// The path.
        path: PathBuf,
        /// All problems (in the message, so not also a `source`).
        error: MappingError,
    },
    /// A state dict does not match the architecture. The message lists the first
    /// [`SHOWN_PROBLEMS`] problems and the diagnosis.
    #[error("{path}: {}", problem_list("problem(s) against", arch, problems, diagnosis.as_deref()))]
    Mismatch {
        /// The path.
        path: PathBuf,
        /// The architecture.
        arch: String,
        /// Every problem, one line each.
        problems: Vec<String>,
        /// What the state dict's shapes say, and which architecture fits them.
        diagnosis: Option<Box<Diagnosis>>,
    },
    /// A directory given as a TF checkpoint holds none.
    #[error("{}: no TensorFlow checkpoint in this directory (no `<prefix>.index` file)", dir.display())]
    NoCheckpointInDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A directory given as a TF checkpoint holds several; which one is meant is not guessed.
    #[error(
        "{}: {} TensorFlow checkpoints in this directory ({}); which one is meant is not guessed: name one by its prefix, e.g. {}",
        dir.display(),
        indexes.len(),
        indexes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        indexes.first().map(|p| p.with_extension("").display().to_string()).unwrap_or_default()
    )]
    SeveralCheckpoints {
        /// The directory.
        dir: PathBuf,
        /// Every `.index` file in it, sorted.
        indexes: Vec<PathBuf>,
    },
    /// File system error.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why (in the message, so not also a `source`).
        error: std::io::Error,
    },
}

/// What [`open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The detected format.
    pub format: SourceFormat,
    /// Tensors with timm keys (mapped for TF sources).
    pub tensors: StateDict,
    /// The conversion plan, for TF sources.
    pub plan: Option<Plan>,
}

/// Detects the format of `path`.
pub fn detect(path: &Path) -> Result<SourceFormat, CheckpointError> {
    let io = |error| CheckpointError::Io {
        path: path.to_owned(),
        error,
    };
    if bundle_prefix(path)?.is_some() {
        return Ok(SourceFormat::TfBundle);
    }
    let mut head = [0u8; 16];
    let (n, len) = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(io)? {
                0 => break,
                k => n += k,
            }
        }
        (n, len)
    };
    let head = &head[..n];
    if safetensors::looks_like(head, len) {
        Ok(SourceFormat::Safetensors)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(SourceFormat::TfTarball)
    } else if head.starts_with(b"PK\x03\x04") {
        Ok(SourceFormat::PthZip)
    } else if head.starts_with(&pth::LEGACY_HEAD) {
        Ok(SourceFormat::PthLegacy)
    } else {
        Err(CheckpointError::Unknown {
            path: path.to_owned(),
            head: head.to_vec(),
        })
    }
}

/// The TF bundle prefix a path names: `<prefix>.index`, a bare `<prefix>` whose `.index`
/// exists, or a directory holding exactly one `<prefix>.index`. `None`: not a bundle path.
pub fn bundle_prefix(path: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let s = path.to_string_lossy();
    if let Some(p) = s.strip_suffix(".index") {
        return Ok(Some(PathBuf::from(p)));
    }
    if !path.exists() && PathBuf::from(format!("{s}.index")).is_file() {
        return Ok(Some(path.to_owned()));
    }
    if !path.is_dir() {
        return Ok(None);
    }
    let mut indexes: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|error| CheckpointError::Io {
            path: path.to_owned(),
            error,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "index"))
        .collect();
    indexes.sort();
    match indexes.len() {
        0 => Err(CheckpointError::NoCheckpointInDir {
            dir: path.to_owned(),
        }),
        1 => Ok(Some(indexes[0].with_extension(""))),
        _ => Err(CheckpointError::SeveralCheckpoints {
            dir: path.to_owned(),
            indexes,
        }),
    }
}

/// The file whose sha256 identifies a source: the file itself, or a bundle's `.index`.
pub fn identity_file(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.is_file() {
        return Ok(path.to_owned());
    }
    Ok(match bundle_prefix(path)? {
        Some(prefix) => PathBuf::from(format!("{}.index", prefix.display())),
        None => path.to_owned(),
    })
}

/// An open TF checkpoint and its conversion plan, not yet read.
#[derive(Debug)]
pub struct OpenedBundle {
    /// The bundle (inside `scratch` for a tarball).
    pub bundle: Bundle,
    /// The checked conversion plan.
    pub plan: Plan,
    /// Where a tarball was unpacked (`zoo-extract-<pid>-…`); removed on drop.
    _scratch: Option<ScratchDir>,
}

impl SourceFormat {
    /// A TensorFlow checkpoint (bundle or release tarball).
    pub fn is_tf(self) -> bool {
        matches!(self, SourceFormat::TfBundle | SourceFormat::TfTarball)
    }
}

/// Opens a TF source of `format` (a bundle prefix/.index/directory, or a tarball, unpacked into a
/// [`ScratchDir`] in the system temporary directory) and plans its conversion for `spec` without
/// reading any tensor.
pub fn open_tf(
    path: &Path,
    format: SourceFormat,
    spec: &Network,
    weights: WeightSet,
) -> Result<OpenedBundle, CheckpointError> {
    let (bundle, scratch) = if format == SourceFormat::TfTarball {
        let temp = std::env::temp_dir();
        let scratch = ScratchDir::new_in(&temp, EXTRACT_PREFIX)
            .map_err(|error| CheckpointError::Io { path: temp, error })?;
        // Errors about the checkpoint's files name them inside the tarball, not in scratch.
        let bundle = zoo_converters::tf_bundle::open_tarball(
            path,
            scratch.path(),
            zoo_converters::Limits::current(),
        )?;
        (bundle, Some(scratch))
    } else {
        let prefix = bundle_prefix(path)?.unwrap_or_else(|| path.to_owned());
        (Bundle::open(&prefix)?, None)
    };
    let plan =
        plan_tf(spec, &inventory(&bundle), weights).map_err(|error| CheckpointError::Mapping {
            path: path.to_owned(),
            error,
        })?;
    Ok(OpenedBundle {
        bundle,
        plan,
        _scratch: scratch,
    })
}

/// Reads a planned bundle's tensors with timm keys and layouts, in plan order.
fn read_planned(
    bundle: &Bundle,
    plan: &Plan,
    spec: &Network,
    path: &Path,
) -> Result<StateDict, CheckpointError> {
    let mut tensors = Vec::with_capacity(plan.items.len());
    for item in &plan.items {
        let t = bundle.read(&item.source)?;
        let t = if item.map.layout.is_same() {
            t
        } else {
            // The plan checked the shape, so the layout change applies.
            item.map
                .to_timm(&t, vec![])
                .ok_or_else(|| CheckpointError::Mismatch {
                    path: path.to_owned(),
                    arch: spec.arch.clone(),
                    problems: vec![format!(
                        "`{}`: cannot rearrange {:?} as {:?}",
                        item.source,
                        t.shape(),
                        item.map.layout
                    )],
                    diagnosis: None,
                })?
        };
        tensors.push((item.map.target.name.clone(), t));
    }
    Ok(tensors)
}

/// Checks a timm state dict against `spec`: every key present with its shape, nothing unexpected
/// except `num_batches_tracked` counters (which are dropped). Returns the tensors in spec order.
pub fn check_against(
    tensors: StateDict,
    spec: &Network,
    path: &Path,
) -> Result<StateDict, CheckpointError> {
    let shapes: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape().to_vec()))
        .collect();
    let mut by_name: std::collections::BTreeMap<String, zoo_converters::Tensor> =
        tensors.into_iter().collect();
    let mut problems = vec![];
    let mut out = vec![];
    for p in spec.params() {
        match by_name.remove(&p.name) {
            None => problems.push(format!(
                "{}: missing (expected shape {:?})",
                p.name, p.shape
            )),
            Some(t) if t.shape() != p.shape.as_slice() => problems.push(format!(
                "{}: shape {:?}, the architecture needs {:?}",
                p.name,
                t.shape(),
                p.shape
            )),
            Some(t) if t.dtype() != zoo_converters::DType::F32 => problems.push(format!(
                "{}: dtype {}, expected F32",
                p.name,
                t.dtype().name()
            )),
            Some(t) => out.push((p.name, t)),
        }
    }
    for (k, t) in by_name {
        if !crate::fingerprint::is_bookkeeping(&k) {
            problems.push(format!(
                "{}: unexpected key (shape {:?})",
                zoo_converters::text::esc(&k),
                t.shape()
            ));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        let outline = Outline::of_timm(shapes.iter().map(|(k, s)| (k.as_str(), s.as_slice())));
        // A candidate fits when every tensor it needs is there with its shape, and nothing else.
        let have: std::collections::BTreeMap<&str, &[usize]> = shapes
            .iter()
            .filter(|(k, _)| !crate::fingerprint::is_bookkeeping(k))
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect();
        let fits = |candidate: &Network| {
            let wanted = candidate.params();
            have.len() == wanted.len()
                && wanted
                    .iter()
                    .all(|p| have.get(p.name.as_str()) == Some(&p.shape.as_slice()))
        };
        Err(CheckpointError::Mismatch {
            path: path.to_owned(),
            arch: spec.arch.clone(),
            problems,
            diagnosis: Some(Box::new(Diagnosis::new(outline, spec, fits))),
        })
    }
}

/// Opens any supported checkpoint. TF sources need `spec`; other sources are checked against it
/// when given.
pub fn open(
    path: &Path,
    spec: Option<&Network>,
    weights: WeightSet,
) -> Result<Opened, CheckpointError> {
    let format = detect(path)?;
    match format {
        SourceFormat::TfBundle | SourceFormat::TfTarball => {
            let spec = spec.ok_or_else(|| CheckpointError::NeedsArch {
                path: path.to_owned(),
            })?;
            let tf = open_tf(path, format, spec, weights)?;
            let tensors = read_planned(&tf.bundle, &tf.plan, spec, path)?;
            Ok(Opened {
                format,
                tensors,
                plan: Some(tf.plan),
            })
        }
        SourceFormat::PthZip | SourceFormat::PthLegacy | SourceFormat::Safetensors => {
            let tensors = if format == SourceFormat::Safetensors {
                safetensors::read(path)
                    .map_err(zoo_converters::Error::from)?
                    .0
            } else {
                pth::read(path).map_err(zoo_converters::Error::from)?
            };
            let tensors = match spec {
                Some(spec) => check_against(tensors, spec, path)?,
                None => tensors,
            };
            Ok(Opened {
                format,
                tensors,
                plan: None,
            })
        }
    }
}
