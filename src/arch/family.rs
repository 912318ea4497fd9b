//! Model families as tables, keyed by timm architecture names: each family is one of timm's
//! `_gen_*` functions (its `arch_def` block strings and builder options), each member one of
//! timm's `register_model` functions (its width/depth/experts multipliers).
//!
//! Adding a member of an existing family is one [`MEMBERS`] row; a new family is one [`Family`]
//! variant with its [`Family::blocks`] and [`Family::options`].
use super::graph::Act;

/// A timm generator function: the block strings and builder options shared by its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// `_gen_efficientnet`: B0 blocks, SiLU, SE from the block input, scaled stem and head.
    EfficientNet,
    /// `_gen_efficientnet_lite`: no SE, ReLU6, fixed stem and head, first/last stage depth fixed.
    EfficientNetLite,
    /// `_gen_efficientnet_edge`: EdgeTPU, `er` blocks, ReLU, no SE.
    EfficientNetEdge,
    /// `_gen_efficientnet_condconv`: B0 blocks with CondConv (`cc4`) in the last three stages.
    EfficientNetCondConv,
    /// `_gen_mixnet_s`.
    MixNetS,
    /// `_gen_mixnet_m` (also MixNet-L, at width 1.3).
    MixNetM,
    /// `_gen_mobilenet_v3`, large.
    MobileNetV3Large,
    /// `_gen_mobilenet_v3`, large minimal (ReLU, no SE, 3×3 kernels).
    MobileNetV3LargeMinimal,
    /// `_gen_mobilenet_v3`, small.
    MobileNetV3Small,
    /// `_gen_mobilenet_v3`, small minimal.
    MobileNetV3SmallMinimal,
}

/// How a squeeze-excitation width is derived (timm `EfficientNetBuilder._make_block` and the
/// family's `se_layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeRule {
    /// `se_from_exp`: the ratio is of the expanded (mid) channels; otherwise of the block input
    /// (timm divides the ratio by the expansion and applies it to mid).
    pub from_exp: bool,
    /// `rd_round_fn = round_channels` (a multiple of 8); otherwise Python's `round`.
    pub divisible: bool,
    /// `force_act_layer`: the SE's activation regardless of the block's.
    pub act: Option<Act>,
    /// The gate.
    pub gate: Act,
}

/// The head after the last stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// EfficientNet: `conv_head` → `bn2` → `act2` → `global_pool` → `classifier`.
    ConvNormPool,
    /// MobileNetV3's efficient head: `global_pool` → `conv_head` (bias, no BN) → `act2` →
    /// `flatten` → `classifier`.
    PoolConv,
}

/// Where a family's TF variable names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfNaming {
    /// tensorflow/tpu `models/official/efficientnet` (EfficientNet, Lite, EdgeTPU, CondConv):
    /// `tpu_batch_normalization` layers.
    TpuEfficientNet,
    /// tensorflow/tpu `models/official/mnasnet/mixnet`: plain `batch_normalization` layers.
    TpuMixNet,
}

impl TfNaming {
    /// The layer type of its BatchNorms.
    pub fn batch_norm(self) -> &'static str {
        match self {
            TfNaming::TpuEfficientNet => "tpu_batch_normalization",
            TfNaming::TpuMixNet => "batch_normalization",
        }
    }
}

/// Builder options of a family (timm `_gen_*` kwargs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Default activation (`act_layer`).
    pub act: Act,
    /// SE width rule.
    pub se: SeRule,
    /// `fix_stem`: the stem is not width-scaled.
    pub fix_stem: bool,
    /// `num_features` is not width-scaled.
    pub fix_head: bool,
    /// `fix_first_last`: the first and last stage keep their repeats.
    pub fix_first_last: bool,
    /// `depth_trunc='round'` instead of `'ceil'`.
    pub depth_round: bool,
    /// Head layout.
    pub head: Head,
    /// TF naming, when the family's TF original is one zoo names.
    pub tf: Option<TfNaming>,
}

const SE_EFFICIENTNET: SeRule = SeRule {
    from_exp: false,
    divisible: false,
    act: None,
    gate: Act::Sigmoid,
};

const SE_MOBILENETV3: SeRule = SeRule {
    from_exp: true,
    divisible: true,
    act: Some(Act::Relu),
    gate: Act::HardSigmoid,
};

