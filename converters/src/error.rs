//! The crate-wide error. Each format module owns a detailed error type; this enum wraps them,
//! so callers can match on "which format failed" and still print the full evidence.
//!
//! Every message is complete on its own: an underlying error (an OS error, a pickle error) is
//! part of the text and is not also reported as [`std::error::Error::source`], so a cause chain
//! printed with `{:#}` never shows the same text twice.
use std::path::PathBuf;

use crate::limits::LimitKind;

/// Any failure of a reader or writer in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A tensor's declared shape and dtype do not match its byte length.
    #[error(
        "tensor `{}`: {dtype:?} {shape:?} needs {expected} bytes, got {actual}",
        crate::text::esc(name)
    )]
    TensorSize {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: crate::DType,
        /// Its shape.
        shape: Vec<usize>,
        /// Bytes implied by dtype and shape.
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// A size computation overflowed or exceeded a [`crate::Limits`] bound.
    #[error("{what}: {actual} exceeds the {kind} of {limit} ({})", kind.hint())]
    Limit {
        /// What was being sized.
        what: String,
        /// The value found.
        actual: u64,
        /// The configured limit.
        limit: u64,
        /// Which bound.
        kind: LimitKind,
    },
    /// A TensorFlow tensor bundle (V2 checkpoint) could not be read or written.
    #[error(transparent)]
    TfBundle(#[from] crate::tf_bundle::BundleError),
    /// A PyTorch `.pth` file could not be read or written.
    #[error(transparent)]
    Pth(#[from] crate::pth::Error),
    /// A safetensors file could not be read or written.
    #[error(transparent)]
    Safetensors(#[from] crate::safetensors::Error),
    /// A `.npy` file could not be read.
    #[error(transparent)]
    Npy(#[from] crate::npy::Error),
    /// A pickle could not be interpreted.
    #[error(transparent)]
    Pickle(#[from] crate::pickle::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
