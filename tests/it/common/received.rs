//! What a sandbox received, read as operations: each request's (action, person id), one a
//! request or many in a batch, and how often it accepted each person's.

use std::collections::BTreeMap;

use cio_import::sandbox::Received;

use super::Server;

/// The operations `request` carried, as (action, person id): each of a batch's, or the one a
/// v1 request names (PUT an identify, DELETE a delete, any other by its method and path).
pub fn operations(request: &Received) -> Vec<(String, String)> {
    if let (Some(body), "POST") = (&request.body, request.method.as_str())
        && let Some(batch) = body.get("batch")
    {
        let op = |op: &serde_json::Value| {
            let action = op["action"].as_str().unwrap().to_owned();
            (action, op["identifiers"]["id"].as_str().unwrap().to_owned())
        };
        return batch.as_array().unwrap().iter().map(op).collect();
    }
    let action = match request.method.as_str() {
        "PUT" => "identify".to_owned(),
        "DELETE" => "delete".to_owned(),
        method => format!("{method} {}", request.path),
    };
    vec![(action, request.identifier.clone().unwrap_or_default())]
}

/// How many times `server` accepted an `action` for each person, one a request or many in a
/// batch.
pub fn accepted(server: &Server, action: &str) -> BTreeMap<String, u64> {
    let mut times = BTreeMap::new();
    for request in server.sent() {
        if request.status != Some(200) {
            continue;
        }
        for (_, id) in operations(&request)
            .into_iter()
            .filter(|(a, _)| a == action)
        {
            *times.entry(id).or_default() += 1;
        }
    }
    times
}
