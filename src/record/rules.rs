//! Each action's rules, written once: what a record must hold to become that action's
//! operation, whether it comes from a row or from a failures-file line.
//!
//! Limits come from Customer.io's Track API documentation (see `crate::track`). A record that
//! breaks one is refused here, so it lands in the failures file with a reason instead of
//! failing a whole batch on the server.

use std::borrow::Cow;

use ulid::Ulid;

use super::entity::{Entity, ObjectId, Platform};
use super::event_id::Place;
use super::operation::{Event, EventKind, Operation, Who};
use super::tally::{Attributes, Collect, UPDATE_ONLY};
use super::value::{self, str_bound, thousands};
use super::{Action, Device, IdKind, Identifier, Invalid, event_id, ties};
use crate::track::{MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_BYTES};

/// A record's pieces as its row or line gives them, before the rules. Text is trimmed; it may
/// be empty.
#[derive(Default)]
pub(super) struct Fields<'a, A> {
    /// The identifier's column, and the identifier.
    pub person: Option<(&'a str, Identifier<Cow<'a, str>>)>,
    pub anonymous: Option<Cow<'a, str>>,
    /// Column and value.
    pub name: Option<(&'a str, &'a str)>,
    pub event_id: Option<(&'a str, &'a str)>,
    pub timestamp: Option<i64>,
    /// A person's, an object's, a device's or a relationship's attributes, or event data.
    pub attributes: A,
    /// What only devices, merges, objects and relationships hold; boxed, so the many rows
    /// of people and events do not carry it about (a dry run paid a tenth for that).
    pub tied: Option<Box<Tied<'a>>>,
}

impl<'a, A> Fields<'a, A> {
    pub fn tied(&mut self) -> &mut Tied<'a> {
        self.tied.get_or_insert_default()
    }
}

/// The fields of devices, merges, objects and relationships (column and value each).
#[derive(Default)]
pub(super) struct Tied<'a> {
    /// An object's id and its type.
    pub object: Option<(&'a str, Cow<'a, str>)>,
    pub object_type: Option<(&'a str, Cow<'a, str>)>,
    /// A device's token and platform, and when it was last used.
    pub device: Option<(&'a str, &'a str)>,
    pub platform: Option<(&'a str, &'a str)>,
    pub last_used: Option<i64>,
    /// A merge's two people.
    pub primary: Option<(&'a str, Identifier<Cow<'a, str>>)>,
    pub secondary: Option<(&'a str, Identifier<Cow<'a, str>>)>,
}

/// Where a record comes from, for what the rules say it lacks.
pub(super) enum Source<'a> {
    /// A row of the input, mapped with these options.
    Row {
        id_column: Option<&'a str>,
        event_name: Option<&'a str>,
        /// `--object-type`, for rows without an object_type_id.
        object_type: Option<&'a str>,
        /// `--only-existing`: an identify updates only a person who exists.
        only_existing: bool,
    },
    /// An operation from a failures file.
    Line,
}

impl<'a> Source<'a> {
    fn no_identifier(&self, action: Action) -> Invalid {
        match self {
            Source::Row {
                id_column: Some(col),
                ..
            } => Invalid::at(
                col,
                format!("column {col:?} is empty; every row needs an identifier"),
            ),
            Source::Row { .. } if action.event_kind().is_some() => Invalid::row(format!(
                "no identifier: the row needs a non-empty {} or anonymous_id \
                 (or --id-column NAME)",
                IdKind::listed(", ")
            )),
            Source::Row { .. } => Invalid::row(format!(
                "no identifier: the row needs a non-empty {} (or --id-column NAME)",
                IdKind::listed(" or ")
            )),
            Source::Line => Invalid::row(
                "no identifier: the operation has no identifiers (or anonymous_id for an event)"
                    .into(),
            ),
        }
    }

