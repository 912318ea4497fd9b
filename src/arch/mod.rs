//! Architecture specs: the one resolved description of a network that the FLOP counter,
//! the TF→timm name map and the tch model all read. Numbers are derived here and nowhere else.
pub mod efficientnet;

pub use efficientnet::{ArchConfig, Spec};

/// What a tensor in a state dict is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A trainable weight (conv kernel, BN gamma, linear weight).
    Weight,
    /// A trainable bias (conv/linear bias, BN beta).
    Bias,
    /// A BatchNorm running mean (buffer).
    RunningMean,
    /// A BatchNorm running variance (buffer).
    RunningVar,
}

impl ParamKind {
    /// Trainable parameters count toward "Parameters"; buffers do not.
    pub fn is_trainable(self) -> bool {
        matches!(self, ParamKind::Weight | ParamKind::Bias)
    }
}

/// One named tensor of the target (timm) state dict, in `state_dict()` order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamSpec {
    /// timm's state-dict key, e.g. `blocks.3.1.conv_pwl.weight`.
    pub name: String,
    /// torch layout shape, e.g. `[out, in, kh, kw]`.
    pub shape: Vec<usize>,
    /// What it is.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// Number of elements (saturating; exact for every spec [`Spec::resolve`] returns, whose
    /// element counts are checked to fit).
    pub fn numel(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }
}

/// How a conv pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// TensorFlow 'SAME': output = ceil(in / stride); the total padding
    /// `max((out-1)*stride + k - in, 0)` is split with the extra pixel at the bottom/right.
    TfSame,
    /// PyTorch symmetric padding of `(k-1)/2` on each side (timm's default, non-`tf_` models).
    Symmetric,
}

impl Padding {
    /// Output length and (before, after) padding of one spatial axis.
    ///
    /// For real tensor sizes; an axis whose arithmetic would overflow (or a zero stride or
    /// kernel) gives `(0, 0, 0)`. [`Padding::checked_resolve`] says so instead.
    pub fn resolve(self, input: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
        self.checked_resolve(input, kernel, stride)
            .unwrap_or((0, 0, 0))
    }

    /// [`Padding::resolve`] with checked arithmetic: `None` when a step overflows, or the
    /// stride or kernel is zero.
    pub fn checked_resolve(
        self,
        input: usize,
        kernel: usize,
        stride: usize,
    ) -> Option<(usize, usize, usize)> {
        if stride == 0 || kernel == 0 {
            return None;
        }
        match self {
            Padding::TfSame => {
                let out = input.div_ceil(stride);
                let total = out
                    .saturating_sub(1)
                    .checked_mul(stride)?
                    .checked_add(kernel)?
                    .saturating_sub(input);
                Some((out, total / 2, total - total / 2))
            }
            Padding::Symmetric => {
                let pad = (kernel - 1) / 2;
                let padded = input.checked_add(pad.checked_mul(2)?)?;
                let out = (padded.saturating_sub(kernel) / stride).checked_add(1)?;
                Some((out, pad, pad))
            }
        }
    }
}

/// A 2-D convolution, named by its timm module path (`blocks.1.0.conv_dw`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conv {
    /// timm module path; parameters are `<name>.weight` (and `<name>.bias`).
    pub name: String,
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride on both axes.
    pub stride: usize,
    /// Groups (= channels for depthwise).
    pub groups: usize,
    /// Has a bias.
    pub bias: bool,
    /// Padding rule.
    pub padding: Padding,
}

impl Conv {
    /// Output (h, w) for an input (h, w); `None` when the arithmetic overflows.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (oh, _, _) = self.padding.checked_resolve(h, self.kernel, self.stride)?;
        let (ow, _, _) = self.padding.checked_resolve(w, self.kernel, self.stride)?;
        Some((oh, ow))
    }

    /// The weight and optional bias, torch layout `[out, in/groups, k, k]`.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![ParamSpec {
            name: format!("{}.weight", self.name),
            shape: vec![
                self.out_chs,
                self.in_chs / self.groups.max(1),
                self.kernel,
                self.kernel,
            ],
            kind: ParamKind::Weight,
        }];
        if self.bias {
            v.push(ParamSpec {
                name: format!("{}.bias", self.name),
                shape: vec![self.out_chs],
                kind: ParamKind::Bias,
            });
        }
        v
    }

    /// Multiply-accumulates at an output size (excluding bias); `None` when they do not fit
    /// in 64 bits.
    pub fn macs(&self, out_h: usize, out_w: usize) -> Option<u64> {
        [
            out_h,
            out_w,
            self.out_chs,
            self.in_chs / self.groups.max(1),
            self.kernel,
            self.kernel,
        ]
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
    }
}

/// A BatchNorm2d, named by its timm module path (`bn1`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchNorm {
    /// timm module path.
    pub name: String,
    /// Channels.
    pub channels: usize,
    /// Epsilon.
    pub eps: f64,
}

impl BatchNorm {
    /// weight, bias, running_mean, running_var (timm order; `num_batches_tracked` is not listed).
    pub fn params(&self) -> Vec<ParamSpec> {
        [
            ("weight", ParamKind::Weight),
            ("bias", ParamKind::Bias),
            ("running_mean", ParamKind::RunningMean),
            ("running_var", ParamKind::RunningVar),
        ]
        .into_iter()
        .map(|(suffix, kind)| ParamSpec {
            name: format!("{}.{suffix}", self.name),
            shape: vec![self.channels],
            kind,
        })
        .collect()
    }
}

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Linear {
    /// timm module path.
    pub name: String,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

impl Linear {
    /// weight `[out, in]` and bias `[out]`.
    pub fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: format!("{}.weight", self.name),
                shape: vec![self.out_features, self.in_features],
                kind: ParamKind::Weight,
            },
            ParamSpec {
                name: format!("{}.bias", self.name),
                shape: vec![self.out_features],
                kind: ParamKind::Bias,
            },
        ]
    }
}
