//! How messages name columns the column flags touched: a renamed (or lifted) column by the
//! name the input has, with the flag; flags that another flag renames away, that chain, or
//! that would be silently ignored, refused naming both; NDJSON flags no line used, warned.

use crate::common;

use std::path::Path;

use common::{Server, bin, read_ndjson, write};
use serde_json::{Value, json};

/// A dry run with `args`: its exit code and stderr.
fn dry(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = bin(dir).arg("--dry-run").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stderr)
}

/// A run against `server`, one record a request: its exit code and stderr.
fn run(server: &Server, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = server.cmd(dir).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stderr)
}

/// A Segment export's event and person, as Customer.io names them.
const SEGMENT: [&str; 6] = [
    "--action",
    "event",
    "--rename",
    "userId=id",
    "--rename",
    "event=name",
];

/// The warnings on `stderr` that hold `about`.
fn warnings<'a>(stderr: &'a str, about: &str) -> Vec<&'a str> {
    let warning = |l: &&str| l.contains(": warning: ") && l.contains(about);
    stderr.lines().filter(warning).collect()
}

#[test]
fn a_renamed_column_is_named_as_the_file_has_it_and_its_failures_line_replays() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "u.csv",
        "Customer ID,Create Date,plan\n,2024-03-05,pro\n7,11/22/2023,pro\n8,2024-03-06,pro\n",
    );
    let flags = [
        "--rename",
        "Customer ID=id",
        "--rename",
        "Create Date=created_at",
    ];
    let server = Server::plain();
    let args = [&["u.csv", "--failures", "f.ndjson"][..], &flags].concat();
    let (code, stderr) = run(&server, d, &args);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        warnings(&stderr, ""),
        [
            "cio-import: warning: u.csv line 2: column \"Customer ID\" (--rename 'Customer \
             ID=id') is empty; every row needs an identifier",
            "cio-import: warning: u.csv line 3: column \"Create Date\" (--rename 'Create \
             Date=created_at'): \"11/22/2023\" is not a timestamp: use RFC 3339 \
             (2024-03-05T10:00:00Z), a date (2024-03-05) or Unix seconds; --type \
             created_at=timestamp:%m/%d/%Y reads it (created_at is read as a timestamp by \
             default; --type created_at=string sends it as text)",
        ]
    );
    let failures = read_ndjson(&d.join("f.ndjson"));
    let columns: Vec<&Value> = failures.iter().map(|f| &f["_error"]["column"]).collect();
    assert_eq!(columns, ["Customer ID", "Create Date"]);
    // Each names a key its line holds.
    for f in &failures {
        let column = f["_error"]["column"].as_str().unwrap();
        assert!(f.get(column).is_some(), "{f}");
    }
    // The line fixed under the column it names replays with the same flags.
    let mut line = failures[1].clone();
    line["Create Date"] = json!("2023-11-22");
    write(d, "fixed.ndjson", &format!("{line}\n"));
    let (code, stderr) = run(&server, d, &[&["fixed.ndjson"][..], &flags].concat());
    assert_eq!(code, 0, "{stderr}");
    let bodies: Vec<Value> = server.sent().into_iter().filter_map(|r| r.body).collect();
    assert_eq!(
        bodies.last().unwrap(),
        &json!({"plan": "pro", "created_at": 1700611200})
    );
}

#[test]
fn an_ndjson_key_renamed_or_lifted_is_named_as_the_line_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "e.ndjson",
        "{\"userId\":\"\",\"event\":\"e\"}\n\
         {\"userId\":\"1\",\"event\":\"e\",\"properties\":{\"amount\":\"x\"}}\n",
    );
    let (code, stderr) = dry(
        d,
        &[
            &["e.ndjson"][..],
            &SEGMENT,
            &["--flatten", "properties", "--type", "amount=number"],
        ]
        .concat(),
    );
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        warnings(&stderr, " line "),
        [
            "cio-import: warning: e.ndjson line 1: column \"userId\" (--rename userId=id) is \
             empty; every row needs an identifier",
            "cio-import: warning: e.ndjson line 2: column \"properties.amount\" (--flatten \
             properties): \"x\" is not a number (--type amount=number)",
        ]
    );
    let failures = read_ndjson(&d.join("e.dry-run.failures.ndjson"));
    let columns: Vec<&Value> = failures.iter().map(|f| &f["_error"]["column"]).collect();
    assert_eq!(columns, ["userId", "properties.amount"]);
}

