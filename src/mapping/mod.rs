//! The TF → timm name and layout map: which checkpoint tensor becomes which timm tensor.
//!
//! It sits below both [`checkpoint`](crate::checkpoint) (which opens a TF bundle through it)
//! and [`convert`](crate::convert) (which streams a plan into files), so neither imports the
//! other's caller.
//!
//! [`plan_tf`] matches a checkpoint's inventory (names, dtypes, shapes) against the
//! built [`Network`] through [`tf_efficientnet::tensor_maps`]. It is strict: every source tensor is
//! either mapped or ignored for a stated reason, every target tensor is produced, every shape is
//! checked, and all problems are reported together in one [`MappingError`]. Checkpoint names
//! are matched in their canonical form ([`keras_names`]: Keras's graph-wide layer counters
//! reduced to ranks per scope), and reported as the checkpoint spells them.
pub mod fit;
pub mod keras_names;
pub mod tf_efficientnet;

use std::collections::{BTreeMap, BTreeSet};

use zoo_converters::DType;

use crate::arch::Network;
use tf_efficientnet::{ignore_reason, tensor_maps, TensorMap, EMA_SUFFIX};

/// Which of TF's two copies of each variable to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightSet {
    /// The `/ExponentialMovingAverage` shadows, which the official eval restores (default).
    #[default]
    Ema,
    /// The raw training variables.
    Raw,
}

impl WeightSet {
    /// The name used in provenance metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightSet::Ema => "ema",
            WeightSet::Raw => "raw",
        }
    }
}

/// One tensor of a source checkpoint, as listed by its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTensor {
    /// Name in the checkpoint.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

/// A single problem found while matching a checkpoint against the architecture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MappingIssue {
    /// No `<scope>/stem/...` variable, or several model scopes.
    Scope {
        /// The scopes found.
        found: Vec<String>,
    },
    /// A target tensor has no source.
    Missing {
        /// timm key.
        target: String,
        /// The TF name looked for.
        source: String,
        /// The checkpoint numbers its Keras layers graph-wide (or has a Keras model scope), so
        /// `source` is in the canonical form, not the checkpoint's spelling.
        canonical: bool,
    },
    /// The source has a different shape than the architecture implies.
    Shape {
        /// timm key.
        target: String,
        /// TF name.
        source: String,
        /// TF shape the architecture implies.
        expected: Vec<usize>,
        /// TF shape in the checkpoint.
        actual: Vec<usize>,
    },
    /// The source is not float32.
    Dtype {
        /// TF name.
        source: String,
        /// Its dtype.
        actual: String,
    },
    /// The architecture names no TF original for a layer (it was not built from a TF model).
    NoSource {
        /// timm module.
        layer: String,
    },
    /// Two checkpoint tensors with one canonical name ([`keras_names`]): which one a layer
    /// comes from cannot be told.
    Ambiguous {
        /// The canonical name.
        canonical: String,
        /// The checkpoint's names for it.
        sources: Vec<String>,
    },
    /// A source tensor that nothing maps and no rule ignores.
    Unexpected {
        /// TF name.
        source: String,
        /// Its shape.
        shape: Vec<usize>,
    },
}

