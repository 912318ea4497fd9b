//! Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit images, bit for bit
//! (Pillow `src/libImaging/Resample.c`, read for this transcription; no code copied).
//!
//! - Kernel: Keys' cubic with `a = −0.5`, support 2.
//! - Per axis: `scale = in/out`; `filterscale = max(scale, 1)` (the kernel widens on downscaling,
//!   which is Pillow's antialiasing); `support = 2·filterscale`; output pixel `i` is centred at
//!   `(i + 0.5)·scale` and reads input `xmin = max(0, (int)(centre − support + 0.5))` up to
//!   `min(in, (int)(centre + support + 0.5))`; weights `filter((x − centre + 0.5)/filterscale)`
//!   normalised by their sum, all in `f64`.
//! - Weights become `i32` fixed point with 22 fractional bits (`PRECISION_BITS = 32 − 8 − 2`),
//!   rounded half away from zero; each output accumulates from `1 << 21` and is clipped to
//!   `0..=255` after `>> 22`.
//! - Two separable passes through an 8-bit intermediate image; an axis whose size is unchanged
//!   is not resampled. Which pass runs first changes the result ([`PassOrder`]).
use serde::Serialize;

use super::image::RgbImage;

/// The order of the two passes: the one setting in which Pillow releases differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub enum PassOrder {
    /// Pillow ≥ 13.0 (PR #9549): the vertical pass first when the height shrinks by more than
    /// twice as many pixels as the width (`inH − outH > 0 && inH − outH > 2·(inW − outW)`),
    /// else horizontal first. The project's pinned Pillow (13.0.0).
    #[default]
    #[serde(rename = "pillow>=13")]
    Pillow13,
    /// Pillow ≤ 12: always horizontal first (what timm's published CSVs, ≤ 2025-10, ran on).
    #[serde(rename = "pillow<13")]
    Legacy,
}

impl PassOrder {
    /// The name recorded in results.
    pub fn as_str(self) -> &'static str {
        match self {
            PassOrder::Pillow13 => "pillow>=13",
            PassOrder::Legacy => "pillow<13",
        }
    }

    /// Whether the horizontal pass runs first for this resize.
    pub fn horizontal_first(
        self,
        (in_w, in_h): (usize, usize),
        (out_w, out_h): (usize, usize),
    ) -> bool {
        match self {
            PassOrder::Legacy => true,
            PassOrder::Pillow13 => {
                let dh = in_h as i64 - out_h as i64;
                let dw = in_w as i64 - out_w as i64;
                !(dh > 0 && dh > dw * 2)
            }
        }
    }
}

impl std::fmt::Display for PassOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Keys' cubic convolution kernel with `a = −0.5`, in Pillow's evaluation order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// One axis's fixed-point weights: output `i` reads `len[i]` inputs from `start[i]`, with the
/// weights `k[i·ksize ..][..len[i]]`.
#[derive(Debug)]
struct Coeffs {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    k: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    // Pillow passes the box as floats (in0 = 0, in1 = in_size).
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut start = Vec::with_capacity(out_size);
    let mut len = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    let ss = 1.0 / filterscale;
    for i in 0..out_size {
        let center = (i as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut sum = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            *wx = bicubic(((x + xmin) as f64 - center + 0.5) * ss);
            sum += *wx;
        }
        for (x, &wx) in w.iter().enumerate().take(xmax) {
            let wx = if sum != 0.0 { wx / sum } else { wx };
            let fixed = wx * f64::from(1u32 << PRECISION_BITS);
            k[i * ksize + x] = if wx < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        start.push(xmin);
        len.push(xmax);
    }
    Coeffs {
        ksize,
        start,
        len,
        k,
    }
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

const INIT: i32 = 1 << (PRECISION_BITS - 1);

/// Resamples the rows: `(w, h)` → `(out_w, h)`.
fn horizontal(src: &[u8], w: usize, h: usize, out_w: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), w * h * 3);
    horizontal_part(src, w, h, 0, Some(&coeffs(w, out_w)), 0..out_w)
}

