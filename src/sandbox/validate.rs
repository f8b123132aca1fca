//! Turns request bodies into typed operations, rejecting whatever the Track API
//! documents as invalid (sizes, types, identifiers, ULIDs, timestamps).

use serde_json::{Map, Value};
use ulid::Ulid;

pub(super) const MAX_IDENTIFIER_BYTES: usize = 150;
pub(super) const MAX_ATTRIBUTE_NAME_BYTES: usize = 150;
pub(super) const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1000;
pub(super) const MAX_ATTRIBUTES: usize = 300;
pub(super) const MAX_EVENT_NAME_BYTES: usize = 100;
pub(super) const MAX_EVENT_DATA_BYTES: usize = 100_000;
/// The largest Unix time in seconds that fits the documented 10 digits; anything
/// bigger is almost surely milliseconds, a classic importer bug.
const MAX_UNIX_SECONDS: u64 = 9_999_999_999;

/// Why an operation was refused: the fields of a 207 error entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Invalid {
    pub(super) reason: &'static str,
    pub(super) field: String,
    pub(super) message: String,
}

impl Invalid {
    pub(super) fn new(reason: &'static str, field: impl Into<String>, message: String) -> Self {
        Invalid {
            reason,
            field: field.into(),
            message,
        }
    }
}

/// Who an event belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Who {
    Person(String),
    Anonymous(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Event {
    /// `event`, `page` or `screen`.
    pub(super) kind: &'static str,
    pub(super) who: Who,
    pub(super) name: String,
    pub(super) id: Option<Ulid>,
    pub(super) timestamp: Option<u64>,
    pub(super) data: Map<String, Value>,
}

/// One thing to do to the store; people are keyed by [`person_key`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    Identify {
        person: String,
        attributes: Map<String, Value>,
        /// `_update: true`: change an existing person, never create one.
        update_only: bool,
    },
    Event(Event),
    Delete(String),
    Suppress(String),
    Unsuppress(String),
    /// A device for a person: its token, and its platform, last use and attributes.
    AddDevice {
        person: String,
        token: String,
        device: Map<String, Value>,
    },
    DeleteDevice {
        person: String,
        token: String,
    },
    Merge {
        primary: String,
        secondary: String,
    },
    IdentifyObject {
        object: ObjectKey,
        attributes: Map<String, Value>,
    },
    DeleteObject(ObjectKey),
    /// Relationships of a person to objects, each with its attributes.
    Relate {
        person: String,
        objects: Vec<(ObjectKey, Map<String, Value>)>,
    },
    Unrelate {
        person: String,
        objects: Vec<ObjectKey>,
    },
}

/// An object: its type id and its id.
pub(super) type ObjectKey = (String, String);

/// The store key for an identifier: emails are case-insensitive in Customer.io,
/// everything else (ids, `cio_` ids) is kept exactly as addressed.
pub(super) fn person_key(identifier: &str) -> String {
    if identifier.contains('@') {
        identifier.to_lowercase()
    } else {
        identifier.to_owned()
    }
}

/// Serialised length of a JSON value, counted without building the string.
pub(super) use crate::record::json_size as json_len;

