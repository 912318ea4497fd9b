//! SIGINT and SIGTERM: remove the temporary directories this run registered
//! ([`crate::scratch`]), say so, and exit 130 or 143 (128 + the signal), as a shell reports a
//! process ended by the signal.
//!
//! The exit is `_exit` (`signal_hook::low_level::exit`): no `atexit` handlers and no C++ static
//! destructors run while other threads (libtorch's) are still working, which `std::process::exit`
//! would do and which crashed (SIGSEGV, status 139) when Ctrl-C landed in a forward pass. A main
//! thread that finishes while the cleanup runs waits for it ([`settle`]), so an interrupted run
//! never ends with the status of a finished one.
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that arrived (0: none); the exit is then the signal thread's.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Starts a thread that waits for SIGINT or SIGTERM. Without it the default action ends the
/// process at once, leaving a tarball's extraction and the staging directory behind.
pub(crate) fn install() {
    #[cfg(unix)]
    unix::install();
}

/// Called by `main` before it returns: when a signal arrived, the signal thread is removing this
/// run's directories and will end the process with 128 + the signal; wait for it.
pub(crate) fn settle() {
    let signal = INTERRUPTED.load(Ordering::SeqCst);
    if signal == 0 {
        return;
    }
    // The cleanup takes a fraction of a second; should the signal thread die on the way (it
    // only writes to stderr and removes directories), end the run here all the same.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        std::thread::park_timeout(left);
    }
    #[cfg(unix)]
    signal_hook::low_level::exit(128 + signal);
}

#[cfg(unix)]
mod unix {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    pub(super) fn install() {
        // Without the handler the signals keep their default action, which is what zoo did
        // before; nothing else depends on it.
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        let waiting = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    interrupted(signal);
                }
            });
        drop(waiting);
    }

    fn interrupted(signal: i32) -> ! {
        super::INTERRUPTED.store(signal, super::Ordering::SeqCst);
        let name = match signal {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        };
        crate::scratch::remove_registered_then(|removed| {
            // `eprintln!` panics when stderr is gone (a closed pipe); this thread must reach
            // the exit whatever happens to its messages.
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            if removed.is_empty() {
                let _ = writeln!(err, "\nzoo: interrupted ({name})");
            } else {
                let _ = writeln!(
                    err,
                    "\nzoo: interrupted ({name}); removed the directories this run had made:"
                );
                for p in &removed {
                    let _ = writeln!(err, "  {}", p.display());
                }
            }
            signal_hook::low_level::exit(128 + signal)
        })
    }
}
