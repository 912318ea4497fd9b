//! `zoo convert` as a library function: open a source, map it, write timm files, re-read them,
//! and (when reference vectors exist) prove the result by running it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use zoo_converters::{StateDict, Tensor};

use super::output::{Format, Output, OutputError, Staging};
use super::stream::{convert_streaming, StreamError, StreamOutputs};
use crate::arch::{Network, TfVariables};
use crate::checkpoint::{self, CheckpointError, SourceFormat};
use crate::fingerprint::{fingerprint, Fingerprint, Fingerprinter};
use crate::mapping::tf_efficientnet::MAPPING_VERSION;
use crate::mapping::WeightSet;
use crate::torch::{compare_logits, LogitsComparison, Model, TorchError};

pub use crate::reference::ReferenceVectors;

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

impl std::fmt::Display for InferenceCheck {
    /// `pass: largest logit difference 7.153e-7 (tolerance 1e-4) against the reference logits;
    /// top-1 agreement 100%`, or `skipped (reason)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InferenceCheck::Ran(r) => write!(
                f,
                "{}: largest logit difference {:.3e} (tolerance {:.0e}) against the reference logits; top-1 agreement {:.0}%",
                if r.passed { "pass" } else { "FAIL" },
                r.max_abs,
                r.tolerance,
                r.top1_agree * 100.0
            )
            .and_then(|()| match &r.note {
                Some(note) => write!(f, " ({note})"),
                None => Ok(()),
            }),
            InferenceCheck::Skipped { reason } => write!(f, "skipped ({reason})"),
        }
    }
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
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (boxed: it is large and errors are rare; in the message, so not also a `source`).
        error: Box<zoo_converters::Error>,
    },
    /// A reference vector (`.npy`) could not be read; the error names the file.
    #[error(transparent)]
    Reference(Box<zoo_converters::Error>),
    /// libtorch failed.
    #[error(transparent)]
    Torch(#[from] TorchError),
    /// The streaming TF conversion failed.
    #[error("{}: {error}", checkpoint.display())]
    Stream {
        /// The source checkpoint.
        checkpoint: PathBuf,
        /// Why.
        error: StreamError,
    },
    /// File system error.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also a `source`).
        error: std::io::Error,
    },
}

fn source_sha256(path: &Path) -> Result<String, ConvertError> {
    let file = checkpoint::identity_file(path)?;
    crate::fetch::sha256_file(&file)
        .map(|(h, _)| h)
        .map_err(|error| ConvertError::Io { path: file, error })
}

/// Provenance recorded in safetensors `__metadata__`.
pub fn provenance(
    report_source: &Path,
    sha256: &str,
    spec: &Network,
    weights: Option<WeightSet>,
    fp: Option<&Fingerprint>,
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
    m.insert("zoo.arch".into(), spec.arch.clone());
    // The TF → timm map applies to TF sources only; a `.pth` or safetensors source is read
    // under timm's own names.
    if let Some(w) = weights {
        m.insert("zoo.mapping".into(), MAPPING_VERSION.into());
        m.insert("zoo.weights".into(), w.as_str().into());
    }
    // When not known yet, the streaming writer fills it in.
    m.insert(
        crate::fingerprint::FINGERPRINT_KEY.into(),
        fp.map(|f| f.fingerprint.clone()).unwrap_or_default(),
    );
    m
}

/// The reference vectors [`check_inference`] would run, or why it would not run.
fn runnable(reference: Option<&ReferenceVectors>) -> Result<&ReferenceVectors, String> {
    match reference {
        None => Err("no reference vectors for this model".into()),
        Some(_) if !crate::torch::available() => {
            Err("zoo was built without the `torch` feature".into())
        }
        Some(r) => Ok(r),
    }
}

/// Runs the converted model on the reference input and compares with the reference logits.
/// Reference logits are the original framework's ([`ReferenceVectors`]), so the model runs
/// with the original's arithmetic where timm's port changed it ([`Network::as_tf_computes`]),
/// and a TF-slim reference's background class 0 is dropped; the comparison's note says so.
pub fn check_inference(
    spec: &Network,
    tensors: &StateDict,
    reference: Option<&ReferenceVectors>,
) -> Result<InferenceCheck, ConvertError> {
    let r = match runnable(reference) {
        Ok(r) => r,
        Err(reason) => return Ok(InferenceCheck::Skipped { reason }),
    };
    let read = |p: &Path| -> Result<Tensor, ConvertError> {
        zoo_converters::npy::read(p).map_err(|e| ConvertError::Reference(Box::new(e.into())))
    };
    let input = read(&r.input)?;
    let mut expected = read(&r.logits)?;
    let mut notes = vec![];
    let as_tf = spec.as_tf_computes();
    let spec = match &as_tf {
        Some(net) => {
            notes.push(format!(
                "run as TF-slim computes it (squeeze-excite gate relu6(x + 3) · {}, timm: / 6)",
                crate::arch::graph::SLIM_HARD_SIGMOID_FACTOR
            ));
            net
        }
        None => spec,
    };
    if spec.tf_variables == Some(TfVariables::Slim)
        && expected.shape().len() == 2
        && expected.shape()[1] == spec.classes() + 1
    {
        expected = drop_background_class(expected)?;
        notes.push("the reference's background class 0 dropped (TF-slim's 1 + classes)".into());
    }
    let model = Model::load(spec, tensors)?;
    let logits = model.forward(&input)?;
    let mut comparison = compare_logits(&logits, &expected, r.tolerance)?;
    comparison.note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(InferenceCheck::Ran(comparison))
}

