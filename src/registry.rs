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
    /// A glob pattern matches no model name or alias.
    #[error("no model matches `{pattern}`")]
    NoMatch {
        /// The pattern.
        pattern: String,
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
    /// `--registry` (or `ZOO_REGISTRY`) names something that is not a registry.
    #[error("--registry {}: {why}", .path.display())]
    NotARegistry {
        /// What was given.
        path: PathBuf,
        /// Why it is not a registry, and what would be.
        why: String,
    },
    /// The name is in a registry file that could not be read, so the model is not loaded.
    #[error("`{query}` is in {}:{line}, which could not be read: {error}", .file.display())]
    InUnreadableFile {
        /// What was asked for.
        query: String,
        /// The unreadable file.
        file: PathBuf,
        /// The line where the name occurs.
        line: usize,
        /// Why the file could not be read (located).
        error: Box<Diagnostic>,
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

    /// What the fetcher needs to know about one of this model's weight files, with the model
    /// and role, so a file without a URL still has an identity. Its name is not known to be
    /// unique: [`Registry::fetch_spec`] knows the other files.
    pub fn fetch_spec(&self, w: &WeightFile) -> crate::fetch::FileSpec {
        crate::fetch::FileSpec {
            entry: Some(crate::fetch::RegistryFile {
                model: self.name().to_string(),
                role: w
                    .role
                    .as_ref()
                    .map(|r| r.raw.text.clone())
                    .unwrap_or_default(),
            }),
            ..file_spec(w)
        }
    }

    /// Reference vectors, with paths resolved against the directory of the model's file.
    pub fn reference(&self) -> Option<crate::reference::ReferenceVectors> {
        let r = self.zoo()?.reference.as_ref()?;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        Some(crate::reference::ReferenceVectors {
            input: dir.join(r.input.as_ref()?.as_str()),
            logits: dir.join(r.logits.as_ref()?.as_str()),
            tolerance: r
                .tolerance
                .as_ref()
                .map_or(crate::reference::DEFAULT_TOLERANCE, |t| t.value),
        })
    }
}

/// What the fetcher needs to know about a registry weight file (without its model: see
/// [`ModelEntry::fetch_spec`]).
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
        entry: None,
        unique_name: false,
    }
}

/// Where a registry comes from. Every command finds it the same way ([`locate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory holding `model-index.yml`.
    Dir {
        /// The directory (as given, or relative to the working directory when found).
        path: PathBuf,
        /// Whether it was found by searching the working directory and its parents (rather
        /// than given with `--registry` / `ZOO_REGISTRY`).
        found: bool,
    },
    /// The copy embedded in the binary.
    Embedded,
}

