//! Writing a large output to disk while it is still being produced, without filling the page
//! cache with it.
//!
//! Every writer here finishes with an fsync before the rename that publishes the file, so that a
//! crash never leaves a half-written file under the final name. On a machine with a few GB of
//! page cache a 2 GB output would otherwise stay entirely dirty until that fsync (the kernel's
//! background writeback starts at 10 % of memory), and the fsync alone would wait for the whole
//! file. [`EarlyWriteback`] instead hands the file to a helper thread after every
//! [`EarlyWriteback::EVERY`] bytes. On Linux the thread calls `posix_fadvise(DONTNEED)`, which
//! starts writeback of the dirty pages without waiting for it or flushing the device's cache, and
//! drops the pages already written back (like `dd oflag=nocache`): the disk works while the data
//! is computed, the final fsync only waits for the tail, and the page cache is recycled instead
//! of growing by the size of the output (on the 2-core VM of `benches/convert.rs` this cut the
//! kernel time of writing a 1.9 GB `.pth` from 4.3 s to 2 s). Elsewhere it calls `fdatasync`.
//! Neither call is what makes the file durable; the writers' final `sync_all` is.
//!
//! A writer that has synced its temporary file hands out a [`Sealed`] file, which only needs its
//! rename: a caller writing several outputs seals them all before publishing any, so that an
//! error in the last one leaves none of them at its final path.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A helper thread that writes a file's data back in the background; see the module docs.
#[derive(Debug)]
pub struct EarlyWriteback {
    pending: u64,
    tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl EarlyWriteback {
    /// Bytes written between two background writebacks.
    pub const EVERY: u64 = 32 << 20;

    /// Starts the helper thread on a clone of `file`'s handle.
    pub fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                // coalesce requests that queued up while syncing
                while rx.try_recv().is_ok() {}
                start_writeback(&file)?;
            }
            Ok(())
        });
        Ok(EarlyWriteback {
            pending: 0,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Records that `bytes` more were written; starts a background writeback every
    /// [`EarlyWriteback::EVERY`] bytes.
    pub fn wrote(&mut self, bytes: u64) {
        self.pending += bytes;
        if self.pending >= Self::EVERY {
            self.pending = 0;
            if let Some(tx) = &self.tx {
                // a send fails only if the thread stopped on an error, which finish() reports
                let _ = tx.send(());
            }
        }
    }

    /// Stops the helper thread and returns the first error a background writeback met. The
    /// caller still has to `sync_all` the file before publishing it.
    pub fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("early writeback thread panicked")),
            None => Ok(()),
        }
    }
}

/// Starts writing `file`'s dirty pages and drops its clean ones from the page cache.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) -> std::io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// Writes `file`'s dirty pages (without Linux's `fadvise` writeback, wait for it).
#[cfg(not(target_os = "linux"))]
fn start_writeback(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

impl Drop for EarlyWriteback {
    /// An abandoned writer (an error elsewhere) lets the thread run out on its own.
    fn drop(&mut self) {
        drop(self.tx.take());
    }
}

/// A finished, fsynced temporary file waiting to be renamed to its final path. Dropping it
/// removes the temporary file.
#[derive(Debug)]
pub struct Sealed {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Sealed {
    /// `temp`, whose content is complete and synced, to be published at `path` (same directory).
    pub fn new(temp: tempfile::NamedTempFile, path: PathBuf) -> Sealed {
        Sealed { temp, path }
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file into place (atomically, replacing what was there).
    pub fn publish(self) -> std::io::Result<()> {
        self.temp.persist(&self.path).map(drop).map_err(|e| e.error)
    }
}
