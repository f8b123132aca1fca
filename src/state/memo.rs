//! What an operation means to the state: compared by digest (an identify), remembered by its
//! id (an event, a page or screen view), forgotten (a delete, a suppression), moved (a merge),
//! or none of these (always sent).

use serde_json::json;

use crate::record::{Entity, Operation};

/// The kinds of entity a state remembers, as the `kind` column spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Person,
    Object,
    Event,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Person, Kind::Object, Kind::Event];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Object => "object",
            Kind::Event => "event",
        }
    }
}

/// What the state does with one operation: looked up as it is read, recorded once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memo {
    /// Unchanged when the last accepted operation of `key` had this digest.
    Compare { kind: Kind, key: u64, digest: u128 },
    /// An event: sent once (Customer.io drops an id it has seen).
    Event { key: u64 },
    /// Deleted or suppressed: what the state held is forgotten once accepted.
    Forget { kind: Kind, key: u64 },
    /// The secondary's state becomes the primary's.
    Merge { primary: u64, secondary: u64 },
}

impl Memo {
    /// The key [`Memo::of`] compares for `op` (an identify's), without its digest: what a
    /// resume marks seen for a record it reads past.
    pub fn compared_key(op: &Operation) -> Option<u64> {
        match op {
            Operation::Identify { .. } | Operation::IdentifyObject { .. } => {
                Some(op.order().keys()[0])
            }
            _ => None,
        }
    }

    /// What the state does with `op`; None for the kinds it does not remember (unsuppress,
    /// devices, relationships), which are always sent. `encoded` is its batch encoding, if
    /// made.
    pub fn of(op: &Operation, encoded: &[u8]) -> Option<Memo> {
        let key = op.order().keys()[0];
        let kind = match op.entity() {
            Entity::Person => Kind::Person,
            Entity::Object => Kind::Object,
        };
        Some(match op {
            Operation::Identify { .. } | Operation::IdentifyObject { .. } => Memo::Compare {
                kind,
                key,
                digest: op.digest(encoded),
            },
            Operation::Event(event) => Memo::Event {
                key: event_key(event.id.0),
            },
            Operation::Delete(_) | Operation::Suppress(_) | Operation::DeleteObject(_) => {
                Memo::Forget { kind, key }
            }
            Operation::Merge { .. } => {
                let keys = op.order();
                let keys = keys.keys();
                Memo::Merge {
                    primary: keys[0],
                    // A merge of a person into themself has one key.
                    secondary: *keys.last().unwrap_or(&keys[0]),
                }
            }
            _ => return None,
        })
    }
}

/// An event id's key: its low 64 bits, random (or hashed) in every ULID.
fn event_key(id: u128) -> u64 {
    id as u64
}

/// How the state names what `op` touches, for people reading it and for the `--missing`
/// sweep, which reads a person's back: `{"id":"42"}`, an object's type and id, an event's id.
pub fn name_of(op: &Operation) -> String {
    match op {
        Operation::Identify { person, .. }
        | Operation::Delete(person)
        | Operation::Suppress(person)
        | Operation::Merge {
            primary: person, ..
        } => json!(person).to_string(),
        Operation::IdentifyObject { object, .. } | Operation::DeleteObject(object) => {
            json!({"object_type_id": object.type_id, "object_id": object.id}).to_string()
        }
        Operation::Event(event) => event.id.to_string(),
        _ => String::new(),
    }
}
