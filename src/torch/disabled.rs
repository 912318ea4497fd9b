//! The libtorch API of a build without the `torch` feature: the same signatures as
//! `enabled.rs`, every call returning [`TorchError::Unavailable`].
use zoo_converters::{StateDict, Tensor};

use super::TorchError;
use crate::arch::Spec;

/// False: this build has no libtorch.
pub fn available() -> bool {
    false
}

/// No CUDA devices without libtorch.
pub fn cuda_devices() -> usize {
    0
}

/// EfficientNet on libtorch; cannot be built without the `torch` feature.
#[derive(Debug)]
pub struct EfficientNet {
    _unavailable: std::convert::Infallible,
}

impl EfficientNet {
    /// Always [`TorchError::Unavailable`].
    pub fn load(_spec: &Spec, _weights: &StateDict) -> Result<EfficientNet, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Always [`TorchError::Unavailable`].
    pub fn load_on(
        _spec: &Spec,
        _weights: &StateDict,
        _cuda: Option<usize>,
        _half: bool,
    ) -> Result<EfficientNet, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Always [`TorchError::Unavailable`].
    pub fn zeroed(_spec: &Spec) -> Result<EfficientNet, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Unreachable: no `EfficientNet` exists in this build.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        match self._unavailable {}
    }

    /// Unreachable: no `EfficientNet` exists in this build.
    pub fn forward(&self, _input_nchw: &Tensor) -> Result<Tensor, TorchError> {
        match self._unavailable {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_says_unavailable() {
        let spec = crate::arch::ArchConfig::base().resolve().unwrap();
        assert!(matches!(
            EfficientNet::load(&spec, &vec![]),
            Err(TorchError::Unavailable)
        ));
        assert!(matches!(
            EfficientNet::zeroed(&spec),
            Err(TorchError::Unavailable)
        ));
    }
}
