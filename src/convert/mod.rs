//! Conversion of checkpoints into timm-compatible files: [`pipeline::convert`] opens a source
//! (through [`checkpoint`](crate::checkpoint)), maps it (through [`mapping`](crate::mapping)),
//! streams it into `.pth`/`.safetensors` ([`stream`], [`output`]), reads the files back and
//! proves them by inference.
pub mod output;
pub mod pipeline;
pub mod stream;

pub use crate::mapping::{
    fit, inventory, plan_tf, tf_efficientnet, MappingError, MappingIssue, Plan, PlanItem,
    SourceTensor, WeightSet, SHOWN_PROBLEMS,
};
