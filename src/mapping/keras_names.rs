//! Keras layer names in TF checkpoints, made independent of how the graph that wrote them was
//! built.
//!
//! tensorflow/tpu builds its models from two kinds of layers. `tf.compat.v1.layers` (the
//! EfficientNet convs and every BatchNorm) are numbered per variable scope, in construction
//! order: `blocks_4/conv2d`, `blocks_4/conv2d_1`. Keras layers created inside a Keras `Model`
//! (MixNet's convs, CondConv's `cond_conv2d`) take a number from one counter per layer type
//! for the whole graph, and live one scope deeper, under the model's Keras name:
//! `mixnet-s/mixnet_model/blocks_5/se/conv2d_21`. How many layers a checkpoint's graph had
//! built before (an eval graph, a second tower) shifts those numbers, so the map cannot expect
//! them.
//!
//! What stays fixed is the order: within one scope, layers of one type were created in the
//! order the block code creates them, whichever counter numbered them. So a checkpoint name is
//! mapped through its *canonical* form: the Keras model level dropped, and each layer renamed
//! to its rank among the layers of its type in its scope (`conv2d_21`, `conv2d_22` in
//! `blocks_5/se` become `conv2d`, `conv2d_1`). Per-scope numbering is its own canonical form,
//! so EfficientNet checkpoints map unchanged. (A checkpoint that lacks a layer shifts the ranks
//! after it; the map then fails on shapes or names, never maps silently.)
use std::collections::{BTreeMap, BTreeSet};

/// Layer types whose instance names carry a Keras / `tf.layers` counter.
const NUMBERED_LAYERS: [&str; 7] = [
    "conv2d",
    "depthwise_conv2d",
    "cond_conv2d",
    "depthwise_cond_conv2d",
    "batch_normalization",
    "tpu_batch_normalization",
    "dense",
];

/// Names a Keras `Model` subclass of tensorflow/tpu gives its scope (`efficientnet_model.Model`,
/// `mixnet_model.MixnetModel`), possibly numbered (`model_1`).
const KERAS_MODEL_SCOPES: [&str; 2] = ["model", "mixnet_model"];

/// Trailing components that name a copy of a variable rather than a layer's own variable.
const COPY_SUFFIXES: [&str; 4] = [
    "ExponentialMovingAverage",
    "RMSProp",
    "RMSProp_1",
    "Momentum",
];

/// `name` split as `base` and optional `_<n>` counter (`conv2d_21` → (`conv2d`, 21)).
fn numbered(name: &str) -> Option<(&'static str, u64)> {
    NUMBERED_LAYERS.iter().find_map(|&base| {
        let rest = name.strip_prefix(base)?;
        if rest.is_empty() {
            return Some((base, 0));
        }
        let digits = rest.strip_prefix('_')?;
        // `conv2d_01` is not a counter Keras writes.
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok().map(|n| (base, n))
    })
}

