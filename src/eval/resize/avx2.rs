//! The two resampling passes with AVX2, the same integer arithmetic as the portable kernels in
//! [`super`] (products `u8 × i32`, sums from `1 << 21`, `>> 22`, clipped to `0..=255`), eight
//! `i32` lanes at a time. `a_pass_equals_the_portable_pass` tests them against the portable
//! kernels byte for byte; the Python pixel-parity tests test both against Pillow.
//!
//! The kernels are safe code compiled with the `avx2` target feature; [`super`] calls them only
//! after `is_x86_feature_detected!("avx2")`.
use std::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi32, _mm256_cvtepu8_epi32, _mm256_extract_epi32,
    _mm256_extract_epi64, _mm256_madd_epi16, _mm256_mullo_epi32, _mm256_packs_epi32,
    _mm256_packus_epi16, _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_set_epi32,
    _mm256_set_m128i, _mm256_setr_epi16, _mm256_setr_epi8, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_slli_epi32, _mm256_srai_epi32, _mm_cvtsi64_si128, _mm_set_epi64x,
};

use super::{Coeffs, INIT, PRECISION_BITS};

/// Eight bytes from `s[at..]`, zero-extended to eight `i32` lanes.
#[target_feature(enable = "avx2")]
fn widen8(s: &[u8], at: usize) -> __m256i {
    let bytes: [u8; 8] = s[at..at + 8].try_into().expect("8 bytes");
    _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(bytes)))
}

/// Sixteen bytes from `s[at..]`.
#[target_feature(enable = "avx2")]
fn load16(s: &[u8], at: usize) -> __m128i {
    let v = u128::from_le_bytes(s[at..at + 16].try_into().expect("16 bytes"));
    _mm_set_epi64x((v >> 64) as i64, v as i64)
}

/// A weight `k` split as `k = 256·hi + lo` with `lo` in `0..256`, so that both halves are `i16`
/// and `vpmaddwd` (`i16 × i16`, adjacent pairs summed to `i32`) computes `Σ p·k` exactly as
/// `256·Σ p·hi + Σ p·lo`. `None` when `hi` does not fit (no Pillow weight comes near).
fn split(k: i32) -> Option<(i16, i16)> {
    let hi = i16::try_from(k >> 8).ok()?;
    Some((hi, (k & 0xFF) as i16))
}

/// Where one output pixel's weights for `vpmaddwd` lie in the shared table: per group of four
/// taps, the high and the low halves of taps `(0, 1)` and `(2, 3)`, each as
/// `[k0 k1 k0 k1 k0 k1 0 0]` (R, G, B, nothing) in both 128-bit lanes.
#[derive(Clone, Copy)]
struct PixelWeights {
    /// The first of its `groups · 4` vectors: hi(0,1), hi(2,3), lo(0,1), lo(2,3) per group.
    at: usize,
    groups: usize,
}

/// Appends output `i`'s split weights to `table` (one table for a whole pass, not an allocation
/// per pixel); `None`, with `table` unchanged, when a weight does not split.
#[target_feature(enable = "avx2")]
fn pixel_weights(c: &Coeffs, i: usize, table: &mut Vec<__m256i>) -> Option<PixelWeights> {
    let k = &c.k[i * c.ksize..][..c.len[i]];
    let groups = k.len().div_ceil(4);
    if groups == 0 {
        return None;
    }
    let tap = |t: usize| split(k.get(t).copied().unwrap_or(0));
    let at = table.len();
    for g in 0..groups {
        let (Some(t0), Some(t1), Some(t2), Some(t3)) =
            (tap(4 * g), tap(4 * g + 1), tap(4 * g + 2), tap(4 * g + 3))
        else {
            table.truncate(at);
            return None;
        };
        let four = [t0, t1, t2, t3];
        for half in [0, 1] {
            for pair in [0, 1] {
                let pick = |(hi, lo): (i16, i16)| if half == 0 { hi } else { lo };
                let (a, b) = (pick(four[2 * pair]), pick(four[2 * pair + 1]));
                table.push(_mm256_setr_epi16(
                    a, b, a, b, a, b, 0, 0, a, b, a, b, a, b, 0, 0,
                ));
            }
        }
    }
    Some(PixelWeights { at, groups })
}

