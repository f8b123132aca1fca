//! The v1 request that carries one operation (what `--batch 1` sends): method, path and body.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use ulid::Ulid;

use super::{Identifier, Operation, Who};

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
    #[serde(serialize_with = "ulid_text")]
    id: Ulid,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
}

fn ulid_text<S: Serializer>(id: &Ulid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(id.array_to_str(&mut [0; ulid::ULID_LEN]))
}

impl Operation {
    /// The v1 request that carries this operation.
    pub fn v1_request(&self) -> V1Request<'_> {
        let (method, path, body) = match self {
            Operation::Identify { person, attributes } => (
                Method::Put,
                customer(person, ""),
                Some(V1Body::Attributes(attributes)),
            ),
            Operation::Event(event) => {
                let (path, anonymous_id) = match &event.who {
                    Who::Person(person) => (customer(person, "/events"), None),
                    Who::Anonymous(id) => ("/api/v1/events".to_owned(), Some(id.as_str())),
                };
                let body = EventBody {
                    anonymous_id,
                    data: (!event.data.is_empty()).then_some(&event.data),
                    id: event.id,
                    name: &event.name,
                    timestamp: event.timestamp,
                };
                (Method::Post, path, Some(V1Body::Event(body)))
            }
            Operation::Delete(person) => (Method::Delete, customer(person, ""), None),
            Operation::Suppress(person) => (Method::Post, customer(person, "/suppress"), None),
            Operation::Unsuppress(person) => (Method::Post, customer(person, "/unsuppress"), None),
        };
        V1Request { method, path, body }
    }
}

/// The path of a person's v1 endpoint, `suffix` after it.
fn customer(person: &Identifier, suffix: &str) -> String {
    let id = person.path_value();
    format!(
        "/api/v1/customers/{}{suffix}",
        utf8_percent_encode(&id, SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::super::IdKind;
    use super::super::testkit::{anonymous_event, ident};
    use super::*;
    use serde_json::json;

    fn identify(kind: IdKind, value: &str) -> Operation {
        Operation::Identify {
            person: ident(kind, value),
            attributes: Map::new(),
        }
    }

    #[test]
    fn path_segment_encodes_everything_that_could_change_the_path() {
        let op = identify(IdKind::Email, "a+b@x.io/c d&e");
        assert_eq!(
            op.v1_request().path,
            "/api/v1/customers/a%2Bb%40x.io%2Fc%20d%26e"
        );
        let op = identify(IdKind::CioId, "a1");
        assert_eq!(op.v1_request().path, "/api/v1/customers/cio_a1");
    }

    #[test]
    fn anonymous_event_goes_to_the_events_endpoint() {
        let op = anonymous_event("anon-1");
        let r = op.v1_request();
        assert_eq!(r.path, "/api/v1/events");
        assert_eq!(
            serde_json::to_string(&r.body.unwrap()).unwrap(),
            json!({"name": "viewed", "anonymous_id": "anon-1", "timestamp": 1_700_000_000,
                   "id": "01HR6Z8Q9T3V5X7Z9B1D3F5H7K"})
            .to_string()
        );
    }
}
