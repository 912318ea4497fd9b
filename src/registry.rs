//! The registry: model-index files (embedded `registry/` by default, or any directory), read,
//! checked across files, and indexed by name and alias.
//!
//! Loading starts at `model-index.yml` and follows `Import:` globs (relative to the importing
//! file). It collects every finding rather than stopping at the first: per-document schema
//! errors, unmatched imports, duplicate models, duplicate or clashing aliases, dangling
//! `In Collection`. Any error makes [`Registry::load`] fail with the full list.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSetBuilder};
use include_dir::{include_dir, Dir};

use crate::arch::efficientnet::ArchError;
use crate::arch::ArchConfig;
use crate::card::Card;
use crate::diagnostic::{self, Diagnostic, Pos, Severity};
use crate::schema::{Collection, InputSettings, Model, WeightFile, Zoo};

/// The registry shipped in the binary (`registry/` at build time).
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/registry");

/// The file a registry starts from.
pub const ROOT_FILE: &str = "model-index.yml";

/// Most files a registry may hold; guards against pointing `--registry` at a huge tree.
const MAX_FILES: usize = 10_000;

/// Most `Import` globs one document may list (a registry root lists a handful).
const MAX_IMPORTS: usize = 1000;

/// Largest card file read (model-index files are kilobytes; this guards against wrong paths).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// What can go wrong with a registry or a lookup.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has errors; all findings (errors first) are listed.
    #[error("the registry has {} error(s):\n{}", .diagnostics.iter().filter(|d| d.is_error()).count(), list(.diagnostics))]
    Invalid {
        /// Every finding, sorted by file and position.
        diagnostics: Vec<Diagnostic>,
    },
    /// No model has this name or alias.
    #[error("unknown model `{query}`{}", suggest(.suggestions))]
    UnknownModel {
        /// What was asked for.
        query: String,
        /// Nearest names and aliases.
        suggestions: Vec<String>,
    },
    /// A glob pattern does not parse.
    #[error("bad pattern `{pattern}`: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A registry file or directory could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The model has no `Zoo: Architecture`.
    #[error("model `{model}` has no `Zoo: Architecture`")]
    MissingArchitecture {
        /// The model.
        model: String,
    },
    /// The model's architecture does not parse.
    #[error("model `{model}`: {error}")]
    Arch {
        /// The model.
        model: String,
        /// The parse error (in the message, so not also a `source`).
        error: ArchError,
    },
}

/// Names for a message: the first few in backticks, then how many more (a message must not grow
/// with the registry: one per model would make checking quadratic).
fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    const SHOWN: usize = 10;
    let total = names.len();
    if total == 0 {
        return "none".to_string();
    }
    let mut text = names
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if total > SHOWN {
        text.push_str(&format!(" and {} more", total - SHOWN));
    }
    text
}

fn list(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            s.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// One model of the registry with what it needs from around it.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The model as written in its card (typed).
    pub model: Model,
    /// Its collection, if it names one that exists (shared by all its models: a collection
    /// is not copied per model, however large its metadata).
    pub collection: Option<std::sync::Arc<Collection>>,
    /// The file it is defined in (as printed in diagnostics).
    pub file: PathBuf,
    /// Where its entry starts.
    pub pos: Pos,
}

impl ModelEntry {
    /// The model's name (its canonical id in the registry).
    pub fn name(&self) -> &str {
        self.model.name()
    }

    /// The `Zoo:` block, if the model has one.
    pub fn zoo(&self) -> Option<&Zoo> {
        self.model.zoo.as_ref()
    }

    /// Other names that resolve to this model.
    pub fn aliases(&self) -> Vec<&str> {
        self.zoo()
            .and_then(|z| z.aliases.as_ref())
            .map(|a| a.iter().map(|t| t.as_str()).collect())
            .unwrap_or_default()
    }

    /// The architecture to build, count and convert.
    pub fn arch(&self) -> Result<ArchConfig, RegistryError> {
        let text = self
            .zoo()
            .and_then(|z| z.architecture.as_ref())
            .ok_or_else(|| RegistryError::MissingArchitecture {
                model: self.name().to_string(),
            })?;
        text.as_str().parse().map_err(|error| RegistryError::Arch {
            model: self.name().to_string(),
            error,
        })
    }

