//! The temporary directories zoo makes, and how none of them outlives its run.
//!
//! Two kinds, named so they can be recognised: a tarball's extraction, `zoo-extract-<pid>-…` in
//! the system temporary directory (`$TMPDIR`), and a conversion's staging,
//! `.zoo-convert-<pid>-…` in the output directory. A [`ScratchDir`] is removed when dropped. For
//! the ways a run can end without dropping it:
//! - **SIGINT / SIGTERM**: every live `ScratchDir` is in a process-wide registry, which the
//!   command line's signal handler empties ([`remove_registered_then`]) before it exits.
//! - **SIGKILL, a crash, a power cut**: each directory holds an owner file (`.zoo-owner`) locked
//!   for as long as its process lives; the OS drops the lock when the process ends, however it
//!   ends. [`sweep`] removes the directories with zoo's prefixes whose lock is free (and, for a
//!   directory killed before its owner file was made, whose process is gone).
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Prefix of a tarball's extraction directory (in the system temporary directory).
pub const EXTRACT_PREFIX: &str = "zoo-extract-";

/// Prefix of a conversion's staging directory (in the output directory).
pub const STAGING_PREFIX: &str = ".zoo-convert-";

/// The file whose lock says the directory's process is alive.
const OWNER_FILE: &str = ".zoo-owner";

/// How old a directory without an owner file must be before it counts as abandoned: between
/// `mkdir` and the owner file's creation the directory is young.
const SETUP_GRACE: Duration = Duration::from_secs(60);

/// What a signal handler removes, in registration order.
#[derive(Debug)]
enum Registered {
    /// A directory and everything in it.
    Tree(PathBuf),
    /// A directory a run created (an output directory), removed only if empty.
    EmptyDir(PathBuf),
}

impl Registered {
    fn path(&self) -> &Path {
        match self {
            Registered::Tree(p) | Registered::EmptyDir(p) => p,
        }
    }
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Registered>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unregister(path: &Path) {
    registry().retain(|r| r.path() != path);
}

/// A directory this run created that a signal handler should remove if it is still empty; it
/// is taken off the list when dropped.
#[derive(Debug)]
pub struct CreatedDir(PathBuf);

impl CreatedDir {
    /// Registers `dir`.
    pub fn register(dir: &Path) -> CreatedDir {
        registry().push(Registered::EmptyDir(dir.to_owned()));
        CreatedDir(dir.to_owned())
    }
}

impl Drop for CreatedDir {
    fn drop(&mut self) {
        unregister(&self.0);
    }
}

/// A temporary directory `<prefix><pid>-<random>`: registered for the signal handler, owned
/// through a locked `.zoo-owner` file, removed with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    owner: Option<File>,
    dir: Option<tempfile::TempDir>,
}

impl ScratchDir {
    /// Creates and registers a directory in `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<ScratchDir> {
        let mut scratch = {
            // Created under the registry's lock: a signal handler, which holds it until the
            // process exits, sees the directory registered or never sees it made.
            let mut registry = registry();
            let dir = tempfile::Builder::new()
                .prefix(&format!("{prefix}{}-", std::process::id()))
                .tempdir_in(parent)?;
            registry.push(Registered::Tree(dir.path().to_owned()));
            ScratchDir {
                path: dir.path().to_owned(),
                owner: None,
                dir: Some(dir),
            }
        };
        let owner = File::create(scratch.path.join(OWNER_FILE))?;
        owner.try_lock().map_err(io::Error::from)?;
        scratch.owner = Some(owner);
        Ok(scratch)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        drop(self.owner.take());
        drop(self.dir.take());
        unregister(&self.path);
    }
}

