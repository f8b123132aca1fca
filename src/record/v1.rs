//! The request that carries one operation alone (what `--batch 1` sends, and what no batch
//! carries): method, path and body. It is the operation's v1 endpoint, or `POST
//! /api/v2/entity` for what v1 cannot carry: a person named by phone (v1 paths cannot), objects
//! and relationships (v1 has no endpoint for them), merges and a person's screen view (the
//! published v1 schema has no valid shape for them: its merge alternatives all match any one
//! identifier, and its screen view needs an `anonymous_id`).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use ulid::Ulid;

use super::{EventKind, Identifier, Operation, Who};

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

impl Method {
    /// As HTTP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// One request: method, path (below the host) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct OneRequest<'a> {
    pub method: Method,
    pub path: String,
    pub body: Option<OneBody<'a>>,
}

/// A request's JSON body, borrowed from the operation: each attempt encodes it without
/// copying the attributes first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneBody<'a> {
    Attributes(&'a Map<String, Value>),
    Event(EventBody<'a>),
    /// `{"device": {...}}`, the token as its `id`.
    Device {
        device: V1Device<'a>,
    },
    /// The operation in its v2 shape, for `/api/v2/entity`.
    Entity(&'a Operation),
}

/// A device as v1 takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct V1Device<'a> {
    id: &'a str,
    platform: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used: Option<i64>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    attributes: &'a Map<String, Value>,
}

/// Where an operation goes alone through v2.
pub const ENTITY_PATH: &str = "/api/v2/entity";

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
    /// `page` or `screen`; none for an event.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

fn ulid_text<S: Serializer>(id: &Ulid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(id.array_to_str(&mut [0; ulid::ULID_LEN]))
}

impl Operation {
    /// The request that carries this operation alone.
    pub fn one_request(&self) -> OneRequest<'_> {
        let entity = OneRequest {
            method: Method::Post,
            path: ENTITY_PATH.to_owned(),
            body: Some(OneBody::Entity(self)),
        };
        let in_path = Identifier::in_path;
        let (method, path, body) = match self {
            Operation::Identify { person, attributes } if in_path(person) => (
                Method::Put,
                customer(person, ""),
                Some(OneBody::Attributes(attributes)),
            ),
            Operation::Event(event) => {
                let (path, anonymous_id) = match &event.who {
                    Who::Person(p) if !in_path(p) || event.kind == EventKind::Screen => {
                        return entity;
                    }
                    Who::Person(person) => (customer(person, "/events"), None),
                    Who::Anonymous(id) => ("/api/v1/events".to_owned(), Some(id.as_str())),
                };
                let body = EventBody {
                    anonymous_id,
                    data: (!event.data.is_empty()).then_some(&event.data),
                    id: event.id,
                    name: &event.name,
                    timestamp: event.timestamp,
                    kind: event.kind.v1_type(),
                };
                (Method::Post, path, Some(OneBody::Event(body)))
            }
            Operation::Delete(p) if in_path(p) => (Method::Delete, customer(p, ""), None),
            Operation::Suppress(p) if in_path(p) => (Method::Post, customer(p, "/suppress"), None),
            Operation::Unsuppress(p) if in_path(p) => {
                (Method::Post, customer(p, "/unsuppress"), None)
            }
            Operation::AddDevice { person, device } if in_path(person) => {
                let device = V1Device {
                    id: &device.token,
                    platform: device.platform.name(),
                    last_used: device.last_used,
                    attributes: &device.attributes,
                };
                let body = OneBody::Device { device };
                (Method::Put, customer(person, "/devices"), Some(body))
            }
            Operation::DeleteDevice { person, token } if in_path(person) => {
                let token = utf8_percent_encode(token, SEGMENT);
                (
                    Method::Delete,
                    customer(person, &format!("/devices/{token}")),
                    None,
                )
            }
            _ => return entity,
        };
        OneRequest { method, path, body }
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
    use super::super::testkit::{anonymous_event, ident};
    use super::super::{Event, IdKind};
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
            op.one_request().path,
            "/api/v1/customers/a%2Bb%40x.io%2Fc%20d%26e"
        );
        let op = identify(IdKind::CioId, "a1");
        assert_eq!(op.one_request().path, "/api/v1/customers/cio_a1");
    }

    #[test]
    fn an_identifier_a_path_would_read_as_another_kind_goes_through_v2() {
        for (kind, value) in [
            (IdKind::Email, "12345"),
            (IdKind::Email, "cio_a@x.io"),
            (IdKind::Id, "weird@x.com"),
            (IdKind::Id, "cio_03000001"),
        ] {
            let op = identify(kind, value);
            let r = op.one_request();
            assert_eq!(
                (r.method, r.path.as_str()),
                (Method::Post, ENTITY_PATH),
                "{value}"
            );
            let delete = Operation::Delete(ident(kind, value));
            assert_eq!(delete.one_request().path, ENTITY_PATH, "{value}");
        }
        assert_eq!(
            identify(IdKind::Id, "12345").one_request().path,
            "/api/v1/customers/12345"
        );
        assert_eq!(
            identify(IdKind::Email, "a@x.io").one_request().path,
            "/api/v1/customers/a%40x.io"
        );
    }

    #[test]
    fn page_and_screen_views_go_where_v1_has_a_shape_for_them() {
        let view = |kind, who| {
            Operation::Event(Event {
                kind,
                who,
                ..match anonymous_event("a1") {
                    Operation::Event(e) => e,
                    _ => unreachable!(),
                }
            })
        };
        let person = || Who::Person(ident(IdKind::Id, "7"));
        let page = view(EventKind::Page, person());
        let r = page.one_request();
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Post, "/api/v1/customers/7/events")
        );
        let body = serde_json::to_value(r.body.unwrap()).unwrap();
        assert_eq!(
            (body["type"].as_str(), body["name"].as_str()),
            (Some("page"), Some("viewed"))
        );
        // v1 has no shape for a person's screen view: it goes through v2, as its batch form.
        let screen = view(EventKind::Screen, person());
        let r = screen.one_request();
        assert_eq!((r.method, r.path.as_str()), (Method::Post, ENTITY_PATH));
        assert_eq!(
            serde_json::to_value(r.body.unwrap()).unwrap(),
            serde_json::to_value(&screen).unwrap()
        );
        let anonymous = view(EventKind::Screen, Who::Anonymous("a1".into()));
        let r = anonymous.one_request();
        assert_eq!(r.path, "/api/v1/events");
        let body = serde_json::to_value(r.body.unwrap()).unwrap();
        assert_eq!(body["type"], "screen");
        assert_eq!(body["anonymous_id"], "a1");
    }

    #[test]
    fn anonymous_event_goes_to_the_events_endpoint() {
        let op = anonymous_event("anon-1");
        let r = op.one_request();
        assert_eq!(r.path, "/api/v1/events");
        assert_eq!(
            serde_json::to_string(&r.body.unwrap()).unwrap(),
            json!({"name": "viewed", "anonymous_id": "anon-1", "timestamp": 1_700_000_000,
                   "id": "01HR6Z8Q9T3V5X7Z9B1D3F5H7K"})
            .to_string()
        );
    }
}