    /// The name of an event that has none of its own.
    fn event_name(&self) -> Result<&'a str, Invalid> {
        match self {
            Source::Row {
                event_name: Some(name),
                ..
            } => Ok(name),
            Source::Row { .. } => Err(Invalid::row(
                "no event name: add a name column or pass --event-name".into(),
            )),
            Source::Line => Err(Invalid::at(
                "name",
                "no event name: the operation has no name".into(),
            )),
        }
    }

    /// A row's timestamp was converted from its cell, which checked it; a line's is a bare
    /// number.
    pub fn timestamp(&self, key: &str, timestamp: Option<i64>) -> Result<Option<i64>, Invalid> {
        if let (Source::Line, Some(ts)) = (self, timestamp) {
            value::json_seconds(key, &ts.into()).map_err(|m| Invalid::at(key, m))?;
        }
        Ok(timestamp)
    }

    /// What a record lacks, told as a row's columns or a line's keys.
    pub fn lacks(&self, row: &str, line: &str) -> Invalid {
        match self {
            Source::Row { .. } => Invalid::row(row.to_owned()),
            Source::Line => Invalid::row(line.to_owned()),
        }
    }

    /// `--object-type`, which a row falls back on.
    pub fn object_type(&self) -> Option<&'a str> {
        match self {
            Source::Row { object_type, .. } => *object_type,
            Source::Line => None,
        }
    }

    fn only_existing(&self) -> bool {
        matches!(
            self,
            Source::Row {
                only_existing: true,
                ..
            }
        )
    }
}

/// A record that passed its action's rules, borrowing from its row: a dry run measures it, a
/// send builds the [`Operation`] from it.
pub(super) enum Checked<'a, A> {
    Identify {
        person: Identifier<Cow<'a, str>>,
        attributes: A,
        only_existing: bool,
    },
    Event {
        kind: EventKind,
        who: Who<Cow<'a, str>>,
        name: &'a str,
        /// A given id, as its bytes; None derives one (see `event_id`). Not a `Ulid`: its
        /// u128 aligned the whole enum to 16 bytes, and moving that cost the dry run 4%.
        id: Option<[u8; 16]>,
        timestamp: Option<i64>,
        data: A,
    },
    /// A kind that holds its person only, and how to build it.
    Person(fn(Identifier) -> Operation, Identifier<Cow<'a, str>>),
    AddDevice {
        person: Identifier<Cow<'a, str>>,
        token: &'a str,
        platform: Platform,
        last_used: Option<i64>,
        attributes: A,
    },
    DeleteDevice {
        person: Identifier<Cow<'a, str>>,
        token: &'a str,
    },
    Merge {
        primary: Identifier<Cow<'a, str>>,
        secondary: Identifier<Cow<'a, str>>,
    },
    /// An object's identify (with its attributes) or delete (without).
    Object {
        object: ObjectId<Cow<'a, str>>,
        attributes: Option<A>,
    },
    /// A relationship added (with its attributes) or deleted (without).
    Relationship {
        person: Identifier<Cow<'a, str>>,
        object: ObjectId<Cow<'a, str>>,
        attributes: Option<A>,
    },
}

/// The most an operation's JSON takes besides its identifier, event name and attributes: the
/// keys, the punctuation, the longest action, a ULID and an i64 timestamp (about 170 bytes).
const OPERATION_FRAME_BOUND: usize = 200;

impl<'a, A: Attributes> Checked<'a, A> {
    /// The rules of `action` on `entity`, the one place they are written.
    #[inline(always)]
    pub fn new(
        action: Action,
        entity: Entity,
        fields: Fields<'a, A>,
        source: &Source<'a>,
    ) -> Result<Checked<'a, A>, Invalid> {
        if entity == Entity::Object {
            return ties::object(action, fields, source);
        }
        Ok(match action {
            Action::Identify => {
                let person = person(fields.person, action, source)?;
                fields.attributes.tally().check_person()?;
                Checked::Identify {
                    person,
                    attributes: fields.attributes,
                    only_existing: source.only_existing(),
                }
            }
            Action::Event => event(EventKind::Event, fields, source)?,
            Action::Page => event(EventKind::Page, fields, source)?,
            Action::Screen => event(EventKind::Screen, fields, source)?,
            Action::Delete => {
                Checked::Person(Operation::Delete, person(fields.person, action, source)?)
            }
            Action::Suppress => {
                Checked::Person(Operation::Suppress, person(fields.person, action, source)?)
            }
            Action::Unsuppress => Checked::Person(
                Operation::Unsuppress,
                person(fields.person, action, source)?,
            ),
            Action::AddDevice | Action::DeleteDevice => ties::device(action, fields, source)?,
            Action::Merge => ties::merge(fields, source)?,
            Action::AddRelationships | Action::DeleteRelationships => {
                ties::relationship(action, fields, source)?
            }
        })
    }

    /// At least the operation's length as JSON; None when only building it can tell whether it
    /// is valid (event data that may be over its limit is measured exactly).
    pub fn json_bound(&self) -> Option<usize> {
        let bound = |a: &A| a.tally().object_bound();
        let rest = match self {
            Checked::Identify {
                person, attributes, ..
            } => str_bound(&person.value) + bound(attributes),
            Checked::Event {
                who, name, data, ..
            } => {
                let data = bound(data);
                if data > MAX_EVENT_DATA_BYTES {
                    return None;
                }
                str_bound(who.parts().1) + str_bound(name) + data
            }
            Checked::Person(_, person) => str_bound(&person.value),
            Checked::AddDevice {
                person,
                token,
                attributes,
                ..
            } => str_bound(&person.value) + str_bound(token) + bound(attributes),
            Checked::DeleteDevice { person, token } => str_bound(&person.value) + str_bound(token),
            Checked::Merge { primary, secondary } => {
                str_bound(&primary.value) + str_bound(&secondary.value)
            }
            Checked::Object { object, attributes } => {
                str_bound(&object.type_id)
                    + str_bound(&object.id)
                    + attributes.as_ref().map_or(0, bound)
            }
            Checked::Relationship {
                person,
                object,
                attributes,
            } => {
                str_bound(&person.value)
                    + str_bound(&object.type_id)
                    + str_bound(&object.id)
                    + attributes.as_ref().map_or(0, bound)
            }
        };
        Some(OPERATION_FRAME_BOUND + rest)
    }
}

