//! Fixes the tool prints, pasted into a shell exactly as printed, do what they say: the
//! sandbox receives what the fix meant, even for a column named with a space, `$` or `'`.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{Server, killable, write};
use serde_json::json;

/// The run of `args` against `server`, with `fix` after them as a shell reads it: the words
/// of `args` are passed through, `fix` is pasted into the command line as it is.
fn pasted(server: &Server, dir: &Path, args: &[&str], fix: &str) -> Output {
    let inner = killable(dir, &server.sandbox.base_url());
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!(r#"exec "$0" "$@" {fix}"#))
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(["--batch", "1"])
        .args(args)
        .current_dir(dir);
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    sh.output().unwrap()
}

/// The text of `stderr` between `start` (included) and `end`.
fn between<'a>(stderr: &'a str, start: &str, end: &str) -> &'a str {
    let from = stderr
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {stderr}"));
    let rest = &stderr[from..];
    &rest[..rest
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} in {rest}"))]
}

#[test]
fn the_format_advice_for_a_column_named_with_a_space_and_a_dollar_pastes_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "id,Signup $Date\n1,11/22/2023 14:03\n");
    let server = Server::plain();
    let out = pasted(&server, d, &["u.csv"], "--type 'Signup $Date=timestamp'");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let fix = between(&stderr, "--type ", " reads it");
    assert_eq!(fix, "--type 'Signup $Date=timestamp:%m/%d/%Y %H:%M'");
    let out = pasted(&server, d, &["u.csv"], fix);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = server.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].identifier.as_deref(), Some("1"));
    // 2023-11-22T14:03:00Z.
    assert_eq!(
        sent[0].body.as_ref().unwrap()["Signup $Date"],
        json!(1_700_661_780)
    );
}

#[test]
fn the_email_advice_for_a_column_named_with_a_quote_and_a_dollar_pastes_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "User's $ID,plan\nann@x.io,pro\nbob@x.io,free\n");
    let server = Server::plain();
    let out = pasted(&server, d, &["u.csv"], r#""--rename=User's \$ID=id""#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let fix = between(&stderr, "pass --rename ", " in place of").trim_start_matches("pass ");
    assert_eq!(fix, r"--rename 'User'\''s $ID=email'");
    let out = pasted(&server, d, &["u.csv"], fix);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // The two of the first run, sent by id, then the two of the fixed one, by email.
    let sent = server.sent();
    let people: Vec<(&str, &serde_json::Value)> = sent[2..]
        .iter()
        .map(|r| (r.identifier.as_deref().unwrap(), r.body.as_ref().unwrap()))
        .collect();
    assert_eq!(
        people,
        [
            ("ann@x.io", &json!({"plan": "pro"})),
            ("bob@x.io", &json!({"plan": "free"})),
        ]
    );
}
