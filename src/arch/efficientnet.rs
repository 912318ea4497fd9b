//! EfficientNet as timm builds its `tf_efficientnet_*` models, built into a [`Network`].
//!
//! Input: block strings in timm's grammar (`ir_r2_k3_s2_e6_c24_se0.25`, see [`BlockString`]) plus
//! the width (channel) and depth multipliers. Output: every layer's channels, kernel, stride,
//! groups, SE width, padding rule and BN epsilon, and the timm parameter names and shapes.
//!
//! The rounding rules are timm's (`timm/layers/helpers.py::make_divisible`,
//! `_efficientnet_builder.py::round_channels` and `_scale_stage_depth`), which for these models
//! agree with the TensorFlow reference (`efficientnet_model.py::round_filters/round_repeats`):
//! - channels → `make_divisible(c · width, 8)`: round to the nearest multiple of 8, at least 8,
//!   plus 8 if that lost more than 10 %;
//! - repeats → `ceil(r · depth)` per stage;
//! - IR mid channels → `make_divisible(in · expand, 8)`;
//! - SE width → `max(1, int(in · se_ratio))` from the block's *input* channels.
//!
//! Every number a description may set is bounded ([`Bounds`]): an architecture string comes from
//! a card or the command line, and an unbounded width, depth or class count would make the FLOP
//! counter overflow or the resolver allocate without limit. Out-of-range values are
//! [`ArchError::OutOfRange`] naming the value and the bound, and [`ArchConfig::resolve`] checks
//! them again for descriptions built in code, so every built [`Network`]'s counts fit in 64 bits.
use std::fmt;
use std::str::FromStr;

use super::family::{self, Family};
use super::graph::{Act, Kernel, Network};
use super::Padding;

/// The seven stages of EfficientNet-B0 (timm `_gen_efficientnet`'s `arch_def`).
pub const BASE_BLOCKS: [&str; 7] = [
    "ds_r1_k3_s1_e1_c16_se0.25",
    "ir_r2_k3_s2_e6_c24_se0.25",
    "ir_r2_k5_s2_e6_c40_se0.25",
    "ir_r3_k3_s2_e6_c80_se0.25",
    "ir_r3_k5_s1_e6_c112_se0.25",
    "ir_r4_k5_s2_e6_c192_se0.25",
    "ir_r1_k3_s1_e6_c320_se0.25",
];

/// Named scalings: (name, width multiplier, depth multiplier).
pub const VARIANTS: [(&str, f64, f64); 10] = [
    ("b0", 1.0, 1.0),
    ("b1", 1.0, 1.1),
    ("b2", 1.1, 1.2),
    ("b3", 1.2, 1.4),
    ("b4", 1.4, 1.8),
    ("b5", 1.6, 2.2),
    ("b6", 1.8, 2.6),
    ("b7", 2.0, 3.1),
    ("b8", 2.2, 3.6),
    ("l2", 4.3, 5.3),
];

/// TF's default BatchNorm epsilon, used by every `tf_` port.
pub const BN_EPS_TF: f64 = 1e-3;

/// The largest values an architecture description may hold. Every published EfficientNet sits far
/// inside them (L2: width 4.3, depth 5.3, 1000 classes, 3 input channels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds;

impl Bounds {
    /// Width multiplier: `0 < width <= 16`.
    pub const MAX_WIDTH: f64 = 16.0;
    /// Depth multiplier: `0 < depth <= 16`.
    pub const MAX_DEPTH: f64 = 16.0;
    /// Classifier outputs: `1 <= classes <= 1_000_000`.
    pub const MAX_CLASSES: usize = 1_000_000;
    /// Input channels: `1 <= in-chans <= 64`.
    pub const MAX_IN_CHANS: usize = 64;
    /// Stem channels before width scaling: `1 <= stem <= 4096`.
    pub const MAX_STEM: usize = 4096;
    /// Head channels before width scaling: `1 <= head <= 16384`.
    pub const MAX_HEAD: usize = 16384;
    /// BatchNorm epsilon: `0 < bn-eps <= 1`.
    pub const MAX_BN_EPS: f64 = 1.0;
    /// Stages: `1 <= stages <= 16`; block strings per stage: at most 16.
    pub const MAX_STAGES: usize = 16;
    /// Block repeats in one block string: `1 <= r <= 32`.
    pub const MAX_REPEATS: usize = 32;
    /// Kernel sizes: odd, `1 <= k <= 31`.
    pub const MAX_KERNEL: usize = 31;
    /// Sizes of one mixed kernel (`k3.5.7.9.11` has 5).
    pub const MAX_KERNEL_SPLITS: usize = 8;
    /// CondConv experts of one block string (`cc<n>`), before the family's multiplier.
    pub const MAX_EXPERTS: usize = 64;
    /// CondConv experts multiplier: `1 <= experts <= 16`.
    pub const MAX_EXPERTS_MULTIPLIER: usize = 16;
    /// Stride: `1 <= s <= 8`.
    pub const MAX_STRIDE: usize = 8;
    /// Expansion ratio: `0 <= e <= 64`.
    pub const MAX_EXPAND: f64 = 64.0;
    /// Output channels of a block string before width scaling: `1 <= c <= 8192`.
    pub const MAX_BLOCK_CHANNELS: usize = 8192;
    /// Squeeze-excitation ratio: `0 <= se <= 1`.
    pub const MAX_SE: f64 = 1.0;
    /// Blocks after depth scaling, over all stages.
    pub const MAX_BLOCKS: usize = 1024;
    /// Channels of any resolved layer (after width scaling and expansion).
    pub const MAX_CHANNELS: usize = 1 << 24;
}

