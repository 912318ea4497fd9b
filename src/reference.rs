//! Reference vectors: an input and the logits the original framework computed from it, with
//! the tolerance a converted model must meet. The registry names them (`Zoo: Reference`), the
//! CLI takes them as flags, and the conversion check runs them.
use std::path::PathBuf;

/// Default tolerance on logits: the largest absolute difference that still passes.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Inputs and expected outputs of a model, from the original framework.
#[derive(Debug, Clone)]
pub struct ReferenceVectors {
    /// NCHW float32 input.
    pub input: PathBuf,
    /// `[N, classes]` float32 logits.
    pub logits: PathBuf,
    /// Max abs difference allowed on the logits.
    pub tolerance: f64,
}
