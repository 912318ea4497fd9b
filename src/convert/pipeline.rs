//! `zoo convert` as a library function: open a source, map it, write timm files, re-read them,
//! and (when reference vectors exist) prove the result by running it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_converters::{StateDict, Tensor};

use super::output::{write_outputs, Format, Output, OutputError};
use super::tf_efficientnet::MAPPING_VERSION;
use super::WeightSet;
use crate::arch::Spec;
use crate::checkpoint::{self, CheckpointError, SourceFormat};
use crate::fingerprint::{fingerprint, Fingerprint};
use crate::torch::{compare_logits, EfficientNet, LogitsComparison, TorchError};

/// Inputs and expected outputs of a model, from the original framework.
#[derive(Debug, Clone)]
pub struct ReferenceVectors {
    /// NCHW float32 input.
    pub input: PathBuf,
    /// `[N, classes]` float32 logits.
    pub logits: PathBuf,
    /// Max abs difference allowed on the logits.
    pub tolerance: f64,
}

/// What to convert and where.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Output directory.
    pub out_dir: PathBuf,
    /// File stem before `-<sha8>` (timm's model name).
    pub name: String,
    /// Containers to write.
    pub formats: Vec<Format>,
    /// TF weight set.
    pub weights: WeightSet,
    /// Reference vectors for the inference check.
    pub reference: Option<ReferenceVectors>,
}

/// The outcome of the inference check.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum InferenceCheck {
    /// Ran; see `passed`.
    Ran(LogitsComparison),
    /// Not run, and why.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Everything a conversion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    /// Source path.
    pub source: PathBuf,
    /// Detected source format.
    pub source_format: SourceFormat,
    /// sha256 of the source file (for a bundle prefix: of its `.index`).
    pub source_sha256: String,
    /// Architecture (display form).
    pub arch: String,
    /// Weight set (TF sources).
    pub weights: Option<WeightSet>,
    /// Tensors converted.
    pub tensors: usize,
    /// Source tensors deliberately skipped (TF optimizer slots, the other weight set, …).
    pub ignored: usize,
    /// Container-independent fingerprint of the converted weights.
    pub fingerprint: Fingerprint,
    /// Files written (none when the inference check failed).
    pub outputs: Vec<Output>,
    /// Inference parity.
    pub inference: InferenceCheck,
}

impl ConvertReport {
    /// True unless the inference check ran and failed.
    pub fn passed(&self) -> bool {
        !matches!(&self.inference, InferenceCheck::Ran(c) if !c.passed)
    }
}

/// Errors of a conversion.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Opening or mapping the source failed.
    #[error(transparent)]
    Source(#[from] CheckpointError),
    /// Writing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A written file does not read back to the converted tensors.
    #[error("{path}: reads back with fingerprint {actual}, but {expected} was written")]
    ReadBack {
        /// The file.
        path: PathBuf,
        /// Fingerprint written.
        expected: String,
        /// Fingerprint read.
        actual: String,
    },
    /// Reading a written file or a reference vector failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: zoo_converters::Error,
    },
    /// libtorch failed.
    #[error(transparent)]
    Torch(#[from] TorchError),
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn source_sha256(path: &Path) -> Result<String, ConvertError> {
    let file = if path.is_file() {
        path.to_owned()
    } else {
        PathBuf::from(format!("{}.index", path.display()))
    };
    crate::fetch::sha256_file(&file)
        .map(|(h, _)| h)
        .map_err(|source| ConvertError::Io { path: file, source })
}

/// Provenance recorded in safetensors `__metadata__`.
pub fn provenance(
    report_source: &Path,
    sha256: &str,
    spec: &Spec,
    weights: Option<WeightSet>,
    fp: &Fingerprint,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), "pt".into());
    m.insert("zoo.version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert(
        "zoo.source".into(),
        report_source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    m.insert("zoo.source_sha256".into(), sha256.into());
    m.insert("zoo.arch".into(), spec.config.to_string());
    m.insert("zoo.mapping".into(), MAPPING_VERSION.into());
    if let Some(w) = weights {
        m.insert("zoo.weights".into(), w.as_str().into());
    }
    m.insert("zoo.fingerprint".into(), fp.fingerprint.clone());
    m
}

/// Runs the converted model on the reference input and compares with the reference logits.
pub fn check_inference(
    spec: &Spec,
    tensors: &StateDict,
    reference: Option<&ReferenceVectors>,
) -> Result<InferenceCheck, ConvertError> {
    let Some(r) = reference else {
        return Ok(InferenceCheck::Skipped {
            reason: "no reference vectors for this model".into(),
        });
    };
    if !crate::torch::available() {
        return Ok(InferenceCheck::Skipped {
            reason: "zoo was built without the `torch` feature".into(),
        });
    }
    let read = |p: &Path| -> Result<Tensor, ConvertError> {
        zoo_converters::npy::read(p).map_err(|e| ConvertError::Read {
            path: p.to_owned(),
            source: e.into(),
        })
    };
    let input = read(&r.input)?;
    let expected = read(&r.logits)?;
    let model = EfficientNet::load(spec, tensors)?;
    let logits = model.forward(&input)?;
    Ok(InferenceCheck::Ran(compare_logits(
        &logits,
        &expected,
        r.tolerance,
    )?))
}

/// Converts `source` for `spec` and writes the outputs.
pub fn convert(
    source: &Path,
    spec: &Spec,
    opts: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let opened = checkpoint::open(source, Some(spec), opts.weights)?;
    let is_tf = matches!(
        opened.format,
        SourceFormat::TfBundle | SourceFormat::TfTarball
    );
    let sha256 = source_sha256(source)?;
    let fp = fingerprint(opened.tensors.iter().map(|(k, t)| (k, t)));
    let metadata = provenance(source, &sha256, spec, is_tf.then_some(opts.weights), &fp);
    let inference = check_inference(spec, &opened.tensors, opts.reference.as_ref())?;
    // A conversion whose outputs disagree with the reference writes nothing: no unverified files.
    let failed = matches!(&inference, InferenceCheck::Ran(c) if !c.passed);
    let outputs = if failed {
        vec![]
    } else {
        write_outputs(
            &opts.out_dir,
            &opts.name,
            &opts.formats,
            &opened.tensors,
            &metadata,
        )?
    };
    // Prove each file holds exactly what was checked.
    for out in &outputs {
        let back = match out.format {
            Format::Pth => {
                zoo_converters::pth::read(&out.path).map_err(zoo_converters::Error::from)
            }
            Format::Safetensors => zoo_converters::safetensors::read(&out.path)
                .map(|(t, _)| t)
                .map_err(zoo_converters::Error::from),
        }
        .map_err(|source| ConvertError::Read {
            path: out.path.clone(),
            source,
        })?;
        let got = fingerprint(back.iter().map(|(k, t)| (k, t)));
        if got.fingerprint != fp.fingerprint {
            return Err(ConvertError::ReadBack {
                path: out.path.clone(),
                expected: fp.fingerprint.clone(),
                actual: got.fingerprint,
            });
        }
    }
    let (tensors, ignored) = match &opened.plan {
        Some(p) => (p.items.len(), p.ignored.len()),
        None => (opened.tensors.len(), 0),
    };
    Ok(ConvertReport {
        source: source.to_owned(),
        source_format: opened.format,
        source_sha256: sha256,
        arch: spec.config.to_string(),
        weights: is_tf.then_some(opts.weights),
        tensors,
        ignored,
        fingerprint: fp,
        outputs,
        inference,
    })
}
