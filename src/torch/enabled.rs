//! EfficientNet on libtorch, built layer by layer from the resolved [`Spec`].
//!
//! Each layer takes its tensors by timm key from a [`Source`] while the network is assembled, in
//! timm's `state_dict()` order; the same walk serves loading a state dict (strictly) and building
//! a zero-filled model for structure checks. Inference is functional (`conv2d`, `batch_norm` with
//! `training = false`), so there is no train mode to forget to switch off.
use std::collections::HashMap;
use std::sync::Once;

use tch::{Kind, TchError};
use zoo_converters::{DType, StateDict, Tensor};

use super::{ParamProblem, TorchError};
use crate::arch::efficientnet::{Block, ConvNorm};
use crate::arch::{Conv, Padding, Spec};

/// Intra-op threads libtorch may use: CI machines have two cores.
const MAX_THREADS: usize = 2;

/// True: this build links libtorch.
pub fn available() -> bool {
    true
}

/// How many CUDA devices libtorch sees (0 without a GPU or driver).
pub fn cuda_devices() -> usize {
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}

/// Where the model's tensors live and in which precision.
type Target = (tch::Device, Kind);

fn target(cuda: Option<usize>, half: bool) -> Target {
    (
        cuda.map_or(tch::Device::Cpu, tch::Device::Cuda),
        if half { Kind::Half } else { Kind::Float },
    )
}

fn limit_threads() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        tch::set_num_threads(cores.min(MAX_THREADS) as i32);
    });
}

fn torch_err(op: &str) -> impl FnOnce(TchError) -> TorchError + '_ {
    move |e| TorchError::Libtorch {
        op: op.to_owned(),
        message: e.to_string(),
    }
}

/// Where the builder gets each tensor from.
trait Source {
    /// The tensor `name` with `shape`, or `None` (the source records why).
    fn take(&mut self, name: &str, shape: &[usize]) -> Option<tch::Tensor>;
}

/// A state dict, checked strictly: wrong dtype, wrong shape, missing and duplicate keys are
/// all recorded; unused keys are found afterwards by [`StateDictSource::finish`].
struct StateDictSource<'a> {
    by_name: HashMap<&'a str, &'a Tensor>,
    used: HashMap<&'a str, bool>,
    problems: Vec<ParamProblem>,
    error: Option<TorchError>,
    target: Target,
}

impl<'a> StateDictSource<'a> {
    fn new(weights: &'a StateDict, target: Target) -> Self {
        let mut by_name = HashMap::with_capacity(weights.len());
        let mut problems = vec![];
        for (name, t) in weights {
            if by_name.insert(name.as_str(), t).is_some()
                && !problems
                    .iter()
                    .any(|p: &ParamProblem| p.name() == name.as_str())
            {
                problems.push(ParamProblem::Duplicate { name: name.clone() });
            }
        }
        let used = by_name.keys().map(|&k| (k, false)).collect();
        StateDictSource {
            by_name,
            used,
            problems,
            error: None,
            target,
        }
    }

    /// Appends the unused keys (except `num_batches_tracked`, which inference never reads) in
    /// state-dict order, and returns every problem.
    fn finish(mut self, weights: &'a StateDict) -> Result<Vec<ParamProblem>, TorchError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for (name, t) in weights {
            if self.used.get(name.as_str()) == Some(&false)
                && !name.ends_with(".num_batches_tracked")
            {
                self.used.insert(name.as_str(), true);
                self.problems.push(ParamProblem::Unexpected {
                    name: name.clone(),
                    shape: t.shape().to_vec(),
                });
            }
        }
        Ok(self.problems)
    }
}