fn is_keras_model_scope(name: &str) -> bool {
    KERAS_MODEL_SCOPES.iter().any(|&m| {
        name.strip_prefix(m).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('_')
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// A variable name taken apart: `<parent>/<layer>/<leaf><suffix>`.
struct Parts<'a> {
    /// Components before the layer, the Keras model level dropped.
    parent: Vec<&'a str>,
    layer: &'a str,
    /// The layer's variable and any copy suffixes (`kernel/ExponentialMovingAverage`).
    tail: Vec<&'a str>,
}

fn parts(name: &str) -> Option<Parts<'_>> {
    let comps: Vec<&str> = name.split('/').collect();
    let mut end = comps.len();
    while end > 0 && COPY_SUFFIXES.contains(&comps[end - 1]) {
        end -= 1;
    }
    // `<model scope>/<layer>/<leaf>` at the least.
    if end < 3 {
        return None;
    }
    let mut parent: Vec<&str> = comps[..end - 2].to_vec();
    if parent.len() >= 2 && is_keras_model_scope(parent[1]) {
        parent.remove(1);
    }
    Some(Parts {
        parent,
        layer: comps[end - 2],
        tail: comps[end - 1..].to_vec(),
    })
}

/// The canonical form of each name, in input order. Names without a numbered layer are kept
/// as they are, apart from the Keras model level.
pub fn canonical_names<'a>(names: impl IntoIterator<Item = &'a str> + Clone) -> Vec<String> {
    // Per (parent scope, layer type): the counters of its layers, each once.
    let mut groups: BTreeMap<(String, &'static str), BTreeSet<(u64, &str)>> = BTreeMap::new();
    for name in names.clone() {
        if let Some(p) = parts(name) {
            if let Some((base, n)) = numbered(p.layer) {
                groups
                    .entry((p.parent.join("/"), base))
                    .or_default()
                    .insert((n, p.layer));
            }
        }
    }
    let rank: BTreeMap<(String, &str), usize> = groups
        .into_iter()
        .flat_map(|((parent, _), layers)| {
            layers
                .into_iter()
                .enumerate()
                .map(move |(rank, (_, layer))| ((parent.clone(), layer), rank))
        })
        .collect();
    names
        .into_iter()
        .map(|name| {
            let Some(p) = parts(name) else {
                return name.to_owned();
            };
            let parent = p.parent.join("/");
            let layer = match numbered(p.layer) {
                Some((base, _)) => match rank.get(&(parent.clone(), p.layer)) {
                    Some(0) | None => base.to_owned(),
                    Some(r) => format!("{base}_{r}"),
                },
                None => p.layer.to_owned(),
            };
            format!("{parent}/{layer}/{}", p.tail.join("/"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(names: &[&str]) -> Vec<String> {
        canonical_names(names.iter().copied())
    }

    #[test]
    fn per_scope_numbering_is_already_canonical() {
        let names = [
            "efficientnet-b0/blocks_1/conv2d/kernel",
            "efficientnet-b0/blocks_1/conv2d_1/kernel/ExponentialMovingAverage",
            "efficientnet-b0/blocks_1/tpu_batch_normalization/gamma",
            "efficientnet-b0/blocks_1/tpu_batch_normalization_1/gamma",
            "efficientnet-b0/blocks_1/tpu_batch_normalization_2/gamma/RMSProp_1",
            "efficientnet-b0/blocks_1/se/conv2d/bias",
            "efficientnet-b0/blocks_1/se/conv2d_1/bias",
            "efficientnet-b0/head/dense/kernel",
            "global_step",
        ];
        assert_eq!(canon(&names), names);
    }

    #[test]
    fn global_keras_counters_become_ranks_within_each_scope() {
        let names = [
            "mixnet-s/mixnet_model/stem/conv2d_78/kernel",
            "mixnet-s/mixnet_model/blocks_1/conv2d_3/kernel/ExponentialMovingAverage",
            "mixnet-s/mixnet_model/blocks_1/conv2d_1/kernel",
            "mixnet-s/mixnet_model/blocks_1/conv2d_4/kernel",
            "mixnet-s/mixnet_model/blocks_1/conv2d_2/kernel/RMSProp",
            "mixnet-s/mixnet_model/blocks_5/se/conv2d_22/bias",
            "mixnet-s/mixnet_model/blocks_5/se/conv2d_21/bias",
            "mixnet-s/blocks_1/batch_normalization/beta",
            "mixnet-s/blocks_1/batch_normalization_1/beta",
            "efficientnet-cc/model/blocks_4/depthwise_cond_conv2d_3/depthwise_condconv_kernel",
        ];
        assert_eq!(
            canon(&names),
            [
                "mixnet-s/stem/conv2d/kernel",
                "mixnet-s/blocks_1/conv2d_2/kernel/ExponentialMovingAverage",
                "mixnet-s/blocks_1/conv2d/kernel",
                "mixnet-s/blocks_1/conv2d_3/kernel",
                "mixnet-s/blocks_1/conv2d_1/kernel/RMSProp",
                "mixnet-s/blocks_5/se/conv2d_1/bias",
                "mixnet-s/blocks_5/se/conv2d/bias",
                "mixnet-s/blocks_1/batch_normalization/beta",
                "mixnet-s/blocks_1/batch_normalization_1/beta",
                "efficientnet-cc/blocks_4/depthwise_cond_conv2d/depthwise_condconv_kernel",
            ]
        );
    }

    #[test]
    fn only_keras_counters_and_model_scopes_are_rewritten() {
        let names = [
            "m/model_2/blocks_0/conv2d_07/kernel",
            "m/modelx/blocks_0/conv2d_x/kernel",
            "m/blocks_0/model/kernel",
            "model/conv2d_3/kernel",
        ];
        assert_eq!(
            canon(&names),
            [
                "m/blocks_0/conv2d_07/kernel",
                "m/modelx/blocks_0/conv2d_x/kernel",
                "m/blocks_0/model/kernel",
                "model/conv2d/kernel",
            ]
        );
    }
}
