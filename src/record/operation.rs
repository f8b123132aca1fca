//! The operation: what one record does in Customer.io, each kind holding only its own fields,
//! and its `/api/v2/batch` JSON (written and read back through one flat shape, [`Flat`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use ulid::Ulid;

use super::entity::{Entity, Ids, OBJECT_ID, OBJECT_TYPE_ID, ObjectId};
use super::event_id::Place;
use super::hash::Fnv128;
use super::order::Order;
use super::rules::{Checked, Fields, Source, Tied};
use super::tally::Collect;
use super::{Action, Device, IdKind, Identifier, Invalid};
use crate::track::MAX_OPERATION_BYTES;

/// One Customer.io operation. Reads back from its JSON through the same rules a row meets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Flat<'static>")]
pub enum Operation {
    /// Create or update a person with these attributes (`_update: true` among them updates
    /// only a person who exists).
    Identify {
        person: Identifier,
        attributes: Map<String, Value>,
    },
    Event(Event),
    Delete(Identifier),
    /// Suppress the person (and delete their data).
    Suppress(Identifier),
    Unsuppress(Identifier),
    AddDevice {
        person: Identifier,
        device: Device,
    },
    DeleteDevice {
        person: Identifier,
        token: String,
    },
    /// Merge `secondary` into `primary`, for good.
    Merge {
        primary: Identifier,
        secondary: Identifier,
    },
    /// Create or update an object with these attributes.
    IdentifyObject {
        object: ObjectId,
        attributes: Map<String, Value>,
    },
    DeleteObject(ObjectId),
    /// Relate a person to an object, the relationship holding these attributes.
    Relate {
        person: Identifier,
        object: ObjectId,
        attributes: Map<String, Value>,
    },
    Unrelate {
        person: Identifier,
        object: ObjectId,
    },
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

/// A key that is equal for two operations on the same person (or anonymous visitor), and the
/// same in every build.
/// An email is case-insensitive in Customer.io, so its case is folded: `User1@Example.com`
/// and `user1@example.com` are one person to the state (and its `--missing` sweep), the
/// order of a run's records and the shards. A lower-case email keys as it always did.
pub(super) fn person_key(who: &Who<impl AsRef<str>>) -> u64 {
    let mut h = Fnv128::default();
    match who {
        Who::Person(Identifier {
            kind: IdKind::Email,
            value,
        }) => {
            let value = value.as_ref();
            h.field(IdKind::Email.name().as_bytes());
            if value.is_ascii() {
                h.field_ascii_lowercase(value.as_bytes());
            } else {
                h.field(value.to_lowercase().as_bytes());
            }
        }
        _ => who.hash_into(&mut h),
    }
    h.top64()
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
            Operation::Identify { .. } | Operation::IdentifyObject { .. } => Action::Identify,
            Operation::Event(event) => event.kind.action(),
            Operation::Delete(_) | Operation::DeleteObject(_) => Action::Delete,
            Operation::Suppress(_) => Action::Suppress,
            Operation::Unsuppress(_) => Action::Unsuppress,
            Operation::AddDevice { .. } => Action::AddDevice,
            Operation::DeleteDevice { .. } => Action::DeleteDevice,
            Operation::Merge { .. } => Action::Merge,
            Operation::Relate { .. } => Action::AddRelationships,
            Operation::Unrelate { .. } => Action::DeleteRelationships,
        }
    }

    /// Whether it is about a person or an object.
    pub fn entity(&self) -> Entity {
        match self {
            Operation::IdentifyObject { .. } | Operation::DeleteObject(_) => Entity::Object,
            _ => Entity::Person,
        }
    }

    /// An event's id; None for the other kinds.
    pub fn event_id(&self) -> Option<&Ulid> {
        match self {
            Operation::Event(event) => Some(&event.id),
            _ => None,
        }
    }

    /// What the operation touches, and whether it keeps its place among the records that
    /// touch the same (see [`Order`]).
    pub fn order(&self) -> Order {
        let person = |p: &Identifier| person_key(&Who::Person(p.borrowed()));
        match self {
            Operation::Event(event) => Order::view(person_key(&event.who)),
            Operation::Identify { person: p, .. }
            | Operation::Delete(p)
            | Operation::Suppress(p)
            | Operation::Unsuppress(p)
            | Operation::AddDevice { person: p, .. }
            | Operation::DeleteDevice { person: p, .. } => Order::change(person(p)),
            Operation::Merge { primary, secondary } => {
                Order::change_both(person(primary), person(secondary))
            }
            Operation::IdentifyObject { object, .. } | Operation::DeleteObject(object) => {
                Order::change(object.key())
            }
            Operation::Relate {
                person: p, object, ..
            }
            | Operation::Unrelate { person: p, object } => {
                Order::change_both(person(p), object.key())
            }
        }
    }

    /// Whether the operation can go in a `/api/v2/batch` request. v2 has no anonymous events
    /// (every person operation names its person in `identifiers`): those go through
    /// `POST /api/v1/events`, one a request.
    pub fn batchable(&self) -> bool {
        !matches!(
            self,
            Operation::Event(Event {
                who: Who::Anonymous(_),
                ..
            })
        )
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

/// An operation as `/api/v2/batch` takes it and a failures-file line holds it: these keys in
/// this order, the absent ones left out. Borrowed to write, owned when read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Operation")]
pub(super) struct Flat<'a> {
    #[serde(rename = "type", default)]
    entity: Entity,
    action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identifiers: Option<Ids<'a>>,
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
    /// A person's or an object's attributes, or an event's data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    attributes: Cow<'a, Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<FlatDevice<'a>>,
    /// A merge's two people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary: Option<Cow<'a, Identifier>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secondary: Option<Cow<'a, Identifier>>,
    /// A person's relationship to an object (one a record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cio_relationships: Option<Vec<FlatRelationship<'a>>>,
}

