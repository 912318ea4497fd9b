//! The libtorch API of a build without the `torch` feature: the same signatures as
//! `enabled.rs`, every call returning [`TorchError::Unavailable`].
use zoo_converters::{StateDict, Tensor};

use super::TorchError;
use crate::arch::Network;

/// False: this build has no libtorch.
pub fn available() -> bool {
    false
}

/// No CUDA devices without libtorch.
pub fn cuda_devices() -> usize {
    0
}

/// Model on libtorch; cannot be built without the `torch` feature.
#[derive(Debug)]
pub struct Model {
    _unavailable: std::convert::Infallible,
}

impl Model {
    /// Always [`TorchError::Unavailable`].
    pub fn load(_spec: &Network, _weights: &StateDict) -> Result<Model, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Always [`TorchError::Unavailable`].
    pub fn load_on(
        _spec: &Network,
        _weights: &StateDict,
        _cuda: Option<usize>,
        _half: bool,
    ) -> Result<Model, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Always [`TorchError::Unavailable`].
    pub fn zeroed(_spec: &Network) -> Result<Model, TorchError> {
        Err(TorchError::Unavailable)
    }

    /// Unreachable: no `Model` exists in this build.
    pub fn replica(&self, _threads: usize) -> Model {
        match self._unavailable {}
    }

    /// Unreachable: no `Model` exists in this build.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        match self._unavailable {}
    }

    /// Unreachable: no `Model` exists in this build.
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
            Model::load(&spec, &vec![]),
            Err(TorchError::Unavailable)
        ));
        assert!(matches!(Model::zeroed(&spec), Err(TorchError::Unavailable)));
    }
}