    /// Evaluation input settings.
    pub fn input(&self) -> Option<&InputSettings> {
        self.zoo().and_then(|z| z.input.as_ref())
    }

    /// Weight files, by role.
    pub fn files(&self) -> &[WeightFile] {
        self.zoo()
            .and_then(|z| z.files.as_deref())
            .unwrap_or_default()
    }

    /// The first weight file with `role`.
    pub fn file(&self, role: crate::schema::FileRole) -> Option<&WeightFile> {
        self.files()
            .iter()
            .find(|f| f.role.as_ref().is_some_and(|r| r.value == role))
    }

    /// Reference vectors, with paths resolved against the directory of the model's file.
    pub fn reference(&self) -> Option<crate::convert::pipeline::ReferenceVectors> {
        let r = self.zoo()?.reference.as_ref()?;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        Some(crate::convert::pipeline::ReferenceVectors {
            input: dir.join(r.input.as_ref()?.as_str()),
            logits: dir.join(r.logits.as_ref()?.as_str()),
            tolerance: r
                .tolerance
                .as_ref()
                .map_or(crate::torch::DEFAULT_TOLERANCE, |t| t.value),
        })
    }
}

/// What the fetcher needs to know about a registry weight file.
pub fn file_spec(w: &WeightFile) -> crate::fetch::FileSpec {
    crate::fetch::FileSpec {
        file_name: w
            .file
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        urls: w
            .urls
            .iter()
            .flatten()
            .map(|u| u.as_str().to_owned())
            .collect(),
        size: w.size.as_ref().map(|c| c.value),
        sha256: w.sha256.as_ref().map(|t| t.as_str().to_owned()),
        sha256_prefix: w.sha256_prefix.as_ref().map(|t| t.as_str().to_owned()),
    }
}

/// A loaded, cross-checked registry.
#[derive(Debug, Clone)]
pub struct Registry {
    /// By name, sorted.
    models: BTreeMap<String, ModelEntry>,
    /// Alias → name.
    aliases: BTreeMap<String, String>,
    /// Warnings and info found while loading.
    diagnostics: Vec<Diagnostic>,
    /// Where it was loaded from (`None` when embedded).
    dir: Option<PathBuf>,
}

/// Files a registry is read from: relative path (with `/`) → text.
trait Source {
    /// All files, relative, with `/` separators.
    fn list(&self) -> Vec<String>;
    /// The text of one file.
    fn read(&self, rel: &str) -> Result<String, RegistryError>;
    /// How a file is named in diagnostics.
    fn display(&self, rel: &str) -> PathBuf;
}

struct Embedded;

fn embedded_files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    out.extend(dir.files());
    for d in dir.dirs() {
        embedded_files(d, out);
    }
}

impl Source for Embedded {
    fn list(&self) -> Vec<String> {
        let mut files = Vec::new();
        embedded_files(&EMBEDDED, &mut files);
        files
            .iter()
            .map(|f| f.path().to_string_lossy().replace('\\', "/"))
            .collect()
    }
    fn read(&self, rel: &str) -> Result<String, RegistryError> {
        EMBEDDED
            .get_file(rel)
            .and_then(|f| f.contents_utf8())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Io {
                path: self.display(rel),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not in the embedded registry",
                ),
            })
    }
    fn display(&self, rel: &str) -> PathBuf {
        Path::new("registry").join(rel)
    }
}

struct Disk(PathBuf);

impl Disk {
    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: dir.to_path_buf(),
            error: source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if out.len() >= MAX_FILES {
                return Ok(());
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().map_err(io)?;
            if ft.is_dir() {
                self.walk(&e.path(), &child, out)?;
            } else if ft.is_file() {
                out.push(child);
            }
        }
        Ok(())
    }
}

