//! Event ids: a given one read as a ULID (or, when it is none, such as a Segment `messageId`,
//! turned into one), else one derived from the event; and the event data's size, which the
//! same pass over the data measures.
//!
//! A derived id is a ULID whose time part is the event time and whose random part is a hash of
//! who, what, when and the data. The same row gives the same id on every run, so Customer.io
//! drops the copy when a batch is retried, a failures file is replayed, or the whole import is
//! run again. (Two identical rows with a time are one event by this rule.) An event without a
//! time has nothing to tell two identical rows apart but where they are: its hash takes the
//! input's full path (one file, however the command line names it) and the row's line too,
//! which a resume reads again and a failures-file line keeps (`_error.path`, `_error.line`).

use std::path::Path;

use serde_json::{Map, Value};
use ulid::Ulid;

use super::hash::Fnv128;
use super::plan::Role;
use super::value::thousands;
use super::{EventKind, Invalid, Mapper, Who};
use crate::source::RowData;
use crate::track::MAX_EVENT_DATA_BYTES;

/// Where a row is: its input (by [`input_path`]) and its line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place<'a> {
    pub input: &'a str,
    pub line: u64,
}

/// The input as its events without a time name it: the file's full path, links resolved, so
/// that `renew.csv` run from its folder, its absolute path and a `--config` file's path to it
/// (relative to that file) are one input, while `jan/renew.csv` and `feb/renew.csv` are two.
/// A stream (stdin, a pipe) has no lasting path: it keeps `name`, the run's name for it.
pub fn input_path(path: &Path, stream: bool, name: &str) -> String {
    match path.canonicalize() {
        Ok(full) if !stream => full.to_string_lossy().into_owned(),
        _ => name.to_owned(),
    }
}

/// An input's name as an event id takes it. A name [`input_path`] gave is whole already; a
/// failures line of an earlier release has the name as given, where `./a.csv` was `a.csv`.
pub(super) fn input_name(name: &str) -> &str {
    let mut name = name;
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name
}

/// A given event id as a ULID; any other id (a Segment `messageId`, a UUID) becomes the ULID
/// its pinned hash gives, the same on every run.
pub(super) fn parse(id: &str) -> Ulid {
    let id = id.trim();
    // 26 base32 digits hold 130 bits; a first digit above 7 would overflow 128, and the decoder
    // would silently drop those bits.
    let fits = id
        .as_bytes()
        .first()
        .is_some_and(|b| (b'0'..=b'7').contains(b));
    match Ulid::from_string(id) {
        Ok(ulid) if fits => ulid,
        _ => {
            let mut h = Fnv128::default();
            h.field(b"message id");
            h.field(id.as_bytes());
            Ulid(h.hash)
        }
    }
}

/// Checks the event data's size, and settles the event's id: `given`, else one derived from
/// the event. The data is hashed as serialised JSON, whose key order is fixed (serde_json's map
/// is sorted).
pub(super) fn settle(
    kind: EventKind,
    who: &Who<impl AsRef<str>>,
    name: &str,
    timestamp: Option<i64>,
    data: &Map<String, Value>,
    given: Option<Ulid>,
    place: Option<Place<'_>>,
) -> Result<Ulid, Invalid> {
    let mut h = Fnv128::default();
    // A page or screen view's id differs from an event's alike; an event's stays as it was.
    if let Some(kind) = kind.v1_type() {
        h.field(kind.as_bytes());
    }
    who.hash_into(&mut h);
    h.field(name.as_bytes());
    match (timestamp, place) {
        (Some(ts), _) => h.field(&ts.to_le_bytes()),
        (None, None) => h.field(&[]),
        (None, Some(place)) => {
            h.field(&[]);
            h.field(input_name(place.input).as_bytes());
            h.field(&place.line.to_le_bytes());
        }
    }
    // One serialisation both measures the data and hashes it. Writing into a hasher cannot
    // fail, and a Map always serialises.
    let _ = serde_json::to_writer(&mut h, data);
    if h.written > MAX_EVENT_DATA_BYTES {
        return Err(Invalid::row(format!(
            "event data is {} bytes; Customer.io allows at most {} (drop or shorten columns)",
            thousands(h.written),
            thousands(MAX_EVENT_DATA_BYTES)
        )));
    }
    Ok(given.unwrap_or_else(|| {
        // Missing or pre-1970 times use 0, which keeps the id deterministic (ULID time is
        // unsigned).
        let ms = timestamp
            .and_then(|ts| u64::try_from(ts).ok())
            .map_or(0, |s| s.saturating_mul(1000));
        // FNV's high bits are its best mixed: keep the top 80.
        Ulid::from_parts(ms, h.hash >> 48)
    }))
}