#[test]
fn a_flag_naming_a_column_another_flag_renamed_or_dropped_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "id,Email,email,plan\n1,a@x.io,b@x.io,pro\n");
    write(d, "p.csv", "id,user_id,plan\n1,u1,pro\n");
    let renamed = "--rename plan=tier renames \"plan\" to \"tier\", and every flag but --rename \
                   names a column by its new name";
    // Flags wrong about the header are usage errors; a header left without an identifier is
    // fatal.
    let cases: [(&[&str], i32, String); 6] = [
        (
            &["u.csv", "--rename", "plan=tier", "--drop", "plan"],
            2,
            format!(
                "--drop plan: no input has a column \"plan\"; {renamed}: did you mean --drop \
                 tier?"
            ),
        ),
        (
            &["u.csv", "--rename", "plan=tier", "--type", "plan=number"],
            2,
            format!(
                "--type plan=number: no input has a column \"plan\"; {renamed}: did you mean \
                 --type tier=number?"
            ),
        ),
        (
            &["u.csv", "--rename", "plan=tier", "--id-column", "plan"],
            2,
            format!(
                "u.csv: --id-column plan: no such column; {renamed}: did you mean \
                 --id-column tier?"
            ),
        ),
        (
            &["u.csv", "--rename", "plan=B", "--rename", "B=C"],
            2,
            "--rename B=C: no input has a column \"B\"; \"B\" is the new name --rename plan=B \
             gives, and renames do not chain: each OLD names a column as the input has it \
             (--rename plan=C)"
                .to_owned(),
        ),
        (
            &["u.csv", "--rename", "Email=email", "--drop", "email"],
            2,
            "u.csv: --rename Email=email and --drop email: the drop takes both \"Email\" and \
             \"email\", since --drop names a column by its new name; to keep the renamed one, \
             rename the other apart (--rename email=email_old --drop email_old)"
                .to_owned(),
        ),
        (
            &["p.csv", "--drop", "*id"],
            1,
            "p.csv: no identifier column: expected one of id, email, cio_id (or --id-column \
             NAME); the header has: plan (\"id\" is dropped by --drop '*id': drop fewer columns, \
             or name the identifier with --id-column)"
                .to_owned(),
        ),
    ];
    for (args, code, message) in cases {
        let (got, stderr) = dry(d, args);
        assert_eq!(got, code, "{args:?}: {stderr}");
        let expected = format!("cio-import: error: {message}");
        assert!(
            stderr.lines().any(|l| l == expected),
            "{args:?}: {stderr}\nexpected: {expected}"
        );
    }
}

