//! What timm publishes on the Hugging Face Hub, derived from the registry: `config.json` exactly as
//! timm's `save_for_hf` writes it, and the model card (`README.md`: the Hub's YAML front matter
//! with its `model-index` results, then prose rendered from `templates/hf/card.md.j2`).
//!
//! A model's Hub name is its timm ≥ 0.9 name `<architecture>.<tag>`
//! (`tf_efficientnet_b0.ns_jft_in1k`), taken from the one alias of that form. The architecture
//! must be the timm entry point that builds the model's resolved spec, so a `b1` model cannot be
//! published under `tf_efficientnet_b0`; a custom spec (`efficientnet:width=…`) has no timm entry
//! point, and its alias names the one the user registers.
use std::path::PathBuf;

use serde::Serialize;

use crate::arch::{ArchConfig, Network};
use crate::flops::{self, Convention, InputSize};
use crate::registry::ModelEntry;
use crate::schema::yaml::{self, Map, Node, Scalar, Seq};
use crate::schema::{FileRole, Metrics, Paper};

/// Where the Hub card template is, relative to the registry's `templates/`.
pub const CARD_TEMPLATE: &str = "hf/card.md.j2";

/// The embedded registry's Hub card template, used when a registry has none of its own.
const DEFAULT_CARD_TEMPLATE: &str = include_str!("../registry/templates/hf/card.md.j2");

/// Where `zoo docs` writes a model's Hub card, relative to the registry directory.
pub fn card_path(hub: &HubName) -> PathBuf {
    PathBuf::from(crate::template::CARDS_DIR)
        .join("hf")
        .join(hub.to_string())
        .join("README.md")
}

/// What can keep a model from its Hub files.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No alias of the form `<architecture>.<tag>`.
    #[error(
        "model `{model}` ({}) has no Hub name: add its timm name `<architecture>.<tag>` to `Zoo: Aliases` (e.g. `tf_efficientnet_b0.ns_jft_in1k`)",
        .file.display()
    )]
    NoHubName {
        /// The model.
        model: String,
        /// Its registry file.
        file: PathBuf,
    },
    /// Several aliases of that form.
    #[error("model `{model}` ({}) has several timm names in `Zoo: Aliases`: {}", .file.display(), .names.join(", "))]
    SeveralHubNames {
        /// The model.
        model: String,
        /// Its registry file.
        file: PathBuf,
        /// The names.
        names: Vec<String>,
    },
    /// The Hub name's architecture is not the timm entry point of the model's architecture.
    #[error("model `{model}` ({}): the alias `{alias}` names timm architecture `{named}`, but `Zoo: Architecture` resolves to `{expected}`", .file.display())]
    ArchitectureMismatch {
        /// The model.
        model: String,
        /// Its registry file.
        file: PathBuf,
        /// The alias.
        alias: String,
        /// The architecture it names.
        named: String,
        /// The one the registry architecture is.
        expected: String,
    },
    /// A value the Hub files are made from is missing.
    #[error("model `{model}` ({}) has no `{field}`, which its Hub {what} needs", .file.display())]
    Missing {
        /// The model.
        model: String,
        /// Its registry file.
        file: PathBuf,
        /// The key path.
        field: &'static str,
        /// Which file needs it.
        what: &'static str,
    },
    /// The architecture does not resolve.
    #[error("model `{model}`: {error}")]
    Arch {
        /// The model.
        model: String,
        /// Why.
        error: crate::arch::efficientnet::ArchError,
    },
    /// The model's operations cannot be counted at its input size.
    #[error("model `{model}`: {error}")]
    Flops {
        /// The model.
        model: String,
        /// Why (in the message, so not also a `source`).
        error: crate::flops::FlopsError,
    },
    /// The registry's architecture text is invalid.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The card template failed.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
}

/// A timm ≥ 0.9 model name: `architecture.tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubName {
    /// The timm entry point (`tf_efficientnet_b0`).
    pub architecture: String,
    /// The pretrained tag (`ns_jft_in1k`).
    pub tag: String,
}

impl std::fmt::Display for HubName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.architecture, self.tag)
    }
}

/// Whether a name is a plain timm identifier (letters, digits, `_`), so it is safe in a path.
fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The timm entry point that builds `cfg`, for the `tf_efficientnet_*` variants.
pub fn timm_architecture(cfg: &ArchConfig) -> Option<String> {
    crate::arch::family::MEMBERS
        .iter()
        .map(|m| m.0)
        .find(|name| ArchConfig::variant(name).is_some_and(|v| v == *cfg))
        .map(str::to_owned)
}

