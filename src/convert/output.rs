//! Writing converted state dicts: timm's file naming, provenance metadata, atomic placement.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use zoo_converters::StateDict;

use crate::fetch::hash::sha256_file_unless;
use crate::scratch::{CreatedDir, ScratchDir, STAGING_PREFIX};

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
        /// Why (boxed: it is large and errors are rare; in the message, so not also a `source`).
        error: Box<zoo_converters::Error>,
    },
    /// File system error.
    #[error("{path}: {error}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The output name (registry `Name:`, `--name-as` or the source's stem) is not one safe
    /// path component, so the files could land outside the output directory.
    #[error("output name {:?}: {reason}; the output needs a plain file name", .name)]
    UnsafeName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--out` exists but is not a directory.
    #[error("output directory {}: exists and is not a directory", path.display())]
    NotADirectory {
        /// The `--out` path.
        path: PathBuf,
    },
}

/// Checks that `name` can prefix an output file name: one path component, so that
/// `<dir>/<name>-<sha8>.<ext>` stays in `<dir>`.
pub fn check_name(name: &str) -> Result<(), OutputError> {
    crate::fsutil::check_component(name).map_err(|e| OutputError::UnsafeName {
        name: e.name,
        reason: e.reason,
    })
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

/// A private temporary directory inside the output directory (`.zoo-convert-<pid>-…`, a
/// [`ScratchDir`]). Files are written and checked there, and only [`Staging::place`] gives them
/// their final names; dropping a `Staging` (on any error, or a failed check) removes everything
/// in it, and so does an interrupt (SIGINT/SIGTERM).
#[derive(Debug)]
pub struct Staging {
    out_dir: PathBuf,
    /// `Some` until dropped.
    dir: Option<ScratchDir>,
    /// The directories `create` made (`out_dir` and missing parents), deepest first: removed
    /// again, if still empty, when nothing was placed (or on an interrupt).
    created: Vec<PathBuf>,
    _created: Vec<CreatedDir>,
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
        let io = |error| OutputError::Io {
            path: out_dir.to_owned(),
            error,
        };
        if out_dir.exists() && !out_dir.is_dir() {
            return Err(OutputError::NotADirectory {
                path: out_dir.to_owned(),
            });
        }
        let created: Vec<PathBuf> = out_dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        // registered before they exist, so that an interrupt in between leaves none behind
        let registered = created
            .iter()
            .rev()
            .map(|d| CreatedDir::register(d))
            .collect();
        let mut staging = Staging {
            out_dir: out_dir.to_owned(),
            dir: None,
            created,
            _created: registered,
            placed: false,
        };
        std::fs::create_dir_all(out_dir).map_err(io)?;
        staging.dir = Some(ScratchDir::new_in(out_dir, STAGING_PREFIX).map_err(io)?);
        Ok(staging)
    }

    /// Where the `format` file of `name` is staged; `name` must be one safe path component
    /// ([`check_name`]).
    pub fn path(&self, name: &str, format: Format) -> Result<PathBuf, OutputError> {
        check_name(name)?;
        let dir = self
            .dir
            .as_ref()
            .map_or(self.out_dir.as_path(), |d| d.path());
        Ok(dir.join(format!("{name}.{}", format.extension())))
    }

    /// Writes `tensors` as the staged `format` file of `name` with the in-memory writers.
    pub fn write(
        &self,
        name: &str,
        format: Format,
        tensors: &StateDict,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), OutputError> {
        let path = self.path(name, format)?;
        let written = match format {
            Format::Pth => {
                zoo_converters::pth::write(&path, tensors).map_err(zoo_converters::Error::from)
            }
            Format::Safetensors => zoo_converters::safetensors::write(&path, tensors, metadata)
                .map_err(zoo_converters::Error::from),
        };
        written.map_err(|error| OutputError::Write {
            path,
            error: Box::new(error),
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
        let staged = self.path(name, format)?;
        let (sha256, size) =
            sha256_file_unless(&staged, cancel).map_err(|error| OutputError::Io {
                path: staged.clone(),
                error,
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
    /// this call created are removed again, so all of them land or none; a file of the same name
    /// that was there before (an earlier run's identical output) is never removed.
    pub fn place(mut self, name: &str, hashed: Vec<Hashed>) -> Result<Vec<Output>, OutputError> {
        check_name(name)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| OutputError::Io { path, error }
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
        // The final paths this call brought into existence: the only ones a rollback may remove.
        let mut created: Vec<PathBuf> = vec![];
        for (tmp, out) in staged {
            let existed = std::fs::symlink_metadata(&out.path).is_ok();
            if let Err(e) = std::fs::rename(&tmp, &out.path) {
                for path in &created {
                    let _ = std::fs::remove_file(path);
                }
                return Err(io(&out.path)(e));
            }
            if !existed {
                created.push(out.path.clone());
            }
            outputs.push(out);
        }
        self.placed = true;
        let dir = std::fs::File::open(&self.out_dir).map_err(io(&self.out_dir))?;
        dir.sync_all().map_err(io(&self.out_dir))?;
        Ok(outputs)
    }
}
