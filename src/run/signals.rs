//! Stopping: the one stop a run has (Ctrl-C, SIGTERM or a fatal error), and the watch on
//! the signals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use crate::exit::Exit;
use crate::report::Reporter;

/// One way to stop: the first Ctrl-C (or a fatal error) cancels `token`, which stops
/// reading and lets requests in flight finish.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    interrupted: Arc<AtomicBool>,
}

impl Shutdown {
    /// A signal: stop, and end with exit 130.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.token.cancel();
    }
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Ctrl-C or SIGTERM once: stop reading and drain. Twice: exit at once (the checkpoint on
/// disk is still valid, as it is only ever replaced whole).
pub fn watch_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            if wait_for_signal().await.is_err() {
                return;
            }
            signals += 1;
            if signals == 1 {
                // The run says so, above its progress bar.
                shutdown.interrupt();
            } else {
                std::process::exit(i32::from(Exit::Interrupted.code()));
            }
        }
    });
}

/// Once the run stops on a signal, says so above the progress bar.
pub(super) fn tell_stopping(shutdown: Shutdown, reporter: Reporter) {
    tokio::spawn(async move {
        shutdown.token.cancelled().await;
        if shutdown.is_interrupted() {
            reporter
                .log("stopping: finishing requests in flight (press Ctrl-C again to quit at once)");
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_signal_makes_a_stop_an_interruption() {
        let fatal = Shutdown::default();
        fatal.token.cancel();
        assert!(!fatal.is_interrupted());
        let signal = Shutdown::default();
        let seen = signal.clone();
        signal.interrupt();
        assert!(seen.is_interrupted() && seen.token.is_cancelled());
    }
}
