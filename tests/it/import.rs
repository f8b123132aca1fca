//! The backbone, end to end: the binary against the sandbox over loopback HTTP.

use crate::common;

use std::collections::HashMap;

use common::{Server, bin, read_ndjson, write};
use serde_json::{Value, json};

const TRICKY: &str = "id,name,bio,city,plan\n\
1,\"Smith, Jane\",\"She said \"\"hi\"\"\",Zürich,pro\n\
a+b&c,Bob,\"line one\nline two\",,free\n\
folder/sub id,Åsa Öberg,\"commas, \"\"quotes\"\", and\r\nnewlines\",東京,\n\
4 5,Zoë,,São Paulo,pro\n";

#[test]
fn every_row_of_a_tricky_csv_arrives_once_with_exactly_its_attributes() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", TRICKY);
    server.cmd(dir.path()).arg(&input).assert().success();

    let expected: HashMap<&str, Value> = HashMap::from([
        (
            "1",
            json!({"name": "Smith, Jane", "bio": "She said \"hi\"", "city": "Zürich", "plan": "pro"}),
        ),
        (
            "a+b&c",
            json!({"name": "Bob", "bio": "line one\nline two", "plan": "free"}),
        ),
        (
            "folder/sub id",
            json!({"name": "Åsa Öberg", "bio": "commas, \"quotes\", and\r\nnewlines", "city": "東京"}),
        ),
        (
            "4 5",
            json!({"name": "Zoë", "city": "São Paulo", "plan": "pro"}),
        ),
    ]);
    // Everything but the preflight's GET.
    let requests: Vec<_> = server
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(requests.len(), expected.len(), "{requests:#?}");
    for (id, attrs) in &expected {
        let got: Vec<_> = requests
            .iter()
            .filter(|r| r.identifier.as_deref() == Some(*id))
            .collect();
        assert_eq!(got.len(), 1, "{id} arrived {} times", got.len());
        assert_eq!(got[0].method, "PUT");
        assert_eq!(got[0].body.as_ref(), Some(attrs), "{id}");
        assert_eq!(
            Value::Object(server.sandbox.person(id).unwrap()),
            *attrs,
            "stored {id}"
        );
    }
    assert!(!dir.path().join("users.failures.ndjson").exists());
}

#[test]
fn invalid_rows_are_not_sent_and_land_in_the_failures_file_with_their_lines() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(1001);
    let input = write(
        dir.path(),
        "users.csv",
        &format!("id,age,bio\n1,30,ok\n,31,no id\n3,abc,bad age\n4,40,{long}\n5,50,fine\n"),
    );
    let out = server
        .cmd(dir.path())
        .arg(&input)
        .args(["--type", "age=number"])
        .args(["--summary", "-"])
        .assert()
        .code(3);
    let summary: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["records"], 5);
    assert_eq!(summary["accepted"], 2);
    assert_eq!(summary["invalid"], 3);
    assert_eq!(summary["failed"], 0);

    let sent: Vec<_> = server
        .sandbox
        .requests()
        .into_iter()
        .filter_map(|r| r.identifier)
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(sent.contains(&"1".to_string()) && sent.contains(&"5".to_string()));
    assert_eq!(server.sandbox.person("1").unwrap()["age"], json!(30));

    let failures = read_ndjson(&dir.path().join("users.failures.ndjson"));
    let lines: Vec<_> = failures
        .iter()
        .map(|f| f["_error"]["line"].clone())
        .collect();
    assert_eq!(lines, [json!(3), json!(4), json!(5)]);
    assert!(
        failures
            .iter()
            .all(|f| f["_error"]["source"] == json!(input.display().to_string()))
    );
    let msgs: Vec<&str> = failures
        .iter()
        .map(|f| f["_error"]["message"].as_str().unwrap())
        .collect();
    assert!(msgs[1].contains("age"), "{}", msgs[1]);
    assert!(
        msgs[2].contains("bio") && msgs[2].contains("1,000"),
        "{}",
        msgs[2]
    );
}

