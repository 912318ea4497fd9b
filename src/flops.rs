//! Analytic operation counts over a built [`Network`], under named counting conventions.
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
//!
//! CondConv (timm `CondConv2d`, `tf_efficientnet_cc_*`): `macs` counts each expert conv plus its
//! expert mixing (`routing [1, E] @ weight [E, P]`, a matmul torch counts) and the routing
//! `Linear` (`in · E`), which equals `FlopCounterMode` / 2 (checked against timm in
//! `tests/timm_arch.rs`); `fvcore` adds the routing's functional mean (one per input element);
//! `thop-2020` counts 0 for `CondConv2d` (not a module thop 0.0.31 hooked) and `in · E` for the
//! routing's plain `nn.Linear`. The CondConv `thop-2020` and `fvcore` rules follow those tools'
//! documented hooks and have not been checked against a card.
//! Its input is not square: for a card `Image Size` S it is `S × floor(S·1546/1213)`, the docs'
//! example image (1546×1213) resized to short side S without a crop.
//!
//! Nothing here runs the model: a count walks the graph once ([`layers`]), so L2 at 800×1019
//! takes microseconds.
//!
//! Every product and sum is checked: an input size whose counts would not fit in 64 bits is a
//! [`FlopsError::Overflow`] naming the layer, never a wrapped number or a panic. Parsed input
//! sides are at most [`MAX_INPUT_SIDE`].
use std::fmt;
use std::str::FromStr;

use crate::arch::{Conv, Network, Op, Padding};

/// Width:height of the image the `thop-2020` counts were taken on (the docs' `dog.jpg`).
pub const THOP_2020_IMAGE: (usize, usize) = (1546, 1213);

/// Largest input height or width accepted from text (`--size`, `--image-size`, a card's
/// `Image Size`): far beyond any EfficientNet input (L2 at 800), small enough to reject
/// nonsense early.
pub const MAX_INPUT_SIDE: usize = 1 << 16;

/// A count that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlopsError {
    /// A layer's count (or a running total) does not fit in 64 bits at this input size.
    #[error("counting `{layer}` at input {input} overflows 64 bits; use a smaller input size")]
    Overflow {
        /// The layer (or `total`).
        layer: String,
        /// The input size.
        input: InputSize,
    },
}

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

    /// `s × floor(s·1546/1213)`: the docs' example image with its short side resized to `s`
    /// (computed exactly; a width beyond `usize` saturates, and counting at it then fails).
    pub fn thop_2020(s: usize) -> InputSize {
        let (w, h) = THOP_2020_IMAGE;
        let width = (s as u128 * w as u128 / h as u128).min(usize::MAX as u128) as usize;
        InputSize { height: s, width }
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

/// An input size that is not `HxW` with positive integers up to [`MAX_INPUT_SIDE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input size `{0}`: expected HxW with integers from 1 to 65536, e.g. 224x224")]
pub struct BadInputSize(pub String);

impl FromStr for InputSize {
    type Err = BadInputSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadInputSize(s.to_owned());
        let (h, w) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let dim = |v: &str| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|d| (1..=MAX_INPUT_SIDE).contains(d))
        };
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
    /// A CondConv (timm `CondConv2d`, which thop 0.0.31 did not hook): its MACs include the
    /// expert mixing matmul.
    CondConv,
    /// The global average pool before the classifier.
    GlobalPool,
    /// The classifier.
    Linear,
    /// A CondConv routing: the functional mean of the block input (`input`), then `routing_fn`
    /// (a plain `nn.Linear`, which thop counted as `in · out`, without its bias).
    Routing,
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
    /// This layer's contribution under `convention`. Exact for every layer [`layers`] returns
    /// (it checks that each count fits); saturating, never wrapping, for hand-made layers.
    pub fn count(&self, convention: Convention) -> u64 {
        self.checked_count(convention).unwrap_or(u64::MAX)
    }

    /// This layer's contribution under `convention`, `None` when it does not fit in 64 bits.
    pub fn checked_count(&self, convention: Convention) -> Option<u64> {
        let [c, h, w] = self.input.map(|d| d as u64);
        let in_elems = || c.checked_mul(h)?.checked_mul(w);
        Some(match (convention, self.kind) {
            (Convention::Macs, _) => self.macs,
            (Convention::Flops, _) => self.macs.checked_mul(2)?,
            (Convention::Fvcore, LayerKind::BatchNorm) => in_elems()?.checked_mul(2)?,
            (Convention::Fvcore, LayerKind::GlobalPool) => in_elems()?,
            (Convention::Fvcore, LayerKind::Routing) => self.macs.checked_add(in_elems()?)?,
            (Convention::Fvcore, _) => self.macs,
            (Convention::Thop2020, LayerKind::Conv { same_strided: true }) => 0,
            (Convention::Thop2020, LayerKind::Conv { .. }) => {
                self.macs.checked_add(self.bias_adds)?
            }
            (Convention::Thop2020, LayerKind::BatchNorm) => in_elems()?.checked_mul(2)?,
            (Convention::Thop2020, LayerKind::GlobalPool) => {
                c.checked_mul(h.checked_mul(w)?.checked_add(1)?)?
            }
            (Convention::Thop2020, LayerKind::Linear | LayerKind::CondConv) => 0,
            (Convention::Thop2020, LayerKind::Routing) => self.macs,
        })
    }
}

