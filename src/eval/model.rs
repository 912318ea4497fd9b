//! `zoo eval NAME`: one registry model on one dataset, judged against its card.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, Layout, Manifest, Selection};
use super::run::{content_hash, evaluate, Outcome, Progress, RunError, RunOptions};
use super::verdict::{self, Verdict, IMAGENET_VAL};
use super::{EvalError, EvalTransform};
use crate::checkpoint::CheckpointError;
use crate::registry::{ModelEntry, RegistryError};
use crate::report::Shard;
use crate::torch::{Model, TorchError};

/// The version of the preprocessing + counting pipeline, part of every result's identity.
pub const PIPELINE_VERSION: &str = "1";

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The requested CUDA device does not exist.
    #[error("--device {device}: libtorch sees {available} CUDA device(s){}", if *available == 0 { " (no GPU or driver here); use --device cpu" } else { "" })]
    NoCuda {
        /// The device asked for.
        device: Device,
        /// CUDA devices present.
        available: usize,
    },
    /// `--half` on the CPU.
    #[error("--half: float16 inference needs --device cuda (libtorch's CPU kernels are float32)")]
    HalfOnCpu,
    /// The run stopped.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Which accuracy a documented value is: ImageNet-1k validation labels, its ReaL relabelling,
/// or ImageNetV2 (matched frequency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// ImageNet-1k validation, original labels.
    Imagenet,
    /// ImageNet-1k validation, ReaL labels.
    ImagenetReal,
    /// ImageNetV2 matched-frequency.
    ImagenetV2,
}

impl Benchmark {
    /// Which benchmark a `Results` dataset name or a `Reported` source names: `ReaL` /
    /// `imagenet-real` → ReaL, `V2` / `imagenetv2` → V2, anything else ImageNet-1k.
    pub fn named_in(text: &str) -> Benchmark {
        let t = text.to_ascii_lowercase().replace(['_', ' '], "-");
        let word = |w: &str| {
            t.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|x| x == w)
        };
        if t.contains("imagenet-real") || word("real") {
            Benchmark::ImagenetReal
        } else if t.contains("imagenetv2") || t.contains("imagenet-v2") || word("v2") {
            Benchmark::ImagenetV2
        } else {
            Benchmark::Imagenet
        }
    }

    /// Its name in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Benchmark::Imagenet => "ImageNet",
            Benchmark::ImagenetReal => "ImageNet-ReaL",
            Benchmark::ImagenetV2 => "ImageNetV2",
        }
    }
}

/// ImageNetV2 matched-frequency: 10 images of each of the 1000 classes.
pub const IMAGENET_V2: u64 = 10_000;

/// A value the registry documents for a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Documented {
    /// `Results` (the card) or a `Zoo: Reported` source.
    pub source: String,
    /// Which accuracy.
    pub benchmark: Benchmark,
    /// `top1` or `top5`.
    pub metric: String,
    /// The percentage.
    pub value: f64,
}

/// One documented value and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// `Results` (the card) or a `Zoo: Reported` source.
    pub source: String,
    /// Which accuracy.
    pub benchmark: Benchmark,
    /// `top1` or `top5`.
    pub metric: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Everything a result is: what was evaluated, how, and what came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Which part of the selection (`--shard K/N`; `1/1` for a whole run or a merge).
    #[serde(default)]
    pub shard: Shard,
    /// The ReaL label file (`--real-labels`).
    #[serde(default)]
    pub real_labels: Option<PathBuf>,
    /// The preprocessing (incl. the Pillow pass order and normalisation).
    pub transform: EvalTransform,
    /// The device.
    pub device: Device,
    /// `--half`: inference in float16.
    #[serde(default)]
    pub half: bool,
    /// Images per forward pass.
    pub batch_size: usize,
    /// zoo's version.
    pub zoo_version: String,
    /// [`PIPELINE_VERSION`].
    pub pipeline_version: String,
    /// Counts, bad images, content hash, predictions.
    pub outcome: Outcome,
    /// `100 · top1 / n`.
    pub top1: f64,
    /// `100 · top5 / n`.
    pub top5: f64,
    /// ReaL top-1, in percent (with `--real-labels`).
    #[serde(default)]
    pub real_top1: Option<f64>,
    /// ReaL top-5, in percent.
    #[serde(default)]
    pub real_top5: Option<f64>,
    /// The values the registry documents for the model.
    #[serde(default)]
    pub documented: Vec<Documented>,
    /// Verdicts against the documented values.
    pub verdicts: Vec<Judged>,
    /// Why some or all documented values were not judged.
    pub verdict_skipped: Option<String>,
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
    /// Which contiguous part of the selection (`--shard K/N`).
    pub shard: Shard,
    /// Where.
    pub device: Device,
    /// `--half`: float16 inference (logits and top-k stay f32 on the CPU).
    pub half: bool,
    /// Run options (incl. ReaL label sets).
    pub run: RunOptions,
    /// The ReaL label file the run options' sets came from.
    pub real_labels: Option<&'a Path>,
    /// Which Pillow release's resize pass order to reproduce.
    pub pass_order: super::PassOrder,
    /// The normalisation arithmetic.
    pub normalize: super::Normalize,
}

