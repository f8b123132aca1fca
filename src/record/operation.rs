//! The operation: what one record does in Customer.io, each kind holding only its own fields,
//! and its `/api/v2/batch` JSON (written and read back through one flat shape, [`Flat`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use ulid::Ulid;

use super::hash::Fnv128;
use super::order::Order;
use super::rules::{Checked, Fields, Source};
use super::tally::Collect;
use super::{Action, Identifier, Invalid};
use crate::track::MAX_OPERATION_BYTES;

/// One Customer.io operation. Reads back from its JSON through the same rules a row meets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Flat<'static>")]
pub enum Operation {
    /// Create or update a person with these attributes.
    Identify {
        person: Identifier,
        attributes: Map<String, Value>,
    },
    Event(Event),
    Delete(Identifier),
    /// Suppress the person (and delete their data).
    Suppress(Identifier),
    Unsuppress(Identifier),
}

/// An event, a page view or a screen view, for a person or anonymous.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub who: Who,
    /// The event's name; a page's URL or name; a screen's name.
    pub name: String,
    /// Customer.io's deduplication key: given, or derived from the event.
    pub id: Ulid,
    /// Event time, Unix seconds.
    pub timestamp: Option<i64>,
    pub data: Map<String, Value>,
}

/// What an [`Event`] tracks: Customer.io takes all three the same way, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Event,
    Page,
    Screen,
}

impl EventKind {
    pub fn action(self) -> Action {
        match self {
            EventKind::Event => Action::Event,
            EventKind::Page => Action::Page,
            EventKind::Screen => Action::Screen,
        }
    }

    /// The `type` a v1 event body gives it; an event needs none.
    pub fn v1_type(self) -> Option<&'static str> {
        match self {
            EventKind::Event => None,
            EventKind::Page => Some("page"),
            EventKind::Screen => Some("screen"),
        }
    }
}

/// The key an anonymous event names its visitor by, in a row as in the API.
pub(super) const ANONYMOUS_ID: &str = "anonymous_id";

/// Whom an event is about: a person, or an anonymous visitor by `anonymous_id`. Owned in an
/// [`Event`]; borrowed from a row being checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Who<S = String> {
    Person(Identifier<S>),
    Anonymous(S),
}

impl<S: AsRef<str>> Who<S> {
    /// What names whom (`id`, `email`, `cio_id`, `anonymous_id`) and its value.
    pub(super) fn parts(&self) -> (&'static str, &str) {
        match self {
            Who::Person(person) => (person.kind.name(), person.value.as_ref()),
            Who::Anonymous(id) => (ANONYMOUS_ID, id.as_ref()),
        }
    }

    /// Feeds whom to `h`, so one person hashes the same in every build, and an anonymous id
    /// never like a person's.
    pub(super) fn hash_into(&self, h: &mut Fnv128) {
        let (label, value) = self.parts();
        h.field(label.as_bytes());
        h.field(value.as_bytes());
    }
}

impl Who<Cow<'_, str>> {
    pub(super) fn into_owned(self) -> Who {
        match self {
            Who::Person(person) => Who::Person(person.into_owned()),
            Who::Anonymous(id) => Who::Anonymous(id.into_owned()),
        }
    }
}

impl Operation {
    pub fn action(&self) -> Action {
        match self {
            Operation::Identify { .. } => Action::Identify,
            Operation::Event(event) => event.kind.action(),
            Operation::Delete(_) => Action::Delete,
            Operation::Suppress(_) => Action::Suppress,
            Operation::Unsuppress(_) => Action::Unsuppress,
        }
    }

    /// Whom the operation is about.
    fn who(&self) -> Who<&str> {
        fn person(p: &Identifier) -> Who<&str> {
            Who::Person(Identifier {
                kind: p.kind,
                value: &p.value,
            })
        }
        match self {
            Operation::Identify { person: p, .. }
            | Operation::Delete(p)
            | Operation::Suppress(p)
            | Operation::Unsuppress(p) => person(p),
            Operation::Event(event) => match &event.who {
                Who::Person(p) => person(p),
                Who::Anonymous(id) => Who::Anonymous(id),
            },
        }
    }

    /// An event's id; None for the other kinds.
    pub fn event_id(&self) -> Option<&Ulid> {
        match self {
            Operation::Event(event) => Some(&event.id),
            _ => None,
        }
    }

    /// A key that is equal for two operations on the same person, and the same in every
    /// build.
    pub fn person_key(&self) -> u64 {
        let mut h = Fnv128::default();
        self.who().hash_into(&mut h);
        h.top64()
    }

    /// What the operation touches, and whether it keeps its place among the records that
    /// touch the same (see [`Order`]).
    pub fn order(&self) -> Order {
        let key = self.person_key();
        match self {
            Operation::Event(_) => Order::view(key),
            _ => Order::change(key),
        }
    }

    /// Whether the operation can go in a `/api/v2/batch` request. v2 has no anonymous events
    /// (every person operation names its person in `identifiers`): those go through
    /// `POST /api/v1/events`, one a request.
    pub fn batchable(&self) -> bool {
        !matches!(self.who(), Who::Anonymous(_))
    }