/// The model's Hub name, checked against its architecture.
pub fn hub_name(entry: &ModelEntry) -> Result<HubName, HubError> {
    let names: Vec<&str> = entry
        .aliases()
        .into_iter()
        .filter(|a| {
            a.split_once('.')
                .is_some_and(|(arch, tag)| is_identifier(arch) && is_identifier(tag))
        })
        .collect();
    let alias = match names.as_slice() {
        [one] => *one,
        [] => {
            return Err(HubError::NoHubName {
                model: entry.name().to_string(),
                file: entry.file.clone(),
            })
        }
        _ => {
            return Err(HubError::SeveralHubNames {
                model: entry.name().to_string(),
                file: entry.file.clone(),
                names: names.iter().map(|s| s.to_string()).collect(),
            })
        }
    };
    let (architecture, tag) = alias.split_once('.').unwrap_or((alias, ""));
    if let Some(expected) = timm_architecture(&entry.arch()?) {
        if expected != architecture {
            return Err(HubError::ArchitectureMismatch {
                model: entry.name().to_string(),
                file: entry.file.clone(),
                alias: alias.to_string(),
                named: architecture.to_string(),
                expected,
            });
        }
    }
    Ok(HubName {
        architecture: architecture.to_string(),
        tag: tag.to_string(),
    })
}

/// `config.json` as timm's `save_for_hf` writes it for an EfficientNet (same keys, same order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimmConfig {
    /// The timm entry point.
    pub architecture: String,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Channels into the classifier (`conv_head` outputs).
    pub num_features: usize,
    /// Global pooling type.
    pub global_pool: &'static str,
    /// The arguments `timm.create_model` rebuilds the model with.
    pub model_args: ModelArgs,
    /// The pretrained config: preprocessing and head names.
    pub pretrained_cfg: PretrainedCfg,
}

/// `model_args` of [`TimmConfig`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelArgs {
    /// Input channels.
    pub in_chans: usize,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Global pooling type.
    pub global_pool: &'static str,
}

/// `pretrained_cfg` of [`TimmConfig`], in timm's `PretrainedCfg` field order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PretrainedCfg {
    /// The pretrained tag.
    pub tag: String,
    /// Always false: the file is a native timm state dict.
    pub custom_load: bool,
    /// `[channels, height, width]`.
    pub input_size: [usize; 3],
    /// Whether other input sizes are allowed (false: EfficientNet takes any size).
    pub fixed_input_size: bool,
    /// Resize interpolation.
    pub interpolation: String,
    /// Centre-crop ratio.
    pub crop_pct: f64,
    /// Crop mode.
    pub crop_mode: &'static str,
    /// Per-channel mean (0..1 scale).
    pub mean: Vec<f64>,
    /// Per-channel std (0..1 scale).
    pub std: Vec<f64>,
    /// Classifier outputs.
    pub num_classes: usize,
    /// The final feature map at `input_size` (stride 32, TF 'same' rounds up).
    pub pool_size: [usize; 2],
    /// The first conv's module name.
    pub first_conv: &'static str,
    /// The classifier's module name.
    pub classifier: &'static str,
    /// The weights' license.
    pub license: String,
}

impl TimmConfig {
    /// The file's bytes: `json.dump(config, f, indent=2)` (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn missing(entry: &ModelEntry, field: &'static str, what: &'static str) -> HubError {
    HubError::Missing {
        model: entry.name().to_string(),
        file: entry.file.clone(),
        field,
        what,
    }
}

/// The resolved architecture of a registry model.
pub fn resolve(entry: &ModelEntry) -> Result<Network, HubError> {
    entry.arch()?.resolve().map_err(|error| HubError::Arch {
        model: entry.name().to_string(),
        error,
    })
}

/// The model's license (`Zoo: License`).
fn license(entry: &ModelEntry, what: &'static str) -> Result<String, HubError> {
    entry
        .zoo()
        .and_then(|z| z.license.as_ref())
        .map(|l| l.as_str().to_string())
        .ok_or_else(|| missing(entry, "Zoo: License", what))
}

