//! What a user names where an architecture is wanted (`zoo flops NAME`, `zoo arch NAME`,
//! `--arch`): a registry model by name or alias, which brings its card along, or an
//! architecture description (`b6`, `efficientnet:width=…`).
//!
//! [`lookup`] tries the registry first (`zoo flops NAME` is about models); `--arch` tries the
//! architecture first, so it needs no registry. No name is both today (variants are `b0`…`l2`,
//! models `…_ns`).
use crate::arch::efficientnet::ArchError;
use crate::arch::ArchConfig;
use crate::filesize::{Container, SaveLayout};
use crate::flops::{Convention, InputSize};
use crate::registry::{ModelEntry, Registry, RegistryError};
use crate::schema::{FileFormat, FileRole, FlopsCounter, InputRule};

/// What a name on the command line refers to.
#[derive(Debug, Clone)]
pub enum Named<'r> {
    /// A registry model, with the architecture its `Zoo: Architecture` gives.
    Model {
        /// The model.
        entry: &'r ModelEntry,
        /// Its architecture.
        arch: ArchConfig,
    },
    /// An architecture description.
    Arch(ArchConfig),
}

impl Named<'_> {
    /// The architecture either way.
    pub fn arch(&self) -> &ArchConfig {
        match self {
            Named::Model { arch, .. } | Named::Arch(arch) => arch,
        }
    }
}

/// A name that is neither a model nor an architecture, or a model without a usable architecture.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Not a registry model or alias, and not an architecture description.
    #[error("`{query}` is neither a registry model nor an architecture ({arch}){}", suggest(.models))]
    Neither {
        /// What was asked for.
        query: String,
        /// Why it is not an architecture (in the message, so not also a `source`).
        arch: ArchError,
        /// Registry names close to it.
        models: Vec<String>,
    },
    /// The model exists but its `Zoo: Architecture` is missing or does not parse.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn suggest(models: &[String]) -> String {
    if models.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = models.iter().map(|n| format!("`{n}`")).collect();
        format!("; did you mean {}?", names.join(", "))
    }
}

/// Resolves `text`: a model or alias of `registry` (when there is one), else an architecture.
pub fn lookup<'r>(registry: Option<&'r Registry>, text: &str) -> Result<Named<'r>, LookupError> {
    if let Some(entry) = registry.and_then(|r| r.resolve(text).ok()) {
        return Ok(Named::Model {
            arch: entry.arch()?,
            entry,
        });
    }
    text.parse::<ArchConfig>()
        .map(Named::Arch)
        .map_err(|arch| LookupError::Neither {
            query: text.to_owned(),
            arch,
            // `efficientnet:width=…` is clearly meant as an architecture: no model names.
            models: match registry {
                Some(r) if !text.contains([':', '=']) => r.suggestions(text),
                _ => vec![],
            },
        })
}

/// The registry models whose architecture is `arch`, by name.
pub fn models_with_arch<'r>(registry: &'r Registry, arch: &ArchConfig) -> Vec<&'r ModelEntry> {
    registry
        .models()
        .filter(|e| e.arch().is_ok_and(|a| a == *arch))
        .collect()
}

/// What a model's card says about its FLOPs, and how they were counted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CardFlops {
    /// `Metadata: FLOPs`.
    pub documented: Option<u64>,
    /// `Zoo: Input: Image Size`, else `Metadata: Image Size`.
    pub image_size: Option<usize>,
    /// `Zoo: Flops: Convention`, with the input its `Input Rule` gives for `image_size`.
    pub counted_as: Option<CountedAs>,
}

/// A card's counting convention at its input.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CountedAs {
    /// The convention.
    pub convention: Convention,
    /// The input it was counted at.
    pub input: InputSize,
    /// The rule that gives `input` from the image size.
    #[serde(serialize_with = "rule_name")]
    pub rule: InputRule,
}

fn rule_name<S: serde::Serializer>(rule: &InputRule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.as_str())
}

impl From<FlopsCounter> for Convention {
    fn from(c: FlopsCounter) -> Convention {
        match c {
            FlopsCounter::Thop2020 => Convention::Thop2020,
            FlopsCounter::Macs => Convention::Macs,
        }
    }
}

/// The input `rule` gives for image size `s`: the one derivation every command uses.
pub fn rule_input(rule: InputRule, s: usize) -> InputSize {
    match rule {
        InputRule::Square => InputSize::square(s),
        InputRule::DogJpgShortSide => InputSize::thop_2020(s),
    }
}

/// How timm's 2021 model-index cards were counted (thop 0.0.31 at the `dog.jpg` rule): what a
/// card that declares no `Zoo: Flops` is checked against.
pub const TIMM_CARDS_COUNTED_AS: (FlopsCounter, InputRule) =
    (FlopsCounter::Thop2020, InputRule::DogJpgShortSide);

