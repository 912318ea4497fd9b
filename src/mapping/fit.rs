//! Which architecture of its family a checkpoint holds, read from its shapes: the diagnosis of a
//! wrong `--arch`.
//!
//! A checkpoint's shapes fix the stem and head channels (the width multiplier, where the family
//! scales them), the number of blocks (the depth multiplier) and the classifier (the classes).
//! [`fit`] searches width and depth of the requested family on a grid of two decimals, where every
//! published variant lies, with the builder's own rules for stem, head and depth: the stem and
//! head channels and the block count rule out most pairs with arithmetic alone, and each pair
//! left is checked against every tensor shape by the caller's test. Several pairs can build the
//! same network (repeats are rounded up, channels to multiples of 8); of those, a published
//! architecture is preferred, then the fewest decimals, then the largest depth and the smallest
//! width.
use std::collections::BTreeSet;
use std::fmt;

use crate::arch::efficientnet::ArchConfig;
use crate::arch::family::MEMBERS;
use crate::arch::timm_builder::{block_count, head_channels, stem_channels};
use crate::arch::Network;

use super::tf_efficientnet::EMA_SUFFIX;
use super::SourceTensor;

/// Grid steps per unit of width and depth (two decimals).
const STEPS: u32 = 100;

/// Largest multiplier tried (L2 is 4.3 wide and 5.3 deep).
const MAX_MULTIPLIER: u32 = 8;

/// Most candidates checked against every shape.
const MAX_CHECKS: usize = 400;

/// What a network's shapes say about it. `None` where the checkpoint does not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outline {
    /// Input channels of the stem convolution.
    pub in_chans: Option<usize>,
    /// Output channels of the stem convolution.
    pub stem: Option<usize>,
    /// Blocks over all stages.
    pub blocks: Option<usize>,
    /// Output channels of the head convolution.
    pub head: Option<usize>,
    /// Classifier outputs.
    pub classes: Option<usize>,
}

impl Outline {
    /// The outline of a built network (`conv_stem`, `blocks.<s>.<i>`, `conv_head`, classifier).
    pub fn of_network(net: &Network) -> Outline {
        let stem = net.conv("conv_stem");
        Outline {
            in_chans: stem.map(|c| c.in_chs),
            stem: stem.map(|c| c.out_chs),
            blocks: Some(net.block_count()).filter(|&n| n > 0),
            head: net.conv("conv_head").map(|c| c.out_chs),
            classes: net.classifier().map(|c| c.out_features),
        }
    }

