//! TensorFlow EfficientNet variable names and layouts → timm state-dict keys and layouts.
//!
//! Derived entirely from the resolved [`Spec`]: TF numbers its blocks with one flat counter
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
use crate::arch::efficientnet::{Block, BlockKind, ConvNorm, Spec};
use crate::arch::{BatchNorm, Conv, ParamKind, ParamSpec};

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
}

impl Layout {
    /// The axis permutation (torch axis i = TF axis `perm[i]`), if any.
    pub fn permutation(self) -> Option<&'static [usize]> {
        match self {
            Layout::Same => None,
            Layout::ConvHwio => Some(&[3, 2, 0, 1]),
            Layout::Depthwise => Some(&[2, 3, 0, 1]),
            Layout::Dense => Some(&[1, 0]),
        }
    }

    /// The TF shape that yields `torch_shape` after the permutation.
    pub fn tf_shape(self, torch_shape: &[usize]) -> Vec<usize> {
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
}

fn conv_maps(scope: &str, tf_layer: &str, conv: &Conv, layout: Layout, out: &mut Vec<TensorMap>) {
    let kernel = if layout == Layout::Depthwise {
        "depthwise_kernel"
    } else {
        "kernel"
    };
    for p in conv.params() {
        let (tf, layout) = match p.kind {
            ParamKind::Bias => (format!("{scope}/{tf_layer}/bias"), Layout::Same),
            _ => (format!("{scope}/{tf_layer}/{kernel}"), layout),
        };
        out.push(TensorMap {
            tf_name: tf,
            target: p,
            layout,
        });
    }
}

fn bn_maps(scope: &str, tf_layer: &str, bn: &BatchNorm, out: &mut Vec<TensorMap>) {
    for p in bn.params() {
        let leaf = match p.kind {
            ParamKind::Weight => "gamma",
            ParamKind::Bias => "beta",
            ParamKind::RunningMean => "moving_mean",
            ParamKind::RunningVar => "moving_variance",
        };
        out.push(TensorMap {
            tf_name: format!("{scope}/{tf_layer}/{leaf}"),
            target: p,
            layout: Layout::Same,
        });
    }
}

fn conv_norm_maps(
    scope: &str,
    conv: &str,
    bn: &str,
    cn: &ConvNorm,
    layout: Layout,
    out: &mut Vec<TensorMap>,
) {
    conv_maps(scope, conv, &cn.conv, layout, out);
    bn_maps(scope, bn, &cn.bn, out);
}

fn block_maps(model_scope: &str, b: &Block, out: &mut Vec<TensorMap>) {
    let scope = format!("{model_scope}/blocks_{}", b.flat_index);
    let (dw_bn, proj_conv, proj_bn) = match b.kind {
        BlockKind::InvertedResidual => {
            let e = b.expand.as_ref().expect("ir blocks have an expansion");
            conv_norm_maps(
                &scope,
                "conv2d",
                "tpu_batch_normalization",
                e,
                Layout::ConvHwio,
                out,
            );
            (
                "tpu_batch_normalization_1",
                "conv2d_1",
                "tpu_batch_normalization_2",
            )
        }
        BlockKind::DepthwiseSeparable => (
            "tpu_batch_normalization",
            "conv2d",
            "tpu_batch_normalization_1",
        ),
    };
    conv_norm_maps(
        &scope,
        "depthwise_conv2d",
        dw_bn,
        &b.depthwise,
        Layout::Depthwise,
        out,
    );
    if let Some(se) = &b.se {
        conv_maps(&scope, "se/conv2d", &se.reduce, Layout::ConvHwio, out);
        conv_maps(&scope, "se/conv2d_1", &se.expand, Layout::ConvHwio, out);
    }
    conv_norm_maps(
        &scope,
        proj_conv,
        proj_bn,
        &b.project,
        Layout::ConvHwio,
        out,
    );
}

/// The full map for a model whose TF variables live under `model_scope` (e.g. `efficientnet-b6`),
/// in timm `state_dict()` order — the same order as [`Spec::params`].
pub fn tensor_maps(spec: &Spec, model_scope: &str) -> Vec<TensorMap> {
    let mut out = vec![];
    let stem = format!("{model_scope}/stem");
    conv_norm_maps(
        &stem,
        "conv2d",
        "tpu_batch_normalization",
        &spec.stem,
        Layout::ConvHwio,
        &mut out,
    );
    for b in spec.blocks() {
        block_maps(model_scope, b, &mut out);
    }
    let head = format!("{model_scope}/head");
    conv_norm_maps(
        &head,
        "conv2d",
        "tpu_batch_normalization",
        &spec.head,
        Layout::ConvHwio,
        &mut out,
    );
    for p in spec.classifier.params() {
        let (leaf, layout) = match p.kind {
            ParamKind::Bias => ("bias", Layout::Same),
            _ => ("kernel", Layout::Dense),
        };
        out.push(TensorMap {
            tf_name: format!("{head}/dense/{leaf}"),
            target: p,
            layout,
        });
    }
    debug_assert_eq!(
        out.iter().map(|m| &m.target).collect::<Vec<_>>(),
        spec.params().iter().collect::<Vec<_>>()
    );
    out
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
        let spec = ArchConfig::variant("b0").unwrap().resolve().unwrap();
        let maps = tensor_maps(&spec, "efficientnet-b0");
        let m = maps
            .iter()
            .find(|m| m.target.name == "blocks.2.1.conv_pwl.weight")
            .unwrap();
        // stage 0 has 1 block, stage 1 has 2 → blocks.2.1 is TF blocks_4.
        assert_eq!(m.tf_name, "efficientnet-b0/blocks_4/conv2d_1/kernel");
        assert_eq!(maps.len(), spec.params().len());
    }
}
