//! Analytic operation counts over a resolved [`Spec`], under named counting conventions.
//!
//! Model cards print bare numbers. The same network at the same input gives four different
//! "FLOPs" depending on who counted, so every number here carries its [`Convention`]:
//!
//! | convention  | what is counted |
//! |-------------|-----------------|
//! | `macs`      | conv + linear multiply-accumulates (= ptflops aten backend = torch `FlopCounterMode` / 2) |
//! | `flops`     | 2 × `macs` (= torch `FlopCounterMode`) |
//! | `fvcore`    | `macs` + 2 per BatchNorm output element + one per global-pool input element |
//! | `thop-2020` | the timm 2021 model-index cards: thop 0.0.31 module hooks on a timm 0.4.x model |
//!
//! `thop-2020` rules per layer (from `metadata-conventions.md`): a conv counts
//! `h'·w'·Cout·(Cin/groups·k²)` plus `h'·w'·Cout` if it has a bias, except a conv with stride > 1
//! under TF 'same' padding (timm's `Conv2dSame` subclass, which thop did not recognise) counts 0;
//! BatchNorm counts `2·C·h·w`; the global average pool counts `C·(h·w + 1)`; the classifier
//! (timm's `Linear` subclass) counts 0; activations, the SE mean and gate, residual adds count 0.
//! Its input is not square: for a card `Image Size` S it is `S × floor(S·1546/1213)`, the docs'
//! example image (1546×1213) resized to short side S without a crop.
//!
//! Nothing here runs the model: a count walks the spec once ([`layers`]), so L2 at 800×1019
//! takes microseconds.
use std::fmt;
use std::str::FromStr;

use crate::arch::efficientnet::ConvNorm;
use crate::arch::{Padding, Spec};

/// Width:height of the image the `thop-2020` counts were taken on (the docs' `dog.jpg`).
pub const THOP_2020_IMAGE: (usize, usize) = (1546, 1213);

/// A named way of counting operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Convention {
    /// Conv + linear multiply-accumulates.
    #[serde(rename = "macs")]
    Macs,
    /// 2 × MACs.
    #[serde(rename = "flops")]
    Flops,
    /// fvcore: MACs + BatchNorm + global pool.
    #[serde(rename = "fvcore")]
    Fvcore,
    /// thop 0.0.31 on timm 0.4.x, as the 2021 timm model-index cards were produced.
    #[serde(rename = "thop-2020")]
    Thop2020,
}

impl Convention {
    /// Every convention, in display order.
    pub const ALL: [Convention; 4] = [
        Convention::Macs,
        Convention::Flops,
        Convention::Fvcore,
        Convention::Thop2020,
    ];

