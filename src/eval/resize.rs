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
//!
//! On x86-64 CPUs with AVX2 both passes run the kernels of `resize/avx2.rs` (the same integer
//! sums, 8 lanes at a time; the workspace's one `unsafe` is their call after CPU detection),
//! elsewhere the portable ones here. A test holds the two to the same bytes.
use serde::Serialize;

use super::image::RgbImage;

#[cfg(target_arch = "x86_64")]
mod avx2;

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

/// A rectangle of the output: `x0..x1` × `y0..y1` (pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
}

impl Window {
    fn width(&self) -> usize {
        self.x1 - self.x0
    }

    fn height(&self) -> usize {
        self.y1 - self.y0
    }
}

/// The input range outputs `range` of an axis read.
fn support(c: &Coeffs, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let lo = range.clone().map(|i| c.start[i]).min().unwrap_or(0);
    let hi = range.map(|i| c.start[i] + c.len[i]).max().unwrap_or(lo);
    lo..hi
}

/// Resamples rows: reads `src` (`stride` pixels a row, `rows` rows) and writes the outputs
/// `cols` of each row. Every output pixel is Pillow's sum over its own inputs, so computing a
/// window gives the same bytes as computing everything and cropping.
fn horizontal(
    src: &[u8],
    stride: usize,
    rows: usize,
    c: &Coeffs,
    cols: std::ops::Range<usize>,
) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the one requirement of the kernel (which is safe code).
        #[allow(unsafe_code)]
        return unsafe { avx2::horizontal(src, stride, rows, c, cols) };
    }
    horizontal_portable(src, stride, rows, c, cols)
}

fn horizontal_portable(
    src: &[u8],
    stride: usize,
    rows: usize,
    c: &Coeffs,
    cols: std::ops::Range<usize>,
) -> Vec<u8> {
    let out_w = cols.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for (row, out_row) in src
        .chunks_exact(stride * 3)
        .take(rows)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for (i, px) in cols.clone().zip(out_row.chunks_exact_mut(3)) {
            horizontal_pixel(row, c, i, px);
        }
    }
    out
}

/// Output pixel `i` of a row (`px`: its 3 bytes).
fn horizontal_pixel(row: &[u8], c: &Coeffs, i: usize, px: &mut [u8]) {
    let k = &c.k[i * c.ksize..][..c.len[i]];
    let inp = &row[c.start[i] * 3..][..c.len[i] * 3];
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

/// Resamples columns: reads `src` (`stride` pixels a row; its row 0 is input row `first_row`),
/// takes the pixels `x0..x0 + width` of each row, and writes the output rows `rows`.
fn vertical(
    src: &[u8],
    stride: usize,
    first_row: usize,
    cols: (usize, usize),
    c: &Coeffs,
    rows: std::ops::Range<usize>,
) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the one requirement of the kernel (which is safe code).
        #[allow(unsafe_code)]
        return unsafe { avx2::vertical(src, stride, first_row, cols, c, rows) };
    }
    vertical_portable(src, stride, first_row, cols, c, rows)
}

fn vertical_portable(
    src: &[u8],
    stride: usize,
    first_row: usize,
    (x0, width): (usize, usize),
    c: &Coeffs,
    rows: std::ops::Range<usize>,
) -> Vec<u8> {
    let line = width * 3;
    let mut out = vec![0u8; line * rows.len()];
    for (i, out_row) in rows.zip(out.chunks_exact_mut(line)) {
        let k = &c.k[i * c.ksize..][..c.len[i]];
        vertical_tail(src, stride, c.start[i] - first_row, x0, k, out_row, 0);
    }
    out
}