/// A device as a v2 operation holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatDevice<'a> {
    token: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used: Option<i64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    attributes: Cow<'a, Map<String, Value>>,
}

/// A relationship as a v2 person operation holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatRelationship<'a> {
    identifiers: Ids<'a>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    relationship_attributes: Cow<'a, Map<String, Value>>,
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut flat = Flat {
            entity: self.entity(),
            action: self.action(),
            identifiers: None,
            anonymous_id: None,
            name: None,
            id: None,
            timestamp: None,
            attributes: Cow::Owned(Map::new()),
            device: None,
            primary: None,
            secondary: None,
            cio_relationships: None,
        };
        let person = |p| Some(Ids::Person(Cow::Borrowed(p)));
        let related = |object, attributes| {
            Some(vec![FlatRelationship {
                identifiers: Ids::Object(Cow::Borrowed(object)),
                relationship_attributes: attributes,
            }])
        };
        let mut id = [0; ulid::ULID_LEN];
        match self {
            Operation::Identify {
                person: p,
                attributes,
            } => {
                flat.identifiers = person(p);
                flat.attributes = Cow::Borrowed(attributes);
            }
            Operation::Event(event) => {
                match &event.who {
                    Who::Person(p) => flat.identifiers = person(p),
                    Who::Anonymous(a) => flat.anonymous_id = Some(Cow::Borrowed(a)),
                }
                flat.name = Some(Cow::Borrowed(&event.name));
                flat.id = Some(Cow::Borrowed(event.id.array_to_str(&mut id)));
                flat.timestamp = event.timestamp;
                flat.attributes = Cow::Borrowed(&event.data);
            }
            Operation::Delete(p) | Operation::Suppress(p) | Operation::Unsuppress(p) => {
                flat.identifiers = person(p);
            }
            Operation::AddDevice { person: p, device } => {
                flat.identifiers = person(p);
                flat.device = Some(FlatDevice {
                    token: Cow::Borrowed(&device.token),
                    platform: Some(Cow::Borrowed(device.platform.name())),
                    last_used: device.last_used,
                    attributes: Cow::Borrowed(&device.attributes),
                });
            }
            Operation::DeleteDevice { person: p, token } => {
                flat.identifiers = person(p);
                flat.device = Some(FlatDevice {
                    token: Cow::Borrowed(token),
                    platform: None,
                    last_used: None,
                    attributes: Cow::Owned(Map::new()),
                });
            }
            Operation::Merge { primary, secondary } => {
                flat.primary = Some(Cow::Borrowed(primary));
                flat.secondary = Some(Cow::Borrowed(secondary));
            }
            Operation::IdentifyObject { object, attributes } => {
                flat.identifiers = Some(Ids::Object(Cow::Borrowed(object)));
                flat.attributes = Cow::Borrowed(attributes);
            }
            Operation::DeleteObject(object) => {
                flat.identifiers = Some(Ids::Object(Cow::Borrowed(object)));
            }
            Operation::Relate {
                person: p,
                object,
                attributes,
            } => {
                flat.identifiers = person(p);
                flat.cio_relationships = related(object, Cow::Borrowed(attributes));
            }
            Operation::Unrelate { person: p, object } => {
                flat.identifiers = person(p);
                flat.cio_relationships = related(object, Cow::Owned(Map::new()));
            }
        }
        flat.serialize(serializer)
    }
}

/// A line read back: its action's rules decide what it may hold, as for a row.
impl TryFrom<Flat<'_>> for Operation {
    type Error = Invalid;

    fn try_from(line: Flat<'_>) -> Result<Operation, Invalid> {
        Operation::from_line(line, None)
    }
}