/// Checks a decoded identifier (path segment or `identifiers` value).
pub(super) fn identifier(id: &str, field: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid::new(
            "required",
            field,
            "identifier is empty".into(),
        ));
    }
    if id.len() > MAX_IDENTIFIER_BYTES {
        return Err(Invalid::new(
            "too_long",
            field,
            format!(
                "identifier is {} bytes, more than {MAX_IDENTIFIER_BYTES}",
                id.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn unix_seconds(value: &Value, field: &str) -> Result<u64, Invalid> {
    match value.as_u64() {
        Some(n) if n <= MAX_UNIX_SECONDS => Ok(n),
        Some(n) => Err(Invalid::new(
            "invalid",
            field,
            format!("{field} {n} has more than 10 digits: Unix seconds expected, not milliseconds"),
        )),
        None => Err(Invalid::new(
            "invalid",
            field,
            format!("{field} must be an integer of Unix seconds, got {value}"),
        )),
    }
}

/// An identify: every documented attribute limit that holds for one call.
pub(super) fn identify(person: String, mut attributes: Map<String, Value>) -> Result<Op, Invalid> {
    // Control keys, not attributes: `_update` restricts to existing people,
    // `_timestamp` dates the change.
    let update_only = attributes.remove("_update") == Some(Value::Bool(true));
    if let Some(ts) = attributes.remove("_timestamp") {
        unix_seconds(&ts, "_timestamp")?;
    }
    check_attributes(&attributes)?;
    Ok(Op::Identify {
        person,
        attributes,
        update_only,
    })
}

/// Attributes of one call (a person's, an object's, a relationship's): how many, and each
/// name's and value's size.
pub(super) fn check_attributes(attributes: &Map<String, Value>) -> Result<(), Invalid> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Invalid::new(
            "too_many",
            "attributes",
            format!(
                "{} attributes in one call, more than {MAX_ATTRIBUTES}",
                attributes.len()
            ),
        ));
    }
    for (name, value) in attributes {
        if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            return Err(Invalid::new(
                "too_long",
                "attributes",
                format!(
                    "attribute name is {} bytes, more than {MAX_ATTRIBUTE_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        let len = match value {
            Value::String(s) => s.len(),
            other => json_len(other),
        };
        if len > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(Invalid::new(
                "too_long",
                format!("attributes.{name}"),
                format!("value of {name} is {len} bytes, more than {MAX_ATTRIBUTE_VALUE_BYTES}"),
            ));
        }
    }
    if let Some(created_at) = attributes.get("created_at") {
        unix_seconds(created_at, "attributes.created_at")?;
    }
    Ok(())
}

/// The kinds of event, by their v1 `type` and their v2 action.
const EVENT_KINDS: [&str; 3] = ["event", "page", "screen"];

/// A v1 event body's `type`: `event` (the default), `page` or `screen`.
pub(super) fn v1_kind(body: &Map<String, Value>) -> Result<&'static str, Invalid> {
    match body.get("type") {
        None | Some(Value::Null) => Ok("event"),
        Some(Value::String(t)) => EVENT_KINDS.into_iter().find(|k| k == t).ok_or_else(|| {
            Invalid::new(
                "invalid",
                "type",
                format!("type must be event, page or screen, got {t:?}"),
            )
        }),
        Some(other) => Err(Invalid::new(
            "invalid",
            "type",
            format!("type must be a string, got {other}"),
        )),
    }
}

/// An event of `kind`. `body` holds `name`, `id`, `timestamp` and the data under
/// `data_field` (`data` in v1, `attributes` in v2).
pub(super) fn event(
    kind: &'static str,
    who: Who,
    mut body: Map<String, Value>,
    data_field: &str,
) -> Result<Op, Invalid> {
    let name = match body.remove("name") {
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "required",
                "name",
                "event name is missing".into(),
            ));
        }
        Some(Value::String(name)) if name.is_empty() => {
            return Err(Invalid::new(
                "required",
                "name",
                "event name is empty".into(),
            ));
        }
        Some(Value::String(name)) if name.len() > MAX_EVENT_NAME_BYTES => {
            return Err(Invalid::new(
                "too_long",
                "name",
                format!(
                    "event name is {} bytes, more than {MAX_EVENT_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(Invalid::new(
                "invalid",
                "name",
                format!("event name must be a string, got {other}"),
            ));
        }
    };
    let id =
        match body.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse::<Ulid>().map_err(|_| {
                Invalid::new("invalid", "id", format!("event id {s:?} is not a ULID"))
            })?),
            Some(other) => {
                return Err(Invalid::new(
                    "invalid",
                    "id",
                    format!("event id must be a ULID string, got {other}"),
                ));
            }
        };
    let timestamp = match body.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(ts) => Some(unix_seconds(ts, "timestamp")?),
    };
    let data = match body.remove(data_field) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(Invalid::new(
                "invalid",
                data_field,
                format!("event {data_field} must be an object, got {other}"),
            ));
        }
    };
    let len = json_len(&data);
    if len > MAX_EVENT_DATA_BYTES {
        return Err(Invalid::new(
            "too_long",
            data_field,
            format!("event {data_field} is {len} bytes, more than {MAX_EVENT_DATA_BYTES}"),
        ));
    }
    Ok(Op::Event(Event {
        kind,
        who,
        name,
        id,
        timestamp,
        data,
    }))
}

/// The anonymous id of a v1 anonymous event or a v2 anonymous event op.
pub(super) fn anonymous_id(value: Option<&Value>) -> Result<String, Invalid> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(Invalid::new(
            "required",
            "anonymous_id",
            "anonymous event without anonymous_id".into(),
        )),
        Some(other) => Err(Invalid::new(
            "invalid",
            "anonymous_id",
            format!("anonymous_id must be a non-empty string, got {other}"),
        )),
    }
}

/// An object that may be left out (or null): empty then.
pub(super) fn optional_object(
    value: Option<Value>,
    field: &str,
) -> Result<Map<String, Value>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(Invalid::new(
            "invalid",
            field,
            format!("{field} must be an object, got {other}"),
        )),
    }
}