impl Checked<'_, Collect> {
    /// The operation; an event's data is held to its limit here, where it is serialised.
    /// `place` is where the row is, which tells apart events without a time (see `event_id`).
    pub fn into_operation(self, place: Option<Place<'_>>) -> Result<Operation, Invalid> {
        Ok(match self {
            Checked::Identify {
                person,
                attributes,
                only_existing,
            } => {
                let mut attributes = attributes.map;
                // Not an attribute but Customer.io's switch (so not counted as one).
                if only_existing {
                    attributes.insert(UPDATE_ONLY.into(), true.into());
                }
                Operation::Identify {
                    person: person.into_owned(),
                    attributes,
                }
            }
            Checked::Event {
                kind,
                who,
                name,
                id,
                timestamp,
                data,
            } => {
                let given = id.map(Ulid::from_bytes);
                let id = event_id::settle(kind, &who, name, timestamp, &data.map, given, place)?;
                Operation::Event(Event {
                    kind,
                    who: who.into_owned(),
                    name: name.to_owned(),
                    id,
                    timestamp,
                    data: data.map,
                })
            }
            Checked::Person(build, person) => build(person.into_owned()),
            Checked::AddDevice {
                person,
                token,
                platform,
                last_used,
                attributes,
            } => Operation::AddDevice {
                person: person.into_owned(),
                device: Device {
                    token: token.to_owned(),
                    platform,
                    last_used,
                    attributes: attributes.map,
                },
            },
            Checked::DeleteDevice { person, token } => Operation::DeleteDevice {
                person: person.into_owned(),
                token: token.to_owned(),
            },
            Checked::Merge { primary, secondary } => Operation::Merge {
                primary: primary.into_owned(),
                secondary: secondary.into_owned(),
            },
            Checked::Object {
                object,
                attributes: Some(attributes),
            } => Operation::IdentifyObject {
                object: object.into_owned(),
                attributes: attributes.map,
            },
            Checked::Object {
                object,
                attributes: None,
            } => Operation::DeleteObject(object.into_owned()),
            Checked::Relationship {
                person,
                object,
                attributes: Some(attributes),
            } => Operation::Relate {
                person: person.into_owned(),
                object: object.into_owned(),
                attributes: attributes.map,
            },
            Checked::Relationship {
                person,
                object,
                attributes: None,
            } => Operation::Unrelate {
                person: person.into_owned(),
                object: object.into_owned(),
            },
        })
    }
}

/// The rules of an event, a page view or a screen view.
#[inline(always)]
fn event<'a, A: Attributes>(
    kind: EventKind,
    fields: Fields<'a, A>,
    source: &Source<'a>,
) -> Result<Checked<'a, A>, Invalid> {
    let who = who(fields.person, fields.anonymous, source)?;
    let name = match fields.name.filter(|(_, n)| !n.is_empty()) {
        Some((column, name)) => check_event_name(column, name)?,
        None => source.event_name()?,
    };
    let timestamp = source.timestamp("timestamp", fields.timestamp)?;
    let id = fields
        .event_id
        .filter(|(_, id)| !id.is_empty())
        .map(|(_, id)| event_id::parse(id).to_bytes());
    // Event data is held to its documented total only (see `into_operation`): the
    // per-attribute limits (name, value size, count) are documented for people, not for
    // event data.
    Ok(Checked::Event {
        kind,
        who,
        name,
        id,
        timestamp,
        data: fields.attributes,
    })
}

