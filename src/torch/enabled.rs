//! A [`Network`] on libtorch: an interpreter of the layer graph, built op by op.
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
use crate::arch::{Act, BatchNorm, Conv, Network, Op, Padding};

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
        if c.experts > 0 {
            // CondConv2d: one `[experts, P]` weight (and `[experts, out]` bias), mixed per sample.
            let part = c.parts().next()?;
            let params = c.params();
            let weight = self.take(params[0].name.clone(), &params[0].shape);
            let bias = params.get(1).map(|b| self.take(b.name.clone(), &b.shape));
            return Some(Conv2d {
                name: c.name.clone(),
                parts: vec![ConvPart2d {
                    weight: weight?,
                    bias: bias.map_or(Some(None), |b| b.map(Some))?,
                    kernel: part.kernel,
                    in_chs: part.in_chs as i64,
                    groups: part.groups as i64,
                    shape: Some(part.weight_shape().map(|d| d as i64)),
                }],
                stride: c.stride,
                padding: c.padding,
            });
        }
        let parts: Vec<Option<ConvPart2d>> = c
            .parts()
            .map(|part| {
                let prefix = match part.index {
                    None => c.name.clone(),
                    Some(i) => format!("{}.{i}", c.name),
                };
                let weight = self.take(format!("{prefix}.weight"), &part.weight_shape());
                let bias = if c.bias {
                    Some(self.take(format!("{prefix}.bias"), &[part.out_chs]))
                } else {
                    None
                };
                Some(ConvPart2d {
                    weight: weight?,
                    bias: bias.map_or(Some(None), |b| b.map(Some))?,
                    kernel: part.kernel,
                    in_chs: part.in_chs as i64,
                    groups: part.groups as i64,
                    shape: None,
                })
            })
            .collect();
        Some(Conv2d {
            name: c.name.clone(),
            parts: parts.into_iter().collect::<Option<_>>()?,
            stride: c.stride,
            padding: c.padding,
        })
    }

    fn norm(&mut self, bn: &BatchNorm) -> Option<BatchNorm2d> {
        let mut part = |suffix: &str| self.take(format!("{}.{suffix}", bn.name), &[bn.channels]);
        let (w, b, m, v) = (
            part("weight"),
            part("bias"),
            part("running_mean"),
            part("running_var"),
        );
        Some(BatchNorm2d {
            name: bn.name.clone(),
            weight: w?,
            bias: b?,
            running_mean: m?,
            running_var: v?,
            eps: bn.eps,
        })
    }

    /// Interprets `ops` in timm `state_dict()` order (every layer is visited even after a
    /// problem, so that all problems are found in one pass).
    fn ops(&mut self, ops: &[Op]) -> Option<Vec<Layer>> {
        let layers: Vec<Option<Layer>> = ops
            .iter()
            .map(|op| match op {
                Op::Conv(c) => self.conv(c).map(Layer::Conv),
                Op::Norm(bn) => self.norm(bn).map(Layer::Norm),
                Op::Act { act, module } => Some(Layer::Act {
                    act: *act,
                    name: module.clone().unwrap_or_default(),
                }),
                Op::SqueezeExcite(se) => {
                    let reduce = self.conv(&se.reduce);
                    let expand = self.conv(&se.expand);
                    Some(Layer::SqueezeExcite {
                        reduce: reduce?,
                        act: se.act,
                        expand: expand?,
                        gate: se.gate,
                    })
                }
                Op::Residual(body) => self.ops(body).map(Layer::Residual),
                Op::CondConv { routing, body } => {
                    let body = self.ops(body);
                    let weight = self.take(
                        format!("{}.weight", routing.name),
                        &[routing.out_features, routing.in_features],
                    );
                    let bias = self.take(format!("{}.bias", routing.name), &[routing.out_features]);
                    Some(Layer::CondConv {
                        name: routing.name.clone(),
                        weight: weight?,
                        bias: bias?,
                        body: body?,
                    })
                }
                Op::Scope { body, .. } => self.ops(body).map(Layer::Seq),
                Op::GlobalPool { module } => Some(Layer::GlobalPool {
                    name: module.clone(),
                }),
                Op::Flatten { .. } => Some(Layer::Flatten),
                Op::Linear(l) => {
                    let weight = self.take(
                        format!("{}.weight", l.name),
                        &[l.out_features, l.in_features],
                    );
                    let bias = self.take(format!("{}.bias", l.name), &[l.out_features]);
                    Some(Layer::Linear {
                        name: l.name.clone(),
                        weight: weight?,
                        bias: bias?,
                    })
                }
            })
            .collect();
        layers.into_iter().collect()
    }
}

