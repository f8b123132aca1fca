//! What an answer from the Track API means for the records it carried: the status classes,
//! the invalid operations a 207 names, and the API's reasons in messages, with the
//! credentials a server may echo back taken out of them.

use std::borrow::Cow;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::track::Secret;

/// What one answer from the API means for the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Accepted,
    /// 207 to a batch: the operations listed were invalid, all the others were accepted.
    /// Empty when the answer does not say which: a body cut off, not the documented shape,
    /// or an error whose `batch_index` is not an index (a whole number from 0).
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
    /// Any other 4xx (the record itself is wrong) or a redirect (the endpoint is): never
    /// retried.
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

/// What of an answer was read: its status line and headers, and its body up to
/// `body_cap`.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    /// Where a redirect pointed.
    pub location: Option<String>,
    pub body: Body,
}

/// An answer's body, or as much of it as was read.
#[derive(Debug, Default)]
pub struct Body {
    pub text: String,
    /// The body went on past `body_cap`.
    pub cut: bool,
}

/// How much of a body is read: a 207's list of errors may be long; any other body is only
/// shown in a message, and a server (or a proxy) may send gigabytes of one.
pub fn body_cap(status: StatusCode) -> usize {
    if status == StatusCode::MULTI_STATUS {
        16 << 20
    } else {
        ERROR_BODY_CAP
    }
}

const ERROR_BODY_CAP: usize = 64 << 10;

/// The credentials a server may echo back (the key, and the Basic token that carries it),
/// taken out of every message made from an answer.
#[derive(Clone)]
pub struct Redact {
    secrets: [Secret; 2],
}

impl Redact {
    pub fn new(api_key: &Secret, token: &Secret) -> Redact {
        Redact {
            secrets: [api_key.clone(), token.clone()],
        }
    }

    /// `text` with every secret in it replaced by `[redacted]`.
    pub fn apply<'a>(&self, text: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
        let mut text = text.into();
        for secret in self.secrets.iter().map(Secret::expose) {
            if !secret.is_empty() && text.contains(secret) {
                text = Cow::Owned(text.replace(secret, "[redacted]"));
            }
        }
        text
    }
}