/// Resamples the columns: `(w, h)` → `(w, out_h)`. Rows are accumulated whole (the same
/// integer sums as Pillow's per-pixel loop, in a cache-friendly order).
fn vertical(src: &[u8], w: usize, h: usize, out_h: usize) -> Vec<u8> {
    vertical_part(src, w, 0..w, 0, Some(&coeffs(h, out_h)), 0..out_h)
}

/// `Image.resize((out_w, out_h), Image.BICUBIC)` on an RGB image, with the given pass order.
pub fn resize_bicubic(img: &RgbImage, out_w: usize, out_h: usize, order: PassOrder) -> RgbImage {
    let (w, h) = (img.width, img.height);
    let data = match (out_w != w, out_h != h) {
        (false, false) => img.data.clone(),
        (true, false) => horizontal(&img.data, w, h, out_w),
        (false, true) => vertical(&img.data, w, h, out_h),
        (true, true) => {
            if order.horizontal_first((w, h), (out_w, out_h)) {
                let tmp = horizontal(&img.data, w, h, out_w);
                vertical(&tmp, out_w, h, out_h)
            } else {
                let tmp = vertical(&img.data, w, h, out_h);
                horizontal(&tmp, w, out_h, out_w)
            }
        }
    };
    RgbImage {
        width: out_w,
        height: out_h,
        data,
    }
}

/// A rectangle of the resized image: `(left, top, width, height)`.
pub type Region = (usize, usize, usize, usize);

/// The input positions that the outputs `range` of an axis read (`range` itself when the axis
/// is not resampled).
fn reads(c: Option<&Coeffs>, range: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    match c {
        None => range.clone(),
        Some(c) => {
            let lo = range.clone().map(|i| c.start[i]).min().unwrap_or(0);
            let hi = range
                .clone()
                .map(|i| c.start[i] + c.len[i])
                .max()
                .unwrap_or(0);
            lo..hi
        }
    }
}

/// The horizontal pass for the output columns `cols` of `rows` rows of `src` (`stride` pixels
/// wide, pixel 0 of each row being input column `col0`).
fn horizontal_part(
    src: &[u8],
    stride: usize,
    rows: usize,
    col0: usize,
    c: Option<&Coeffs>,
    cols: std::ops::Range<usize>,
) -> Vec<u8> {
    let out_w = cols.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for (row, out_row) in src
        .chunks_exact(stride * 3)
        .take(rows)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        let Some(c) = c else {
            out_row.copy_from_slice(&row[(cols.start - col0) * 3..][..out_w * 3]);
            continue;
        };
        for (i, px) in cols.clone().zip(out_row.chunks_exact_mut(3)) {
            let k = &c.k[i * c.ksize..][..c.len[i]];
            let inp = &row[(c.start[i] - col0) * 3..][..c.len[i] * 3];
            let (mut s0, mut s1, mut s2) = (INIT, INIT, INIT);
            for (&kx, p) in k.iter().zip(inp.chunks_exact(3)) {
                s0 += i32::from(p[0]) * kx;
                s1 += i32::from(p[1]) * kx;
                s2 += i32::from(p[2]) * kx;
            }
            px[0] = clip8(s0);
            px[1] = clip8(s1);
            px[2] = clip8(s2);
        }
    }
    out
}

