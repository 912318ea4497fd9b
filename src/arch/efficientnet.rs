//! EfficientNet as timm builds its `tf_efficientnet_*` models, resolved into a [`Spec`].
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
use std::fmt;
use std::str::FromStr;

use super::{BatchNorm, Conv, Linear, Padding, ParamSpec};

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
        Ok(b)
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

    /// Resolves channels, repeats, SE widths and names.
    pub fn resolve(&self) -> Result<Spec, ArchError> {
        Spec::resolve(self)
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
                    .ok()
                    .filter(|x| *x > 0)
                    .ok_or_else(|| bad(format!("{k}: `{v}` is not a positive integer")))
            };
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
pub fn make_divisible(v: f64, divisor: usize, round_limit: f64) -> usize {
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) as usize / divisor * divisor).max(divisor);
    if (new_v as f64) < round_limit * v {
        new_v += divisor;
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
    let mut num_repeat: usize = repeats.iter().sum();
    let mut num_scaled = ((num_repeat as f64 * depth).ceil() as usize).max(1);
    let mut out: Vec<usize> = repeats
        .iter()
        .rev()
        .map(|&r| {
            let rs = round_half_even(r as f64 / num_repeat as f64 * num_scaled as f64).max(1);
            num_repeat -= r;
            num_scaled = num_scaled.saturating_sub(rs);
            rs
        })
        .collect();
    out.reverse();
    out
}

/// Conv → BatchNorm (→ SiLU when `act`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConvNorm {
    /// The convolution.
    pub conv: Conv,
    /// The normalisation after it.
    pub bn: BatchNorm,
    /// Whether SiLU follows the BN.
    pub act: bool,
}

/// Squeeze-excitation: global mean → `reduce` (1×1, bias) → SiLU → `expand` (1×1, bias) → sigmoid → scale.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SqueezeExcite {
    /// `se.conv_reduce`: channels → width.
    pub reduce: Conv,
    /// `se.conv_expand`: width → channels.
    pub expand: Conv,
}

/// One resolved block.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Block {
    /// `ds` or `ir`.
    pub kind: BlockKind,
    /// timm stage index (`blocks.<stage>`).
    pub stage: usize,
    /// Index within the stage (`blocks.<stage>.<index>`).
    pub index: usize,
    /// Flat position over all blocks: TF's `blocks_<n>`.
    pub flat_index: usize,
    /// Input channels.
    pub in_chs: usize,
    /// Channels inside the block (after expansion).
    pub mid_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// SE width, if the block has SE.
    pub se_chs: Option<usize>,
    /// Whether the input is added to the output.
    pub has_skip: bool,
    /// IR only: `conv_pw` + `bn1` + SiLU.
    pub expand: Option<ConvNorm>,
    /// `conv_dw` + `bn1` (ds) / `bn2` (ir) + SiLU.
    pub depthwise: ConvNorm,
    /// `se.*`.
    pub se: Option<SqueezeExcite>,
    /// `conv_pw` + `bn2` (ds) / `conv_pwl` + `bn3` (ir), no activation.
    pub project: ConvNorm,
}

impl Block {
    /// Parameters in timm `state_dict()` order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        if let Some(e) = &self.expand {
            v.extend(e.conv.params());
            v.extend(e.bn.params());
        }
        v.extend(self.depthwise.conv.params());
        v.extend(self.depthwise.bn.params());
        if let Some(se) = &self.se {
            v.extend(se.reduce.params());
            v.extend(se.expand.params());
        }
        v.extend(self.project.conv.params());
        v.extend(self.project.bn.params());
        v
    }

    /// The timm module prefix, `blocks.<stage>.<index>`.
    pub fn prefix(&self) -> String {
        format!("blocks.{}.{}", self.stage, self.index)
    }
}

/// A fully resolved EfficientNet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Spec {
    /// The description it was resolved from.
    #[serde(skip)]
    pub config: ArchConfig,
    /// `conv_stem` + `bn1` + SiLU.
    pub stem: ConvNorm,
    /// Stages of blocks.
    pub stages: Vec<Vec<Block>>,
    /// `conv_head` + `bn2` + SiLU.
    pub head: ConvNorm,
    /// `classifier`.
    pub classifier: Linear,
}