/// An error in an architecture description.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArchError {
    /// A block string could not be parsed.
    #[error("block string `{block}`: {reason}")]
    BadBlock {
        /// The whole block string.
        block: String,
        /// What was wrong, naming the token.
        reason: String,
    },
    /// An architecture string could not be parsed.
    #[error("architecture `{arch}`: {reason}")]
    BadArch {
        /// The whole architecture string.
        arch: String,
        /// What was wrong.
        reason: String,
    },
    /// A value is outside what zoo accepts ([`Bounds`]).
    #[error("architecture `{arch}`: {key} = {value} is out of range (allowed: {bound})")]
    OutOfRange {
        /// The whole architecture string (or the block string).
        arch: Box<str>,
        /// The key (`width`, `classes`, `r` of a block string, …).
        key: &'static str,
        /// The value as given.
        value: Box<str>,
        /// The allowed range, e.g. `0 < width <= 16`.
        bound: Box<str>,
    },
}

/// `Err(OutOfRange)` unless `ok`.
pub(crate) fn in_range(
    ok: bool,
    arch: &str,
    key: &'static str,
    value: impl fmt::Display,
    bound: impl fmt::Display,
) -> Result<(), ArchError> {
    if ok {
        Ok(())
    } else {
        Err(ArchError::OutOfRange {
            arch: arch.into(),
            key,
            value: value.to_string().into(),
            bound: bound.to_string().into(),
        })
    }
}

/// Block type of a block string (timm `_decode_block_str`'s leading token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `ds`: depthwise-separable (dw → SE → pw), no expansion.
    DepthwiseSeparable,
    /// `dsa`: depthwise-separable with an activation after the pw conv, never a residual.
    DepthwiseSeparableAct,
    /// `ir`: inverted residual (pw expand → dw → SE → pw linear); with `cc` a CondConv block.
    InvertedResidual,
    /// `er`: edge residual (full conv expand → SE → pw linear), EdgeTPU's fused MBConv.
    EdgeResidual,
    /// `cn`: conv → BN → act.
    ConvBnAct,
}

impl BlockKind {
    fn token(self) -> &'static str {
        match self {
            BlockKind::DepthwiseSeparable => "ds",
            BlockKind::DepthwiseSeparableAct => "dsa",
            BlockKind::InvertedResidual => "ir",
            BlockKind::EdgeResidual => "er",
            BlockKind::ConvBnAct => "cn",
        }
    }
}

/// The block-string spelling of an activation (`n<act>`).
fn act_token(act: Act) -> Option<&'static str> {
    match act {
        Act::Relu => Some("re"),
        Act::Relu6 => Some("r6"),
        Act::HardSwish => Some("hs"),
        Act::Silu => Some("sw"),
        Act::Identity | Act::Sigmoid | Act::HardSigmoid | Act::HardSigmoidSlim => None,
    }
}

/// A kernel-size token value: `3` or mixed `3.5.7`.
struct KernelToken<'a>(&'a Kernel);

impl fmt::Display for KernelToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kernel::Square(k) => write!(f, "{k}"),
            Kernel::Mixed(ks) => {
                for (i, k) in ks.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write!(f, "{k}")?;
                }
                Ok(())
            }
        }
    }
}

/// One stage description in timm's block-string grammar (`_decode_block_str`):
/// `<type>_r<repeats>_k<kernel>_s<stride>_e<expand>_c<out>` plus the optional tokens
/// `a<k>` / `p<k>` (expansion / pointwise kernel sizes), `se<ratio>`, `n<act>` (`re`, `r6`,
/// `hs`, `sw`), `cc<experts>`, `fc<channels>`, `noskip` and `skip`. Kernel sizes may be mixed:
/// `k3.5.7`. Any other token is an error naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockString {
    /// Block type.
    pub kind: BlockKind,
    /// Repeats before depth scaling.
    pub repeats: usize,
    /// Depthwise kernel (`ds`, `ir`) or the conv's kernel (`er`, `cn`).
    pub kernel: Kernel,
    /// `a`: the expansion conv's kernel (`ir`), default 1.
    pub exp_kernel: Kernel,
    /// `p`: the pointwise/projection conv's kernel, default 1.
    pub pw_kernel: Kernel,
    /// Stride of the first block of the stage.
    pub stride: usize,
    /// Expansion ratio (1 for `ds`).
    pub expand: f64,
    /// Output channels before width scaling.
    pub out_chs: usize,
    /// Squeeze-excitation ratio (0 = none); what it is a ratio of is the family's SE rule.
    pub se_ratio: f64,
    /// `n<act>`: the block's activation, overriding the family default.
    pub act: Option<Act>,
    /// `noskip` (`Some(false)`) / `skip` (`Some(true)`).
    pub skip: Option<bool>,
    /// `cc<n>`: CondConv experts before the family's experts multiplier (0 = plain convs).
    pub experts: usize,
    /// `fc<n>`: `er` only, the channels the expansion width is computed from (TF EdgeTPU's
    /// stem/first-block mismatch), before width scaling; 0 = the block's input.
    pub force_in_chs: usize,
}

impl FromStr for BlockString {
    type Err = ArchError;