/// The vertical pass for the output rows `rows`, over the pixel columns `xs` of `src` (`stride`
/// pixels wide, its row 0 being input row `row0`).
fn vertical_part(
    src: &[u8],
    stride: usize,
    xs: std::ops::Range<usize>,
    row0: usize,
    c: Option<&Coeffs>,
    rows: std::ops::Range<usize>,
) -> Vec<u8> {
    let w = xs.len() * 3;
    let mut out = vec![0u8; w * rows.len()];
    let mut acc = vec![0i32; w];
    for (i, out_row) in rows.zip(out.chunks_exact_mut(w)) {
        let Some(c) = c else {
            out_row.copy_from_slice(&src[((i - row0) * stride + xs.start) * 3..][..w]);
            continue;
        };
        acc.fill(INIT);
        let k = &c.k[i * c.ksize..][..c.len[i]];
        for (y, &ky) in (c.start[i]..).zip(k) {
            let row = &src[((y - row0) * stride + xs.start) * 3..][..w];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `resize_bicubic(img, out_w, out_h, order)` cropped to `region`, bit for bit, computing only
/// the pixels the crop keeps (each output pixel's sums are the same whichever others are
/// computed): the first pass covers just the rows (or columns) the second pass reads.
pub fn resize_bicubic_region(
    img: &RgbImage,
    out_w: usize,
    out_h: usize,
    order: PassOrder,
    (left, top, cw, ch): Region,
) -> RgbImage {
    let (w, h) = (img.width, img.height);
    assert!(
        left + cw <= out_w && top + ch <= out_h,
        "crop inside the resized image"
    );
    let hc = (out_w != w).then(|| coeffs(w, out_w));
    let vc = (out_h != h).then(|| coeffs(h, out_h));
    let (cols, rows) = (left..left + cw, top..top + ch);
    let data = if order.horizontal_first((w, h), (out_w, out_h)) {
        let need = reads(vc.as_ref(), &rows);
        let tmp = horizontal_part(
            &img.data[need.start * w * 3..],
            w,
            need.len(),
            0,
            hc.as_ref(),
            cols,
        );
        vertical_part(&tmp, cw, 0..cw, need.start, vc.as_ref(), rows)
    } else {
        let need = reads(hc.as_ref(), &cols);
        let tmp = vertical_part(&img.data, w, need.clone(), 0, vc.as_ref(), rows);
        horizontal_part(&tmp, need.len(), ch, need.start, hc.as_ref(), cols)
    };
    RgbImage {
        width: cw,
        height: ch,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_resize_equals_resize_then_crop() {
        // A deterministic noisy image, so every tap matters.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect()
        };
        for (w, h, ow, oh) in [
            (500, 375, 341, 256),
            (375, 500, 256, 341),
            (300, 900, 256, 768),
            (64, 64, 64, 64),
            (80, 64, 100, 64),
            (64, 80, 64, 33),
            (31, 17, 90, 70),
            (257, 256, 256, 256),
        ] {
            let img = RgbImage {
                width: w,
                height: h,
                data: noise(w * h * 3),
            };
            for order in [PassOrder::Pillow13, PassOrder::Legacy] {
                let full = resize_bicubic(&img, ow, oh, order);
                for (l, t, cw, ch) in [
                    (0, 0, ow, oh),
                    ((ow - ow / 2) / 2, (oh - oh / 2) / 2, ow / 2, oh / 2),
                    (ow - 1, oh - 1, 1, 1),
                    (0, oh / 3, ow, oh / 3),
                ] {
                    let part = resize_bicubic_region(&img, ow, oh, order, (l, t, cw, ch));
                    let expected: Vec<u8> = (t..t + ch)
                        .flat_map(|y| full.data[(y * ow + l) * 3..][..cw * 3].to_vec())
                        .collect();
                    assert_eq!(
                        part.data, expected,
                        "{w}x{h}->{ow}x{oh} {order} crop {l},{t} {cw}x{ch}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(500, 256), (256, 500), (7, 3), (3, 7), (900, 768)] {
            let c = coeffs(i, o);
            for n in 0..o {
                let s: i64 = c.k[n * c.ksize..][..c.len[n]]
                    .iter()
                    .map(|&k| i64::from(k))
                    .sum();
                assert!(
                    (s - (1 << 22)).abs() <= c.len[n] as i64,
                    "{i}->{o} #{n}: {s}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage {
            width: 37,
            height: 23,
            data: vec![200; 37 * 23 * 3],
        };
        for order in [PassOrder::Pillow13, PassOrder::Legacy] {
            let out = resize_bicubic(&img, 16, 51, order);
            assert!(out.data.iter().all(|&v| v == 200));
        }
    }

    #[test]
    fn pass_order_rule() {
        // 300x900 → 256x768: the height shrinks by 132 > 2·44 pixels.
        assert!(!PassOrder::Pillow13.horizontal_first((300, 900), (256, 768)));
        assert!(PassOrder::Legacy.horizontal_first((300, 900), (256, 768)));
        // 375x500 → 256x341: 159 < 2·119.
        assert!(PassOrder::Pillow13.horizontal_first((375, 500), (256, 341)));
        // Upscaling never flips.
        assert!(PassOrder::Pillow13.horizontal_first((120, 380), (256, 810)));
    }
}
