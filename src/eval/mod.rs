//! `zoo eval`: a model's ImageNet accuracy, measured exactly as timm's `validate.py` measures it.
//!
//! The pipeline reproduces timm's eval transform on Pillow 13.0.0 bit for bit (checked against
//! `timm.data.create_transform` by `tests/python/eval_parity.py`):
//!
//! 1. [`image`]: decode as `Image.open(f).convert("RGB")` does (libjpeg-turbo through the
//!    `turbojpeg` crate, PNG through `png`; greyscale replicated, CMYK as Pillow converts it).
//! 2. [`resize`]: Pillow's fixed-point bicubic resampler, with its pass order as a named setting
//!    ([`PassOrder`]).
//! 3. [`transform`]: torchvision's shortest-edge resize to `floor(img_size / crop_pct)`, centre
//!    crop (ties to even), normalisation to f32 CHW from the registry's `Zoo: Input`.
//!
//! Facts and sources: `shared/reference/eval-pipeline.md` (timm configs and transforms, Pillow's
//! `Resample.c`, decoder parity measurements).
pub mod dataset;
pub mod image;
pub mod imagenet;
pub mod model;
pub mod report_file;
pub mod resize;
pub mod run;
pub mod transform;
pub mod verdict;

pub use image::{decode, RgbImage};
pub use resize::{resize_bicubic, resize_bicubic_window, PassOrder, Window};
pub use transform::{EvalTransform, Normalize};

/// Why an image could not be evaluated or the pipeline not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The bytes are neither JPEG nor PNG.
    #[error("{image}: not a JPEG or PNG (first bytes {magic})")]
    UnknownFormat {
        /// The image (path, or `shard.tar:member`).
        image: String,
        /// Its first bytes, in hex.
        magic: String,
    },
    /// The file ends before the image does.
    #[error("{image}: truncated image ({len} bytes): {detail}")]
    Truncated {
        /// The image.
        image: String,
        /// The file's length.
        len: u64,
        /// The decoder's message.
        detail: String,
    },
    /// libjpeg-turbo refused the JPEG.
    #[error("{image}: JPEG decode failed: {message}")]
    Jpeg {
        /// The image.
        image: String,
        /// libjpeg-turbo's message.
        message: String,
    },
    /// The PNG decoder refused the file.
    #[error("{image}: PNG decode failed: {message}")]
    Png {
        /// The image.
        image: String,
        /// The decoder's message.
        message: String,
    },
    /// A valid image that zoo does not reproduce Pillow's reading of.
    #[error("{image}: unsupported: {what}")]
    Unsupported {
        /// The image.
        image: String,
        /// What is not supported.
        what: String,
    },
    /// The model's input settings cannot be reproduced.
    #[error("input settings: {0}")]
    Settings(String),
}