    fn from_str(s: &str) -> Result<Self, ArchError> {
        let bad = |reason: String| ArchError::BadBlock {
            block: s.to_owned(),
            reason,
        };
        let mut tokens = s.split('_');
        let kind = match tokens.next() {
            Some("ds") => BlockKind::DepthwiseSeparable,
            Some("dsa") => BlockKind::DepthwiseSeparableAct,
            Some("ir") => BlockKind::InvertedResidual,
            Some("er") => BlockKind::EdgeResidual,
            Some("cn") => BlockKind::ConvBnAct,
            other => {
                return Err(bad(format!(
                    "unknown block type `{}` (expected ds, dsa, ir, er or cn)",
                    other.unwrap_or("")
                )))
            }
        };
        let (mut r, mut k, mut st, mut e, mut c) = (None, None, None, None, None);
        let mut b = BlockString {
            kind,
            repeats: 0,
            kernel: Kernel::Square(1),
            exp_kernel: Kernel::Square(1),
            pw_kernel: Kernel::Square(1),
            stride: 0,
            expand: 1.0,
            out_chs: 0,
            se_ratio: 0.0,
            act: None,
            skip: None,
            experts: 0,
            force_in_chs: 0,
        };
        for tok in tokens {
            let int = |v: &str| {
                v.parse::<usize>().map_err(|_| {
                    bad(format!(
                        "token `{tok}`: `{v}` is not a non-negative integer"
                    ))
                })
            };
            let float = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| {
                        bad(format!("token `{tok}`: `{v}` is not a non-negative number"))
                    })
            };
            let kernel = |v: &str| -> Result<Kernel, ArchError> {
                if v.contains('.') {
                    let ks = v.split('.').map(int).collect::<Result<Vec<_>, _>>()?;
                    if ks.len() > Bounds::MAX_KERNEL_SPLITS {
                        return Err(bad(format!(
                            "token `{tok}`: at most {} mixed kernel sizes",
                            Bounds::MAX_KERNEL_SPLITS
                        )));
                    }
                    Ok(Kernel::Mixed(ks))
                } else {
                    Ok(Kernel::Square(int(v)?))
                }
            };
            if tok == "noskip" {
                b.skip = Some(false);
                continue;
            }
            if tok == "skip" {
                b.skip = Some(true);
                continue;
            }
            if let Some(v) = tok.strip_prefix('n') {
                b.act = Some(match v {
                    "re" => Act::Relu,
                    "r6" => Act::Relu6,
                    "hs" => Act::HardSwish,
                    "sw" => Act::Silu,
                    _ => {
                        return Err(bad(format!(
                            "unsupported activation token `{tok}` (expected nre, nr6, nhs or nsw)"
                        )))
                    }
                });
                continue;
            }
            // timm: the key is everything before the first digit.
            let split = tok
                .find(|ch: char| ch.is_ascii_digit())
                .unwrap_or(tok.len());
            let (key, v) = tok.split_at(split);
            match key {
                "r" => r = Some(int(v)?),
                "k" => k = Some(kernel(v)?),
                "a" => b.exp_kernel = kernel(v)?,
                "p" => b.pw_kernel = kernel(v)?,
                "s" => st = Some(int(v)?),
                "e" => e = Some(float(v)?),
                "c" => c = Some(int(v)?),
                "se" => b.se_ratio = float(v)?,
                "cc" => b.experts = int(v)?,
                "fc" => b.force_in_chs = int(v)?,
                _ => return Err(bad(format!("unsupported token `{tok}`"))),
            }
        }
        let need = |v: Option<usize>, what: &str| v.ok_or_else(|| bad(format!("missing `{what}`")));
        b.repeats = need(r, "r<repeats>")?;
        b.kernel = k.ok_or_else(|| bad("missing `k<kernel>`".into()))?;
        b.stride = need(st, "s<stride>")?;
        b.expand = e.unwrap_or(1.0);
        b.out_chs = need(c, "c<channels>")?;
        for kernel in [&b.kernel, &b.exp_kernel, &b.pw_kernel] {
            let ks = match kernel {
                Kernel::Square(k) => std::slice::from_ref(k),
                Kernel::Mixed(ks) => ks.as_slice(),
            };
            if let Some(k) = ks.iter().find(|k| k.is_multiple_of(2)) {
                return Err(bad(format!("kernel {k} must be odd")));
            }
        }
        if b.stride == 0 || b.repeats == 0 || b.out_chs == 0 {
            return Err(bad("repeats, stride and channels must be positive".into()));
        }
        if matches!(
            kind,
            BlockKind::DepthwiseSeparable | BlockKind::DepthwiseSeparableAct | BlockKind::ConvBnAct
        ) && b.expand != 1.0
        {
            return Err(bad(format!(
                "a `{}` block cannot expand (e{})",
                kind.token(),
                b.expand
            )));
        }
        if b.experts > 0 && kind != BlockKind::InvertedResidual {
            return Err(bad("`cc` (CondConv experts) needs an `ir` block".into()));
        }
        if b.force_in_chs > 0 && kind != BlockKind::EdgeResidual {
            return Err(bad("`fc` needs an `er` block".into()));
        }
        if b.experts > 0
            && [&b.kernel, &b.exp_kernel, &b.pw_kernel]
                .iter()
                .any(|k| matches!(k, Kernel::Mixed(_)))
        {
            return Err(bad("CondConv with mixed kernels is not a timm block".into()));
        }
        b.check_bounds(s)?;
        Ok(b)
    }
}