impl Operation {
    /// A line read back, whose row was at `place` (which an event without a time or an id
    /// derives its id from again).
    pub(super) fn from_line(
        line: Flat<'_>,
        place: Option<Place<'_>>,
    ) -> Result<Operation, Invalid> {
        let Flat {
            entity,
            action,
            identifiers,
            anonymous_id,
            name,
            id,
            timestamp,
            attributes,
            device,
            primary,
            secondary,
            cio_relationships,
        } = line;
        let relationship = match cio_relationships.as_deref() {
            None | Some([]) => None,
            Some([one]) => Some(one),
            Some(_) => {
                return Err(Invalid::at(
                    "cio_relationships",
                    "a line holds one relationship; put each of the others on a line of its own"
                        .into(),
                ));
            }
        };
        let object = match (&identifiers, relationship.map(|r| &r.identifiers)) {
            (Some(Ids::Object(object)), _) | (_, Some(Ids::Object(object))) => Some(&**object),
            _ => None,
        };
        fn person_of<'a>(
            column: &'a str,
            p: &'a Identifier,
        ) -> (&'a str, Identifier<Cow<'a, str>>) {
            let value = Cow::Borrowed(p.value.trim());
            (
                column,
                Identifier {
                    kind: p.kind,
                    value,
                },
            )
        }
        let attributes = match (action, &device, relationship) {
            (Action::AddDevice, Some(d), _) => d.attributes.clone().into_owned(),
            (Action::AddRelationships, _, Some(r)) => {
                r.relationship_attributes.clone().into_owned()
            }
            _ => attributes.into_owned(),
        };
        let fields = Fields {
            person: match &identifiers {
                Some(Ids::Person(p)) => Some(person_of(p.kind.name(), p)),
                _ => None,
            },
            anonymous: trimmed(&anonymous_id).map(Cow::Borrowed),
            name: trimmed(&name).map(|n| ("name", n)),
            event_id: trimmed(&id).map(|id| ("id", id)),
            timestamp,
            attributes: Collect::of(attributes),
            tied: Some(Box::new(Tied {
                object: object.map(|o| (OBJECT_ID, Cow::Borrowed(o.id.trim()))),
                object_type: object.map(|o| (OBJECT_TYPE_ID, Cow::Borrowed(o.type_id.trim()))),
                device: device.as_ref().map(|d| ("token", d.token.trim())),
                platform: device
                    .as_ref()
                    .and_then(|d| d.platform.as_deref())
                    .map(|p| ("platform", p)),
                last_used: device.as_ref().and_then(|d| d.last_used),
                primary: primary.as_deref().map(|p| person_of("primary", p)),
                secondary: secondary.as_deref().map(|p| person_of("secondary", p)),
            })),
        };
        Checked::new(action, entity, fields, &Source::Line)?.into_operation(place)
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
        let key = |op: &Operation| op.order().keys()[0];
        let identify = Operation::Identify {
            person: ident(IdKind::Id, "42"),
            attributes: Map::new(),
        };
        assert_eq!(key(&identify), 0x6049_b89b_11cb_affa);
        let event = Operation::Event(Event {
            kind: EventKind::Event,
            who: Who::Person(ident(IdKind::Id, "42")),
            name: "e".into(),
            id: Ulid::nil(),
            timestamp: None,
            data: Map::new(),
        });
        assert_eq!(key(&event), key(&identify));
        assert_ne!(
            key(&Operation::Delete(ident(IdKind::Email, "42"))),
            key(&identify)
        );
        // An email's case is Customer.io's to ignore; an id's is not.
        let delete = |kind, value: &str| key(&Operation::Delete(ident(kind, value)));
        for email in ["User1@Example.com", "USER1@EXAMPLE.COM"] {
            assert_eq!(
                delete(IdKind::Email, email),
                delete(IdKind::Email, "user1@example.com")
            );
        }
        assert_eq!(
            delete(IdKind::Email, "Zoë@Example.com"),
            delete(IdKind::Email, "zoë@example.com")
        );
        assert_ne!(delete(IdKind::Id, "User1"), delete(IdKind::Id, "user1"));
        let anonymous = Operation::Event(Event {
            who: Who::Anonymous("42".into()),
            ..match event {
                Operation::Event(e) => e,
                _ => unreachable!(),
            }
        });
        assert_ne!(key(&anonymous), key(&identify));
    }

    #[test]
    fn each_kind_orders_by_what_it_touches() {
        let p = |v: &str| ident(IdKind::Id, v);
        let acme = ObjectId {
            type_id: "1".to_owned(),
            id: "acme".to_owned(),
        };
        let person = Operation::Delete(p("1")).order().keys()[0];
        let other = Operation::Delete(p("2")).order().keys()[0];
        let object = Operation::DeleteObject(acme.clone()).order();
        assert_eq!((object.keys(), object.change), (&[acme.key()][..], true));
        let merge = Operation::Merge {
            primary: p("1"),
            secondary: p("2"),
        };
        assert_eq!(merge.order().keys(), [person, other]);
        let relate = Operation::Unrelate {
            person: p("1"),
            object: acme.clone(),
        };
        assert_eq!(relate.order().keys(), [person, acme.key()]);
        let device = Operation::DeleteDevice {
            person: p("1"),
            token: "t".into(),
        };
        assert_eq!(device.order(), Order::change(person));
    }
}