impl Family {
    /// Every family.
    pub const ALL: [Family; 10] = [
        Family::EfficientNet,
        Family::EfficientNetLite,
        Family::EfficientNetEdge,
        Family::EfficientNetCondConv,
        Family::MixNetS,
        Family::MixNetM,
        Family::MobileNetV3Large,
        Family::MobileNetV3LargeMinimal,
        Family::MobileNetV3Small,
        Family::MobileNetV3SmallMinimal,
    ];

    /// The family's name in an architecture string (`mixnet-m:width=1.3`).
    pub fn key(self) -> &'static str {
        match self {
            Family::EfficientNet => "efficientnet",
            Family::EfficientNetLite => "efficientnet-lite",
            Family::EfficientNetEdge => "efficientnet-edge",
            Family::EfficientNetCondConv => "efficientnet-condconv",
            Family::MixNetS => "mixnet-s",
            Family::MixNetM => "mixnet-m",
            Family::MobileNetV3Large => "mobilenetv3-large",
            Family::MobileNetV3LargeMinimal => "mobilenetv3-large-minimal",
            Family::MobileNetV3Small => "mobilenetv3-small",
            Family::MobileNetV3SmallMinimal => "mobilenetv3-small-minimal",
        }
    }

    /// The family by [`Family::key`].
    pub fn by_key(key: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.key() == key)
    }

    /// timm's `arch_def`: one entry per stage, block strings of a stage separated by spaces.
    pub fn blocks(self) -> &'static [&'static str] {
        match self {
            Family::EfficientNet => &super::efficientnet::BASE_BLOCKS,
            Family::EfficientNetLite => &[
                "ds_r1_k3_s1_e1_c16",
                "ir_r2_k3_s2_e6_c24",
                "ir_r2_k5_s2_e6_c40",
                "ir_r3_k3_s2_e6_c80",
                "ir_r3_k5_s1_e6_c112",
                "ir_r4_k5_s2_e6_c192",
                "ir_r1_k3_s1_e6_c320",
            ],
            Family::EfficientNetEdge => &[
                "er_r1_k3_s1_e4_c24_fc24_noskip",
                "er_r2_k3_s2_e8_c32",
                "er_r4_k3_s2_e8_c48",
                "ir_r5_k5_s2_e8_c96",
                "ir_r4_k5_s1_e8_c144",
                "ir_r2_k5_s2_e8_c192",
            ],
            Family::EfficientNetCondConv => &[
                "ds_r1_k3_s1_e1_c16_se0.25",
                "ir_r2_k3_s2_e6_c24_se0.25",
                "ir_r2_k5_s2_e6_c40_se0.25",
                "ir_r3_k3_s2_e6_c80_se0.25",
                "ir_r3_k5_s1_e6_c112_se0.25_cc4",
                "ir_r4_k5_s2_e6_c192_se0.25_cc4",
                "ir_r1_k3_s1_e6_c320_se0.25_cc4",
            ],
            Family::MixNetS => &[
                "ds_r1_k3_s1_e1_c16",
                "ir_r1_k3_a1.1_p1.1_s2_e6_c24 ir_r1_k3_a1.1_p1.1_s1_e3_c24",
                "ir_r1_k3.5.7_s2_e6_c40_se0.5_nsw ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw",
                "ir_r1_k3.5.7_p1.1_s2_e6_c80_se0.25_nsw ir_r2_k3.5_p1.1_s1_e6_c80_se0.25_nsw",
                "ir_r1_k3.5.7_a1.1_p1.1_s1_e6_c120_se0.5_nsw ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw",
                "ir_r1_k3.5.7.9.11_s2_e6_c200_se0.5_nsw ir_r2_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw",
            ],
            Family::MixNetM => &[
                "ds_r1_k3_s1_e1_c24",
                "ir_r1_k3.5.7_a1.1_p1.1_s2_e6_c32 ir_r1_k3_a1.1_p1.1_s1_e3_c32",
                "ir_r1_k3.5.7.9_s2_e6_c40_se0.5_nsw ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw",
                "ir_r1_k3.5.7_s2_e6_c80_se0.25_nsw ir_r3_k3.5.7.9_a1.1_p1.1_s1_e6_c80_se0.25_nsw",
                "ir_r1_k3_s1_e6_c120_se0.5_nsw ir_r3_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw",
                "ir_r1_k3.5.7.9_s2_e6_c200_se0.5_nsw ir_r3_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw",
            ],
            Family::MobileNetV3Large => &[
                "ds_r1_k3_s1_e1_c16_nre",
                "ir_r1_k3_s2_e4_c24_nre ir_r1_k3_s1_e3_c24_nre",
                "ir_r3_k5_s2_e3_c40_se0.25_nre",
                "ir_r1_k3_s2_e6_c80 ir_r1_k3_s1_e2.5_c80 ir_r2_k3_s1_e2.3_c80",
                "ir_r2_k3_s1_e6_c112_se0.25",
                "ir_r3_k5_s2_e6_c160_se0.25",
                "cn_r1_k1_s1_c960",
            ],
            Family::MobileNetV3LargeMinimal => &[
                "ds_r1_k3_s1_e1_c16",
                "ir_r1_k3_s2_e4_c24 ir_r1_k3_s1_e3_c24",
                "ir_r3_k3_s2_e3_c40",
                "ir_r1_k3_s2_e6_c80 ir_r1_k3_s1_e2.5_c80 ir_r2_k3_s1_e2.3_c80",
                "ir_r2_k3_s1_e6_c112",
                "ir_r3_k3_s2_e6_c160",
                "cn_r1_k1_s1_c960",
            ],
            Family::MobileNetV3Small => &[
                "ds_r1_k3_s2_e1_c16_se0.25_nre",
                "ir_r1_k3_s2_e4.5_c24_nre ir_r1_k3_s1_e3.67_c24_nre",
                "ir_r1_k5_s2_e4_c40_se0.25 ir_r2_k5_s1_e6_c40_se0.25",
                "ir_r2_k5_s1_e3_c48_se0.25",
                "ir_r3_k5_s2_e6_c96_se0.25",
                "cn_r1_k1_s1_c576",
            ],
            Family::MobileNetV3SmallMinimal => &[
                "ds_r1_k3_s2_e1_c16",
                "ir_r1_k3_s2_e4.5_c24 ir_r1_k3_s1_e3.67_c24",
                "ir_r1_k3_s2_e4_c40 ir_r2_k3_s1_e6_c40",
                "ir_r2_k3_s1_e3_c48",
                "ir_r3_k3_s2_e6_c96",
                "cn_r1_k1_s1_c576",
            ],
        }
    }

    /// Stem channels before width scaling (timm `stem_size`).
    pub fn stem(self) -> usize {
        match self {
            Family::MixNetS => 16,
            Family::MixNetM => 24,
            Family::MobileNetV3Large
            | Family::MobileNetV3LargeMinimal
            | Family::MobileNetV3Small
            | Family::MobileNetV3SmallMinimal => 16,
            _ => 32,
        }
    }

    /// `num_features` before width scaling.
    pub fn head(self) -> usize {
        match self {
            Family::MixNetS | Family::MixNetM => 1536,
            Family::MobileNetV3Small | Family::MobileNetV3SmallMinimal => 1024,
            _ => 1280,
        }
    }

    /// The builder options; `width` matters only for MobileNetV3's `fix_stem = width < 0.75`.
    pub fn options(self, width: f64) -> Options {
        let base = Options {
            act: Act::Silu,
            se: SE_EFFICIENTNET,
            fix_stem: false,
            fix_head: false,
            fix_first_last: false,
            depth_round: false,
            head: Head::ConvNormPool,
            tf: None,
        };
        match self {
            Family::EfficientNet => Options {
                tf: Some(TfNaming::TpuEfficientNet),
                ..base
            },
            Family::EfficientNetLite => Options {
                act: Act::Relu6,
                fix_stem: true,
                fix_head: true,
                fix_first_last: true,
                tf: Some(TfNaming::TpuEfficientNet),
                ..base
            },
            Family::EfficientNetEdge => Options {
                act: Act::Relu,
                tf: Some(TfNaming::TpuEfficientNet),
                ..base
            },
            Family::EfficientNetCondConv => Options {
                tf: Some(TfNaming::TpuEfficientNet),
                ..base
            },
            Family::MixNetS => Options {
                act: Act::Relu,
                fix_head: true,
                tf: Some(TfNaming::TpuMixNet),
                ..base
            },
            Family::MixNetM => Options {
                act: Act::Relu,
                fix_head: true,
                depth_round: true,
                tf: Some(TfNaming::TpuMixNet),
                ..base
            },
            Family::MobileNetV3Large | Family::MobileNetV3Small => Options {
                act: Act::HardSwish,
                se: SE_MOBILENETV3,
                fix_stem: width < 0.75,
                fix_head: true,
                head: Head::PoolConv,
                ..base
            },
            Family::MobileNetV3LargeMinimal | Family::MobileNetV3SmallMinimal => Options {
                act: Act::Relu,
                se: SE_MOBILENETV3,
                fix_stem: width < 0.75,
                fix_head: true,
                head: Head::PoolConv,
                ..base
            },
        }
    }
}