impl BlockString {
    /// Checks every value against [`Bounds`]; `text` names the block string in the error.
    pub fn check_bounds(&self, text: &str) -> Result<(), ArchError> {
        // The bound is formatted only for an error: this runs for every block string resolved.
        let b = |ok, key, value: &dyn fmt::Display, bound: fmt::Arguments<'_>| {
            in_range(ok, text, key, value, bound)
        };
        b(
            (1..=Bounds::MAX_REPEATS).contains(&self.repeats),
            "r",
            &self.repeats,
            format_args!("1 <= r <= {}", Bounds::MAX_REPEATS),
        )?;
        for (key, kernel) in [
            ("k", &self.kernel),
            ("a", &self.exp_kernel),
            ("p", &self.pw_kernel),
        ] {
            let ks = match kernel {
                Kernel::Square(k) => std::slice::from_ref(k),
                Kernel::Mixed(ks) => ks.as_slice(),
            };
            b(
                ks.iter()
                    .all(|k| (1..=Bounds::MAX_KERNEL).contains(k) && k % 2 == 1)
                    && ks.len() <= Bounds::MAX_KERNEL_SPLITS,
                key,
                &KernelToken(kernel),
                format_args!(
                    "odd, 1 <= {key} <= {}, at most {} sizes",
                    Bounds::MAX_KERNEL,
                    Bounds::MAX_KERNEL_SPLITS
                ),
            )?;
        }
        b(
            (1..=Bounds::MAX_STRIDE).contains(&self.stride),
            "s",
            &self.stride,
            format_args!("1 <= s <= {}", Bounds::MAX_STRIDE),
        )?;
        b(
            self.expand.is_finite() && (0.0..=Bounds::MAX_EXPAND).contains(&self.expand),
            "e",
            &self.expand,
            format_args!("0 <= e <= {}", Bounds::MAX_EXPAND),
        )?;
        b(
            (1..=Bounds::MAX_BLOCK_CHANNELS).contains(&self.out_chs),
            "c",
            &self.out_chs,
            format_args!("1 <= c <= {}", Bounds::MAX_BLOCK_CHANNELS),
        )?;
        b(
            self.force_in_chs <= Bounds::MAX_BLOCK_CHANNELS,
            "fc",
            &self.force_in_chs,
            format_args!("0 <= fc <= {}", Bounds::MAX_BLOCK_CHANNELS),
        )?;
        b(
            self.experts <= Bounds::MAX_EXPERTS,
            "cc",
            &self.experts,
            format_args!("0 <= cc <= {}", Bounds::MAX_EXPERTS),
        )?;
        b(
            self.se_ratio.is_finite() && (0.0..=Bounds::MAX_SE).contains(&self.se_ratio),
            "se",
            &self.se_ratio,
            format_args!("0 <= se <= {}", Bounds::MAX_SE),
        )
    }
}

impl fmt::Display for BlockString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_r{}_k{}",
            self.kind.token(),
            self.repeats,
            KernelToken(&self.kernel)
        )?;
        if self.exp_kernel != Kernel::Square(1) {
            write!(f, "_a{}", KernelToken(&self.exp_kernel))?;
        }
        if self.pw_kernel != Kernel::Square(1) {
            write!(f, "_p{}", KernelToken(&self.pw_kernel))?;
        }
        write!(f, "_s{}_e{}_c{}", self.stride, self.expand, self.out_chs)?;
        if self.se_ratio > 0.0 {
            write!(f, "_se{}", self.se_ratio)?;
        }
        if self.experts > 0 {
            write!(f, "_cc{}", self.experts)?;
        }
        if self.force_in_chs > 0 {
            write!(f, "_fc{}", self.force_in_chs)?;
        }
        if let Some(t) = self.act.and_then(act_token) {
            write!(f, "_n{t}")?;
        }
        match self.skip {
            Some(false) => f.write_str("_noskip")?,
            Some(true) => f.write_str("_skip")?,
            None => {}
        }
        Ok(())
    }
}

/// What a registry entry (or `--arch`) says about an EfficientNet: the unresolved description.
///
/// Text form (for `--arch`): a variant name (`b0`…`b8`, `l2`, or `tf_efficientnet_b6`), optionally
/// followed by `:` and comma-separated overrides, or just overrides:
/// `efficientnet:width=0.05,depth=0.5,classes=10`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ArchConfig {
    /// Width (channel) multiplier.
    pub width: f64,
    /// Depth multiplier.
    pub depth: f64,
    /// Classifier outputs.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Input channels.
    #[serde(default = "default_in_chans")]
    pub in_chans: usize,
    /// Stem channels before width scaling.
    #[serde(default = "default_stem")]
    pub stem: usize,
    /// Head (`conv_head`) channels before width scaling.
    #[serde(default = "default_head")]
    pub head: usize,
    /// BatchNorm epsilon.
    #[serde(default = "default_bn_eps")]
    pub bn_eps: f64,
    /// Padding rule.
    #[serde(default = "default_padding")]
    pub padding: Padding,
    /// Stage block strings, before scaling.
    #[serde(default = "default_blocks")]
    pub blocks: Vec<String>,
    /// The timm generator whose builder options apply.
    #[serde(default = "default_family")]
    pub family: Family,
    /// CondConv experts multiplier (`experts_multiplier`).
    #[serde(default = "default_experts")]
    pub experts: usize,
}

fn default_family() -> Family {
    Family::EfficientNet
}
fn default_experts() -> usize {
    1
}