/// The person a record is about.
#[inline(always)]
pub(super) fn person<'a>(
    found: Option<(&'a str, Identifier<Cow<'a, str>>)>,
    action: Action,
    source: &Source<'a>,
) -> Result<Identifier<Cow<'a, str>>, Invalid> {
    let Some((column, Identifier { kind, value })) = found else {
        return Err(source.no_identifier(action));
    };
    let value = cut(value, |text| kind.cut(column, text))?;
    Ok(Identifier { kind, value })
}

/// `text` as `check` cuts it down (trimmed, say), still borrowed if it was.
pub(super) fn cut<'a>(
    text: Cow<'a, str>,
    check: impl for<'t> Fn(&'t str) -> Result<&'t str, Invalid>,
) -> Result<Cow<'a, str>, Invalid> {
    Ok(match text {
        Cow::Borrowed(text) => Cow::Borrowed(check(text)?),
        Cow::Owned(text) => Cow::Owned(check(&text)?.to_owned()),
    })
}

/// Whom an event is about: it is anonymous when it has an anonymous_id and no person
/// identifier.
#[inline(always)]
fn who<'a>(
    person_found: Option<(&'a str, Identifier<Cow<'a, str>>)>,
    anonymous: Option<Cow<'a, str>>,
    source: &Source<'a>,
) -> Result<Who<Cow<'a, str>>, Invalid> {
    let person_missing = person_found
        .as_ref()
        .is_none_or(|(_, p)| p.value.is_empty());
    match anonymous.filter(|a| !a.is_empty()) {
        Some(id) if person_missing => Ok(Who::Anonymous(id)),
        _ => person(person_found, Action::Event, source).map(Who::Person),
    }
}