/// Tensor and scope names come from the checkpoint: shown escaped (no terminal control
/// characters).
impl std::fmt::Display for MappingIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use zoo_converters::text::esc;
        match self {
            MappingIssue::Scope { found } if found.is_empty() => f.write_str(
                "no `<scope>/stem/conv2d/kernel` (tensorflow/tpu) or `<scope>/Conv/weights` (TF-slim) variable: not a TF checkpoint of a family zoo maps",
            ),
            MappingIssue::Scope { found } => {
                let found: Vec<String> = found.iter().map(|s| esc(s).to_string()).collect();
                write!(f, "several model scopes: {}", found.join(", "))
            }
            MappingIssue::NoSource { layer } => {
                write!(
                    f,
                    "{layer}: the architecture names no TensorFlow variable for it"
                )
            }
            MappingIssue::Missing {
                target,
                source,
                canonical,
            } => {
                write!(f, "{target}: missing source tensor `{}`", esc(source))?;
                if *canonical {
                    f.write_str(" (Keras layers numbered per scope, without the model scope)")?;
                }
                Ok(())
            }
            MappingIssue::Shape {
                target,
                source,
                expected,
                actual,
            } => write!(
                f,
                "{target}: `{}` has shape {actual:?}, the architecture needs {expected:?}",
                esc(source)
            ),
            MappingIssue::Dtype { source, actual } => {
                write!(f, "`{}` is {actual}, expected F32", esc(source))
            }
            MappingIssue::Ambiguous { canonical, sources } => {
                let sources: Vec<String> =
                    sources.iter().map(|s| format!("`{}`", esc(s))).collect();
                write!(
                    f,
                    "{} all stand for `{}`: the layer order in their scope is ambiguous",
                    sources.join(", "),
                    esc(canonical)
                )
            }
            MappingIssue::Unexpected { source, shape } => write!(
                f,
                "`{}` {shape:?} is neither mapped nor a known optimizer/bookkeeping tensor",
                esc(source)
            ),
        }
    }
}

/// Every problem found when matching a checkpoint to an architecture. Its message lists the
/// first [`SHOWN_PROBLEMS`] and the diagnosis; `issues` has them all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", problem_list("tensor problem(s) mapping the checkpoint to", arch, issues, diagnosis.as_deref()))]
pub struct MappingError {
    /// The architecture (display form).
    pub arch: String,
    /// All problems, in target order then source order.
    pub issues: Vec<MappingIssue>,
    /// What the checkpoint's shapes say, and which architecture fits them.
    pub diagnosis: Option<Box<fit::Diagnosis>>,
}

/// How many problems an error message lists before it counts the rest.
pub const SHOWN_PROBLEMS: usize = 10;

/// `N <what> `arch`:`, the first [`SHOWN_PROBLEMS`] problems indented, a count of the rest, and
/// the diagnosis.
pub(crate) fn problem_list<T: std::fmt::Display>(
    what: &str,
    arch: &str,
    problems: &[T],
    diagnosis: Option<&fit::Diagnosis>,
) -> String {
    let mut out = format!("{} {what} `{arch}`:", problems.len());
    for p in problems.iter().take(SHOWN_PROBLEMS) {
        out.push_str(&format!("\n  {p}"));
    }
    if problems.len() > SHOWN_PROBLEMS {
        out.push_str(&format!(
            "\n  … and {} more",
            problems.len() - SHOWN_PROBLEMS
        ));
    }
    if let Some(d) = diagnosis {
        out.push_str(&format!("\n{d}"));
    }
    out
}

/// One step of a conversion: read `source`, apply `map.layout`, store as `map.target.name`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanItem {
    /// The checkpoint tensor to read (with the EMA suffix when converting EMA weights).
    pub source: String,
    /// Where it goes.
    pub map: TensorMap,
}

/// A checked conversion: what to read, in timm order, and what was deliberately skipped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The weight set converted.
    pub weights: WeightSet,
    /// The TF model scope (`efficientnet-b6`).
    pub scope: String,
    /// Conversions in timm `state_dict()` order.
    pub items: Vec<PlanItem>,
    /// Skipped tensors and why, sorted by name.
    pub ignored: BTreeMap<String, String>,
}

/// A bundle's index as the planner sees it.
pub fn inventory(bundle: &zoo_converters::tf_bundle::Bundle) -> Vec<SourceTensor> {
    bundle
        .entries()
        .iter()
        .map(|e| SourceTensor {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
        })
        .collect()
}