    /// Stable name (CLI, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Convention::Macs => "macs",
            Convention::Flops => "flops",
            Convention::Fvcore => "fvcore",
            Convention::Thop2020 => "thop-2020",
        }
    }

    /// One line for users.
    pub fn description(self) -> &'static str {
        match self {
            Convention::Macs => "conv + linear multiply-accumulates (ptflops aten, FlopCounterMode/2)",
            Convention::Flops => "2 x MACs (torch.utils.flop_counter.FlopCounterMode)",
            Convention::Fvcore => "fvcore: MACs + 2 per BatchNorm element + global-pool input",
            Convention::Thop2020 => {
                "timm 2021 cards: thop 0.0.31 MACs + bias + BN + pool, Conv2dSame(stride>1) and classifier skipped, input S x floor(S*1546/1213)"
            }
        }
    }

    /// The input a count under this convention uses for a documented image size `s`: the
    /// 1546:1213 rule for `thop-2020`, square otherwise.
    pub fn input_for_image_size(self, s: usize) -> InputSize {
        match self {
            Convention::Thop2020 => InputSize::thop_2020(s),
            _ => InputSize::square(s),
        }
    }
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A convention name that is not one of [`Convention::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown counting convention `{0}` (expected macs, flops, fvcore or thop-2020)")]
pub struct UnknownConvention(pub String);

impl FromStr for Convention {
    type Err = UnknownConvention;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Convention::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownConvention(s.to_owned()))
    }
}

/// An input height × width (the batch is 1 and the channels come from the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct InputSize {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl InputSize {
    /// `s × s`.
    pub fn square(s: usize) -> InputSize {
        InputSize {
            height: s,
            width: s,
        }
    }

    /// `s × floor(s·1546/1213)`: the docs' example image with its short side resized to `s`.
    pub fn thop_2020(s: usize) -> InputSize {
        let (w, h) = THOP_2020_IMAGE;
        InputSize {
            height: s,
            width: s * w / h,
        }
    }

    /// Height and width swapped.
    pub fn transposed(self) -> InputSize {
        InputSize {
            height: self.width,
            width: self.height,
        }
    }
}

impl fmt::Display for InputSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}

/// An input size that is not `HxW` with positive integers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input size `{0}`: expected HxW with positive integers, e.g. 224x224")]
pub struct BadInputSize(pub String);

impl FromStr for InputSize {
    type Err = BadInputSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadInputSize(s.to_owned());
        let (h, w) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let dim = |v: &str| v.trim().parse::<usize>().ok().filter(|&d| d > 0);
        Ok(InputSize {
            height: dim(h).ok_or_else(bad)?,
            width: dim(w).ok_or_else(bad)?,
        })
    }
}

/// What a counted layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// A 2-D convolution.
    Conv {
        /// timm builds it as `Conv2dSame` (TF 'same' padding with stride > 1), which thop 0.0.31
        /// did not hook.
        same_strided: bool,
    },
    /// A BatchNorm2d (inference).
    BatchNorm,
    /// The global average pool before the classifier.
    GlobalPool,
    /// The classifier.
    Linear,
}

/// One layer with its shapes and the quantities every convention is built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layer<'a> {
    /// timm module path (`blocks.1.0.conv_dw`, `global_pool`).
    pub name: &'a str,
    /// What it is.
    pub kind: LayerKind,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output `[C, H, W]`.
    pub output: [usize; 3],
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates (conv and linear; 0 otherwise).
    pub macs: u64,
    /// Bias additions (one per output element of a layer with a bias).
    pub bias_adds: u64,
}

impl Layer<'_> {
    /// This layer's contribution under `convention`.
    pub fn count(&self, convention: Convention) -> u64 {
        let [c, h, w] = self.input;
        let in_elems = (c * h * w) as u64;
        match (convention, self.kind) {
            (Convention::Macs, _) => self.macs,
            (Convention::Flops, _) => 2 * self.macs,
            (Convention::Fvcore, LayerKind::BatchNorm) => 2 * in_elems,
            (Convention::Fvcore, LayerKind::GlobalPool) => in_elems,
            (Convention::Fvcore, _) => self.macs,
            (Convention::Thop2020, LayerKind::Conv { same_strided: true }) => 0,
            (Convention::Thop2020, LayerKind::Conv { .. }) => self.macs + self.bias_adds,
            (Convention::Thop2020, LayerKind::BatchNorm) => 2 * in_elems,
            (Convention::Thop2020, LayerKind::GlobalPool) => c as u64 * (h * w + 1) as u64,
            (Convention::Thop2020, LayerKind::Linear) => 0,
        }
    }
}

/// Walks the layers of `spec` in execution order at `input`, with every shape resolved.
///
/// The SE convolutions see a 1×1 map (after the squeeze); everything else follows
/// [`Padding::resolve`].
pub fn layers(spec: &Spec, input: InputSize) -> Vec<Layer<'_>> {
    let mut out = Vec::with_capacity(8 + 12 * spec.blocks().count());
    let mut shape = [spec.config.in_chans, input.height, input.width];
    shape = conv_norm(&mut out, &spec.stem, shape);
    for block in spec.blocks() {
        if let Some(e) = &block.expand {
            shape = conv_norm(&mut out, e, shape);
        }
        shape = conv_norm(&mut out, &block.depthwise, shape);
        if let Some(se) = &block.se {
            let squeezed = push_conv(&mut out, &se.reduce, [shape[0], 1, 1]);
            push_conv(&mut out, &se.expand, squeezed);
        }
        shape = conv_norm(&mut out, &block.project, shape);
    }
    shape = conv_norm(&mut out, &spec.head, shape);
    out.push(Layer {
        name: "global_pool",
        kind: LayerKind::GlobalPool,
        input: shape,
        output: [shape[0], 1, 1],
        params: 0,
        macs: 0,
        bias_adds: 0,
    });
    let fc = &spec.classifier;
    out.push(Layer {
        name: &fc.name,
        kind: LayerKind::Linear,
        input: [fc.in_features, 1, 1],
        output: [fc.out_features, 1, 1],
        params: (fc.in_features * fc.out_features + fc.out_features) as u64,
        macs: (fc.in_features * fc.out_features) as u64,
        bias_adds: fc.out_features as u64,
    });
    out
}

fn conv_norm<'a>(out: &mut Vec<Layer<'a>>, cn: &'a ConvNorm, input: [usize; 3]) -> [usize; 3] {
    let next = push_conv(out, &cn.conv, input);
    push_bn(out, &cn.bn, next);
    next
}

fn push_conv<'a>(
    out: &mut Vec<Layer<'a>>,
    conv: &'a crate::arch::Conv,
    input: [usize; 3],
) -> [usize; 3] {
    let (h, w) = conv.output_hw(input[1], input[2]);
    let output = [conv.out_chs, h, w];
    let weight = (conv.out_chs * (conv.in_chs / conv.groups) * conv.kernel * conv.kernel) as u64;
    let bias = if conv.bias { conv.out_chs as u64 } else { 0 };
    out.push(Layer {
        name: &conv.name,
        kind: LayerKind::Conv {
            same_strided: conv.padding == Padding::TfSame && conv.stride > 1,
        },
        input,
        output,
        params: weight + bias,
        macs: conv.macs(h, w),
        bias_adds: bias * (h * w) as u64,
    });
    output
}

fn push_bn<'a>(out: &mut Vec<Layer<'a>>, bn: &'a crate::arch::BatchNorm, input: [usize; 3]) {
    out.push(Layer {
        name: &bn.name,
        kind: LayerKind::BatchNorm,
        input,
        output: input,
        params: 2 * bn.channels as u64,
        macs: 0,
        bias_adds: 0,
    });
}

/// Total under `convention` at `input`.
pub fn count(spec: &Spec, convention: Convention, input: InputSize) -> u64 {
    layers(spec, input)
        .iter()
        .map(|l| l.count(convention))
        .sum()
}

/// One convention's total at one input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// How it was counted.
    pub convention: Convention,
    /// At which input.
    pub input: InputSize,
    /// The total.
    pub value: u64,
}

/// Every convention's total, each at the input the convention uses for image size `s`
/// (square, or the 1546:1213 rule for `thop-2020`), or all at `fixed` when given.
pub fn count_all(spec: &Spec, image_size: usize, fixed: Option<InputSize>) -> Vec<Count> {
    Convention::ALL
        .into_iter()
        .map(|convention| {
            let input = fixed.unwrap_or_else(|| convention.input_for_image_size(image_size));
            Count {
                convention,
                input,
                value: count(spec, convention, input),
            }
        })
        .collect()
}

/// A documented FLOPs value checked against the card convention.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlopsCheck {
    /// The card's number.
    pub documented: u64,
    /// The card's `Image Size`.
    pub image_size: usize,
    /// `thop-2020` at the rule's input.
    pub expected: Count,
    /// `expected.value == documented`.
    pub passed: bool,
    /// When it failed: every convention × input candidate (square, the 1546:1213 rule, its
    /// transpose), nearest first. Empty when it passed.
    pub nearest: Vec<Candidate>,
}

/// One way the documented number might have been counted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Candidate {
    /// Convention and input.
    pub count: Count,
    /// `value - documented`.
    pub difference: i128,
    /// `difference / documented`.
    pub relative: f64,
}

/// Checks a card's FLOPs: passes when `thop-2020` at `S × floor(S·1546/1213)` equals it exactly.
/// Otherwise lists which convention and input size come nearest.
pub fn check_flops(spec: &Spec, documented: u64, image_size: usize) -> FlopsCheck {
    let input = InputSize::thop_2020(image_size);
    let expected = Count {
        convention: Convention::Thop2020,
        input,
        value: count(spec, Convention::Thop2020, input),
    };
    let passed = expected.value == documented;
    let mut nearest = vec![];
    if !passed {
        let inputs = [
            InputSize::square(image_size),
            InputSize::thop_2020(image_size),
            InputSize::thop_2020(image_size).transposed(),
        ];
        for input in inputs {
            let walked = layers(spec, input);
            for convention in Convention::ALL {
                let value: u64 = walked.iter().map(|l| l.count(convention)).sum();
                let difference = value as i128 - documented as i128;
                nearest.push(Candidate {
                    count: Count {
                        convention,
                        input,
                        value,
                    },
                    difference,
                    relative: if documented == 0 {
                        f64::INFINITY
                    } else {
                        difference as f64 / documented as f64
                    },
                });
            }
        }
        nearest.sort_by_key(|c| (c.difference.unsigned_abs(), c.count.convention));
    }
    FlopsCheck {
        documented,
        image_size,
        expected,
        passed,
        nearest,
    }
}

/// The card's rounding of a parameter count: `int(round(n / 1e6, 2) * 1e6)` in IEEE doubles,
/// with Python's `round` (correctly rounded decimal rounding of the double, ties to even).
pub fn card_rounded_params(n: u64) -> u64 {
    let millions = n as f64 / 1e6;
    (python_round_2(millions) * 1e6).trunc() as u64
}

/// Python's `round(x, 2)` for finite `x >= 0`: the double nearest to the decimal obtained by
/// rounding the *exact* binary value of `x` to 2 places, ties to even.
///
/// Exact: `x = m·2^e`, so `100·x = 100·m / 2^-e` is compared against the half with integers.
fn python_round_2(x: f64) -> f64 {
    if !(x.is_finite() && x >= 0.0) || x >= (1u64 << 52) as f64 {
        return x;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mantissa, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let scaled = mantissa as u128 * 100;
    let q = if e >= 0 {
        scaled << e
    } else {
        let k = (-e) as u32;
        if k >= 127 {
            0
        } else {
            let q = scaled >> k;
            let rem = scaled & ((1u128 << k) - 1);
            let half = 1u128 << (k - 1);
            if rem > half || (rem == half && q % 2 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    q as f64 / 100.0
}

/// How a documented parameter count relates to the exact one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamsOutcome {
    /// The card prints the exact count.
    Exact,
    /// The card prints the count rounded by the rule (to 10 000).
    Rounded,
    /// The rule reproduces the card, but the rule's float arithmetic lands just below the decimal
    /// rounding (b7: `66.35 · 1e6 = 66349999.99999999`, truncated to 66349999). Not a
    /// different model.
    FloatArtefact {
        /// What decimal rounding to 10 000 gives (66 350 000 for b7).
        decimal: u64,
    },
    /// Neither the exact count nor the rule gives the card's number.
    Mismatch,
}

impl ParamsOutcome {
    /// Whether the card agrees with the spec.
    pub fn passed(self) -> bool {
        !matches!(self, ParamsOutcome::Mismatch)
    }
}

impl fmt::Display for ParamsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsOutcome::Exact => f.write_str("exact count"),
            ParamsOutcome::Rounded => f.write_str("int(round(n/1e6, 2)*1e6) reproduces it"),
            ParamsOutcome::FloatArtefact { decimal } => write!(
                f,
                "float artefact of int(round(n/1e6, 2)*1e6): the product lands just below {decimal} and int() truncates"
            ),
            ParamsOutcome::Mismatch => f.write_str("neither the exact count nor the card's rounding gives it"),
        }
    }
}

/// A documented parameter count checked against the spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamsCheck {
    /// Exact trainable parameters.
    pub exact: u64,
    /// Buffer elements (BN running statistics), not part of "Parameters".
    pub buffers: u64,
    /// The card rule applied to `exact`.
    pub rounded: u64,
    /// The card's number.
    pub documented: u64,
    /// Verdict.
    pub outcome: ParamsOutcome,
}

/// Checks a card's `Parameters` against the exact trainable count under the card's rounding.
pub fn check_params(spec: &Spec, documented: u64) -> ParamsCheck {
    let exact = spec.trainable_params();
    let rounded = card_rounded_params(exact);
    let decimal = (exact + 5_000) / 10_000 * 10_000;
    let outcome = if documented == exact {
        ParamsOutcome::Exact
    } else if documented == rounded && rounded == decimal {
        ParamsOutcome::Rounded
    } else if documented == rounded {
        ParamsOutcome::FloatArtefact { decimal }
    } else {
        ParamsOutcome::Mismatch
    };
    ParamsCheck {
        exact,
        buffers: spec.buffer_elements(),
        rounded,
        documented,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_matches_cpython() {
        // Values checked against CPython 3.11's round(x, 2).
        assert_eq!(python_round_2(66.34796), 66.35);
        assert_eq!(python_round_2(0.125), 0.12);
        assert_eq!(python_round_2(0.375), 0.38);
        assert_eq!(python_round_2(2.675), 2.67); // 2.675 is 2.67499999… in binary
        assert_eq!(python_round_2(5.288548), 5.29);
    }

    #[test]
    fn b7_rule_is_a_float_artefact() {
        assert_eq!(card_rounded_params(66_347_960), 66_349_999);
        assert_eq!(card_rounded_params(5_288_548), 5_290_000);
    }

    #[test]
    fn input_sizes() {
        assert_eq!(
            InputSize::thop_2020(224),
            InputSize {
                height: 224,
                width: 285
            }
        );
        assert_eq!(InputSize::thop_2020(800).width, 1019);
        assert_eq!(
            "224x285".parse::<InputSize>().unwrap(),
            InputSize::thop_2020(224)
        );
        assert!("224".parse::<InputSize>().is_err());
        assert!("0x3".parse::<InputSize>().is_err());
        assert_eq!(
            "thop-2020".parse::<Convention>().unwrap(),
            Convention::Thop2020
        );
        assert!("thop".parse::<Convention>().is_err());
    }
}