fn default_classes() -> usize {
    1000
}
fn default_in_chans() -> usize {
    3
}
fn default_stem() -> usize {
    32
}
fn default_head() -> usize {
    1280
}
fn default_bn_eps() -> f64 {
    BN_EPS_TF
}
fn default_padding() -> Padding {
    Padding::TfSame
}
fn default_blocks() -> Vec<String> {
    BASE_BLOCKS.iter().map(|s| s.to_string()).collect()
}

impl ArchConfig {
    /// A timm architecture by name ([`family::MEMBERS`]: `tf_efficientnet_b6`, `tf_mixnet_l`,
    /// `tf_mobilenetv3_large_100`, …), or an EfficientNet by its short name (`b0`…`b8`, `l2`).
    pub fn variant(name: &str) -> Option<ArchConfig> {
        if let Some(&(_, w, d)) = VARIANTS.iter().find(|(n, _, _)| *n == name) {
            return Some(ArchConfig {
                width: w,
                depth: d,
                ..ArchConfig::base()
            });
        }
        family::member(name).map(|&(_, fam, w, d, experts)| ArchConfig {
            width: w,
            depth: d,
            experts,
            ..ArchConfig::family(fam)
        })
    }

    /// Whether `name` is a short EfficientNet name (`b6`), read for compatibility: the
    /// registry and `--arch` now say `tf_efficientnet_b6`.
    pub fn is_short_name(name: &str) -> bool {
        VARIANTS.iter().any(|(n, _, _)| *n == name)
    }

    /// A family at width and depth 1 with its own stem, head and blocks.
    pub fn family(family: Family) -> ArchConfig {
        ArchConfig {
            stem: family.stem(),
            head: family.head(),
            blocks: family.blocks().iter().map(|s| s.to_string()).collect(),
            family,
            ..ArchConfig::base()
        }
    }

    /// The timm name of this configuration when it is a [`family::MEMBERS`] entry with another
    /// class count at most: (name, classes differ).
    pub fn timm_name(&self) -> Option<&'static str> {
        family::MEMBERS.iter().find_map(|&(name, ..)| {
            let v = ArchConfig::variant(name)?;
            (ArchConfig {
                classes: self.classes,
                ..v
            } == *self)
                .then_some(name)
        })
    }

    /// B0 with 1000 classes, TF padding and eps.
    pub fn base() -> ArchConfig {
        ArchConfig {
            width: 1.0,
            depth: 1.0,
            classes: default_classes(),
            in_chans: default_in_chans(),
            stem: default_stem(),
            head: default_head(),
            bn_eps: default_bn_eps(),
            padding: default_padding(),
            blocks: default_blocks(),
            family: default_family(),
            experts: default_experts(),
        }
    }

    /// Builds the network: channels, repeats, SE widths, timm and TF names.
    pub fn resolve(&self) -> Result<Network, ArchError> {
        super::timm_builder::build(self)
    }

    /// Checks every number against [`Bounds`]; the error names the key, the value and the bound.
    pub fn check_bounds(&self) -> Result<(), ArchError> {
        // The architecture's text and the bound are formatted only for an error.
        let b = |ok, key, value: &dyn fmt::Display, bound: fmt::Arguments<'_>| {
            if ok {
                return Ok(());
            }
            in_range(ok, &self.to_string(), key, value, bound)
        };
        b(
            self.width.is_finite() && self.width > 0.0 && self.width <= Bounds::MAX_WIDTH,
            "width",
            &format_args!("{:?}", self.width),
            format_args!("0 < width <= {}", Bounds::MAX_WIDTH),
        )?;
        b(
            self.depth.is_finite() && self.depth > 0.0 && self.depth <= Bounds::MAX_DEPTH,
            "depth",
            &format_args!("{:?}", self.depth),
            format_args!("0 < depth <= {}", Bounds::MAX_DEPTH),
        )?;
        b(
            (1..=Bounds::MAX_CLASSES).contains(&self.classes),
            "classes",
            &self.classes,
            format_args!("1 <= classes <= {}", Bounds::MAX_CLASSES),
        )?;
        b(
            (1..=Bounds::MAX_IN_CHANS).contains(&self.in_chans),
            "in-chans",
            &self.in_chans,
            format_args!("1 <= in-chans <= {}", Bounds::MAX_IN_CHANS),
        )?;
        b(
            (1..=Bounds::MAX_STEM).contains(&self.stem),
            "stem",
            &self.stem,
            format_args!("1 <= stem <= {}", Bounds::MAX_STEM),
        )?;
        b(
            (1..=Bounds::MAX_HEAD).contains(&self.head),
            "head",
            &self.head,
            format_args!("1 <= head <= {}", Bounds::MAX_HEAD),
        )?;
        b(
            self.bn_eps.is_finite() && self.bn_eps > 0.0 && self.bn_eps <= Bounds::MAX_BN_EPS,
            "bn-eps",
            &format_args!("{:?}", self.bn_eps),
            format_args!("0 < bn-eps <= {}", Bounds::MAX_BN_EPS),
        )?;
        b(
            (1..=Bounds::MAX_EXPERTS_MULTIPLIER).contains(&self.experts),
            "experts",
            &self.experts,
            format_args!("1 <= experts <= {}", Bounds::MAX_EXPERTS_MULTIPLIER),
        )?;
        b(
            (1..=Bounds::MAX_STAGES).contains(&self.blocks.len()),
            "stages",
            &self.blocks.len(),
            format_args!("1 <= stages <= {}", Bounds::MAX_STAGES),
        )
    }
}