/// The positions `[start, end)` of shard `shard` in a selection of `len` images: contiguous,
/// in order, sizes differing by at most one, so the shards concatenated are the selection.
pub fn shard_range(len: usize, shard: Shard) -> std::ops::Range<usize> {
    let (k, n) = (shard.index.max(1) - 1, shard.count.max(1));
    (len * k / n)..(len * (k + 1) / n)
}

/// Evaluates `entry` on the request's dataset.
pub fn eval_model(
    entry: &ModelEntry,
    req: &EvalRequest<'_>,
    progress: impl FnMut(Progress),
) -> Result<EvalReport, ModelEvalError> {
    let model = entry.name().to_string();
    check_device(req.device, req.half)?;
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
    let classes = spec.classes();
    let param_count = spec.trainable_params() as f64 / 1e6;
    let opened = crate::checkpoint::open(req.weights, Some(&spec), crate::convert::WeightSet::Ema)?;
    let cuda = match req.device {
        Device::Cpu => None,
        Device::Cuda(n) => Some(n),
    };
    let net = Model::load_on(&spec, &opened.tensors, cuda, req.half)?;
    let passes = forward_passes(net, req.device, req.run.workers);
    let mut selected = req
        .selection
        .indices(&req.dataset.samples)
        .map_err(RunError::from)?;
    let range = shard_range(selected.len(), req.shard);
    selected = selected[range].to_vec();
    let mut run = req.run.clone();
    run.keep_predictions |= req.shard != Shard::ALL;
    let s = transform.img_size;
    let outcome = evaluate(
        req.dataset,
        &selected,
        &transform,
        classes,
        &run,
        |data, n| {
            let x = zoo_converters::Tensor::from_f32(vec![n, 3, s, s], data)
                .map_err(|e| e.to_string())?;
            // A free replica, else wait for the first.
            let net = match passes.iter().find_map(|m| m.try_lock().ok()) {
                Some(net) => net,
                None => passes[0]
                    .lock()
                    .map_err(|_| "another forward pass panicked".to_string())?,
            };
            let y = net.forward(&x).map_err(|e| e.to_string())?;
            y.to_f32().ok_or_else(|| "logits are not f32".to_string())
        },
        progress,
    )?;
    let mut report = EvalReport {
        model,
        weights: req.weights.to_path_buf(),
        param_count: (param_count * 100.0).round() / 100.0,
        dataset: req.dataset.root.clone(),
        manifest: req.dataset.manifest(),
        selection: req.selection,
        shard: req.shard,
        real_labels: req.real_labels.map(Path::to_path_buf),
        transform,
        device: req.device,
        half: req.half,
        batch_size: req.run.batch_size,
        zoo_version: env!("CARGO_PKG_VERSION").to_string(),
        pipeline_version: PIPELINE_VERSION.to_string(),
        outcome,
        top1: 0.0,
        top5: 0.0,
        real_top1: None,
        real_top5: None,
        documented: documented_values(entry),
        verdicts: Vec::new(),
        verdict_skipped: None,
    };
    report.conclude();
    Ok(report)
}

/// Forward passes that may run at once on the CPU: each holds a batch's activations.
pub const CPU_PASSES: usize = 2;