/// `config.json` for a registry model.
pub fn timm_config(entry: &ModelEntry, spec: &Network) -> Result<TimmConfig, HubError> {
    const WHAT: &str = "config.json";
    let hub = hub_name(entry)?;
    let input = entry
        .input()
        .ok_or_else(|| missing(entry, "Zoo: Input", WHAT))?;
    let size = input
        .image_size
        .as_ref()
        .ok_or_else(|| missing(entry, "Zoo: Input: Image Size", WHAT))?
        .value as usize;
    let crop_pct = input
        .crop_pct
        .as_ref()
        .ok_or_else(|| missing(entry, "Zoo: Input: Crop Pct", WHAT))?
        .value;
    let interpolation = input
        .interpolation
        .as_ref()
        .ok_or_else(|| missing(entry, "Zoo: Input: Interpolation", WHAT))?
        .value
        .as_str()
        .to_string();
    let numbers = |v: &Option<Vec<crate::schema::Number>>, field| {
        v.as_ref()
            .map(|v| v.iter().map(|n| n.value).collect::<Vec<_>>())
            .ok_or_else(|| missing(entry, field, WHAT))
    };
    let classes = spec.classes();
    let pool = size.div_ceil(32);
    Ok(TimmConfig {
        architecture: hub.architecture,
        num_classes: classes,
        num_features: spec.num_features(),
        global_pool: "avg",
        model_args: ModelArgs {
            in_chans: spec.in_chans,
            num_classes: classes,
            global_pool: "avg",
        },
        pretrained_cfg: PretrainedCfg {
            tag: hub.tag,
            custom_load: false,
            input_size: [spec.in_chans, size, size],
            fixed_input_size: false,
            interpolation,
            crop_pct,
            crop_mode: "center",
            mean: numbers(&input.mean, "Zoo: Input: Mean")?,
            std: numbers(&input.std, "Zoo: Input: Std")?,
            num_classes: classes,
            pool_size: [pool, pool],
            first_conv: "conv_stem",
            classifier: "classifier",
            license: license(entry, WHAT)?,
        },
    })
}

/// Where the weights of a Hub export came from and how they were checked; printed in the card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The source file's name.
    pub source: String,
    /// Its sha256 (for a TF bundle: of its `.index`).
    pub source_sha256: String,
    /// zoo's version.
    pub zoo_version: String,
    /// The TF → timm mapping version.
    pub mapping: String,
    /// TF weight set (`ema`/`raw`), for TF sources.
    pub weights: Option<String>,
    /// Container-independent fingerprint of the weights.
    pub fingerprint: String,
    /// sha256 of `model.safetensors`.
    pub safetensors_sha256: String,
    /// The inference check, in words (`pass: max |Δ| 7.2e-7 ≤ 1e-4 on 2 reference inputs`).
    pub inference: String,
}

fn scalar(text: impl Into<String>) -> Node {
    Node::Scalar(Scalar::new(text))
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::Map(Map {
        entries: entries
            .into_iter()
            .map(|(k, v)| (Scalar::new(k), v))
            .collect(),
        pos: Default::default(),
    })
}

fn seq(items: Vec<Node>) -> Node {
    Node::Seq(Seq {
        items,
        pos: Default::default(),
    })
}

/// The Hub's dataset id for a registry dataset name.
fn dataset_id(name: &str) -> String {
    match name {
        "ImageNet" | "ImageNet-1k" | "ImageNet-1K" => "imagenet-1k".into(),
        other => crate::template::slug(other),
    }
}

/// A registry model's results in the Hub's `model-index` form: one result per registry result,
/// `accuracy` metrics with the registry's numbers (without `%`); `None` without results.
fn model_index(entry: &ModelEntry, hub: &HubName) -> Option<Node> {
    let mut results = vec![];
    for r in entry.model.results.iter().flatten() {
        let Some(Metrics::Map(metrics)) = &r.metrics else {
            continue;
        };
        let metrics: Vec<Node> = metrics
            .iter()
            .map(|(name, m)| {
                let value = m.raw.text.trim().trim_end_matches('%').trim_end();
                let kind = if name.as_str().contains("Accuracy") {
                    "accuracy"
                } else {
                    "other"
                };
                map(vec![
                    ("type", scalar(kind)),
                    // a number, so plain (unquoted)
                    (
                        "value",
                        Node::Scalar(Scalar {
                            text: value.to_string(),
                            style: yaml::Style::Plain,
                            pos: Default::default(),
                        }),
                    ),
                    ("name", scalar(name.as_str())),
                ])
            })
            .collect();
        let task = r
            .task
            .as_ref()
            .map_or("Image Classification", |t| t.as_str());
        let dataset = r.dataset.as_ref().map_or("ImageNet", |t| t.as_str());
        results.push(map(vec![
            (
                "task",
                map(vec![
                    ("type", scalar(crate::template::slug(task))),
                    ("name", scalar(task)),
                ]),
            ),
            (
                "dataset",
                map(vec![
                    ("name", scalar(dataset)),
                    ("type", scalar(dataset_id(dataset))),
                    ("split", scalar("validation")),
                ]),
            ),
            ("metrics", seq(metrics)),
            (
                "source",
                map(vec![
                    (
                        "name",
                        scalar("zoo registry (Papers with Code model-index)"),
                    ),
                    ("url", scalar(model_url(entry))),
                ]),
            ),
        ]));
    }
    (!results.is_empty()).then(|| {
        seq(vec![map(vec![
            ("name", scalar(hub.to_string())),
            ("results", seq(results)),
        ])])
    })
}

