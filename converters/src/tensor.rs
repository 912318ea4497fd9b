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
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 10] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

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
            what: format!("byte size of tensor `{}` {shape:?}", crate::text::esc(name)),
            actual: u64::MAX,
            limit: u64::MAX,
            kind: crate::LimitKind::TensorBytes,
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

    /// The same bytes viewed with another shape of the same element count (`None` otherwise).
    pub fn reshape(self, shape: Vec<usize>) -> Option<Tensor> {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        (numel == self.numel()).then_some(Tensor { shape, ..self })
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
    ///
    /// Fast for large tensors: axes of size 1 are dropped and input axes that stay adjacent
    /// are merged (a 1×1 conv's `[1,1,in,out]→[out,in,1,1]` is a plain 2-D transpose), then the
    /// copy either moves whole contiguous rows or transposes tile by tile in the plane of the
    /// output's and the input's innermost axes, so both reads and writes stay in cache.
    pub fn permute(&self, perm: &[usize]) -> Option<Tensor> {
        self.permute_into(perm, Vec::new())
    }

    /// [`Tensor::permute`] into the allocation of `buf` (e.g. an earlier tensor's
    /// [`Tensor::into_data`]): when streaming many tensors, recycling buffers saves the page
    /// faults of a fresh allocation per tensor. `buf`'s contents are ignored.
    pub fn permute_into(&self, perm: &[usize], mut buf: Vec<u8>) -> Option<Tensor> {
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
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let (shape, src_strides) = simplify(&self.shape, perm);
        // Every byte is overwritten below, so only growth needs initialising.
        buf.truncate(self.data.len());
        buf.resize(self.data.len(), 0);
        match self.dtype.size() {
            1 => permute_bytes::<1>(&self.data, &mut buf, &shape, &src_strides),
            2 => permute_bytes::<2>(&self.data, &mut buf, &shape, &src_strides),
            4 => permute_bytes::<4>(&self.data, &mut buf, &shape, &src_strides),
            _ => permute_bytes::<8>(&self.data, &mut buf, &shape, &src_strides),
        }
        Some(Tensor {
            dtype: self.dtype,
            shape: out_shape,
            data: buf,
        })
    }
}

/// Side of the square tiles of the blocked transpose, in elements.
const TILE: usize = 64;

/// Reduces a permutation to its essential form: the output shape and, per output axis, the
/// input element stride, with size-1 axes dropped and runs of output axes that are consecutive,
/// in order, in the input merged into one axis. Never empty (a scalar becomes `[1]`).
fn simplify(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let in_strides = strides(shape);
    let mut out_shape: Vec<usize> = vec![];
    let mut out_strides: Vec<usize> = vec![];
    for &p in perm {
        let (size, stride) = (shape[p], in_strides[p]);
        if size == 1 {
            continue;
        }
        match (out_shape.last_mut(), out_strides.last_mut()) {
            // The previous output axis steps over exactly this axis in the input: merge.
            (Some(last_size), Some(last_stride)) if *last_stride == stride * size => {
                *last_size *= size;
                *last_stride = stride;
            }
            _ => {
                out_shape.push(size);
                out_strides.push(stride);
            }
        }
    }
    if shape.contains(&0) {
        return (vec![0], vec![1]);
    }
    if out_shape.is_empty() {
        return (vec![1], vec![1]);
    }
    (out_shape, out_strides)
}

/// Gathers `N`-byte elements of `src` into `out` (of the same length) in output order. `shape`
/// is the (simplified) output shape, `src_strides` the input element stride of each output axis.
fn permute_bytes<const N: usize>(
    src: &[u8],
    out: &mut [u8],
    shape: &[usize],
    src_strides: &[usize],
) {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return;
    }
    let rank = shape.len();
    let out_strides = strides(shape);
    let last = rank - 1;
    if src_strides[last] == 1 {
        // Innermost output axis is contiguous in the input: copy whole rows.
        let row = shape[last] * N;
        for_each_index(
            shape,
            &[last],
            src_strides,
            &out_strides,
            |src_base, out_base| {
                out[out_base * N..out_base * N + row]
                    .copy_from_slice(&src[src_base * N..src_base * N + row]);
            },
        );
        return;
    }
    // The output axis that walks the input contiguously: the input's innermost axis of size > 1
    // has stride 1 and survives simplification (merging keeps the inner stride), and it is not
    // `last` here, so it is the smallest stride among the others — and that stride is 1.
    let inner = (0..last).min_by_key(|&a| src_strides[a]).unwrap_or(0);
    let plane = Plane {
        rows: shape[inner],
        cols: shape[last],
        col_src: src_strides[last],
        row_out: out_strides[inner],
    };
    debug_assert_eq!(src_strides[inner], 1);
    for_each_index(
        shape,
        &[inner, last],
        src_strides,
        &out_strides,
        |src_base, out_base| plane.transpose::<N>(src, out, src_base, out_base),
    );
}

