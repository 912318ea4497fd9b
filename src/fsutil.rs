//! File-system rules shared by every place that turns untrusted text into a path, or writes a
//! file other people read.
//!
//! - [`check_component`]: a name from a card, the command line or a URL must be exactly one
//!   ordinary path component before it is joined to a directory (the fetch cache's `by-name/`,
//!   convert's `--out`, the schema's `File:` and `Name:`).
//! - [`shared_temp_file`]: temporary files that are renamed into place get mode `0666` minus the
//!   umask (`0644` under umask 022), like any file `File::create` makes, not tempfile's private
//!   `0600`.
//! - [`require_regular_file`]: inputs that are read to their end must be regular files; a FIFO
//!   would block forever and a device such as `/dev/zero` never ends.
use std::io;
use std::path::Path;

/// A name that is not one safe path component, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a single safe file name: {reason}")]
pub struct UnsafeName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Longest name most file systems accept for one component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Checks that `name` is one ordinary, non-hidden path component: not empty, not `.` or `..`,
/// no `/` or `\`, no NUL or other control character, not starting with `.`, at most
/// [`MAX_COMPONENT_BYTES`] bytes. Joining such a name to a directory always stays in it.
pub fn check_component(name: &str) -> Result<(), UnsafeName> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory, not a file")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.starts_with('.') {
        Some("it starts with `.` (a hidden file)")
    } else if name.len() > MAX_COMPONENT_BYTES {
        Some("it is longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(UnsafeName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Writes `contents` to `path` atomically: a temp file beside it, fsync, then rename. The file
/// gets the mode a newly created file would (`0644` under umask 022), not a temp file's `0600`.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = shared_temp_file(parent)?;
    std::io::Write::write_all(&mut tmp, contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A new temporary file in `dir`, created with mode `0666` minus the process umask, so that
/// renaming it into place gives the permissions any newly created file would have.
pub fn shared_temp_file(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Fails unless `path` is a regular file (symlinks are followed): FIFOs, sockets and devices
/// are refused before they are opened, so a read never blocks on a pipe or runs forever on
/// `/dev/zero`. Returns the file's length.
pub fn require_regular_file(path: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    check_regular(&meta)?;
    Ok(meta.len())
}

/// Fails when `path` exists but is neither a regular file nor a directory (a FIFO, socket or
/// device): for inputs that may also be a directory or a path prefix that does not exist.
pub fn refuse_special_file(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => check_regular(&meta),
        _ => Ok(()),
    }
}

/// The check of [`require_regular_file`] on metadata already at hand (e.g. of an open file).
pub fn check_regular(meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = file_kind(meta);
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file (a {kind})"),
    ))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
    }
    "special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_components_pass_and_escapes_are_refused() {
        for ok in [
            "tf_efficientnet_b0.ns_jft_in1k",
            "a-b_c.pth",
            "noisy_student_efficientnet-b0.tar.gz",
        ] {
            assert_eq!(check_component(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../x",
            "a/b",
            "/tmp/x",
            "a\\b",
            ".hidden",
            "a\0b",
            "a\nb",
            "tab\there",
            "esc\u{1b}[2J",
        ] {
            assert!(check_component(bad).is_err(), "{bad:?}");
        }
        assert!(check_component(&"x".repeat(256)).is_err());
        assert!(check_component(&"x".repeat(255)).is_ok());
    }

    /// The process umask, from `/proc/self/status` (Linux); 022 where it cannot be read.
    #[cfg(unix)]
    pub(crate) fn umask() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    }

    #[cfg(unix)]
    #[test]
    fn shared_temp_files_follow_the_umask_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = shared_temp_file(dir.path()).unwrap();
        let mode = f.as_file().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "{mode:o}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_directories_are_not_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = require_regular_file(dir.path()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        let err = require_regular_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(require_regular_file(&file).unwrap(), 3);
    }
}
