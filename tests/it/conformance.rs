//! Conformance: every request body the sandbox receives, across runs of every kind (in batches
//! and one a request), validates against the request schema of its path and method in
//! Customer.io's own OpenAPI description of the Track API.
//!
//! tests/track-openapi.json is that description, "Customer.io Track API 1.0.0", OpenAPI 3.1,
//! as published at docs.customer.io/files/journeys-track.json (readable at
//! docs.customer.io/integrations/api/track/); this copy is of a public archive of it taken in
//! October 2026. Its request-body schemas are the authority on what a request may hold.
//!
//! It is validated as JSON Schema 2020-12, `#/components/...` resolved against the whole file,
//! with two known loosenings of the file, each a place where it is stricter than Customer.io's
//! documented behaviour (see [`loosen`]).

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use cio_import::sandbox::Received;
use common::{Run, Server, every_kind, fixture, write};
use serde_json::{Value, json};

/// The published file, parsed.
fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/track-openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Where a request's schema is: its path template's JSON pointer segment.
fn pointer_segment(template: &str) -> String {
    template.replace('~', "~0").replace('/', "~1")
}

/// The known looseness, loosened: where the file refuses what Customer.io documents.
///
/// - The v1 identify body lists only string, integer and boolean attribute values, while
///   Customer.io documents numbers with fractions, and JSON objects and arrays, as attributes
///   (and v2 identify takes any value): any value is allowed there.
/// - `anonymousEventsRequest` is a `oneOf` whose first alternative allows `type` page and
///   screen, which its second and third alternatives match too: a page or screen view matches
///   two alternatives, so `oneOf` refuses every one. It is read as `anyOf`.
fn loosen(doc: &mut Value) {
    let identify = format!(
        "/paths/{}/put/requestBody/content/application~1json/schema/additionalProperties",
        pointer_segment("/api/v1/customers/{identifier}")
    );
    *doc.pointer_mut(&identify).expect("the v1 identify schema") = json!(true);
    let anonymous = doc
        .pointer_mut("/components/schemas/anonymousEventsRequest")
        .and_then(Value::as_object_mut)
        .expect("anonymousEventsRequest");
    let alternatives = anonymous.remove("oneOf").expect("a oneOf");
    anonymous.insert("anyOf".into(), alternatives);
}

/// A validator for the request body of `method` on `template`, its refs resolved in `doc`:
/// the document itself is the schema, pointing at the body's schema (the rest of it is keywords
/// JSON Schema ignores).
fn validator(doc: &Value, template: &str, method: &str) -> Option<jsonschema::Validator> {
    let pointer = format!(
        "/paths/{}/{method}/requestBody/content/application~1json/schema",
        pointer_segment(template)
    );
    doc.pointer(&pointer)?;
    let mut root = doc.clone();
    // A fragment is a URI's: the braces of a path template are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    Some(jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{template}: {e}")))
}

/// The path template of the file that `path` is an instance of.
fn template_of<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')))
        })
}

/// Runs of every kind, each way they are sent: [`every_kind`] first (people, then what needs
/// them), the other kinds after, destruction last.
fn runs() -> Vec<Run> {
    let typed = "id,age,vip,prefs,note,created_at\n\
                 t1,34,true,\"{\"\"tone\"\":\"\"dark\"\"}\",,2024-01-01\n\
                 t2,-1.5,false,[1],hello,2024-02-01\n";
    let anonymous = "{\"anonymous_id\":\"anon-1\",\"name\":\"viewed\",\"timestamp\":1717600000}\n\
                     {\"id\":\"1001\",\"name\":\"clicked\",\"data\":{\"x\":1.5}}\n";
    let types = [
        "--type",
        "age=number",
        "--type",
        "vip=bool",
        "--type",
        "prefs=json",
    ];
    let object = ["--entity", "object", "--object-type", "1"];
    let mut runs = every_kind();
    runs.extend([
        ("people.ndjson", fixture("people.ndjson"), vec![]),
        (
            "typed.csv",
            typed.into(),
            [&["--empty", "clear"][..], &types].concat(),
        ),
        ("users.csv", fixture("users.csv"), vec!["--only-existing"]),
        (
            "events.csv",
            fixture("events.csv"),
            vec!["--action", "event", "--type", "total=number"],
        ),
        (
            "users.csv",
            fixture("users.csv"),
            vec!["--action", "event", "--event-name", "synced"],
        ),
        (
            "anonymous.ndjson",
            anonymous.into(),
            vec!["--action", "event"],
        ),
        ("pages.csv", fixture("pages.csv"), vec!["--action", "page"]),
        (
            "screens.csv",
            fixture("screens.csv"),
            vec!["--action", "screen"],
        ),
        (
            "companies.csv",
            fixture("companies.csv"),
            [&object[..], &["--action", "delete", "--yes"]].concat(),
        ),
        (
            "users.csv",
            fixture("users.csv"),
            vec!["--action", "unsuppress"],
        ),
        (
            "users.csv",
            fixture("users.csv"),
            vec!["--action", "suppress", "--yes"],
        ),
        (
            "users.csv",
            fixture("users.csv"),
            vec!["--action", "delete", "--yes"],
        ),
    ]);
    runs
}

