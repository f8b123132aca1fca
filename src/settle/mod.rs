//! Settling every record: the [`Ledger`] that gives each record read exactly one end, and
//! the failures file where the ones not accepted go.

mod failures;
mod ledger;

pub use failures::{FailuresFile, cut_to, failure_line, open_private};
pub use ledger::{Ledger, Outcome, Position, Span};
