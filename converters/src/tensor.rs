//! The in-memory tensor that every reader produces and every writer consumes.
//!
//! A [`Tensor`] is a dtype, a shape and its bytes: contiguous, row-major (C order),
//! little-endian. Readers convert strided or big-endian sources into this form; writers
//! assume it. A [`StateDict`] keeps insertion order (the order of the source file, or timm's
//! `state_dict()` order for converted models) so that written files are deterministic.
use crate::{Error, Result};

/// Element types zoo understands. Names follow safetensors; `torch` and TF names map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// bool, one byte per element (0 or 1).
    Bool,
    /// unsigned 8-bit integer.
    U8,
    /// signed 8-bit integer.
    I8,
    /// signed 16-bit integer.
    I16,
    /// signed 32-bit integer.
    I32,
    /// signed 64-bit integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The safetensors spelling (`"F32"`, `"BF16"`, …), also used in fingerprints.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::I32 => "I32",
            DType::I64 => "I64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
        }
    }
}

/// A dense tensor: dtype, shape, and contiguous little-endian row-major bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly `numel(shape) * dtype.size()` bytes.
    /// `name` is only used in the error.
    pub fn new(name: &str, dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        let expected = byte_len(dtype, &shape).ok_or_else(|| Error::Limit {
            what: format!("byte size of tensor `{name}` {shape:?}"),
            actual: u64::MAX,
            limit: u64::MAX,
        })?;
        if expected != data.len() as u64 {
            return Err(Error::TensorSize {
                name: name.to_owned(),
                dtype,
                shape,
                expected,
                actual: data.len() as u64,
            });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// Builds an f32 tensor from values (convenience for tests and small tensors).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new("<f32>", DType::F32, shape, data)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Contiguous little-endian bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the bytes out.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The values as f32, for F32 tensors (others: `None`).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Returns the tensor with its axes permuted: output axis `i` is input axis `perm[i]`
    /// (numpy's `transpose(perm)`, torch's `permute`). `perm` must be a permutation of
    /// `0..rank`; otherwise `None`.
    pub fn permute(&self, perm: &[usize]) -> Option<Tensor> {
        let rank = self.shape.len();
        if perm.len() != rank {
            return None;
        }
        let mut seen = vec![false; rank];
        for &p in perm {
            if p >= rank || std::mem::replace(&mut seen[p], true) {
                return None;
            }
        }
        let esize = self.dtype.size();
        let in_strides = strides(&self.shape);
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let numel = self.numel();
        let mut out = Vec::with_capacity(self.data.len());
        if numel > 0 {
            let mut idx = vec![0usize; rank];
            for _ in 0..numel {
                let off: usize = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum();
                out.extend_from_slice(&self.data[off * esize..(off + 1) * esize]);
                for ax in (0..rank).rev() {
                    idx[ax] += 1;
                    if idx[ax] < out_shape[ax] {
                        break;
                    }
                    idx[ax] = 0;
                }
            }
        }
        Some(Tensor {
            dtype: self.dtype,
            shape: out_shape,
            data: out,
        })
    }
}

/// Row-major element strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `numel(shape) * dtype.size()`, or `None` on overflow.
pub fn byte_len(dtype: DType, shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
}

/// Named tensors in a stable order (insertion order).
pub type StateDict = Vec<(String, Tensor)>;

/// Bounds applied to every size read from an untrusted file before allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single tensor, in bytes.
    pub max_tensor_bytes: u64,
    /// Most tensors (or index entries) in one file.
    pub max_tensors: u64,
    /// Largest metadata structure read into memory at once (index block, pickle, header), in bytes.
    pub max_metadata_bytes: u64,
    /// Deepest pickle stack / most memo entries.
    pub max_pickle_items: u64,
    /// Largest tensor rank.
    pub max_rank: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tensor_bytes: 64 << 30,
            max_tensors: 1 << 20,
            max_metadata_bytes: 512 << 20,
            max_pickle_items: 1 << 24,
            max_rank: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_hwio_to_oihw() {
        // [kh=1, kw=2, in=2, out=3]
        let vals: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let t = Tensor::from_f32(vec![1, 2, 2, 3], &vals).unwrap();
        let p = t.permute(&[3, 2, 0, 1]).unwrap();
        assert_eq!(p.shape(), &[3, 2, 1, 2]);
        // out o, in i, kh 0, kw w  <- source [0, w, i, o] at (w*2 + i)*3 + o
        let got = p.to_f32().unwrap();
        let mut want = vec![];
        for o in 0..3 {
            for i in 0..2 {
                for w in 0..2 {
                    want.push(((w * 2 + i) * 3 + o) as f32);
                }
            }
        }
        assert_eq!(got, want);
        assert!(t.permute(&[0, 0, 1, 2]).is_none());
    }

    #[test]
    fn new_rejects_wrong_length() {
        let e = Tensor::new("x", DType::F32, vec![2, 2], vec![0; 15]).unwrap_err();
        assert!(e.to_string().contains("needs 16 bytes, got 15"), "{e}");
    }
}
