//! The state (`--state PATH`): what an incremental sync remembers between runs — the SQLite
//! database of each entity's key and the digest of its last accepted operation (`db`), what
//! an operation means to it (`memo`), and the `--missing` sweep's policy and cap (`missing`).
//!
//! Below `run/`, above `record/`: the run asks it whether a record is unchanged, tells it what
//! was accepted, and commits it with each checkpoint.

mod db;
mod memo;
mod missing;

pub use db::{Absent, Figures, State, describe};
pub use memo::{Kind, Memo};
pub use missing::{MaxMissing, Missing, Removal};
