//! Running EfficientNet through libtorch (the `tch` crate), to prove a converted state dict
//! computes what the original framework computed.
//!
//! The network is built from the one resolved [`Network`](crate::arch::Network), never from a
//! hand-written layer list: TF 'same' padding is resolved per conv for the actual input size,
//! BatchNorm uses the spec's epsilon, and every parameter is looked up by its timm state-dict key.
//! Weights arrive as zoo's own [`Tensor`]s (read by `zoo-converters`), because tch cannot read a
//! timm `.pth`.
//!
//! libtorch is optional: with the `torch` feature the model lives in `enabled.rs`; without it
//! `disabled.rs` offers the same API and every call returns [`TorchError::Unavailable`].
//! [`compare_logits`] is plain Rust and works in both builds.
use std::fmt;

use zoo_converters::{DType, Tensor};

#[cfg(feature = "torch")]
#[path = "enabled.rs"]
mod imp;

#[cfg(not(feature = "torch"))]
#[path = "disabled.rs"]
mod imp;

pub use imp::{available, cuda_devices, Model};

pub use crate::reference::DEFAULT_TOLERANCE;

/// A `--tolerance` that cannot be a tolerance: a NaN (every comparison fails), an infinity
/// (every comparison, even against all-NaN logits, passes) or a negative number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tolerance {text:?}: {reason}; expected a finite number >= 0 such as 1e-4")]
pub struct ToleranceError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a logit tolerance: a finite number `>= 0` (the `value_parser` of `--tolerance`).
pub fn parse_tolerance(text: &str) -> Result<f64, ToleranceError> {
    let err = |reason| ToleranceError {
        text: text.to_owned(),
        reason,
    };
    let v: f64 = text.trim().parse().map_err(|_| err("not a number"))?;
    check_tolerance(v).map_err(|_| err(tolerance_problem(v)))?;
    Ok(v)
}

fn tolerance_problem(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN would fail every comparison"
    } else if v.is_infinite() {
        "an infinite tolerance would pass any logits, even all-NaN ones"
    } else {
        "a negative tolerance would fail every comparison"
    }
}