    /// The outline of a TF checkpoint whose variables live under `scope`, in canonical names
    /// (HWIO conv kernels): tensorflow/tpu's (`stem/conv2d`, `blocks_<n>`, `head/conv2d`,
    /// `head/dense` `[in, out]`) or TF-slim MobileNetV3's (`Conv`, `expanded_conv[_<n>]`, the
    /// `cn` block `Conv_1`, the head `Conv_2`, `Logits/Conv2d_1c_1x1` with its background
    /// class, which timm drops and the outline does not count).
    pub fn of_tf(inventory: &[SourceTensor], scope: &str) -> Outline {
        let shape = |name: &str| {
            inventory
                .iter()
                .find(|t| t.name.strip_suffix(EMA_SUFFIX).unwrap_or(&t.name) == name)
                .map(|t| t.shape.as_slice())
        };
        // The first path component under the scope of every tensor.
        let scopes: BTreeSet<&str> = inventory
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix(scope)?
                    .strip_prefix('/')?
                    .split('/')
                    .next()
            })
            .collect();
        let numbered = |prefix: &str| -> BTreeSet<usize> {
            scopes
                .iter()
                .filter_map(|s| {
                    let rest = s.strip_prefix(prefix)?;
                    if rest.is_empty() {
                        Some(0)
                    } else {
                        rest.strip_prefix('_')?.parse().ok()
                    }
                })
                .collect()
        };
        let out_of = |s: Option<&[usize]>| s.and_then(|s| s.get(3)).copied();
        if let Some(stem) = shape(&format!("{scope}/Conv/weights")) {
            // TF-slim: `Conv` is the stem, `Conv_<max>` the head, the `Conv_<n>` between are
            // `cn` blocks.
            let convs = numbered("Conv");
            let head = convs.iter().copied().filter(|&n| n > 0).max();
            let blocks = numbered("expanded_conv").len() + convs.len().saturating_sub(2);
            let logits = shape(&format!("{scope}/Logits/Conv2d_1c_1x1/weights"));
            return Outline {
                in_chans: stem.get(2).copied(),
                stem: stem.get(3).copied(),
                blocks: (blocks > 0).then_some(blocks),
                head: head.and_then(|n| out_of(shape(&format!("{scope}/Conv_{n}/weights")))),
                classes: out_of(logits).map(|c| c.saturating_sub(1)),
            };
        }
        let stem = shape(&format!("{scope}/stem/conv2d/kernel"));
        let dense = shape(&format!("{scope}/head/dense/kernel"));
        let blocks = numbered("blocks").len();
        Outline {
            in_chans: stem.and_then(|s| s.get(2)).copied(),
            stem: out_of(stem),
            blocks: (blocks > 0).then_some(blocks),
            head: out_of(shape(&format!("{scope}/head/conv2d/kernel"))),
            classes: dense.and_then(|s| s.get(1)).copied(),
        }
    }

    /// The outline of a timm state dict, given its names and shapes (OIHW conv weights,
    /// `[out, in]` classifier, blocks named `blocks.<stage>.<index>`).
    pub fn of_timm<'a>(shapes: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Outline {
        let mut outline = Outline::default();
        let mut blocks = BTreeSet::new();
        for (name, shape) in shapes {
            match name {
                "conv_stem.weight" => {
                    outline.stem = shape.first().copied();
                    outline.in_chans = shape.get(1).copied();
                }
                "conv_head.weight" => outline.head = shape.first().copied(),
                "classifier.weight" => outline.classes = shape.first().copied(),
                _ => {
                    let mut parts = name.strip_prefix("blocks.").unwrap_or("").split('.');
                    if let (Some(Ok(s)), Some(Ok(i))) = (
                        parts.next().map(str::parse::<usize>),
                        parts.next().map(str::parse::<usize>),
                    ) {
                        blocks.insert((s, i));
                    }
                }
            }
        }
        outline.blocks = (!blocks.is_empty()).then_some(blocks.len());
        outline
    }
}

