//! Model cards regenerated from the registry (`zoo docs`), and the staleness check
//! (`zoo docs --check`, `zoo validate`'s docs check).
//!
//! One markdown card per collection, `cards/<slug>.md` in the registry directory, in the shape
//! of timm's cards: title, description, the code-snippet section, training, citation, and the
//! model-index block in an HTML comment. The prose is data kept in the registry
//! (`templates/collections/<slug>.md.j2`, minijinja, extending `templates/card.md.j2`); the
//! model-index block is emitted by [`ModelIndex::to_yaml`] from the registry's models with their
//! measured values in place of the documented ones:
//! - `Parameters`: the exact trainable count of the resolved architecture;
//! - `FLOPs`: counted under the model's `Zoo: Flops` convention at its input rule, and named
//!   in a `FLOPs Convention` key beside it;
//! - `File Size`: the predicted size of the released `timm-pth` file (legacy or zip container
//!   as its `Format` says, timm's 2020 save layout); kept as documented when the model lists no
//!   such file;
//! - `Weights Sha256`: the full sha256 of the `timm-pth` file when the registry has one; it
//!   must agree with the file name's hash and `Sha256 Prefix` (an error otherwise). The current
//!   registry has only the 8-digit prefixes timm published, so no card carries one yet.
//!
//! The `Zoo:` block is left out of cards (it is zoo's own and lives in the registry). Models are
//! in registry file order; `model_name` in the code snippets is the collection's first model.
//! Everything is deterministic, so a rendered card equals the committed one byte for byte
//! unless the registry or templates changed.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::arch::Spec;
use crate::filesize::{self, Container, SaveLayout};
use crate::flops::{self, Convention, InputSize};
use crate::registry::{ModelEntry, Registry, RegistryError};
use crate::schema::yaml::{Node, Scalar, Style};
use crate::schema::{
    Collection, Count, FileFormat, FileRole, FlopsCounter, Metadata, Model, ModelIndex, Tagged,
    Text,
};

/// Where the cards go, relative to the registry directory.
pub const CARDS_DIR: &str = "cards";

/// Where the templates are, relative to the registry directory.
pub const TEMPLATES_DIR: &str = "templates";

/// The shared layout template.
pub const BASE_TEMPLATE: &str = "card.md.j2";

/// The metadata key naming the FLOPs convention of a card's `FLOPs`.
pub const FLOPS_CONVENTION_KEY: &str = "FLOPs Convention";

/// The metadata key of a verified full sha256 of the weights.
pub const SHA256_KEY: &str = "Weights Sha256";

/// What can go wrong rendering or checking cards.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// The registry could not be read (templates) or a model's architecture does not resolve.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A model's architecture does not resolve.
    #[error("model `{model}`: {error}")]
    Arch {
        /// The model.
        model: String,
        /// Why (in the message, so not also a `source`).
        error: crate::arch::efficientnet::ArchError,
    },
    /// A model lacks a value the card is computed from.
    #[error("model `{model}` ({}) has no `{field}`, which its card's {what} is computed from", .file.display())]
    Missing {
        /// The model.
        model: String,
        /// Its registry file.
        file: PathBuf,
        /// The missing key path (`Zoo: Flops: Convention`).
        field: &'static str,
        /// Which card value needs it.
        what: &'static str,
    },
    /// The registry's full sha256 of a weight file disagrees with its file name or prefix.
    #[error(
        "model `{model}`: `Sha256` {sha256} does not start with the file's hash prefix `{prefix}`"
    )]
    Sha256Mismatch {
        /// The model.
        model: String,
        /// The full hash.
        sha256: String,
        /// The prefix it should start with.
        prefix: String,
    },
    /// The collection has no template of its own.
    #[error("collection `{collection}` has no card template `{}` in the registry", .path.display())]
    MissingTemplate {
        /// The collection.
        collection: String,
        /// The template it needs (relative to the registry).
        path: PathBuf,
    },
    /// Two collections map to the same card file.
    #[error("collections `{a}` and `{b}` would both be written to `{}`", .path.display())]
    SlugClash {
        /// One collection.
        a: String,
        /// The other.
        b: String,
        /// The card path.
        path: PathBuf,
    },
    /// A template does not parse or render.
    #[error("template `{template}`: {message}")]
    Template {
        /// The template name.
        template: String,
        /// minijinja's message (with its line).
        message: String,
    },
    /// A model's Hub card cannot be made.
    #[error(transparent)]
    Hub(Box<crate::hub::HubError>),
    /// A committed file could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// A generated file that differs from the committed one.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleFile {
    /// The committed file's path (registry dir joined with the relative path).
    pub path: PathBuf,
    /// Unified diff, committed → generated (a missing file diffs from empty).
    pub diff: String,
    /// Models whose card this is (empty for schema files).
    pub models: Vec<String>,
}

