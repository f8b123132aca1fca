//! Replay: a line of our own failures file read back as input. A line holding an operation is
//! sent as it is (after the same rules as a row, keeping its event id so Customer.io dedups a
//! resend); a line holding a row's raw columns is mapped like any row.

use serde_json::{Map, Value};

use super::event_id::Place;
use super::operation::Flat;
use super::{Action, Entity, Invalid, Mapper, Operation};
use crate::source::RowData;

/// The key our failures file adds to every line; its presence marks a replay.
pub(super) const ERROR_KEY: &str = "_error";
/// The key the failures file uses for a row that could not be read at all.
pub(super) const RAW_KEY: &str = "_raw";
/// The same, for such a row whose bytes are not UTF-8: they are kept in base64.
pub(super) const RAW_BASE64_KEY: &str = "_raw_base64";

/// Where a failures-file line's row was read first: a line that fails again keeps it, so
/// an event without a time has one id however many failures files it passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The input as the run named it.
    pub source: &'a str,
    pub line: u64,
    /// The input's full path; none for stdin, or in a line an earlier release wrote.
    pub path: Option<&'a str>,
}

/// The origin a replayed row names: where it was read first, if it is a failures-file line.
pub fn replayed(row: &RowData) -> Option<Origin<'_>> {
    match row {
        RowData::Json(object) => origin(object),
        _ => None,
    }
}

/// The origin a failures-file line (`_error`) names, if `object` is one.
fn origin(object: &Map<String, Value>) -> Option<Origin<'_>> {
    let error = object.get(ERROR_KEY)?;
    let text = |key| error.get(key).and_then(Value::as_str);
    Some(Origin {
        source: text("source")?,
        line: error.get("line").and_then(Value::as_u64)?,
        path: text("path"),
    })
}

impl Mapper {
    pub(super) fn replay(&self, object: &Map<String, Value>) -> Result<Operation, Invalid> {
        let typed = matches!(
            object.get("type").and_then(Value::as_str),
            Some("person" | "object")
        );
        let is_operation = typed && object.contains_key("action");
        // Where the line's row was, so an event without a time keeps its id (see `event_id`):
        // its input's full path, or where a line has none (the name said it, or an earlier
        // release wrote the line), its name.
        let place = origin(object).map(|o| Place {
            input: o.path.unwrap_or(o.source),
            line: o.line,
        });
        if is_operation {
            let mut rest = object.clone();
            rest.remove(ERROR_KEY);
            let line: Flat = serde_json::from_value(Value::Object(rest)).map_err(|e| {
                Invalid::row(format!("failures-file line is not a valid operation: {e}"))
            })?;
            let op = Operation::from_line(line, place)?;
            let action = op.action();
            if action.destroys() && !self.may_destroy {
                return Err(Invalid::row(format!(
                    "this line would {} and cannot be undone: replay the file with --yes to \
                     send it",
                    match (action, op.entity()) {
                        (Action::Delete, Entity::Object) => "delete an object",
                        (Action::Delete, Entity::Person) => "delete a person",
                        (Action::Suppress, _) => "suppress a person",
                        _ => "merge two people",
                    }
                )));
            }
            return Ok(op);
        }
        if object.contains_key(RAW_KEY) || object.contains_key(RAW_BASE64_KEY) {
            return Err(Invalid::row(
                "this failures-file line holds a row that could not be read (_raw, or \
                 _raw_base64: its exact bytes in base64); fix it in the original input and \
                 import that row again"
                    .into(),
            ));
        }
        self.object_operation(object, place)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, MapSpec, Operation, ValueType};
    use crate::source::RowData;
    use serde_json::Value;
    use serde_json::json;

    #[test]
    fn replayed_operation_lines_keep_their_action_and_event_id() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        let op = ok(&mut m, &row(&["1", "1709632800", "pro"]));
        let Value::Object(mut line) = serde_json::to_value(&op).unwrap() else {
            panic!()
        };
        line.insert("_error".into(), json!("429 Too Many Requests"));

        // Replayed with another action on the command line: the line's own action counts.
        let mut r = json_mapper(&spec(Action::Identify));
        assert_eq!(ok(&mut r, &RowData::Json(line.clone())), op);
        // A hand-edited id is kept; a removed one is derived again, equal to the original.
        line.insert("id".into(), json!("01HR6Z8Q9T3V5X7Z9B1D3F5H7K"));
        let kept = ok(&mut r, &RowData::Json(line.clone()));
        assert_eq!(event_id(&kept), "01HR6Z8Q9T3V5X7Z9B1D3F5H7K");
        line.remove("id");
        assert_eq!(ok(&mut r, &RowData::Json(line.clone())), op);

