//! Writing converted state dicts: timm's file naming, provenance metadata, atomic placement.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use zoo_converters::StateDict;

use crate::fetch::hash::sha256_file_unless;

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
    #[error("writing {path}: {error}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why (boxed: it is large and errors are rare).
        error: Box<zoo_converters::Error>,
    },
    /// File system error.
    #[error("{path}: {error}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// A staged file's sha256 and size, from [`Staging::hash`]; [`Staging::place`] names the file
/// by them.
#[derive(Debug)]
pub struct Hashed {
    staged: PathBuf,
    format: Format,
    sha256: String,
    size: u64,
}

/// A private temporary directory inside the output directory. Files are written and checked
/// there, and only [`Staging::place`] gives them their final names; dropping a `Staging`
/// (on any error, or a failed check) removes everything in it.
#[derive(Debug)]
pub struct Staging {
    out_dir: PathBuf,
    /// `Some` until dropped.
    dir: Option<tempfile::TempDir>,
    /// The directories `create` made (`out_dir` and missing parents), deepest first: removed
    /// again, if still empty, when nothing was placed.
    created: Vec<PathBuf>,
    placed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        // the staging directory first, so that the ones above it can be empty
        drop(self.dir.take());
        if !self.placed {
            for d in &self.created {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
            }
        }
    }
}

impl Staging {
    /// Creates `out_dir` if needed and a staging directory in it (same file system, so the
    /// final renames are atomic).
    pub fn create(out_dir: &Path) -> Result<Staging, OutputError> {
        let io = |source| OutputError::Io {
            path: out_dir.to_owned(),
            error: source,
        };
        let created: Vec<PathBuf> = out_dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(out_dir).map_err(io)?;
        let mut staging = Staging {
            out_dir: out_dir.to_owned(),
            dir: None,
            created,
            placed: false,
        };
        staging.dir = Some(
            tempfile::Builder::new()
                .prefix(".zoo-convert-")
                .tempdir_in(out_dir)
                .map_err(io)?,
        );
        Ok(staging)
    }

    /// Where the `format` file of `name` is staged.
    pub fn path(&self, name: &str, format: Format) -> PathBuf {
        let dir = self
            .dir
            .as_ref()
            .map_or(self.out_dir.as_path(), |d| d.path());
        dir.join(format!("{name}.{}", format.extension()))
    }

    /// Writes `tensors` as the staged `format` file of `name` with the in-memory writers.
    pub fn write(
        &self,
        name: &str,
        format: Format,
        tensors: &StateDict,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), OutputError> {
        let path = self.path(name, format);
        let written = match format {
            Format::Pth => {
                zoo_converters::pth::write(&path, tensors).map_err(zoo_converters::Error::from)
            }
            Format::Safetensors => zoo_converters::safetensors::write(&path, tensors, metadata)
                .map_err(zoo_converters::Error::from),
        };
        written.map_err(|source| OutputError::Write {
            path,
            error: Box::new(source),
        })
    }

    /// The sha256 and size of the staged `format` file of `name`, for [`Staging::place`]. It
    /// may run on another thread while the file is being read back, and gives up (with an error)
    /// once `cancel` is set.
    pub fn hash(
        &self,
        name: &str,
        format: Format,
        cancel: &AtomicBool,
    ) -> Result<Hashed, OutputError> {
        let staged = self.path(name, format);
        let (sha256, size) =
            sha256_file_unless(&staged, cancel).map_err(|source| OutputError::Io {
                path: staged.clone(),
                error: source,
            })?;
        Ok(Hashed {
            staged,
            format,
            sha256,
            size,
        })
    }

    /// Renames each hashed staged file of `name` to `<out_dir>/<name>-<sha8>.<ext>`, readable by
    /// all (temporary files are 0600), then syncs the directory. If a rename fails, the files
    /// already renamed are removed again: all of them land or none.
    pub fn place(mut self, name: &str, hashed: Vec<Hashed>) -> Result<Vec<Output>, OutputError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutputError::Io {
                path,
                error: source,
            }
        };
        let mut staged = vec![];
        for Hashed {
            staged: tmp,
            format,
            sha256,
            size,
        } in hashed
        {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                    .map_err(io(&tmp))?;
            }
            let path = self
                .out_dir
                .join(format!("{name}-{}.{}", &sha256[..8], format.extension()));
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
        let mut outputs: Vec<Output> = vec![];
        for (tmp, out) in staged {
            if let Err(e) = std::fs::rename(&tmp, &out.path) {
                for placed in &outputs {
                    let _ = std::fs::remove_file(&placed.path);
                }
                return Err(io(&out.path)(e));
            }
            outputs.push(out);
        }
        self.placed = true;
        let dir = std::fs::File::open(&self.out_dir).map_err(io(&self.out_dir))?;
        dir.sync_all().map_err(io(&self.out_dir))?;
        Ok(outputs)
    }
}
