//! cio-import: a bulk importer for Customer.io's Track API.
//!
//! # The map
//!
//! The stages, in the order a record meets them, each a module (a folder when it has parts):
//!
//! - [`source`]: inputs (files, gzip, stdin) read as a stream of rows, CSV or NDJSON.
//! - [`record`]: a row mapped and validated into an [`record::Operation`], each kind holding
//!   only its own fields; a failures-file line read back into one.
//! - [`limit`]: the [`limit::Pacer`] every request waits on, and how the pace adapts to 429s.
//! - [`send`]: the HTTP client, what each answer means, and the retry loop.
//! - [`settle`]: the [`settle::Ledger`] that gives every record exactly one end, and the
//!   failures file.
//! - [`report`]: the live counters, the progress display, the summary, and the one place
//!   messages are printed ([`report::say`]).
//! - [`run`]: the pipeline wired: setup, the reader thread, the dispatcher, checkpoint
//!   saving, signals, the finish.
//!
//! Beside them: [`cli`] (the command line) becomes [`config`] (checked, plain values);
//! [`checkpoint`] keeps how far a run got and checks a resume; [`state`] remembers between
//! runs what Customer.io accepted (`--state`: the SQLite database, the digest, the `--missing`
//! policy), below [`run`] and above [`record`]; [`lock`] keeps a second run off the same
//! files; [`sandbox`] is the local stand-in of the Track API. At the bottom,
//! leaves every stage may point down to: [`track`] (Track API facts: regions, hosts, the
//! key, the documented limits), [`error`] (the fatal errors), [`exit`] (the exit codes) and
//! [`shell`] (words quoted as a POSIX shell reads them, for every command a message prints).
//! No module points back up: `tests/it/layout.rs` finds any circle.
//!
//! # Vocabulary
//!
//! - **record**: one row of an input, numbered in reading order across all inputs (its
//!   *seq*); it becomes one operation, or is *invalid*.
//! - **settle**: give a record its end: *accepted*, *failed* (sent and refused for good: a
//!   failures-file line), *invalid* (never sent: a failures-file line) or *unchanged* (not
//!   sent: the state holds it as accepted already). Every record read
//!   is settled exactly once, or left *unsent* by a stop for `--resume` to send.
//! - **watermark** (the ledger's *position*): every record before it is settled; what a
//!   checkpoint lets a resume skip.
//! - **spans ahead**: records past the watermark settled out of order (while an earlier one
//!   waited); a checkpoint keeps them so a resume reads past them too.
//! - **park**: a record waits in the dispatcher while an earlier record of the same person is
//!   in flight, so a person's records arrive in file order (and never share a batch).
//! - **linger**: how long a batch waits to fill before it goes anyway.
//! - **pace**: the requests per second the pacer allows now: `--rate`, lowered after 429s.
//! - **halt**: the whole run stops (refused credentials, a dead endpoint); records not sent
//!   stay unsent.
//!
//! # From an answer to a record's end
//!
//! One HTTP attempt gives a [`send::Answer`]: accepted, a 207 naming invalid operations,
//! rate limited, worth a retry, rejected, or unauthorized. The retry loop takes a request's
//! attempts to how the request ended (tried until answered, or given up), splits a batch
//! refused whole into halves, and gives each operation its [`send::Delivery`]: accepted,
//! failed (with every attempt's reason) or unsent. The run makes that the record's
//! [`settle::Outcome`], which the ledger settles. A record that never reaches the network
//! (invalid) is settled by the reader itself.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod error;
pub mod exit;
pub mod limit;
pub mod lock;
pub mod record;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod send;
pub mod settle;
pub mod shell;
pub mod source;
pub mod state;
pub mod track;