/// Removes `path` and everything in it; other threads may still be writing into it, so a
/// failure is retried for a moment. Whether it is gone.
fn remove_tree(path: &Path) -> bool {
    for _ in 0..50 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// For a signal handler: removes every registered directory (trees first, then the created
/// directories that are empty, deepest first) and calls `then` with the paths removed, all while
/// holding the registry, so that no new directory is made in between. `then` ends the process.
pub fn remove_registered_then(then: impl FnOnce(Vec<PathBuf>) -> std::convert::Infallible) -> ! {
    let registry = registry();
    let mut removed = vec![];
    for r in registry.iter() {
        if let Registered::Tree(p) = r {
            if remove_tree(p) {
                removed.push(p.clone());
            }
        }
    }
    // Other threads run on until the process exits: a tarball still being extracted recreates
    // the directory it writes into. Remove again until the trees stay gone for a moment.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(10));
        let mut again = false;
        for r in registry.iter() {
            if let Registered::Tree(p) = r {
                if p.exists() {
                    remove_tree(p);
                    again = true;
                }
            }
        }
        if !again {
            break;
        }
    }
    for r in registry.iter().rev() {
        if let Registered::EmptyDir(p) = r {
            if std::fs::remove_dir(p).is_ok() {
                removed.push(p.clone());
            }
        }
    }
    match then(removed) {}
}

/// A directory a killed run left behind, removed by [`sweep`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// Where it was.
    pub path: PathBuf,
    /// The process that made it (from its name).
    pub pid: u32,
    /// Bytes it held.
    pub bytes: u64,
}

/// Whether process `pid` is running, where the system can tell (`/proc`).
fn running(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self")
        .exists()
        .then(|| proc.join(pid.to_string()).exists())
}

/// Whether the directory's process has ended (see the module doc).
fn abandoned(dir: &Path, pid: u32) -> bool {
    match File::open(dir.join(OWNER_FILE)) {
        Ok(owner) => owner.try_lock().is_ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let old = std::fs::metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > SETUP_GRACE);
            old && running(pid) == Some(false)
        }
        Err(_) => false,
    }
}

/// Bytes under `path` (symbolic links are not followed).
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Removes the directories `<prefix><pid>-…` in `parent` that a run which has ended left
/// behind; directories of running processes, and anything not named so, are left alone.
/// Directories that cannot be read or removed are skipped.
pub fn sweep(parent: &Path, prefix: &str) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return vec![];
    };
    let mut swept = vec![];
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || !abandoned(&path, pid) {
            continue;
        }
        let bytes = tree_size(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            swept.push(Leftover { path, pid, bytes });
        }
    }
    swept.sort_by(|a, b| a.path.cmp(&b.path));
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_scratch_dir_is_named_registered_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let scratch = ScratchDir::new_in(parent.path(), EXTRACT_PREFIX).unwrap();
        let name = scratch.path().file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(&format!("{EXTRACT_PREFIX}{}-", std::process::id())),
            "{name}"
        );
        assert!(scratch.path().join(OWNER_FILE).is_file());
        let path = scratch.path().to_owned();
        assert!(registry().iter().any(|r| r.path() == path));
        drop(scratch);
        assert!(!path.exists());
        assert!(!registry().iter().any(|r| r.path() == path));
    }

    #[test]
    fn sweep_removes_only_abandoned_directories_named_by_zoo() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::new_in(parent.path(), STAGING_PREFIX).unwrap();
        // a dead run's directory: its owner file exists and nobody holds its lock
        let dead = parent.path().join(format!("{STAGING_PREFIX}4194304-abc"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER_FILE), b"").unwrap();
        std::fs::write(dead.join("tiny.pth"), [0u8; 100]).unwrap();
        // one in the making (no owner file yet, young), and others that are not zoo's
        let young = parent.path().join(format!("{STAGING_PREFIX}4194305-def"));
        std::fs::create_dir(&young).unwrap();
        for other in [".zoo-convert-nopid", "zoo-extract-1-x", "unrelated"] {
            std::fs::create_dir(parent.path().join(other)).unwrap();
        }
        let swept = sweep(parent.path(), STAGING_PREFIX);
        assert_eq!(
            swept,
            [Leftover {
                path: dead.clone(),
                pid: 4194304,
                bytes: 100
            }]
        );
        let live_name = live.path().file_name().unwrap().to_string_lossy();
        let mut want = vec![
            live_name.into_owned(),
            ".zoo-convert-4194305-def".to_owned(),
            ".zoo-convert-nopid".to_owned(),
            "unrelated".to_owned(),
            "zoo-extract-1-x".to_owned(),
        ];
        want.sort();
        assert_eq!(names(parent.path()), want);
    }
}
