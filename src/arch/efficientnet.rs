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

use super::graph::{Act, BatchNorm, Conv, Kernel, Linear, Network, Op, SqueezeExcite};
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
    /// Depthwise kernel: odd, `1 <= k <= 31`.
    pub const MAX_KERNEL: usize = 31;
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
fn in_range(
    ok: bool,
    arch: &str,
    key: &'static str,
    value: impl fmt::Display,
    bound: impl Into<String>,
) -> Result<(), ArchError> {
    if ok {
        Ok(())
    } else {
        Err(ArchError::OutOfRange {
            arch: arch.into(),
            key,
            value: value.to_string().into(),
            bound: bound.into().into(),
        })
    }
}

/// Block type of a block string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `ds`: depthwise-separable (dw → SE → pw), no expansion.
    DepthwiseSeparable,
    /// `ir`: inverted residual (pw expand → dw → SE → pw linear).
    InvertedResidual,
}

/// One stage description in timm's block-string grammar:
/// `<type>_r<repeats>_k<kernel>_s<stride>_e<expand>_c<out>[_se<ratio>][_noskip]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockString {
    /// `ds` or `ir`.
    pub kind: BlockKind,
    /// Repeats before depth scaling.
    pub repeats: usize,
    /// Depthwise kernel size (odd).
    pub kernel: usize,
    /// Stride of the first block of the stage.
    pub stride: usize,
    /// Expansion ratio (1 for `ds`).
    pub expand: f64,
    /// Output channels before width scaling.
    pub out_chs: usize,
    /// Squeeze-excitation ratio of the block's input channels (0 = none).
    pub se_ratio: f64,
    /// `noskip`: never add the residual.
    pub noskip: bool,
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
            Some("ir") => BlockKind::InvertedResidual,
            other => {
                return Err(bad(format!(
                    "unknown block type `{}` (expected `ds` or `ir`)",
                    other.unwrap_or("")
                )))
            }
        };
        let (mut r, mut k, mut st, mut e, mut c, mut se, mut noskip) =
            (None, None, None, None, None, 0.0, false);
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
            if tok == "noskip" {
                noskip = true;
            } else if let Some(v) = tok.strip_prefix("se") {
                se = float(v)?;
            } else if let Some(v) = tok.strip_prefix('r') {
                r = Some(int(v)?);
            } else if let Some(v) = tok.strip_prefix('k') {
                k = Some(int(v)?);
            } else if let Some(v) = tok.strip_prefix('s') {
                st = Some(int(v)?);
            } else if let Some(v) = tok.strip_prefix('e') {
                e = Some(float(v)?);
            } else if let Some(v) = tok.strip_prefix('c') {
                c = Some(int(v)?);
            } else {
                return Err(bad(format!("unsupported token `{tok}`")));
            }
        }
        let need = |v: Option<usize>, what: &str| v.ok_or_else(|| bad(format!("missing `{what}`")));
        let b = BlockString {
            kind,
            repeats: need(r, "r<repeats>")?,
            kernel: need(k, "k<kernel>")?,
            stride: need(st, "s<stride>")?,
            expand: e.unwrap_or(1.0),
            out_chs: need(c, "c<channels>")?,
            se_ratio: se,
            noskip,
        };
        if b.kernel.is_multiple_of(2) || b.kernel == 0 {
            return Err(bad(format!("kernel {} must be odd", b.kernel)));
        }
        if b.stride == 0 || b.repeats == 0 || b.out_chs == 0 {
            return Err(bad("repeats, stride and channels must be positive".into()));
        }
        if b.kind == BlockKind::DepthwiseSeparable && b.expand != 1.0 {
            return Err(bad(format!("a `ds` block cannot expand (e{})", b.expand)));
        }
        b.check_bounds(s)?;
        Ok(b)
    }
}