/// One conv of a (possibly mixed) convolution.
struct ConvPart2d {
    weight: tch::Tensor,
    bias: Option<tch::Tensor>,
    kernel: usize,
    in_chs: i64,
    groups: i64,
    /// CondConv: the per-expert weight shape `[out, in/groups, k, k]` (the stored weight is
    /// `[experts, out·in/groups·k·k]`).
    shape: Option<[i64; 4]>,
}

struct Conv2d {
    name: String,
    parts: Vec<ConvPart2d>,
    stride: usize,
    padding: Padding,
}

impl Conv2d {
    /// Per part: pads as the graph's rule says for this input's size and that part's kernel
    /// (TF 'same': the odd pixel goes right/bottom), then convolves with no further padding. A
    /// mixed conv splits the input channels, convolves each split, and concatenates.
    fn forward(
        &self,
        x: &tch::Tensor,
        routing: Option<&tch::Tensor>,
    ) -> Result<tch::Tensor, TorchError> {
        let err = || torch_err(&self.name);
        let size = x.size();
        let (h, w) = (size[2] as usize, size[3] as usize);
        let inputs = if self.parts.len() == 1 {
            vec![x.shallow_clone()]
        } else {
            let splits: Vec<i64> = self.parts.iter().map(|p| p.in_chs).collect();
            x.f_split_with_sizes(&splits, 1).map_err(err())?
        };
        let mut outs = Vec::with_capacity(self.parts.len());
        for (part, x) in self.parts.iter().zip(&inputs) {
            let (_, top, bottom) = self.padding.resolve(h, part.kernel, self.stride);
            let (_, left, right) = self.padding.resolve(w, part.kernel, self.stride);
            let padded;
            let input = if top + bottom + left + right > 0 {
                padded = x
                    .f_constant_pad_nd([left as i64, right as i64, top as i64, bottom as i64])
                    .map_err(err())?;
                &padded
            } else {
                x
            };
            let s = self.stride as i64;
            if let Some(shape) = part.shape {
                outs.push(self.cond_conv(part, shape, input, routing, s)?);
                continue;
            }
            outs.push(
                input
                    .f_conv2d(
                        &part.weight,
                        part.bias.as_ref(),
                        [s, s],
                        [0i64, 0],
                        [1i64, 1],
                        part.groups,
                    )
                    .map_err(err())?,
            );
        }
        if outs.len() == 1 {
            Ok(outs.remove(0))
        } else {
            tch::Tensor::f_cat(&outs, 1).map_err(err())
        }
    }
}

impl Conv2d {
    /// timm `CondConv2d.forward`: per sample, the routing weights `[B, E]` mix the experts into
    /// one kernel; the batch runs as one grouped conv over `[1, B·C, H, W]`.
    fn cond_conv(
        &self,
        part: &ConvPart2d,
        [out, per_group, kh, kw]: [i64; 4],
        x: &tch::Tensor,
        routing: Option<&tch::Tensor>,
        stride: i64,
    ) -> Result<tch::Tensor, TorchError> {
        let err = || torch_err(&self.name);
        let routing = routing.ok_or_else(|| TorchError::Libtorch {
            op: self.name.clone(),
            message: "a CondConv outside a CondConv block has no routing weights".into(),
        })?;
        let size = x.size();
        let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
        let weight = routing
            .f_matmul(&part.weight)
            .and_then(|t| t.f_view([b * out, per_group, kh, kw]))
            .map_err(err())?;
        let bias = match &part.bias {
            Some(bias) => Some(
                routing
                    .f_matmul(bias)
                    .and_then(|t| t.f_view([b * out]))
                    .map_err(err())?,
            ),
            None => None,
        };
        let y = x
            .f_reshape([1, b * c, h, w])
            .and_then(|x| {
                x.f_conv2d(
                    &weight,
                    bias.as_ref(),
                    [stride, stride],
                    [0i64, 0],
                    [1i64, 1],
                    part.groups * b,
                )
            })
            .map_err(err())?;
        let s = y.size();
        y.f_view([b, out, s[2], s[3]]).map_err(err())
    }
}