impl Location {
    /// The directory, unless embedded.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Dir { path, .. } => Some(path),
            Location::Embedded => None,
        }
    }

    /// How reports name it: the directory, or `embedded, zoo X.Y.Z`.
    pub fn describe(&self) -> String {
        match self {
            Location::Dir { path, .. } => path.display().to_string(),
            Location::Embedded => format!("embedded, zoo {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The one registry rule: `explicit` (`--registry PATH`, or `ZOO_REGISTRY`) when given; else a
/// `registry/model-index.yml` in `cwd` or the nearest of its parents (as cargo finds
/// `Cargo.toml`), named relative to `cwd` (`registry`, `../registry`); else the embedded one.
///
/// `explicit` may be the registry directory or its `model-index.yml`; anything else is a
/// [`RegistryError::NotARegistry`] that says what would be.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<Location, RegistryError> {
    if let Some(path) = explicit {
        let not = |why: String| RegistryError::NotARegistry {
            path: path.to_path_buf(),
            why,
        };
        if path.is_file() {
            if path.file_name().is_some_and(|n| n == ROOT_FILE) {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                return Ok(Location::Dir {
                    path: dir,
                    found: false,
                });
            }
            return Err(not(format!(
                "is a file, not a registry; pass the registry directory (the one holding \
                 {ROOT_FILE}) or its {ROOT_FILE}; to check a single card, run `zoo check-cards {}`",
                path.display()
            )));
        }
        if path.is_dir() {
            if path.join(ROOT_FILE).is_file() {
                return Ok(Location::Dir {
                    path: path.to_path_buf(),
                    found: false,
                });
            }
            return Err(not(format!(
                "is a directory without a {ROOT_FILE}; a registry starts there"
            )));
        }
        // Neither file nor directory: say what it is (missing, unreadable, a FIFO or device).
        return Err(not(match std::fs::metadata(path) {
            Ok(meta) => match crate::fsutil::check_regular(&meta) {
                Err(e) => format!("is {e}, not a registry directory"),
                Ok(()) => "is not a registry directory".to_string(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
            Err(e) => format!("cannot be read: {e}"),
        }));
    }
    for (up, dir) in cwd.ancestors().enumerate() {
        if dir.join("registry").join(ROOT_FILE).is_file() {
            let mut rel = PathBuf::new();
            for _ in 0..up {
                rel.push("..");
            }
            rel.push("registry");
            return Ok(Location::Dir {
                path: rel,
                found: true,
            });
        }
    }
    Ok(Location::Embedded)
}

/// A registry file that could not be read at all (a YAML syntax error), and the models it
/// seems to define, found by a line scan for `- Name:` under `Models:`.
#[derive(Debug, Clone)]
pub struct UnreadableFile {
    /// The file, as diagnostics name it.
    pub file: PathBuf,
    /// The first error that made it unreadable.
    pub error: Diagnostic,
    /// Model names and where they are, in file order.
    pub models: Vec<(String, Pos)>,
    /// The file's text (to find a name or alias in it).
    text: String,
}

impl UnreadableFile {
    /// The line of the first whole-word occurrence of `token` (a name or alias), if any.
    pub fn line_of(&self, token: &str) -> Option<usize> {
        if token.is_empty() {
            return None;
        }
        let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        for (i, line) in self.text.lines().enumerate() {
            let mut from = 0;
            while let Some(at) = line[from..].find(token).map(|a| a + from) {
                let before = line[..at].chars().next_back();
                let after = line[at + token.len()..].chars().next();
                if !before.is_some_and(word) && !after.is_some_and(word) {
                    return Some(i + 1);
                }
                from = at + token.len();
            }
        }
        None
    }

    /// The model whose entry holds `line` (the last one starting at or before it).
    pub fn model_at(&self, line: usize) -> Option<&(String, Pos)> {
        self.models.iter().rev().find(|(_, p)| p.line <= line)
    }
}

/// Model names under the top-level `Models:` key of a YAML text, by lines (for a file whose
/// YAML does not parse): `- Name: X` items at the list's indentation, or a `Name:` key later
/// in an item that did not start with it.
fn scan_model_names(text: &str) -> Vec<(String, Pos)> {
    let unquote = |v: &str| -> String {
        let v = v.split(" #").next().unwrap_or("").trim();
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(v);
        v.to_string()
    };
    let mut out: Vec<(String, Pos)> = Vec::new();
    let mut in_models = false;
    let mut item_indent: Option<usize> = None;
    let mut item_named = true;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if indent == 0 && !body.starts_with('-') {
            in_models = body.trim_end() == "Models:";
            item_indent = None;
            continue;
        }
        if !in_models {
            continue;
        }
        if let Some(rest) = body.strip_prefix("- ") {
            let level = *item_indent.get_or_insert(indent);
            if indent == level {
                let rest_trim = rest.trim_start();
                let col = indent + 2 + (rest.len() - rest_trim.len());
                match rest_trim.strip_prefix("Name:") {
                    Some(v) if !unquote(v).is_empty() => {
                        out.push((unquote(v), Pos::new(i + 1, col + 1)));
                        item_named = true;
                    }
                    _ => item_named = false,
                }
                continue;
            }
        }
        if let (Some(level), false) = (item_indent, item_named) {
            if indent == level + 2 {
                if let Some(v) = body.strip_prefix("Name:") {
                    if !unquote(v).is_empty() {
                        out.push((unquote(v), Pos::new(i + 1, indent + 1)));
                        item_named = true;
                    }
                }
            }
        }
    }
    out
}

/// A model of an unreadable file, selected for checking.
#[derive(Debug, Clone)]
pub struct UnreadableModel {
    /// Its name (from the line scan).
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Where its entry starts.
    pub pos: Pos,
    /// Why the file could not be read.
    pub error: Diagnostic,
}

/// What `zoo validate` checks: the loaded models, and the models of unreadable files.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// Loaded models, sorted by name.
    pub models: Vec<&'a ModelEntry>,
    /// Models of files that could not be read, sorted by name.
    pub unreadable: Vec<UnreadableModel>,
}

impl Selection<'_> {
    /// Every selected name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .models
            .iter()
            .map(|m| m.name().to_string())
            .chain(self.unreadable.iter().map(|u| u.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
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
    /// Whether `dir` was found by searching from the working directory.
    found: bool,
    /// Files whose YAML does not parse (only kept by [`Registry::load_keep_errors`]).
    unreadable: Vec<UnreadableFile>,
}

/// Files a registry is read from: relative path (with `/`) → text.
trait Source {
    /// All files, relative, with `/` separators.
    fn list(&self) -> Vec<String>;
    /// The text of one file.
    fn read(&self, rel: &str) -> Result<String, RegistryError>;
    /// How a file is named in diagnostics.
    fn display(&self, rel: &str) -> PathBuf;
    /// The bytes of one file, whatever they are (not only cards: reference `.npy` files too).
    fn bytes(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + '_>>;
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
    fn bytes(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let f = EMBEDDED.get_file(rel).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "not in the embedded registry")
        })?;
        Ok(Box::new(f.contents()))
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
    fn bytes(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let path = self.0.join(rel);
        crate::fsutil::refuse_special_file(&path)?;
        Ok(Box::new(std::fs::File::open(path)?))
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

/// What [`load_tree`] read: the cards in load order, every finding, and the files that could
/// not be read at all.
type Tree = (Vec<Card>, Vec<Diagnostic>, Vec<UnreadableFile>);

/// Reads `entry` and everything it imports.
fn load_tree(source: &dyn Source, entry: &str) -> Result<Tree, RegistryError> {
    let mut diags = Vec::new();
    let mut cards = Vec::new();
    let mut unreadable = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![entry.to_string()];
    let mut listing: Option<Vec<String>> = None;
    seen.insert(entry.to_string());
    while let Some(rel) = queue.pop() {
        let text = source.read(&rel)?;
        let display = source.display(&rel);
        let (card, mut found) = Card::parse(&display, &text);
        if card.is_none() {
            if let Some(error) = found.iter().find(|d| d.is_error()) {
                unreadable.push(UnreadableFile {
                    file: display.clone(),
                    error: error.clone(),
                    models: match crate::card::CardKind::of(&display) {
                        crate::card::CardKind::Yaml => scan_model_names(&text),
                        crate::card::CardKind::Markdown | crate::card::CardKind::HubReadme => {
                            Vec::new()
                        }
                    },
                    text: text.clone(),
                });
            }
        }
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
    Ok((cards, diags, unreadable))
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
    /// What the fetcher needs to know about `entry`'s weight file `w` ([`ModelEntry::fetch_spec`]),
    /// and whether its file name is the only one of its kind in this registry: only then may a
    /// mirror serve it under that bare name (48 files are called `model.safetensors`).
    pub fn fetch_spec(&self, entry: &ModelEntry, w: &WeightFile) -> crate::fetch::FileSpec {
        let mut spec = entry.fetch_spec(w);
        let same_name = self
            .models()
            .flat_map(ModelEntry::files)
            .filter(|f| {
                f.file
                    .as_ref()
                    .is_some_and(|n| n.as_str() == spec.file_name)
            })
            .count();
        spec.unique_name = !spec.file_name.is_empty() && same_name == 1;
        spec
    }

    /// The registry embedded in the binary.
    pub fn embedded() -> Result<Registry, RegistryError> {
        Registry::from_source(&Embedded)
    }

    /// The directory it was loaded from (`None` for the embedded registry).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Where it was loaded from.
    pub fn location(&self) -> Location {
        match &self.dir {
            Some(path) => Location::Dir {
                path: path.clone(),
                found: self.found,
            },
            None => Location::Embedded,
        }
    }

    /// The registry at `location` ([`locate`]); any error fails.
    pub fn open(location: &Location) -> Result<Registry, RegistryError> {
        let mut r = match location.dir() {
            Some(d) => Registry::load(d)?,
            None => Registry::embedded()?,
        };
        r.found = matches!(location, Location::Dir { found: true, .. });
        Ok(r)
    }

    /// The registry at `location`, keeping errors ([`Registry::load_keep_errors`]).
    pub fn open_keep_errors(location: &Location) -> Result<Registry, RegistryError> {
        let mut r = Registry::load_keep_errors(location.dir())?;
        r.found = matches!(location, Location::Dir { found: true, .. });
        Ok(r)
    }

    /// Files that could not be read (YAML syntax errors), with the models they seem to define.
    pub fn unreadable(&self) -> &[UnreadableFile] {
        &self.unreadable
    }

    /// How many models the registry holds: the loaded ones, plus those of unreadable files
    /// that no loaded model has the name of.
    pub fn model_count(&self) -> usize {
        let mut lost: Vec<&str> = self
            .unreadable
            .iter()
            .flat_map(|u| u.models.iter().map(|(n, _)| n.as_str()))
            .filter(|n| !self.models.contains_key(*n))
            .collect();
        lost.sort_unstable();
        lost.dedup();
        self.models.len() + lost.len()
    }

    /// How a registry file (relative, `/`-separated) is named in diagnostics and reports.
    pub fn display_path(&self, rel: &str) -> PathBuf {
        match &self.dir {
            Some(d) => Disk(d.clone()).display(rel),
            None => Embedded.display(rel),
        }
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
        let (cards, mut diags, unreadable) = load_tree(source, ROOT_FILE)?;
        let (models, aliases) = cross_check(&cards, &mut diags);
        diagnostic::sort(&mut diags);
        let unreadable = if keep_errors { unreadable } else { Vec::new() };
        if !keep_errors && diags.iter().any(Diagnostic::is_error) {
            diags.sort_by_key(|d| d.severity);
            return Err(RegistryError::Invalid { diagnostics: diags });
        }
        Ok(Registry {
            models,
            aliases,
            diagnostics: diags,
            dir: None,
            found: false,
            unreadable,
        })
    }

    /// The model with this name or alias; unknown names get the nearest suggestions.
    ///
    /// A name that occurs in a file that could not be read is a
    /// [`RegistryError::InUnreadableFile`] pointing at the file's error.
    pub fn resolve(&self, name: &str) -> Result<&ModelEntry, RegistryError> {
        let canonical = self.aliases.get(name).map_or(name, String::as_str);
        if let Some(m) = self.models.get(canonical) {
            return Ok(m);
        }
        if let Some(e) = self.in_unreadable(name) {
            return Err(e);
        }
        Err(RegistryError::UnknownModel {
            query: name.to_string(),
            suggestions: self.suggestions(name),
        })
    }

    fn in_unreadable(&self, token: &str) -> Option<RegistryError> {
        self.unreadable.iter().find_map(|u| {
            u.line_of(token)
                .map(|line| RegistryError::InUnreadableFile {
                    query: token.to_string(),
                    file: u.file.clone(),
                    line,
                    error: Box::new(u.error.clone()),
                })
        })
    }

    /// Like [`Registry::select`], but also selects the models of unreadable files (by name
    /// glob, or by a name or alias written in the file), so that they are reported as failed
    /// rather than missing.
    pub fn select_checked(&self, patterns: &[String]) -> Result<Selection<'_>, RegistryError> {
        let lost = || {
            self.unreadable.iter().flat_map(|u| {
                u.models
                    .iter()
                    .filter(|(n, _)| !self.models.contains_key(n))
                    .map(move |(n, p)| UnreadableModel {
                        name: n.clone(),
                        file: u.file.clone(),
                        pos: *p,
                        error: u.error.clone(),
                    })
            })
        };
        let mut unreadable: Vec<UnreadableModel> = Vec::new();
        let mut models = Vec::new();
        if patterns.is_empty() {
            unreadable.extend(lost());
            models = self.models().collect();
        } else {
            for p in patterns {
                let glob = Glob::new(p)
                    .map_err(|e| RegistryError::BadPattern {
                        pattern: p.clone(),
                        message: e.to_string(),
                    })?
                    .compile_matcher();
                let mut hit: Vec<UnreadableModel> =
                    lost().filter(|u| glob.is_match(&u.name)).collect();
                if hit.is_empty() {
                    // A name or alias written in the file: the model whose entry holds it.
                    for u in &self.unreadable {
                        if let Some((n, pos)) = u.line_of(p).and_then(|l| u.model_at(l)) {
                            if !self.models.contains_key(n) {
                                hit.push(UnreadableModel {
                                    name: n.clone(),
                                    file: u.file.clone(),
                                    pos: *pos,
                                    error: u.error.clone(),
                                });
                            }
                        }
                    }
                }
                let loaded = match self.select(std::slice::from_ref(p)) {
                    Ok(found) => found,
                    Err(RegistryError::UnknownModel { .. } | RegistryError::NoMatch { .. })
                        if !hit.is_empty() =>
                    {
                        Vec::new()
                    }
                    Err(RegistryError::UnknownModel { .. }) => {
                        return Err(self.in_unreadable(p).unwrap_or_else(|| {
                            RegistryError::UnknownModel {
                                query: p.clone(),
                                suggestions: self.suggestions(p),
                            }
                        }))
                    }
                    Err(e) => return Err(e),
                };
                models.extend(loaded);
                unreadable.extend(hit);
            }
            models.sort_by(|a, b| a.name().cmp(b.name()));
            models.dedup_by(|a, b| a.name() == b.name());
        }
        unreadable.sort_by(|a, b| a.name.cmp(&b.name));
        unreadable.dedup_by(|a, b| a.name == b.name);
        Ok(Selection { models, unreadable })
    }

    /// Names and aliases close to `query`, at most five: the same name up to case and `-`/`_`;
    /// else the names that contain it (shortest first: `b6` → `b6_ns`); else the nearest by
    /// edit distance (only those at the smallest distance).
    pub fn suggestions(&self, query: &str) -> Vec<String> {
        let norm = |s: &str| s.to_lowercase().replace('-', "_");
        let q = norm(query);
        let names: Vec<&str> = self
            .models
            .keys()
            .chain(self.aliases.keys())
            .map(String::as_str)
            .collect();
        let same: Vec<String> = names
            .iter()
            .filter(|n| norm(n) == q)
            .map(|n| n.to_string())
            .collect();
        if !same.is_empty() {
            return same;
        }
        if q.chars().count() >= 2 {
            let mut containing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| norm(n).contains(&q))
                .collect();
            containing.sort_by_key(|n| (n.len(), *n));
            if !containing.is_empty() {
                return containing.into_iter().take(5).map(str::to_string).collect();
            }
        }
        let limit = (query.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &str)> = names
            .iter()
            .map(|n| (strsim::levenshtein(&q, &norm(n)), *n))
            .filter(|(d, _)| *d <= limit)
            .collect();
        scored.sort();
        let nearest = scored.first().map_or(0, |(d, _)| *d);
        scored
            .into_iter()
            .take_while(|(d, _)| *d == nearest)
            .take(5)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// All models, sorted by name.
    pub fn models(&self) -> impl Iterator<Item = &ModelEntry> {
        self.models.values()
    }

    /// Models whose name, an alias or whose collection's name matches any of the glob patterns
    /// (all models if none), sorted by name. A pattern that matches nothing is an error with suggestions.
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
            // A model is also selected by its collection's name (`'Noisy Student'`).
            let collection = entry.model.in_collection.as_ref().map(|c| c.as_str());
            for n in std::iter::once(entry.name())
                .chain(entry.aliases())
                .chain(collection)
            {
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
            let p = &patterns[i];
            if p.contains(['*', '?', '[', '{']) {
                return Err(RegistryError::NoMatch { pattern: p.clone() });
            }
            return Err(RegistryError::UnknownModel {
                query: p.clone(),
                suggestions: self.suggestions(p),
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

    /// The name of the lock file that first-use pins are written to, next to
    /// `model-index.yml`: state a run adds, not content of the registry.
    pub const LOCK_FILE: &'static str = "weights.lock";

    /// sha256 of the registry's whole content: every file's relative path and the sha256 of its
    /// bytes (cards, reference `.npy` files, templates: whatever is there), in path order, but
    /// [`Registry::LOCK_FILE`], from wherever the registry came from. Where the registry lies
    /// does not count. Two runs saw the same registry exactly when this is equal (`zoo report
    /// merge` relies on it); a file that cannot be read counts by its path and the kind of error.
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let source: Box<dyn Source> = match &self.dir {
            Some(d) => Box::new(Disk(d.clone())),
            None => Box::new(Embedded),
        };
        let mut h = Sha256::new();
        for rel in self.files_under("") {
            if rel == Self::LOCK_FILE {
                continue;
            }
            h.update((rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            let mut file = Sha256::new();
            match source
                .bytes(&rel)
                .and_then(|mut r| std::io::copy(&mut r, &mut file))
            {
                Ok(_) => h.update(file.finalize()),
                Err(e) => h.update(format!("\0unreadable: {:?}", e.kind()).as_bytes()),
            }
        }
        hex::encode(h.finalize())
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
            Ok((found, mut d, _)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_the_flag_then_the_nearest_registry_dir_then_the_embedded_one() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = tmp.path().join("registry");
        let deep = reg.join("efficientnet");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(reg.join(ROOT_FILE), "Type: model-index\n").unwrap();
        let found = |path: &str| Location::Dir {
            path: PathBuf::from(path),
            found: true,
        };
        assert_eq!(locate(None, tmp.path()).unwrap(), found("registry"));
        assert_eq!(locate(None, &deep).unwrap(), found("../../registry"));
        let elsewhere = tempfile::tempdir().unwrap();
        // A temp dir's parents hold no `registry/` (unless the machine has one at `/`).
        if !Path::new("/registry").join(ROOT_FILE).exists() {
            assert_eq!(locate(None, elsewhere.path()).unwrap(), Location::Embedded);
        }
        let given = |p: &Path| Location::Dir {
            path: p.to_path_buf(),
            found: false,
        };
        assert_eq!(locate(Some(&reg), elsewhere.path()).unwrap(), given(&reg));
        assert_eq!(
            locate(Some(&reg.join(ROOT_FILE)), elsewhere.path()).unwrap(),
            given(&reg)
        );
        let other = deep.join("x.yml");
        std::fs::write(&other, "").unwrap();
        for bad in [other, deep.clone(), tmp.path().join("nothing")] {
            assert!(
                matches!(
                    locate(Some(&bad), elsewhere.path()),
                    Err(RegistryError::NotARegistry { .. })
                ),
                "{}",
                bad.display()
            );
        }
    }

    #[test]
    fn model_names_are_found_by_lines_in_a_file_that_does_not_parse() {
        let text = "Collections:\n- Name: Coll\nModels:\n- Name: a\n  Metadata:\n    X: [\n- In Collection: Coll\n  Name: 'b'\n- Name: c # comment\n  Zoo:\n    Aliases:\n    - c_alias\nOther:\n- Name: not-a-model\n";
        let names: Vec<(String, Pos)> = scan_model_names(text);
        assert_eq!(
            names,
            [
                ("a".to_string(), Pos::new(4, 3)),
                ("b".to_string(), Pos::new(8, 3)),
                ("c".to_string(), Pos::new(9, 3)),
            ]
        );
        let file = UnreadableFile {
            file: PathBuf::from("x.yml"),
            error: Diagnostic::new(Severity::Error, "x.yml", Pos::new(6, 8), "invalid YAML"),
            models: names,
            text: text.to_string(),
        };
        assert_eq!(file.line_of("c_alias"), Some(12));
        assert_eq!(file.model_at(12).map(|(n, _)| n.as_str()), Some("c"));
        // Whole words only: `a` is not found inside `Metadata`.
        assert_eq!(file.line_of("a"), Some(4));
        assert_eq!(file.line_of("c_ali"), None);
    }
}
