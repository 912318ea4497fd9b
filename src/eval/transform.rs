//! timm's eval transform (`transforms_imagenet_eval`, centre crop) on a decoded image:
//! torchvision's shortest-edge `Resize`, `CenterCrop`, then normalisation, as `f32` CHW.
//!
//! - Resize: the short side becomes `S = floor(img_size / crop_pct)` (Python `math.floor` on the
//!   f64 nearest the decimal literal, e.g. b1: `floor(240 / 0.882) = 272`); the long side is
//!   `int(S · long / short)` (truncated); the same size is a no-op.
//! - Crop: `top = round((H − img_size) / 2)`, `left = round((W − img_size) / 2)` with Python's
//!   `round` (ties to even: 480×360 → 341×256 crops from x = 58, not 59).
//! - Normalise ([`Normalize`]): `create_transform(…)`'s `ToTensor` + `Normalize`, or
//!   `validate.py`'s prefetcher arithmetic. The two differ in the last bit of some values.
use serde::Serialize;

use super::image::RgbImage;
use super::resize::{resize_bicubic_window, PassOrder, Window};
use super::EvalError;
use crate::schema::{InputSettings, Interpolation};

/// How u8 pixels become the model's f32 input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub enum Normalize {
    /// `torchvision ToTensor` then `Normalize`: `((v / 255) − mean) / std`, every step in f32
    /// with `mean`/`std` rounded to f32. What `timm.data.create_transform(…, is_training=False)`
    /// returns.
    #[default]
    #[serde(rename = "totensor")]
    ToTensor,
    /// timm's `PrefetchLoader` (validate.py's default): `(v − 255·mean) / (255·std)` in f32,
    /// with `255·mean` computed in f64 and rounded to f32.
    #[serde(rename = "prefetcher")]
    Prefetcher,
}

impl Normalize {
    /// The name recorded in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Normalize::ToTensor => "totensor",
            Normalize::Prefetcher => "prefetcher",
        }
    }
}

/// The eval transform of one model, from its `Zoo: Input`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalTransform {
    /// Square crop side (`Image Size`).
    pub img_size: usize,
    /// `Crop Pct`.
    pub crop_pct: f64,
    /// Per-channel mean on the 0..1 scale.
    pub mean: [f64; 3],
    /// Per-channel std on the 0..1 scale.
    pub std: [f64; 3],
    /// The resampler's pass order (which Pillow release is reproduced).
    pub pass_order: PassOrder,
    /// The normalisation arithmetic.
    pub normalize: Normalize,
}

impl EvalTransform {
    /// A bicubic centre-crop transform. `crop_pct` must be in (0, 1].
    pub fn new(
        img_size: usize,
        crop_pct: f64,
        mean: [f64; 3],
        std: [f64; 3],
    ) -> Result<Self, EvalError> {
        if img_size == 0 || !(crop_pct > 0.0 && crop_pct <= 1.0) {
            return Err(EvalError::Settings(format!(
                "Image Size {img_size} with Crop Pct {crop_pct}: need Image Size ≥ 1 and 0 < Crop Pct ≤ 1"
            )));
        }
        if std.iter().any(|&s| s <= 0.0) {
            return Err(EvalError::Settings(format!("Std {std:?} has a value ≤ 0")));
        }
        Ok(EvalTransform {
            img_size,
            crop_pct,
            mean,
            std,
            pass_order: PassOrder::default(),
            normalize: Normalize::default(),
        })
    }

    /// From a registry model's `Zoo: Input`; only `bicubic` interpolation is reproduced.
    pub fn from_input(input: &InputSettings) -> Result<Self, EvalError> {
        let missing = |f: &str| EvalError::Settings(format!("`Zoo: Input` has no `{f}`"));
        let size = input
            .image_size
            .as_ref()
            .ok_or_else(|| missing("Image Size"))?
            .value as usize;
        let crop = input
            .crop_pct
            .as_ref()
            .ok_or_else(|| missing("Crop Pct"))?
            .value;
        let interp = &input
            .interpolation
            .as_ref()
            .ok_or_else(|| missing("Interpolation"))?
            .value;
        if *interp != Interpolation::Bicubic {
            return Err(EvalError::Settings(format!(
                "Interpolation `{}`: zoo eval reproduces Pillow's bicubic only",
                interp.as_str()
            )));
        }
        let three =
            |v: &Option<Vec<crate::schema::Number>>, f: &str| -> Result<[f64; 3], EvalError> {
                let v = v.as_ref().ok_or_else(|| missing(f))?;
                match v.as_slice() {
                    [a, b, c] => Ok([a.value, b.value, c.value]),
                    _ => Err(EvalError::Settings(format!(
                        "`{f}` has {} values, expected 3 (RGB)",
                        v.len()
                    ))),
                }
            };
        EvalTransform::new(
            size,
            crop,
            three(&input.mean, "Mean")?,
            three(&input.std, "Std")?,
        )
    }

    /// The short side after resizing: `floor(img_size / crop_pct)`.
    pub fn scale_size(&self) -> usize {
        (self.img_size as f64 / self.crop_pct).floor() as usize
    }