impl BlockString {
    /// Checks every value against [`Bounds`]; `text` names the block string in the error.
    pub fn check_bounds(&self, text: &str) -> Result<(), ArchError> {
        let b = |ok, key, value: &dyn fmt::Display, bound: String| {
            in_range(ok, text, key, value, bound)
        };
        b(
            (1..=Bounds::MAX_REPEATS).contains(&self.repeats),
            "r",
            &self.repeats,
            format!("1 <= r <= {}", Bounds::MAX_REPEATS),
        )?;
        b(
            (1..=Bounds::MAX_KERNEL).contains(&self.kernel) && self.kernel % 2 == 1,
            "k",
            &self.kernel,
            format!("odd, 1 <= k <= {}", Bounds::MAX_KERNEL),
        )?;
        b(
            (1..=Bounds::MAX_STRIDE).contains(&self.stride),
            "s",
            &self.stride,
            format!("1 <= s <= {}", Bounds::MAX_STRIDE),
        )?;
        b(
            self.expand.is_finite() && (0.0..=Bounds::MAX_EXPAND).contains(&self.expand),
            "e",
            &self.expand,
            format!("0 <= e <= {}", Bounds::MAX_EXPAND),
        )?;
        b(
            (1..=Bounds::MAX_BLOCK_CHANNELS).contains(&self.out_chs),
            "c",
            &self.out_chs,
            format!("1 <= c <= {}", Bounds::MAX_BLOCK_CHANNELS),
        )?;
        b(
            self.se_ratio.is_finite() && (0.0..=Bounds::MAX_SE).contains(&self.se_ratio),
            "se",
            &self.se_ratio,
            format!("0 <= se <= {}", Bounds::MAX_SE),
        )
    }
}