/// One timm architecture: (timm name, family, width, depth, experts multiplier).
pub type Member = (&'static str, Family, f64, f64, usize);

/// Every TF-ported member zoo builds, as timm registers them.
pub const MEMBERS: [Member; 30] = [
    ("tf_efficientnet_b0", Family::EfficientNet, 1.0, 1.0, 1),
    ("tf_efficientnet_b1", Family::EfficientNet, 1.0, 1.1, 1),
    ("tf_efficientnet_b2", Family::EfficientNet, 1.1, 1.2, 1),
    ("tf_efficientnet_b3", Family::EfficientNet, 1.2, 1.4, 1),
    ("tf_efficientnet_b4", Family::EfficientNet, 1.4, 1.8, 1),
    ("tf_efficientnet_b5", Family::EfficientNet, 1.6, 2.2, 1),
    ("tf_efficientnet_b6", Family::EfficientNet, 1.8, 2.6, 1),
    ("tf_efficientnet_b7", Family::EfficientNet, 2.0, 3.1, 1),
    ("tf_efficientnet_b8", Family::EfficientNet, 2.2, 3.6, 1),
    ("tf_efficientnet_l2", Family::EfficientNet, 4.3, 5.3, 1),
    ("tf_efficientnet_es", Family::EfficientNetEdge, 1.0, 1.0, 1),
    ("tf_efficientnet_em", Family::EfficientNetEdge, 1.0, 1.1, 1),
    ("tf_efficientnet_el", Family::EfficientNetEdge, 1.2, 1.4, 1),
    (
        "tf_efficientnet_lite0",
        Family::EfficientNetLite,
        1.0,
        1.0,
        1,
    ),
    (
        "tf_efficientnet_lite1",
        Family::EfficientNetLite,
        1.0,
        1.1,
        1,
    ),
    (
        "tf_efficientnet_lite2",
        Family::EfficientNetLite,
        1.1,
        1.2,
        1,
    ),
    (
        "tf_efficientnet_lite3",
        Family::EfficientNetLite,
        1.2,
        1.4,
        1,
    ),
    (
        "tf_efficientnet_lite4",
        Family::EfficientNetLite,
        1.4,
        1.8,
        1,
    ),
    (
        "tf_efficientnet_cc_b0_4e",
        Family::EfficientNetCondConv,
        1.0,
        1.0,
        1,
    ),
    (
        "tf_efficientnet_cc_b0_8e",
        Family::EfficientNetCondConv,
        1.0,
        1.0,
        2,
    ),
    (
        "tf_efficientnet_cc_b1_8e",
        Family::EfficientNetCondConv,
        1.0,
        1.1,
        2,
    ),
    ("tf_mixnet_s", Family::MixNetS, 1.0, 1.0, 1),
    ("tf_mixnet_m", Family::MixNetM, 1.0, 1.0, 1),
    ("tf_mixnet_l", Family::MixNetM, 1.3, 1.0, 1),
    (
        "tf_mobilenetv3_large_075",
        Family::MobileNetV3Large,
        0.75,
        1.0,
        1,
    ),
    (
        "tf_mobilenetv3_large_100",
        Family::MobileNetV3Large,
        1.0,
        1.0,
        1,
    ),
    (
        "tf_mobilenetv3_large_minimal_100",
        Family::MobileNetV3LargeMinimal,
        1.0,
        1.0,
        1,
    ),
    (
        "tf_mobilenetv3_small_075",
        Family::MobileNetV3Small,
        0.75,
        1.0,
        1,
    ),
    (
        "tf_mobilenetv3_small_100",
        Family::MobileNetV3Small,
        1.0,
        1.0,
        1,
    ),
    (
        "tf_mobilenetv3_small_minimal_100",
        Family::MobileNetV3SmallMinimal,
        1.0,
        1.0,
        1,
    ),
];

/// The member named `name` (a timm architecture name).
pub fn member(name: &str) -> Option<&'static Member> {
    MEMBERS.iter().find(|m| m.0 == name)
}