/// `Ok` for a finite tolerance `>= 0`.
fn check_tolerance(v: f64) -> Result<(), TorchError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(TorchError::Tolerance {
            value: v,
            reason: tolerance_problem(v),
        })
    }
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// zoo was compiled without libtorch.
    #[error("zoo was built without libtorch; rebuild with `--features torch` (`make run` does)")]
    Unavailable,
    /// The state dict does not fit the architecture. Every problem is listed, not just the first.
    #[error("state dict does not fit {arch}: {} problem(s):\n  {}", problems.len(), join(problems))]
    StateDict {
        /// The architecture, as `ArchConfig`'s text form.
        arch: String,
        /// Every missing, unexpected, misshapen or mistyped tensor.
        problems: Vec<ParamProblem>,
    },
    /// The input is not an f32 `[N, C, H, W]` tensor with the model's channel count.
    #[error("input: expected {expected}, got {dtype} {shape:?}")]
    Input {
        /// What the model takes.
        expected: String,
        /// The given dtype.
        dtype: &'static str,
        /// The given shape.
        shape: Vec<usize>,
    },
    /// Two logit tensors cannot be compared.
    #[error("logits: {reason} (actual {actual_dtype} {actual:?}, reference {reference_dtype} {reference:?})")]
    Logits {
        /// What is wrong.
        reason: &'static str,
        /// Shape of the computed logits.
        actual: Vec<usize>,
        /// Dtype of the computed logits.
        actual_dtype: &'static str,
        /// Shape of the reference logits.
        reference: Vec<usize>,
        /// Dtype of the reference logits.
        reference_dtype: &'static str,
    },
    /// A tolerance that is NaN, infinite or negative.
    #[error("tolerance {value}: {reason}")]
    Tolerance {
        /// The tolerance.
        value: f64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// libtorch reported an error while running `op`.
    #[error("libtorch: {op}: {message}")]
    Libtorch {
        /// The layer or operation, e.g. `blocks.1.0.conv_dw`.
        op: String,
        /// libtorch's message.
        message: String,
    },
    /// A result could not be turned into a zoo tensor.
    #[error(transparent)]
    Tensor(#[from] zoo_converters::Error),
}

fn join(problems: &[ParamProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// One way a state dict fails to match the architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamProblem {
    /// The architecture needs this tensor and the state dict lacks it.
    Missing {
        /// timm key.
        name: String,
        /// Expected shape.
        shape: Vec<usize>,
    },
    /// The tensor is there with another shape.
    WrongShape {
        /// timm key.
        name: String,
        /// Shape the architecture needs.
        expected: Vec<usize>,
        /// Shape in the state dict.
        actual: Vec<usize>,
    },
    /// The tensor is not float32.
    WrongDType {
        /// timm key.
        name: String,
        /// Its dtype.
        dtype: &'static str,
    },
    /// The state dict has a tensor the architecture does not use.
    Unexpected {
        /// Its key.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The key occurs more than once.
    Duplicate {
        /// The key.
        name: String,
    },
}

impl ParamProblem {
    /// The tensor this problem is about.
    pub fn name(&self) -> &str {
        match self {
            ParamProblem::Missing { name, .. }
            | ParamProblem::WrongShape { name, .. }
            | ParamProblem::WrongDType { name, .. }
            | ParamProblem::Unexpected { name, .. }
            | ParamProblem::Duplicate { name } => name,
        }
    }
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamProblem::Missing { name, shape } => write!(f, "missing `{name}` {shape:?}"),
            ParamProblem::WrongShape {
                name,
                expected,
                actual,
            } => write!(f, "`{name}`: shape {actual:?}, expected {expected:?}"),
            ParamProblem::WrongDType { name, dtype } => {
                write!(f, "`{name}`: dtype {dtype}, expected F32")
            }
            ParamProblem::Unexpected { name, shape } => {
                write!(f, "unexpected `{name}` {shape:?}")
            }
            ParamProblem::Duplicate { name } => write!(f, "`{name}` occurs more than once"),
        }
    }
}

/// How far computed logits are from reference logits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogitsComparison {
    /// Largest `|actual − reference|` (infinite if either side has a non-finite value there).
    pub max_abs: f64,
    /// Largest `|actual − reference| / max(|reference|, f32::EPSILON)`.
    pub max_rel: f64,
    /// Fraction of rows whose arg-max class agrees.
    pub top1_agree: f64,
    /// Fraction of rows whose five highest classes agree as a set (all classes if fewer than five).
    pub top5_agree: f64,
    /// The tolerance `max_abs` was held to.
    pub tolerance: f64,
    /// `max_abs <= tolerance`.
    pub passed: bool,
    /// How the model was run or the reference read, where that differs from running timm's
    /// model on the reference as given (e.g. a TF original's own arithmetic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Compares logits `[N, classes]` (both f32) element by element and by ranking.
///
/// Fails when the two are not f32, not rank 2, differ in shape, or are empty: an empty
/// comparison proves nothing.
pub fn compare_logits(
    actual: &Tensor,
    reference: &Tensor,
    tolerance: f64,
) -> Result<LogitsComparison, TorchError> {
    let bad = |reason| TorchError::Logits {
        reason,
        actual: actual.shape().to_vec(),
        actual_dtype: actual.dtype().name(),
        reference: reference.shape().to_vec(),
        reference_dtype: reference.dtype().name(),
    };
    check_tolerance(tolerance)?;
    if actual.dtype() != DType::F32 || reference.dtype() != DType::F32 {
        return Err(bad("both must be F32"));
    }
    if actual.shape().len() != 2 || actual.shape() != reference.shape() {
        return Err(bad("shapes must be equal and [N, classes]"));
    }
    let (rows, classes) = (actual.shape()[0], actual.shape()[1]);
    if rows == 0 || classes == 0 {
        return Err(bad("no logits to compare"));
    }
    let (a, r) = match (actual.to_f32(), reference.to_f32()) {
        (Some(a), Some(r)) => (a, r),
        _ => return Err(bad("both must be F32")),
    };
    let mut max_abs = 0f64;
    let mut max_rel = 0f64;
    for (&x, &y) in a.iter().zip(&r) {
        let diff = if x.is_finite() && y.is_finite() {
            (f64::from(x) - f64::from(y)).abs()
        } else {
            f64::INFINITY
        };
        max_abs = max_abs.max(diff);
        max_rel = max_rel.max(diff / f64::from(y.abs()).max(f64::from(f32::EPSILON)));
    }
    let k = classes.min(5);
    let (mut top1, mut top5) = (0usize, 0usize);
    for (ra, rr) in a.chunks_exact(classes).zip(r.chunks_exact(classes)) {
        let (ta, tr) = (ranking(ra), ranking(rr));
        top1 += usize::from(ta[0] == tr[0]);
        let (mut sa, mut sr) = (ta[..k].to_vec(), tr[..k].to_vec());
        sa.sort_unstable();
        sr.sort_unstable();
        top5 += usize::from(sa == sr);
    }
    Ok(LogitsComparison {
        max_abs,
        max_rel,
        top1_agree: top1 as f64 / rows as f64,
        top5_agree: top5 as f64 / rows as f64,
        tolerance,
        passed: max_abs <= tolerance,
        note: None,
    })
}

/// Class indices from highest to lowest logit; ties keep the lower index first, NaN sorts last.
fn ranking(row: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&i, &j| {
        let (x, y) = (row[i], row[j]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => y.total_cmp(&x),
        }
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, v: &[f32]) -> Tensor {
        Tensor::from_f32(shape, v).unwrap()
    }

    /// Issue 14 (L11): a NaN, infinite or negative tolerance is refused where it is parsed and
    /// where it is used; an infinite one would pass all-NaN logits.
    #[test]
    fn tolerance_is_finite_and_not_negative() {
        assert_eq!(parse_tolerance("1e-4"), Ok(1e-4));
        assert_eq!(parse_tolerance("0"), Ok(0.0));
        for bad in ["inf", "-inf", "NaN", "-1", "1e400", "", "x"] {
            let e = parse_tolerance(bad).unwrap_err();
            assert!(e.to_string().contains("tolerance"), "{bad}: {e}");
        }
        let nan = t(vec![1, 2], &[f32::NAN, f32::NAN]);
        let e = compare_logits(&nan, &nan, f64::INFINITY).unwrap_err();
        assert!(matches!(e, TorchError::Tolerance { .. }), "{e}");
    }

    #[test]
    fn compare_logits_reports_differences_and_rankings() {
        let reference = t(
            vec![2, 6],
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5],
        );
        let same = compare_logits(&reference, &reference, 1e-4).unwrap();
        assert_eq!((same.max_abs, same.max_rel), (0.0, 0.0));
        assert_eq!((same.top1_agree, same.top5_agree), (1.0, 1.0));
        assert!(same.passed);

        // Row 0: top-1 moves from class 5 to class 4 (+1.5); row 1: class 5 (0.5 → 3.5) enters
        // the top five, pushing out class 4.
        let moved = t(
            vec![2, 6],
            &[0.0, 1.0, 2.0, 3.0, 5.5, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 3.5],
        );
        let c = compare_logits(&moved, &reference, 1e-4).unwrap();
        assert_eq!(c.max_abs, 3.0);
        assert_eq!(c.max_rel, 6.0);
        assert_eq!((c.top1_agree, c.top5_agree), (0.5, 0.5));
        assert!(!c.passed);
        assert!(compare_logits(&moved, &reference, 3.0).unwrap().passed);
    }

    #[test]
    fn compare_logits_fails_on_nan_and_bad_shapes() {
        let reference = t(vec![1, 3], &[1.0, 2.0, 3.0]);
        let nan = t(vec![1, 3], &[1.0, f32::NAN, 3.0]);
        let c = compare_logits(&nan, &reference, 1e-4).unwrap();
        assert!(c.max_abs.is_infinite() && !c.passed, "{c:?}");

        let flat = t(vec![3], &[1.0, 2.0, 3.0]);
        let e = compare_logits(&flat, &reference, 1e-4).unwrap_err();
        assert!(e.to_string().contains("[3]"), "{e}");
        let other = t(vec![3, 1], &[1.0, 2.0, 3.0]);
        assert!(compare_logits(&other, &reference, 1e-4).is_err());
        let empty = t(vec![0, 3], &[]);
        assert!(compare_logits(&empty, &empty, 1e-4).is_err());
        let bytes = Tensor::new("u8", DType::U8, vec![1, 3], vec![1, 2, 3]).unwrap();
        let e = compare_logits(&bytes, &reference, 1e-4).unwrap_err();
        assert!(e.to_string().contains("U8"), "{e}");
    }

    #[test]
    fn state_dict_error_lists_every_problem() {
        let e = TorchError::StateDict {
            arch: "efficientnet:width=1,depth=1,classes=10".into(),
            problems: vec![
                ParamProblem::Missing {
                    name: "bn1.weight".into(),
                    shape: vec![32],
                },
                ParamProblem::WrongShape {
                    name: "conv_stem.weight".into(),
                    expected: vec![32, 3, 3, 3],
                    actual: vec![32, 3, 5, 5],
                },
            ],
        };
        let s = e.to_string();
        assert!(s.contains("2 problem(s)"), "{s}");
        assert!(s.contains("missing `bn1.weight` [32]"), "{s}");
        assert!(
            s.contains("`conv_stem.weight`: shape [32, 3, 5, 5], expected [32, 3, 3, 3]"),
            "{s}"
        );
    }
}