/// A rendered card with the models it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedCard {
    /// Relative to the registry directory (`cards/noisy-student.md`).
    pub path: PathBuf,
    /// The collection.
    pub collection: String,
    /// Its models, in card order.
    pub models: Vec<String>,
    /// The markdown.
    pub text: String,
}

/// The card file name of a collection: lower case, runs of other characters as `-`.
pub fn slug(collection: &str) -> String {
    let mut out = String::new();
    for c in collection.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The two card formats `zoo docs` renders from the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum CardFormat {
    /// Papers-with-Code: one card per collection, `cards/<slug>.md`, the model-index in an HTML
    /// comment.
    Pwc,
    /// Hugging Face Hub: one `README.md` per model with a Hub name, `cards/hf/<name>/README.md`,
    /// the Hub's `model-index` in the YAML front matter.
    Hf,
}

impl CardFormat {
    /// Both formats.
    pub const ALL: [CardFormat; 2] = [CardFormat::Pwc, CardFormat::Hf];
}

/// The cards of the given formats, sorted by path.
pub fn render(registry: &Registry, formats: &[CardFormat]) -> Result<Vec<RenderedCard>, DocsError> {
    let mut cards = vec![];
    if formats.contains(&CardFormat::Pwc) {
        cards.extend(render_cards(registry)?);
    }
    if formats.contains(&CardFormat::Hf) {
        cards.extend(render_hub_cards(registry)?);
    }
    cards.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(cards)
}

/// A Hub card (`cards/hf/<name>/README.md`) for every model that has a Hub name
/// (an alias `<architecture>.<tag>`), sorted by path.
pub fn render_hub_cards(registry: &Registry) -> Result<Vec<RenderedCard>, DocsError> {
    let hub = |e: crate::hub::HubError| DocsError::Hub(Box::new(e));
    let mut cards = vec![];
    for entry in registry.models() {
        let name = match crate::hub::hub_name(entry) {
            Ok(n) => n,
            Err(crate::hub::HubError::NoHubName { .. }) => continue,
            Err(e) => return Err(hub(e)),
        };
        let spec = crate::hub::resolve(entry).map_err(hub)?;
        let text = crate::hub::render_card(registry, entry, &spec, None).map_err(hub)?;
        cards.push(RenderedCard {
            path: crate::hub::card_path(&name),
            collection: entry
                .collection
                .as_ref()
                .and_then(|c| c.name.as_ref())
                .map_or_else(String::new, |n| n.as_str().to_string()),
            models: vec![entry.name().to_string()],
            text,
        });
    }
    cards.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(cards)
}

/// Every Papers-with-Code card, as (path relative to the registry directory, markdown), sorted
/// by path.
pub fn render_all(registry: &Registry) -> Result<Vec<(PathBuf, String)>, DocsError> {
    Ok(render_cards(registry)?
        .into_iter()
        .map(|c| (c.path, c.text))
        .collect())
}

/// Every Papers-with-Code card (one per collection) with the models it covers, sorted by path.
pub fn render_cards(registry: &Registry) -> Result<Vec<RenderedCard>, DocsError> {
    let env = environment(registry)?;
    let mut groups: BTreeMap<String, (Collection, Vec<&ModelEntry>)> = BTreeMap::new();
    for entry in registry.models() {
        let Some(collection) = &entry.collection else {
            continue;
        };
        let Some(name) = &collection.name else {
            continue;
        };
        groups
            .entry(name.as_str().to_string())
            .or_insert_with(|| (collection.clone(), Vec::new()))
            .1
            .push(entry);
    }
    let mut cards: Vec<RenderedCard> = Vec::new();
    let mut by_path: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (name, (collection, mut entries)) in groups {
        // Registry file order, as the cards were written.
        entries.sort_by(|a, b| {
            (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col))
        });
        let slug = slug(&name);
        let path = Path::new(CARDS_DIR).join(format!("{slug}.md"));
        if let Some(other) = by_path.insert(path.clone(), name.clone()) {
            return Err(DocsError::SlugClash {
                a: other,
                b: name,
                path,
            });
        }
        let template = format!("collections/{slug}.md.j2");
        let tmpl = env.get_template(&template).map_err(|e| match e.kind() {
            minijinja::ErrorKind::TemplateNotFound => DocsError::MissingTemplate {
                collection: name.clone(),
                path: Path::new(TEMPLATES_DIR).join(&template),
            },
            _ => template_error(&template, &e),
        })?;
        let models = entries
            .iter()
            .map(|e| card_model(e))
            .collect::<Result<Vec<_>, _>>()?;
        let index = ModelIndex {
            type_: Some(Text::new("model-index")),
            collections: Some(vec![collection]),
            models: Some(models),
            order: ["Type", "Collections", "Models"].map(String::from).to_vec(),
            ..ModelIndex::default()
        };
        let first = entries.first().map_or("", |e| e.name());
        let mut text = tmpl
            .render(minijinja::context! {
                collection => name,
                model_name => first,
                model_index => index.to_yaml(),
            })
            .map_err(|e| template_error(&template, &e))?;
        text.push('\n');
        cards.push(RenderedCard {
            path,
            collection: name,
            models: entries.iter().map(|e| e.name().to_string()).collect(),
            text,
        });
    }
    cards.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(cards)
}

