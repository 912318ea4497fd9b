//! `zoo eval --report FILE`: the full results of a run (counts, bad images, per-image top-5 and
//! content digests), written atomically as JSON, gzip-compressed when FILE ends in `.gz`, so the
//! `--shard K/N` parts of a run can be merged by `zoo report merge` into the whole run's result.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::EvalReport;

/// The `kind` of an eval report file.
pub const KIND: &str = "zoo-eval";

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFile {
    /// Always [`KIND`].
    pub kind: String,
    /// One report per model.
    pub reports: Vec<EvalReport>,
}

/// Why a report file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportFileError {
    /// The file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not JSON of an eval report.
    #[error("{}: not a `zoo eval --report` file of zoo {}: {message}", path.display(), env!("CARGO_PKG_VERSION"))]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Writes `reports` to `path` atomically (a temporary file in the same folder, then renamed);
/// gzip-compressed when the name ends in `.gz`.
pub fn write(path: &Path, reports: &[EvalReport]) -> Result<(), ReportFileError> {
    let err = |source| ReportFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = EvalFile {
        kind: KIND.to_string(),
        reports: reports.to_vec(),
    };
    let json = serde_json::to_vec(&file).map_err(|e| ReportFileError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json).map_err(err)?;
        gz.finish().map_err(err)?
    } else {
        json
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Reads `path` if it is an eval report file (plain or gzip JSON with `"kind": "zoo-eval"`);
/// `Ok(None)` when it is JSON of another kind (e.g. a `zoo validate` report).
pub fn read(path: &Path) -> Result<Option<EvalFile>, ReportFileError> {
    let err = |source| ReportFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(err)?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| ReportFileError::Format {
                path: path.to_path_buf(),
                message: format!("gzip: {e}"),
            })?;
        out
    } else {
        raw
    };
    let format = |message: String| ReportFileError::Format {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format(e.to_string()))
}