/// The models the workers' forward passes run on, one pass each at a time: on the CPU up to
/// [`CPU_PASSES`] replicas (one per worker, sharing the weights), each on an equal share of the
/// cores (see the schedule in `run.rs`); on a GPU the one model.
fn forward_passes(net: Model, device: Device, workers: usize) -> Vec<std::sync::Mutex<Model>> {
    match device {
        Device::Cpu => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let passes = workers.clamp(1, CPU_PASSES);
            (0..passes)
                .map(|_| std::sync::Mutex::new(net.replica((cores / passes).max(1))))
                .collect()
        }
        Device::Cuda(_) => vec![std::sync::Mutex::new(net)],
    }
}

/// Checks that `device` exists (and `half` is asked on a GPU) before any weights are read.
pub fn check_device(device: Device, half: bool) -> Result<(), ModelEvalError> {
    if !crate::torch::available() {
        return Err(TorchError::Unavailable.into());
    }
    match device {
        Device::Cuda(n) => {
            let available = crate::torch::cuda_devices();
            if n >= available {
                return Err(ModelEvalError::NoCuda { device, available });
            }
        }
        Device::Cpu if half => return Err(ModelEvalError::HalfOnCpu),
        Device::Cpu => {}
    }
    Ok(())
}

fn percent(correct: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * correct as f64 / n as f64
    }
}

/// Every accuracy the registry documents for `entry`: its card's `Results` (by dataset) and
/// each `Zoo: Reported` source (by the benchmark its name says).
pub fn documented_values(entry: &ModelEntry) -> Vec<Documented> {
    let mut out = Vec::new();
    let mut push = |source: &str, benchmark, metric: &str, value: Option<f64>| {
        if let Some(value) = value {
            out.push(Documented {
                source: source.to_string(),
                benchmark,
                metric: metric.to_string(),
                value,
            });
        }
    };
    for r in entry.model.results.iter().flatten() {
        let benchmark = Benchmark::named_in(r.dataset.as_ref().map_or("", |d| d.as_str()));
        let source = match benchmark {
            Benchmark::Imagenet => "Results".to_string(),
            b => format!("Results ({})", b.as_str()),
        };
        if let Some(m) = r.metrics.as_ref() {
            push(
                &source,
                benchmark,
                "top1",
                m.get("Top 1 Accuracy").map(|t| t.value),
            );
            push(
                &source,
                benchmark,
                "top5",
                m.get("Top 5 Accuracy").map(|t| t.value),
            );
        }
    }
    // Each `Zoo: Reported` entry is for its `Dataset` (ImageNet when unnamed): ReaL and
    // ImageNetV2 values are judged on those label sets only.
    for r in entry
        .zoo()
        .and_then(|z| z.reported.as_deref())
        .unwrap_or_default()
    {
        let src = r.source.as_ref().map_or("Reported", |s| s.as_str());
        let benchmark = Benchmark::named_in(r.dataset());
        push(
            src,
            benchmark,
            "top1",
            r.top_1_accuracy.as_ref().map(|t| t.value),
        );
        push(
            src,
            benchmark,
            "top5",
            r.top_5_accuracy.as_ref().map(|t| t.value),
        );
    }
    out
}