#[test]
fn the_failures_file_replays_into_the_same_people() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "users.csv",
        "id,email,score,created_at\n1,a@x.io,5,2024-03-05\n2,b@x.io,7,1709632800\n3,c@x.io,9,\n",
    );
    // A server that fails every request: all three end in the failures file.
    let broken = Server::refusing();
    broken
        .cmd(dir.path())
        .arg(&input)
        .args([
            "--type",
            "score=number",
            "--max-retries",
            "0",
            "--no-preflight",
        ])
        .assert()
        .code(3);
    let failures = dir.path().join("users.failures.ndjson");
    let lines = read_ndjson(&failures);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["_error"]["status"] == 503));

    // Replayed into a healthy server: everything is accepted, typed as the first run sent it.
    let healthy = Server::plain();
    healthy.cmd(dir.path()).arg(&failures).assert().success();
    assert_eq!(healthy.sandbox.people_count(), 3);
    assert_eq!(
        Value::Object(healthy.sandbox.person("1").unwrap()),
        json!({"email": "a@x.io", "score": 5, "created_at": 1709596800})
    );
    assert_eq!(healthy.sandbox.person("3").unwrap()["score"], json!(9));
    // The file being read is never written: a replay's failures would go elsewhere.
    assert_eq!(read_ndjson(&failures).len(), 3);

    // A dry run of the input keeps its own list and leaves this one alone...
    bin(dir.path())
        .arg(&input)
        .arg("--dry-run")
        .assert()
        .success();
    assert_eq!(read_ndjson(&failures).len(), 3);
    // ...and a later real run of it keeps the earlier failures, renamed.
    let out = healthy.cmd(dir.path()).arg(&input).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("users.failures.ndjson of an earlier run is kept as"),
        "{stderr}"
    );
    assert!(!failures.exists());
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("users.failures.") && name != "users.failures.ndjson"
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(read_ndjson(&kept[0]).len(), 3);
}

#[test]
fn dry_run_validates_everything_and_needs_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", "email,plan\na@x.io,pro\n,free\n");
    let out = bin(dir.path())
        .arg(&input)
        .args(["--dry-run", "--summary", "-"])
        .assert()
        .code(3);
    let summary: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["accepted"], 1);
    assert_eq!(summary["invalid"], 1);
    assert_eq!(summary["requests"], 0);
    assert_eq!(
        read_ndjson(&dir.path().join("users.dry-run.failures.ndjson")).len(),
        1
    );
}

#[test]
fn ndjson_and_gzip_inputs_map_the_same_way() {
    use std::io::Write;
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::File::create(dir.path().join("people.ndjson.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    writeln!(
        enc,
        r#"{{"id": "n1", "tags": ["a", "b"], "address": {{"city": "Oslo"}}, "vip": true}}"#
    )
    .unwrap();
    writeln!(enc, r#"{{"cio_id": "abc123", "plan": "pro"}}"#).unwrap();
    enc.finish().unwrap();
    server
        .cmd(dir.path())
        .arg(dir.path().join("people.ndjson.gz"))
        .assert()
        .success();
    assert_eq!(
        Value::Object(server.sandbox.person("n1").unwrap()),
        json!({"tags": ["a", "b"], "address": {"city": "Oslo"}, "vip": true})
    );
    assert_eq!(
        server.sandbox.person("cio_abc123").unwrap()["plan"],
        json!("pro")
    );
}

#[test]
fn semicolon_and_tab_separated_files_import() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let semi = write(dir.path(), "export.csv", "id;plan;note\n1;pro;\"a;b\"\n");
    // Without the flag the header is one column, and the message says what to pass.
    server
        .cmd(dir.path())
        .arg(&semi)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("pass --delimiter ';'"));
    server
        .cmd(dir.path())
        .arg(&semi)
        .args(["--delimiter", ";"])
        .assert()
        .success();
    let tsv = write(dir.path(), "export.tsv", "id\tplan\n2\tfree, for now\n");
    server.cmd(dir.path()).arg(&tsv).assert().success();
    assert_eq!(
        Value::Object(server.sandbox.person("1").unwrap()),
        json!({"plan": "pro", "note": "a;b"})
    );
    assert_eq!(
        server.sandbox.person("2").unwrap()["plan"],
        json!("free, for now")
    );
}

