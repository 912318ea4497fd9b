//! `zoo eval NAME`: one registry model on one dataset, judged against its card.
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dataset::{Dataset, Layout, Manifest, Selection};
use super::run::{evaluate, Outcome, Progress, RunError, RunOptions};
use super::verdict::{self, Verdict, IMAGENET_VAL};
use super::{EvalError, EvalTransform};
use crate::checkpoint::CheckpointError;
use crate::registry::{ModelEntry, RegistryError};
use crate::torch::{EfficientNet, TorchError};

/// The version of the preprocessing + counting pipeline, part of every result's identity.
pub const PIPELINE_VERSION: &str = "1";

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// A CUDA device by index.
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("`{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Why a model could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelEvalError {
    /// The registry entry is incomplete.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The architecture does not resolve.
    #[error("{model}: architecture: {message}")]
    Arch {
        /// The model.
        model: String,
        /// Why.
        message: String,
    },
    /// The model's input settings cannot be reproduced.
    #[error("{model}: {source}")]
    Input {
        /// The model.
        model: String,
        /// Why.
        source: EvalError,
    },
    /// The weights could not be read or do not fit.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// libtorch (or its absence).
    #[error(transparent)]
    Torch(#[from] TorchError),
    /// This build runs inference on the CPU only.
    #[error("--device {0}: zoo's libtorch model runs on the CPU only so far; use --device cpu")]
    DeviceUnsupported(Device),
    /// The run stopped.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One documented value and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    /// `Results` (the card) or a `Zoo: Reported` source.
    pub source: String,
    /// `top1` or `top5`.
    pub metric: &'static str,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Everything a result is: what was evaluated, how, and what came out.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The model's registry name.
    pub model: String,
    /// The weights file.
    pub weights: PathBuf,
    /// Parameters, in millions (timm's `param_count`).
    pub param_count: f64,
    /// The dataset path.
    pub dataset: PathBuf,
    /// The dataset's identity.
    pub manifest: Manifest,
    /// Which images.
    pub selection: Selection,
    /// The preprocessing (incl. the Pillow pass order and normalisation).
    pub transform: EvalTransform,
    /// The device.
    pub device: Device,
    /// Images per forward pass.
    pub batch_size: usize,
    /// zoo's version.
    pub zoo_version: &'static str,
    /// [`PIPELINE_VERSION`].
    pub pipeline_version: &'static str,
    /// Counts, bad images, content hash, predictions.
    pub outcome: Outcome,
    /// `100 · top1 / n`.
    pub top1: f64,
    /// `100 · top5 / n`.
    pub top5: f64,
    /// Verdicts against the documented values.
    pub verdicts: Vec<Judged>,
    /// Why there are no verdicts, when there are none.
    pub verdict_skipped: Option<String>,
}

impl EvalReport {
    /// Whether every verdict passed (true when there were none).
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|j| j.verdict.pass)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EvalRequest<'a> {
    /// The dataset, opened.
    pub dataset: &'a Dataset,
    /// The weights file (TF checkpoint, `.pth` or `.safetensors`).
    pub weights: &'a Path,
    /// Which images.
    pub selection: Selection,
    /// Where.
    pub device: Device,
    /// Run options.
    pub run: RunOptions,
    /// Which Pillow release's resize pass order to reproduce.
    pub pass_order: super::PassOrder,
    /// The normalisation arithmetic.
    pub normalize: super::Normalize,
}