/// The page the registry cites for a model's results: its `Code` link, else its paper.
fn model_url(entry: &ModelEntry) -> String {
    entry
        .model
        .code
        .as_ref()
        .map(|c| c.as_str().to_string())
        .or_else(|| paper(entry).map(|(_, url)| url))
        .unwrap_or_default()
}

/// The paper (title, URL) of the model or its collection.
fn paper(entry: &ModelEntry) -> Option<(String, String)> {
    let paper = entry
        .model
        .paper
        .as_ref()
        .or_else(|| entry.collection.as_ref().and_then(|c| c.paper.as_ref()))?;
    Some(match paper {
        Paper::Link(url) => (url.as_str().to_string(), url.as_str().to_string()),
        Paper::Ref(r) => (
            r.title.as_ref().map_or("", |t| t.as_str()).to_string(),
            r.url.as_ref().map_or("", |t| t.as_str()).to_string(),
        ),
    })
}

/// The Hub card's front matter (without the `---` lines).
pub fn front_matter(entry: &ModelEntry, hub: &HubName) -> Result<String, HubError> {
    let datasets: Vec<Node> = training_data(entry)
        .iter()
        .map(|d| scalar(dataset_id(d)))
        .collect();
    let mut entries = vec![
        (
            "tags",
            seq(vec![scalar("image-classification"), scalar("timm")]),
        ),
        ("library_name", scalar("timm")),
        ("license", scalar(license(entry, "card")?)),
    ];
    if !datasets.is_empty() {
        entries.push(("datasets", seq(datasets)));
    }
    entries.push(("pipeline_tag", scalar("image-classification")));
    // The Hub needs at least one result in a model-index; a model without results has none.
    if let Some(index) = model_index(entry, hub) {
        entries.push(("model-index", index));
    }
    Ok(yaml::emit(&map(entries)))
}