/// `[N, 1 + K]` logits without column 0.
fn drop_background_class(logits: Tensor) -> Result<Tensor, ConvertError> {
    let (rows, cols) = (logits.shape()[0], logits.shape()[1]);
    let element = logits.dtype().size();
    let data: Vec<u8> = logits
        .data()
        .chunks_exact(cols * element)
        .flat_map(|row| row[element..].iter().copied())
        .collect();
    Tensor::new(
        "reference logits",
        logits.dtype(),
        vec![rows, cols - 1],
        data,
    )
    .map_err(|e| ConvertError::Reference(Box::new(e)))
}

/// Reports the progress of the conversion proper: bytes converted so far, and in all.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Converts `source` for `spec` and writes the outputs.
///
/// Every file is first written into a [`Staging`] directory inside the output directory: a TF
/// source streams tensor by tensor (never the whole model in memory), other sources are
/// already in memory. Each staged file is then read back with zoo's own readers and must give
/// the fingerprint that was converted, and the inference check runs on the tensors read back,
/// so the bytes that were checked are the bytes that land. Only then are the files renamed to
/// `<name>-<sha8>.<ext>`. A failed check or any error leaves nothing behind.
pub fn convert(
    source: &Path,
    spec: &Network,
    opts: &ConvertOptions,
    progress: Option<Progress<'_>>,
) -> Result<ConvertReport, ConvertError> {
    // The name becomes part of every output path: refuse one that could leave `out_dir` before
    // anything is read or created.
    super::output::check_name(&opts.name)?;
    // A FIFO or device source would block the reader or never end.
    crate::fsutil::refuse_special_file(source).map_err(|e| ConvertError::Io {
        path: source.to_owned(),
        error: e,
    })?;
    let format = checkpoint::detect(source)?;
    let sha256 = source_sha256(source)?;
    let weights = format.is_tf().then_some(opts.weights);
    // Open (and for TF, plan) the source before anything is created in the output directory.
    let opened = if format.is_tf() {
        Source::Tf(checkpoint::open_tf(source, format, spec, opts.weights)?)
    } else {
        Source::Memory(checkpoint::open(source, Some(spec), opts.weights)?)
    };
    // each format once, in the order given (the first is the one the inference check reads)
    let mut formats: Vec<Format> = vec![];
    for &f in &opts.formats {
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    let staging = Staging::create(&opts.out_dir)?;
    let (fp, tensors, ignored) = match opened {
        Source::Tf(tf) => {
            let total: u64 = tf
                .plan
                .items
                .iter()
                .filter_map(|i| tf.bundle.entry(&i.source).map(|e| e.size))
                .sum();
            let done = std::sync::atomic::AtomicU64::new(0);
            let report = |bytes: u64| {
                if let Some(p) = progress {
                    let sofar = done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
                    p(sofar, total);
                }
            };
            let staged = |f: Format| {
                formats
                    .contains(&f)
                    .then(|| staging.path(&opts.name, f))
                    .transpose()
            };
            let (pth, st) = (staged(Format::Pth)?, staged(Format::Safetensors)?);
            let outputs = StreamOutputs {
                pth: pth.as_deref(),
                safetensors: st.as_deref(),
                metadata: provenance(source, &sha256, spec, weights, None),
                progress: Some(&report),
            };
            let fp = convert_streaming(&tf.bundle, &tf.plan, &outputs).map_err(|error| {
                ConvertError::Stream {
                    checkpoint: source.to_owned(),
                    error,
                }
            })?;
            (fp, tf.plan.items.len(), tf.plan.ignored.len())
        }
        Source::Memory(opened) => {
            let fp = fingerprint(opened.tensors.iter().map(|(k, t)| (k, t)));
            let metadata = provenance(source, &sha256, spec, weights, Some(&fp));
            for &f in &formats {
                staging.write(&opts.name, f, &opened.tensors, &metadata)?;
            }
            (fp, opened.tensors.len(), 0)
        }
    };
    // Each staged file is hashed for its name on another thread while it is read back and
    // checked here, so the two passes over the files overlap. A failed check stops the hashing.
    let cancel = AtomicBool::new(false);
    let (verified, hashed) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            formats
                .iter()
                .map(|&f| staging.hash(&opts.name, f, &cancel))
                .collect::<Result<Vec<_>, _>>()
        });
        let verified = verify_staged(&staging, &formats, spec, opts, &fp);
        let placing = match &verified {
            Ok(InferenceCheck::Ran(c)) => c.passed,
            Ok(InferenceCheck::Skipped { .. }) => true,
            Err(_) => false,
        };
        if !placing {
            cancel.store(true, Ordering::Relaxed);
        }
        let hashed = hashing
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (verified, hashed)
    });
    let inference = verified?;
    // A conversion whose outputs disagree with the reference writes nothing: no unverified files.
    let failed = matches!(&inference, InferenceCheck::Ran(c) if !c.passed);
    let outputs = if failed {
        vec![]
    } else {
        staging.place(&opts.name, hashed?)?
    };
    Ok(ConvertReport {
        source: source.to_owned(),
        source_format: format,
        source_sha256: sha256,
        arch: spec.arch.clone(),
        weights,
        tensors,
        ignored,
        fingerprint: fp,
        outputs,
        inference,
    })
}