#[test]
fn a_flag_that_would_be_ignored_is_refused_naming_what_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "e.csv",
        "id,name,timestamp,plan\n1,renewed,05.03.2024,pro\n",
    );
    let text = "it is sent as text: leave this --type out, or --rename the column to send it as \
                data";
    // Each a usage error, whether clap or the header finds it.
    let cases: [(&[&str], String); 5] = [
        (
            &["--rename", "plan=x", "--rename", "plan=y"],
            "--rename plan=x and --rename plan=y both rename \"plan\"; keep one".to_owned(),
        ),
        (
            &["--type", "plan=number", "--type", "plan=bool"],
            "--type plan=number and --type plan=bool both give \"plan\" a type; keep one"
                .to_owned(),
        ),
        (
            &["--type", "timestamp=string"],
            "e.csv: --type timestamp=string: \"timestamp\" is the event's time; it is always \
             read as a timestamp: give its format with --type timestamp=timestamp:FORMAT (or \
             timestamp:ms), or --rename the column to send it as data"
                .to_owned(),
        ),
        (
            &["--type", "id=number"],
            format!("e.csv: --type id=number: \"id\" is the identifier, as id; {text}"),
        ),
        (
            &["--type", "name=number"],
            format!("e.csv: --type name=number: \"name\" is the event name; {text}"),
        ),
    ];
    for (flags, message) in cases {
        let args = [&["e.csv", "--action", "event"][..], flags].concat();
        let (got, stderr) = dry(d, &args);
        assert_eq!(got, 2, "{flags:?}: {stderr}");
        let expected = format!("cio-import: error: {message}");
        assert!(
            stderr.lines().any(|l| l == expected),
            "{flags:?}: {stderr}\nexpected: {expected}"
        );
    }
    // What works: the time's format, shown in the plan, and the flags in one parenthesis.
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            "e.csv",
            "--action",
            "event",
            "--type",
            "timestamp=timestamp:%d.%m.%Y",
            "--rename",
            "plan=seats",
            "--type",
            "seats=string",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let plan: Vec<&str> = stderr.lines().take(5).collect();
    assert_eq!(
        plan,
        [
            "cio-import: e.csv: the plan, column by column:",
            "  \"id\"         the identifier, as id",
            "  \"name\"       the event name",
            "  \"timestamp\"  the event's time, timestamp:%d.%m.%Y (--type)",
            "  \"plan\"       event data \"seats\", text (--rename, --type)",
        ]
    );
    let body = server.sent().remove(0).body.unwrap();
    assert_eq!(body["timestamp"], 1709596800, "{body}");
    assert_eq!(body["data"], json!({"seats": "pro"}));
}

#[test]
fn the_email_advice_changes_the_rename_that_made_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "ue.ndjson",
        "{\"userId\":\"a@x.io\",\"event\":\"e\"}\n{\"userId\":\"b@x.io\",\"event\":\"e\"}\n",
    );
    let (code, stderr) = dry(d, &[&["ue.ndjson"][..], &SEGMENT].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with(
            "cio-import: ue.ndjson: the plan: the identifier is the first of id (\"userId\", \
             --rename userId=id), email, cio_id each line has\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "ue.ndjson: the identifier column \"userId\" (--rename userId=id) is sent as id, \
             but 2 of its first 2 values look like email addresses"
        ) && stderr.contains(
            "pass --rename userId=email in place of --rename userId=id (or --id-column id \
             --id-type email)"
        ),
        "{stderr}"
    );
    // Followed, the advice leaves nothing to warn of.
    let (_, stderr) = dry(
        d,
        &[
            "ue.ndjson",
            "--action",
            "event",
            "--rename",
            "userId=email",
            "--rename",
            "event=name",
        ],
    );
    assert!(!stderr.contains("look like email"), "{stderr}");
}

#[test]
fn an_ndjson_flag_no_line_used_is_warned_at_the_end_with_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.ndjson",
        "{\"userId\":\"1\",\"event\":\"e\",\"properties\":{\"plan\":\"pro\"},\
         \"context\":{},\"messageId\":\"m1\"}\n",
    );
    write(
        d,
        "b.ndjson",
        "{\"userId\":\"2\",\"event\":\"e\",\"seats\":3}\n",
    );
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            &["a.ndjson", "b.ndjson"][..],
            &SEGMENT,
            &[
                "--flatten",
                "propertes",
                "--drop",
                "contxt",
                "--rename",
                "messageID=event_id",
                // Only the second input has it: no warning.
                "--drop",
                "seats",
                "--drop",
                "zz*",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        warnings(&stderr, "warning: --"),
        [
            "cio-import: warning: --flatten propertes: no line had that key; did you mean \
             properties?",
            "cio-import: warning: --rename messageID=event_id: no line had that key; did you \
             mean messageId?",
            "cio-import: warning: --drop contxt: no line had that key; did you mean context?",
            "cio-import: warning: --drop 'zz*': the pattern matches no key of any line",
        ]
    );
    // Told at the end: after every record was read.
    let bodies: Vec<Value> = server.sent().into_iter().filter_map(|r| r.body).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["data"]["context"], json!({}), "sent as it is");
    assert_eq!(bodies[1].get("data"), None, "seats dropped");
}