impl FromStr for ArchConfig {
    type Err = ArchError;

    fn from_str(s: &str) -> Result<Self, ArchError> {
        let bad = |reason: String| ArchError::BadArch {
            arch: s.to_owned(),
            reason,
        };
        let (head, overrides) = match s.split_once(':') {
            Some((h, o)) => (h.trim(), o),
            None if s.contains('=') => ("efficientnet", s),
            None => (s.trim(), ""),
        };
        let mut cfg = if let Some(family) = Family::by_key(head) {
            ArchConfig::family(family)
        } else {
            ArchConfig::variant(head).ok_or_else(|| {
                bad(format!(
                    "unknown architecture `{head}` (expected a timm name such as tf_efficientnet_b6 or tf_mixnet_l, a family such as efficientnet or mixnet-m, or one of {})",
                    VARIANTS.iter().map(|v| v.0).collect::<Vec<_>>().join(", ")
                ))
            })?
        };
        // key → value as written, so a bound error quotes the value the user gave
        let mut given: Vec<(String, String)> = vec![];
        for kv in overrides
            .split(',')
            .map(str::trim)
            .filter(|kv| !kv.is_empty())
        {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("`{kv}` is not key=value")))?;
            let num = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| bad(format!("{k}: `{v}` is not a positive number")))
            };
            let int = |v: &str| {
                v.parse::<usize>()
                    .or_else(|e| match e.kind() {
                        // Too large for usize: certainly out of range, reported as such below.
                        std::num::IntErrorKind::PosOverflow => Ok(usize::MAX),
                        _ => Err(e),
                    })
                    .ok()
                    .filter(|x| *x > 0)
                    .ok_or_else(|| bad(format!("{k}: `{v}` is not a positive integer")))
            };
            let key = match k.trim() {
                "w" => "width",
                "d" => "depth",
                other => other,
            };
            given.retain(|(k, _)| *k != key);
            given.push((key.to_owned(), v.trim().to_owned()));
            match k.trim() {
                "width" | "w" => cfg.width = num(v)?,
                "depth" | "d" => cfg.depth = num(v)?,
                "classes" => cfg.classes = int(v)?,
                "in-chans" => cfg.in_chans = int(v)?,
                "stem" => cfg.stem = int(v)?,
                "head" => cfg.head = int(v)?,
                "bn-eps" => cfg.bn_eps = num(v)?,
                "experts" => cfg.experts = int(v)?,
                "padding" => {
                    cfg.padding = match v {
                        "tf-same" | "same" => Padding::TfSame,
                        "symmetric" => Padding::Symmetric,
                        _ => return Err(bad(format!("padding `{v}` (expected tf-same or symmetric)"))),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (expected width, depth, classes, in-chans, stem, head, bn-eps, padding, experts)"
                    )))
                }
            }
        }
        cfg.check_bounds().map_err(|e| match e {
            ArchError::OutOfRange {
                key, value, bound, ..
            } => ArchError::OutOfRange {
                arch: s.into(),
                key,
                value: given
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(value, |(_, v)| v.as_str().into()),
                bound,
            },
            other => other,
        })?;
        Ok(cfg)
    }
}

/// An EfficientNet prints as `efficientnet:width=…,depth=…,classes=…` (the form converted files'
/// provenance records); another family as its timm name when it is one
/// (`tf_mixnet_l`, `tf_mixnet_l:classes=10`), else as `<family>:width=…,depth=…,classes=…`.
impl fmt::Display for ArchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.family != Family::EfficientNet {
            if let Some(name) = self.timm_name() {
                f.write_str(name)?;
                if self.classes != default_classes() {
                    write!(f, ":classes={}", self.classes)?;
                }
                return Ok(());
            }
        }
        write!(
            f,
            "{}:width={},depth={},classes={}",
            self.family.key(),
            self.width,
            self.depth,
            self.classes
        )?;
        let base = ArchConfig::family(self.family);
        if self.experts != base.experts {
            write!(f, ",experts={}", self.experts)?;
        }
        if self.in_chans != base.in_chans {
            write!(f, ",in-chans={}", self.in_chans)?;
        }
        if self.stem != base.stem {
            write!(f, ",stem={}", self.stem)?;
        }
        if self.head != base.head {
            write!(f, ",head={}", self.head)?;
        }
        if self.bn_eps != base.bn_eps {
            write!(f, ",bn-eps={}", self.bn_eps)?;
        }
        if self.padding != base.padding {
            f.write_str(",padding=symmetric")?;
        }
        Ok(())
    }
}

/// timm's `make_divisible(v, divisor, min_value=None, round_limit)`.
///
/// Never panics or wraps: the float → integer conversion saturates and so does the final
/// addition (a value that large fails [`Bounds::MAX_CHANNELS`] in [`ArchConfig::resolve`]).
pub fn make_divisible(v: f64, divisor: usize, round_limit: f64) -> usize {
    let divisor = divisor.max(1);
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) as usize / divisor * divisor).max(divisor);
    if (new_v as f64) < round_limit * v {
        new_v = new_v.saturating_add(divisor);
    }
    new_v
}

/// timm's `round_channels(channels, multiplier, divisor=8, round_limit=0.9)`.
pub fn round_channels(channels: usize, multiplier: f64) -> usize {
    make_divisible(channels as f64 * multiplier, 8, 0.9)
}