/// See [`super::horizontal`]. Two rows per vector (one per 128-bit lane), four taps per step:
/// sixteen bytes from the output's first input pixel are shuffled into `i16` pairs
/// `[R_t R_t+1 G_t G_t+1 B_t B_t+1 0 0]` and multiplied by the split weights with `vpmaddwd`.
/// Reads past an output's last input pixel meet zero weights; an output whose sixteen-byte reads
/// would pass the end of `src`, or whose weights do not split, is left to the portable kernel.
#[target_feature(enable = "avx2")]
pub(super) fn horizontal(
    src: &[u8],
    stride: usize,
    rows: usize,
    c: &Coeffs,
    cols: std::ops::Range<usize>,
) -> Vec<u8> {
    let out_w = cols.len();
    let mut out = vec![0u8; out_w * rows * 3];
    let mut table = Vec::with_capacity(out_w * c.ksize.div_ceil(4) * 4);
    let weights: Vec<Option<PixelWeights>> = cols
        .clone()
        .map(|i| pixel_weights(c, i, &mut table))
        .collect();
    // Taps (0, 1) and (2, 3) of a group, each channel's pair adjacent; -1 writes a zero.
    let taps01 = _mm256_setr_epi8(
        0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, //
        0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
    );
    let taps23 = _mm256_setr_epi8(
        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1, //
        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1,
    );
    let init = _mm256_set1_epi32(INIT);
    let line = out_w * 3;
    for r in (0..rows).step_by(2) {
        // The second lane's row: the next one, or this one again when it is the last.
        let r1 = if r + 1 < rows { r + 1 } else { r };
        let (row0, row1) = (&src[r * stride * 3..], &src[r1 * stride * 3..]);
        for (x, (i, w)) in cols.clone().zip(&weights).enumerate() {
            let at = c.start[i] * 3;
            let fits = |w: &PixelWeights| at + (w.groups - 1) * 12 + 16 <= row1.len();
            let Some(w) = w.as_ref().filter(|w| fits(w)) else {
                super::horizontal_pixel(row0, c, i, &mut out[r * line + x * 3..][..3]);
                if r1 != r {
                    super::horizontal_pixel(row1, c, i, &mut out[r1 * line + x * 3..][..3]);
                }
                continue;
            };
            let (mut hi, mut lo) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for g in 0..w.groups {
                let off = at + g * 12;
                let p = _mm256_set_m128i(load16(row1, off), load16(row0, off));
                let (p01, p23) = (
                    _mm256_shuffle_epi8(p, taps01),
                    _mm256_shuffle_epi8(p, taps23),
                );
                let k = &table[w.at + g * 4..][..4];
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(p01, k[0]));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(p23, k[1]));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(p01, k[2]));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(p23, k[3]));
            }
            let sum = _mm256_add_epi32(init, _mm256_add_epi32(_mm256_slli_epi32::<8>(hi), lo));
            // `>> 22`, then the packs saturate to 0..=255 (Pillow's clip).
            let q = _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(sum);
            let q = _mm256_packs_epi32(q, q);
            let p = _mm256_packus_epi16(q, q);
            let px0 = _mm256_extract_epi32::<0>(p).to_le_bytes();
            out[r * line + x * 3..][..3].copy_from_slice(&px0[..3]);
            if r1 != r {
                let px1 = _mm256_extract_epi32::<4>(p).to_le_bytes();
                out[r1 * line + x * 3..][..3].copy_from_slice(&px1[..3]);
            }
        }
    }
    out
}

/// See [`super::vertical`]. 32 bytes of a row per step, four accumulators in registers.
#[target_feature(enable = "avx2")]
pub(super) fn vertical(
    src: &[u8],
    stride: usize,
    first_row: usize,
    (x0, width): (usize, usize),
    c: &Coeffs,
    rows: std::ops::Range<usize>,
) -> Vec<u8> {
    let line = width * 3;
    let mut out = vec![0u8; line * rows.len()];
    let init = _mm256_set1_epi32(INIT);
    // packs/packus interleave the 128-bit halves; this puts the 32 bytes back in order.
    let order = _mm256_set_epi32(7, 3, 6, 2, 5, 1, 4, 0);
    let blocks = line / 32;
    for (i, out_row) in rows.zip(out.chunks_exact_mut(line)) {
        let k = &c.k[i * c.ksize..][..c.len[i]];
        let first = c.start[i] - first_row;
        for b in 0..blocks {
            let x = b * 32;
            let mut acc = [init; 4];
            for (t, &ky) in k.iter().enumerate() {
                let row = &src[((first + t) * stride + x0) * 3 + x..][..32];
                let kv = _mm256_set1_epi32(ky);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_epi32(*a, _mm256_mullo_epi32(widen8(row, j * 8), kv));
                }
            }
            let [q0, q1, q2, q3] = acc;
            const SHIFT: i32 = PRECISION_BITS as i32;
            let p = _mm256_packus_epi16(
                _mm256_packs_epi32(
                    _mm256_srai_epi32::<SHIFT>(q0),
                    _mm256_srai_epi32::<SHIFT>(q1),
                ),
                _mm256_packs_epi32(
                    _mm256_srai_epi32::<SHIFT>(q2),
                    _mm256_srai_epi32::<SHIFT>(q3),
                ),
            );
            let p = _mm256_permutevar8x32_epi32(p, order);
            let dst = &mut out_row[x..x + 32];
            dst[0..8].copy_from_slice(&_mm256_extract_epi64::<0>(p).to_le_bytes());
            dst[8..16].copy_from_slice(&_mm256_extract_epi64::<1>(p).to_le_bytes());
            dst[16..24].copy_from_slice(&_mm256_extract_epi64::<2>(p).to_le_bytes());
            dst[24..32].copy_from_slice(&_mm256_extract_epi64::<3>(p).to_le_bytes());
        }
        super::vertical_tail(
            src,
            stride,
            first,
            x0,
            k,
            &mut out_row[blocks * 32..],
            blocks * 32,
        );
    }
    out
}
