//! Every integration test, in one crate so the dependencies link once: a test file is
//! tests/it/NAME.rs plus one `mod NAME;` line below (its data stays in tests/golden/,
//! tests/fixtures/ and tests/track-openapi.json).
//!
//! `cargo test --test it NAME::` runs one file's tests. All run beside each other in one
//! process: a test whose assertions measure pacing holds `common::timed()` so that no other
//! such test runs beside it, whichever file it is in.

mod common;

mod answers;
mod bad_input;
mod batch;
mod column_names;
mod columns;
mod config_file;
mod confirm;
mod conformance;
mod discipline;
mod ending;
mod events;
mod generated;
mod golden;
mod hardening;
mod import;
mod input_props;
mod kill;
mod kinds;
mod layout;
mod pasted;
mod progress;
mod reading;
mod readme;
mod resume;
mod secrets;
mod shared_limit;
mod state;
mod values;