/// Python's `round()` (half to even) for non-negative values (saturating).
pub(crate) fn round_half_even(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// timm's `_scale_stage_depth(..., depth_trunc='ceil')`: scales the repeats of one stage (which
/// may hold several block strings), distributing from the last string backwards.
pub fn scale_stage_depth(repeats: &[usize], depth: f64) -> Vec<usize> {
    scale_stage_depth_with(repeats, depth, false)
}

/// `_scale_stage_depth` with `depth_trunc='round'` when `round` (at least 1), else `'ceil'`.
pub fn scale_stage_depth_with(repeats: &[usize], depth: f64, round: bool) -> Vec<usize> {
    let mut num_repeat = repeats.iter().fold(0usize, |a, &r| a.saturating_add(r));
    let scaled = num_repeat as f64 * depth;
    let mut num_scaled = if round {
        round_half_even(scaled).max(1)
    } else {
        (scaled.ceil() as usize).max(1)
    };
    let mut out: Vec<usize> = repeats
        .iter()
        .rev()
        .map(|&r| {
            let rs = round_half_even(r as f64 / num_repeat as f64 * num_scaled as f64).max(1);
            num_repeat = num_repeat.saturating_sub(r);
            num_scaled = num_scaled.saturating_sub(rs);
            rs
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Op;

    #[test]
    fn block_string_round_trips() {
        for s in BASE_BLOCKS {
            let b: BlockString = s.parse().unwrap();
            assert_eq!(b.to_string(), *s);
        }
        let e = "ir_r2_kx_s2_e6_c24".parse::<BlockString>().unwrap_err();
        assert!(e.to_string().contains("`kx`"), "{e}");
        assert!("xx_r1_k3_s1_c8".parse::<BlockString>().is_err());
        assert!("ir_r1_k4_s1_c8".parse::<BlockString>().is_err());
    }

    /// timm's whole grammar parses and prints back; anything else is an error naming the token.
    #[test]
    fn timm_grammar_round_trips_and_names_bad_tokens() {
        for family in Family::ALL {
            for stage in family.blocks() {
                for s in stage.split(' ') {
                    let b: BlockString = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
                    let again: BlockString = b.to_string().parse().unwrap();
                    assert_eq!(again, b, "{s}");
                }
            }
        }
        let b: BlockString = "ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c40_se0.5_nsw"
            .parse()
            .unwrap();
        assert_eq!(b.kernel, Kernel::Mixed(vec![3, 5, 7]));
        assert_eq!(b.exp_kernel, Kernel::Mixed(vec![1, 1]));
        assert_eq!(b.act, Some(Act::Silu));
        let b: BlockString = "er_r1_k3_s1_e4_c24_fc24_noskip".parse().unwrap();
        assert_eq!((b.force_in_chs, b.skip), (24, Some(false)));
        let b: BlockString = "ir_r3_k5_s1_e6_c112_se0.25_cc4".parse().unwrap();
        assert_eq!(b.experts, 4);
        for (text, token) in [
            ("ir_r1_k3_s1_e6_c8_nmi", "`nmi`"),
            ("ir_r1_k3_s1_e6_c8_gs8", "`gs8`"),
            ("ir_r1_k3_s1_e6_c8_x1", "`x1`"),
            ("uir_r1_k3_s1_e6_c8", "`uir`"),
            ("ir_r1_k3.4_s1_e6_c8", "kernel 4"),
            ("ds_r1_k3_s1_e1_c8_cc4", "`cc`"),
        ] {
            let e = text.parse::<BlockString>().unwrap_err().to_string();
            assert!(e.contains(token), "{text}: {e}");
        }
    }

    #[test]
    fn timm_names_print_and_parse_back() {
        for (name, ..) in family::MEMBERS {
            let cfg = ArchConfig::variant(name).unwrap();
            assert_eq!(
                cfg.to_string().parse::<ArchConfig>().unwrap(),
                cfg,
                "{name}"
            );
        }
        let l = ArchConfig::variant("tf_mixnet_l").unwrap();
        assert_eq!(l.to_string(), "tf_mixnet_l");
        let ten = "tf_mixnet_l:classes=10".parse::<ArchConfig>().unwrap();
        assert_eq!((ten.classes, ten.width), (10, 1.3));
        assert_eq!(ten.to_string(), "tf_mixnet_l:classes=10");
        // EfficientNets keep the spelling converted files' provenance records.
        assert_eq!(
            ArchConfig::variant("tf_efficientnet_b6")
                .unwrap()
                .to_string(),
            "efficientnet:width=1.8,depth=2.6,classes=1000"
        );
        assert_eq!(
            "mixnet-m:width=1.3"
                .parse::<ArchConfig>()
                .unwrap()
                .to_string(),
            "tf_mixnet_l"
        );
    }

    #[test]
    fn rounding_matches_timm() {
        assert_eq!(round_channels(32, 1.8), 56);
        assert_eq!(round_channels(32, 0.05), 8);
        assert_eq!(round_channels(1280, 0.05), 64);
        assert_eq!(round_channels(1280, 4.3), 5504);
        assert_eq!(scale_stage_depth(&[3], 1.4), vec![5]);
        assert_eq!(scale_stage_depth(&[1], 0.5), vec![1]);
    }

    #[test]
    fn exact_parameter_counts() {
        let want = [
            ("b0", 5_288_548u64),
            ("b1", 7_794_184),
            ("b2", 9_109_994),
            ("b3", 12_233_232),
            ("b4", 19_341_616),
            ("b5", 30_389_784),
            ("b6", 43_040_704),
            ("b7", 66_347_960),
            ("l2", 480_309_308),
        ];
        for (v, n) in want {
            let net = ArchConfig::variant(v).unwrap().resolve().unwrap();
            assert_eq!(net.trainable_params(), n, "{v}");
        }
    }

    /// M5: every bound is enforced by the parser and again by `resolve` for configs built in
    /// code, as `OutOfRange` naming the key; nothing panics or allocates without limit.
    #[test]
    fn out_of_range_values_are_typed_errors() {
        let key = |r: Result<ArchConfig, ArchError>| match r {
            Err(ArchError::OutOfRange { key, .. }) => key,
            other => panic!("expected OutOfRange, got {other:?}"),
        };
        for (text, want) in [
            ("efficientnet:width=1e300", "width"),
            ("efficientnet:depth=1e12", "depth"),
            ("efficientnet:classes=18446744073709551615", "classes"),
            ("efficientnet:classes=1000001", "classes"),
            ("b0:in-chans=65", "in-chans"),
            ("b0:stem=4097", "stem"),
            ("b0:head=16385", "head"),
            ("b0:bn-eps=2", "bn-eps"),
        ] {
            assert_eq!(key(text.parse()), want, "{text}");
        }
        let resolved = |cfg: ArchConfig| match cfg.resolve() {
            Err(ArchError::OutOfRange { key, .. }) => key,
            other => panic!("expected OutOfRange, got {other:?}"),
        };
        let base = ArchConfig::base();
        for (cfg, want) in [
            (
                ArchConfig {
                    width: f64::MAX,
                    ..base.clone()
                },
                "width",
            ),
            (
                ArchConfig {
                    depth: f64::INFINITY,
                    ..base.clone()
                },
                "depth",
            ),
            (
                ArchConfig {
                    classes: usize::MAX,
                    ..base.clone()
                },
                "classes",
            ),
            (
                ArchConfig {
                    in_chans: 0,
                    ..base.clone()
                },
                "in-chans",
            ),
            (
                ArchConfig {
                    blocks: vec![],
                    ..base.clone()
                },
                "stages",
            ),
            (
                ArchConfig {
                    blocks: vec!["ir_r1_k3_s1_e6_c99999".into()],
                    ..base.clone()
                },
                "c",
            ),
            (
                ArchConfig {
                    blocks: vec!["ir_r33_k3_s1_e6_c8".into()],
                    ..base.clone()
                },
                "r",
            ),
            (
                ArchConfig {
                    blocks: vec!["ir_r32_k3_s1_e6_c8".into(); 16],
                    depth: 16.0,
                    ..base.clone()
                },
                "blocks after depth scaling",
            ),
        ] {
            assert_eq!(resolved(cfg), want);
        }
        // The largest description within the bounds resolves, and its counts fit.
        let max: ArchConfig =
            "efficientnet:width=16,depth=16,classes=1000000,in-chans=64,stem=4096,head=16384"
                .parse()
                .unwrap();
        let net = max.resolve().unwrap();
        assert!(net.trainable_params() < u64::MAX >> 8);
        assert_eq!(make_divisible(f64::MAX, 8, 0.9), usize::MAX); // saturates
        assert_eq!(make_divisible(1.0, 0, 0.9), 1);
    }

    #[test]
    fn tiny_matches_fixture_architecture() {
        let cfg: ArchConfig = "efficientnet:width=0.05,depth=0.5,classes=10"
            .parse()
            .unwrap();
        let net = cfg.resolve().unwrap();
        let Some(Op::Scope { body: stages, .. }) =
            net.ops.iter().find(|op| matches!(op, Op::Scope { .. }))
        else {
            panic!("no blocks scope");
        };
        let repeats: Vec<usize> = stages
            .iter()
            .map(|s| match s {
                Op::Scope { body, .. } => body.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(repeats, [1, 1, 1, 2, 2, 2, 1]);
        assert_eq!(net.conv("conv_stem").unwrap().out_chs, 8);
        assert_eq!(net.conv("conv_head").unwrap().out_chs, 64);
        assert_eq!(net.num_features(), 64);
        assert_eq!(net.block_count(), 10);
        assert_eq!(net.params().len(), 197);
        // blocks.5.1 (flat 8): 16 → 16 channels, SE width 4, with the residual.
        let se = net.conv("blocks.5.1.se.conv_reduce").unwrap();
        assert_eq!((se.in_chs, se.out_chs), (96, 4));
        let pwl = net.conv("blocks.5.1.conv_pwl").unwrap();
        assert_eq!(
            (pwl.out_chs, pwl.source.as_slice()),
            (16, ["blocks_8/conv2d_1".to_string()].as_slice())
        );
        let mut residuals = vec![];
        crate::arch::graph::visit(&net.ops, &mut |op| {
            if let Op::Scope { module, body } = op {
                if matches!(body.as_slice(), [Op::Residual(_)]) {
                    residuals.push(module.clone());
                }
            }
        });
        assert!(
            residuals.contains(&"blocks.5.1".to_string()),
            "{residuals:?}"
        );
        assert!(!residuals.contains(&"blocks.5.0".to_string()));
        assert_eq!(cfg.to_string().parse::<ArchConfig>().unwrap(), cfg);
    }
}