fn training_data(entry: &ModelEntry) -> Vec<String> {
    entry
        .model
        .metadata
        .as_ref()
        .and_then(|m| m.training_data.as_ref())
        .map(|d| d.iter().map(|t| t.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// A model's Hub card: front matter, then the `hf/card.md.j2` template of the registry.
pub fn render_card(
    registry: &crate::registry::Registry,
    entry: &ModelEntry,
    spec: &Network,
    provenance: Option<&Provenance>,
) -> Result<String, HubError> {
    let hub = hub_name(entry)?;
    let config = timm_config(entry, spec)?;
    let size = config.pretrained_cfg.input_size[1];
    let macs = flops::count(
        spec,
        Convention::Macs,
        InputSize {
            height: size,
            width: size,
        },
    )
    .map_err(|error| HubError::Flops {
        model: entry.name().to_string(),
        error,
    })?;
    let original = entry
        .file(FileRole::TfCheckpoint)
        .and_then(|f| f.urls.as_ref())
        .and_then(|u| u.first())
        .map(|u| u.as_str().to_string());
    let results: Vec<(String, String, String)> = entry
        .model
        .results
        .iter()
        .flatten()
        .filter_map(|r| match &r.metrics {
            Some(Metrics::Map(m)) => Some((r, m)),
            _ => None,
        })
        .flat_map(|(r, m)| {
            let dataset = r.dataset.as_ref().map_or("", |d| d.as_str()).to_string();
            m.iter().map(move |(k, v)| {
                (
                    dataset.clone(),
                    k.as_str().to_string(),
                    v.raw.text.trim().to_string(),
                )
            })
        })
        .collect();
    let mut env = crate::template::environment(registry)?;
    if env.get_template(CARD_TEMPLATE).is_err() {
        // A registry without its own Hub card template (a test or user registry) gets zoo's.
        env.add_template(CARD_TEMPLATE, DEFAULT_CARD_TEMPLATE)
            .map_err(|e| crate::template::render_error(CARD_TEMPLATE, &e))?;
    }
    let tmpl = env
        .get_template(CARD_TEMPLATE)
        .map_err(|e| crate::template::render_error(CARD_TEMPLATE, &e))?;
    let (paper_title, paper_url) = paper(entry).unzip();
    let text = tmpl
        .render(minijinja::context! {
            front_matter => front_matter(entry, &hub)?,
            hub_name => hub.to_string(),
            model => entry.name(),
            collection => entry.collection.as_ref().and_then(|c| c.name.as_ref()).map(|n| n.as_str()),
            params_m => format!("{:.1}", spec.trainable_params() as f64 / 1e6),
            params => spec.trainable_params(),
            gmacs => format!("{:.2}", macs as f64 / 1e9),
            image_size => size,
            crop_pct => config.pretrained_cfg.crop_pct,
            interpolation => config.pretrained_cfg.interpolation,
            training_data => training_data(entry),
            paper_title => paper_title,
            paper_url => paper_url,
            original => original,
            code => entry.model.code.as_ref().map(|c| c.as_str()),
            results => results,
            license => config.pretrained_cfg.license,
            provenance => provenance,
        })
        .map_err(|e| crate::template::render_error(CARD_TEMPLATE, &e))?;
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Checks a Hub card's values against the registry: for every `model-index` entry whose name is
/// a registry model (or alias), each named metric must equal the registry's result of that name
/// on the same dataset, and `license` must equal `Zoo: License`. A card whose models are not in
/// the registry gets one note and no comparison.
pub fn check_against_registry(
    path: &std::path::Path,
    front: &crate::schema::hf::FrontMatter,
    registry: &crate::registry::Registry,
) -> Vec<crate::diagnostic::Diagnostic> {
    use crate::diagnostic::{Diagnostic, Severity};
    let mut out = vec![];
    for entry in front.model_index.iter().flatten() {
        let Some(name) = &entry.name else { continue };
        let Ok(model) = registry.resolve(name.as_str()) else {
            out.push(Diagnostic::new(
                Severity::Info,
                path,
                name.pos(),
                format!(
                    "`{}` is not a model of the registry; its values were not compared",
                    name.as_str()
                ),
            ));
            continue;
        };
        if let (Some(card), Some(zoo)) =
            (&front.license, model.zoo().and_then(|z| z.license.as_ref()))
        {
            if card.as_str() != zoo.as_str() {
                out.push(Diagnostic::new(
                    Severity::Error,
                    path,
                    card.pos(),
                    format!(
                        "license `{}`, but the registry says `{}` for `{}` ({}:{})",
                        card.as_str(),
                        zoo.as_str(),
                        model.name(),
                        model.file.display(),
                        zoo.pos()
                    ),
                ));
            }
        }
        for result in entry.results.iter().flatten() {
            let dataset = result.dataset.as_ref().and_then(|d| d.name.as_ref());
            for metric in result.metrics.iter().flatten() {
                let (Some(metric_name), Some(value)) = (&metric.name, &metric.value) else {
                    continue;
                };
                let documented = model
                    .model
                    .results
                    .iter()
                    .flatten()
                    .filter(|r| {
                        dataset.is_none_or(|d| {
                            r.dataset
                                .as_ref()
                                .is_none_or(|rd| rd.as_str() == d.as_str())
                        })
                    })
                    .filter_map(|r| r.metrics.as_ref())
                    .find_map(|m| m.get(metric_name.as_str()));
                let Some(documented) = documented else {
                    continue;
                };
                if (documented.value - value.value).abs() > 1e-9 {
                    out.push(Diagnostic::new(
                        Severity::Error,
                        path,
                        value.raw.pos,
                        format!(
                            "`{}` of `{}` is {}, but the registry documents {} ({}:{})",
                            metric_name.as_str(),
                            name.as_str(),
                            value.raw.text,
                            documented.raw.text,
                            model.file.display(),
                            documented.raw.pos
                        ),
                    ));
                }
            }
        }
    }
    out
}
