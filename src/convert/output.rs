//! Writing converted state dicts: timm's file naming, provenance metadata, atomic placement.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_converters::StateDict;

use crate::fetch::sha256_file;

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `torch.save` zip format (loads with `torch.load(weights_only=True)`).
    Pth,
    /// safetensors with a `__metadata__` provenance map.
    Safetensors,
}

impl Format {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pth => "pth",
            Format::Safetensors => "safetensors",
        }
    }
}

/// A file written by a conversion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Output {
    /// Container.
    pub format: Format,
    /// Final path (`<name>-<first 8 hex of sha256>.<ext>`, timm's convention).
    pub path: PathBuf,
    /// sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An error writing outputs.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The format writer failed.
    #[error("writing {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        source: zoo_converters::Error,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes `tensors` in each format into `out_dir`, named `<name>-<sha8>.<ext>`.
///
/// Each file is first written completely inside a private temporary directory in `out_dir`,
/// hashed, and only then renamed to its final name; on any error nothing is left behind.
pub fn write_outputs(
    out_dir: &Path,
    name: &str,
    formats: &[Format],
    tensors: &StateDict,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<Output>, OutputError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(".zoo-convert-")
        .tempdir_in(out_dir)
        .map_err(io(out_dir))?;
    let mut staged = vec![];
    for &format in formats {
        let tmp = staging
            .path()
            .join(format!("{name}.{}", format.extension()));
        let written = match format {
            Format::Pth => {
                zoo_converters::pth::write(&tmp, tensors).map_err(zoo_converters::Error::from)
            }
            Format::Safetensors => zoo_converters::safetensors::write(&tmp, tensors, metadata)
                .map_err(zoo_converters::Error::from),
        };
        written.map_err(|source| OutputError::Write {
            path: tmp.clone(),
            source,
        })?;
        // Temp files are private (0600); the result is an ordinary readable file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                .map_err(io(&tmp))?;
        }
        let (sha256, size) = sha256_file(&tmp).map_err(io(&tmp))?;
        let path = out_dir.join(format!("{name}-{}.{}", &sha256[..8], format.extension()));
        staged.push((
            tmp,
            Output {
                format,
                path,
                sha256,
                size,
            },
        ));
    }
    let mut outputs = vec![];
    for (tmp, out) in staged {
        std::fs::rename(&tmp, &out.path).map_err(io(&out.path))?;
        outputs.push(out);
    }
    let dir = std::fs::File::open(out_dir).map_err(io(out_dir))?;
    dir.sync_all().map_err(io(out_dir))?;
    Ok(outputs)
}