impl CardFlops {
    /// The convention and input the card's FLOPs are checked under (validate, docs and
    /// `zoo flops` alike): its own `Zoo: Flops` (`declared`), else [`TIMM_CARDS_COUNTED_AS`];
    /// `None` without an image size.
    pub fn checked_as(&self) -> Option<(CountedAs, bool)> {
        if let Some(c) = self.counted_as {
            return Some((c, true));
        }
        let (counter, rule) = TIMM_CARDS_COUNTED_AS;
        self.image_size.map(|s| {
            (
                CountedAs {
                    convention: counter.into(),
                    input: rule_input(rule, s),
                    rule,
                },
                false,
            )
        })
    }

    /// Plain multiply-accumulates at the native `Image Size`², the conventional "GMACs" that
    /// `zoo list` and `zoo show` print beside the card's number.
    pub fn macs(&self, spec: &crate::arch::Network) -> Option<u64> {
        let s = self.image_size?;
        crate::flops::count(spec, Convention::Macs, InputSize::square(s)).ok()
    }
}

/// Reads the FLOPs facts of `entry`'s card.
pub fn card_flops(entry: &ModelEntry) -> CardFlops {
    let meta = entry.model.metadata.as_ref();
    let image_size = entry
        .input()
        .and_then(|i| i.image_size.as_ref())
        .or_else(|| meta.and_then(|m| m.image_size.as_ref()))
        .map(|c| c.value as usize);
    let zoo_flops = entry.zoo().and_then(|z| z.flops.as_ref());
    let counted_as = match (
        zoo_flops.and_then(|f| f.convention.as_ref()),
        zoo_flops.and_then(|f| f.input_rule.as_ref()),
        image_size,
    ) {
        (Some(c), Some(r), Some(s)) => Some(CountedAs {
            convention: c.value.into(),
            input: rule_input(r.value, s),
            rule: r.value,
        }),
        _ => None,
    };
    CardFlops {
        documented: meta.and_then(|m| m.flops.as_ref()).map(|c| c.value),
        image_size,
        counted_as,
    }
}

/// How a card says its released `.pth` (`Role: timm-pth`) was saved: what `zoo docs` writes
/// its `File Size` from and `zoo validate` checks it against, one derivation for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPth {
    /// The file's `Format` as a container; `None` when it declares none (or a non-`.pth` one).
    pub container: Option<Container>,
    /// The layout the 2020 release files were saved with, its zip root named after the file.
    pub layout: SaveLayout,
}

/// Reads the `.pth` facts of `entry`'s card; `None` without a `timm-pth` file.
pub fn card_pth(entry: &ModelEntry) -> Option<CardPth> {
    let pth = entry.file(FileRole::TimmPth)?;
    let container = match pth.format.as_ref().map(|f| f.value) {
        Some(FileFormat::PthLegacy) => Some(Container::Legacy),
        Some(FileFormat::PthZip) => Some(Container::Zip),
        _ => None,
    };
    let file = pth.file.as_ref().map_or(entry.name(), |f| f.as_str());
    let stem = file.strip_suffix(".pth").unwrap_or(file);
    Some(CardPth {
        container,
        layout: SaveLayout::timm_2020_release(stem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_resolve_to_their_model_and_architecture() {
        let registry = Registry::embedded().unwrap();
        for name in [
            "b6_ns",
            "tf_efficientnet_b6_ns",
            "tf_efficientnet_b6.ns_jft_in1k",
        ] {
            match lookup(Some(&registry), name).unwrap() {
                Named::Model { entry, arch } => {
                    assert_eq!(entry.name(), "tf_efficientnet_b6_ns");
                    assert_eq!(arch, ArchConfig::variant("b6").unwrap());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            lookup(Some(&registry), "b6").unwrap(),
            Named::Arch(a) if a == ArchConfig::variant("b6").unwrap()
        ));
        assert!(matches!(
            lookup(None, "b6_ns"),
            Err(LookupError::Neither { .. })
        ));
    }

    #[test]
    fn a_name_that_is_neither_suggests_models() {
        let registry = Registry::embedded().unwrap();
        let err = lookup(Some(&registry), "b6ns").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`b6ns` is neither a registry model nor an architecture"),
            "{text}"
        );
        assert!(text.contains("did you mean `b6_ns`"), "{text}");
        let err = lookup(Some(&registry), "efficientnet:width=x").unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn card_flops_of_b6_ns_are_thop_2020_at_528x672() {
        let registry = Registry::embedded().unwrap();
        let card = card_flops(registry.resolve("b6_ns").unwrap());
        assert_eq!(card.documented, Some(24_180_518_488));
        assert_eq!(card.image_size, Some(528));
        let counted = card.counted_as.unwrap();
        assert_eq!(counted.convention, Convention::Thop2020);
        assert_eq!(counted.input, "528x672".parse().unwrap());
        assert_eq!(counted.rule, InputRule::DogJpgShortSide);
    }
}