/// Every request of the runs, in batches of `batch`.
fn received(batch: &str) -> Vec<Received> {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    for (name, text, args) in runs() {
        let input = write(dir.path(), name, &text);
        let out = server
            .cmd(dir.path())
            .arg(&input)
            .args(&args)
            .args(["--batch", batch])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} --batch {batch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stats = server.sandbox.stats();
    assert_eq!(stats.invalid_ops, 0, "{}", server.sandbox.summary_line());
    server.sandbox.requests()
}

#[test]
fn every_request_body_validates_against_the_published_schema_of_its_path() {
    let mut doc = openapi();
    loosen(&mut doc);
    let mut failures = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for batch in ["1", "100"] {
        for request in received(batch) {
            let method = request.method.to_lowercase();
            let Some(template) = template_of(&doc, &request.path) else {
                failures.push(format!("{} {}: no such path", request.method, request.path));
                continue;
            };
            if doc["paths"][template].get(&method).is_none() {
                failures.push(format!("{} {template}: no such method", request.method));
                continue;
            }
            seen.insert(format!("{} {template}", request.method));
            let Some(body) = &request.body else {
                let required = &doc["paths"][template][&method]["requestBody"]["required"];
                if required == true {
                    failures.push(format!("{} {template}: no body", request.method));
                }
                continue;
            };
            let ops = match body["batch"].as_array() {
                Some(ops) if template == "/api/v2/batch" => ops.clone(),
                _ => vec![body.clone()],
            };
            for op in ops.iter().filter(|_| template.starts_with("/api/v2")) {
                seen.insert(format!("{} {}", op["type"], op["action"]));
            }
            let Some(validator) = validator(&doc, template, &method) else {
                failures.push(format!(
                    "{} {template}: a body, and no schema",
                    request.method
                ));
                continue;
            };
            for error in validator.iter_errors(body).take(3) {
                failures.push(format!(
                    "{} {} --batch {batch}: {error} at {}\n  {body}",
                    request.method,
                    request.path,
                    error.instance_path()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kind was sent, every way: the test validated something of each.
    for expected in [
        "GET /api/v1/accounts/region",
        "PUT /api/v1/customers/{identifier}",
        "DELETE /api/v1/customers/{identifier}",
        "POST /api/v1/customers/{identifier}/events",
        "POST /api/v1/events",
        "PUT /api/v1/customers/{identifier}/devices",
        "DELETE /api/v1/customers/{identifier}/devices/{device_id}",
        "POST /api/v1/customers/{identifier}/suppress",
        "POST /api/v1/customers/{identifier}/unsuppress",
        "POST /api/v2/entity",
        "POST /api/v2/batch",
    ] {
        assert!(seen.contains(expected), "{expected} never sent: {seen:#?}");
    }
    for action in [
        "identify",
        "event",
        "page",
        "screen",
        "delete",
        "suppress",
        "unsuppress",
        "add_device",
        "delete_device",
        "merge",
        "add_relationships",
        "delete_relationships",
    ] {
        assert!(
            seen.contains(&format!("\"person\" \"{action}\"")),
            "{action}: {seen:#?}"
        );
    }
    for action in ["identify", "delete"] {
        assert!(
            seen.contains(&format!("\"object\" \"{action}\"")),
            "{action}: {seen:#?}"
        );
    }
}

#[test]
fn the_schemas_refuse_what_they_should_and_the_looseness_is_real() {
    let doc = openapi();
    let batch = validator(&doc, "/api/v2/batch", "post").unwrap();
    // The shape anonymous events had in batches before they went to /api/v1/events.
    let anonymous = json!({"batch": [{"type": "person", "action": "event",
                                      "anonymous_id": "a1", "name": "viewed"}]});
    assert!(!batch.is_valid(&anonymous));
    let event = json!({"batch": [{"type": "person", "action": "event",
                                  "identifiers": {"id": "1"}, "name": "viewed"}]});
    assert!(batch.is_valid(&event));
    // Unloosened, the file refuses a fractional attribute in v1 and any anonymous page view.
    let identify = validator(&doc, "/api/v1/customers/{identifier}", "put").unwrap();
    assert!(!identify.is_valid(&json!({"score": 2.5})));
    assert!(identify.is_valid(&json!({"score": 2})));
    let page = json!({"anonymous_id": "a1", "name": "/", "type": "page"});
    assert!(
        !validator(&doc, "/api/v1/events", "post")
            .unwrap()
            .is_valid(&page)
    );
    let mut loose = doc.clone();
    loosen(&mut loose);
    assert!(
        validator(&loose, "/api/v1/events", "post")
            .unwrap()
            .is_valid(&page)
    );
}