impl Source for StateDictSource<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Option<tch::Tensor> {
        let Some((&key, &t)) = self.by_name.get_key_value(name) else {
            self.problems.push(ParamProblem::Missing {
                name: name.to_owned(),
                shape: shape.to_vec(),
            });
            return None;
        };
        self.used.insert(key, true);
        if t.shape() != shape {
            self.problems.push(ParamProblem::WrongShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                actual: t.shape().to_vec(),
            });
            return None;
        }
        if t.dtype() != DType::F32 {
            self.problems.push(ParamProblem::WrongDType {
                name: name.to_owned(),
                dtype: t.dtype().name(),
            });
            return None;
        }
        // Once a problem is known the model will not be built: skip the copies.
        if !self.problems.is_empty() || self.error.is_some() {
            return None;
        }
        // `Tensor::new` guarantees data.len() == numel * 4, which libtorch's copy relies on.
        let (device, kind) = self.target;
        match tch::Tensor::f_from_data_size(t.data(), &dims(shape), Kind::Float).and_then(|v| {
            if self.target == (tch::Device::Cpu, Kind::Float) {
                Ok(v)
            } else {
                v.f_to_device_(device, kind, false, false)
            }
        }) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error = Some(torch_err(name)(e));
                None
            }
        }
    }
}

/// Zero tensors of the requested shapes: the model's structure without weights.
struct ZeroSource;

impl Source for ZeroSource {
    fn take(&mut self, _name: &str, shape: &[usize]) -> Option<tch::Tensor> {
        Some(tch::Tensor::zeros(
            dims(shape),
            (Kind::Float, tch::Device::Cpu),
        ))
    }
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// Records every tensor the walk asks for, and builds layers only once all are present.
struct Builder<'s, S: Source> {
    source: &'s mut S,
    named: Vec<(String, tch::Tensor)>,
    complete: bool,
}

impl<S: Source> Builder<'_, S> {
    fn take(&mut self, name: String, shape: &[usize]) -> Option<tch::Tensor> {
        let t = self.source.take(&name, shape);
        match &t {
            Some(t) => self.named.push((name, t.shallow_clone())),
            None => self.complete = false,
        }
        t
    }

    fn conv(&mut self, c: &Conv) -> Option<Conv2d> {
        let weight = self.take(
            format!("{}.weight", c.name),
            &[c.out_chs, c.in_chs / c.groups, c.kernel, c.kernel],
        );
        let bias = if c.bias {
            Some(self.take(format!("{}.bias", c.name), &[c.out_chs]))
        } else {
            None
        };
        Some(Conv2d {
            name: c.name.clone(),
            weight: weight?,
            bias: bias.map_or(Some(None), |b| b.map(Some))?,
            kernel: c.kernel,
            stride: c.stride,
            groups: c.groups as i64,
            padding: c.padding,
        })
    }

    fn conv_norm(&mut self, cn: &ConvNorm) -> Option<ConvBn> {
        let conv = self.conv(&cn.conv);
        let bn = &cn.bn;
        let mut part = |suffix: &str| self.take(format!("{}.{suffix}", bn.name), &[bn.channels]);
        let (w, b, m, v) = (
            part("weight"),
            part("bias"),
            part("running_mean"),
            part("running_var"),
        );
        Some(ConvBn {
            conv: conv?,
            bn: BatchNorm2d {
                weight: w?,
                bias: b?,
                running_mean: m?,
                running_var: v?,
                eps: bn.eps,
            },
            act: cn.act,
        })
    }

    fn block(&mut self, b: &Block) -> Option<BlockLayers> {
        let expand = b.expand.as_ref().map(|e| self.conv_norm(e));
        let depthwise = self.conv_norm(&b.depthwise);
        let se = b.se.as_ref().map(|se| {
            let reduce = self.conv(&se.reduce);
            let expand = self.conv(&se.expand);
            Some(SqueezeExcite {
                reduce: reduce?,
                expand: expand?,
            })
        });
        let project = self.conv_norm(&b.project);
        Some(BlockLayers {
            expand: expand.map_or(Some(None), |e| e.map(Some))?,
            depthwise: depthwise?,
            se: se.map_or(Some(None), |s| s.map(Some))?,
            project: project?,
            has_skip: b.has_skip,
        })
    }

    /// Walks the whole spec in timm `state_dict()` order (every layer is visited even after a
    /// problem, so that all problems are found in one pass).
    fn network(&mut self, spec: &Spec) -> Option<Layers> {
        let stem = self.conv_norm(&spec.stem);
        let blocks: Vec<Option<BlockLayers>> = spec.blocks().map(|b| self.block(b)).collect();
        let head = self.conv_norm(&spec.head);
        let c = &spec.classifier;
        let weight = self.take(
            format!("{}.weight", c.name),
            &[c.out_features, c.in_features],
        );
        let bias = self.take(format!("{}.bias", c.name), &[c.out_features]);
        if !self.complete {
            return None;
        }
        Some(Layers {
            stem: stem?,
            blocks: blocks.into_iter().collect::<Option<_>>()?,
            head: head?,
            classifier_weight: weight?,
            classifier_bias: bias?,
        })
    }
}