fn check_event_name<'a>(column: &str, name: &'a str) -> Result<&'a str, Invalid> {
    if name.len() <= MAX_EVENT_NAME_BYTES {
        return Ok(name);
    }
    Err(Invalid::at(
        column,
        format!(
            "column {column:?}: event name is {} bytes; Customer.io allows at most \
             {MAX_EVENT_NAME_BYTES}",
            thousands(name.len())
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, ValueType};
    use crate::source::RowData;
    use serde_json::json;

    #[test]
    fn event_takes_name_timestamp_and_data() {
        let mut m = csv_mapper(
            &event_spec(Some("flag")),
            &["email", "name", "timestamp", "plan", "created_at"],
        );
        let op = ok(
            &mut m,
            &row(&[
                "a@x.io",
                " bought ",
                "2024-03-05T10:00:00Z",
                "pro",
                "2024-03-05",
            ]),
        );
        assert_eq!(op.action(), Action::Event);
        assert_eq!(person(&op), Some(&email("a@x.io")));
        assert_eq!(Some(event(&op).name.as_str()), Some("bought"));
        assert_eq!(event(&op).timestamp, Some(1709632800));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"plan": "pro", "created_at": 1709596800}))
        );
        // An empty name cell falls back to the flag; no timestamp is no timestamp.
        let op = ok(&mut m, &row(&["a@x.io", "", "", "", ""]));
        assert_eq!(Some(event(&op).name.as_str()), Some("flag"));
        assert_eq!(event(&op).timestamp, None);
        assert!(attributes(&op).unwrap().is_empty());

        let e = err(&mut m, &row(&["a@x.io", "", "1709632800000", "", ""]));
        assert_eq!(e.column.as_deref(), Some("timestamp"));
    }

    #[test]
    fn event_name_is_required_and_at_most_100_bytes() {
        let e = csv_error(&event_spec(None), &["id", "plan"]);
        assert_eq!(e, "no event name: add a name column or pass --event-name");
        let e = csv_error(&event_spec(Some(&"e".repeat(101))), &["id"]);
        assert_eq!(
            e,
            "--event-name is 101 bytes; Customer.io allows at most 100"
        );
        csv_mapper(&event_spec(Some(&"e".repeat(100))), &["id"]);

        let mut m = csv_mapper(&event_spec(None), &["id", "name"]);
        let e = err(&mut m, &row(&["1", " "]));
        assert_eq!(e.column, None);
        assert_eq!(
            e.message,
            "no event name: add a name column or pass --event-name"
        );
        ok(&mut m, &row(&["1", &"e".repeat(100)]));
        let e = err(&mut m, &row(&["1", &"e".repeat(101)]));
        assert_eq!(e.column.as_deref(), Some("name"));
        assert_eq!(
            e.message,
            r#"column "name": event name is 101 bytes; Customer.io allows at most 100"#
        );

        let mut m = json_mapper(&event_spec(None));
        let e = err(&mut m, &obj(json!({"id": "1"})));
        assert!(e.message.starts_with("no event name"));
        let op = ok(&mut m, &obj(json!({"id": "1", "name": "n"})));
        assert_eq!(Some(event(&op).name.as_str()), Some("n"));
        let e = err(&mut m, &obj(json!({"id": "1", "name": 5})));
        assert_eq!(e.column.as_deref(), Some("name"));
    }

    #[test]
    fn anonymous_events() {
        let mut m = csv_mapper(&event_spec(Some("viewed")), &["id", "anonymous_id", "page"]);
        let op = ok(&mut m, &row(&["", " anon-1 ", "/"]));
        assert_eq!(person(&op), None);
        assert_eq!(anonymous_id(&op), Some("anon-1"));
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"page": "/"})));
        // A person identifier wins, and anonymous_id is not event data.
        let op = ok(&mut m, &row(&["7", "anon-1", "/"]));
        assert_eq!(person(&op), Some(&id("7")));
        assert_eq!(anonymous_id(&op), None);
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"page": "/"})));
        let e = err(&mut m, &row(&["", "", "/"]));
        assert_eq!(e.column.as_deref(), Some("id"));

        // A file of anonymous events only.
        let mut m = csv_mapper(&event_spec(Some("viewed")), &["anonymous_id", "page"]);
        ok(&mut m, &row(&["a1", "/"]));
        let e = err(&mut m, &row(&["", "/"]));
        assert!(e.message.starts_with("no identifier"), "{}", e.message);
        // ...which does not work for identify.
        let e = csv_error(&spec(Action::Identify), &["anonymous_id"]);
        assert!(e.starts_with("no identifier column"), "{e}");

        let mut m = json_mapper(&event_spec(Some("viewed")));
        let op = ok(&mut m, &obj(json!({"anonymous_id": "a1"})));
        assert_eq!(anonymous_id(&op), Some("a1"));
    }

    #[test]
    fn page_and_screen_views_map_like_events_with_ids_of_their_own() {
        let columns = ["id", "anonymous_id", "name", "timestamp", "referrer"];
        let cells = ["7", "", "https://example.com/pricing", "1709632800", "ad"];
        let mut ids = Vec::new();
        for action in [Action::Event, Action::Page, Action::Screen] {
            let mut m = csv_mapper(&spec(action), &columns);
            let op = ok(&mut m, &row(&cells));
            assert_eq!(op.action(), action);
            assert_eq!(person(&op), Some(&id("7")));
            assert_eq!(event(&op).name, "https://example.com/pricing");
            assert_eq!(*attributes(&op).unwrap(), attrs(json!({"referrer": "ad"})));
            ids.push(event_id(&op));
            let op = ok(&mut m, &row(&["", "a1", "Home", "", ""]));
            assert_eq!(anonymous_id(&op), Some("a1"));
            // A failures-file line of it reads back as the same view.
            let mut line = attrs(serde_json::to_value(&op).unwrap());
            assert_eq!(line["action"], json!(serde_json::to_value(action).unwrap()));
            line.insert("_error".into(), json!("x"));
            let mut r = json_mapper(&spec(Action::Identify));
            assert_eq!(ok(&mut r, &RowData::Json(line)), op);
            let e = csv_error(&spec(action), &["id", "referrer"]);
            assert_eq!(e, "no event name: add a name column or pass --event-name");
        }
        // Alike but for their kind, a view and an event are not deduplicated as one.
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "{ids:?}");
    }

    #[test]
    fn delete_and_suppress_need_only_the_identifier() {
        for action in [Action::Delete, Action::Suppress, Action::Unsuppress] {
            let s = typed(action, &[("age", ValueType::Number)]);
            let mut m = csv_mapper(&s, &["email", "age", "", "age"]);
            let op = ok(&mut m, &row(&["a@x.io", "abc", "x", "1"]));
            assert_eq!(op.action(), action);
            assert_eq!(person(&op), Some(&email("a@x.io")));
            assert_eq!(attributes(&op), None);
            let mut m = json_mapper(&s);
            let op = ok(&mut m, &obj(json!({"id": 5, "age": {"x": 1}, "name": 1})));
            assert_eq!(person(&op), Some(&id("5")));
            assert_eq!(attributes(&op), None);
        }
    }
}
