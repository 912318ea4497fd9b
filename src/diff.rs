//! Tensor-by-tensor comparison of two state dicts, whatever containers they came from.
use std::collections::BTreeMap;

use zoo_converters::{DType, StateDict, Tensor};

/// How one tensor present in both sides compares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorDiff {
    /// State-dict key.
    pub key: String,
    /// Largest absolute element difference (0 when bit-identical).
    pub max_abs: f64,
    /// `max_abs / max |b|` (0 when both are zero).
    pub max_rel: f64,
    /// Whether the bytes are identical.
    pub identical: bool,
}

/// A key present on both sides with different shapes or dtypes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mismatch {
    /// State-dict key.
    pub key: String,
    /// `DTYPE[shape]` in A.
    pub a: String,
    /// `DTYPE[shape]` in B.
    pub b: String,
}

/// The comparison of A against B.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diff {
    /// Keys only in A, sorted.
    pub only_in_a: Vec<String>,
    /// Keys only in B, sorted.
    pub only_in_b: Vec<String>,
    /// Shape or dtype differences, sorted by key.
    pub mismatched: Vec<Mismatch>,
    /// Per-tensor differences, worst (largest `max_abs`) first, then by key.
    pub tensors: Vec<TensorDiff>,
    /// The tolerance applied to `max_abs`.
    pub tolerance: f64,
}

impl Diff {
    /// Same keys, shapes and dtypes, and every tensor within the tolerance.
    pub fn is_equal(&self) -> bool {
        self.only_in_a.is_empty()
            && self.only_in_b.is_empty()
            && self.mismatched.is_empty()
            && self.tensors.iter().all(|t| t.max_abs <= self.tolerance)
    }

    /// Tensors outside the tolerance.
    pub fn differing(&self) -> impl Iterator<Item = &TensorDiff> {
        self.tensors.iter().filter(|t| t.max_abs > self.tolerance)
    }
}

fn describe(t: &Tensor) -> String {
    format!("{}{:?}", t.dtype().name(), t.shape())
}

/// Element values as f64, for the float and integer dtypes.
fn values(t: &Tensor) -> Vec<f64> {
    let d = t.data();
    match t.dtype() {
        DType::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DType::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        DType::F16 => d
            .chunks_exact(2)
            .map(|c| f16_to_f64(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        DType::BF16 => d
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
            .collect(),
        DType::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
            .collect(),
        DType::I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DType::I16 => d
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
            .collect(),
        DType::I8 => d.iter().map(|&b| b as i8 as f64).collect(),
        DType::U8 | DType::Bool => d.iter().map(|&b| b as f64).collect(),
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Compares one tensor pair of equal dtype and shape.
pub fn compare_tensor(key: &str, a: &Tensor, b: &Tensor) -> TensorDiff {
    if a.data() == b.data() {
        return TensorDiff {
            key: key.to_owned(),
            max_abs: 0.0,
            max_rel: 0.0,
            identical: true,
        };
    }
    let (va, vb) = (values(a), values(b));
    let mut max_abs = 0f64;
    let mut max_b = 0f64;
    for (x, y) in va.iter().zip(&vb) {
        let d = (x - y).abs();
        // NaN on one side only is an infinite difference.
        let d = if d.is_nan() && !(x.is_nan() && y.is_nan()) {
            f64::INFINITY
        } else if d.is_nan() {
            0.0
        } else {
            d
        };
        max_abs = max_abs.max(d);
        max_b = max_b.max(y.abs());
    }
    let max_rel = if max_b > 0.0 {
        max_abs / max_b
    } else if max_abs > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    TensorDiff {
        key: key.to_owned(),
        max_abs,
        max_rel,
        identical: false,
    }
}

/// Compares A against B.
pub fn diff(a: &StateDict, b: &StateDict, tolerance: f64) -> Diff {
    let ma: BTreeMap<&str, &Tensor> = a.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mb: BTreeMap<&str, &Tensor> = b.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let only_in_a = ma
        .keys()
        .filter(|k| !mb.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let only_in_b = mb
        .keys()
        .filter(|k| !ma.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let mut mismatched = vec![];
    let mut tensors = vec![];
    for (k, ta) in &ma {
        let Some(tb) = mb.get(k) else { continue };
        if ta.dtype() != tb.dtype() || ta.shape() != tb.shape() {
            mismatched.push(Mismatch {
                key: k.to_string(),
                a: describe(ta),
                b: describe(tb),
            });
        } else {
            tensors.push(compare_tensor(k, ta, tb));
        }
    }
    tensors.sort_by(|x, y| {
        y.max_abs
            .total_cmp(&x.max_abs)
            .then_with(|| x.key.cmp(&y.key))
    });
    Diff {
        only_in_a,
        only_in_b,
        mismatched,
        tensors,
        tolerance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_keys_shapes_and_worst_first() {
        let t = |v: &[f32]| Tensor::from_f32(vec![v.len()], v).unwrap();
        let a: StateDict = vec![
            ("a".into(), t(&[1.0, 2.0])),
            ("b".into(), t(&[1.0, 2.0])),
            ("c".into(), t(&[0.0])),
            ("s".into(), t(&[0.0, 0.0])),
            ("x".into(), t(&[1.0])),
        ];
        let b: StateDict = vec![
            ("a".into(), t(&[1.0, 2.5])),
            ("b".into(), t(&[1.0, 4.0])),
            ("c".into(), t(&[0.0])),
            (
                "s".into(),
                Tensor::from_f32(vec![2, 1], &[0.0, 0.0]).unwrap(),
            ),
            ("y".into(), t(&[1.0])),
        ];
        let d = diff(&a, &b, 0.0);
        assert_eq!(d.only_in_a, ["x"]);
        assert_eq!(d.only_in_b, ["y"]);
        assert_eq!(d.mismatched.len(), 1);
        assert_eq!(
            d.tensors.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(d.tensors[0].max_abs, 2.0);
        assert_eq!(d.tensors[0].max_rel, 0.5);
        assert!(!d.is_equal());
        assert!(diff(&a, &a, 0.0).is_equal());
    }

    #[test]
    fn f16_decoding() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
    }
}