struct Conv2d {
    name: String,
    weight: tch::Tensor,
    bias: Option<tch::Tensor>,
    kernel: usize,
    stride: usize,
    groups: i64,
    padding: Padding,
}

impl Conv2d {
    /// Pads as the spec's rule says for this input's size (TF 'same': the odd pixel goes
    /// right/bottom), then convolves with no further padding.
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor, TorchError> {
        let size = x.size();
        let (h, w) = (size[2] as usize, size[3] as usize);
        let (_, top, bottom) = self.padding.resolve(h, self.kernel, self.stride);
        let (_, left, right) = self.padding.resolve(w, self.kernel, self.stride);
        let padded;
        let input = if top + bottom + left + right > 0 {
            padded = x
                .f_constant_pad_nd([left as i64, right as i64, top as i64, bottom as i64])
                .map_err(torch_err(&self.name))?;
            &padded
        } else {
            x
        };
        let s = self.stride as i64;
        input
            .f_conv2d(
                &self.weight,
                self.bias.as_ref(),
                [s, s],
                [0i64, 0],
                [1i64, 1],
                self.groups,
            )
            .map_err(torch_err(&self.name))
    }
}

struct BatchNorm2d {
    weight: tch::Tensor,
    bias: tch::Tensor,
    running_mean: tch::Tensor,
    running_var: tch::Tensor,
    eps: f64,
}

struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
    act: bool,
}

impl ConvBn {
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor, TorchError> {
        let err = || torch_err(&self.conv.name);
        let y = self.conv.forward(x)?;
        let bn = &self.bn;
        let y = y
            .f_batch_norm(
                Some(&bn.weight),
                Some(&bn.bias),
                Some(&bn.running_mean),
                Some(&bn.running_var),
                false,
                0.0,
                bn.eps,
                false,
            )
            .map_err(err())?;
        if self.act {
            y.f_silu().map_err(err())
        } else {
            Ok(y)
        }
    }
}

struct SqueezeExcite {
    reduce: Conv2d,
    expand: Conv2d,
}

impl SqueezeExcite {
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor, TorchError> {
        let err = || torch_err(&self.reduce.name);
        let s = x
            .f_mean_dim(&[2i64, 3][..], true, None::<Kind>)
            .map_err(err())?;
        let s = self.reduce.forward(&s)?.f_silu().map_err(err())?;
        let s = self.expand.forward(&s)?.f_sigmoid().map_err(err())?;
        x.f_mul(&s).map_err(err())
    }
}

struct BlockLayers {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: Option<SqueezeExcite>,
    project: ConvBn,
    has_skip: bool,
}

impl BlockLayers {
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor, TorchError> {
        let mut y = match &self.expand {
            Some(e) => e.forward(x)?,
            None => x.shallow_clone(),
        };
        y = self.depthwise.forward(&y)?;
        if let Some(se) = &self.se {
            y = se.forward(&y)?;
        }
        y = self.project.forward(&y)?;
        if self.has_skip {
            y = y.f_add(x).map_err(torch_err(&self.project.conv.name))?;
        }
        Ok(y)
    }
}

struct Layers {
    stem: ConvBn,
    blocks: Vec<BlockLayers>,
    head: ConvBn,
    classifier_weight: tch::Tensor,
    classifier_bias: tch::Tensor,
}

/// EfficientNet in eval mode on the CPU, holding libtorch tensors keyed by timm state-dict name.
pub struct EfficientNet {
    layers: Layers,
    named: Vec<(String, tch::Tensor)>,
    in_chans: usize,
    classes: usize,
    target: Target,
}

impl std::fmt::Debug for EfficientNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfficientNet")
            .field("tensors", &self.named.len())
            .field("in_chans", &self.in_chans)
            .field("classes", &self.classes)
            .finish()
    }
}