/// Evaluates `entry` on the request's dataset.
pub fn eval_model(
    entry: &ModelEntry,
    req: &EvalRequest<'_>,
    progress: impl FnMut(Progress),
) -> Result<EvalReport, ModelEvalError> {
    let model = entry.name().to_string();
    if req.device != Device::Cpu {
        return Err(ModelEvalError::DeviceUnsupported(req.device));
    }
    let input = entry.input().ok_or_else(|| ModelEvalError::Input {
        model: model.clone(),
        source: EvalError::Settings("no `Zoo: Input`".into()),
    })?;
    let mut transform =
        EvalTransform::from_input(input).map_err(|source| ModelEvalError::Input {
            model: model.clone(),
            source,
        })?;
    transform.pass_order = req.pass_order;
    transform.normalize = req.normalize;
    let spec = entry.arch()?.resolve().map_err(|e| ModelEvalError::Arch {
        model: model.clone(),
        message: e.to_string(),
    })?;
    let classes = spec.classifier.out_features;
    let param_count = spec.trainable_params() as f64 / 1e6;
    let opened = crate::checkpoint::open(req.weights, Some(&spec), crate::convert::WeightSet::Ema)?;
    let net = EfficientNet::load(&spec, &opened.tensors)?;
    let selected = req
        .selection
        .indices(&req.dataset.samples)
        .map_err(RunError::from)?;
    let s = transform.img_size;
    let outcome = evaluate(
        req.dataset,
        &selected,
        &transform,
        classes,
        &req.run,
        |data, n| {
            let x = zoo_converters::Tensor::from_f32(vec![n, 3, s, s], data)
                .map_err(|e| e.to_string())?;
            let y = net.forward(&x).map_err(|e| e.to_string())?;
            y.to_f32().ok_or_else(|| "logits are not f32".to_string())
        },
        progress,
    )?;
    let (top1, top5) = if outcome.n == 0 {
        (0.0, 0.0)
    } else {
        (
            100.0 * outcome.top1 as f64 / outcome.n as f64,
            100.0 * outcome.top5 as f64 / outcome.n as f64,
        )
    };
    let (verdicts, verdict_skipped) = judge(entry, req, &outcome);
    Ok(EvalReport {
        model,
        weights: req.weights.to_path_buf(),
        param_count: (param_count * 100.0).round() / 100.0,
        dataset: req.dataset.root.clone(),
        manifest: req.dataset.manifest(),
        selection: req.selection,
        transform,
        device: req.device,
        batch_size: req.run.batch_size,
        zoo_version: env!("CARGO_PKG_VERSION"),
        pipeline_version: PIPELINE_VERSION,
        outcome,
        top1,
        top5,
        verdicts,
        verdict_skipped,
    })
}

/// The documented values this run can be judged against.
fn judge(entry: &ModelEntry, req: &EvalRequest<'_>, o: &Outcome) -> (Vec<Judged>, Option<String>) {
    let ds = req.dataset;
    if ds.layout == Layout::ImageNetV2 {
        return (
            vec![],
            Some("ImageNetV2: the card documents ImageNet-1k validation accuracy".into()),
        );
    }
    if ds.samples.len() as u64 != IMAGENET_VAL {
        return (
            vec![],
            Some(format!(
                "the dataset has {} images, not the 50,000 of ImageNet-1k validation that the card's values are for",
                ds.samples.len()
            )),
        );
    }
    if !o.bad.is_empty() {
        return (
            vec![],
            Some(format!(
                "{} images could not be read (--skip-bad)",
                o.bad.len()
            )),
        );
    }
    let mut documented: Vec<(String, &'static str, f64)> = Vec::new();
    let m = &entry.model;
    if let Some(t) = m.top1() {
        documented.push(("Results".into(), "top1", t.value));
    }
    if let Some(t) = m
        .results
        .iter()
        .flatten()
        .filter_map(|r| r.metrics.as_ref())
        .find_map(|mm| mm.get("Top 5 Accuracy"))
    {
        documented.push(("Results".into(), "top5", t.value));
    }
    // Only ImageNet-1k values: ReaL and ImageNetV2 entries are for other label sets.
    for r in entry
        .zoo()
        .and_then(|z| z.reported.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.dataset() == crate::schema::DEFAULT_REPORTED_DATASET)
    {
        let src = r
            .source
            .as_ref()
            .map_or("Reported", |s| s.as_str())
            .to_string();
        if let Some(t) = &r.top_1_accuracy {
            documented.push((src.clone(), "top1", t.value));
        }
        if let Some(t) = &r.top_5_accuracy {
            documented.push((src, "top5", t.value));
        }
    }
    let full = matches!(req.selection, Selection::All);
    let mut out = Vec::new();
    for (source, metric, value) in documented {
        let correct = if metric == "top1" { o.top1 } else { o.top5 };
        let v = if full {
            verdict::full_set(correct, o.n, value)
        } else {
            verdict::subset(correct, o.n, value)
        };
        if let Some(verdict) = v {
            out.push(Judged {
                source,
                metric,
                verdict,
            });
        }
    }
    let skipped = out
        .is_empty()
        .then(|| "the card documents no Top 1/Top 5 Accuracy".to_string());
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
    }
}