/// Walks the layers of `net` in execution order at `input`, with every shape resolved.
///
/// The SE convolutions see a 1×1 map (after the squeeze); everything else follows
/// [`Padding::resolve`]. Fails when any layer's numbers, or any convention's total over all
/// layers, would not fit in 64 bits; so [`Layer::count`] and the sums of the returned layers
/// are exact.
pub fn layers(net: &Network, input: InputSize) -> Result<Vec<Layer<'_>>, FlopsError> {
    let mut out = Vec::with_capacity(64);
    let mut walk = Walk {
        out: &mut out,
        input,
    };
    walk.ops(&net.ops, [net.in_chans, input.height, input.width])?;
    // Every convention's total must fit too, so summing `Layer::count` is exact.
    for convention in Convention::ALL {
        total(&out, convention, input)?;
    }
    Ok(out)
}

/// The layers walked so far and the input they are walked at (for errors).
struct Walk<'a, 'o> {
    out: &'o mut Vec<Layer<'a>>,
    input: InputSize,
}

impl<'a> Walk<'a, '_> {
    fn overflow(&self, layer: &str) -> FlopsError {
        FlopsError::Overflow {
            layer: layer.to_owned(),
            input: self.input,
        }
    }

    /// Adds a layer whose counts under every convention fit in 64 bits.
    fn push(&mut self, layer: Layer<'a>) -> Result<(), FlopsError> {
        if Convention::ALL
            .iter()
            .any(|&c| layer.checked_count(c).is_none())
        {
            return Err(self.overflow(layer.name));
        }
        self.out.push(layer);
        Ok(())
    }

    /// Walks `ops` from `shape`; returns the shape after them.
    fn ops(&mut self, ops: &'a [Op], mut shape: [usize; 3]) -> Result<[usize; 3], FlopsError> {
        for op in ops {
            shape = match op {
                Op::Conv(c) => self.conv(c, shape)?,
                Op::Norm(bn) => {
                    self.push(Layer {
                        name: &bn.name,
                        kind: LayerKind::BatchNorm,
                        input: shape,
                        output: shape,
                        params: (bn.channels as u64)
                            .checked_mul(2)
                            .ok_or_else(|| self.overflow(&bn.name))?,
                        macs: 0,
                        bias_adds: 0,
                    })?;
                    shape
                }
                Op::SqueezeExcite(se) => {
                    let squeezed = self.conv(&se.reduce, [shape[0], 1, 1])?;
                    self.conv(&se.expand, squeezed)?;
                    shape
                }
                // The residual add is not counted by any convention.
                Op::Residual(body) | Op::Scope { body, .. } => self.ops(body, shape)?,
                Op::CondConv { routing, body } => {
                    let overflow = || self.overflow(&routing.name);
                    let (fin, fout) = (routing.in_features as u64, routing.out_features as u64);
                    let macs = fin.checked_mul(fout).ok_or_else(overflow)?;
                    self.push(Layer {
                        name: &routing.name,
                        kind: LayerKind::Routing,
                        input: shape,
                        output: [routing.out_features, 1, 1],
                        params: macs.checked_add(fout).ok_or_else(overflow)?,
                        macs,
                        bias_adds: fout,
                    })?;
                    self.ops(body, shape)?
                }
                Op::GlobalPool { module } => {
                    let output = [shape[0], 1, 1];
                    self.push(Layer {
                        name: module,
                        kind: LayerKind::GlobalPool,
                        input: shape,
                        output,
                        params: 0,
                        macs: 0,
                        bias_adds: 0,
                    })?;
                    output
                }
                Op::Act { .. } | Op::Flatten { .. } => shape,
                Op::Linear(fc) => {
                    let overflow = || self.overflow(&fc.name);
                    let (fin, fout) = (fc.in_features as u64, fc.out_features as u64);
                    let macs = fin.checked_mul(fout).ok_or_else(overflow)?;
                    let output = [fc.out_features, 1, 1];
                    self.push(Layer {
                        name: &fc.name,
                        kind: LayerKind::Linear,
                        input: [fc.in_features, 1, 1],
                        output,
                        params: macs.checked_add(fout).ok_or_else(overflow)?,
                        macs,
                        bias_adds: fout,
                    })?;
                    output
                }
            };
        }
        Ok(shape)
    }

    fn conv(&mut self, conv: &'a Conv, input: [usize; 3]) -> Result<[usize; 3], FlopsError> {
        let overflow = || self.overflow(&conv.name);
        let (h, w) = conv.output_hw(input[1], input[2]).ok_or_else(overflow)?;
        let output = [conv.out_chs, h, w];
        let params = conv.param_count().ok_or_else(overflow)?;
        let bias = if conv.bias { conv.out_chs as u64 } else { 0 };
        let bias_adds = (h as u64)
            .checked_mul(w as u64)
            .and_then(|hw| hw.checked_mul(bias))
            .ok_or_else(overflow)?;
        self.push(Layer {
            name: &conv.name,
            kind: if conv.experts > 0 {
                LayerKind::CondConv
            } else {
                LayerKind::Conv {
                    same_strided: conv.padding == Padding::TfSame && conv.stride > 1,
                }
            },
            input,
            output,
            params,
            macs: conv.macs(h, w).ok_or_else(overflow)?,
            bias_adds,
        })?;
        Ok(output)
    }
}

