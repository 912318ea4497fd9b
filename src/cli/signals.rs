//! SIGINT and SIGTERM: remove the temporary directories this run registered
//! ([`crate::scratch`]), say so, and exit 130 or 143 (128 + the signal), as a shell reports a
//! process ended by the signal.
//!
//! The exit is `_exit` (`signal_hook::low_level::exit`): no `atexit` handlers and no C++ static
//! destructors run while other threads (libtorch's) are still working, which `std::process::exit`
//! would do and which crashed (SIGSEGV, status 139) when Ctrl-C landed in a forward pass. A main
//! thread that finishes while the cleanup runs waits for it ([`settle`]), so an interrupted run
//! never ends with the status of a finished one.
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when a signal arrived; the exit is then the signal thread's.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Starts a thread that waits for SIGINT or SIGTERM. Without it the default action ends the
/// process at once, leaving a tarball's extraction and the staging directory behind.
pub(crate) fn install() {
    #[cfg(unix)]
    unix::install();
}

/// Called by `main` before it returns: when a signal arrived, the signal thread is removing this
/// run's directories and will end the process with 128 + the signal; wait for it.
pub(crate) fn settle() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
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
        super::INTERRUPTED.store(true, super::Ordering::SeqCst);
        let name = match signal {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        };
        crate::scratch::remove_registered_then(|removed| {
            if removed.is_empty() {
                eprintln!("\nzoo: interrupted ({name})");
            } else {
                eprintln!(
                    "\nzoo: interrupted ({name}); removed the directories this run had made:"
                );
                for p in &removed {
                    eprintln!("  {}", p.display());
                }
            }
            signal_hook::low_level::exit(128 + signal)
        })
    }
}