/// Finds the single TF model scope: the `X` of `X/stem/conv2d/kernel` (tensorflow/tpu) or
/// `X/Conv/weights` (TF-slim), or of its EMA shadow, for checkpoints that hold only the EMA
/// weights.
fn model_scope(inventory: &[SourceTensor]) -> Result<String, Vec<String>> {
    let scopes: BTreeSet<String> = inventory
        .iter()
        .filter_map(|t| {
            let name = t.name.strip_suffix(EMA_SUFFIX).unwrap_or(&t.name);
            // tensorflow/tpu's stem conv, or TF-slim's.
            name.strip_suffix("/stem/conv2d/kernel")
                .or_else(|| name.strip_suffix("/Conv/weights"))
                .map(str::to_owned)
        })
        .collect();
    // TF-slim's squeeze-excite convs are `Conv` too (`X/expanded_conv_3/squeeze_excite/Conv`):
    // a scope inside another found scope is not a model scope.
    let outer: Vec<String> = scopes
        .iter()
        .filter(|s| {
            !scopes.iter().any(|o| {
                s.len() > o.len() && s.starts_with(o.as_str()) && s[o.len()..].starts_with('/')
            })
        })
        .cloned()
        .collect();
    match outer.len() {
        1 => Ok(outer.into_iter().next().unwrap_or_default()),
        _ => Err(outer),
    }
}

/// Matches a TF EfficientNet checkpoint's inventory to `spec`. When it does not match, the
/// error says which architecture the checkpoint's shapes fit ([`fit::Diagnosis`]).
pub fn plan_tf(
    net: &Network,
    inventory: &[SourceTensor],
    weights: WeightSet,
) -> Result<Plan, MappingError> {
    let canonical = keras_names::canonical_names(inventory.iter().map(|t| t.name.as_str()));
    let mut spelled: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (c, t) in canonical.iter().zip(inventory) {
        spelled.entry(c).or_default().push(&t.name);
    }
    let ambiguous: Vec<MappingIssue> = spelled
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(c, names)| MappingIssue::Ambiguous {
            canonical: (*c).to_owned(),
            sources: names.iter().map(|n| (*n).to_owned()).collect(),
        })
        .collect();
    if !ambiguous.is_empty() {
        return Err(MappingError {
            arch: net.arch.clone(),
            issues: ambiguous,
            diagnosis: None,
        });
    }
    let renamed = canonical.iter().zip(inventory).any(|(c, t)| *c != t.name);
    let as_spelled = |name: &mut String| {
        if let Some(original) = spelled.get(name.as_str()).and_then(|n| n.first()) {
            *name = (*original).to_owned();
        }
    };
    let inventory: Vec<SourceTensor> = canonical
        .iter()
        .zip(inventory)
        .map(|(name, t)| SourceTensor {
            name: name.clone(),
            ..t.clone()
        })
        .collect();
    match plan_canonical(net, &inventory, weights) {
        Ok(mut plan) => {
            for item in &mut plan.items {
                as_spelled(&mut item.source);
            }
            plan.ignored = std::mem::take(&mut plan.ignored)
                .into_iter()
                .map(|(mut name, reason)| {
                    as_spelled(&mut name);
                    (name, reason)
                })
                .collect();
            Ok(plan)
        }
        Err(mut e) => {
            for issue in &mut e.issues {
                match issue {
                    MappingIssue::Shape { source, .. }
                    | MappingIssue::Dtype { source, .. }
                    | MappingIssue::Unexpected { source, .. } => as_spelled(source),
                    // A missing tensor has only the canonical name: say so where the
                    // checkpoint spells its names otherwise.
                    MappingIssue::Missing { canonical, .. } => *canonical = renamed,
                    MappingIssue::Scope { .. }
                    | MappingIssue::NoSource { .. }
                    | MappingIssue::Ambiguous { .. } => {}
                }
            }
            Err(e)
        }
    }
}

