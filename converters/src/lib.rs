//! Checkpoint formats for zoo: untrusted bytes in, typed tensors out.
//!
//! This crate is zoo's trust boundary. It reads and writes
//! - TensorFlow V2 checkpoints (tensor bundles: `<prefix>.index` + `<prefix>.data-NNNNN-of-MMMMM`),
//! - PyTorch `torch.save` files (`.pth`, zip and legacy formats) through a data-only pickle subset,
//! - safetensors.
//!
//! It has no network access, no libtorch and no knowledge of any model or registry.
//! Every length, count and offset read from a file is checked against [`Limits`]
//! and the real file size before anything is allocated or indexed. Bad input gives a
//! typed error that names the file, the offset or entry, and the expected vs actual value.
//! Nothing here panics on bad input, and nothing substitutes zeros or defaults for data.
#![deny(missing_docs)]

pub mod error;
pub mod npy;
pub mod pickle;
pub mod pth;
pub mod safetensors;
pub mod tensor;
pub mod tf_bundle;
pub mod writeback;

pub use error::{Error, Result};
pub use tensor::{DType, Limits, StateDict, Tensor};
