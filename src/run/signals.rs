//! Stopping: the one stop a run has (a signal or a fatal error), and the watch on the
//! signals: SIGINT, SIGTERM and SIGHUP each stop the run once, and kill it the second time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exit::{Exit, Signal};
use crate::report::{Reporter, say};

/// One way to stop: the first signal (or a fatal error) cancels `token`, which stops
/// reading and gives requests in flight up to `--stop-timeout` to finish.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    signal: Arc<OnceLock<Signal>>,
}

impl Shutdown {
    /// A signal: stop, and end with its exit code. Only the first one counts.
    pub fn interrupt(&self, signal: Signal) {
        let _ = self.signal.set(signal);
        self.token.cancel();
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<Signal> {
        self.signal.get().copied()
    }

    /// The signal, once one has come (a stop for a fatal error is not one: this waits on).
    pub async fn signalled(&self) -> Signal {
        self.token.cancelled().await;
        match self.signal() {
            Some(signal) => signal,
            None => std::future::pending().await,
        }
    }
}

/// Watches the signals from now on (call it inside the runtime): the first stops the run,
/// a second one kills the process as that signal would have, so the checkpoint on disk
/// (only ever replaced whole) is the one a resume starts from. A signal ignored when the
/// process started (`nohup`, a background job of a script) stays ignored.
pub fn watch_signals(shutdown: Shutdown) {
    let mut signals = match Signals::watch() {
        Ok(signals) => signals,
        Err(e) => {
            say::warning(format!(
                "cannot watch for signals ({e}): Ctrl-C will kill the run at once"
            ));
            return;
        }
    };
    tokio::spawn(async move {
        let Some(first) = signals.next().await else {
            return;
        };
        shutdown.interrupt(first);
        if let Some(second) = signals.next().await {
            say::say(format!(
                "{} again: quitting at once (the checkpoint on disk stays valid for --resume)",
                second.name()
            ));
            die_of(second);
        }
    });
}

/// Once the run stops on a signal, says so above the progress bar.
pub(super) fn tell_stopping(
    shutdown: Shutdown,
    reporter: Reporter,
    sending: bool,
    stop_timeout: Duration,
) {
    tokio::spawn(async move {
        shutdown.token.cancelled().await;
        if let Some(signal) = shutdown.signal() {
            let again = match signal {
                Signal::Interrupt => "press Ctrl-C again".to_owned(),
                other => format!("send {} again", other.name()),
            };
            let waiting = if sending {
                format!(
                    ", giving requests in flight up to {}s to finish (--stop-timeout)",
                    stop_timeout.as_secs_f64()
                )
            } else {
                String::new()
            };
            reporter.log(format!(
                "{}: stopping{waiting}; {again} to quit at once",
                signal.name()
            ));
        }
    });
}

/// Ends the process as `signal` does by default, so whoever started it sees that signal.
fn die_of(signal: Signal) -> ! {
    #[cfg(unix)]
    {
        let number = i32::from(signal.number());
        // SAFETY: restoring the default action and raising the signal in this process; the
        // default action for these three ends the process.
        unsafe {
            libc::signal(number, libc::SIG_DFL);
            libc::raise(number);
        }
    }
    std::process::exit(i32::from(Exit::Stopped(signal).code()))
}

/// The signals watched; the next one to arrive.
#[cfg(unix)]
struct Signals(Vec<(Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl Signals {
    fn watch() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut watched = Vec::new();
        for s in Signal::ALL {
            let number = i32::from(s.number());
            if !ignored(number) {
                watched.push((s, signal(SignalKind::from_raw(number))?));
            }
        }
        Ok(Signals(watched))
    }

    async fn next(&mut self) -> Option<Signal> {
        std::future::poll_fn(|cx| {
            for (s, stream) in &mut self.0 {
                if let std::task::Poll::Ready(got) = stream.poll_recv(cx) {
                    return std::task::Poll::Ready(got.map(|()| *s));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// Whether `number` was ignored when the process started.
#[cfg(unix)]
fn ignored(number: i32) -> bool {
    // SAFETY: a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(number, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn watch() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Option<Signal> {
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Signal::Interrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_signal_makes_a_stop_an_interruption_and_the_first_one_counts() {
        let fatal = Shutdown::default();
        fatal.token.cancel();
        assert_eq!(fatal.signal(), None);
        let signal = Shutdown::default();
        let seen = signal.clone();
        signal.interrupt(Signal::HangUp);
        signal.interrupt(Signal::Interrupt);
        assert_eq!(seen.signal(), Some(Signal::HangUp));
        assert!(seen.token.is_cancelled());
    }
}
