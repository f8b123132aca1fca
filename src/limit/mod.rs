//! Pacing: every request, first try or retry, waits for a turn from one [`Pacer`] shared by
//! every worker, which adapts its pace to the rate the server really accepts.
//!
//! [`LocalPacer`] paces the requests of one process; [`SharedPacer`] those of every process
//! sharing one schedule in Redis (`--shared-limit`; `schedule` holds its scripts). The rules of
//! adaptation are apart from both, as clock-free arithmetic (`adapt`), fed alike by both
//! pacers (`heard`: what the server answered, counted against the acceptances), so the shared
//! pacer follows the same rules with their state kept in Redis (`replica`: its copy).

mod adapt;
mod heard;
mod local;
mod replica;
mod schedule;
mod shared;
#[cfg(test)]
mod sim;

pub use adapt::{Accepted, Adaptation};
pub use local::LocalPacer;
pub use schedule::{Ask, Commit, Schedule, Scripts, Slot};
pub use shared::{Link, SharedPacer, connect};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A wait for one request's turn.
pub type Turn<'a> = Pin<Box<dyn Future<Output = Permit> + Send + 'a>>;

/// What the retry loop needs from a pacer. Used as `Arc<dyn Pacer>`: which pacer runs is
/// chosen at run time, and boxing a turn costs far under a microsecond of the 50 µs a request.
pub trait Pacer: Send + Sync {
    /// Waits for the shared pause to end and for the pace to allow one more request.
    /// Cancel-safe: a waiter dropped mid-wait gives up its turn and takes no permit.
    fn acquire(&self) -> Turn<'_>;

    /// A request was accepted.
    fn on_accepted(&self);

    /// A 429 for the request sent with `permit`: everyone pauses until `retry_after` (or a
    /// pause of the pacer's own when the server gave none), and when the 429 is evidence of a
    /// limit (not a stray) the pace drops to what the server accepted.
    fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>);

    /// A 5xx or network failure; `streak` is how many came in a row across all workers.
    fn on_trouble(&self, streak: u32);

    /// The current pace, in requests per second.
    fn rate(&self) -> f64;

    /// Why no turn is given now, when it is something the progress line should say.
    fn held_up(&self) -> Option<String> {
        None
    }
}

/// Handed out with a turn; tells the pacer which pace a request was sent at.
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    /// The adaptation's epoch when the turn was given.
    epoch: u64,
}