/// One 2-D plane of a transpose: output `[r][c]` (at `out_base + r * row_out + c`) is input
/// element `src_base + r + c * col_src` — rows contiguous in the input, columns in the output.
struct Plane {
    rows: usize,
    cols: usize,
    col_src: usize,
    row_out: usize,
}

/// Side of the small blocks moved through registers, in elements.
const BLOCK: usize = 8;

impl Plane {
    /// Tile by tile (so reads and writes stay in cache), and within a tile block by block:
    /// a full `BLOCK`×`BLOCK` block is gathered with fixed-size copies that the compiler
    /// unrolls, the ragged edges element by element.
    fn transpose<const N: usize>(
        &self,
        src: &[u8],
        out: &mut [u8],
        src_base: usize,
        out_base: usize,
    ) {
        let at_src = |r: usize, c: usize| (src_base + r + c * self.col_src) * N;
        let at_out = |r: usize, c: usize| (out_base + r * self.row_out + c) * N;
        for r0 in (0..self.rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(self.rows);
            for c0 in (0..self.cols).step_by(TILE) {
                let c1 = (c0 + TILE).min(self.cols);
                let (rf, cf) = (
                    r0 + (r1 - r0) / BLOCK * BLOCK,
                    c0 + (c1 - c0) / BLOCK * BLOCK,
                );
                for br in (r0..rf).step_by(BLOCK) {
                    for bc in (c0..cf).step_by(BLOCK) {
                        // block[r][c]: gathered column by column (contiguous in the input),
                        // written row by row (contiguous in the output)
                        let mut block = [[[0u8; N]; BLOCK]; BLOCK];
                        for c in 0..BLOCK {
                            let s = at_src(br, bc + c);
                            for (row, from) in
                                block.iter_mut().zip(src[s..s + BLOCK * N].chunks_exact(N))
                            {
                                row[c].copy_from_slice(from);
                            }
                        }
                        for (r, row) in block.iter().enumerate() {
                            let o = at_out(br + r, bc);
                            for (to, e) in out[o..o + BLOCK * N].chunks_exact_mut(N).zip(row) {
                                to.copy_from_slice(e);
                            }
                        }
                    }
                }
                // ragged edges: rows rf..r1 (all columns), then columns cf..c1 of rows r0..rf
                let edges = (rf..r1)
                    .flat_map(|r| (c0..c1).map(move |c| (r, c)))
                    .chain((r0..rf).flat_map(|r| (cf..c1).map(move |c| (r, c))));
                for (r, c) in edges {
                    let (s, o) = (at_src(r, c), at_out(r, c));
                    out[o..o + N].copy_from_slice(&src[s..s + N]);
                }
            }
        }
    }
}