pub(crate) fn template_error(template: &str, e: &minijinja::Error) -> DocsError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    DocsError::Template {
        template: template.to_string(),
        message,
    }
}

/// A template environment over the registry's `templates/` (embedded or on disk).
pub(crate) fn environment(
    registry: &Registry,
) -> Result<minijinja::Environment<'static>, DocsError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let prefix = format!("{TEMPLATES_DIR}/");
    for rel in registry.files_under(&prefix) {
        let name = rel[prefix.len()..].to_string();
        let source = registry.read_file(&rel)?;
        env.add_template_owned(name.clone(), source)
            .map_err(|e| template_error(&name, &e))?;
    }
    Ok(env)
}

fn plain_count(value: u64) -> Count {
    Count {
        value,
        raw: Scalar {
            text: value.to_string(),
            style: Style::Plain,
            pos: Default::default(),
        },
    }
}

fn missing(entry: &ModelEntry, field: &'static str, what: &'static str) -> DocsError {
    DocsError::Missing {
        model: entry.name().to_string(),
        file: entry.file.clone(),
        field,
        what,
    }
}

/// The model as its card shows it: standard fields, measured values, no `Zoo:` block.
fn card_model(entry: &ModelEntry) -> Result<Model, DocsError> {
    let spec = entry.arch()?.resolve().map_err(|error| DocsError::Arch {
        model: entry.name().to_string(),
        error,
    })?;
    let mut model = entry.model.clone();
    model.zoo = None;
    let mut meta: Metadata = model.metadata.take().unwrap_or_default();

    meta.parameters = Some(plain_count(spec.trainable_params()));

    let (counter, flops) = measured_flops(entry, &spec)?;
    meta.flops = Some(plain_count(flops));
    meta.flops_convention = Some(Tagged {
        value: counter,
        raw: Scalar::new(counter.as_str()),
    });
    place_after(&mut meta, FLOPS_CONVENTION_KEY, "FLOPs");

    let pth = entry.files().iter().find(|f| {
        f.role
            .as_ref()
            .is_some_and(|r| r.value == FileRole::TimmPth)
    });
    if let Some(pth) = pth {
        let container = match pth.format.as_ref().map(|f| f.value) {
            Some(FileFormat::PthLegacy) => Some(Container::Legacy),
            Some(FileFormat::PthZip) => Some(Container::Zip),
            _ => None,
        };
        if let Some(container) = container {
            let file = pth.file.as_ref().map_or(entry.name(), |f| f.as_str());
            let stem = file.strip_suffix(".pth").unwrap_or(file);
            let layout = SaveLayout::timm_2020_release(stem);
            let size = filesize::predict(&spec, &layout, container).total;
            meta.file_size = Some(plain_count(size));
        }
        if let Some(full) = pth.sha256.as_ref().map(|s| s.as_str()) {
            let named = pth
                .file
                .as_ref()
                .and_then(|n| n.as_str().rsplit_once('-'))
                .and_then(|(_, tail)| tail.split('.').next());
            let prefix = pth.sha256_prefix.as_ref().map(|p| p.as_str());
            let agrees = named.is_none_or(|n| full.starts_with(n))
                && prefix.is_none_or(|p| full.starts_with(p));
            if !agrees {
                return Err(DocsError::Sha256Mismatch {
                    model: entry.name().to_string(),
                    sha256: full.to_string(),
                    prefix: named.or(prefix).unwrap_or_default().to_string(),
                });
            }
            set_extra(&mut meta, SHA256_KEY, Scalar::new(full), "File Size");
        }
    }
    model.metadata = Some(meta);
    Ok(model)
}

/// Sets a custom metadata key, placed right after `after`.
fn set_extra(meta: &mut Metadata, key: &str, value: Scalar, after: &str) {
    meta.extra.0.retain(|(k, _)| k.text != key);
    meta.extra.0.push((Scalar::new(key), Node::Scalar(value)));
    place_after(meta, key, after);
}

/// Writes `key` right after `after` (or last).
fn place_after(meta: &mut Metadata, key: &str, after: &str) {
    meta.order.retain(|k| k != key);
    let at = meta
        .order
        .iter()
        .position(|k| k == after)
        .map_or(meta.order.len(), |i| i + 1);
    meta.order.insert(at, key.to_string());
}