impl Mapper {
    /// The event id `row` gives in a column of its own, and that column: what a message about
    /// the id names. None when the id is derived, or a replayed line's operation holds it.
    pub fn given_event_id<'a>(&'a self, row: &'a RowData) -> Option<(&'a str, &'a str)> {
        let given = match row {
            RowData::Csv(record) => {
                let plan = self.csv.as_ref()?;
                let i = plan.roles.iter().position(|r| *r == Role::EventId)?;
                Some((plan.headers.get(i)?.as_str(), record.get(i)?))
            }
            RowData::Json(object) => object.iter().find_map(|(key, v)| {
                let text = v.as_str()?;
                (self.role(key, None) == Role::EventId).then_some((key.as_str(), text))
            }),
            RowData::Broken { .. } => None,
        };
        given
            .map(|(column, id)| (column, id.trim()))
            .filter(|(_, id)| !id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::value;
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn derived_event_ids_are_valid_deterministic_ulids() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        let a = ok(&mut m, &row(&["1", "1709632800", "pro"]));
        let id = event_id(&a);
        let ulid = Ulid::from_string(&id).unwrap();
        assert_eq!(id.len(), 26);
        assert_eq!(ulid.timestamp_ms(), 1_709_632_800_000);

        // Same row, new mapper (a re-run): same id.
        let mut again = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        assert_eq!(
            event_id(&ok(&mut again, &row(&["1", "1709632800", "pro"]))),
            id
        );
        // The same event written in another form of the same time: same id.
        assert_eq!(
            event_id(&ok(&mut m, &row(&["1", "2024-03-05T10:00:00Z", "pro"]))),
            id
        );

        let mut ids = HashSet::new();
        for r in [
            ["1", "1709632800", "pro"],
            ["2", "1709632800", "pro"],
            ["1", "1709632801", "pro"],
            ["1", "1709632800", "free"],
            ["1", "", "pro"],
        ] {
            assert!(ids.insert(event_id(&ok(&mut m, &row(&r)))), "{r:?}");
        }
        // No timestamp: time part 0, still a valid, stable id.
        let none = event_id(&ok(&mut m, &row(&["1", "", "pro"])));
        assert_eq!(Ulid::from_string(&none).unwrap().timestamp_ms(), 0);
        assert_eq!(event_id(&ok(&mut m, &row(&["1", "", "pro"]))), none);

        // Identity kind and event name count too.
        let mut by_email = csv_mapper(&event_spec(Some("e")), &["email", "timestamp", "plan"]);
        let e = event_id(&ok(&mut by_email, &row(&["1", "1709632800", "pro"])));
        assert_ne!(e, id);
        let mut other_name = csv_mapper(&event_spec(Some("f")), &["id", "timestamp", "plan"]);
        assert_ne!(
            event_id(&ok(&mut other_name, &row(&["1", "1709632800", "pro"]))),
            id
        );
        // The id does not depend on key order in NDJSON.
        let mut j = json_mapper(&event_spec(Some("e")));
        let x = event_id(&ok(&mut j, &obj(json!({"id": "1", "a": 1, "b": 2}))));
        let y = event_id(&ok(&mut j, &obj(json!({"b": 2, "a": 1, "id": "1"}))));
        assert_eq!(x, y);
    }

    #[test]
    fn derived_event_id_is_pinned() {
        // If this changes, re-runs after an upgrade stop deduplicating against earlier runs.
        let mut m = csv_mapper(&event_spec(Some("signed_up")), &["id", "timestamp", "plan"]);
        let op = ok(&mut m, &row(&["42", "1709632800", "pro"]));
        assert_eq!(event_id(&op), "01HR70WH8069XEH316T6DZRYEA");
    }

