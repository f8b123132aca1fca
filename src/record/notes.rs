//! What mapping tells the run besides a row's verdict: warnings told once per column (a
//! timestamp column that looks misread), and the attribute values `--oversize` changed.

use std::collections::HashSet;

use serde::Serialize;

use super::value::Cell;
use crate::track::MAX_ATTRIBUTE_VALUE_BYTES;

/// What to do with a person's attribute value over Customer.io's 1,000 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// The row is invalid (a failures-file line), as Customer.io would refuse it.
    #[default]
    Reject,
    /// The attribute is left out; the rest of the row goes.
    Drop,
    /// Text is cut at a character boundary to fit; a JSON value (which cannot be cut) is
    /// left out.
    Truncate,
}

impl Oversize {
    pub fn is_reject(&self) -> bool {
        *self == Oversize::Reject
    }

    /// How the policy changes a value over the limit: none for reject, which leaves the
    /// row to be refused.
    pub(super) fn resize(self) -> Option<Resize> {
        match self {
            Oversize::Reject => None,
            Oversize::Drop => Some(Resize::Drop),
            Oversize::Truncate => Some(Resize::Truncate),
        }
    }

    /// As the command line spells it.
    pub fn flag_name(self) -> String {
        super::value_name(self)
    }
}

/// An `--oversize` that changes values (not reject): what the mapper applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resize {
    Drop,
    Truncate,
}

impl Resize {
    /// `v`, a value over the limit, as the policy leaves it: None when it is left out.
    pub(super) fn apply(self, v: Cell<'_>) -> Option<Cell<'_>> {
        let cut = |s: &str| s.floor_char_boundary(MAX_ATTRIBUTE_VALUE_BYTES);
        match (self, v) {
            (Resize::Truncate, Cell::Text(s)) => Some(Cell::Text(&s[..cut(s)])),
            (Resize::Truncate, Cell::Json(serde_json::Value::String(s))) => {
                Some(Cell::Owned(s[..cut(s)].to_owned().into()))
            }
            (Resize::Truncate, Cell::Owned(serde_json::Value::String(mut s))) => {
                s.truncate(cut(&s));
                Some(Cell::Owned(s.into()))
            }
            _ => None,
        }
    }
}

/// A value `--oversize` changed: its column, its size, and whether it was cut (else dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resized {
    pub column: String,
    pub bytes: usize,
    pub cut: bool,
}

/// What the mapper noted while mapping: kept until the run takes it.
#[derive(Debug, Default)]
pub(super) struct Notes {
    /// Columns already warned about, so each is told once.
    warned: HashSet<String>,
    /// Warnings not yet taken.
    pub warnings: Vec<String>,
    /// The values the last row had resized.
    pub resized: Vec<Resized>,
    /// Whether an event without a time was told about.
    untimed_told: bool,
}

/// What the run is told of the first event without a time in an input that has times
/// elsewhere (an NDJSON line without the key, an empty cell).
const UNTIMED: &str = "this event has no timestamp: it goes without a time (Customer.io gives it \
the time it arrives) and with an id from its content, this input's name and its line, as every \
such event does";

/// What such ids mean for the next run, which a nightly job meets: read from a stream, or
/// from a path a new export is written to, a row gets the id of the row at its line the run
/// before, and Customer.io drops an identical one as seen.
pub(super) fn same_ids(stream: bool) -> &'static str {
    match stream {
        true => {
            "read from a stream, every run gives the rows at the same lines the same ids, so \
             Customer.io drops a row identical to the one an earlier run sent from its line"
        }
        false => {
            "a new export written to this same path gives the rows at the same lines the same \
             ids, so Customer.io drops a row identical to the one sent from its line before"
        }
    }
}

impl Notes {
    /// Keeps the note on events without a time, the first time.
    pub fn untimed(&mut self, stream: bool) {
        if !self.untimed_told {
            self.untimed_told = true;
            let ids = same_ids(stream);
            self.warnings.push(format!("{UNTIMED}; {ids} (told once)"));
        }
    }

    /// Keeps `warning` about `column` unless that column was warned about already.
    pub fn warn_once(&mut self, column: &str, warning: impl FnOnce() -> String) {
        if !self.warned.contains(column) {
            self.warned.insert(column.to_owned());
            self.warnings.push(warning());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_text_at_a_character_boundary_and_drop_leaves_it_out() {
        let long = format!("{}é", "x".repeat(999));
        match Resize::Truncate.apply(Cell::Text(&long)) {
            Some(Cell::Text(s)) => assert_eq!(s, "x".repeat(999)),
            other => panic!("{other:?}"),
        }
        let json = serde_json::json!({"a": "x".repeat(2000)});
        assert_eq!(Resize::Truncate.apply(Cell::Json(&json)), None);
        assert_eq!(Resize::Drop.apply(Cell::Text(&long)), None);
        assert_eq!(Oversize::Reject.resize(), None);
        assert_eq!(Oversize::Truncate.flag_name(), "truncate");
    }
}
