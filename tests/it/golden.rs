//! What users see, pinned byte for byte: the request bodies of every operation kind (v1,
//! `/api/v2/entity` and `/api/v2/batch`), every failures-file line shape, a checkpoint file, the `--summary` JSON,
//! the human summary and `--help`. A refactor must leave every file under tests/golden/ as
//! it is; a change meant to alter what users see rewrites them with
//!
//!     UPDATE_GOLDEN=1 cargo test --test it golden::
//!
//! and the diff of tests/golden/ shows the change for review.

use crate::common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Hit, Reply, Scripted, bin, write};

/// Compares `actual` with tests/golden/`name` (or rewrites it under UPDATE_GOLDEN=1).
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with UPDATE_GOLDEN=1 cargo test --test it golden::",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from tests/golden/{name}\n--- expected\n{expected}\n--- actual\n{actual}\n\
         (if the change is meant, rewrite it with UPDATE_GOLDEN=1 cargo test --test it golden::)"
    );
}

/// The fixtures of the README, copied into `dir`.
fn fixtures(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
}

/// Splits the elements of a JSON array's text at its top-level commas, each kept exactly as
/// sent (a parsed value would print its keys sorted and hide a change of order).
fn elements(array: &str) -> Vec<&str> {
    let (mut depth, mut in_string, mut escaped, mut start) = (0u32, false, false, 0);
    let mut out = Vec::new();
    for (i, b) in array.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                out.push(&array[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !array.is_empty() {
        out.push(&array[start..]);
    }
    out
}

/// The ids of events without a time (their ULID's time part is 0) with their hash part as
/// `<from the path>`: it takes the input's full path, the temporary folder's (the hash itself
/// is pinned in `record::event_id`'s tests).
fn untimed_ids(text: &str) -> String {
    const UNTIMED: &str = "\"id\":\"0000000000";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(UNTIMED) {
        let end = at + UNTIMED.len();
        out.push_str(&rest[..end]);
        out.push_str("<from the path>");
        rest = rest.get(end + 16..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// What the server received, as text: each v1 request as its method, path and body in the
/// order sent; each batch's operations, one a line, sorted (which operations share a
/// request depends on timing; what each one is does not).
fn received(hits: &[Hit]) -> String {
    let mut out = String::new();
    let mut batched = Vec::new();
    for hit in hits {
        let body = untimed_ids(&String::from_utf8(hit.body.clone()).unwrap());
        if hit.path == "/api/v2/batch" {
            let inner = body
                .strip_prefix(r#"{"batch":["#)
                .and_then(|b| b.strip_suffix("]}"))
                .unwrap_or_else(|| panic!("not a batch body: {body}"));
            batched.extend(elements(inner).into_iter().map(str::to_owned));
        } else {
            out.push_str(&format!("{} {}\n{body}\n", hit.method, hit.path));
        }
    }
    batched.sort();
    if !batched.is_empty() {
        out.push_str("POST /api/v2/batch\n");
        for op in batched {
            out.push_str(&op);
            out.push('\n');
        }
    }
    out
}

/// A server that accepts everything.
fn accepting() -> Scripted {
    Scripted::start(|_| Reply::status(200))
}

/// Runs the binary against `server` with `args` in `dir` (one request at a time, so the v1
/// order is the file's) and returns what the server received.
fn import(dir: &Path, server: &Scripted, batch: bool, args: &[&str]) -> String {
    let before = server.hits().len();
    let mut cmd = server.cmd(dir);
    cmd.args(["--concurrency", "1"]).args(args);
    if batch {
        cmd.args(["--batch", "100"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    received(&server.hits()[before..])
}

/// Every operation kind, sent one a request (v1) and in batches (v2).
#[test]
fn request_bodies_of_every_operation_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(d);
    write(
        d,
        "typed.csv",
        "id,age,vip,joined,prefs,note,created_at\n\
         t1,34,true,2024-07-01T10:00:00+02:00,\"{\"\"tone\"\":\"\"dark\"\",\"\"n\"\":[1,2]}\",,2024-01-01\n\
         t2,-1.5,false,1717600000,[],hello,\n",
    );
    write(
        d,
        "anonymous.ndjson",
        "{\"anonymous_id\":\"anon-1\",\"name\":\"viewed\",\"timestamp\":1717600000,\"page\":\"/pricing\"}\n\
         {\"id\":\"1001\",\"name\":\"clicked\",\"event_id\":\"01J0000000000000000000000A\",\"data\":{\"x\":1}}\n",
    );
    let server = accepting();
    let typed = [
        "--type",
        "age=number",
        "--type",
        "vip=bool",
        "--type",
        "joined=timestamp",
        "--type",
        "prefs=json",
    ];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("identify-csv", vec!["users.csv"]),
        ("identify-ndjson", vec!["people.ndjson"]),
        (
            "identify-typed-empty-clear",
            [&["typed.csv", "--empty", "clear"][..], &typed].concat(),
        ),
        (
            "event",
            vec![
                "events.csv",
                "--action",
                "event",
                "--type",
                "total=number",
                "--type",
                "items=number",
            ],
        ),
        (
            "event-named-by-flag",
            vec!["users.csv", "--action", "event", "--event-name", "synced"],
        ),
        (
            "event-anonymous",
            vec!["anonymous.ndjson", "--action", "event"],
        ),
        ("page", vec!["pages.csv", "--action", "page"]),
        ("screen", vec!["screens.csv", "--action", "screen"]),
        ("identify-phone", vec!["phones.csv", "--id-column", "phone"]),
        (
            "identify-only-existing",
            vec!["phones.csv", "--id-column", "phone", "--only-existing"],
        ),
        ("add-device", vec!["devices.csv", "--action", "add-device"]),
        (
            "delete-device",
            vec!["devices.csv", "--action", "delete-device"],
        ),
        ("merge", vec!["merges.csv", "--action", "merge", "--yes"]),
        (
            "object-identify",
            vec!["companies.csv", "--entity", "object", "--object-type", "1"],
        ),
        (
            "object-delete",
            vec![
                "companies.csv",
                "--entity",
                "object",
                "--object-type",
                "1",
                "--action",
                "delete",
                "--yes",
            ],
        ),
        (
            "add-relationships",
            vec![
                "memberships.csv",
                "--action",
                "add-relationships",
                "--object-type",
                "1",
            ],
        ),
        (
            "delete-relationships",
            vec![
                "memberships.csv",
                "--action",
                "delete-relationships",
                "--object-type",
                "1",
            ],
        ),
        ("delete", vec!["users.csv", "--action", "delete", "--yes"]),
        (
            "suppress",
            vec!["users.csv", "--action", "suppress", "--yes"],
        ),
        ("unsuppress", vec!["users.csv", "--action", "unsuppress"]),
    ];
    let mut out = String::new();
    for (name, args) in &cases {
        for batch in [false, true] {
            out.push_str(&format!(
                "## {name} ({})\n",
                if batch { "--batch 100" } else { "--batch 1" }
            ));
            out.push_str(&import(d, &server, batch, args));
        }
    }
    golden("requests.txt", &out);
}

/// Replaces the temporary folder's path with `<dir>`, a loopback port with `<port>`, and
/// each timing figure with `<t>`.
fn normalise(text: &str, dir: &Path) -> String {
    let mut s = text.replace(&dir.display().to_string(), "<dir>");
    for key in [
        "127.0.0.1:",
        "\"elapsed_s\": ",
        "\"accepted_per_s\": ",
        " in ",
        ", ",
    ] {
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(at) = rest.find(key) {
            let after = &rest[at + key.len()..];
            let number_len = after
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(after.len());
            let unit = &after[number_len..];
            let varies = number_len > 0
                && (key.starts_with('"')
                    || key.starts_with("127")
                    || (key == " in " && unit.starts_with("s:"))
                    || (key == ", " && unit.starts_with(" accepted/s")));
            out.push_str(&rest[..at + key.len()]);
            out.push_str(match varies {
                true if key.starts_with("127") => "<port>",
                true => "<t>",
                false => &after[..number_len],
            });
            rest = &after[number_len..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

/// Where person 1002's operation stands in a batch body.
fn person_1002_at(body: &[u8]) -> Option<usize> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body["batch"]
        .as_array()?
        .iter()
        .position(|op| op["identifiers"]["id"] == "1002")
}

/// One line of each shape the failures file holds: an invalid CSV row, an invalid NDJSON
/// line, an unreadable row kept as `_raw`, a v1 refusal, retries run out, a batch item a 207
/// named; and the summaries of the run that wrote them.
#[test]
fn failures_lines_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(d);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken/invalid_utf8.csv"),
        d.join("unreadable.csv"),
    )
    .unwrap();
    write(
        d,
        "odd.ndjson",
        "{\"id\":\"n1\",\"age\":\"x\"}\n[1,2]\n{\"email\":\"ok@example.com\"}\n{\"plan\":\"no identifier\"}\n",
    );
    // 1002 is refused (in a batch, by a 207 naming it), 1005 keeps failing.
    let server = Scripted::start(|hit| {
        match (hit.path.as_str(), hit.id()) {
        (_, Some("1002")) => Reply::status(400),
        (_, Some("1005")) => Reply::status(503),
        ("/api/v2/batch", _) => match person_1002_at(&hit.body) {
            Some(i) => Reply::status(207).body(format!(
                r#"{{"errors":[{{"batch_index":{i},"reason":"invalid","field":"identifiers","message":"no such person"}}]}}"#
            )),
            None => Reply::status(200),
        },
        _ => Reply::status(200),
    }
    });
    let mut out = String::new();
    let runs: [(&str, &[&str]); 4] = [
        (
            "signups-typed",
            &[
                "signups.csv",
                "--type",
                "age=number",
                "--type",
                "newsletter=bool",
                "--type",
                "signed_up_at=timestamp",
            ],
        ),
        ("unreadable-and-odd", &["unreadable.csv", "odd.ndjson"]),
        ("refused-and-retried", &["users.csv", "--max-retries", "1"]),
        (
            "batch-207",
            &["events.csv", "--action", "event", "--batch", "100"],
        ),
    ];
    for (name, args) in runs {
        let failures = format!("{name}.failures.ndjson");
        let summary = format!("{name}.summary.json");
        let run = server
            .cmd(d)
            .args(["--concurrency", "1"])
            .args(args)
            .args(["--failures", &failures, "--summary", &summary])
            .output()
            .unwrap();
        out.push_str(&format!(
            "## {name}: exit {:?}\n### stderr\n{}### {failures}\n{}### {summary}\n{}\n",
            run.status.code(),
            String::from_utf8_lossy(&run.stderr),
            std::fs::read_to_string(d.join(&failures)).unwrap_or_default(),
            std::fs::read_to_string(d.join(&summary)).unwrap(),
        ));
    }
    golden("failures.txt", &normalise(&out, d));
}

/// The checkpoint a run leaves when it stops part-way (the credentials refused after three
/// people), with the input's time set so that its fingerprint is the same on every run.
#[test]
fn checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(d);
    let input = d.join("users.csv");
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .unwrap();
    let server = Scripted::start(|hit| Reply::status(if hit.n < 3 { 200 } else { 401 }));
    let run = server
        .cmd(d)
        .args(["--concurrency", "1", "users.csv"])
        .output()
        .unwrap();
    let checkpoint = d.join("users.checkpoint.json");
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    golden(
        "checkpoint.txt",
        &normalise(
            &format!(
                "## exit {:?}\n### stderr\n{}### users.checkpoint.json\n{text}\n",
                run.status.code(),
                String::from_utf8_lossy(&run.stderr)
            ),
            d,
        ),
    );
}

/// `--help`, and the messages of a few usage and setup errors.
#[test]
fn help_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixtures(d);
    let mut out = String::new();
    let cases: [&[&str]; 6] = [
        &["--help"],
        &["users.csv", "--event-name", "x"],
        &["users.txt"],
        &["-"],
        &["users.csv"],
        &["users.csv", "--rate", "0"],
    ];
    for args in cases {
        let run = bin(d).args(args).output().unwrap();
        out.push_str(&format!(
            "## {}: exit {:?}\n### stdout\n{}### stderr\n{}",
            args.join(" "),
            run.status.code(),
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        ));
    }
    golden("help-and-errors.txt", &normalise(&out, d));
}
