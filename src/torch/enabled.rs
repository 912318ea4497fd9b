//! A [`Network`] on libtorch: an interpreter of the layer graph, built op by op.
//!
//! Each layer takes its tensors by timm key from a [`Source`] while the network is assembled, in
//! timm's `state_dict()` order; the same walk serves loading a state dict (strictly) and building
//! a zero-filled model for structure checks. Inference is functional (`conv2d`, `batch_norm` with
//! `training = false`), so there is no train mode to forget to switch off. The ops are timm's
//! ops, down to where the padding happens; on the CPU they run in the channels-last layout
//! (see [`channels_last`]).
use std::collections::HashMap;
use std::sync::Once;

use tch::{Kind, TchError};
use zoo_converters::{DType, StateDict, Tensor};

use super::{ParamProblem, TorchError};
use crate::arch::graph::SLIM_HARD_SIGMOID_FACTOR;
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

/// A CPU f32 `[N, C, H, W]` tensor in the channels-last layout (NHWC in memory, the same shape),
/// which oneDNN's CPU convolutions run on directly; anything else as it is.
///
/// In NCHW every convolution reorders its input into oneDNN's blocked layout and its output
/// back, two more large buffers per conv (see [`Model::forward`] on what a buffer costs): b0 at
/// batch 32 takes about half the page faults and 30 % less arithmetic in channels-last. The
/// sums are then accumulated in another order, so the logits differ from timm's NCHW ones in
/// the last bits (about 3e-8 on b0's); the eval parity tests hold zoo's per-image top-5 equal to
/// timm's.
fn channels_last(t: &tch::Tensor) -> Result<tch::Tensor, TchError> {
    if t.dim() != 4 || t.device() != tch::Device::Cpu || t.kind() != Kind::Float {
        return Ok(t.shallow_clone());
    }
    t.f_permute([0i64, 2, 3, 1])?
        .f_contiguous()?
        .f_permute([0i64, 3, 1, 2])
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
                let weight = weight?;
                Some(ConvPart2d {
                    // An optimisation only: the plain weight computes the same function.
                    weight: channels_last(&weight).unwrap_or(weight),
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
    /// (TF 'same': the odd pixel goes right/bottom), inside the conv where timm does, else
    /// before it. A mixed conv splits the input channels, convolves each split, and
    /// concatenates.
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
            // timm pads inside the conv where the padding is static (symmetric padding, and TF
            // 'same' at stride 1, which is symmetric for odd kernels) and with `F.pad` before
            // it otherwise (`Conv2dSame`); doing the same keeps every op equal to timm's, and
            // saves a padded copy of the input.
            let inside = top == bottom
                && left == right
                && (self.padding == Padding::Symmetric || self.stride == 1);
            let conv_padding = if inside {
                [top as i64, left as i64]
            } else {
                [0, 0]
            };
            let padded;
            let input = if !inside && top + bottom + left + right > 0 {
                padded = x
                    .f_constant_pad_nd([left as i64, right as i64, top as i64, bottom as i64])
                    .map_err(err())?;
                &padded
            } else {
                x
            };
            let s = self.stride as i64;
            if let Some(shape) = part.shape {
                outs.push(self.cond_conv(part, shape, input, routing, s, conv_padding)?);
                continue;
            }
            outs.push(
                input
                    .f_conv2d(
                        &part.weight,
                        part.bias.as_ref(),
                        [s, s],
                        conv_padding,
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
        padding: [i64; 2],
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
                    padding,
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
    /// Inference BatchNorm; on the CPU, an owned `x` is normalised in place: the same kernel
    /// (`native_batch_norm`, which `batch_norm` calls) writes each element over its input, the
    /// value a new buffer would hold.
    fn forward(&self, x: Value) -> Result<Value, TorchError> {
        let owned = x.owned;
        let err = || torch_err(&self.name);
        let (w, b) = (Some(&self.weight), Some(&self.bias));
        let (mean, var) = (Some(&self.running_mean), Some(&self.running_var));
        let x = x.tensor;
        if owned && x.device() == tch::Device::Cpu && x.kind() == Kind::Float {
            let unused = || tch::Tensor::f_empty([0i64], (Kind::Float, tch::Device::Cpu));
            let (save_mean, save_invstd) = (unused().map_err(err())?, unused().map_err(err())?);
            let (y, _, _) = x
                .f_native_batch_norm_out(
                    &x,
                    &save_mean,
                    &save_invstd,
                    w,
                    b,
                    mean,
                    var,
                    false,
                    0.0,
                    self.eps,
                )
                .map_err(err())?;
            return Ok(Value::fresh(y));
        }
        x.f_batch_norm(w, b, mean, var, false, 0.0, self.eps, false)
            .map(Value::fresh)
            .map_err(err())
    }
}

impl ConvPart2d {
    fn replicate(&self) -> ConvPart2d {
        ConvPart2d {
            weight: self.weight.shallow_clone(),
            bias: self.bias.as_ref().map(tch::Tensor::shallow_clone),
            kernel: self.kernel,
            in_chs: self.in_chs,
            groups: self.groups,
            shape: self.shape,
        }
    }
}

impl Conv2d {
    fn replicate(&self) -> Conv2d {
        Conv2d {
            name: self.name.clone(),
            parts: self.parts.iter().map(ConvPart2d::replicate).collect(),
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl BatchNorm2d {
    fn replicate(&self) -> BatchNorm2d {
        BatchNorm2d {
            name: self.name.clone(),
            weight: self.weight.shallow_clone(),
            bias: self.bias.shallow_clone(),
            running_mean: self.running_mean.shallow_clone(),
            running_var: self.running_var.shallow_clone(),
            eps: self.eps,
        }
    }
}

/// An activation between layers, and whether the walk holds the only reference to its storage.
/// An owned value may be overwritten by the next layer, as timm's `inplace=True` activations
/// are: the same kernels write the same values, with no new buffer (on the CPU each new buffer
/// of a large activation costs page faults, see [`Model::forward`]).
struct Value {
    tensor: tch::Tensor,
    owned: bool,
}

impl Value {
    fn fresh(tensor: tch::Tensor) -> Value {
        Value {
            tensor,
            owned: true,
        }
    }

    fn borrowed(tensor: &tch::Tensor) -> Value {
        Value {
            tensor: tensor.shallow_clone(),
            owned: false,
        }
    }
}

/// Applies an activation, in place when `x` is owned.
fn activate(act: Act, x: Value, name: &str) -> Result<Value, TorchError> {
    let err = || torch_err(name);
    let Value { mut tensor, owned } = x;
    if act == Act::Identity {
        return Ok(Value { tensor, owned });
    }
    let y = if owned {
        match act {
            Act::Identity | Act::Relu => tensor.f_relu_(),
            Act::Relu6 => tensor.f_clamp_(0.0, 6.0),
            Act::Silu => tensor.f_silu_(),
            Act::HardSwish => tensor.f_hardswish_(),
            Act::Sigmoid => tensor.f_sigmoid_(),
            Act::HardSigmoid => tensor.f_hardsigmoid_(),
            Act::HardSigmoidSlim => tensor
                .f_add_scalar_(3.0)
                .and_then(|mut t| t.f_clamp_(0.0, 6.0))
                .and_then(|mut t| t.f_mul_scalar_(SLIM_HARD_SIGMOID_FACTOR)),
        }
    } else {
        match act {
            Act::Identity | Act::Relu => tensor.f_relu(),
            Act::Relu6 => tensor.f_clamp(0.0, 6.0),
            Act::Silu => tensor.f_silu(),
            Act::HardSwish => tensor.f_hardswish(),
            Act::Sigmoid => tensor.f_sigmoid(),
            Act::HardSigmoid => tensor.f_hardsigmoid(),
            Act::HardSigmoidSlim => (&tensor + 3.0)
                .f_clamp(0.0, 6.0)
                .map(|t| t * SLIM_HARD_SIGMOID_FACTOR),
        }
    };
    y.map(Value::fresh).map_err(err())
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

impl Layer {
    /// The same layer on the same tensors (shallow clones: nothing is copied).
    fn replicate(&self) -> Layer {
        let all = |layers: &[Layer]| layers.iter().map(Layer::replicate).collect();
        match self {
            Layer::Conv(c) => Layer::Conv(c.replicate()),
            Layer::Norm(bn) => Layer::Norm(bn.replicate()),
            Layer::Act { act, name } => Layer::Act {
                act: *act,
                name: name.clone(),
            },
            Layer::SqueezeExcite {
                reduce,
                act,
                expand,
                gate,
            } => Layer::SqueezeExcite {
                reduce: reduce.replicate(),
                act: *act,
                expand: expand.replicate(),
                gate: *gate,
            },
            Layer::Residual(body) => Layer::Residual(all(body)),
            Layer::Seq(body) => Layer::Seq(all(body)),
            Layer::CondConv {
                name,
                weight,
                bias,
                body,
            } => Layer::CondConv {
                name: name.clone(),
                weight: weight.shallow_clone(),
                bias: bias.shallow_clone(),
                body: all(body),
            },
            Layer::GlobalPool { name } => Layer::GlobalPool { name: name.clone() },
            Layer::Flatten => Layer::Flatten,
            Layer::Linear { name, weight, bias } => Layer::Linear {
                name: name.clone(),
                weight: weight.shallow_clone(),
                bias: bias.shallow_clone(),
            },
        }
    }
}

/// Runs `layers` in order; `routing` is the enclosing CondConv block's routing weights.
fn run(layers: &[Layer], x: Value, routing: Option<&tch::Tensor>) -> Result<Value, TorchError> {
    let mut x = x;
    for layer in layers {
        x = layer.forward(x, routing)?;
    }
    Ok(x)
}

impl Layer {
    fn forward(&self, x: Value, routing: Option<&tch::Tensor>) -> Result<Value, TorchError> {
        match self {
            Layer::Conv(c) => c.forward(&x.tensor, routing).map(Value::fresh),
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
                    .tensor
                    .f_mean_dim(&[2i64, 3][..], true, None::<Kind>)
                    .map_err(err())?;
                let s = reduce.forward(&s, routing).map(Value::fresh)?;
                let s = activate(*act, s, &reduce.name)?;
                let s = expand.forward(&s.tensor, routing).map(Value::fresh)?;
                let s = activate(*gate, s, &expand.name)?.tensor;
                // timm: `x * self.gate(x_se)`.
                let Value { mut tensor, owned } = x;
                let y = if owned {
                    tensor.f_mul_(&s)
                } else {
                    tensor.f_mul(&s)
                };
                y.map(Value::fresh).map_err(err())
            }
            Layer::Residual(body) => {
                // timm: `x = self.drop_path(x) + shortcut`, the body's output first.
                let Value { mut tensor, owned } = run(body, Value::borrowed(&x.tensor), routing)?;
                let y = if owned {
                    tensor.f_add_(&x.tensor)
                } else {
                    tensor.f_add(&x.tensor)
                };
                y.map(Value::fresh).map_err(torch_err("residual"))
            }
            Layer::Seq(body) => run(body, x, routing),
            Layer::CondConv {
                name,
                weight,
                bias,
                body,
            } => {
                let err = || torch_err(name);
                let pooled = x
                    .tensor
                    .f_mean_dim(&[2i64, 3][..], false, None::<Kind>)
                    .map_err(err())?;
                let r = pooled
                    .f_linear(weight, Some(bias))
                    .and_then(|t| t.f_sigmoid())
                    .map_err(err())?;
                run(body, x, Some(&r))
            }
            Layer::GlobalPool { name } => x
                .tensor
                .f_mean_dim(&[2i64, 3][..], true, None::<Kind>)
                .map(Value::fresh)
                .map_err(torch_err(name)),
            // A view of `x`, which is dropped: it stays owned if `x` was.
            Layer::Flatten => Ok(Value {
                tensor: x.tensor.f_flatten(1, -1).map_err(torch_err("flatten"))?,
                owned: x.owned,
            }),
            Layer::Linear { name, weight, bias } => x
                .tensor
                .f_linear(weight, Some(bias))
                .map(Value::fresh)
                .map_err(torch_err(name)),
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
    /// libtorch threads of each forward pass (`None`: the process-wide limit).
    threads: Option<usize>,
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
            threads: None,
        })
    }

    /// The same model on the same weights (nothing is copied), for another thread, whose
    /// forward passes use `threads` libtorch (OpenMP) threads of the thread that runs them.
    /// Several replicas then run at once, each on its own cores, instead of one pass spread
    /// over all cores (and competing with other work for them).
    pub fn replica(&self, threads: usize) -> Model {
        Model {
            layers: self.layers.iter().map(Layer::replicate).collect(),
            named: self
                .named
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
            in_chans: self.in_chans,
            classes: self.classes,
            target: self.target,
            threads: Some(threads.max(1)),
        }
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
    ///
    /// Activations no other op still needs are overwritten in place (activation functions,
    /// BatchNorm on the CPU, the squeeze-excite product, the residual sum), with the same
    /// kernels and so the same values as timm's modules. A large new buffer costs more than
    /// the arithmetic of such an op: glibc maps each allocation over 32 MiB afresh, and every
    /// page of it faults on first touch (b0 at batch 32 spent more time in those faults than
    /// in computing).
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
        match self.threads {
            // OpenMP's thread count is a setting of the calling thread. Setting it also clears
            // oneDNN's caches: only when it changes, once per thread.
            Some(n) if tch::get_num_threads() != n as i32 => tch::set_num_threads(n as i32),
            Some(_) => {}
            None => limit_threads(),
        }
        let _no_grad = tch::no_grad_guard();
        let x = tch::Tensor::f_from_data_size(input_nchw.data(), &dims(shape), Kind::Float)
            .map_err(torch_err("input"))?;
        let x = if self.target == (tch::Device::Cpu, Kind::Float) {
            channels_last(&x).map_err(torch_err("input"))?
        } else {
            x.f_to_device_(self.target.0, self.target.1, false, false)
                .map_err(torch_err("input to device"))?
        };
        let err = || torch_err("logits");
        let logits = run(&self.layers, Value::fresh(x), None)?
            .tensor
            .f_to_device_(tch::Device::Cpu, Kind::Float, false, false)
            .map_err(err())?
            .f_contiguous()
            .map_err(err())?;
        let values = Vec::<f32>::try_from(&logits.f_view([-1i64]).map_err(err())?).map_err(err())?;
        Ok(Tensor::from_f32(vec![shape[0], self.classes], &values)?)
    }
}