    #[test]
    fn given_event_ids_are_ulids_or_become_one() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "event_id"]);
        let op = ok(&mut m, &row(&["1", " 01hr6z8q9t3v5x7z9b1d3f5h7k "]));
        assert_eq!(event_id(&op), "01HR6Z8Q9T3V5X7Z9B1D3F5H7K");
        assert!(attributes(&op).unwrap().is_empty());
        // A Segment messageId: pinned, since a re-run must send the same id.
        let segment = "ajs-next-69e4a3c7f1b24d4cb2a2f39e0f6fbc1d";
        let op = ok(&mut m, &row(&["1", segment]));
        assert_eq!(event_id(&op), "0CR1N5Y8MMF002G4YXG7389D83");
        assert_eq!(parse(segment).to_string(), "0CR1N5Y8MMF002G4YXG7389D83");
        // Not ULIDs either (too short, over 128 bits): each its own.
        let ids: HashSet<String> = [
            "nope",
            "01HR6Z8Q9T3V5X7Z9B1D3F5H7",
            "81HR6Z8Q9T3V5X7Z9B1D3F5H7K",
        ]
        .into_iter()
        .map(|bad| event_id(&ok(&mut m, &row(&["1", bad]))))
        .collect();
        assert_eq!(ids.len(), 3);
        // Empty: derived.
        let derived = event_id(&ok(&mut m, &row(&["1", ""])));
        assert_ne!(derived, "01HR6Z8Q9T3V5X7Z9B1D3F5H7K");
    }

    #[test]
    fn events_without_a_time_are_told_apart_by_input_and_line() {
        let spec = event_spec(Some("renewed"));
        let at = |input: &str, line: u64| {
            let mut m = csv_mapper(&spec, &["id", "plan"]);
            m.set_input(input, false);
            event_id(&m.map(&row(&["1", "pro"]), line).unwrap())
        };
        let jan = at("renew_jan.csv", 2);
        assert_ne!(jan, at("renew_feb.csv", 2));
        assert_ne!(jan, at("renew_jan.csv", 3));
        assert_eq!(jan, at("renew_jan.csv", 2));
        assert_eq!(jan, at("./renew_jan.csv", 2));
        // If this changes, re-runs after an upgrade send events without a time again.
        assert_eq!(at("/exports/renew.csv", 2), "0000000000H2H2TFGYNEVE0PS0");
        // With a time, where the row is does not count: a re-sent copy is the same event.
        let mut m = csv_mapper(&spec, &["id", "plan", "timestamp"]);
        let timed = |m: &mut Mapper, line| {
            event_id(&m.map(&row(&["1", "pro", "1709632800"]), line).unwrap())
        };
        let first = timed(&mut m, 2);
        m.set_input("other.csv", false);
        assert_eq!(timed(&mut m, 9), first);
    }

    #[cfg(unix)]
    #[test]
    fn an_input_is_its_full_path_through_any_name_or_link_and_a_stream_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().canonicalize().unwrap().join("renew.csv");
        std::fs::write(&full, "id\n").unwrap();
        let link = dir.path().join("latest.csv");
        std::os::unix::fs::symlink(&full, &link).unwrap();
        let roundabout = dir.path().join(".").join("renew.csv");
        let want = full.to_str().unwrap();
        for path in [&full, &link, &roundabout] {
            assert_eq!(input_path(path, false, "given"), want, "{path:?}");
        }
        assert_eq!(input_path(Path::new("-"), true, "stdin"), "stdin");
        assert_eq!(input_path(&full, true, "a pipe"), "a pipe");
    }

    #[test]
    fn event_data_at_most_100000_bytes_and_values_are_not_held_to_1000() {
        let mut m = json_mapper(&event_spec(Some("e")));
        // {"blob":"…"} is the string plus 11 bytes.
        let op = ok(&mut m, &obj(json!({"id": "1", "blob": "x".repeat(99_989)})));
        assert_eq!(value::json_size(attributes(&op).unwrap()), 100_000);
        let e = err(&mut m, &obj(json!({"id": "1", "blob": "x".repeat(99_990)})));
        assert_eq!(e.column, None);
        assert!(
            e.message
                .starts_with("event data is 100,001 bytes; Customer.io allows at most 100,000"),
            "{}",
            e.message
        );
    }
}