#[test]
fn a_type_must_name_a_column_of_some_input() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", "id,age\n1,36\n");
    let b = write(dir.path(), "b.csv", "id,plan\n2,pro\n");
    server
        .cmd(dir.path())
        .args([&a, &b])
        .args(["--type", "age=number"])
        .assert()
        .success();
    assert_eq!(server.sandbox.person("1").unwrap()["age"], json!(36));
    server
        .cmd(dir.path())
        .args([&a, &b])
        .args(["--type", "agee=number"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!(
            "--type agee=number: no input has a column \"agee\"; {}'s header has: id, age",
            a.display()
        )));
}

#[test]
fn stdin_is_read_with_an_explicit_format() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    server
        .cmd(dir.path())
        .args(["-", "--format", "csv"])
        .write_stdin("id,plan\n7,pro\n")
        .assert()
        .success();
    assert_eq!(server.sandbox.person("7").unwrap()["plan"], json!("pro"));
}

#[test]
fn the_summary_file_is_checked_first_and_never_left_from_an_earlier_run() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", "id\n1\n");
    server
        .cmd(dir.path())
        .arg(&input)
        .args(["--summary", "no/such/dir/summary.json"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--summary no/such/dir/summary.json: the folder no/such/dir does not exist",
        ));
    assert_eq!(server.sandbox.people_count(), 0, "nothing is sent");

    let summary = write(dir.path(), "summary.json", r#"{"exit_code": 0}"#);
    let headless = write(dir.path(), "plans.csv", "plan\npro\n");
    server
        .cmd(dir.path())
        .arg(&headless)
        .arg("--summary")
        .arg(&summary)
        .assert()
        .code(1);
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), "");
}

#[test]
fn missing_credentials_and_bad_flags_name_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", "id\n1\n");
    bin(dir.path())
        .arg(&input)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("CUSTOMERIO_SITE_ID"));
    bin(dir.path())
        .arg(&input)
        .args(["--dry-run", "--rate", "0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--rate"));
    bin(dir.path())
        .arg(dir.path().join("nope.csv"))
        .arg("--dry-run")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nope.csv"));
    bin(dir.path())
        .arg(&input)
        .args(["--endpoint", "http://example.com", "--site-id", "s"])
        .env("CUSTOMERIO_TRACK_API_KEY", "k")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("loopback"));
    // --show shows what a dry run would send: beside --sandbox (which excludes --dry-run, so
    // clap does not ask for it) it would be silently ignored.
    bin(dir.path())
        .arg(&input)
        .args(["--sandbox", "--show", "2"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains("'--show <N>'"));
    // What the command line must say, or says to no effect, is a usage error.
    for (args, says) in [
        (&["-"][..], "pass --format csv|ndjson"),
        (&["users.txt"][..], "pass --format csv|ndjson"),
        (
            &["users.csv", "--event-name", "x"][..],
            "add --action event",
        ),
        (
            &["users.csv", "--sandbox", "--endpoint", "http://127.0.0.1:9"][..],
            "--endpoint",
        ),
    ] {
        write(dir.path(), "users.txt", "id\n1\n");
        bin(dir.path())
            .args(args)
            .arg("--dry-run")
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
}

#[test]
fn the_embedded_sandbox_imports_and_says_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", "id,plan\n1,pro\n2,free\n3,pro\n");
    bin(dir.path())
        .arg(&input)
        .args(["--sandbox", "--progress", "never"])
        .assert()
        .success()
        .stderr(predicates::str::contains("3 people"));
}