/// FLOPs under the model's convention at its input rule.
fn measured_flops(entry: &ModelEntry, spec: &Spec) -> Result<(FlopsCounter, u64), DocsError> {
    let f = entry.zoo().and_then(|z| z.flops.as_ref());
    let counter = f
        .and_then(|f| f.convention.as_ref())
        .ok_or_else(|| missing(entry, "Zoo: Flops: Convention", "FLOPs"))?
        .value;
    let rule = f
        .and_then(|f| f.input_rule.as_ref())
        .ok_or_else(|| missing(entry, "Zoo: Flops: Input Rule", "FLOPs"))?
        .value;
    let size = entry
        .input()
        .and_then(|i| i.image_size.as_ref())
        .ok_or_else(|| missing(entry, "Zoo: Input: Image Size", "FLOPs"))?
        .value;
    let convention = match counter {
        FlopsCounter::Thop2020 => Convention::Thop2020,
        FlopsCounter::Macs => Convention::Macs,
    };
    let (height, width) = rule.input_hw(size);
    let input = InputSize {
        height: height as usize,
        width: width as usize,
    };
    Ok((counter, flops::count(spec, convention, input)))
}

/// The generated schema files, relative to the project root (`schemas/…`).
pub fn schema_files() -> Vec<(PathBuf, String)> {
    crate::schema::schema_files()
        .into_iter()
        .map(|(name, text)| (Path::new("schemas").join(name), text))
        .collect()
}

/// The project root of a registry directory: its parent (where `schemas/` is).
pub fn project_root(registry_dir: &Path) -> PathBuf {
    match registry_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Compares the committed cards (`registry_dir/cards/…`) and schemas
/// (`registry_dir/../schemas/…`) with freshly generated ones. Returns the stale files (missing
/// ones included), sorted by path; empty when everything is up to date. Extra `.md` files in
/// `cards/` that no collection generates are stale too (their diff deletes them).
pub fn check(registry: &Registry, registry_dir: &Path) -> Result<Vec<StaleFile>, DocsError> {
    let mut stale = Vec::new();
    let cards = render(registry, &CardFormat::ALL)?;
    for card in &cards {
        let path = registry_dir.join(&card.path);
        if let Some(diff) = compare(&path, &card.text)? {
            stale.push(StaleFile {
                path,
                diff,
                models: card.models.clone(),
            });
        }
    }
    for path in orphan_cards(&cards, registry_dir, &CardFormat::ALL)? {
        if let Some(diff) = compare(&path, "")? {
            stale.push(StaleFile {
                path,
                diff,
                models: Vec::new(),
            });
        }
    }
    let root = project_root(registry_dir);
    for (rel, text) in schema_files() {
        let path = root.join(rel);
        if let Some(diff) = compare(&path, &text)? {
            stale.push(StaleFile {
                path,
                diff,
                models: Vec::new(),
            });
        }
    }
    stale.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(stale)
}

/// Generated-looking files that none of `cards` is written to (a renamed or removed
/// collection's or model's old card), sorted: `.md` files in `dir/cards/` (for
/// [`CardFormat::Pwc`]) and `dir/cards/hf/*/README.md` (for [`CardFormat::Hf`]). `zoo docs`
/// deletes them; `--check` reports them.
pub fn orphan_cards(
    cards: &[RenderedCard],
    dir: &Path,
    formats: &[CardFormat],
) -> Result<Vec<PathBuf>, DocsError> {
    let cards_dir = dir.join(CARDS_DIR);
    let mut candidates = vec![];
    if formats.contains(&CardFormat::Pwc) {
        candidates.extend(
            list_dir(&cards_dir)?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    if formats.contains(&CardFormat::Hf) {
        for model_dir in list_dir(&cards_dir.join("hf"))? {
            let readme = model_dir.join("README.md");
            if readme.is_file() {
                candidates.push(readme);
            }
        }
    }
    let mut extra: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|path| !cards.iter().any(|c| dir.join(&c.path) == *path))
        .collect();
    extra.sort();
    Ok(extra)
}

/// The entries of a directory (none when it does not exist).
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    let io = |error| DocsError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io(error)),
    };
    entries.map(|e| e.map(|e| e.path()).map_err(io)).collect()
}

/// `None` when `path` holds exactly `generated`; otherwise the unified diff.
fn compare(path: &Path, generated: &str) -> Result<Option<String>, DocsError> {
    let committed = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(DocsError::Io {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    if committed == generated {
        return Ok(None);
    }
    let name = path.display().to_string();
    let diff = similar::TextDiff::from_lines(committed.as_str(), generated)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{name} (committed)"),
            &format!("{name} (generated)"),
        )
        .to_string();
    Ok(Some(diff))
}