/// The sum of `layers`' counts under `convention`, checked.
fn total(
    layers: &[Layer<'_>],
    convention: Convention,
    input: InputSize,
) -> Result<u64, FlopsError> {
    layers
        .iter()
        .try_fold(0u64, |sum, l| sum.checked_add(l.checked_count(convention)?))
        .ok_or(FlopsError::Overflow {
            layer: "total".to_owned(),
            input,
        })
}

/// Total under `convention` at `input`.
pub fn count(net: &Network, convention: Convention, input: InputSize) -> Result<u64, FlopsError> {
    total(&layers(net, input)?, convention, input)
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
/// (square, or the 1546:1213 rule for `thop-2020`), or all at `fixed` when given. The graph is
/// walked once per distinct input (twice, or once with `fixed`), not once per convention.
pub fn count_all(
    net: &Network,
    image_size: usize,
    fixed: Option<InputSize>,
) -> Result<Vec<Count>, FlopsError> {
    let mut walked: Option<(InputSize, Vec<Layer<'_>>)> = None;
    Convention::ALL
        .into_iter()
        .map(|convention| {
            let input = fixed.unwrap_or_else(|| convention.input_for_image_size(image_size));
            let layers = match &mut walked {
                Some((at, layers)) if *at == input => layers,
                slot => &slot.insert((input, layers(net, input)?)).1,
            };
            Ok(Count {
                convention,
                input,
                value: total(layers, convention, input)?,
            })
        })
        .collect()
}

/// A documented FLOPs value checked against the convention and input the card declares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlopsCheck {
    /// The card's number.
    pub documented: u64,
    /// The card's `Image Size`.
    pub image_size: usize,
    /// The card's convention at the card's input.
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

/// Checks a card's FLOPs: passes when `convention` at `input` (what the card declares it was
/// counted as, for its `Image Size` `image_size`) equals it exactly. Otherwise lists which
/// convention and input size come nearest.
pub fn check_flops(
    net: &Network,
    documented: u64,
    image_size: usize,
    convention: Convention,
    input: InputSize,
) -> Result<FlopsCheck, FlopsError> {
    let expected = Count {
        convention,
        input,
        value: count(net, convention, input)?,
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
            let walked = layers(net, input)?;
            for convention in Convention::ALL {
                let value = total(&walked, convention, input)?;
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
    Ok(FlopsCheck {
        documented,
        image_size,
        expected,
        passed,
        nearest,
    })
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
pub fn check_params(net: &Network, documented: u64) -> ParamsCheck {
    let exact = net.trainable_params();
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
        buffers: net.buffer_elements(),
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

    /// M5/L10: counts that do not fit in 64 bits are `Overflow` errors naming the layer; no
    /// input size panics or wraps.
    #[test]
    fn huge_inputs_are_overflow_errors_not_panics() {
        let l2 = crate::arch::ArchConfig::variant("l2")
            .unwrap()
            .resolve()
            .unwrap();
        let max: crate::arch::ArchConfig =
            "efficientnet:width=16,depth=16,classes=1000000,in-chans=64,stem=4096,head=16384"
                .parse()
                .unwrap();
        let max = max.resolve().unwrap();
        for net in [&l2, &max] {
            for side in [1, 2, 3, MAX_INPUT_SIDE, usize::MAX / 2, usize::MAX] {
                let input = InputSize::square(side);
                for c in Convention::ALL {
                    match count(net, c, input) {
                        Ok(_) => assert!(side <= MAX_INPUT_SIDE, "{side}"),
                        Err(FlopsError::Overflow { layer, input: at }) => {
                            assert!(!layer.is_empty());
                            assert_eq!(at, input);
                        }
                    }
                }
                let _ = check_flops(
                    net,
                    1,
                    side,
                    Convention::Thop2020,
                    InputSize::thop_2020(side),
                );
                let _ = count_all(net, side, None);
            }
        }
        // Every registry model fits at the largest side accepted from text.
        assert!(count(&l2, Convention::Flops, InputSize::square(MAX_INPUT_SIDE)).is_ok());
        assert!(matches!(
            count(&l2, Convention::Macs, InputSize::square(usize::MAX)),
            Err(FlopsError::Overflow { .. })
        ));
        assert_eq!(InputSize::thop_2020(usize::MAX).width, usize::MAX);
        assert!("65537x1".parse::<InputSize>().is_err());
        assert!("65536x65536".parse::<InputSize>().is_ok());
    }

    /// `count_all` walks once per distinct input; every total equals its own `count`.
    #[test]
    fn count_all_equals_count_per_convention() {
        for (arch, ..) in crate::arch::family::MEMBERS {
            let net = crate::arch::ArchConfig::variant(arch)
                .unwrap()
                .resolve()
                .unwrap();
            for (size, fixed) in [
                (224, None),
                (475, None),
                (224, Some(InputSize::thop_2020(300))),
            ] {
                let all = count_all(&net, size, fixed).unwrap();
                let each: Vec<Count> = Convention::ALL
                    .into_iter()
                    .map(|convention| {
                        let input = fixed.unwrap_or_else(|| convention.input_for_image_size(size));
                        Count {
                            convention,
                            input,
                            value: count(&net, convention, input).unwrap(),
                        }
                    })
                    .collect();
                assert_eq!(all, each, "{arch} at {size} {fixed:?}");
            }
        }
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