struct BatchNorm2d {
    name: String,
    weight: tch::Tensor,
    bias: tch::Tensor,
    running_mean: tch::Tensor,
    running_var: tch::Tensor,
    eps: f64,
}

impl BatchNorm2d {
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor, TorchError> {
        x.f_batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.0,
            self.eps,
            false,
        )
        .map_err(torch_err(&self.name))
    }
}

/// Applies an activation.
fn activate(act: Act, x: &tch::Tensor, name: &str) -> Result<tch::Tensor, TorchError> {
    let err = || torch_err(name);
    match act {
        Act::Identity => Ok(x.shallow_clone()),
        Act::Relu => x.f_relu().map_err(err()),
        Act::Relu6 => x.f_clamp(0.0, 6.0).map_err(err()),
        Act::Silu => x.f_silu().map_err(err()),
        Act::HardSwish => x.f_hardswish().map_err(err()),
        Act::Sigmoid => x.f_sigmoid().map_err(err()),
        Act::HardSigmoid => x.f_hardsigmoid().map_err(err()),
        Act::HardSigmoidSlim => (x + 3.0)
            .f_clamp(0.0, 6.0)
            .map(|t| t * crate::arch::graph::SLIM_HARD_SIGMOID_FACTOR)
            .map_err(err()),
    }
}

/// The interpreted graph: one [`Op`] each, holding its tensors.
enum Layer {
    Conv(Conv2d),
    Norm(BatchNorm2d),
    Act {
        act: Act,
        name: String,
    },
    SqueezeExcite {
        reduce: Conv2d,
        act: Act,
        expand: Conv2d,
        gate: Act,
    },
    Residual(Vec<Layer>),
    Seq(Vec<Layer>),
    CondConv {
        name: String,
        weight: tch::Tensor,
        bias: tch::Tensor,
        body: Vec<Layer>,
    },
    GlobalPool {
        name: String,
    },
    Flatten,
    Linear {
        name: String,
        weight: tch::Tensor,
        bias: tch::Tensor,
    },
}

/// Runs `layers` in order; `routing` is the enclosing CondConv block's routing weights.
fn run(
    layers: &[Layer],
    x: &tch::Tensor,
    routing: Option<&tch::Tensor>,
) -> Result<tch::Tensor, TorchError> {
    let mut x = x.shallow_clone();
    for layer in layers {
        x = layer.forward(&x, routing)?;
    }
    Ok(x)
}

