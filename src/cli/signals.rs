//! SIGINT and SIGTERM: remove the temporary directories this run registered
//! ([`crate::scratch`]), say so, and exit 130 or 143 (128 + the signal), as a shell reports a
//! process ended by the signal.

/// Starts a thread that waits for SIGINT or SIGTERM. Without it the default action ends the
/// process at once, leaving a tarball's extraction and the staging directory behind.
pub(crate) fn install() {
    #[cfg(unix)]
    unix::install();
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
            std::process::exit(128 + signal)
        })
    }
}