/// The person a v2 op addresses: `identifiers` must hold exactly one of
/// `id`, `email`, `cio_id` (without its prefix) or `phone`.
pub(super) fn v2_identifiers(value: &Value) -> Result<String, Invalid> {
    let Value::Object(ids) = value else {
        return Err(Invalid::new(
            "invalid",
            "identifiers",
            "identifiers must be an object".into(),
        ));
    };
    let mut entries = ids.iter();
    let (Some((kind, id)), None) = (entries.next(), entries.next()) else {
        return Err(Invalid::new(
            "invalid",
            "identifiers",
            format!(
                "identifiers must hold exactly one of id, email, cio_id, phone; got {}",
                ids.len()
            ),
        ));
    };
    let field = format!("identifiers.{kind}");
    let Value::String(id) = id else {
        return Err(Invalid::new(
            "invalid",
            field,
            format!("identifier {kind} must be a string, got {id}"),
        ));
    };
    identifier(id, &field)?;
    match kind.as_str() {
        "phone" if !super::ties::is_e164(id) => Err(Invalid::new(
            "invalid",
            field,
            format!("phone {id:?} is not E.164 (a + and up to 15 digits)"),
        )),
        "id" | "phone" => Ok(id.clone()),
        "email" => Ok(id.to_lowercase()),
        "cio_id" => Ok(format!("cio_{id}")),
        other => Err(Invalid::new(
            "invalid",
            field,
            format!("unknown identifier {other:?}: expected id, email, cio_id or phone"),
        )),
    }
}

/// One v2 operation (an `/entity` body or a `/batch` element).
pub(super) fn v2_op(value: Value) -> Result<Op, Invalid> {
    let Value::Object(mut op) = value else {
        return Err(Invalid::new(
            "invalid",
            "",
            "operation must be a JSON object".into(),
        ));
    };
    let object = match op.get("type") {
        Some(Value::String(t)) if t == "person" => false,
        Some(Value::String(t)) if t == "object" => true,
        None => {
            return Err(Invalid::new("required", "type", "type is missing".into()));
        }
        Some(other) => {
            return Err(Invalid::new(
                "unsupported",
                "type",
                format!("the sandbox handles type \"person\" and \"object\", got {other}"),
            ));
        }
    };
    let action = match op.remove("action") {
        Some(Value::String(a)) => a,
        None => {
            return Err(Invalid::new(
                "required",
                "action",
                "action is missing".into(),
            ));
        }
        Some(other) => {
            return Err(Invalid::new(
                "invalid",
                "action",
                format!("action must be a string, got {other}"),
            ));
        }
    };
    if object {
        return super::ties::object_op(&action, op);
    }
    if action == "merge" {
        return super::ties::merge(&op);
    }
    let person = op.get("identifiers").map(v2_identifiers).transpose()?;
    let attributes = optional_object(op.remove("attributes"), "attributes")?;
    let missing = || {
        Invalid::new(
            "required",
            "identifiers",
            format!("action {action} needs identifiers"),
        )
    };
    match action.as_str() {
        "identify" => identify(person.ok_or_else(missing)?, attributes),
        // v2 has no anonymous events: `person_common` requires identifiers, and an
        // anonymous event goes to `POST /api/v1/events`.
        "event" | "page" | "screen" => {
            let kind = EVENT_KINDS
                .into_iter()
                .find(|k| *k == action)
                .unwrap_or("event");
            let Some(person) = person else {
                return Err(Invalid::new(
                    "required",
                    "identifiers",
                    "an event needs identifiers in v2; anonymous events go to POST /api/v1/events"
                        .into(),
                ));
            };
            op.insert("attributes".into(), Value::Object(attributes));
            event(kind, Who::Person(person), op, "attributes")
        }
        "delete" => Ok(Op::Delete(person.ok_or_else(missing)?)),
        "suppress" => Ok(Op::Suppress(person.ok_or_else(missing)?)),
        "unsuppress" => Ok(Op::Unsuppress(person.ok_or_else(missing)?)),
        "add_device" => {
            super::ties::add_device(person.ok_or_else(missing)?, op.get("device"), "token")
        }
        "delete_device" => {
            super::ties::delete_device(person.ok_or_else(missing)?, op.get("device"))
        }
        "add_relationships" | "delete_relationships" => super::ties::relationships(
            &action,
            person.ok_or_else(missing)?,
            op.get("cio_relationships"),
        ),
        other => Err(Invalid::new(
            "invalid",
            "action",
            format!("unknown action {other:?}"),
        )),
    }
}
