//! Tests of the sandbox over real HTTP, with reqwest against 127.0.0.1:0.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::*;

/// A started sandbox plus a client that speaks to it with the right credentials.
struct Rig {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Rig {
    async fn start(opts: SandboxOptions) -> Rig {
        let sandbox = Sandbox::start(opts).await.expect("sandbox starts");
        // reqwest is built without a default TLS provider; it insists on one even for http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client builds");
        Rig { sandbox, http }
    }

    async fn new() -> Rig {
        Rig::start(SandboxOptions {
            limit: None,
            keep_requests: true,
            ..SandboxOptions::default()
        })
        .await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sandbox.base_url()))
            .basic_auth("sandbox", Some("sandbox"))
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = builder.send().await.expect("answered");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(method, path, body.to_string()).await
    }

    async fn raw(&self, method: Method, path: &str, body: String) -> (StatusCode, Value) {
        let builder = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body);
        self.send(builder).await
    }

    /// Identifies person 1 with no attributes; the whole response.
    async fn put_one(&self) -> reqwest::Response {
        let request = self.request(Method::PUT, "/api/v1/customers/1").body("{}");
        request.send().await.expect("answered")
    }

    async fn identify(&self, id: &str, attributes: Value) -> StatusCode {
        self.json(Method::PUT, &format!("/api/v1/customers/{id}"), attributes)
            .await
            .0
    }
}

/// The `batch_index` of each error a 207 lists.
fn batch_indices(body: &Value) -> Vec<u64> {
    let errors = body["errors"].as_array().expect("errors array");
    errors
        .iter()
        .filter_map(|e| e["batch_index"].as_u64())
        .collect()
}

fn errors(body: &Value) -> Vec<String> {
    body["meta"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON text padded with trailing spaces to exactly `len` bytes.
fn padded(value: &Value, len: usize) -> String {
    let mut text = value.to_string();
    assert!(text.len() <= len, "{} > {len}", text.len());
    text.extend(std::iter::repeat_n(' ', len - text.len()));
    text
}

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

const ULID_A: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
const ULID_B: &str = "01BX5ZZKBKACTAV9WEVGEMMVRZ";

#[tokio::test]
async fn missing_or_wrong_credentials_get_401() {
    let rig = Rig::new().await;
    let url = format!("{}/api/v1/accounts/region", rig.sandbox.base_url());
    let (status, body) = rig.send(rig.http.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!errors(&body).is_empty(), "{body}");
    let wrong = rig.http.get(&url).basic_auth("sandbox", Some("nope"));
    assert_eq!(rig.send(wrong).await.0, StatusCode::UNAUTHORIZED);
    let bearer = rig.http.get(&url).bearer_auth("sandbox");
    assert_eq!(rig.send(bearer).await.0, StatusCode::UNAUTHORIZED);
    // Every endpoint is guarded, and nothing is applied.
    let put = rig
        .http
        .put(format!("{}/api/v1/customers/1", rig.sandbox.base_url()))
        .body("{}");
    assert_eq!(rig.send(put).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(rig.sandbox.people_count(), 0);
    assert_eq!(rig.sandbox.stats().rejected_4xx.get(&401), Some(&4));
}

#[tokio::test]
async fn region_answers_url_and_region() {
    let rig = Rig::start(SandboxOptions {
        region: Region::Eu,
        site_id: "site".into(),
        api_key: "key:with:colons".into(),
        ..SandboxOptions::default()
    })
    .await;
    let url = format!("{}/api/v1/accounts/region", rig.sandbox.base_url());
    let request = rig
        .http
        .get(url)
        .basic_auth("site", Some("key:with:colons"));
    let (status, body) = rig.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"url": rig.sandbox.base_url(), "region": "eu", "environment_id": 1})
    );
}

