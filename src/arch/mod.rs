//! Architectures: descriptions ([`ArchConfig`]) built into the one layer graph ([`Network`]) that
//! the FLOP counter, the file-size predictor, the TF→timm name map and the tch model all walk.
//! Numbers are derived here and nowhere else.
pub mod efficientnet;
pub mod family;
pub mod graph;
pub mod timm_builder;

pub use efficientnet::ArchConfig;
pub use graph::{
    Act, BatchNorm, Conv, Kernel, Layer, Linear, ModuleKind, Name, Network, Op, SqueezeExcite,
    Tensor, TfVariables,
};

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
    /// Number of elements (saturating; exact for every network [`ArchConfig::resolve`] returns, whose
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