/// [`plan_tf`] on an inventory in canonical names.
fn plan_canonical(
    net: &Network,
    inventory: &[SourceTensor],
    weights: WeightSet,
) -> Result<Plan, MappingError> {
    plan(net, inventory, weights).map_err(|mut e| {
        if let Ok(scope) = model_scope(inventory) {
            let outline = fit::Outline::of_tf(inventory, &scope);
            // The shapes fit when either weight set maps completely.
            let fits = |candidate: &Network| {
                [WeightSet::Ema, WeightSet::Raw]
                    .into_iter()
                    .any(|w| plan(candidate, inventory, w).is_ok())
            };
            e.diagnosis = Some(Box::new(fit::Diagnosis::new(outline, net, fits)));
        }
        e
    })
}

fn plan(
    net: &Network,
    inventory: &[SourceTensor],
    weights: WeightSet,
) -> Result<Plan, MappingError> {
    let arch = net.arch.clone();
    let scope = model_scope(inventory).map_err(|found| MappingError {
        arch: arch.clone(),
        issues: vec![MappingIssue::Scope { found }],
        diagnosis: None,
    })?;
    let by_name: BTreeMap<&str, &SourceTensor> =
        inventory.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut issues = vec![];
    let mut used = BTreeSet::new();
    let mut items = vec![];
    let maps = tensor_maps(net, &scope).map_err(|e| MappingError {
        arch: arch.clone(),
        issues: vec![MappingIssue::NoSource { layer: e.layer }],
        diagnosis: None,
    })?;
    for map in maps {
        let source = match weights {
            WeightSet::Ema => format!("{}{EMA_SUFFIX}", map.tf_name),
            WeightSet::Raw => map.tf_name.clone(),
        };
        // Both copies of a mapped variable are accounted for, whichever set is converted.
        used.insert(map.tf_name.clone());
        used.insert(format!("{}{EMA_SUFFIX}", map.tf_name));
        match by_name.get(source.as_str()) {
            None => issues.push(MappingIssue::Missing {
                target: map.target.name.clone(),
                source,
                canonical: false,
            }),
            Some(t) => {
                let expected = map.tf_shape();
                if t.shape != expected {
                    issues.push(MappingIssue::Shape {
                        target: map.target.name.clone(),
                        source,
                        expected,
                        actual: t.shape.clone(),
                    });
                } else if t.dtype != DType::F32 {
                    issues.push(MappingIssue::Dtype {
                        source,
                        actual: t.dtype.name().into(),
                    });
                } else {
                    items.push(PlanItem { source, map });
                }
            }
        }
    }
    let mut ignored = BTreeMap::new();
    for t in inventory {
        if used.contains(&t.name) {
            continue;
        }
        match ignore_reason(&t.name) {
            Some(reason) => {
                ignored.insert(t.name.clone(), reason.to_owned());
            }
            None => issues.push(MappingIssue::Unexpected {
                source: t.name.clone(),
                shape: t.shape.clone(),
            }),
        }
    }
    if issues.is_empty() {
        Ok(Plan {
            weights,
            scope,
            items,
            ignored,
        })
    } else {
        Err(MappingError {
            arch,
            issues,
            diagnosis: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;

    fn manifest() -> serde_json::Value {
        manifest_of("efficientnet-tiny")
    }

    fn manifest_of(fixture: &str) -> serde_json::Value {
        let p = format!(
            "{}/tests/fixtures/{fixture}/MANIFEST.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// `item` reads the manifest entry `w`'s tensor (`key`: `tf` or `tf_ema`) into its timm key
    /// with its permutation.
    fn assert_item_as_manifest(item: &PlanItem, w: &serde_json::Value, key: &str) {
        assert_eq!(item.source, w[key].as_str().unwrap());
        assert_eq!(item.map.target.name, w["timm"].as_str().unwrap());
        if w["transform"].get("slice").is_some() {
            // TF-slim's classifier: the generator slices the background class off first.
            assert!(
                matches!(
                    item.map.layout,
                    tf_efficientnet::Layout::SlimLogits | tf_efficientnet::Layout::DropBackground
                ),
                "{}",
                item.source
            );
            return;
        }
        let perm: Option<Vec<usize>> = w["permute"]
            .as_array()
            .map(|a| a.iter().map(|d| d.as_u64().unwrap() as usize).collect());
        assert_eq!(
            item.map.layout.permutation().map(<[usize]>::to_vec),
            perm,
            "{}",
            item.source
        );
    }

    /// The real-TF fixtures whose Keras layers carry graph-wide counters, and the architecture
    /// each was built as.
    const KERAS_COUNTER_FIXTURES: [(&str, &str); 2] = [
        (
            "efficientnet-condconv-tiny",
            "tf_efficientnet_cc_b0_4e:width=0.025,depth=0.3,classes=10",
        ),
        ("mixnet-tiny", "tf_mixnet_s:width=0.05,head=128,classes=10"),
    ];

    /// The TF-slim MobileNetV3 fixtures.
    const SLIM_FIXTURES: [(&str, &str); 2] = [
        (
            "mobilenetv3-tiny",
            "tf_mobilenetv3_large_100:width=0.05,stem=8,head=64,classes=10",
        ),
        (
            "mobilenetv3-small-tiny",
            "tf_mobilenetv3_small_100:width=0.05,stem=8,head=48,classes=10",
        ),
    ];

    /// The map of CondConv and MixNet (which name convs `cond_conv2d_7` / `conv2d_78` from one
    /// counter per graph) and of TF-slim's MobileNetV3 equals the generator's (made from the
    /// TF layer objects), tensor for tensor, on both weight sets, and is spelled as the
    /// checkpoint spells it.
    #[test]
    fn keras_counter_and_slim_plans_equal_manifest_mappings() {
        for (fixture, arch) in KERAS_COUNTER_FIXTURES.into_iter().chain(SLIM_FIXTURES) {
            let m = manifest_of(fixture);
            let net = arch.parse::<ArchConfig>().unwrap().resolve().unwrap();
            let want = m["mapping"].as_array().unwrap();
            for (weights, key) in [(WeightSet::Ema, "tf_ema"), (WeightSet::Raw, "tf")] {
                let plan = plan_tf(&net, &inventory(&m), weights).unwrap();
                assert_eq!(plan.items.len(), want.len(), "{fixture}");
                for (item, w) in plan.items.iter().zip(want) {
                    assert_item_as_manifest(item, w, key);
                }
                // Every other tensor is accounted for under its own name.
                let names: BTreeSet<String> = inventory(&m).into_iter().map(|t| t.name).collect();
                assert!(plan.ignored.keys().all(|k| names.contains(k)), "{fixture}");
                // Mapped: both copies of each variable; the rest ignored.
                assert_eq!(2 * plan.items.len() + plan.ignored.len(), names.len());
            }
        }
    }

    /// The counters themselves do not matter, only their order within a scope: the same
    /// checkpoint written by a graph that had built other layers first maps the same.
    #[test]
    fn shifted_keras_counters_map_the_same() {
        let (fixture, arch) = KERAS_COUNTER_FIXTURES[1];
        let m = manifest_of(fixture);
        let net = arch.parse::<ArchConfig>().unwrap().resolve().unwrap();
        let shift = |name: &str| -> String {
            name.split('/')
                .map(|c| match c.strip_prefix("conv2d") {
                    Some("") => "conv2d_3".to_string(),
                    Some(n) if n.starts_with('_') => {
                        format!("conv2d_{}", n[1..].parse::<u64>().unwrap() + 7)
                    }
                    _ => c.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        let shifted: Vec<SourceTensor> = inventory(&m)
            .into_iter()
            .map(|t| SourceTensor {
                name: shift(&t.name),
                ..t
            })
            .collect();
        let a = plan_tf(&net, &inventory(&m), WeightSet::Ema).unwrap();
        let b = plan_tf(&net, &shifted, WeightSet::Ema).unwrap();
        let targets = |p: &Plan, f: &dyn Fn(&str) -> String| -> Vec<(String, String)> {
            p.items
                .iter()
                .map(|i| (f(&i.source), i.map.target.name.clone()))
                .collect()
        };
        assert_eq!(targets(&a, &shift), targets(&b, &|s| s.to_string()));
        assert!(b.items.iter().any(|i| i.source.contains("/conv2d_85/")));
    }

    /// A missing tensor can only be named canonically; where the checkpoint spells its names
    /// otherwise (Keras counters, the model scope), the message says so.
    #[test]
    fn a_missing_tensor_of_a_renumbered_checkpoint_says_its_name_is_canonical() {
        let (fixture, arch) = KERAS_COUNTER_FIXTURES[1];
        let m = manifest_of(fixture);
        let net = arch.parse::<ArchConfig>().unwrap().resolve().unwrap();
        let mut inv = inventory(&m);
        let dropped = inv
            .iter()
            .position(|t| {
                t.name
                    .ends_with("/se/conv2d_48/kernel/ExponentialMovingAverage")
            })
            .map(|i| inv.remove(i))
            .expect("an SE kernel");
        let err = plan_tf(&net, &inv, WeightSet::Ema).unwrap_err();
        let missing: Vec<String> = err
            .issues
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    MappingIssue::Missing {
                        canonical: true,
                        ..
                    }
                )
            })
            .map(ToString::to_string)
            .collect();
        assert_eq!(missing.len(), 1, "{err} (dropped {})", dropped.name);
        assert!(
            missing[0].ends_with("(Keras layers numbered per scope, without the model scope)"),
            "{}",
            missing[0]
        );
        // tensorflow/tpu's per-scope numbering is its own canonical form: no remark.
        let m = manifest_of("efficientnet-edgetpu-tiny");
        let net = "tf_efficientnet_es:width=0.05,depth=0.25,classes=10"
            .parse::<ArchConfig>()
            .unwrap()
            .resolve()
            .unwrap();
        let mut inv = inventory(&m);
        inv.retain(|t| {
            !t.name
                .ends_with("/stem/conv2d/kernel/ExponentialMovingAverage")
        });
        let err = plan_tf(&net, &inv, WeightSet::Ema).unwrap_err();
        assert!(err.issues.iter().any(|i| matches!(
            i,
            MappingIssue::Missing {
                canonical: false,
                ..
            }
        )));
    }

    /// Two tensors that reduce to one canonical name are refused, naming both.
    #[test]
    fn ambiguous_canonical_names_are_refused() {
        let (fixture, arch) = KERAS_COUNTER_FIXTURES[1];
        let m = manifest_of(fixture);
        let net = arch.parse::<ArchConfig>().unwrap().resolve().unwrap();
        let mut inv = inventory(&m);
        inv.push(SourceTensor {
            name: "mixnet-s/blocks_0/conv2d/kernel".into(),
            dtype: DType::F32,
            shape: vec![1, 1, 8, 8],
        });
        let err = plan_tf(&net, &inv, WeightSet::Ema).unwrap_err();
        assert_eq!(
            err.issues,
            [MappingIssue::Ambiguous {
                canonical: "mixnet-s/blocks_0/conv2d/kernel".into(),
                sources: vec![
                    "mixnet-s/mixnet_model/blocks_0/conv2d/kernel".into(),
                    "mixnet-s/blocks_0/conv2d/kernel".into(),
                ],
            }]
        );
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    fn inventory(m: &serde_json::Value) -> Vec<SourceTensor> {
        m["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| SourceTensor {
                name: v["name"].as_str().unwrap().to_owned(),
                dtype: if v["dtype"] == "int64" {
                    DType::I64
                } else {
                    DType::F32
                },
                shape: v["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            })
            .collect()
    }

    fn tiny() -> Network {
        "efficientnet:width=0.05,depth=0.5,classes=10"
            .parse::<ArchConfig>()
            .unwrap()
            .resolve()
            .unwrap()
    }

    /// The map derived from the spec equals the one timm's conversion used, tensor for tensor.
    #[test]
    fn tiny_plan_equals_manifest_mapping() {
        let m = manifest();
        let plan = plan_tf(&tiny(), &inventory(&m), WeightSet::Ema).unwrap();
        let want = m["mapping"].as_array().unwrap();
        assert_eq!(plan.items.len(), want.len());
        for (item, w) in plan.items.iter().zip(want) {
            assert_item_as_manifest(item, w, "tf_ema");
        }
        assert_eq!(plan.ignored.len(), 135 * 2 + 1);
        let raw = plan_tf(&tiny(), &inventory(&m), WeightSet::Raw).unwrap();
        assert_eq!(raw.items[0].source, "efficientnet-b0/stem/conv2d/kernel");
    }

    #[test]
    fn all_problems_reported_at_once() {
        let m = manifest();
        let mut inv = inventory(&m);
        inv.retain(|t| t.name != "efficientnet-b0/blocks_3/conv2d/kernel/ExponentialMovingAverage");
        let t = inv
            .iter_mut()
            .find(|t| t.name == "efficientnet-b0/head/dense/kernel/ExponentialMovingAverage")
            .unwrap();
        t.shape = vec![10, 64];
        inv.push(SourceTensor {
            name: "efficientnet-b0/extra/w".into(),
            dtype: DType::F32,
            shape: vec![3],
        });
        let err = plan_tf(&tiny(), &inv, WeightSet::Ema).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.issues.len(), 3, "{text}");
        assert!(text.contains("blocks.3.0.conv_pw.weight: missing source tensor `efficientnet-b0/blocks_3/conv2d/kernel/ExponentialMovingAverage`"), "{text}");
        assert!(text.contains("classifier.weight: `efficientnet-b0/head/dense/kernel/ExponentialMovingAverage` has shape [10, 64], the architecture needs [64, 10]"), "{text}");
        assert!(
            text.contains("`efficientnet-b0/extra/w` [3] is neither mapped"),
            "{text}"
        );
    }

    #[test]
    fn ema_only_checkpoints_plan() {
        let m = manifest();
        let mut inv = inventory(&m);
        inv.retain(|t| t.name.ends_with(EMA_SUFFIX));
        let plan = plan_tf(&tiny(), &inv, WeightSet::Ema).unwrap();
        assert_eq!(
            (plan.scope.as_str(), plan.items.len()),
            ("efficientnet-b0", 197)
        );
        let err = plan_tf(&tiny(), &inv, WeightSet::Raw).unwrap_err();
        assert_eq!(err.issues.len(), 197, "every raw tensor is missing");
        let text = err.to_string();
        assert!(text.contains("… and 187 more"), "{text}");
        assert!(
            text.contains("its shapes do fit `efficientnet:width=0.05,depth=0.5,classes=10`: the problems are not the architecture"),
            "{text}"
        );
    }

    #[test]
    fn wrong_architecture_is_rejected() {
        let m = manifest();
        let b0 = ArchConfig::variant("b0").unwrap().resolve().unwrap();
        let err = plan_tf(&b0, &inventory(&m), WeightSet::Ema).unwrap_err();
        assert!(err
            .issues
            .iter()
            .any(|i| matches!(i, MappingIssue::Shape { .. })));
        assert!(err
            .issues
            .iter()
            .any(|i| matches!(i, MappingIssue::Missing { .. })));
        let diagnosis = err.diagnosis.as_deref().unwrap();
        assert_eq!(
            diagnosis.fits.as_deref(),
            Some("efficientnet:width=0.05,depth=0.5,classes=10")
        );
        assert_eq!(diagnosis.checkpoint.blocks, Some(10));
        assert_eq!(diagnosis.architecture.blocks, Some(16));
    }
}