/// Proves each staged file holds exactly what was converted (its fingerprint is `fp`). The
/// inference check runs on the first file's tensors as read back; without one to run, every
/// file is checked one tensor at a time, so the model is never in memory.
fn verify_staged(
    staging: &Staging,
    formats: &[Format],
    spec: &Network,
    opts: &ConvertOptions,
    fp: &Fingerprint,
) -> Result<InferenceCheck, ConvertError> {
    let skip = runnable(opts.reference.as_ref()).err();
    let mut inference = None;
    for (i, &f) in formats.iter().enumerate() {
        let path = staging.path(&opts.name, f)?;
        let (got, back) = if i == 0 && skip.is_none() {
            let back = read_back(f, &path)?;
            (fingerprint(back.iter().map(|(k, t)| (k, t))), Some(back))
        } else {
            (fingerprint_file(f, &path)?, None)
        };
        if got.fingerprint != fp.fingerprint {
            return Err(ConvertError::ReadBack {
                path,
                expected: fp.fingerprint.clone(),
                actual: got.fingerprint,
            });
        }
        if let Some(back) = back {
            let tensors = checkpoint::check_against(back, spec, &path)?;
            inference = Some(check_inference(spec, &tensors, opts.reference.as_ref())?);
        }
    }
    Ok(inference.unwrap_or_else(|| InferenceCheck::Skipped {
        reason: skip.unwrap_or_else(|| "no output format was requested".into()),
    }))
}

/// An opened source: a TF checkpoint streams, anything else is read whole.
enum Source {
    Tf(checkpoint::OpenedBundle),
    Memory(checkpoint::Opened),
}

/// The fingerprint of a staged output, read one tensor at a time with zoo's own readers.
fn fingerprint_file(format: Format, path: &Path) -> Result<Fingerprint, ConvertError> {
    let mut fp = Fingerprinter::default();
    let mut add = |name: String, t: Tensor| fp.add(&name, &t);
    match format {
        Format::Pth => zoo_converters::pth::read_each(path, &mut |n, t| {
            add(n, t);
            Ok(())
        })
        .map_err(zoo_converters::Error::from),
        Format::Safetensors => zoo_converters::safetensors::read_each(path, &mut |n, t| {
            add(n, t);
            Ok(())
        })
        .map(|_| ())
        .map_err(zoo_converters::Error::from),
    }
    .map_err(|error| ConvertError::Read {
        path: path.to_owned(),
        error: Box::new(error),
    })?;
    Ok(fp.finish())
}

/// Reads a staged output back with zoo's own readers.
fn read_back(format: Format, path: &Path) -> Result<StateDict, ConvertError> {
    match format {
        Format::Pth => zoo_converters::pth::read(path).map_err(zoo_converters::Error::from),
        Format::Safetensors => zoo_converters::safetensors::read(path)
            .map(|(t, _)| t)
            .map_err(zoo_converters::Error::from),
    }
    .map_err(|error| ConvertError::Read {
        path: path.to_owned(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;

    #[test]
    fn each_format_is_written_once_in_the_order_given() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/efficientnet-tiny/efficientnet-tiny.tar.gz");
        let spec = "efficientnet:width=0.05,depth=0.5,classes=10"
            .parse::<ArchConfig>()
            .unwrap()
            .resolve()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = ConvertOptions {
            out_dir: dir.path().join("out"),
            name: "tiny".into(),
            formats: vec![Format::Safetensors, Format::Pth, Format::Safetensors],
            weights: WeightSet::Ema,
            reference: None,
        };
        let report = convert(&fixture, &spec, &opts, None).unwrap();
        let written: Vec<Format> = report.outputs.iter().map(|o| o.format).collect();
        assert_eq!(written, [Format::Safetensors, Format::Pth]);
        let mut names: Vec<String> = std::fs::read_dir(&opts.out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}: no staging directory is left");
        for o in &report.outputs {
            let name = format!("tiny-{}.{}", &o.sha256[..8], o.format.extension());
            assert!(names.contains(&name), "{name} in {names:?}");
            assert_eq!(crate::fetch::sha256_file(&o.path).unwrap().0, o.sha256);
        }
    }
}