impl fmt::Display for Outline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if let Some(s) = self.stem {
            parts.push(format!("a stem of {s} channels"));
        }
        if let Some(b) = self.blocks {
            parts.push(format!("{b} blocks"));
        }
        if let Some(h) = self.head {
            parts.push(format!("a head of {h} channels"));
        }
        if let Some(c) = self.classes {
            parts.push(format!("{c} classes"));
        }
        if let Some(c) = self.in_chans.filter(|&c| c != 3) {
            parts.push(format!("{c} input channels"));
        }
        if parts.is_empty() {
            f.write_str("no recognisable stem, blocks, head or classifier")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Why a checkpoint does not match an architecture, and which one it would match.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnosis {
    /// What the checkpoint's shapes say.
    pub checkpoint: Outline,
    /// What the requested architecture builds.
    pub architecture: Outline,
    /// The requested architecture, as `--arch` spells it.
    pub requested: String,
    /// An architecture every shape of the checkpoint fits, as `--arch` spells it.
    pub fits: Option<String>,
    /// Candidates the search left untried (beyond its [`MAX_CHECKS`] most likely ones): when
    /// nothing fits and this is not 0, "nothing fits" is not proven.
    pub untried: usize,
}

impl Diagnosis {
    /// Diagnoses `checkpoint` against `net`; `fits` tells whether a candidate architecture
    /// matches every tensor of the checkpoint. The search needs an EfficientNet description:
    /// for a network built from anything else, `fits` stays `None`.
    pub fn new(checkpoint: Outline, net: &Network, fits: impl Fn(&Network) -> bool) -> Diagnosis {
        let requested = net.arch.parse::<ArchConfig>().ok();
        let (found, untried) = requested
            .as_ref()
            .map_or((None, 0), |cfg| search(&checkpoint, cfg, fits));
        Diagnosis {
            untried,
            architecture: Outline::of_network(net),
            requested: requested
                .as_ref()
                .map_or_else(|| net.arch.clone(), spelling),
            fits: found.as_ref().map(spelling),
            checkpoint,
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the checkpoint has {}; `{}` has {}",
            self.checkpoint, self.requested, self.architecture
        )?;
        match &self.fits {
            Some(a) if *a == self.requested => write!(
                f,
                "\nits shapes do fit `{a}`: the problems are not the architecture (another weight set? an incomplete file?)"
            ),
            Some(a) => write!(f, "\nthe checkpoint fits `{a}`"),
            None if self.untried > 0 => write!(
                f,
                "\nnone of the {MAX_CHECKS} likeliest width/depth multipliers of this family fits every shape of the checkpoint ({} more were not tried)",
                self.untried
            ),
            None => f.write_str(
                "\nno width/depth multiplier of this family (two decimals, up to 8) fits every shape of the checkpoint",
            ),
        }
    }
}

/// How `--arch` would spell `cfg`: its timm name (`tf_efficientnet_b6`,
/// `tf_mixnet_l:classes=10`) when it is one, else `<family>:width=…,depth=…,classes=…`.
pub fn spelling(cfg: &ArchConfig) -> String {
    match cfg.timm_name() {
        Some(name) if cfg.classes == ArchConfig::base().classes => name.to_owned(),
        Some(name) => format!("{name}:classes={}", cfg.classes),
        None => cfg.to_string(),
    }
}

/// Decimals a grid value `k / STEPS` needs (0, 1 or 2).
fn decimals(k: u32) -> u32 {
    if k.is_multiple_of(STEPS) {
        0
    } else if k.is_multiple_of(STEPS / 10) {
        1
    } else {
        2
    }
}

/// The architecture of `requested`'s family (its blocks, padding and epsilon) whose every
/// shape the checkpoint has, searched as the module doc says. Stem and head channels come from
/// the builder's own rules ([`stem_channels`], [`head_channels`]); where the family does not
/// width-scale one of them (MixNet's and MobileNetV3's head, a narrow MobileNetV3's stem), the
/// checkpoint's value is taken as that key (`head=128`).
pub fn fit(
    outline: &Outline,
    requested: &ArchConfig,
    fits: impl Fn(&Network) -> bool,
) -> Option<ArchConfig> {
    search(outline, requested, fits).0
}

/// [`fit`], and how many candidates were left untried.
fn search(
    outline: &Outline,
    requested: &ArchConfig,
    fits: impl Fn(&Network) -> bool,
) -> (Option<ArchConfig>, usize) {
    let base = ArchConfig {
        classes: outline.classes.unwrap_or(requested.classes),
        in_chans: outline.in_chans.unwrap_or(requested.in_chans),
        ..requested.clone()
    };
    let grid = 1..=MAX_MULTIPLIER * STEPS;
    let at_width = |k: u32| {
        let width = f64::from(k) / f64::from(STEPS);
        let opts = base.family.options(width);
        ArchConfig {
            width,
            stem: outline.stem.filter(|_| opts.fix_stem).unwrap_or(base.stem),
            head: outline.head.filter(|_| opts.fix_head).unwrap_or(base.head),
            ..base.clone()
        }
    };
    let widths: Vec<(u32, ArchConfig)> = grid
        .clone()
        .map(|k| (k, at_width(k)))
        .filter(|(_, cfg)| {
            outline.stem.is_none_or(|s| stem_channels(cfg) == s)
                && outline.head.is_none_or(|h| head_channels(cfg) == h)
        })
        .collect();
    // Depth scaling does not depend on the width.
    let depths: Vec<u32> = grid
        .filter(|&k| {
            let cfg = ArchConfig {
                depth: f64::from(k) / f64::from(STEPS),
                ..base.clone()
            };
            outline
                .blocks
                .is_none_or(|n| block_count(&cfg).is_ok_and(|b| b == n))
        })
        .collect();
    let mut candidates: Vec<(u32, u32, ArchConfig)> = widths
        .iter()
        .flat_map(|(w, cfg)| {
            depths.iter().map(move |&d| {
                let cfg = ArchConfig {
                    depth: f64::from(d) / f64::from(STEPS),
                    ..cfg.clone()
                };
                (*w, d, cfg)
            })
        })
        .collect();
    // A published variant first (`tf_efficientnet_b3`, `tf_mixnet_l`), then the fewest
    // decimals, then the largest depth and the smallest width.
    let members: Vec<ArchConfig> = MEMBERS
        .iter()
        .filter_map(|m| ArchConfig::variant(m.0))
        .map(|m| ArchConfig {
            classes: base.classes,
            ..m
        })
        .collect();
    candidates.sort_by_cached_key(|(w, d, cfg)| {
        (
            !members.contains(cfg),
            decimals(*w) + decimals(*d),
            std::cmp::Reverse(*d),
            *w,
        )
    });
    let untried = candidates.len().saturating_sub(MAX_CHECKS);
    let found = candidates
        .into_iter()
        .take(MAX_CHECKS)
        .map(|(_, _, cfg)| cfg)
        .find(|cfg| cfg.resolve().is_ok_and(|net| fits(&net)));
    let untried = if found.is_some() { 0 } else { untried };
    (found, untried)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timm_fits(of: &Network) -> impl Fn(&Network) -> bool + '_ {
        move |candidate| candidate.params() == of.params()
    }

    fn outline(spec: &Network) -> Outline {
        let params = spec.params();
        Outline::of_timm(params.iter().map(|p| (p.name.as_str(), p.shape.as_slice())))
    }

    /// Every timm architecture zoo builds, from its shapes, asked for as its family at width
    /// and depth 1: the family's own stem, head and depth rules (fixed heads, a narrow
    /// MobileNetV3's fixed stem, MixNet-M's rounded depth, Lite's fixed first and last stage).
    #[test]
    fn every_family_member_is_found_from_its_shapes_by_name() {
        for &(name, ..) in &crate::arch::family::MEMBERS {
            let cfg = ArchConfig::variant(name).unwrap();
            let spec = cfg.resolve().unwrap();
            let requested = ArchConfig {
                width: 1.0,
                depth: 1.0,
                ..cfg
            };
            let found = fit(&outline(&spec), &requested, timm_fits(&spec));
            assert_eq!(found.map(|f| spelling(&f)).as_deref(), Some(name));
        }
    }

    #[test]
    fn the_tiny_fixture_is_found_with_its_own_spelling() {
        let arch = "efficientnet:width=0.05,depth=0.5,classes=10";
        let spec = arch.parse::<ArchConfig>().unwrap().resolve().unwrap();
        let o = outline(&spec);
        assert_eq!(
            (o.stem, o.blocks, o.head, o.classes),
            (Some(8), Some(10), Some(64), Some(10))
        );
        let b0 = ArchConfig::variant("b0").unwrap();
        let found = fit(&o, &b0, timm_fits(&spec)).unwrap();
        assert_eq!(spelling(&found), arch);
        let b6_10 = ArchConfig {
            classes: 10,
            ..ArchConfig::variant("b6").unwrap()
        };
        assert_eq!(spelling(&b6_10), "tf_efficientnet_b6:classes=10");
        assert_eq!(spelling(&b6_10).parse::<ArchConfig>().unwrap(), b6_10);
    }

    /// Where the arithmetic leaves more candidates than the search tries (Lite's stem and head
    /// are not width-scaled, so they do not narrow the width), a miss is not reported as proof
    /// that nothing fits.
    #[test]
    fn a_search_cut_short_says_so() {
        let lite = ArchConfig::variant("tf_efficientnet_lite0").unwrap();
        let spec = ArchConfig {
            width: 0.37,
            depth: 1.13,
            ..lite.clone()
        }
        .resolve()
        .unwrap();
        let (found, untried) = search(&outline(&spec), &lite, timm_fits(&spec));
        assert!(found.is_none() && untried > 0, "{found:?} {untried}");
        let d = Diagnosis {
            checkpoint: outline(&spec),
            architecture: outline(&spec),
            requested: "tf_efficientnet_lite0".into(),
            fits: None,
            untried,
        };
        assert!(
            d.to_string()
                .contains(&format!("({untried} more were not tried)")),
            "{d}"
        );
    }

    #[test]
    fn nothing_fits_a_network_off_the_grid() {
        let spec = "efficientnet:width=0.05,depth=0.5,classes=10,head=72"
            .parse::<ArchConfig>()
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            fit(&outline(&spec), &ArchConfig::base(), timm_fits(&spec)),
            None
        );
    }
}