    /// torchvision's shortest-edge output size for a `w × h` image.
    pub fn resized_size(&self, w: usize, h: usize) -> (usize, usize) {
        let s = self.scale_size();
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = ((s * long) as f64 / short as f64) as usize;
        if w <= h {
            (s, new_long)
        } else {
            (new_long, s)
        }
    }

    /// The centre crop's `(left, top)` in a `w × h` resized image.
    pub fn crop_origin(&self, w: usize, h: usize) -> (usize, usize) {
        let off = |d: usize| ((d - self.img_size) as f64 / 2.0).round_ties_even() as usize;
        (off(w), off(h))
    }

    /// Resize and crop: the u8 CHW crop (what timm's prefetcher path hands to the GPU).
    pub fn crop_u8(&self, img: &RgbImage) -> Result<Vec<u8>, EvalError> {
        if img.width == 0 || img.height == 0 {
            return Err(EvalError::Settings("empty image".into()));
        }
        let (w, h) = self.resized_size(img.width, img.height);
        if w < self.img_size || h < self.img_size || w == 0 || h == 0 {
            return Err(EvalError::Settings(format!(
                "{}x{} resizes to {w}x{h}, smaller than the {s}x{s} crop",
                img.width,
                img.height,
                s = self.img_size
            )));
        }
        let (left, top) = self.crop_origin(w, h);
        let s = self.img_size;
        let window = Window {
            x0: left,
            x1: left + s,
            y0: top,
            y1: top + s,
        };
        let crop = resize_bicubic_window(img, (w, h), window, self.pass_order);
        let mut out = vec![0u8; 3 * s * s];
        let (r, rest) = out.split_at_mut(s * s);
        let (g, b) = rest.split_at_mut(s * s);
        for y in 0..s {
            let row = &crop.data[y * s * 3..][..s * 3];
            for (x, p) in row.chunks_exact(3).enumerate() {
                r[y * s + x] = p[0];
                g[y * s + x] = p[1];
                b[y * s + x] = p[2];
            }
        }
        Ok(out)
    }

    /// Per-channel lookup tables u8 → normalised f32 (every value a pixel can take).
    pub fn tables(&self) -> [[f32; 256]; 3] {
        let mut t = [[0f32; 256]; 3];
        for (c, table) in t.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = match self.normalize {
                    Normalize::ToTensor => {
                        let x = v as f32 / 255f32;
                        (x - self.mean[c] as f32) / self.std[c] as f32
                    }
                    Normalize::Prefetcher => {
                        (v as f32 - (self.mean[c] * 255.0) as f32) / (self.std[c] * 255.0) as f32
                    }
                };
            }
        }
        t
    }

    /// The full transform: the normalised f32 CHW tensor's `3 · img_size²` values.
    pub fn apply(&self, img: &RgbImage) -> Result<Vec<f32>, EvalError> {
        let mut out = vec![0f32; 3 * self.img_size * self.img_size];
        self.apply_into(img, &self.tables(), &mut out)?;
        Ok(out)
    }

    /// [`apply`](Self::apply) into a slice of a batch, with precomputed [`tables`](Self::tables).
    pub fn apply_into(
        &self,
        img: &RgbImage,
        tables: &[[f32; 256]; 3],
        out: &mut [f32],
    ) -> Result<(), EvalError> {
        let u8s = self.crop_u8(img)?;
        let plane = self.img_size * self.img_size;
        for (c, (o, i)) in out
            .chunks_exact_mut(plane)
            .zip(u8s.chunks_exact(plane))
            .enumerate()
        {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = tables[c][usize::from(v)];
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];

    #[test]
    fn scale_sizes_match_timm_for_the_noisy_student_models() {
        for (size, pct, want) in [
            (224, 0.875, 256),
            (240, 0.882, 272),
            (260, 0.890, 292),
            (300, 0.904, 331),
            (380, 0.922, 412),
            (456, 0.934, 488),
            (528, 0.942, 560),
            (600, 0.949, 632),
            (475, 0.936, 507),
            (800, 0.96, 833),
        ] {
            let t = EvalTransform::new(size, pct, MEAN, STD).unwrap();
            assert_eq!(t.scale_size(), want, "{size}/{pct}");
        }
    }

    #[test]
    fn geometry_truncates_the_long_side_and_crops_ties_to_even() {
        let t = EvalTransform::new(224, 0.875, MEAN, STD).unwrap();
        assert_eq!(t.resized_size(480, 360), (341, 256));
        assert_eq!(t.crop_origin(341, 256), (58, 16)); // round(58.5) = 58
        assert_eq!(t.resized_size(375, 500), (256, 341));
        assert_eq!(t.crop_origin(256, 343), (16, 60)); // round(59.5) = 60
        assert_eq!(t.resized_size(100, 80), (320, 256));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(EvalTransform::new(224, 1.2, MEAN, STD).is_err());
        assert!(EvalTransform::new(0, 0.9, MEAN, STD).is_err());
        assert!(EvalTransform::new(224, 0.9, MEAN, [0.2, 0.0, 0.2]).is_err());
    }
}