impl fmt::Display for BlockString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BlockKind::DepthwiseSeparable => "ds",
            BlockKind::InvertedResidual => "ir",
        };
        write!(
            f,
            "{kind}_r{}_k{}_s{}_e{}_c{}",
            self.repeats, self.kernel, self.stride, self.expand, self.out_chs
        )?;
        if self.se_ratio > 0.0 {
            write!(f, "_se{}", self.se_ratio)?;
        }
        if self.noskip {
            f.write_str("_noskip")?;
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
    /// A `tf_efficientnet_*` variant by short name (`b0`…`b8`, `l2`).
    pub fn variant(name: &str) -> Option<ArchConfig> {
        let name = name.strip_prefix("tf_efficientnet_").unwrap_or(name);
        VARIANTS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, w, d)| ArchConfig {
                width: w,
                depth: d,
                ..ArchConfig::base()
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
        }
    }

    /// Builds the network: channels, repeats, SE widths, timm and TF names.
    pub fn resolve(&self) -> Result<Network, ArchError> {
        build(self)
    }

    /// Checks every number against [`Bounds`]; the error names the key, the value and the bound.
    pub fn check_bounds(&self) -> Result<(), ArchError> {
        let arch = self.to_string();
        let b = |ok, key, value: &dyn fmt::Display, bound: String| {
            in_range(ok, &arch, key, value, bound)
        };
        b(
            self.width.is_finite() && self.width > 0.0 && self.width <= Bounds::MAX_WIDTH,
            "width",
            &format_args!("{:?}", self.width),
            format!("0 < width <= {}", Bounds::MAX_WIDTH),
        )?;
        b(
            self.depth.is_finite() && self.depth > 0.0 && self.depth <= Bounds::MAX_DEPTH,
            "depth",
            &format_args!("{:?}", self.depth),
            format!("0 < depth <= {}", Bounds::MAX_DEPTH),
        )?;
        b(
            (1..=Bounds::MAX_CLASSES).contains(&self.classes),
            "classes",
            &self.classes,
            format!("1 <= classes <= {}", Bounds::MAX_CLASSES),
        )?;
        b(
            (1..=Bounds::MAX_IN_CHANS).contains(&self.in_chans),
            "in-chans",
            &self.in_chans,
            format!("1 <= in-chans <= {}", Bounds::MAX_IN_CHANS),
        )?;
        b(
            (1..=Bounds::MAX_STEM).contains(&self.stem),
            "stem",
            &self.stem,
            format!("1 <= stem <= {}", Bounds::MAX_STEM),
        )?;
        b(
            (1..=Bounds::MAX_HEAD).contains(&self.head),
            "head",
            &self.head,
            format!("1 <= head <= {}", Bounds::MAX_HEAD),
        )?;
        b(
            self.bn_eps.is_finite() && self.bn_eps > 0.0 && self.bn_eps <= Bounds::MAX_BN_EPS,
            "bn-eps",
            &format_args!("{:?}", self.bn_eps),
            format!("0 < bn-eps <= {}", Bounds::MAX_BN_EPS),
        )?;
        b(
            (1..=Bounds::MAX_STAGES).contains(&self.blocks.len()),
            "stages",
            &self.blocks.len(),
            format!("1 <= stages <= {}", Bounds::MAX_STAGES),
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
        let mut cfg = if head == "efficientnet" {
            ArchConfig::base()
        } else {
            ArchConfig::variant(head).ok_or_else(|| {
                bad(format!(
                    "unknown variant `{head}` (expected efficientnet or one of {})",
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
                "padding" => {
                    cfg.padding = match v {
                        "tf-same" | "same" => Padding::TfSame,
                        "symmetric" => Padding::Symmetric,
                        _ => return Err(bad(format!("padding `{v}` (expected tf-same or symmetric)"))),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (expected width, depth, classes, in-chans, stem, head, bn-eps, padding)"
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

impl fmt::Display for ArchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "efficientnet:width={},depth={},classes={}",
            self.width, self.depth, self.classes
        )?;
        let base = ArchConfig::base();
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

/// Python's `round()` (half to even) for non-negative values.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc() - 0.5).abs() < f64::EPSILON && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r.max(0.0) as usize
}

/// timm's `_scale_stage_depth(..., depth_trunc='ceil')`: scales the repeats of one stage (which
/// may hold several block strings), distributing from the last string backwards.
pub fn scale_stage_depth(repeats: &[usize], depth: f64) -> Vec<usize> {
    let mut num_repeat = repeats.iter().fold(0usize, |a, &r| a.saturating_add(r));
    let mut num_scaled = ((num_repeat as f64 * depth).ceil() as usize).max(1);
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

/// Builds an EfficientNet [`Network`]: names every layer as timm does and its TF original as
/// tensorflow/tpu's `efficientnet_model.py` does (Keras auto-names, one flat block counter).
struct Builder<'c> {
    cfg: &'c ArchConfig,
    arch: String,
}

impl Builder<'_> {
    fn channels(&self, key: &'static str, n: usize) -> Result<usize, ArchError> {
        in_range(
            n <= Bounds::MAX_CHANNELS,
            &self.arch,
            key,
            n,
            format!("at most {} channels", Bounds::MAX_CHANNELS),
        )
        .map(|()| n)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        name: String,
        source: String,
        in_chs: usize,
        out_chs: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Conv {
        Conv {
            name,
            in_chs,
            out_chs,
            kernel: Kernel::Square(kernel),
            stride,
            groups,
            bias,
            padding: self.cfg.padding,
            source: Some(source),
        }
    }

    fn norm(&self, name: String, source: String, channels: usize) -> Op {
        Op::Norm(BatchNorm {
            name,
            channels,
            eps: self.cfg.bn_eps,
            source: Some(source),
        })
    }

    fn act(module: String, act: Act) -> Op {
        Op::Act {
            module: Some(module),
            act,
        }
    }
}

/// One block's numbers, before its layers are named.
struct BlockPlan {
    kind: BlockKind,
    in_chs: usize,
    out_chs: usize,
    kernel: usize,
    stride: usize,
    expand: f64,
    se_ratio: f64,
    noskip: bool,
}

impl Builder<'_> {
    /// A `ds` or `ir` block as timm 0.1 built it (module and activation names included), its TF
    /// names those of `MBConvBlock` number `flat` (`blocks_<flat>`).
    fn block(&self, p: &str, flat: usize, b: &BlockPlan) -> Result<Op, ArchError> {
        let tf = |layer: &str| format!("blocks_{flat}/{layer}");
        let mut body = vec![];
        let (mid, dw_bn, pj_conv, pj_bn, tf_bn) = match b.kind {
            BlockKind::DepthwiseSeparable => (b.in_chs, "bn1", "conv_pw", "bn2", 0),
            BlockKind::InvertedResidual => {
                let mid = self.channels(
                    "expanded channels",
                    make_divisible(b.in_chs as f64 * b.expand, 8, 0.9),
                )?;
                body.push(Op::Conv(self.conv(
                    format!("{p}.conv_pw"),
                    tf("conv2d"),
                    b.in_chs,
                    mid,
                    1,
                    1,
                    1,
                    false,
                )));
                body.push(self.norm(format!("{p}.bn1"), tf("tpu_batch_normalization"), mid));
                body.push(Builder::act(format!("{p}.act1"), Act::Silu));
                (mid, "bn2", "conv_pwl", "bn3", 1)
            }
        };
        let bn_tf = |i: usize| match i {
            0 => tf("tpu_batch_normalization"),
            i => tf(&format!("tpu_batch_normalization_{i}")),
        };
        let conv_tf = |i: usize| match i {
            0 => tf("conv2d"),
            i => tf(&format!("conv2d_{i}")),
        };
        body.push(Op::Conv(self.conv(
            format!("{p}.conv_dw"),
            tf("depthwise_conv2d"),
            mid,
            mid,
            b.kernel,
            b.stride,
            mid,
            false,
        )));
        body.push(self.norm(format!("{p}.{dw_bn}"), bn_tf(tf_bn), mid));
        let act = if tf_bn == 0 { "act1" } else { "act2" };
        body.push(Builder::act(format!("{p}.{act}"), Act::Silu));
        if b.se_ratio > 0.0 {
            // timm 0.1 / TF: the SE width is a fraction of the block's *input* channels.
            let rd = ((b.in_chs as f64 * b.se_ratio) as usize).max(1);
            body.push(Op::SqueezeExcite(SqueezeExcite {
                module: format!("{p}.se"),
                reduce: self.conv(
                    format!("{p}.se.conv_reduce"),
                    tf("se/conv2d"),
                    mid,
                    rd,
                    1,
                    1,
                    1,
                    true,
                ),
                act: Act::Silu,
                expand: self.conv(
                    format!("{p}.se.conv_expand"),
                    tf("se/conv2d_1"),
                    rd,
                    mid,
                    1,
                    1,
                    1,
                    true,
                ),
                gate: Act::Sigmoid,
            }));
        }
        body.push(Op::Conv(self.conv(
            format!("{p}.{pj_conv}"),
            conv_tf(tf_bn),
            mid,
            b.out_chs,
            1,
            1,
            1,
            false,
        )));
        body.push(self.norm(format!("{p}.{pj_bn}"), bn_tf(tf_bn + 1), b.out_chs));
        if b.kind == BlockKind::DepthwiseSeparable {
            // timm 0.1.x DepthwiseSeparableConv: `act2 = nn.Identity()` without a pw act.
            body.push(Builder::act(format!("{p}.act2"), Act::Identity));
        }
        let has_skip = b.stride == 1 && b.in_chs == b.out_chs && !b.noskip;
        Ok(Op::Scope {
            module: p.to_owned(),
            body: if has_skip {
                vec![Op::Residual(body)]
            } else {
                body
            },
        })
    }
}

/// Resolves a description into its [`Network`].
fn build(cfg: &ArchConfig) -> Result<Network, ArchError> {
    cfg.check_bounds()?;
    let bld = Builder {
        cfg,
        arch: cfg.to_string(),
    };
    let mut ops = vec![];
    let stem_chs = bld.channels("stem channels", round_channels(cfg.stem, cfg.width))?;
    ops.push(Op::Conv(bld.conv(
        "conv_stem".into(),
        "stem/conv2d".into(),
        cfg.in_chans,
        stem_chs,
        3,
        2,
        1,
        false,
    )));
    ops.push(bld.norm(
        "bn1".into(),
        "stem/tpu_batch_normalization".into(),
        stem_chs,
    ));
    ops.push(Builder::act("act1".into(), Act::Silu));

    let mut stages = vec![];
    let mut in_chs = stem_chs;
    let mut flat = 0;
    let mut total_blocks = 0usize;
    for (stage_idx, s) in cfg.blocks.iter().enumerate() {
        // A stage may hold several block strings separated by spaces or '+'.
        let strings: Vec<BlockString> = s
            .split(|c: char| c == '+' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        in_range(
            strings.len() <= Bounds::MAX_STAGES,
            &bld.arch,
            "block strings in a stage",
            strings.len(),
            format!("at most {}", Bounds::MAX_STAGES),
        )?;
        let repeats = scale_stage_depth(
            &strings.iter().map(|b| b.repeats).collect::<Vec<_>>(),
            cfg.depth,
        );
        total_blocks = repeats
            .iter()
            .fold(total_blocks, |a, &r| a.saturating_add(r));
        in_range(
            total_blocks <= Bounds::MAX_BLOCKS,
            &bld.arch,
            "blocks after depth scaling",
            total_blocks,
            format!("at most {}", Bounds::MAX_BLOCKS),
        )?;
        let mut blocks = vec![];
        for (bs, reps) in strings.iter().zip(repeats) {
            let out_chs = bld.channels("block channels", round_channels(bs.out_chs, cfg.width))?;
            for r in 0..reps {
                let plan = BlockPlan {
                    kind: bs.kind,
                    in_chs,
                    out_chs,
                    kernel: bs.kernel,
                    stride: if r == 0 { bs.stride } else { 1 },
                    expand: bs.expand,
                    se_ratio: bs.se_ratio,
                    noskip: bs.noskip,
                };
                let p = format!("blocks.{stage_idx}.{}", blocks.len());
                blocks.push(bld.block(&p, flat, &plan)?);
                flat += 1;
                in_chs = out_chs;
            }
        }
        stages.push(Op::Scope {
            module: format!("blocks.{stage_idx}"),
            body: blocks,
        });
    }
    ops.push(Op::Scope {
        module: "blocks".into(),
        body: stages,
    });

    let num_features = bld.channels("head channels", round_channels(cfg.head, cfg.width))?;
    ops.push(Op::Conv(bld.conv(
        "conv_head".into(),
        "head/conv2d".into(),
        in_chs,
        num_features,
        1,
        1,
        1,
        false,
    )));
    ops.push(bld.norm(
        "bn2".into(),
        "head/tpu_batch_normalization".into(),
        num_features,
    ));
    ops.push(Builder::act("act2".into(), Act::Silu));
    ops.push(Op::GlobalPool {
        module: "global_pool".into(),
    });
    ops.push(Op::Flatten { module: None });
    ops.push(Op::Linear(Linear {
        name: "classifier".into(),
        in_features: num_features,
        out_features: cfg.classes,
        source: Some("head/dense".into()),
    }));
    let net = Network {
        arch: bld.arch.clone(),
        in_chans: cfg.in_chans,
        ops,
    };
    // Every element count, summed exactly: the bounds keep this far below 2^64, and this
    // makes it a checked fact for every built network (so the saturating sums in
    // `trainable_params`, `buffer_elements` and `filesize` are exact).
    let total = net.params().iter().try_fold(0u64, |a, p| {
        p.shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .and_then(|n| a.checked_add(n))
    });
    in_range(
        total.is_some_and(|t| t <= u64::MAX >> 8),
        &bld.arch,
        "parameter elements",
        total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
        "at most 2^56",
    )?;
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (pwl.out_chs, pwl.source.as_deref()),
            (16, Some("blocks_8/conv2d_1"))
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