/// Calls `f(src_offset, out_offset)` (in elements) for every index of the axes of `shape`
/// not listed in `skip`, with the skipped axes at 0, in row-major order.
fn for_each_index(
    shape: &[usize],
    skip: &[usize],
    src_strides: &[usize],
    out_strides: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let axes: Vec<usize> = (0..shape.len()).filter(|a| !skip.contains(a)).collect();
    let mut idx = vec![0usize; axes.len()];
    let (mut src, mut out) = (0usize, 0usize);
    loop {
        f(src, out);
        // odometer over `axes`, innermost last
        let mut k = axes.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            let a = axes[k];
            idx[k] += 1;
            src += src_strides[a];
            out += out_strides[a];
            if idx[k] < shape[a] {
                break;
            }
            src -= src_strides[a] * shape[a];
            out -= out_strides[a] * shape[a];
            idx[k] = 0;
        }
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

pub use crate::limits::Limits;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_the_bytes_and_checks_the_count() {
        let t =
            Tensor::from_f32(vec![2, 6], &(0..12).map(|v| v as f32).collect::<Vec<_>>()).unwrap();
        let data = t.data().to_vec();
        let r = t.clone().reshape(vec![2, 1, 3, 2]).unwrap();
        assert_eq!((r.shape(), r.data()), (&[2, 1, 3, 2][..], &data[..]));
        assert!(t.clone().reshape(vec![5, 2]).is_none());
        assert!(t.reshape(vec![usize::MAX, 2]).is_none());
    }

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

    /// The obvious per-element gather, kept here only as the reference for `permute`.
    fn naive_permute(t: &Tensor, perm: &[usize]) -> Vec<u8> {
        let esize = t.dtype().size();
        let in_strides = strides(t.shape());
        let out_shape: Vec<usize> = perm.iter().map(|&p| t.shape()[p]).collect();
        let mut out = vec![];
        let mut idx = vec![0usize; out_shape.len()];
        for _ in 0..t.numel() {
            let off: usize = idx.iter().zip(perm).map(|(i, &p)| i * in_strides[p]).sum();
            out.extend_from_slice(&t.data()[off * esize..(off + 1) * esize]);
            for ax in (0..idx.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < out_shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        out
    }

    fn patterned(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = byte_len(dtype, &shape).unwrap() as usize;
        // distinct bytes per position (mod 251) so any misplaced byte shows
        let data = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        Tensor::new("t", dtype, shape, data).unwrap()
    }

    #[test]
    fn permute_conversion_layouts_match_naive() {
        for (shape, perm) in [
            (vec![3, 3, 24, 40], vec![3, 2, 0, 1]),
            (vec![1, 1, 96, 70], vec![3, 2, 0, 1]),
            (vec![5, 5, 67, 1], vec![2, 3, 0, 1]),
            (vec![130, 33], vec![1, 0]),
            (vec![1, 1], vec![1, 0]),
            (vec![0, 4], vec![1, 0]),
        ] {
            let t = patterned(DType::F32, shape.clone());
            let p = t.permute(&perm).unwrap();
            assert_eq!(p.data(), naive_permute(&t, &perm), "{shape:?} by {perm:?}");
        }
        let scalar = patterned(DType::F64, vec![]);
        assert_eq!(scalar.permute(&[]).unwrap(), scalar);
    }

    fn shape_and_perm() -> impl proptest::strategy::Strategy<Value = (Vec<usize>, Vec<usize>)> {
        use proptest::prelude::*;
        proptest::collection::vec(0usize..7, 0..6).prop_flat_map(|shape| {
            let perm: Vec<usize> = (0..shape.len()).collect();
            (Just(shape), Just(perm).prop_shuffle())
        })
    }

    proptest::proptest! {
        #[test]
        fn permute_equals_naive(
            (shape, perm) in shape_and_perm(),
            dtype in proptest::sample::select(vec![DType::U8, DType::F16, DType::F32, DType::F64]),
            big in 0usize..3,
        ) {
            // occasionally stretch one axis past the tile size, to a ragged length
            let mut shape = shape;
            if big > 0 && !shape.is_empty() {
                let a = big % shape.len();
                shape[a] = TILE + 3 * big;
            }
            let t = patterned(dtype, shape.clone());
            let p = t.permute(&perm).unwrap();
            let out_shape: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
            proptest::prop_assert_eq!(p.shape(), &out_shape[..]);
            proptest::prop_assert_eq!(p.data(), &naive_permute(&t, &perm)[..]);
            // a recycled buffer's old contents and length do not leak into the result
            let q = t.permute_into(&perm, vec![0xa5; 3 * big + 7]).unwrap();
            proptest::prop_assert_eq!(q, p);
        }
    }

    #[test]
    fn new_rejects_wrong_length() {
        let e = Tensor::new("x", DType::F32, vec![2, 2], vec![0; 15]).unwrap_err();
        assert!(e.to_string().contains("needs 16 bytes, got 15"), "{e}");
    }
}