#[tokio::test]
async fn identify_stores_merges_and_clears() {
    let rig = Rig::new().await;
    assert_eq!(
        rig.identify("42", json!({"a": 1, "b": "x", "c": [1, 2]}))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        rig.identify("42", json!({"b": "", "d": true})).await,
        StatusCode::OK
    );
    assert_eq!(
        rig.sandbox.person("42"),
        Some(map(json!({"a": 1, "c": [1, 2], "d": true})))
    );
    // No body at all is an identify with no attributes.
    let (status, _) = rig
        .raw(Method::PUT, "/api/v1/customers/7", String::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rig.sandbox.person("7"), Some(Map::new()));
    // `_update: true` never creates a person, but does update one.
    assert_eq!(
        rig.identify("new", json!({"_update": true, "a": 1})).await,
        StatusCode::OK
    );
    assert_eq!(rig.sandbox.person("new"), None);
    assert_eq!(
        rig.identify("42", json!({"_update": true, "a": 2})).await,
        StatusCode::OK
    );
    assert_eq!(
        rig.sandbox.person("42").and_then(|p| p.get("a").cloned()),
        Some(json!(2))
    );
    assert_eq!(rig.sandbox.people_count(), 2);
}

#[tokio::test]
async fn identifiers_are_percent_decoded() {
    let rig = Rig::new().await;
    for (raw, decoded) in [
        ("a%2Bb%40x.io", "a+b@x.io"),
        ("a+b", "a+b"),
        ("x%2Fy", "x/y"),
        ("first%20last", "first last"),
        ("cio_abc123", "cio_abc123"),
        ("%C3%A9t%C3%A9", "été"),
    ] {
        assert_eq!(
            rig.identify(raw, json!({"k": raw})).await,
            StatusCode::OK,
            "{raw}"
        );
        assert_eq!(
            rig.sandbox.person(decoded),
            Some(map(json!({"k": raw}))),
            "{raw} → {decoded}"
        );
    }
    // Emails are case-insensitive.
    assert_eq!(
        rig.identify("Ann%40X.io", json!({"n": 1})).await,
        StatusCode::OK
    );
    assert_eq!(
        rig.identify("ann%40x.io", json!({"m": 2})).await,
        StatusCode::OK
    );
    assert_eq!(
        rig.sandbox.person("ANN@x.io"),
        Some(map(json!({"n": 1, "m": 2})))
    );
    let logged = rig.sandbox.requests();
    assert_eq!(logged[0].path, "/api/v1/customers/a%2Bb%40x.io");
    assert_eq!(logged[0].identifier.as_deref(), Some("a+b@x.io"));
    assert_eq!(logged[0].status, Some(200));
    assert_eq!(logged[0].body, Some(json!({"k": "a%2Bb%40x.io"})));
    // Not UTF-8 once decoded.
    assert_eq!(
        rig.identify("%FF", json!({})).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn identifier_length_limit() {
    let rig = Rig::new().await;
    assert_eq!(
        rig.identify(&"i".repeat(150), json!({})).await,
        StatusCode::OK
    );
    assert_eq!(
        rig.identify(&"i".repeat(151), json!({})).await,
        StatusCode::BAD_REQUEST
    );
    // 150 bytes once decoded: 50 × "é" (2 bytes, 6 encoded) + 50 × "a".
    let encoded = format!("{}{}", "%C3%A9".repeat(50), "a".repeat(50));
    assert_eq!(rig.identify(&encoded, json!({})).await, StatusCode::OK);
    assert_eq!(
        rig.identify(&format!("{encoded}a"), json!({})).await,
        StatusCode::BAD_REQUEST
    );
    let (status, body) = rig.json(Method::PUT, "/api/v1/customers/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!errors(&body).is_empty());
}

#[tokio::test]
async fn attribute_limits() {
    let rig = Rig::new().await;
    let bad = StatusCode::BAD_REQUEST;
    let ok = StatusCode::OK;
    let named = |name: String| {
        let mut m = Map::new();
        m.insert(name, json!(1));
        Value::Object(m)
    };
    assert_eq!(rig.identify("p", named("n".repeat(150))).await, ok);
    assert_eq!(rig.identify("p", named("n".repeat(151))).await, bad);
    assert_eq!(rig.identify("p", json!({"v": "x".repeat(1000)})).await, ok);
    assert_eq!(rig.identify("p", json!({"v": "x".repeat(1001)})).await, bad);
    // 1000 bytes counted in UTF-8, not characters.
    assert_eq!(rig.identify("p", json!({"v": "é".repeat(500)})).await, ok);
    assert_eq!(rig.identify("p", json!({"v": "é".repeat(501)})).await, bad);
    // Non-strings count their serialised length: ["xxx…"] is len + 4.
    assert_eq!(rig.identify("p", json!({"v": ["x".repeat(996)]})).await, ok);
    assert_eq!(
        rig.identify("p", json!({"v": ["x".repeat(997)]})).await,
        bad
    );
    let many = |n: usize| Value::Object((0..n).map(|i| (format!("a{i}"), json!(i))).collect());
    assert_eq!(rig.identify("q", many(300)).await, ok);
    assert_eq!(rig.identify("r", many(301)).await, bad);
    // 300 per person too: q is full, so a new attribute is refused, a cleared one makes room.
    assert_eq!(rig.identify("q", json!({"extra": 1})).await, bad);
    assert_eq!(rig.identify("q", json!({"a0": "", "extra": 1})).await, ok);
    assert_eq!(rig.sandbox.person("q").map(|p| p.len()), Some(300));
    for (created_at, status) in [
        (json!(1_700_000_000), ok),
        (json!(0), ok),
        (json!(9_999_999_999u64), ok),
        (json!(10_000_000_000u64), bad),
        (json!(1_700_000_000_000u64), bad),
        (json!("1700000000"), bad),
        (json!(1_700_000_000.5), bad),
        (json!(-1), bad),
    ] {
        assert_eq!(
            rig.identify("t", json!({"created_at": created_at})).await,
            status,
            "created_at {created_at}"
        );
    }
    // The body must be a JSON object.
    for body in ["[1]", "\"x\"", "{not json", "null"] {
        let (status, response) = rig
            .raw(Method::PUT, "/api/v1/customers/p", body.into())
            .await;
        assert_eq!(status, bad, "{body}");
        assert_eq!(errors(&response).len(), 1, "{response}");
    }
    // Nothing refused was applied.
    assert_eq!(rig.sandbox.person("r"), None);
    assert_eq!(
        rig.sandbox.person("t"),
        Some(map(json!({"created_at": 9_999_999_999u64})))
    );
}

#[tokio::test]
async fn v1_body_limit_bounds_memory_only() {
    let rig = Rig::new().await;
    let attributes = json!({"a": "x".repeat(900), "b": "y".repeat(900)});
    let path = "/api/v1/customers/big";
    let (status, _) = rig
        .raw(Method::PUT, path, padded(&attributes, MAX_V1_BYTES))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = rig
        .raw(Method::PUT, path, padded(&attributes, MAX_V1_BYTES + 1))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors(&body)[0].contains("more than"), "{body}");
}

#[tokio::test]
async fn events_validation_and_duplicates() {
    let rig = Rig::new().await;
    let path = "/api/v1/customers/u%40x.io/events";
    let post = |body: Value| rig.json(Method::POST, path, body);
    assert_eq!(
        post(json!({"name": "n".repeat(100)})).await.0,
        StatusCode::OK
    );
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({"name": "n".repeat(101)}),
        json!({"name": "a", "id": "not-a-ulid"}),
        json!({"name": "a", "id": 12}),
        json!({"name": "a", "timestamp": "1700000000"}),
        json!({"name": "a", "timestamp": 1.5}),
        json!({"name": "a", "timestamp": 1_700_000_000_000u64}),
        json!({"name": "a", "data": [1]}),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(errors(&body).len(), 1, "{body}");
    }
    let event =
        json!({"name": "bought", "id": ULID_A, "timestamp": 1_700_000_000, "data": {"price": 3}});
    assert_eq!(post(event.clone()).await.0, StatusCode::OK);
    // Same id again (lower case is the same ULID): 200, but dropped.
    let again = json!({"name": "bought again", "id": ULID_A.to_lowercase()});
    assert_eq!(post(again).await.0, StatusCode::OK);
    assert_eq!(
        post(json!({"name": "other", "id": ULID_B})).await.0,
        StatusCode::OK
    );
    let events = rig.sandbox.events();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[1],
        StoredEvent {
            kind: "event",
            person: Some("u@x.io".into()),
            anonymous_id: None,
            name: "bought".into(),
            id: Some(ULID_A.into()),
            timestamp: Some(1_700_000_000),
            data: map(json!({"price": 3})),
        }
    );
    let stats = rig.sandbox.stats();
    assert_eq!((stats.events, stats.duplicate_events), (3, 1));
    // Events don't create people.
    assert_eq!(rig.sandbox.people_count(), 0);
}

