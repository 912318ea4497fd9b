//! Streaming sha256 of files, with large reads so hashing runs at the speed of the hash
//! (the `sha2` crate picks SHA-NI / ARMv8 SHA instructions at run time where the CPU has them).
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Size of every read and write buffer in this module tree (1 MiB).
pub const BUF_SIZE: usize = 1 << 20;

/// Returns the sha256 (lowercase hex) and size in bytes of the file at `path`.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    sha256_file_unless(path, &AtomicBool::new(false))
}

/// Like [`sha256_file`], but stops with an error as soon as `cancel` is set (checked before
/// every read), for a hash whose result may stop being wanted while it runs.
///
/// Only regular files are hashed: a FIFO or a device (which would block or never end) is an
/// [`io::ErrorKind::InvalidInput`] error before it is opened.
pub fn sha256_file_unless(path: &Path, cancel: &AtomicBool) -> io::Result<(String, u64)> {
    crate::fsutil::require_regular_file(path)?;
    let mut file = Cancellable {
        inner: File::open(path)?,
        cancel,
    };
    let mut hasher = Sha256::new();
    let size = hash_reader(&mut file, &mut hasher, u64::MAX)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// A reader that fails once `cancel` is set.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

/// Feeds at most `limit` bytes of `reader` into `hasher`; returns how many bytes were read.
pub(crate) fn hash_reader(
    reader: &mut impl Read,
    hasher: &mut Sha256,
    limit: u64,
) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    while total < limit {
        let want = usize::try_from((limit - total).min(BUF_SIZE as u64)).unwrap_or(BUF_SIZE);
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_vector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let (hex, size) = sha256_file(&path).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let go_on = AtomicBool::new(false);
        assert_eq!(sha256_file_unless(&path, &go_on).unwrap(), (hex, size));
        let stop = AtomicBool::new(true);
        let e = sha256_file_unless(&path, &stop).unwrap_err();
        assert_eq!(e.to_string(), "cancelled");
    }
}