impl Layer {
    fn forward(
        &self,
        x: &tch::Tensor,
        routing: Option<&tch::Tensor>,
    ) -> Result<tch::Tensor, TorchError> {
        match self {
            Layer::Conv(c) => c.forward(x, routing),
            Layer::Norm(bn) => bn.forward(x),
            Layer::Act { act, name } => activate(*act, x, name),
            Layer::SqueezeExcite {
                reduce,
                act,
                expand,
                gate,
            } => {
                let err = || torch_err(&reduce.name);
                let s = x
                    .f_mean_dim(&[2i64, 3][..], true, None::<Kind>)
                    .map_err(err())?;
                let s = activate(*act, &reduce.forward(&s, routing)?, &reduce.name)?;
                let s = activate(*gate, &expand.forward(&s, routing)?, &expand.name)?;
                x.f_mul(&s).map_err(err())
            }
            Layer::Residual(body) => run(body, x, routing)?
                .f_add(x)
                .map_err(torch_err("residual")),
            Layer::Seq(body) => run(body, x, routing),
            Layer::CondConv {
                name,
                weight,
                bias,
                body,
            } => {
                let err = || torch_err(name);
                let pooled = x
                    .f_mean_dim(&[2i64, 3][..], false, None::<Kind>)
                    .map_err(err())?;
                let r = pooled
                    .f_linear(weight, Some(bias))
                    .and_then(|t| t.f_sigmoid())
                    .map_err(err())?;
                run(body, x, Some(&r))
            }
            Layer::GlobalPool { name } => x
                .f_mean_dim(&[2i64, 3][..], true, None::<Kind>)
                .map_err(torch_err(name)),
            Layer::Flatten => x.f_flatten(1, -1).map_err(torch_err("flatten")),
            Layer::Linear { name, weight, bias } => {
                x.f_linear(weight, Some(bias)).map_err(torch_err(name))
            }
        }
    }
}

/// A [`Network`] on libtorch in eval mode on the CPU: an interpreter of its ops, holding
/// libtorch tensors keyed by timm state-dict name.
pub struct Model {
    layers: Vec<Layer>,
    named: Vec<(String, tch::Tensor)>,
    in_chans: usize,
    classes: usize,
    target: Target,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("tensors", &self.named.len())
            .field("in_chans", &self.in_chans)
            .field("classes", &self.classes)
            .finish()
    }
}

impl Model {
    /// Builds the model from a timm-keyed state dict, strictly: every tensor of `net.params()`
    /// must be present, f32, with exactly its shape, and nothing else may be there except
    /// `*.num_batches_tracked`. All problems are reported at once.
    pub fn load(net: &Network, weights: &StateDict) -> Result<Model, TorchError> {
        Self::load_on(net, weights, None, false)
    }

    /// [`Model::load`] onto CUDA device `cuda` (else the CPU), in float16 when `half`.
    /// [`Model::forward`] still takes and returns f32 on the CPU.
    pub fn load_on(
        net: &Network,
        weights: &StateDict,
        cuda: Option<usize>,
        half: bool,
    ) -> Result<Model, TorchError> {
        limit_threads();
        let mut source = StateDictSource::new(weights, target(cuda, half));
        let built = Self::build(net, &mut source);
        let problems = source.finish(weights)?;
        match built {
            Some(model) if problems.is_empty() => Ok(model),
            _ => Err(TorchError::StateDict {
                arch: net.arch.clone(),
                problems,
            }),
        }
    }

    /// The model with every tensor zero: its structure without weights (names, shapes).
    pub fn zeroed(net: &Network) -> Result<Model, TorchError> {
        limit_threads();
        Self::build(net, &mut ZeroSource).ok_or_else(|| TorchError::Libtorch {
            op: "zeros".into(),
            message: "could not allocate the model's tensors".into(),
        })
    }

    fn build<S: Source>(net: &Network, source: &mut S) -> Option<Model> {
        let mut builder = Builder {
            source,
            named: vec![],
            complete: true,
        };
        let layers = builder.ops(&net.ops);
        if !builder.complete {
            return None;
        }
        let target = builder
            .named
            .first()
            .map_or((tch::Device::Cpu, Kind::Float), |(_, t)| {
                (t.device(), t.kind())
            });
        Some(Model {
            layers: layers?,
            named: builder.named,
            in_chans: net.in_chans,
            classes: net.classes(),
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
        let err = || torch_err("logits");
        let logits = run(&self.layers, &x, None)?
            .f_to_device_(tch::Device::Cpu, Kind::Float, false, false)
            .map_err(err())?
            .f_contiguous()
            .map_err(err())?;
        let values = Vec::<f32>::try_from(&logits.f_view([-1i64]).map_err(err())?).map_err(err())?;
        Ok(Tensor::from_f32(vec![shape[0], self.classes], &values)?)
    }
}
