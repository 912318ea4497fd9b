//! TensorFlow variable names and layouts → timm state-dict keys and layouts, for the
//! tensorflow/tpu families (EfficientNet, Lite, EdgeTPU, CondConv, MixNet) and TF-slim's
//! MobileNetV3 ([`TfVariables`] says which leaf names and classifier layout a network's
//! original uses).
//!
//! Derived entirely from the built [`Network`], whose builder names each layer's TF original
//! ([`Layer::params_with_source`]) as it creates it: tensorflow/tpu numbers its blocks with one flat counter
//! (`blocks_<n>`), timm by (stage, index), so the map needs the expanded architecture, never the
//! scope name. Keras auto-numbers the layers inside a block, in construction order
//! (tensorflow/tpu `models/official/efficientnet/efficientnet_model.py`, `MBConvBlock._build`):
//!
//! | timm (ir block)     | TF (`expand_ratio != 1`)      | timm (ds block)  | TF (no expansion)          |
//! |---------------------|-------------------------------|------------------|----------------------------|
//! | `conv_pw`           | `conv2d`                      | —                | —                          |
//! | `bn1`               | `tpu_batch_normalization`     | —                | —                          |
//! | `conv_dw`           | `depthwise_conv2d`            | `conv_dw`        | `depthwise_conv2d`         |
//! | `bn2`               | `tpu_batch_normalization_1`   | `bn1`            | `tpu_batch_normalization`  |
//! | `se.conv_reduce`    | `se/conv2d`                   | same             | same                       |
//! | `se.conv_expand`    | `se/conv2d_1`                 | same             | same                       |
//! | `conv_pwl`          | `conv2d_1`                    | `conv_pw`        | `conv2d`                   |
//! | `bn3`               | `tpu_batch_normalization_2`   | `bn2`            | `tpu_batch_normalization_1`|
//!
//! Layouts: conv kernels are HWIO in TF and OIHW in torch (permute `[3,2,0,1]`); depthwise kernels
//! are `[kh, kw, C, 1]` and become `[C, 1, kh, kw]` (permute `[2,3,0,1]`, not the conv
//! permutation); dense kernels `[in, out]` become `[out, in]`; BN gamma/beta/moving_mean/
//! moving_variance become weight/bias/running_mean/running_var unchanged.
use zoo_converters::tensor::Tensor;

use crate::arch::{Layer, Network, ParamKind, ParamSpec, TfVariables};

/// Version of this mapping; recorded in converted files' provenance.
pub const MAPPING_VERSION: &str = "tf-efficientnet/1";

/// Suffix of TF's exponential-moving-average shadow variables.
pub const EMA_SUFFIX: &str = "/ExponentialMovingAverage";

/// How a TF tensor becomes its torch layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// 1-D tensors (biases, BN): unchanged.
    Same,
    /// `[kh, kw, in, out]` → `[out, in, kh, kw]`.
    ConvHwio,
    /// `[kh, kw, C, 1]` → `[C, 1, kh, kw]`.
    Depthwise,
    /// `[in, out]` → `[out, in]`.
    Dense,
    /// A CondConv expert bank: TF stores each expert's kernel flattened, `[E, kh·kw·i·o]`
    /// (`kernel` = `[kh, kw, i, o]` as TF lays it out; `[kh, kw, C, 1]` for a depthwise bank),
    /// timm `[E, o·i·kh·kw]`: viewed as `[E, kh, kw, i, o]`, permuted to `[E, o, i, kh, kw]`.
    CondConv {
        /// One expert's TF kernel shape.
        kernel: [usize; 4],
    },
    /// TF-slim's classifier, a 1×1 conv `[1, 1, F, 1 + K]` whose class 0 is the background:
    /// `[K, F]` without it.
    SlimLogits,
    /// TF-slim's classifier bias `[1 + K]`: `[K]` without the background class.
    DropBackground,
}