impl EfficientNet {
    /// Builds the model from a timm-keyed state dict, strictly: every tensor of `spec.params()`
    /// must be present, f32, with exactly its shape, and nothing else may be there except
    /// `*.num_batches_tracked`. All problems are reported at once.
    pub fn load(spec: &Spec, weights: &StateDict) -> Result<EfficientNet, TorchError> {
        Self::load_on(spec, weights, None, false)
    }

    /// [`EfficientNet::load`] onto CUDA device `cuda` (else the CPU), in float16 when `half`.
    /// [`EfficientNet::forward`] still takes and returns f32 on the CPU.
    pub fn load_on(
        spec: &Spec,
        weights: &StateDict,
        cuda: Option<usize>,
        half: bool,
    ) -> Result<EfficientNet, TorchError> {
        limit_threads();
        let mut source = StateDictSource::new(weights, target(cuda, half));
        let built = Self::build(spec, &mut source);
        let problems = source.finish(weights)?;
        match built {
            Some(model) if problems.is_empty() => Ok(model),
            _ => Err(TorchError::StateDict {
                arch: spec.config.to_string(),
                problems,
            }),
        }
    }

    /// The model with every tensor zero: its structure without weights (names, shapes).
    pub fn zeroed(spec: &Spec) -> Result<EfficientNet, TorchError> {
        limit_threads();
        Self::build(spec, &mut ZeroSource).ok_or_else(|| TorchError::Libtorch {
            op: "zeros".into(),
            message: "could not allocate the model's tensors".into(),
        })
    }

    fn build<S: Source>(spec: &Spec, source: &mut S) -> Option<EfficientNet> {
        let mut builder = Builder {
            source,
            named: vec![],
            complete: true,
        };
        let layers = builder.network(spec)?;
        let target = builder
            .named
            .first()
            .map_or((tch::Device::Cpu, Kind::Float), |(_, t)| {
                (t.device(), t.kind())
            });
        Some(EfficientNet {
            layers,
            named: builder.named,
            in_chans: spec.config.in_chans,
            classes: spec.classifier.out_features,
            target,
        })
    }

    /// The model's tensors as (timm key, shape), in the order the model was built (timm's
    /// `state_dict()` order), read back from the libtorch tensors themselves.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        self.named
            .iter()
            .map(|(n, t)| (n.clone(), t.size().iter().map(|&d| d as usize).collect()))
            .collect()
    }

    /// Runs the network on an f32 `[N, C, H, W]` batch (already normalised) and returns f32
    /// logits `[N, classes]`.
    pub fn forward(&self, input_nchw: &Tensor) -> Result<Tensor, TorchError> {
        let shape = input_nchw.shape();
        if input_nchw.dtype() != DType::F32
            || shape.len() != 4
            || shape[1] != self.in_chans
            || shape.contains(&0)
        {
            return Err(TorchError::Input {
                expected: format!("F32 [N, {}, H, W] with N, H, W > 0", self.in_chans),
                dtype: input_nchw.dtype().name(),
                shape: shape.to_vec(),
            });
        }
        limit_threads();
        let _no_grad = tch::no_grad_guard();
        let x = tch::Tensor::f_from_data_size(input_nchw.data(), &dims(shape), Kind::Float)
            .map_err(torch_err("input"))?;
        let x = if self.target == (tch::Device::Cpu, Kind::Float) {
            x
        } else {
            x.f_to_device_(self.target.0, self.target.1, false, false)
                .map_err(torch_err("input to device"))?
        };
        let l = &self.layers;
        let mut x = l.stem.forward(&x)?;
        for b in &l.blocks {
            x = b.forward(&x)?;
        }
        let x = l.head.forward(&x)?;
        let err = || torch_err("classifier");
        let pooled = x
            .f_mean_dim(&[2i64, 3][..], false, None::<Kind>)
            .map_err(err())?;
        let logits = pooled
            .f_linear(&l.classifier_weight, Some(&l.classifier_bias))
            .map_err(err())?
            .f_to_device_(tch::Device::Cpu, Kind::Float, false, false)
            .map_err(err())?
            .f_contiguous()
            .map_err(err())?;
        let values = Vec::<f32>::try_from(&logits.f_view([-1i64]).map_err(err())?).map_err(err())?;
        Ok(Tensor::from_f32(vec![shape[0], self.classes], &values)?)
    }
}