        // An id that is no ULID (a Segment messageId) becomes one, the same every time.
        line.insert("id".into(), json!("bad"));
        let derived = event_id(&ok(&mut r, &RowData::Json(line.clone())));
        assert_eq!(event_id(&ok(&mut r, &RowData::Json(line))), derived);
        assert_ne!(derived, event_id(&op));
    }

    #[test]
    fn replayed_operation_lines_are_held_to_the_limits() {
        let mut r = json_mapper(&spec(Action::Event));
        let line = |v: Value| obj(v);
        let ok_line = json!({"_error": "x", "type": "person", "action": "identify",
                             "identifiers": {"cio_id": "cio_12"}, "attributes": {"a": 1}});
        let op = ok(&mut r, &line(ok_line));
        assert_eq!(person(&op), Some(&cio_id("12")));
        assert_eq!(op.action(), Action::Identify);

        let e = err(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "identify",
                         "identifiers": {"id": "x".repeat(151)}}),
            ),
        );
        assert_eq!(e.column.as_deref(), Some("id"));
        let e = err(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "identify",
                         "identifiers": {"id": "1"}, "attributes": {"bio": "x".repeat(1001)}}),
            ),
        );
        assert_eq!(e.column.as_deref(), Some("bio"));
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "event",
                         "identifiers": {"id": "1"}})),
        );
        assert_eq!(e.column.as_deref(), Some("name"));
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "event", "name": "n"})),
        );
        assert!(e.message.starts_with("no identifier"), "{}", e.message);
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "jump",
                         "identifiers": {"id": "1"}})),
        );
        assert!(
            e.message
                .starts_with("failures-file line is not a valid operation"),
            "{}",
            e.message
        );
        // An anonymous event line is fine.
        let op = ok(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "event", "name": "n",
                         "anonymous_id": "a1"}),
            ),
        );
        assert_eq!(anonymous_id(&op), Some("a1"));
        assert_eq!(event_id(&op).len(), 26);
    }

    #[test]
    fn a_line_that_cannot_be_undone_needs_the_run_confirmed() {
        let unconfirmed = MapSpec {
            may_destroy: false,
            ..spec(Action::Identify)
        };
        let mut m = json_mapper(&unconfirmed);
        for line in [
            json!({"_error": "x", "type": "person", "action": "delete", "identifiers": {"id": "1"}}),
            json!({"_error": "x", "type": "object", "action": "delete",
                   "identifiers": {"object_type_id": "1", "object_id": "a"}}),
            json!({"_error": "x", "type": "person", "action": "merge",
                   "primary": {"id": "1"}, "secondary": {"id": "2"}}),
        ] {
            let e = err(&mut m, &obj(line));
            assert!(
                e.message.ends_with("replay the file with --yes to send it"),
                "{}",
                e.message
            );
        }
        let unsuppress = json!({"_error": "x", "type": "person", "action": "unsuppress",
                                "identifiers": {"id": "1"}});
        ok(&mut m, &obj(unsuppress));
    }

    #[test]
    fn replayed_raw_rows_map_like_rows() {
        let s = typed(Action::Identify, &[("age", ValueType::Number)]);
        let mut csv = csv_mapper(&s, &["id", "age"]);
        let bad = row(&["1", "old"]);
        let invalid = err(&mut csv, &bad);
        let mut line = csv.raw(&bad);
        line.insert("_error".into(), json!(invalid.message));
        assert_eq!(
            Value::Object(line.clone()),
            json!({"id": "1", "age": "old", "_error": invalid.message})
        );

        // Replayed unfixed: the same complaint. Fixed: mapped, without the _error key.
        let mut r = json_mapper(&s);
        assert_eq!(err(&mut r, &RowData::Json(line.clone())), invalid);
        line.insert("age".into(), json!("70"));
        let op = ok(&mut r, &RowData::Json(line));
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"age": 70})));

        let broken = RowData::Broken {
            message: "unterminated quote".into(),
            column: None,
            raw: b"1,\"x".to_vec(),
        };
        let mut line = r.raw(&broken);
        assert_eq!(Value::Object(line.clone()), json!({"_raw": "1,\"x"}));
        // Bytes that are not UTF-8 are kept exactly, in base64.
        let bytes = b"2,B\xF6b;\xFF".to_vec();
        let broken = RowData::Broken {
            message: "not UTF-8".into(),
            column: None,
            raw: bytes.clone(),
        };
        let encoded = r.raw(&broken)["_raw_base64"].as_str().unwrap().to_owned();
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(decoded, bytes);
        let mut other = r.raw(&broken);
        other.insert("_error".into(), json!("not UTF-8"));
        let e = err(&mut r, &RowData::Json(other));
        assert!(e.message.contains("could not be read"), "{}", e.message);
        line.insert("_error".into(), json!("unterminated quote"));
        let e = err(&mut r, &RowData::Json(line));
        assert!(e.message.contains("could not be read"), "{}", e.message);
    }

    #[test]
    fn a_hand_edited_line_meets_the_rules_a_row_meets() {
        let mut r = json_mapper(&spec(Action::Identify));
        // The line of a row at line 1 of the test mapper's (unnamed) input.
        let line = |v: Value| {
            let mut line = attrs(v);
            line.insert("_error".into(), json!({"source": "", "line": 1}));
            RowData::Json(line)
        };
        // Trimmed as a row's cells are, and a person identifier wins over an anonymous_id.
        let op = ok(
            &mut r,
            &line(
                json!({"type": "person", "action": "event", "name": " n ", "id": "",
                         "identifiers": {"id": " 7 "}, "anonymous_id": "a1"}),
            ),
        );
        let mut m = csv_mapper(&event_spec(None), &["id", "name", "anonymous_id"]);
        assert_eq!(op, ok(&mut m, &row(&[" 7 ", " n ", "a1"])));
        // What a kind does not hold is not sent.
        let op = ok(
            &mut r,
            &line(
                json!({"type": "person", "action": "delete", "identifiers": {"id": "7"},
                         "name": "n", "attributes": {"a": 1}}),
            ),
        );
        assert_eq!(op, Operation::Delete(id("7")));
    }
}
