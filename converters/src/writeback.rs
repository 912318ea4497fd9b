//! Starting the disk writing of a large output while it is still being produced.
//!
//! Every writer here finishes with an fsync before the rename that publishes the file, so that a
//! crash never leaves a half-written file under the final name. On a machine with a few GB of
//! page cache a 2 GB output would otherwise stay entirely dirty until that fsync (the kernel's
//! background writeback starts at 10 % of memory), and the fsync alone would wait for the whole
//! file. [`EarlyWriteback`] instead `fdatasync`s a clone of the file handle on a helper thread
//! after every [`EarlyWriteback::EVERY`] bytes, so the disk works while the data is computed
//! and the final fsync only waits for the tail.
use std::fs::File;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A helper thread that syncs a file's data in the background; see the module docs.
#[derive(Debug)]
pub struct EarlyWriteback {
    pending: u64,
    tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl EarlyWriteback {
    /// Bytes written between two background syncs.
    pub const EVERY: u64 = 128 << 20;

    /// Starts the helper thread on a clone of `file`'s handle.
    pub fn start(file: &File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                // coalesce requests that queued up while syncing
                while rx.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        Ok(EarlyWriteback {
            pending: 0,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Records that `bytes` more were written; starts a background sync every
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

    /// Stops the helper thread and returns the first error a background sync met. The caller
    /// still has to `sync_all` the file before publishing it.
    pub fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("early writeback thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for EarlyWriteback {
    /// An abandoned writer (an error elsewhere) lets the thread run out on its own.
    fn drop(&mut self) {
        drop(self.tx.take());
    }
}