impl Spec {
    /// Resolves a description.
    pub fn resolve(cfg: &ArchConfig) -> Result<Spec, ArchError> {
        let bad = |reason: String| ArchError::BadArch {
            arch: cfg.to_string(),
            reason,
        };
        if !(cfg.width.is_finite() && cfg.width > 0.0 && cfg.depth.is_finite() && cfg.depth > 0.0) {
            return Err(bad("width and depth multipliers must be positive".into()));
        }
        if cfg.blocks.is_empty() || cfg.classes == 0 || cfg.in_chans == 0 {
            return Err(bad(
                "needs at least one stage, one class and one input channel".into(),
            ));
        }
        let pad = cfg.padding;
        let conv = |name: String, in_chs, out_chs, kernel, stride, groups, bias| Conv {
            name,
            in_chs,
            out_chs,
            kernel,
            stride,
            groups,
            bias,
            padding: pad,
        };
        let conv_norm = |conv: Conv, bn_name: String, act| {
            let channels = conv.out_chs;
            ConvNorm {
                conv,
                bn: BatchNorm {
                    name: bn_name,
                    channels,
                    eps: cfg.bn_eps,
                },
                act,
            }
        };

        let stem_chs = round_channels(cfg.stem, cfg.width);
        let stem = conv_norm(
            conv("conv_stem".into(), cfg.in_chans, stem_chs, 3, 2, 1, false),
            "bn1".into(),
            true,
        );

        let mut stages = vec![];
        let mut in_chs = stem_chs;
        let mut flat = 0;
        for (stage_idx, s) in cfg.blocks.iter().enumerate() {
            // A stage may hold several block strings separated by spaces or '+'.
            let strings: Vec<BlockString> = s
                .split(|c: char| c == '+' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let repeats = scale_stage_depth(
                &strings.iter().map(|b| b.repeats).collect::<Vec<_>>(),
                cfg.depth,
            );
            let mut blocks = vec![];
            for (bs, reps) in strings.iter().zip(repeats) {
                let out_chs = round_channels(bs.out_chs, cfg.width);
                for r in 0..reps {
                    let index = blocks.len();
                    let stride = if r == 0 { bs.stride } else { 1 };
                    let p = format!("blocks.{stage_idx}.{index}");
                    let se_chs = (bs.se_ratio > 0.0)
                        .then(|| ((in_chs as f64 * bs.se_ratio) as usize).max(1));
                    let (expand, mid_chs, dw_bn, pj_conv, pj_bn) = match bs.kind {
                        BlockKind::DepthwiseSeparable => (None, in_chs, "bn1", "conv_pw", "bn2"),
                        BlockKind::InvertedResidual => {
                            let mid = make_divisible(in_chs as f64 * bs.expand, 8, 0.9);
                            let e = conv_norm(
                                conv(format!("{p}.conv_pw"), in_chs, mid, 1, 1, 1, false),
                                format!("{p}.bn1"),
                                true,
                            );
                            (Some(e), mid, "bn2", "conv_pwl", "bn3")
                        }
                    };
                    let depthwise = conv_norm(
                        conv(
                            format!("{p}.conv_dw"),
                            mid_chs,
                            mid_chs,
                            bs.kernel,
                            stride,
                            mid_chs,
                            false,
                        ),
                        format!("{p}.{dw_bn}"),
                        true,
                    );
                    let se = se_chs.map(|rd| SqueezeExcite {
                        reduce: conv(format!("{p}.se.conv_reduce"), mid_chs, rd, 1, 1, 1, true),
                        expand: conv(format!("{p}.se.conv_expand"), rd, mid_chs, 1, 1, 1, true),
                    });
                    let project = conv_norm(
                        conv(format!("{p}.{pj_conv}"), mid_chs, out_chs, 1, 1, 1, false),
                        format!("{p}.{pj_bn}"),
                        false,
                    );
                    blocks.push(Block {
                        kind: bs.kind,
                        stage: stage_idx,
                        index,
                        flat_index: flat,
                        in_chs,
                        mid_chs,
                        out_chs,
                        se_chs,
                        has_skip: stride == 1 && in_chs == out_chs && !bs.noskip,
                        expand,
                        depthwise,
                        se,
                        project,
                    });
                    flat += 1;
                    in_chs = out_chs;
                }
            }
            stages.push(blocks);
        }

        let num_features = round_channels(cfg.head, cfg.width);
        let head = conv_norm(
            conv("conv_head".into(), in_chs, num_features, 1, 1, 1, false),
            "bn2".into(),
            true,
        );
        let classifier = Linear {
            name: "classifier".into(),
            in_features: num_features,
            out_features: cfg.classes,
        };
        Ok(Spec {
            config: cfg.clone(),
            stem,
            stages,
            head,
            classifier,
        })
    }

    /// All blocks in order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.stages.iter().flatten()
    }

    /// Every state-dict entry in timm `state_dict()` order (without `num_batches_tracked`).
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = self.stem.conv.params();
        v.extend(self.stem.bn.params());
        for b in self.blocks() {
            v.extend(b.params());
        }
        v.extend(self.head.conv.params());
        v.extend(self.head.bn.params());
        v.extend(self.classifier.params());
        v
    }

    /// Exact trainable parameter count (buffers excluded).
    pub fn trainable_params(&self) -> u64 {
        self.params()
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(ParamSpec::numel)
            .sum()
    }

    /// Elements in buffers (BN running statistics).
    pub fn buffer_elements(&self) -> u64 {
        self.params()
            .iter()
            .filter(|p| !p.kind.is_trainable())
            .map(ParamSpec::numel)
            .sum()
    }
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
            let spec = ArchConfig::variant(v).unwrap().resolve().unwrap();
            assert_eq!(spec.trainable_params(), n, "{v}");
        }
    }

    #[test]
    fn tiny_matches_fixture_architecture() {
        let cfg: ArchConfig = "efficientnet:width=0.05,depth=0.5,classes=10"
            .parse()
            .unwrap();
        let spec = cfg.resolve().unwrap();
        let repeats: Vec<usize> = spec.stages.iter().map(Vec::len).collect();
        assert_eq!(repeats, [1, 1, 1, 2, 2, 2, 1]);
        assert_eq!(spec.stem.conv.out_chs, 8);
        assert_eq!(spec.head.conv.out_chs, 64);
        assert_eq!(spec.params().len(), 197);
        let b8 = spec.blocks().nth(8).unwrap();
        assert_eq!(
            (b8.in_chs, b8.out_chs, b8.se_chs, b8.has_skip),
            (16, 16, Some(4), true)
        );
        assert_eq!(cfg.to_string().parse::<ArchConfig>().unwrap(), cfg);
    }
}