impl Source for Disk {
    fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        // An unreadable subdirectory just lists nothing; imports into it then report "matches no file".
        let root = if self.0.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.0.as_path()
        };
        let _ = self.walk(root, "", &mut out);
        out
    }
    fn read(&self, rel: &str) -> Result<String, RegistryError> {
        let path = self.0.join(rel);
        let len = std::fs::metadata(&path)
            .map_err(|error| RegistryError::Io {
                path: path.clone(),
                error,
            })?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(RegistryError::Io {
                path,
                error: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{len} bytes is more than a model card may have ({MAX_FILE_BYTES})"),
                ),
            });
        }
        std::fs::read_to_string(&path).map_err(|source| RegistryError::Io {
            path,
            error: source,
        })
    }
    fn display(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

/// Joins a directory (relative, `/`) and a relative glob, resolving `.` and `..`.
fn join_rel(dir: &str, pattern: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in pattern.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Reads `entry` and everything it imports. Returns the cards in load order and all findings.
fn load_tree(
    source: &dyn Source,
    entry: &str,
) -> Result<(Vec<Card>, Vec<Diagnostic>), RegistryError> {
    let mut diags = Vec::new();
    let mut cards = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![entry.to_string()];
    let mut listing: Option<Vec<String>> = None;
    seen.insert(entry.to_string());
    while let Some(rel) = queue.pop() {
        let text = source.read(&rel)?;
        let display = source.display(&rel);
        let (card, mut found) = Card::parse(&display, &text);
        diags.append(&mut found);
        let Some(card) = card else { continue };
        let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
        let mut imported = Vec::new();
        for block in &card.blocks {
            let globs = block.index.import.as_deref().unwrap_or_default();
            if let Some(extra) = globs.get(MAX_IMPORTS) {
                // Each glob is matched against every file: bound the product.
                diags.push(Diagnostic::new(
                    Severity::Error,
                    &display,
                    extra.pos(),
                    format!(
                        "`Import` lists {} globs; at most {MAX_IMPORTS} are read",
                        globs.len()
                    ),
                ));
            }
            for glob in globs.iter().take(MAX_IMPORTS) {
                let Some(pattern) = join_rel(dir, glob.as_str()) else {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        &display,
                        glob.pos(),
                        format!("`Import` `{}` leaves the registry", glob.as_str()),
                    ));
                    continue;
                };
                let matcher = match Glob::new(&pattern) {
                    Ok(g) => g.compile_matcher(),
                    Err(e) => {
                        diags.push(Diagnostic::new(
                            Severity::Error,
                            &display,
                            glob.pos(),
                            format!("`Import` `{}` is not a glob: {e}", glob.as_str()),
                        ));
                        continue;
                    }
                };
                let files = listing.get_or_insert_with(|| source.list());
                let mut hits: Vec<&String> = files
                    .iter()
                    .filter(|f| matcher.is_match(f.as_str()))
                    .collect();
                hits.sort();
                if hits.is_empty() {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        &display,
                        glob.pos(),
                        format!("`Import` `{}` matches no file", glob.as_str()),
                    ));
                }
                for h in hits {
                    if seen.insert(h.clone()) {
                        imported.push(h.clone());
                    }
                }
            }
        }
        // Visit imports in sorted order (the queue is a stack).
        imported.reverse();
        queue.extend(imported);
        cards.push(card);
    }
    Ok((cards, diags))
}

