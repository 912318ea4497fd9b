//! Checkpoint formats for zoo: untrusted bytes in, typed tensors out.
//!
//! This crate is zoo's trust boundary. It reads and writes
//! - TensorFlow V2 checkpoints (tensor bundles: `<prefix>.index` + `<prefix>.data-NNNNN-of-MMMMM`),
//! - PyTorch `torch.save` files (`.pth`, zip and legacy formats) through a data-only pickle subset,
//! - safetensors.
//!
//! It has no network access, no libtorch and no knowledge of any model or registry.
//! Every length, count and offset read from a file is checked against [`Limits`] (memory, disk,
//! counts, depth) and the real file size before anything is allocated, written or indexed, and
//! allocations sized from a file use `try_reserve`. Names from files are escaped in messages
//! ([`text::Escaped`]). Bad input gives a
//! typed error that names the file, the offset or entry, and the expected vs actual value.
//! Nothing here panics on bad input, and nothing substitutes zeros or defaults for data.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod alloc;
pub mod error;
pub mod limits;
pub mod npy;
pub mod pickle;
pub mod pth;
pub mod safetensors;
pub mod tensor;
pub mod text;
pub mod tf_bundle;
pub mod writeback;
mod zipread;

pub use error::{Error, Result};
pub use limits::{LimitKind, Limits, LimitsError};
pub use tensor::{DType, StateDict, Tensor};
