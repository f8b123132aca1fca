//! What an answer from the Track API means for the records it carried: the status classes,
//! the invalid operations a 207 names, and the API's reasons in messages.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// What one answer from the API means for the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Accepted,
    /// 207 to a batch: the operations listed were invalid, all the others were accepted.
    Partial(Vec<BatchError>),
    /// 429: everyone slows down; the record is tried again.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 408, 5xx gateways and network trouble: worth trying again.
    Retry {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Any other 4xx: the record itself is wrong and is never retried.
    Rejected {
        status: u16,
        message: String,
    },
    /// 401 or 403: the credentials are wrong; the whole run stops.
    Unauthorized {
        status: u16,
    },
}

/// One invalid operation named in a 207.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchError {
    pub index: usize,
    pub message: String,
}

/// Reads a 207 body, `{"errors": [{"batch_index", "reason", "field", "message"}]}`. It has
/// been seen to arrive as a JSON string holding that JSON, so both are read.
fn batch_errors(body: &str) -> Vec<BatchError> {
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let serde_json::Value::String(inner) = &value {
        value = serde_json::from_str(inner).unwrap_or_default();
    }
    let text =
        |e: &serde_json::Value, k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    value
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let index = usize::try_from(e.get("batch_index")?.as_u64()?).ok()?;
            let mut message = [text(e, "reason"), text(e, "message")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if let Some(field) = text(e, "field") {
                message.push_str(&format!(" (field {field})"));
            }
            Some(BatchError { index, message })
        })
        .collect()
}

/// Statuses worth retrying besides 429 (Customer.io's own clients use the same list).
const RETRY_STATUSES: [u16; 7] = [408, 500, 502, 503, 504, 522, 524];

/// Sorts a response into an [`Answer`]. `body` is the response text, used for messages.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Answer {
    let code = status.as_u16();
    if code == 207 {
        Answer::Partial(batch_errors(body))
    } else if status.is_success() {
        Answer::Accepted
    } else if code == 429 {
        Answer::RateLimited { retry_after }
    } else if code == 401 || code == 403 {
        Answer::Unauthorized { status: code }
    } else if RETRY_STATUSES.contains(&code) || status.is_server_error() {
        Answer::Retry {
            status: Some(code),
            retry_after,
            message: describe_status(status, body),
        }
    } else {
        Answer::Rejected {
            status: code,
            message: describe_status(status, body),
        }
    }
}

/// "400 Bad Request: <the API's error messages>".
pub(super) fn describe_status(status: StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Meta {
        meta: Errors,
    }
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    let detail = serde_json::from_str::<Meta>(body)
        .ok()
        .map(|m| {
            m.meta
                .errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    let detail = detail.trim();
    if detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_class_is_sorted() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(200), None, ""), Answer::Accepted);
        assert_eq!(classify(s(204), None, ""), Answer::Accepted);
        assert_eq!(
            classify(s(429), Some(Duration::from_secs(2)), ""),
            Answer::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        for code in [401, 403] {
            assert_eq!(
                classify(s(code), None, ""),
                Answer::Unauthorized { status: code }
            );
        }
        for code in [408, 500, 502, 503, 504, 522, 524, 599] {
            assert!(
                matches!(classify(s(code), None, ""), Answer::Retry { .. }),
                "{code}"
            );
        }
        for code in [400, 404, 409, 413, 422] {
            assert!(
                matches!(classify(s(code), None, ""), Answer::Rejected { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn a_207_names_its_invalid_operations_even_as_a_json_string() {
        let body = r#"{"errors":[{"batch_index":2,"reason":"invalid","field":"attributes.created_at","message":"not an integer"},{"batch_index":0,"reason":"required"}]}"#;
        let want = vec![
            BatchError {
                index: 2,
                message: "invalid: not an integer (field attributes.created_at)".into(),
            },
            BatchError {
                index: 0,
                message: "required".into(),
            },
        ];
        let s = StatusCode::MULTI_STATUS;
        assert_eq!(classify(s, None, body), Answer::Partial(want.clone()));
        let as_string = serde_json::to_string(body).unwrap();
        assert_eq!(classify(s, None, &as_string), Answer::Partial(want));
        assert_eq!(classify(s, None, "garbage"), Answer::Partial(vec![]));
    }

    #[test]
    fn rejection_messages_carry_the_apis_reasons() {
        let a = classify(
            StatusCode::BAD_REQUEST,
            None,
            r#"{"meta":{"errors":["attribute value too long"]}}"#,
        );
        assert_eq!(
            a,
            Answer::Rejected {
                status: 400,
                message: "400 Bad Request: attribute value too long".into()
            }
        );
    }
}