/// Bytes `from..` of one output row of the vertical pass (`out`: those bytes), whose inputs are
/// the rows `first..` of `src` with the weights `k`. Rows are accumulated 64 bytes at a time (the
/// same integer sums as Pillow's per-pixel loop, in a cache-friendly order).
fn vertical_tail(
    src: &[u8],
    stride: usize,
    first: usize,
    x0: usize,
    k: &[i32],
    out: &mut [u8],
    from: usize,
) {
    const BLOCK: usize = 64;
    for (b, dst) in out.chunks_mut(BLOCK).enumerate() {
        let x = from + b * BLOCK;
        let mut acc = [INIT; BLOCK];
        for (t, &ky) in k.iter().enumerate() {
            let row = &src[((first + t) * stride + x0) * 3 + x..][..dst.len()];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in dst.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

/// `Image.resize((out_w, out_h), Image.BICUBIC)` on an RGB image, with the given pass order.
pub fn resize_bicubic(img: &RgbImage, out_w: usize, out_h: usize, order: PassOrder) -> RgbImage {
    let all = Window {
        x0: 0,
        x1: out_w,
        y0: 0,
        y1: out_h,
    };
    resize_bicubic_window(img, (out_w, out_h), all, order)
}

/// The `window` of `Image.resize((out_w, out_h), Image.BICUBIC)`: the same bytes as resizing
/// whole and cropping, computing only the pixels the window needs (for a centre crop of 224
/// out of 256×341, about half the work).
///
/// # Panics
/// When `window` is not inside `out_w × out_h`.
pub fn resize_bicubic_window(
    img: &RgbImage,
    (out_w, out_h): (usize, usize),
    win: Window,
    order: PassOrder,
) -> RgbImage {
    assert!(win.x0 <= win.x1 && win.x1 <= out_w && win.y0 <= win.y1 && win.y1 <= out_h);
    let (w, h) = (img.width, img.height);
    let src = &img.data;
    let data = match (out_w != w, out_h != h) {
        (false, false) => vertical_copy(src, w, win),
        (true, false) => {
            let c = coeffs(w, out_w);
            horizontal(&src[win.y0 * w * 3..], w, win.height(), &c, win.x0..win.x1)
        }
        (false, true) => {
            let c = coeffs(h, out_h);
            vertical(src, w, 0, (win.x0, win.width()), &c, win.y0..win.y1)
        }
        (true, true) => {
            let cx = coeffs(w, out_w);
            let cy = coeffs(h, out_h);
            if order.horizontal_first((w, h), (out_w, out_h)) {
                let ys = support(&cy, win.y0..win.y1);
                let tmp = horizontal(&src[ys.start * w * 3..], w, ys.len(), &cx, win.x0..win.x1);
                vertical(
                    &tmp,
                    win.width(),
                    ys.start,
                    (0, win.width()),
                    &cy,
                    win.y0..win.y1,
                )
            } else {
                let xs = support(&cx, win.x0..win.x1);
                let tmp = vertical(src, w, 0, (xs.start, xs.len()), &cy, win.y0..win.y1);
                let shifted = Coeffs {
                    ksize: cx.ksize,
                    // Only the window's outputs are read, and those start at or after `xs.start`.
                    start: cx
                        .start
                        .iter()
                        .map(|&s| s.saturating_sub(xs.start))
                        .collect(),
                    len: cx.len,
                    k: cx.k,
                };
                horizontal(&tmp, xs.len(), win.height(), &shifted, win.x0..win.x1)
            }
        }
    };
    RgbImage {
        width: win.width(),
        height: win.height(),
        data,
    }
}

/// The window of an image that is not resized.
fn vertical_copy(src: &[u8], w: usize, win: Window) -> Vec<u8> {
    let mut out = Vec::with_capacity(win.width() * win.height() * 3);
    for y in win.y0..win.y1 {
        out.extend_from_slice(&src[(y * w + win.x0) * 3..(y * w + win.x1) * 3]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Any window of a resize is the same bytes as the full resize cropped, for both pass
    /// orders, both directions of each axis, and unchanged axes.
    #[test]
    fn a_window_equals_the_full_resize_cropped() {
        let (w, h) = (61, 149);
        let data = (0..w * h * 3)
            .map(|i| ((i * 7919) % 251) as u8)
            .collect::<Vec<_>>();
        let img = RgbImage {
            width: w,
            height: h,
            data,
        };
        for (ow, oh) in [
            (32, 40),
            (61, 40),
            (32, 149),
            (61, 149),
            (90, 300),
            (40, 220),
        ] {
            for order in [PassOrder::Pillow13, PassOrder::Legacy] {
                let full = resize_bicubic(&img, ow, oh, order);
                for win in [
                    Window {
                        x0: 3,
                        x1: ow - 2,
                        y0: 5,
                        y1: oh - 1,
                    },
                    Window {
                        x0: 0,
                        x1: 1,
                        y0: oh - 1,
                        y1: oh,
                    },
                    Window {
                        x0: ow / 2,
                        x1: ow,
                        y0: 0,
                        y1: oh / 3,
                    },
                ] {
                    let part = resize_bicubic_window(&img, (ow, oh), win, order);
                    let mut want = vec![];
                    for y in win.y0..win.y1 {
                        want.extend_from_slice(
                            &full.data[(y * ow + win.x0) * 3..(y * ow + win.x1) * 3],
                        );
                    }
                    assert_eq!(part.data, want, "{w}x{h} -> {ow}x{oh} {order:?} {win:?}");
                }
            }
        }
    }

    /// The AVX2 kernels give the portable kernels' bytes: every size pair below (down- and
    /// upscaling, a kernel wider than the input, windows touching either edge, lines that are
    /// and are not a multiple of 32 bytes), on pixels that hit both clips.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[allow(unsafe_code)]
    fn a_pass_equals_the_portable_pass() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: this CPU has no AVX2, so the AVX2 kernels cannot run");
            return;
        }
        let mut state = 0x9e37_79b9_u32;
        let mut byte = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Mostly extremes, so sums overshoot 255 and undershoot 0.
            match state % 4 {
                0 => 0,
                1 => 255,
                _ => (state >> 8) as u8,
            }
        };
        for (in_len, out_len) in [
            (500, 256),
            (375, 256),
            (7, 3),
            (3, 7),
            (2, 1),
            (1, 5),
            (333, 341),
            (64, 224),
            (901, 17),
        ] {
            let c = coeffs(in_len, out_len);
            for other in [1, 5, 11, 32, 75] {
                // Horizontal: `other` rows of `in_len` pixels.
                let src: Vec<u8> = (0..in_len * other * 3).map(|_| byte()).collect();
                for cols in [0..out_len, out_len / 3..out_len, 0..1, out_len - 1..out_len] {
                    assert_eq!(
                        // SAFETY: AVX2 was detected above.
                        unsafe { avx2::horizontal(&src, in_len, other, &c, cols.clone()) },
                        horizontal_portable(&src, in_len, other, &c, cols.clone()),
                        "horizontal {in_len}->{out_len}, {other} rows, {cols:?}"
                    );
                }
                // Vertical: `in_len` rows of `other + 3` pixels, columns from 2.
                let stride = other + 3;
                let src: Vec<u8> = (0..in_len * stride * 3).map(|_| byte()).collect();
                for rows in [0..out_len, out_len / 2..out_len, 0..1] {
                    let first = c.start[rows.start];
                    let part = &src[first * stride * 3..];
                    assert_eq!(
                        // SAFETY: AVX2 was detected above.
                        unsafe {
                            avx2::vertical(part, stride, first, (2, other), &c, rows.clone())
                        },
                        vertical_portable(part, stride, first, (2, other), &c, rows.clone()),
                        "vertical {in_len}->{out_len}, {other} columns, {rows:?}"
                    );
                }
            }
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
