//! Records: the Customer.io operation a row becomes, and how a row is mapped and validated into it.
//!
//! An [`Operation`] serialises to exactly the shape of one `/api/v2/batch` operation, so the
//! same value is what a batch carries, what a failures-file line holds, and what a replay reads.

mod map;
mod value;

pub use map::{IdKind, Invalid, MapError, MapSpec, Mapper};
pub use value::ValueType;
pub(crate) use value::json_size;

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::track::MAX_OPERATION_BYTES;

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create or update a person with the row's attributes.
    Identify,
    /// Track an event for a person (or an anonymous event, by `anonymous_id`).
    Event,
    /// Delete the person.
    Delete,
    /// Suppress the person (and delete their data).
    Suppress,
    /// Lift a suppression.
    Unsuppress,
}

/// What to do with an empty cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmptyPolicy {
    /// Leave the attribute as it is in Customer.io.
    Skip,
    /// Send "" so Customer.io clears the attribute.
    Clear,
}

/// How a person is addressed. Serialises as v2 `identifiers`: `{"id": "42"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    Id(String),
    Email(String),
    /// Customer.io's own id, without the `cio_` prefix.
    CioId(String),
}

impl Identifier {
    /// The identifier as the v1 API takes it in a path: `cio_` marks a cio_id.
    pub fn path_value(&self) -> Cow<'_, str> {
        match self {
            Identifier::Id(v) | Identifier::Email(v) => Cow::Borrowed(v),
            Identifier::CioId(v) => Cow::Owned(format!("cio_{v}")),
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Identifier::Id(v) | Identifier::Email(v) | Identifier::CioId(v) => v,
        }
    }
}

/// The only entity type this tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    #[default]
    Person,
}

/// One Customer.io operation, in `/api/v2/batch` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    #[serde(rename = "type", default)]
    pub entity: EntityType,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Event id (a ULID), Customer.io's deduplication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Event time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// A person's attributes, or an event's data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

/// Characters left bare in a path segment: RFC 3986 unreserved. Everything else is encoded,
/// so `+`, `@`, `/`, `&` and spaces in an identifier cannot change the path's meaning.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An HTTP method the v1 API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Put,
    Post,
    Delete,
}

/// One v1 request: method, path (below the host) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct V1Request<'a> {
    pub method: Method,
    pub path: String,
    pub body: Option<V1Body<'a>>,
}

/// A v1 request's JSON body, borrowed from the operation: each attempt encodes it without
/// copying the attributes first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum V1Body<'a> {
    Attributes(&'a Map<String, Value>),
    Event(EventBody<'a>),
}

/// An event's v1 body; keys in the order a JSON object of them would print.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    anonymous_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
}

impl Operation {
    /// A key that is equal for two operations on the same person; the sender keeps
    /// operations with equal keys in file order.
    pub fn person_key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.identifiers.hash(&mut h);
        self.anonymous_id.hash(&mut h);
        h.finish()
    }

    /// The operation as one element of a `/api/v2/batch` body, or Invalid when it is over
    /// [`MAX_OPERATION_BYTES`].
    pub fn encode_for_batch(&self) -> Result<Vec<u8>, Invalid> {
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

    /// The v1 request that carries this operation.
    pub fn v1_request(&self) -> V1Request<'_> {
        let customer = |suffix: &str| {
            let id = self
                .identifiers
                .as_ref()
                .map(|i| utf8_percent_encode(&i.path_value(), SEGMENT).to_string())
                .unwrap_or_default();
            format!("/api/v1/customers/{id}{suffix}")
        };
        match self.action {
            Action::Identify => V1Request {
                method: Method::Put,
                path: customer(""),
                body: Some(V1Body::Attributes(&self.attributes)),
            },
            Action::Delete => V1Request {
                method: Method::Delete,
                path: customer(""),
                body: None,
            },
            Action::Suppress => V1Request {
                method: Method::Post,
                path: customer("/suppress"),
                body: None,
            },
            Action::Unsuppress => V1Request {
                method: Method::Post,
                path: customer("/unsuppress"),
                body: None,
            },
            Action::Event => {
                let body = |anonymous_id| {
                    Some(V1Body::Event(EventBody {
                        anonymous_id,
                        data: (!self.attributes.is_empty()).then_some(&self.attributes),
                        id: self.id.as_deref(),
                        name: self.name.as_deref(),
                        timestamp: self.timestamp,
                    }))
                };
                match &self.identifiers {
                    Some(_) => V1Request {
                        method: Method::Post,
                        path: customer("/events"),
                        body: body(None),
                    },
                    None => V1Request {
                        method: Method::Post,
                        path: "/api/v1/events".into(),
                        body: body(self.anonymous_id.as_deref()),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identify(id: Identifier) -> Operation {
        Operation {
            entity: EntityType::Person,
            action: Action::Identify,
            identifiers: Some(id),
            anonymous_id: None,
            name: None,
            id: None,
            timestamp: None,
            attributes: Map::new(),
        }
    }

    #[test]
    fn path_segment_encodes_everything_that_could_change_the_path() {
        let op = identify(Identifier::Email("a+b@x.io/c d&e".into()));
        assert_eq!(
            op.v1_request().path,
            "/api/v1/customers/a%2Bb%40x.io%2Fc%20d%26e"
        );
        let op = identify(Identifier::CioId("a1".into()));
        assert_eq!(op.v1_request().path, "/api/v1/customers/cio_a1");
    }

    #[test]
    fn serialises_as_a_v2_batch_operation_and_back() {
        let mut op = identify(Identifier::Id("42".into()));
        op.attributes.insert("plan".into(), json!("pro"));
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(
            v,
            json!({"type": "person", "action": "identify", "identifiers": {"id": "42"},
                   "attributes": {"plan": "pro"}})
        );
        assert_eq!(serde_json::from_value::<Operation>(v).unwrap(), op);
    }

    #[test]
    fn anonymous_event_goes_to_the_events_endpoint() {
        let op = Operation {
            action: Action::Event,
            identifiers: None,
            anonymous_id: Some("anon-1".into()),
            name: Some("viewed".into()),
            timestamp: Some(1_700_000_000),
            ..identify(Identifier::Id(String::new()))
        };
        let r = op.v1_request();
        assert_eq!(r.path, "/api/v1/events");
        assert_eq!(
            serde_json::to_string(&r.body.unwrap()).unwrap(),
            json!({"name": "viewed", "anonymous_id": "anon-1", "timestamp": 1_700_000_000})
                .to_string()
        );
    }
}