/// Reads a 207 body, `{"errors": [{"batch_index", "reason", "field", "message"}]}`. It has
/// been seen to arrive as a JSON string holding that JSON, so both are read. An error whose
/// index is unusable leaves the whole list unattributed (empty), so that no operation is
/// taken as accepted on an answer that may have refused it.
fn batch_errors(body: &Body, redact: &Redact) -> Vec<BatchError> {
    if body.cut {
        return Vec::new();
    }
    let mut value: serde_json::Value = serde_json::from_str(&body.text).unwrap_or_default();
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
        .map(|e| {
            let index = usize::try_from(e.get("batch_index")?.as_u64()?).ok()?;
            let mut message = [text(e, "reason"), text(e, "message")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if let Some(field) = text(e, "field") {
                message.push_str(&format!(" (field {field})"));
            }
            let message = redact.apply(message).into_owned();
            Some(BatchError { index, message })
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// Statuses worth retrying besides 429 (Customer.io's own clients use the same list).
const RETRY_STATUSES: [u16; 7] = [408, 500, 502, 503, 504, 522, 524];

/// Sorts an answer into an [`Answer`]; messages carry what the body says.
pub fn classify(reply: &Reply, redact: &Redact) -> Answer {
    let Reply {
        status,
        retry_after,
        ..
    } = *reply;
    let code = status.as_u16();
    if code == 207 {
        Answer::Partial(batch_errors(&reply.body, redact))
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
            message: describe_status(status, &reply.body, redact),
        }
    } else if status.is_redirection() {
        Answer::Rejected {
            status: code,
            message: describe_redirect(status, reply.location.as_deref(), redact),
        }
    } else {
        Answer::Rejected {
            status: code,
            message: describe_status(status, &reply.body, redact),
        }
    }
}

/// "400 Bad Request: <the API's error messages>".
fn describe_status(status: StatusCode, body: &Body, redact: &Redact) -> String {
    #[derive(Deserialize)]
    struct Meta {
        meta: Errors,
    }
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    // Secrets go before the text is cut, so that none is left cut in half.
    let detail = serde_json::from_str::<Meta>(&body.text)
        .ok()
        .map(|m| {
            let joined = m
                .meta
                .errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; ");
            redact.apply(joined).into_owned()
        })
        .unwrap_or_else(|| redact.apply(&*body.text).chars().take(300).collect());
    let detail = detail.trim();
    let cut = if body.cut {
        format!(" [cut at {} KiB]", ERROR_BODY_CAP >> 10)
    } else {
        String::new()
    };
    if detail.is_empty() {
        format!("{status}{cut}")
    } else {
        format!("{status}: {detail}{cut}")
    }
}

/// A redirect is never followed: it would turn a POST into a bodiless GET that "succeeds",
/// or take the records and the credentials to another host. Customer.io redirects a
/// workspace that calls the other region's host.
fn describe_redirect(status: StatusCode, location: Option<&str>, redact: &Redact) -> String {
    let to = location.map_or_else(
        || " (without a Location)".to_owned(),
        |l| format!(" to {}", redact.apply(l)),
    );
    format!(
        "{status}: the request was redirected{to}; redirects are not followed: a proxy may be \
         answering, or --endpoint (or --region) is wrong"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, retry_after: Option<Duration>, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after,
            location: None,
            body: Body {
                text: body.to_owned(),
                cut: false,
            },
        }
    }

    fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Answer {
        super::classify(&reply(status.as_u16(), retry_after, body), &no_secrets())
    }

    fn no_secrets() -> Redact {
        Redact::new(&Secret::new(""), &Secret::new(""))
    }

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

    #[test]
    fn a_207_error_without_a_usable_index_leaves_the_list_unattributed() {
        let s = StatusCode::MULTI_STATUS;
        for unusable in [r#""1""#, "1.0", "-1", "null", "18446744073709551616"] {
            let body = format!(
                r#"{{"errors":[{{"batch_index":0,"reason":"a"}},{{"batch_index":{unusable},"reason":"b"}}]}}"#
            );
            assert_eq!(
                classify(s, None, &body),
                Answer::Partial(vec![]),
                "{unusable}"
            );
        }
        for body in [
            r#"{"errors":[{"batch_index":0},{"reason":"b"}]}"#,
            r#"{"errors":[{"batch_index":0},"b"]}"#,
            r#"{"errors":[]}"#,
        ] {
            assert_eq!(classify(s, None, body), Answer::Partial(vec![]), "{body}");
        }
        // A body cut off may have named more than what was read.
        let mut cut = reply(207, None, r#"{"errors":[{"batch_index":0}]}"#);
        assert_eq!(
            super::classify(&cut, &no_secrets()),
            Answer::Partial(vec![BatchError {
                index: 0,
                message: String::new()
            }])
        );
        cut.body.cut = true;
        assert_eq!(
            super::classify(&cut, &no_secrets()),
            Answer::Partial(vec![])
        );
    }

    #[test]
    fn a_redirect_is_rejected_naming_where_it_pointed() {
        for code in [301, 302, 303, 307, 308] {
            let mut r = reply(code, None, "moved");
            r.location = Some("https://elsewhere.example/api".into());
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                super::classify(&r, &no_secrets()),
                Answer::Rejected {
                    status: code,
                    message: format!(
                        "{status}: the request was redirected to https://elsewhere.example/api; \
                         redirects are not followed: a proxy may be answering, or --endpoint (or \
                         --region) is wrong"
                    )
                }
            );
        }
        let r = reply(302, None, "");
        let Answer::Rejected { message, .. } = super::classify(&r, &no_secrets()) else {
            panic!("not rejected");
        };
        assert!(
            message.starts_with("302 Found: the request was redirected (without a Location);"),
            "{message}"
        );
    }

    #[test]
    fn a_body_cut_at_its_cap_says_so() {
        assert_eq!(body_cap(StatusCode::MULTI_STATUS), 16 << 20);
        for code in [200, 400, 500] {
            assert_eq!(body_cap(StatusCode::from_u16(code).unwrap()), 64 << 10);
        }
        let mut r = reply(500, None, &"x".repeat(400));
        r.body.cut = true;
        assert_eq!(
            super::classify(&r, &no_secrets()),
            Answer::Retry {
                status: Some(500),
                retry_after: None,
                message: format!(
                    "500 Internal Server Error: {} [cut at 64 KiB]",
                    "x".repeat(300)
                )
            }
        );
        r.body.text.clear();
        let Answer::Retry { message, .. } = super::classify(&r, &no_secrets()) else {
            panic!("not retried");
        };
        assert_eq!(message, "500 Internal Server Error [cut at 64 KiB]");
    }

    #[test]
    fn echoed_credentials_are_redacted_before_a_message_is_cut() {
        let redact = Redact::new(&Secret::new("sk-key"), &Secret::new("dG9rZW4="));
        let message = |r: &Reply| match super::classify(r, &redact) {
            Answer::Rejected { message, .. } | Answer::Retry { message, .. } => message,
            Answer::Partial(errors) => errors[0].message.clone(),
            other => panic!("{other:?}"),
        };
        // Raw text, the token straddling the 300th character: it goes before the cut.
        let raw = format!("{} Basic dG9rZW4= sk-key", "x".repeat(290));
        assert_eq!(
            message(&reply(400, None, &raw)),
            format!("400 Bad Request: {} Basic [re", "x".repeat(290))
        );
        let short = "you sent Basic dG9rZW4= for site:sk-key";
        assert_eq!(
            message(&reply(400, None, short)),
            "400 Bad Request: you sent Basic [redacted] for site:[redacted]"
        );
        // Escaped in JSON, in the API's errors and in a 207's.
        let escaped = r#"{"meta":{"errors":["key \u0073k-key, token dG9rZW4\u003d"]}}"#;
        assert_eq!(
            message(&reply(500, None, escaped)),
            "500 Internal Server Error: key [redacted], token [redacted]"
        );
        let partial = r#"{"errors":[{"batch_index":0,"reason":"sk-key","field":"dG9rZW4="}]}"#;
        assert_eq!(
            message(&reply(207, None, partial)),
            "[redacted] (field [redacted])"
        );
        let mut moved = reply(302, None, "");
        moved.location = Some("https://x.example/?k=sk-key".into());
        assert!(message(&moved).contains("to https://x.example/?k=[redacted];"));
    }
}
