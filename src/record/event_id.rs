//! Event ids: a given one read as a ULID, else one derived from the event; and the event data's
//! size, which the same pass over the data measures.
//!
//! A derived id is a ULID whose time part is the event time and whose random part is a hash of
//! who, what, when and the data. The same row gives the same id on every run, so Customer.io
//! drops the copy when a batch is retried, a failures file is replayed, or the whole import is
//! run again. (Two identical rows are one event by this rule.)

use serde_json::{Map, Value};
use ulid::Ulid;

use super::hash::Fnv128;
use super::value::{quote, thousands};
use super::{EventKind, Invalid, Who};
use crate::track::MAX_EVENT_DATA_BYTES;

/// A given event id, as a ULID.
pub(super) fn parse(column: &str, id: &str) -> Result<Ulid, Invalid> {
    let id = id.trim();
    // 26 base32 digits hold 130 bits; a first digit above 7 would overflow 128, and the decoder
    // would silently drop those bits.
    let fits = id
        .as_bytes()
        .first()
        .is_some_and(|b| (b'0'..=b'7').contains(b));
    match Ulid::from_string(id) {
        Ok(ulid) if fits => Ok(ulid),
        _ => Err(Invalid::at(
            column,
            format!(
                "column {column:?}: {} is not a ULID (26 characters of Crockford base32, \
                 e.g. 01HR6Z8Q9T3V5X7Z9B1D3F5H7K); leave it empty to derive one from the row",
                quote(id)
            ),
        )),
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
) -> Result<Ulid, Invalid> {
    let mut h = Fnv128::default();
    // A page or screen view's id differs from an event's alike; an event's stays as it was.
    if let Some(kind) = kind.v1_type() {
        h.field(kind.as_bytes());
    }
    who.hash_into(&mut h);
    h.field(name.as_bytes());
    match timestamp {
        Some(ts) => h.field(&ts.to_le_bytes()),
        None => h.field(&[]),
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
    fn given_event_ids_must_be_ulids() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "event_id"]);
        let op = ok(&mut m, &row(&["1", " 01hr6z8q9t3v5x7z9b1d3f5h7k "]));
        assert_eq!(event_id(&op), "01HR6Z8Q9T3V5X7Z9B1D3F5H7K");
        assert!(attributes(&op).unwrap().is_empty());
        for bad in [
            "nope",
            "01HR6Z8Q9T3V5X7Z9B1D3F5H7",
            "81HR6Z8Q9T3V5X7Z9B1D3F5H7K",
        ] {
            let e = err(&mut m, &row(&["1", bad]));
            assert_eq!(e.column.as_deref(), Some("event_id"), "{bad}");
            assert!(e.message.contains("is not a ULID"), "{}", e.message);
        }
        // Empty: derived.
        let derived = event_id(&ok(&mut m, &row(&["1", ""])));
        assert_ne!(derived, "01HR6Z8Q9T3V5X7Z9B1D3F5H7K");
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