/// The cross-file checks: duplicate collections, models and aliases; dangling `In Collection`.
/// Returns the entries by name and the alias table.
fn cross_check(
    cards: &[Card],
    diags: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, ModelEntry>, BTreeMap<String, String>) {
    let mut collections: BTreeMap<String, (std::sync::Arc<Collection>, PathBuf)> = BTreeMap::new();
    for card in cards {
        for c in card
            .blocks
            .iter()
            .flat_map(|b| b.index.collections.iter().flatten())
        {
            let Some(name) = &c.name else { continue };
            if let Some((_, file)) = collections.get(name.as_str()) {
                diags.push(Diagnostic::new(
                    Severity::Error,
                    &card.path,
                    name.pos(),
                    format!(
                        "duplicate collection `{}` (also in {})",
                        name.as_str(),
                        file.display()
                    ),
                ));
            } else {
                collections.insert(
                    name.as_str().to_string(),
                    (std::sync::Arc::new(c.clone()), card.path.clone()),
                );
            }
        }
    }
    let mut models: BTreeMap<String, ModelEntry> = BTreeMap::new();
    for card in cards {
        for m in card
            .blocks
            .iter()
            .flat_map(|b| b.index.models.iter().flatten())
        {
            let Some(name) = &m.name else { continue };
            let collection = match &m.in_collection {
                Some(c) => match collections.get(c.as_str()) {
                    Some((col, _)) => Some(col.clone()),
                    None => {
                        diags.push(Diagnostic::new(Severity::Error, &card.path, c.pos(), format!("`In Collection` names `{}`, which is not defined (collections: {})", c.as_str(), name_list(collections.keys()))));
                        None
                    }
                },
                None => None,
            };
            if let Some(first) = models.get(name.as_str()) {
                diags.push(Diagnostic::new(
                    Severity::Error,
                    &card.path,
                    name.pos(),
                    format!(
                        "duplicate model `{}` (first defined at {}:{})",
                        name.as_str(),
                        first.file.display(),
                        first.model.name.as_ref().map_or(first.pos, |n| n.pos())
                    ),
                ));
                continue;
            }
            models.insert(
                name.as_str().to_string(),
                ModelEntry {
                    model: m.clone(),
                    collection,
                    file: card.path.clone(),
                    pos: m.pos,
                },
            );
        }
    }
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    for entry in models.values() {
        let Some(list) = entry.zoo().and_then(|z| z.aliases.as_ref()) else {
            continue;
        };
        for a in list {
            let alias = a.as_str();
            let clash = if alias == entry.name() {
                Some("is the model's own name".to_string())
            } else if models.contains_key(alias) {
                Some(format!("is the name of model `{alias}`"))
            } else {
                aliases
                    .get(alias)
                    .map(|owner| format!("is already an alias of `{owner}`"))
            };
            match clash {
                Some(why) => diags.push(Diagnostic::new(
                    Severity::Error,
                    &entry.file,
                    a.pos(),
                    format!("duplicate alias `{alias}`: it {why}"),
                )),
                None => {
                    aliases.insert(alias.to_string(), entry.name().to_string());
                }
            }
        }
    }
    (models, aliases)
}

impl Registry {
    /// The registry embedded in the binary.
    pub fn embedded() -> Result<Registry, RegistryError> {
        Registry::from_source(&Embedded)
    }

    /// The directory it was loaded from (`None` for the embedded registry).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The registry in `dir` (starting at `dir/model-index.yml`).
    pub fn load(dir: &Path) -> Result<Registry, RegistryError> {
        let mut r = Registry::from_source(&Disk(dir.to_path_buf()))?;
        r.dir = Some(dir.to_path_buf());
        Ok(r)
    }

    /// Like [`Registry::load`] (or [`Registry::embedded`] for `None`), but a registry with
    /// errors still loads, with the errors among its [`Registry::diagnostics`]: `zoo validate`
    /// reports them beside every other check instead of stopping at the first file.
    pub fn load_keep_errors(dir: Option<&Path>) -> Result<Registry, RegistryError> {
        let mut r = match dir {
            Some(d) => Registry::build(&Disk(d.to_path_buf()), true)?,
            None => Registry::build(&Embedded, true)?,
        };
        r.dir = dir.map(Path::to_path_buf);
        Ok(r)
    }

    fn from_source(source: &dyn Source) -> Result<Registry, RegistryError> {
        Registry::build(source, false)
    }

    fn build(source: &dyn Source, keep_errors: bool) -> Result<Registry, RegistryError> {
        let (cards, mut diags) = load_tree(source, ROOT_FILE)?;
        let (models, aliases) = cross_check(&cards, &mut diags);
        diagnostic::sort(&mut diags);
        if !keep_errors && diags.iter().any(Diagnostic::is_error) {
            diags.sort_by_key(|d| d.severity);
            return Err(RegistryError::Invalid { diagnostics: diags });
        }
        Ok(Registry {
            models,
            aliases,
            diagnostics: diags,
            dir: None,
        })
    }