    /// The operation as one element of a `/api/v2/batch` body, or Invalid when it is over
    /// [`MAX_OPERATION_BYTES`]; empty for one that is not [`batchable`](Self::batchable),
    /// which no batch carries.
    pub fn encode_for_batch(&self) -> Result<Vec<u8>, Invalid> {
        if !self.batchable() {
            return Ok(Vec::new());
        }
        let bytes = serde_json::to_vec(self).map_err(|e| Invalid {
            column: None,
            message: format!("cannot encode the operation: {e}"),
        })?;
        if bytes.len() > MAX_OPERATION_BYTES {
            return Err(Invalid {
                column: None,
                message: format!(
                    "the operation is {} bytes; a batch takes at most {MAX_OPERATION_BYTES} bytes \
                     an operation (send it alone with --batch 1)",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}

/// The only entity type this tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EntityType {
    #[default]
    Person,
}

/// An operation as `/api/v2/batch` takes it and a failures-file line holds it: these keys in
/// this order, the absent ones left out. Borrowed to write, owned when read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Operation")]
pub(super) struct Flat<'a> {
    #[serde(rename = "type", default)]
    entity: EntityType,
    action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identifiers: Option<Cow<'a, Identifier>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anonymous_id: Option<Cow<'a, str>>,
    /// Event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    /// Event id (a ULID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    /// A person's attributes, or an event's data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    attributes: Cow<'a, Map<String, Value>>,
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut flat = Flat {
            entity: EntityType::Person,
            action: self.action(),
            identifiers: None,
            anonymous_id: None,
            name: None,
            id: None,
            timestamp: None,
            attributes: Cow::Owned(Map::new()),
        };
        let mut id = [0; ulid::ULID_LEN];
        match self {
            Operation::Identify { person, attributes } => {
                flat.identifiers = Some(Cow::Borrowed(person));
                flat.attributes = Cow::Borrowed(attributes);
            }
            Operation::Event(event) => {
                match &event.who {
                    Who::Person(person) => flat.identifiers = Some(Cow::Borrowed(person)),
                    Who::Anonymous(a) => flat.anonymous_id = Some(Cow::Borrowed(a)),
                }
                flat.name = Some(Cow::Borrowed(&event.name));
                flat.id = Some(Cow::Borrowed(event.id.array_to_str(&mut id)));
                flat.timestamp = event.timestamp;
                flat.attributes = Cow::Borrowed(&event.data);
            }
            Operation::Delete(person)
            | Operation::Suppress(person)
            | Operation::Unsuppress(person) => {
                flat.identifiers = Some(Cow::Borrowed(person));
            }
        }
        flat.serialize(serializer)
    }
}

/// A line read back: its action's rules decide what it may hold, as for a row.
impl TryFrom<Flat<'_>> for Operation {
    type Error = Invalid;

    fn try_from(line: Flat<'_>) -> Result<Operation, Invalid> {
        let attributes = line.attributes.into_owned();
        let person = line.identifiers.as_deref().map(|p| {
            let value = Cow::Borrowed(p.value.trim());
            (
                p.kind.name(),
                Identifier {
                    kind: p.kind,
                    value,
                },
            )
        });
        let fields = Fields {
            person,
            anonymous: trimmed(&line.anonymous_id).map(Cow::Borrowed),
            name: trimmed(&line.name).map(|n| ("name", n)),
            event_id: trimmed(&line.id).map(|id| ("id", id)),
            timestamp: line.timestamp,
            attributes: Collect::of(attributes),
        };
        Checked::new(line.action, fields, &Source::Line)?.into_operation()
    }
}

fn trimmed<'a>(text: &'a Option<Cow<'_, str>>) -> Option<&'a str> {
    text.as_deref().map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::super::IdKind;
    use super::super::testkit::{anonymous_event, ident};
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_as_a_v2_batch_operation_and_back() {
        let mut attributes = Map::new();
        attributes.insert("plan".into(), json!("pro"));
        let op = Operation::Identify {
            person: ident(IdKind::Id, "42"),
            attributes,
        };
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(
            v,
            json!({"type": "person", "action": "identify", "identifiers": {"id": "42"},
                   "attributes": {"plan": "pro"}})
        );
        assert_eq!(serde_json::from_value::<Operation>(v).unwrap(), op);
    }

    #[test]
    fn an_event_prints_its_keys_in_batch_order_and_reads_back() {
        let op = anonymous_event("a1");
        let text = serde_json::to_string(&op).unwrap();
        assert_eq!(
            text,
            r#"{"type":"person","action":"event","anonymous_id":"a1","name":"viewed","id":"01HR6Z8Q9T3V5X7Z9B1D3F5H7K","timestamp":1700000000}"#
        );
        assert_eq!(serde_json::from_str::<Operation>(&text).unwrap(), op);
        let e = serde_json::from_str::<Operation>(r#"{"action":"event","name":"n"}"#);
        assert!(e.unwrap_err().to_string().starts_with("no identifier"));
    }

    #[test]
    fn person_key_is_pinned_and_equal_for_one_person() {
        // If this changes, a person's operations may go to another shard than before.
        let identify = Operation::Identify {
            person: ident(IdKind::Id, "42"),
            attributes: Map::new(),
        };
        assert_eq!(identify.person_key(), 0x6049_b89b_11cb_affa);
        let event = Operation::Event(Event {
            kind: EventKind::Event,
            who: Who::Person(ident(IdKind::Id, "42")),
            name: "e".into(),
            id: Ulid::nil(),
            timestamp: None,
            data: Map::new(),
        });
        assert_eq!(event.person_key(), identify.person_key());
        assert_ne!(
            Operation::Delete(ident(IdKind::Email, "42")).person_key(),
            identify.person_key()
        );
        let anonymous = Operation::Event(Event {
            who: Who::Anonymous("42".into()),
            ..match event {
                Operation::Event(e) => e,
                _ => unreachable!(),
            }
        });
        assert_ne!(anonymous.person_key(), identify.person_key());
    }
}