impl Layout {
    /// The axis permutation (torch axis i = TF axis `perm[i]`), if any.
    pub fn permutation(self) -> Option<&'static [usize]> {
        match self {
            Layout::Same => None,
            Layout::ConvHwio => Some(&[3, 2, 0, 1]),
            Layout::Depthwise => Some(&[2, 3, 0, 1]),
            Layout::Dense => Some(&[1, 0]),
            Layout::CondConv { .. } => Some(&[0, 4, 3, 1, 2]),
            Layout::SlimLogits => Some(&[3, 2, 0, 1]),
            Layout::DropBackground => None,
        }
    }

    /// Whether the tensor is stored as TF stores it.
    pub fn is_same(self) -> bool {
        self == Layout::Same
    }

    /// The shape the TF tensor is viewed as before [`Layout::permutation`] applies (its own
    /// shape except for CondConv's flattened expert kernels).
    fn view(self, tf_shape: &[usize]) -> Vec<usize> {
        match self {
            Layout::CondConv { kernel } => {
                let mut v = vec![tf_shape.first().copied().unwrap_or(0)];
                v.extend(kernel);
                v
            }
            _ => tf_shape.to_vec(),
        }
    }

    /// The TF shape that yields `torch_shape` after the permutation.
    pub fn tf_shape(self, torch_shape: &[usize]) -> Vec<usize> {
        match (self, torch_shape) {
            // CondConv banks are `[E, n]` on both sides.
            (Layout::CondConv { .. }, _) => return torch_shape.to_vec(),
            (Layout::SlimLogits, &[k, f]) => return vec![1, 1, f, k.saturating_add(1)],
            (Layout::DropBackground, &[k]) => return vec![k.saturating_add(1)],
            _ => {}
        }
        match self.permutation() {
            None => torch_shape.to_vec(),
            Some(perm) => {
                let mut tf = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    tf[p] = torch_shape[i];
                }
                tf
            }
        }
    }
}

/// One target tensor and the TF variable it comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorMap {
    /// TF variable name without the EMA suffix, including the model scope.
    pub tf_name: String,
    /// The timm tensor it becomes.
    pub target: ParamSpec,
    /// Layout change.
    pub layout: Layout,
}

impl TensorMap {
    /// The TF shape this mapping expects.
    pub fn tf_shape(&self) -> Vec<usize> {
        self.layout.tf_shape(&self.target.shape)
    }

    /// `tensor` (of [`TensorMap::tf_shape`]) in timm's layout, written into `buf`'s allocation;
    /// `None` when its shape is not the one the map expects. A [`Layout::Same`] tensor is
    /// copied; callers that can avoid the copy check [`Layout::permutation`] first.
    pub fn to_timm(&self, tensor: &Tensor, buf: Vec<u8>) -> Option<Tensor> {
        if tensor.shape() != self.tf_shape() {
            return None;
        }
        let element = tensor.dtype().size();
        // Drops slim's background class: the first row of a `[1 + K, …]` tensor.
        let drop_first_row = |t: Tensor| {
            let row = t.shape().iter().skip(1).product::<usize>() * element;
            let data = t.data().get(row..)?.to_vec();
            Tensor::new("", t.dtype(), self.target.shape.clone(), data).ok()
        };
        let perm = match self.layout {
            Layout::Same => return Some(tensor.clone()),
            Layout::DropBackground => return drop_first_row(tensor.clone()),
            Layout::SlimLogits => {
                // `[1, 1, F, 1 + K]` → `[1 + K, F, 1, 1]` → rows 1.. as `[K, F]`.
                let perm = self.layout.permutation()?;
                return drop_first_row(tensor.permute_into(perm, buf)?);
            }
            _ => self.layout.permutation()?,
        };
        let view = self.layout.view(tensor.shape());
        let permuted = if view == tensor.shape() {
            tensor.permute_into(perm, buf)?
        } else {
            tensor.clone().reshape(view)?.permute_into(perm, buf)?
        };
        permuted.reshape(self.target.shape.clone())
    }
}

/// A layer the network gives no TF name for: the network was not built from a TF original.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{layer}` has no TensorFlow source name in architecture `{arch}`")]
pub struct NoSource {
    /// The architecture.
    pub arch: String,
    /// The timm module without a source.
    pub layer: String,
}