impl EvalReport {
    /// Whether every verdict passed (true when there were none).
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|j| j.verdict.pass)
    }

    /// Percentages and verdicts from the counts and the documented values.
    pub fn conclude(&mut self) {
        let o = &self.outcome;
        self.top1 = percent(o.top1, o.n);
        self.top5 = percent(o.top5, o.n);
        self.real_top1 = o.real.map(|r| percent(r.top1, r.n));
        self.real_top5 = o.real.map(|r| percent(r.top5, r.n));
        let (verdicts, skipped) = self.judge();
        self.verdicts = verdicts;
        self.verdict_skipped = skipped;
    }

    fn judge(&self) -> (Vec<Judged>, Option<String>) {
        let o = &self.outcome;
        if self.shard != Shard::ALL {
            return (
                vec![],
                Some(format!(
                    "shard {} of the selection: merge every shard (zoo report merge) for a verdict",
                    self.shard
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
        let measured: Benchmark = if self.manifest.layout == Layout::ImageNetV2 {
            Benchmark::ImagenetV2
        } else {
            Benchmark::Imagenet
        };
        let (expected, name) = match measured {
            Benchmark::ImagenetV2 => (IMAGENET_V2, "ImageNetV2 matched-frequency"),
            _ => (IMAGENET_VAL, "ImageNet-1k validation"),
        };
        let images = self.manifest.images as u64;
        let full = matches!(self.selection, Selection::All);
        let mut out = Vec::new();
        let mut why: Vec<String> = Vec::new();
        if images != expected {
            why.push(format!(
                "the dataset has {images} images, not the {} of {name} that the documented values are for",
                fmt_thousands(expected)
            ));
        }
        for d in &self.documented {
            let counts = match (d.benchmark, measured) {
                (Benchmark::ImagenetReal, Benchmark::Imagenet) => match o.real {
                    Some(r) => Some((r.n, r.top1, r.top5)),
                    None => {
                        why.push(format!(
                            "{} {} ({}): no --real-labels",
                            d.benchmark.as_str(),
                            d.metric,
                            d.source
                        ));
                        None
                    }
                },
                (b, m) if b == m => Some((o.n, o.top1, o.top5)),
                (b, _) => {
                    why.push(format!(
                        "{} {} ({}): the dataset is {name}",
                        b.as_str(),
                        d.metric,
                        d.source
                    ));
                    None
                }
            };
            let Some((n, top1, top5)) = counts else {
                continue;
            };
            if images != expected {
                continue;
            }
            let correct = if d.metric == "top1" { top1 } else { top5 };
            let v = if full {
                verdict::full_set(correct, n, d.value)
            } else if d.benchmark == Benchmark::Imagenet {
                verdict::subset(correct, n, d.value)
            } else {
                why.push(format!(
                    "{} {} ({}): judged on the full set only",
                    d.benchmark.as_str(),
                    d.metric,
                    d.source
                ));
                None
            };
            if let Some(verdict) = v {
                out.push(Judged {
                    source: d.source.clone(),
                    benchmark: d.benchmark,
                    metric: d.metric.clone(),
                    verdict,
                });
            }
        }
        if self.documented.is_empty() {
            why.push("the registry documents no Top 1/Top 5 Accuracy".to_string());
        }
        why.dedup();
        (out, (!why.is_empty()).then(|| why.join("; ")))
    }
}

fn fmt_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why shard reports cannot be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardMergeError {
    /// Nothing to merge.
    #[error("no eval shard reports to merge")]
    Empty,
    /// Two reports are not parts of the same run.
    #[error("{model} shard {shard}: {field} differs from shard {first}'s ({ours} vs {theirs}): not parts of one run")]
    Mismatch {
        /// The model.
        model: String,
        /// The shard that differs.
        shard: Shard,
        /// The first shard.
        first: Shard,
        /// What differs.
        field: &'static str,
        /// Its value in `shard`.
        ours: String,
        /// Its value in `first`.
        theirs: String,
    },
    /// A shard given twice.
    #[error("{model}: shard {shard} given twice")]
    Duplicate {
        /// The model.
        model: String,
        /// The shard.
        shard: Shard,
    },
    /// Shards missing.
    #[error("{model}: shard{} {} missing: the merge would not cover the selection", if missing.len() > 1 { "s" } else { "" }, missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Missing {
        /// The model.
        model: String,
        /// The missing shards.
        missing: Vec<Shard>,
    },
}

/// Merges the `--shard K/N` reports of one model's run into the report of the unsharded run:
/// counts summed, bad images and predictions concatenated in shard order, the content hash
/// recomputed over every image, and the verdicts judged again.
pub fn merge_shards(mut reports: Vec<EvalReport>) -> Result<EvalReport, ShardMergeError> {
    reports.sort_by_key(|r| r.shard);
    let first = reports.first().ok_or(ShardMergeError::Empty)?.clone();
    let count = first.shard.count;
    for w in reports.windows(2) {
        if w[0].shard == w[1].shard {
            return Err(ShardMergeError::Duplicate {
                model: first.model.clone(),
                shard: w[1].shard,
            });
        }
    }
    for r in &reports[1..] {
        let same = |field: &'static str, a: String, b: String| {
            if a == b {
                Ok(())
            } else {
                Err(ShardMergeError::Mismatch {
                    model: first.model.clone(),
                    shard: r.shard,
                    first: first.shard,
                    field,
                    ours: a,
                    theirs: b,
                })
            }
        };
        same("the model", r.model.clone(), first.model.clone())?;
        same(
            "the shard count",
            r.shard.count.to_string(),
            count.to_string(),
        )?;
        same(
            "the dataset listing",
            r.manifest.listing_sha256.clone(),
            first.manifest.listing_sha256.clone(),
        )?;
        same(
            "the selection",
            format!("{:?}", r.selection),
            format!("{:?}", first.selection),
        )?;
        same(
            "the transform",
            format!("{:?}", r.transform),
            format!("{:?}", first.transform),
        )?;
        same(
            "the zoo version",
            r.zoo_version.clone(),
            first.zoo_version.clone(),
        )?;
        same(
            "the pipeline version",
            r.pipeline_version.clone(),
            first.pipeline_version.clone(),
        )?;
        same(
            "--real-labels",
            format!("{:?}", r.outcome.real.is_some()),
            format!("{:?}", first.outcome.real.is_some()),
        )?;
    }
    let missing: Vec<Shard> = (1..=count)
        .map(|index| Shard { index, count })
        .filter(|s| !reports.iter().any(|r| r.shard == *s))
        .collect();
    if !missing.is_empty() {
        return Err(ShardMergeError::Missing {
            model: first.model.clone(),
            missing,
        });
    }
    let mut merged = first;
    merged.shard = Shard::ALL;
    let mut o = Outcome {
        n: 0,
        top1: 0,
        top5: 0,
        bad: Vec::new(),
        content_sha256: String::new(),
        real: merged.outcome.real.map(|_| Default::default()),
        predictions: Vec::new(),
        image_sha256: Vec::new(),
        seconds: 0.0,
    };
    for r in reports {
        let p = r.outcome;
        o.n += p.n;
        o.top1 += p.top1;
        o.top5 += p.top5;
        if let (Some(a), Some(b)) = (o.real.as_mut(), p.real) {
            a.n += b.n;
            a.top1 += b.top1;
            a.top5 += b.top5;
        }
        o.bad.extend(p.bad);
        o.predictions.extend(p.predictions);
        o.image_sha256.extend(p.image_sha256);
        o.seconds = o.seconds.max(p.seconds);
    }
    let digests: Vec<[u8; 32]> = o
        .image_sha256
        .iter()
        .map(|h| {
            let mut d = [0u8; 32];
            hex::decode_to_slice(h, &mut d).unwrap_or_default();
            d
        })
        .collect();
    o.content_sha256 = content_hash(&digests);
    merged.outcome = o;
    merged.conclude();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::RealCounts;

    #[test]
    fn benchmarks_are_read_from_dataset_names_and_sources() {
        for (text, b) in [
            ("ImageNet", Benchmark::Imagenet),
            ("timm results-imagenet.csv", Benchmark::Imagenet),
            ("tensorflow/tpu efficientnet README", Benchmark::Imagenet),
            ("ImageNet-ReaL", Benchmark::ImagenetReal),
            ("timm results-imagenet-real.csv", Benchmark::ImagenetReal),
            ("ImageNetV2 matched-frequency", Benchmark::ImagenetV2),
            (
                "timm results-imagenetv2-matched-frequency.csv",
                Benchmark::ImagenetV2,
            ),
            ("ImageNet V2", Benchmark::ImagenetV2),
            ("surreal", Benchmark::Imagenet),
        ] {
            assert_eq!(Benchmark::named_in(text), b, "{text}");
        }
    }

    #[test]
    fn shards_are_contiguous_and_cover_the_selection_once() {
        for len in [0usize, 1, 2, 10, 11, 50_000] {
            for n in 1..=7 {
                let mut next = 0;
                for k in 1..=n {
                    let r = shard_range(len, Shard { index: k, count: n });
                    assert_eq!(r.start, next);
                    assert!(r.len() <= len.div_ceil(n));
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    fn report(
        layout: Layout,
        images: usize,
        o: Outcome,
        documented: Vec<Documented>,
    ) -> EvalReport {
        let mut r = EvalReport {
            model: "m".into(),
            weights: "w".into(),
            param_count: 5.29,
            dataset: "d".into(),
            manifest: Manifest {
                layout,
                images,
                classes: 1000,
                listing_sha256: "0".repeat(64),
            },
            selection: Selection::All,
            shard: Shard::ALL,
            real_labels: None,
            transform: EvalTransform::new(224, 0.875, [0.5; 3], [0.5; 3]).unwrap(),
            device: Device::Cpu,
            half: false,
            batch_size: 32,
            zoo_version: "0".into(),
            pipeline_version: PIPELINE_VERSION.into(),
            outcome: o,
            top1: 0.0,
            top5: 0.0,
            real_top1: None,
            real_top5: None,
            documented,
            verdicts: vec![],
            verdict_skipped: None,
        };
        r.conclude();
        r
    }

    fn outcome(n: u64, top1: u64, top5: u64, real: Option<RealCounts>) -> Outcome {
        Outcome {
            n,
            top1,
            top5,
            bad: vec![],
            content_sha256: String::new(),
            real,
            predictions: vec![],
            image_sha256: vec![],
            seconds: 1.0,
        }
    }

    fn doc(benchmark: Benchmark, metric: &str, value: f64) -> Documented {
        Documented {
            source: format!("{} source", benchmark.as_str()),
            benchmark,
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn real_and_v2_values_are_judged_on_their_own_sets_and_skipped_with_reason_elsewhere() {
        let documented = vec![
            doc(Benchmark::Imagenet, "top1", 78.66),
            doc(Benchmark::ImagenetReal, "top1", 85.50),
            doc(Benchmark::ImagenetV2, "top1", 67.50),
        ];
        // ImageNet val with ReaL counts: 39,330/50,000 = 78.66 %; ReaL 40,000/46,837 = 85.40 %.
        let real = RealCounts {
            n: 46_837,
            top1: 40_000,
            top5: 45_000,
        };
        let r = report(
            Layout::ImageFolder,
            50_000,
            outcome(50_000, 39_330, 47_000, Some(real)),
            documented.clone(),
        );
        let judged: Vec<(Benchmark, bool)> = r
            .verdicts
            .iter()
            .map(|j| (j.benchmark, j.verdict.pass))
            .collect();
        assert_eq!(
            judged,
            [(Benchmark::Imagenet, true), (Benchmark::ImagenetReal, true)]
        );
        assert_eq!(r.real_top1, Some(100.0 * 40_000.0 / 46_837.0));
        let why = r.verdict_skipped.unwrap();
        assert!(
            why.contains(
                "ImageNetV2 top1 (ImageNetV2 source): the dataset is ImageNet-1k validation"
            ),
            "{why}"
        );
        // Without --real-labels the ReaL value is skipped, with the reason.
        let r = report(
            Layout::ImageFolder,
            50_000,
            outcome(50_000, 39_330, 47_000, None),
            documented.clone(),
        );
        assert_eq!(r.verdicts.len(), 1);
        assert!(r
            .verdict_skipped
            .unwrap()
            .contains("ImageNet-ReaL top1 (ImageNet-ReaL source): no --real-labels"));
        // ImageNetV2 (10,000 images): only the V2 value; 6,700 = 67.00 % is 0.5 pp off: fail.
        let r = report(
            Layout::ImageNetV2,
            10_000,
            outcome(10_000, 6_700, 8_800, None),
            documented.clone(),
        );
        let judged: Vec<(Benchmark, bool)> = r
            .verdicts
            .iter()
            .map(|j| (j.benchmark, j.verdict.pass))
            .collect();
        assert_eq!(judged, [(Benchmark::ImagenetV2, false)]);
        assert!(!r.passed());
        // A partial set: nothing judged, never a pass by default.
        let r = report(
            Layout::ImageFolder,
            40,
            outcome(40, 30, 38, None),
            documented,
        );
        assert!(r.verdicts.is_empty());
        assert!(r
            .verdict_skipped
            .unwrap()
            .contains("the dataset has 40 images, not the 50,000 of ImageNet-1k validation"));
    }

    #[test]
    fn documented_values_include_the_registrys_real_and_v2_numbers() {
        let registry = crate::registry::Registry::embedded().unwrap();
        let entry = registry.resolve("b0_ns").unwrap();
        let got: Vec<(Benchmark, String, f64)> = documented_values(entry)
            .into_iter()
            .map(|d| (d.benchmark, d.metric, d.value))
            .collect();
        for want in [
            (Benchmark::Imagenet, "top1", 78.66),
            (Benchmark::Imagenet, "top1", 78.68),
            (Benchmark::ImagenetReal, "top1", 85.02),
            (Benchmark::ImagenetReal, "top5", 96.492),
            (Benchmark::ImagenetV2, "top1", 67.74),
            (Benchmark::ImagenetV2, "top5", 87.95),
        ] {
            assert!(
                got.iter()
                    .any(|(b, m, v)| *b == want.0 && m == want.1 && (v - want.2).abs() < 1e-9),
                "{want:?} not in {got:?}"
            );
        }
    }

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
    }
}
