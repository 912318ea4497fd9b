//! `zoo fetch --record`: full sha256s learned by fetching (lock-file pins) written into the
//! registry as `Sha256:`, so a maintainer can turn "pinned on first use" into a registry fact.
//!
//! The registry file is rewritten with the lossless writer ([`Card::write`]), which re-emits the
//! typed index with every other scalar, key order and quoting as it was. The new key goes where
//! the `Zoo: Files` entry declares it (after `Size`, before `Sha256 Prefix` and `Format`). A YAML
//! file's leading `#` comment lines are kept as they are. Before anything is written, the
//! unchanged card must re-emit to exactly its original text; a file the writer would change in
//! any other way (a comment further down, an unusual layout) is left alone with an error that
//! says which line to add by hand.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::card::{Card, CardKind};
use crate::diagnostic::Diagnostic;
use crate::fsutil::write_atomic;
use crate::schema::{Text, WeightFile};

/// A full sha256 learned for one registry file, to be written into its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedHash {
    /// The registry file defining the model (as [`ModelEntry::file`](crate::registry::ModelEntry)).
    pub card: PathBuf,
    /// The model's name.
    pub model: String,
    /// The file's role, as spelled in the registry (`tf-checkpoint`).
    pub role: String,
    /// The file's `File:` name.
    pub file_name: String,
    /// The full sha256 (64 lowercase hex digits).
    pub sha256: String,
}

/// Why a hash could not be recorded; nothing is written for a card with any of these.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The card cannot be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The card.
        path: PathBuf,
        /// The OS error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The card has errors (it would not load as part of a registry either).
    #[error("{}: not a valid model index:\n{}", path.display(), list(diagnostics))]
    Invalid {
        /// The card.
        path: PathBuf,
        /// The errors.
        diagnostics: Vec<Diagnostic>,
    },
    /// Re-emitting the card would change more than the new line.
    #[error(
        "{}: zoo's writer would not reproduce this file exactly (a comment or layout it does not \
         keep), so it is left alone; add `Sha256: {}` to the {} file of {} by hand",
        .0.card.display(), .0.sha256, .0.role, .0.model
    )]
    NotLossless(Box<LearnedHash>),
    /// No such model/file in the card.
    #[error(
        "{}: no model `{}` with a {} file named {}",
        .0.card.display(), .0.model, .0.role, .0.file_name
    )]
    NotFound(Box<LearnedHash>),
    /// The learned hash contradicts what the registry says.
    #[error(
        "{}: {} ({}) has `{field}: {registry}`, which the fetched file's sha256 {} contradicts",
        learned.card.display(), learned.model, learned.role, learned.sha256
    )]
    Contradicts {
        /// What was learned, and for which file.
        learned: Box<LearnedHash>,
        /// `Sha256` or `Sha256 Prefix`.
        field: &'static str,
        /// The registry's value.
        registry: String,
    },
}

fn list(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keys of a `Zoo: Files` entry in their declared order, to place a new key among them.
const WEIGHT_FILE_KEYS: &[&str] = &[
    "Role",
    "File",
    "Urls",
    "Size",
    "Sha256",
    "Sha256 Prefix",
    "Format",
    "Fingerprint",
];

/// Writes every learned hash whose file has no `Sha256` yet into its card, one atomic rewrite
/// per card. Returns the hashes written (those already in the registry are left out). Cards are
/// all checked before any is written.
pub fn record_hashes(learned: &[LearnedHash]) -> Result<Vec<LearnedHash>, RecordError> {
    let mut by_card: BTreeMap<&Path, Vec<&LearnedHash>> = BTreeMap::new();
    for l in learned {
        by_card.entry(&l.card).or_default().push(l);
    }
    let mut writes = vec![];
    let mut recorded = vec![];
    for (path, hashes) in by_card {
        let io = |error| RecordError::Io {
            path: path.to_path_buf(),
            error,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let (header, body) = match CardKind::of(path) {
            CardKind::Yaml => split_comment_header(&text),
            CardKind::Markdown | CardKind::HubReadme => ("", text.as_str()),
        };
        let mut card = parse(path, body)?;
        let mut changed = false;
        for l in hashes {
            if card.write() != body {
                return Err(RecordError::NotLossless(Box::new((*l).clone())));
            }
            let file = find_file(&mut card, l)
                .ok_or_else(|| RecordError::NotFound(Box::new((*l).clone())))?;
            if set_sha256(file, l)? {
                changed = true;
                recorded.push(l.clone());
            }
        }
        if changed {
            let new_body = card.write();
            // What is written must read back, with the hashes in it.
            parse(path, &new_body)?;
            writes.push((path, format!("{header}{new_body}")));
        }
    }
    for (path, text) in writes {
        write_atomic(path, &text).map_err(|error| RecordError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    }
    Ok(recorded)
}

fn parse(path: &Path, text: &str) -> Result<Card, RecordError> {
    let (card, diags) = Card::parse(path, text);
    let errors: Vec<Diagnostic> = diags.into_iter().filter(|d| d.is_error()).collect();
    match card {
        Some(card) if errors.is_empty() => Ok(card),
        _ => Err(RecordError::Invalid {
            path: path.to_path_buf(),
            diagnostics: errors,
        }),
    }
}

/// The leading lines of a YAML file that are comments or blank, and the rest.
fn split_comment_header(text: &str) -> (&str, &str) {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            at += line.len();
        } else {
            break;
        }
    }
    text.split_at(at)
}

fn find_file<'c>(card: &'c mut Card, l: &LearnedHash) -> Option<&'c mut WeightFile> {
    card.blocks
        .iter_mut()
        .flat_map(|b| b.index.models.iter_mut().flatten())
        .filter(|m| m.name() == l.model)
        .filter_map(|m| m.zoo.as_mut()?.files.as_mut())
        .flat_map(|files| files.iter_mut())
        .find(|f| {
            f.role.as_ref().is_some_and(|r| r.raw.text == l.role)
                && f.file.as_ref().is_some_and(|n| n.as_str() == l.file_name)
        })
}