/// The full map for a model whose TF variables live under `model_scope` (e.g. `efficientnet-b6`),
/// in timm `state_dict()` order — the same order as [`Network::params`]: one generic walk over
/// the layers, each naming its TF layer ([`Layer::source`], set by the builder).
pub fn tensor_maps(net: &Network, model_scope: &str) -> Result<Vec<TensorMap>, NoSource> {
    let slim = net.tf_variables == Some(TfVariables::Slim);
    let (kernel, depthwise_kernel, bias) = if slim {
        ("weights", "depthwise_weights", "biases")
    } else {
        ("kernel", "depthwise_kernel", "bias")
    };
    let mut out = vec![];
    for layer in net.layers() {
        let params = layer.params_with_source().ok_or_else(|| NoSource {
            arch: net.arch.clone(),
            layer: layer.name().to_owned(),
        })?;
        for (p, source) in params {
            let tf = |leaf: &str| format!("{model_scope}/{source}/{leaf}");
            let (tf_name, layout) = match (layer, p.kind) {
                (Layer::Linear(_), ParamKind::Bias) if slim => (tf(bias), Layout::DropBackground),
                (Layer::Linear(_), _) if slim => (tf(kernel), Layout::SlimLogits),
                (Layer::Conv(_) | Layer::Linear(_), ParamKind::Bias) => (tf(bias), Layout::Same),
                (Layer::Conv(c), _) if c.experts > 0 => {
                    // One expert's kernel as TF lays it out (`[kh, kw, C, 1]` when depthwise).
                    let k = c.max_kernel();
                    if c.is_depthwise() {
                        let kernel = [k, k, c.in_chs, 1];
                        (tf("depthwise_condconv_kernel"), Layout::CondConv { kernel })
                    } else {
                        let kernel = [k, k, c.in_chs / c.groups.max(1), c.out_chs];
                        (tf("condconv_kernel"), Layout::CondConv { kernel })
                    }
                }
                (Layer::Conv(c), _) if c.is_depthwise() => {
                    (tf(depthwise_kernel), Layout::Depthwise)
                }
                (Layer::Conv(_), _) => (tf(kernel), Layout::ConvHwio),
                (Layer::Linear(_), _) => (tf(kernel), Layout::Dense),
                (Layer::Norm(_), kind) => (
                    tf(match kind {
                        ParamKind::Weight => "gamma",
                        ParamKind::Bias => "beta",
                        ParamKind::RunningMean => "moving_mean",
                        ParamKind::RunningVar => "moving_variance",
                    }),
                    Layout::Same,
                ),
            };
            out.push(TensorMap {
                tf_name,
                target: p,
                layout,
            });
        }
    }
    Ok(out)
}

/// What a TF variable that is not a model weight is, when it may be skipped.
pub fn ignore_reason(name: &str) -> Option<&'static str> {
    let leaf = name.rsplit('/').next().unwrap_or(name);
    match leaf {
        "global_step" => Some("training step counter"),
        "RMSProp" | "RMSProp_1" => Some("RMSProp optimizer slot"),
        "Momentum" => Some("momentum optimizer slot"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;

    #[test]
    fn layouts_invert() {
        assert_eq!(Layout::ConvHwio.tf_shape(&[24, 8, 3, 3]), vec![3, 3, 8, 24]);
        assert_eq!(
            Layout::Depthwise.tf_shape(&[48, 1, 5, 5]),
            vec![5, 5, 48, 1]
        );
        assert_eq!(Layout::Dense.tf_shape(&[10, 64]), vec![64, 10]);
    }

    #[test]
    fn b0_uses_flat_block_numbers() {
        let net = ArchConfig::variant("b0").unwrap().resolve().unwrap();
        let maps = tensor_maps(&net, "efficientnet-b0").unwrap();
        let m = maps
            .iter()
            .find(|m| m.target.name == "blocks.2.1.conv_pwl.weight")
            .unwrap();
        // stage 0 has 1 block, stage 1 has 2 → blocks.2.1 is TF blocks_4.
        assert_eq!(m.tf_name, "efficientnet-b0/blocks_4/conv2d_1/kernel");
        assert_eq!(maps.len(), net.params().len());
        let dw = maps
            .iter()
            .find(|m| m.target.name == "blocks.0.0.conv_dw.weight")
            .unwrap();
        assert_eq!(
            (dw.tf_name.as_str(), dw.layout),
            (
                "efficientnet-b0/blocks_0/depthwise_conv2d/depthwise_kernel",
                Layout::Depthwise
            )
        );
    }
}