    /// The model with this name or alias; unknown names get the nearest suggestions.
    pub fn resolve(&self, name: &str) -> Result<&ModelEntry, RegistryError> {
        let canonical = self.aliases.get(name).map_or(name, String::as_str);
        self.models
            .get(canonical)
            .ok_or_else(|| RegistryError::UnknownModel {
                query: name.to_string(),
                suggestions: self.suggestions(name),
            })
    }

    /// Names and aliases close to `query` (edit distance), nearest first, at most five.
    pub fn suggestions(&self, query: &str) -> Vec<String> {
        let limit = (query.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &str)> = self
            .models
            .keys()
            .chain(self.aliases.keys())
            .map(|n| (strsim::levenshtein(query, n), n.as_str()))
            .filter(|(d, _)| *d <= limit)
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// All models, sorted by name.
    pub fn models(&self) -> impl Iterator<Item = &ModelEntry> {
        self.models.values()
    }

    /// Models whose name or an alias matches any of the glob patterns (all models if none),
    /// sorted by name. A pattern that matches nothing is an error with suggestions.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<&ModelEntry>, RegistryError> {
        if patterns.is_empty() {
            return Ok(self.models().collect());
        }
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p).map_err(|e| RegistryError::BadPattern {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| RegistryError::BadPattern {
            pattern: patterns.join(" "),
            message: e.to_string(),
        })?;
        let mut hit = vec![false; patterns.len()];
        let mut out = Vec::new();
        for entry in self.models() {
            let mut matched = false;
            for n in std::iter::once(entry.name()).chain(entry.aliases()) {
                for i in set.matches(n) {
                    hit[i] = true;
                    matched = true;
                }
            }
            if matched {
                out.push(entry);
            }
        }
        if let Some(i) = hit.iter().position(|h| !h) {
            return Err(RegistryError::UnknownModel {
                query: patterns[i].clone(),
                suggestions: self.suggestions(&patterns[i]),
            });
        }
        Ok(out)
    }

    /// Warnings and info found while loading.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The registry's files under `prefix` (relative, `/`-separated, sorted): e.g. its
    /// `templates/`, read from wherever the registry came from.
    pub fn files_under(&self, prefix: &str) -> Vec<String> {
        let mut files = match &self.dir {
            Some(d) => Disk(d.clone()).list(),
            None => Embedded.list(),
        };
        files.retain(|f| f.starts_with(prefix));
        files.sort();
        files
    }

    /// The text of one registry file (relative, `/`-separated), from wherever the registry
    /// came from.
    pub fn read_file(&self, rel: &str) -> Result<String, RegistryError> {
        match &self.dir {
            Some(d) => Disk(d.clone()).read(rel),
            None => Embedded.read(rel),
        }
    }
}

/// Strict check of model-index YAML files, markdown cards and Hugging Face Hub READMEs (YAML
/// front matter, see [`crate::schema::hf`]), following imports: schema errors, duplicates and
/// dangling references across all the given files. Unreadable files are reported as errors at 1:1.
pub fn check_cards(paths: &[PathBuf]) -> Vec<Diagnostic> {
    let mut cards = Vec::new();
    let mut diags = Vec::new();
    let mut seen = BTreeSet::new();
    for path in paths {
        let (dir, file) = match (path.parent(), path.file_name()) {
            (Some(d), Some(f)) => (d.to_path_buf(), f.to_string_lossy().into_owned()),
            _ => (PathBuf::new(), path.to_string_lossy().into_owned()),
        };
        match load_tree(&Disk(dir.clone()), &file) {
            Ok((found, mut d)) => {
                diags.append(&mut d);
                cards.extend(found.into_iter().filter(|c| seen.insert(c.path.clone())));
            }
            Err(e) => diags.push(Diagnostic::new(
                Severity::Error,
                path,
                Pos::new(1, 1),
                e.to_string(),
            )),
        }
    }
    cross_check(&cards, &mut diags);
    diagnostic::sort(&mut diags);
    diags.dedup();
    diags
}