#[test]
fn event_data_limit() {
    // Unreachable over HTTP (bodies are capped at 32 KiB), but documented.
    let data = |len: usize| {
        // {"d":"…"} is len + 8 bytes.
        let mut body = Map::new();
        body.insert("name".into(), json!("e"));
        body.insert("data".into(), json!({"d": "x".repeat(len - 8)}));
        validate::event("event", Who::Person("p".into()), body, "data")
    };
    assert!(data(validate::MAX_EVENT_DATA_BYTES).is_ok());
    let refused = data(validate::MAX_EVENT_DATA_BYTES + 1).expect_err("too long");
    assert_eq!(
        (refused.reason, refused.field.as_str()),
        ("too_long", "data")
    );
}

#[tokio::test]
async fn anonymous_events() {
    let rig = Rig::new().await;
    let (status, body) = rig
        .json(Method::POST, "/api/v1/events", json!({"name": "visit"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors(&body)[0].contains("anonymous_id"), "{body}");
    let (status, _) = rig
        .json(
            Method::POST,
            "/api/v1/events",
            json!({"name": "visit", "anonymous_id": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let event = json!({"name": "visit", "anonymous_id": "anon-1", "data": {"page": "/"}});
    assert_eq!(
        rig.json(Method::POST, "/api/v1/events", event).await.0,
        StatusCode::OK
    );
    let events = rig.sandbox.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].person, None);
    assert_eq!(events[0].anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(events[0].data, map(json!({"page": "/"})));
}

#[tokio::test]
async fn delete_suppress_unsuppress() {
    let rig = Rig::new().await;
    assert_eq!(rig.identify("1", json!({"a": 1})).await, StatusCode::OK);
    assert_eq!(rig.identify("2", json!({"a": 2})).await, StatusCode::OK);
    let (status, _) = rig
        .send(rig.request(Method::DELETE, "/api/v1/customers/1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rig.sandbox.person("1"), None);
    // Suppressing deletes the person and ignores the identifier from then on.
    let suppress = rig.request(Method::POST, "/api/v1/customers/2/suppress");
    assert_eq!(rig.send(suppress).await.0, StatusCode::OK);
    assert_eq!(rig.sandbox.person("2"), None);
    assert!(rig.sandbox.is_suppressed("2"));
    assert_eq!(rig.identify("2", json!({"a": 3})).await, StatusCode::OK);
    let event = json!({"name": "e"});
    let (status, _) = rig
        .json(Method::POST, "/api/v1/customers/2/events", event)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rig.sandbox.person("2"), None);
    assert!(rig.sandbox.events().is_empty());
    let stats = rig.sandbox.stats();
    assert_eq!(
        (stats.suppressed, stats.ignored_suppressed, stats.deleted),
        (1, 2, 1)
    );
    let unsuppress = rig.request(Method::POST, "/api/v1/customers/2/unsuppress");
    assert_eq!(rig.send(unsuppress).await.0, StatusCode::OK);
    assert_eq!(rig.identify("2", json!({"a": 4})).await, StatusCode::OK);
    assert_eq!(rig.sandbox.person("2"), Some(map(json!({"a": 4}))));
    assert_eq!(rig.sandbox.stats().suppressed, 0);
    // Bad identifiers are refused here too; wrong methods and paths are 405 / 404.
    let long = format!("/api/v1/customers/{}", "x".repeat(151));
    assert_eq!(
        rig.send(rig.request(Method::DELETE, &long)).await.0,
        StatusCode::BAD_REQUEST
    );
    let get = rig.request(Method::GET, "/api/v1/customers/2");
    assert_eq!(rig.send(get).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let nowhere = rig.request(Method::GET, "/api/v1/nowhere");
    assert_eq!(rig.send(nowhere).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        rig.sandbox.summary_line(),
        "sandbox: 1 person stored, 0 events (0 duplicates), 0 suppressed, 1 deleted; \
         11 requests (3 rejected)"
    );
}

#[tokio::test]
async fn batch_applies_valid_ops_and_lists_invalid_ones() {
    let rig = Rig::new().await;
    let huge = json!({"type": "person", "identifiers": {"id": "h"}, "action": "identify",
        "attributes": (0..40).map(|i| (format!("k{i}"), json!("x".repeat(900)))).collect::<Map<_, _>>()});
    let batch = json!({"batch": [
        {"type": "person", "identifiers": {"id": "1"}, "action": "identify", "attributes": {"a": 1}},
        {"type": "person", "identifiers": {"id": "1", "email": "a@b.c"}, "action": "identify"},
        {"type": "person", "identifiers": {"email": "A@B.c"}, "action": "event", "name": "e", "id": ULID_A, "timestamp": 1_700_000_000, "attributes": {"x": 1}},
        {"type": "person", "identifiers": {"id": "1"}, "action": "explode"},
        {"type": "person", "action": "event", "anonymous_id": "anon", "name": "v"},
        {"type": "object", "identifiers": {"id": "1"}, "action": "identify"},
        huge,
        {"type": "person", "identifiers": {"cio_id": "abc"}, "action": "identify", "attributes": {"created_at": "yesterday"}},
        {"type": "person", "identifiers": {"cio_id": "abc"}, "action": "identify", "attributes": {"z": true}},
        {"type": "person", "identifiers": {"id": "2"}, "action": "suppress"},
        {"type": "person", "action": "identify"},
        {"type": "person", "action": "event", "name": "no one"},
        "not an op",
        {"type": "person", "identifiers": {"id": "1"}, "action": "event", "name": "dup", "id": ULID_A},
    ]});
    let (status, body) = rig.json(Method::POST, "/api/v2/batch", batch).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let indices = batch_indices(&body);
    assert_eq!(indices, [1, 3, 4, 5, 6, 7, 10, 11, 12]);
    for error in body["errors"].as_array().into_iter().flatten() {
        for key in ["reason", "field", "message"] {
            assert!(error[key].is_string(), "{error}");
        }
    }
    assert_eq!(body["errors"][2]["field"], "identifiers");
    assert_eq!(body["errors"][5]["field"], "attributes.created_at");
    assert_eq!(rig.sandbox.person("1"), Some(map(json!({"a": 1}))));
    assert_eq!(rig.sandbox.person("cio_abc"), Some(map(json!({"z": true}))));
    assert!(rig.sandbox.is_suppressed("2"));
    let events = rig.sandbox.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].person.as_deref(), Some("a@b.c"));
    assert_eq!(events[0].data, map(json!({"x": 1})));
    let stats = rig.sandbox.stats();
    assert_eq!(
        (stats.partial, stats.invalid_ops, stats.duplicate_events),
        (1, 9, 1)
    );
    // All valid: 200.
    let fine =
        json!({"batch": [{"type": "person", "identifiers": {"id": "3"}, "action": "delete"}]});
    assert_eq!(
        rig.json(Method::POST, "/api/v2/batch", fine).await,
        (StatusCode::OK, json!({}))
    );
}

#[tokio::test]
async fn batch_malformed_or_too_large_is_400() {
    let rig = Rig::new().await;
    let op = json!({"type": "person", "identifiers": {"id": "1"}, "action": "identify",
        "attributes": (0..25).map(|i| (format!("k{i}"), json!("x".repeat(900)))).collect::<Map<_, _>>()});
    let batch = json!({"batch": vec![op; 21]});
    let (status, _) = rig
        .raw(
            Method::POST,
            "/api/v2/batch",
            padded(&batch, MAX_BATCH_BYTES - 1),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = rig
        .raw(
            Method::POST,
            "/api/v2/batch",
            padded(&batch, MAX_BATCH_BYTES),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(errors(&body).len(), 1, "{body}");
    // Far too large: still a clean 400 the client can read.
    let (status, _) = rig
        .raw(
            Method::POST,
            "/api/v2/batch",
            padded(&batch, 3 * MAX_BATCH_BYTES),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for body in ["", "nope", "[]", "{}", "{\"batch\": {}}", "{\"ops\": []}"] {
        let (status, _) = rig.raw(Method::POST, "/api/v2/batch", body.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
}

#[tokio::test]
async fn entity_takes_one_op() {
    let rig = Rig::new().await;
    let op = json!({"type": "person", "identifiers": {"email": "e@x.io"}, "action": "identify", "attributes": {"a": 1}});
    let (status, _) = rig
        .raw(
            Method::POST,
            "/api/v2/entity",
            padded(&op, MAX_ENTITY_BYTES),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rig.sandbox.person("e@x.io"), Some(map(json!({"a": 1}))));
    let (status, _) = rig
        .raw(
            Method::POST,
            "/api/v2/entity",
            padded(&op, MAX_ENTITY_BYTES + 1),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let invalid = json!({"type": "person", "identifiers": {}, "action": "identify"});
    let (status, body) = rig.json(Method::POST, "/api/v2/entity", invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors(&body)[0].contains("exactly one"), "{body}");
    let (status, _) = rig.raw(Method::POST, "/api/v2/entity", String::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let rig = Rig::start(SandboxOptions {
        limit: Some(5),
        ..SandboxOptions::default()
    })
    .await;
    let requests = (0..10).map(|_| rig.send(rig.request(Method::GET, "/api/v1/accounts/region")));
    let answers = futures_join_all(requests).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 5);
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(errors(body), ["rate limit exceeded"]);
    }
    let response = rig
        .request(Method::GET, "/api/v1/accounts/region")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let stats = rig.sandbox.stats();
    assert_eq!((stats.accepted, stats.rejected_429), (5, 6));
    assert_eq!(stats.max_in_any_window, 11);
    // 429s don't use up the window: once the admitted ones are a second old, room again.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (status, _) = rig
        .send(rig.request(Method::GET, "/api/v1/accounts/region"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn retry_after_can_be_left_out() {
    let rig = Rig::start(SandboxOptions {
        limit: Some(0),
        retry_after: false,
        ..SandboxOptions::default()
    })
    .await;
    let response = rig
        .request(Method::GET, "/api/v1/accounts/region")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn max_in_any_window_measures_bursts() {
    let rig = Rig::start(SandboxOptions {
        limit: None,
        ..SandboxOptions::default()
    })
    .await;
    for _ in 0..3 {
        rig.send(rig.request(Method::GET, "/api/v1/accounts/region"))
            .await;
    }
    assert_eq!(rig.sandbox.stats().max_in_any_window, 3);
    tokio::time::sleep(Duration::from_millis(1010)).await;
    // A second burst smaller than the first leaves the high-water mark alone.
    rig.send(rig.request(Method::GET, "/api/v1/accounts/region"))
        .await;
    let stats = rig.sandbox.stats();
    assert_eq!((stats.requests, stats.max_in_any_window), (4, 3));
}

#[tokio::test]
async fn dropped_requests_get_no_answer_and_are_not_applied() {
    let rig = Rig::start(SandboxOptions {
        drop_rate: 1.0,
        keep_requests: true,
        ..SandboxOptions::default()
    })
    .await;
    let sent = rig
        .request(Method::PUT, "/api/v1/customers/1")
        .body("{\"a\":1}")
        .send()
        .await;
    assert!(sent.is_err(), "expected a connection error, got {sent:?}");
    assert_eq!(rig.sandbox.person("1"), None);
    assert_eq!(rig.sandbox.stats().dropped, 1);
    assert_eq!(rig.sandbox.requests()[0].status, None);
}

#[tokio::test]
async fn failed_requests_get_503_without_retry_after() {
    let rig = Rig::start(SandboxOptions {
        fail_rate: 1.0,
        ..SandboxOptions::default()
    })
    .await;
    let response = rig.put_one().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(rig.sandbox.person("1"), None);
    assert_eq!(rig.sandbox.stats().failed_5xx, 1);
}

#[tokio::test]
async fn stray_429s_come_whatever_the_limit_and_say_wait_a_second_when_asked() {
    for retry_after in [false, true] {
        let rig = Rig::start(SandboxOptions {
            limit: None,
            stray_429_rate: 1.0,
            retry_after,
            ..SandboxOptions::default()
        })
        .await;
        let response = rig.put_one().await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let header = response.headers().get("retry-after").cloned();
        assert_eq!(
            header.as_ref().is_some_and(|v| v == "1"),
            retry_after,
            "{header:?}"
        );
        assert_eq!(rig.sandbox.person("1"), None);
        assert_eq!(rig.sandbox.stats().rejected_429, 1);
    }
}

#[tokio::test]
async fn stalls_and_latency_delay_the_answer() {
    let rig = Rig::start(SandboxOptions {
        stall_rate: 1.0,
        stall_for: Duration::from_millis(150),
        latency: Duration::from_millis(50),
        ..SandboxOptions::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(rig.identify("1", json!({"a": 1})).await, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(rig.sandbox.stats().stalled, 1);
    assert!(rig.sandbox.person("1").is_some());
}

#[tokio::test]
async fn misbehaviour_is_reproducible_with_a_seed() {
    /// Statuses of 30 sequential requests on one client; `None` = dropped.
    async fn outcomes(seed: u64) -> Vec<Option<StatusCode>> {
        let rig = Rig::start(SandboxOptions {
            fail_rate: 0.3,
            drop_rate: 0.3,
            seed: Some(seed),
            limit: None,
            ..SandboxOptions::default()
        })
        .await;
        let mut seen = Vec::new();
        for _ in 0..30 {
            let request = rig.request(Method::GET, "/api/v1/accounts/region");
            seen.push(request.send().await.ok().map(|r| r.status()));
        }
        let stats = rig.sandbox.stats();
        let dropped = seen.iter().filter(|s| s.is_none()).count() as u64;
        assert_eq!(stats.dropped, dropped);
        seen
    }
    let first = outcomes(7).await;
    assert_eq!(first, outcomes(7).await);
    // All three fates occur, and a cut connection doesn't spoil the client's next request.
    for fate in [
        None,
        Some(StatusCode::OK),
        Some(StatusCode::SERVICE_UNAVAILABLE),
    ] {
        assert!(first.contains(&fate), "{fate:?} missing from {first:?}");
    }
}

#[tokio::test]
async fn requests_are_not_kept_unless_asked() {
    let rig = Rig::start(SandboxOptions::default()).await;
    assert_eq!(rig.identify("1", json!({})).await, StatusCode::OK);
    assert!(rig.sandbox.requests().is_empty());
    let base = rig.sandbox.base_url();
    rig.sandbox.shutdown().await;
    let after = rig
        .http
        .get(format!("{base}/api/v1/accounts/region"))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown: {after:?}");
}

/// Runs futures concurrently on this task (no extra crate for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn every_kind_is_kept_and_each_invalid_one_named_in_a_207() {
    let rig = Rig::new().await;
    let acme = json!({"object_type_id": "1", "object_id": "acme"});
    let batch = json!({"batch": [
        {"type": "person", "identifiers": {"id": "1"}, "action": "identify", "attributes": {"a": 1}},
        {"type": "person", "identifiers": {"phone": "+14155552671"}, "action": "identify"},
        {"type": "person", "identifiers": {"phone": "555-1234"}, "action": "identify"},
        {"type": "person", "identifiers": {"id": "1"}, "action": "page", "name": "/pricing", "id": ULID_A},
        {"type": "person", "identifiers": {"id": "1"}, "action": "screen", "name": "Home", "id": ULID_B},
        {"type": "person", "identifiers": {"id": "1"}, "action": "add_device",
         "device": {"token": "t1", "platform": "ios", "last_used": 1_700_000_000, "attributes": {"v": "5"}}},
        {"type": "person", "identifiers": {"id": "1"}, "action": "add_device", "device": {"token": "t2"}},
        {"type": "person", "identifiers": {"id": "1"}, "action": "add_device",
         "device": {"token": "t3", "platform": "ios", "attributes": {"n": 1}}},
        {"type": "object", "identifiers": acme, "action": "identify", "attributes": {"name": "Acme"}},
        {"type": "object", "identifiers": {"object_type_id": "0", "object_id": "x"}, "action": "identify"},
        {"type": "person", "identifiers": {"id": "1"}, "action": "add_relationships",
         "cio_relationships": [{"identifiers": acme, "relationship_attributes": {"role": "admin"}}]},
        {"type": "person", "identifiers": {"id": "1"}, "action": "add_relationships", "cio_relationships": []},
        {"type": "person", "identifiers": {"id": "2"}, "action": "identify", "attributes": {"b": 2}},
        {"type": "person", "action": "merge", "primary": {"id": "1"}, "secondary": {"id": "2"}},
        {"type": "person", "action": "merge", "primary": {"id": "nobody"}, "secondary": {"id": "1"}},
        {"type": "person", "action": "merge", "primary": {"phone": "+14155552671"}, "secondary": {"id": "1"}},
    ]});
    let (status, body) = rig.json(Method::POST, "/api/v2/batch", batch).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let indices = batch_indices(&body);
    assert_eq!(indices, [2, 6, 7, 9, 11, 14, 15], "{body}");
    let sb = &rig.sandbox;
    assert!(sb.person("+14155552671").is_some());
    // Merged: the primary takes the secondary's attributes; the secondary is gone.
    assert_eq!(sb.person("1"), Some(map(json!({"a": 1, "b": 2}))));
    assert_eq!(sb.person("2"), None);
    assert_eq!(sb.devices("1").len(), 1);
    assert_eq!(sb.object("1", "acme"), Some(map(json!({"name": "Acme"}))));
    assert_eq!(
        sb.relationship("1", "1", "acme"),
        Some(map(json!({"role": "admin"})))
    );
    let kinds: Vec<&str> = sb.events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["page", "screen"]);
    assert_eq!(
        sb.summary_line(),
        "sandbox: 2 people stored, 0 events (0 duplicates), 1 page view, 1 screen view, \
         1 device, 1 object, 1 relationship, 1 merge, 0 suppressed, 0 deleted; 1 request \
         (7 invalid operations)"
    );

    // v1: devices, their removal, and merges.
    let device = json!({"device": {"id": "t9", "platform": "android"}});
    let (status, _) = rig
        .json(Method::PUT, "/api/v1/customers/1/devices", device)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb.devices("1").len(), 2);
    let gone = rig.request(Method::DELETE, "/api/v1/customers/1/devices/t9");
    assert_eq!(rig.send(gone).await.0, StatusCode::OK);
    assert_eq!(sb.devices("1").len(), 1);
    let merge = json!({"primary": {"id": "1"}, "secondary": {"phone": "+14155552671"}});
    let (status, _) = rig
        .json(Method::POST, "/api/v1/merge_customers", merge)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