/// Sets `Sha256` on `file` (placing the key in declared order); false when it is already there.
fn set_sha256(file: &mut WeightFile, l: &LearnedHash) -> Result<bool, RecordError> {
    let contradicts = |field, registry: &str| RecordError::Contradicts {
        learned: Box::new(l.clone()),
        field,
        registry: registry.to_string(),
    };
    if let Some(existing) = &file.sha256 {
        return if existing.as_str().eq_ignore_ascii_case(&l.sha256) {
            Ok(false)
        } else {
            Err(contradicts("Sha256", existing.as_str()))
        };
    }
    if let Some(prefix) = &file.sha256_prefix {
        if !l.sha256.starts_with(&prefix.as_str().to_ascii_lowercase()) {
            return Err(contradicts("Sha256 Prefix", prefix.as_str()));
        }
    }
    file.sha256 = Some(Text::new(l.sha256.clone()));
    place_key(&mut file.order, "Sha256");
    Ok(true)
}

/// Inserts `key` into a record's source key order before the first key declared after it.
fn place_key(order: &mut Vec<String>, key: &str) {
    if order.is_empty() || order.iter().any(|k| k == key) {
        return; // no source order (the writer then uses declared order), or already placed
    }
    let rank = |k: &str| WEIGHT_FILE_KEYS.iter().position(|d| *d == k);
    let mine = rank(key);
    let at = order
        .iter()
        .position(|k| matches!((rank(k), mine), (Some(r), Some(m)) if r > m))
        .unwrap_or(order.len());
    order.insert(at, key.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_go_where_they_are_declared() {
        let mut order: Vec<String> = ["Role", "File", "Urls", "Size", "Sha256 Prefix", "Format"]
            .map(String::from)
            .to_vec();
        place_key(&mut order, "Sha256");
        assert_eq!(
            order,
            [
                "Role",
                "File",
                "Urls",
                "Size",
                "Sha256",
                "Sha256 Prefix",
                "Format"
            ]
        );
        let mut order: Vec<String> = ["Role", "File", "Urls", "Format"]
            .map(String::from)
            .to_vec();
        place_key(&mut order, "Sha256");
        assert_eq!(order, ["Role", "File", "Urls", "Sha256", "Format"]);
    }

    const CARD: &str = "\
Models:
- Name: m
  Zoo:
    Architecture: tf_efficientnet_b0
    Files:
    - Role: timm-pth
      File: m-abcd0123.pth
      Urls:
      - https://example.com/m-abcd0123.pth
      Sha256 Prefix: 'abcd0123'
      Format: pth-legacy
";

    fn learned(card: &Path, sha256: String) -> LearnedHash {
        LearnedHash {
            card: card.to_path_buf(),
            model: "m".into(),
            role: "timm-pth".into(),
            file_name: "m-abcd0123.pth".into(),
            sha256,
        }
    }

    #[test]
    fn records_the_hash_between_size_and_prefix_keeping_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yml");
        std::fs::write(&path, format!("# header\n{CARD}")).unwrap();
        let sha = format!("abcd0123{}", "e".repeat(56));
        let done = record_hashes(&[learned(&path, sha.clone())]).unwrap();
        assert_eq!(done.len(), 1);
        let want = format!("# header\n{CARD}").replace(
            "      Sha256 Prefix:",
            &format!("      Sha256: {sha}\n      Sha256 Prefix:"),
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
    }

    #[test]
    fn a_file_the_writer_would_change_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yml");
        let text = CARD.replace("  Zoo:\n", "  # a comment inside\n  Zoo:\n");
        std::fs::write(&path, &text).unwrap();
        let sha = format!("abcd0123{}", "e".repeat(56));
        let err = record_hashes(&[learned(&path, sha.clone())]).unwrap_err();
        assert!(matches!(err, RecordError::NotLossless(_)), "{err}");
        assert!(
            err.to_string().contains(&format!("add `Sha256: {sha}`")),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_hash_contradicting_the_prefix_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yml");
        std::fs::write(&path, CARD).unwrap();
        let err = record_hashes(&[learned(&path, "f".repeat(64))]).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::Contradicts {
                    field: "Sha256 Prefix",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CARD);
    }

    #[test]
    fn comment_header_is_split_off() {
        let (h, b) = split_comment_header("# a\n# b\n\nType: model-index\n# c\n");
        assert_eq!(h, "# a\n# b\n\n");
        assert_eq!(b, "Type: model-index\n# c\n");
    }
}
