//! Values as exports write them, end to end against the sandbox: timestamp formats and zones,
//! milliseconds, grouped numbers and decimal commas, lists, the spreadsheet apostrophe, event
//! ids that are no ULIDs, events without a time, and values over 1,000 bytes.

use crate::common;

use std::path::Path;

use assert_cmd::assert::Assert;
use common::{Server, read_ndjson, write};
use serde_json::{Value, json};

/// Imports `csv` as the file `name` in `dir` (the run's directory) with `args`.
fn import(server: &Server, dir: &Path, name: &str, csv: &str, args: &[&str]) -> Assert {
    write(dir, name, csv);
    server.cmd(dir).arg(name).args(args).assert()
}

fn stderr(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// The attribute `name` of person `id` in the sandbox.
fn attribute(server: &Server, id: &str, name: &str) -> Value {
    let person = server
        .sandbox
        .person(id)
        .unwrap_or_else(|| panic!("no person {id}"));
    person.get(name).cloned().unwrap_or(Value::Null)
}

#[test]
fn a_us_date_in_new_york_is_sent_as_the_unix_seconds_of_its_midnight_there() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,signed_up,last_seen\n1,11/22/2023,20.03.2023 14:03\n";
    import(
        &server,
        dir.path(),
        "people.csv",
        csv,
        &[
            "--type",
            "signed_up=timestamp:%m/%d/%Y",
            "--type",
            "last_seen=timestamp:%d.%m.%Y %H:%M",
            "--timezone",
            "America/New_York",
        ],
    )
    .success();
    // 2023-11-22T00:00 EST is 05:00 UTC; 2023-03-20T14:03 EDT is 18:03 UTC.
    assert_eq!(attribute(&server, "1", "signed_up"), json!(1_700_629_200));
    assert_eq!(attribute(&server, "1", "last_seen"), json!(1_679_335_380));
}

#[test]
fn without_a_timezone_times_without_an_offset_are_utc() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,created_at,paid_ms\n1,2023-04-12T14:03:00,1681308180999\n";
    import(
        &server,
        dir.path(),
        "people.csv",
        csv,
        &["--type", "paid_ms=timestamp:ms"],
    )
    .success();
    assert_eq!(attribute(&server, "1", "created_at"), json!(1_681_308_180));
    assert_eq!(attribute(&server, "1", "paid_ms"), json!(1_681_308_180));
}

#[test]
fn a_cell_that_does_not_match_its_format_makes_the_row_invalid_naming_it() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,signed_up\n1,11/22/2023\n2,2023-11-22\n";
    import(
        &server,
        dir.path(),
        "people.csv",
        csv,
        &["--type", "signed_up=timestamp:%m/%d/%Y"],
    )
    .code(3);
    let lines = read_ndjson(&dir.path().join("people.failures.ndjson"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["_error"]["line"], json!(3));
    assert_eq!(lines[0]["_error"]["column"], json!("signed_up"));
    assert_eq!(
        lines[0]["_error"]["message"],
        json!(
            "column \"signed_up\": \"2023-11-22\" is not a timestamp written as %m/%d/%Y \
             (--type signed_up=timestamp:%m/%d/%Y)"
        )
    );
}

#[test]
fn a_bad_format_or_zone_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "people.csv", "id,d\n1,x\n");
    let run = |args: &[&str]| {
        let out = common::bin(dir.path())
            .arg(&input)
            .args(["--dry-run"])
            .args(args)
            .assert()
            .code(2);
        stderr(&out)
    };
    let e = run(&["--type", "d=timestamp:%m/%d"]);
    assert!(e.contains("--type"), "{e}");
    assert!(
        e.contains("timestamp:%m/%d: the format must name a year, a month and a day"),
        "{e}"
    );
    let e = run(&["--timezone", "Mars/Olympus"]);
    assert!(e.contains("--timezone"), "{e}");
    assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    let e = run(&["--type", "d=list:ab"]);
    assert!(e.contains("the separator is one character"), "{e}");
}

#[test]
fn a_timestamp_column_that_reads_as_1970_is_told_once_with_the_fix() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,renewed\n1,20230412\n2,20230413\n3,1681308180\n";
    let out = import(
        &server,
        dir.path(),
        "people.csv",
        csv,
        &["--type", "renewed=timestamp"],
    )
    .success();
    let e = stderr(&out);
    assert_eq!(e.matches("reads as").count(), 1, "{e}");
    assert!(
        e.contains(
            "cio-import: warning: people.csv line 2: column \"renewed\": 20230412 reads as \
             1970-08-23 (timestamp); if it is a date, pass --type renewed=timestamp:%Y%m%d \
             (told once per column)"
        ),
        "{e}"
    );
    // And the fix it names reads it as the date, without a warning: not even for a date
    // before 2001, which the format reads as the user means.
    let out = import(
        &server,
        dir.path(),
        "people.csv",
        "id,renewed\n1,20230412\n2,19850412\n",
        &["--type", "renewed=timestamp:%Y%m%d"],
    )
    .success();
    assert!(!stderr(&out).contains("reads as"), "{}", stderr(&out));
    assert_eq!(attribute(&server, "1", "renewed"), json!(1_681_257_600));
    assert_eq!(attribute(&server, "2", "renewed"), json!(482_112_000));
}

#[test]
fn a_timestamp_before_1970_at_its_start_or_past_10_digits_makes_the_row_invalid() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,created_at\n1,99999999999\n2,-100\n3,0\n4,9999-12-30\n5,1000000000\n";
    import(&server, dir.path(), "people.csv", csv, &[]).code(3);
    assert_eq!(server.sandbox.people_count(), 1);
    assert_eq!(attribute(&server, "5", "created_at"), json!(1_000_000_000));
    let messages: Vec<Value> = read_ndjson(&dir.path().join("people.failures.ndjson"))
        .iter()
        .map(|l| l["_error"]["message"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            "column \"created_at\": 99999999999 reads as the year 5138 (timestamp): past the 10 \
             digits of Unix seconds Customer.io takes (to 2286); milliseconds? pass --type \
             created_at=timestamp:ms",
            "column \"created_at\": -100 reads as 1969-12-31 (timestamp): before 1970, and \
             Customer.io takes Unix seconds after it; fix the value or leave the cell empty",
            "column \"created_at\": 0 reads as 1970-01-01T00:00:00Z (timestamp): the Unix epoch \
             itself, a default value rather than a time, most likely; leave the cell empty when \
             there is none",
            "column \"created_at\": 9999-12-30 reads as the year 9999 (timestamp): past the 10 \
             digits of Unix seconds Customer.io takes (to 2286); leave the cell empty when there \
             is no date",
        ]
    );
    // An event's time, from a cell or a JSON number, is held to the same range.
    let csv = "id,name,timestamp\n1,e,-5\n2,e,0\n3,e,1709632800\n";
    import(
        &server,
        dir.path(),
        "events.csv",
        csv,
        &["--action", "event"],
    )
    .code(3);
    write(
        dir.path(),
        "events.ndjson",
        "{\"id\":4,\"name\":\"e\",\"timestamp\":0}\n{\"id\":5,\"name\":\"e\",\"timestamp\":12345678901}\n",
    );
    let out = server
        .cmd(dir.path())
        .args(["events.ndjson", "--action", "event"])
        .assert()
        .code(3);
    let times: Vec<_> = server
        .sandbox
        .events()
        .iter()
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(times, [Some(1_709_632_800)]);
    let e = stderr(&out);
    assert!(
        e.contains("column \"timestamp\": 0 reads as 1970-01-01T00:00:00Z"),
        "{e}"
    );
    assert!(e.contains("12345678901 reads as the year 2361"), "{e}");
    let invalid = read_ndjson(&dir.path().join("events.failures.ndjson"));
    assert_eq!(invalid.len(), 2, "{invalid:?}");

    // A date written as a date in a column of the user's --type is sent as it is: a 1965
    // birthday, a 9999-12-30 "never". A bare number there is held to the range.
    let csv = "id,birthday\n6,1965-03-05\n7,9999-12-30\n8,-100\n";
    let flags = ["--type", "birthday=timestamp"];
    import(&server, dir.path(), "birthdays.csv", csv, &flags).code(3);
    assert_eq!(attribute(&server, "6", "birthday"), json!(-152_323_200));
    assert_eq!(
        attribute(&server, "7", "birthday"),
        json!(253_402_128_000_i64)
    );
    assert_eq!(server.sandbox.person("8"), None);
}

#[test]
fn unsubscribed_is_sent_as_a_bool_from_the_words_crms_write() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,unsubscribed\n1,yes\n2,Y\n3, No \n4,0\n5,TRUE\n6,\n7,maybe\n";
    let out = import(&server, dir.path(), "people.csv", csv, &[]).code(3);
    for (id, sent) in [
        ("1", true),
        ("2", true),
        ("3", false),
        ("4", false),
        ("5", true),
    ] {
        assert_eq!(attribute(&server, id, "unsubscribed"), json!(sent), "{id}");
    }
    // An empty cell is left out, as any empty cell is by default.
    assert_eq!(attribute(&server, "6", "unsubscribed"), Value::Null);
    assert!(server.sandbox.person("7").is_none());
    let e = stderr(&out);
    assert!(
        e.contains("\"unsubscribed\"  attribute \"unsubscribed\", bool\n"),
        "{e}"
    );
    let lines = read_ndjson(&dir.path().join("people.failures.ndjson"));
    assert_eq!(
        lines[0]["_error"]["message"],
        json!(
            "column \"unsubscribed\": \"maybe\" is not a bool (true/false, yes/no, 1/0, t/f, \
             y/n) (unsubscribed is read as a bool by default, as Customer.io counts only true; \
             fix the value, or leave the cell empty)"
        )
    );
    // An NDJSON key too; and a --type of the user's wins.
    write(
        dir.path(),
        "more.ndjson",
        "{\"id\":8,\"unsubscribed\":\"yes\"}\n{\"id\":9,\"unsubscribed\":1}\n",
    );
    server.cmd(dir.path()).arg("more.ndjson").assert().success();
    assert_eq!(attribute(&server, "8", "unsubscribed"), json!(true));
    assert_eq!(attribute(&server, "9", "unsubscribed"), json!(true));
    let csv = "id,unsubscribed\n10,yes\n";
    let args = ["--type", "unsubscribed=string"];
    import(&server, dir.path(), "text.csv", csv, &args).success();
    assert_eq!(attribute(&server, "10", "unsubscribed"), json!("yes"));
}

#[test]
fn an_ndjson_number_that_reads_as_1970_is_told_once_too() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ndjson = "{\"id\":\"1\",\"renewed\":1681308180}\n{\"id\":\"2\",\"renewed\":20230412}\n\
                  {\"id\":\"3\",\"renewed\":20230413}\n";
    let out = import(
        &server,
        dir.path(),
        "people.ndjson",
        ndjson,
        &["--type", "renewed=timestamp"],
    )
    .success();
    let e = stderr(&out);
    assert_eq!(e.matches("reads as").count(), 1, "{e}");
    assert!(
        e.contains("people.ndjson line 2: column \"renewed\": 20230412 reads as 1970-08-23"),
        "{e}"
    );
}

#[test]
fn seconds_in_a_milliseconds_column_are_told_too() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &server,
        dir.path(),
        "people.csv",
        "id,paid\n1,1681308180\n",
        &["--type", "paid=timestamp:ms"],
    )
    .success();
    let e = stderr(&out);
    assert!(
        e.contains(
            "column \"paid\": 1681308180 reads as 1970-01-20 (timestamp:ms); if they are \
             seconds, pass --type paid=timestamp (told once per column)"
        ),
        "{e}"
    );
}

#[test]
fn numbers_with_thousands_separators_and_decimal_commas() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    import(
        &server,
        dir.path(),
        "people.csv",
        "id,spent,count\n1,\"1,853.93\",1 204\n",
        &["--type", "spent=number", "--type", "count=number"],
    )
    .success();
    assert_eq!(attribute(&server, "1", "spent"), json!(1853.93));
    assert_eq!(attribute(&server, "1", "count"), json!(1204));

    import(
        &server,
        dir.path(),
        "eu.csv",
        "id;rate;spent\n2;0,34;1.853,93\n",
        &[
            "--delimiter",
            ";",
            "--decimal-comma",
            "--type",
            "rate=number",
            "--type",
            "spent=number",
        ],
    )
    .success();
    assert_eq!(attribute(&server, "2", "rate"), json!(0.34));
    assert_eq!(attribute(&server, "2", "spent"), json!(1853.93));

    // Without --decimal-comma, 0,34 is no number, and the message says what to pass.
    import(
        &server,
        dir.path(),
        "comma.csv",
        "id,rate\n3,\"0,34\"\n",
        &["--type", "rate=number"],
    )
    .code(3);
    let lines = read_ndjson(&dir.path().join("comma.failures.ndjson"));
    assert_eq!(
        lines[0]["_error"]["message"],
        json!(
            "column \"rate\": \"0,34\" is not a number (a decimal comma? pass --decimal-comma) \
             (--type rate=number)"
        )
    );
}

#[test]
fn a_list_column_is_sent_as_an_array_of_its_trimmed_items() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    import(
        &server,
        dir.path(),
        "people.csv",
        "id,tags,langs\n1,\"vip, wholesale,\",en; fr\n",
        &["--type", "tags=list", "--type", "langs=list:;"],
    )
    .success();
    assert_eq!(attribute(&server, "1", "tags"), json!(["vip", "wholesale"]));
    assert_eq!(attribute(&server, "1", "langs"), json!(["en", "fr"]));
}

#[test]
fn strip_apostrophe_removes_it_before_numbers_only() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,phone,city\n'7012345678,'+1 613 555 0123,'s-Hertogenbosch\n";
    import(
        &server,
        dir.path(),
        "people.csv",
        csv,
        &["--strip-apostrophe"],
    )
    .success();
    assert_eq!(
        attribute(&server, "7012345678", "phone"),
        json!("+1 613 555 0123")
    );
    assert_eq!(
        attribute(&server, "7012345678", "city"),
        json!("'s-Hertogenbosch")
    );
    // Without the flag, the cell is sent as it is.
    import(&server, dir.path(), "people.csv", csv, &[]).success();
    assert!(server.sandbox.person("'7012345678").is_some());
}

#[test]
fn strip_apostrophe_reaches_object_ids_and_device_tokens() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let strip = ["--strip-apostrophe", "--object-type", "1"];
    let objects = [&strip[..], &["--entity", "object"]].concat();
    let companies = "object_id,plan\n'7012345678,pro\n";
    import(&server, d, "companies.csv", companies, &objects).success();
    let object = server.sandbox.object("1", "7012345678");
    assert_eq!(object.unwrap()["plan"], "pro");
    let relate = [&strip[..], &["--action", "add-relationships"]].concat();
    let memberships = "id,object_id\n'42,'7012345678\n";
    import(&server, d, "memberships.csv", memberships, &relate).success();
    assert!(
        server
            .sandbox
            .relationship("42", "1", "7012345678")
            .is_some()
    );
    let devices = "id,device_id,platform\n42,'0123456789,ios\n";
    let add = ["--strip-apostrophe", "--action", "add-device"];
    import(&server, d, "devices.csv", devices, &add).success();
    let tokens: Vec<String> = server
        .sandbox
        .devices("42")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(tokens, ["0123456789"]);
}

#[test]
fn a_segment_message_id_becomes_the_same_ulid_every_time() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"id":"u1","name":"Order Completed","event_id":"ajs-next-69e4a3c7f1b24d4cb2a2f39e0f6fbc1d","timestamp":"2023-04-12T14:03:00Z"}"#;
    let input = write(dir.path(), "segment.ndjson", &format!("{line}\n"));
    for _ in 0..2 {
        server
            .cmd(dir.path())
            .arg(&input)
            .args(["--action", "event"])
            .assert()
            .success();
    }
    let events = server.sandbox.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id.as_deref(), Some("0CR1N5Y8MMF002G4YXG7389D83"));
    assert_eq!(server.sandbox.stats().duplicate_events, 1);
}

#[test]
fn identical_rows_without_a_time_in_two_files_are_two_events_and_a_rerun_sends_the_same_ids() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,name,plan\nu1,renewed,pro\n";
    let jan = write(dir.path(), "renew_jan.csv", csv);
    let feb = write(dir.path(), "renew_feb.csv", csv);
    let out = server
        .cmd(dir.path())
        .args([&jan, &feb])
        .args(["--action", "event"])
        .assert()
        .success();
    let e = stderr(&out);
    assert!(
        e.contains(
            "renew_jan.csv: no timestamp column: each event goes without a time (Customer.io \
             gives it the time it arrives) and with an id from its content, this input's name \
             and its line, so identical rows are distinct events, and a re-run, --resume or a \
             replay of the failures file sends the same ids; a new export written to this \
             same path gives the rows at the same lines the same ids, so Customer.io drops a row \
             identical to the one sent from its line before"
        ),
        "{e}"
    );
    let stats = server.sandbox.stats();
    assert_eq!((stats.events, stats.duplicate_events), (2, 0));
    // Run again: the same two ids, dropped as the duplicates they are.
    server
        .cmd(dir.path())
        .args([&jan, &feb])
        .args(["--action", "event"])
        .assert()
        .success();
    let stats = server.sandbox.stats();
    assert_eq!((stats.events, stats.duplicate_events), (2, 2));
}

#[test]
fn events_without_a_time_from_stdin_are_told_that_every_run_gives_the_same_ids() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    for night in 0..2 {
        let out = server
            .cmd(dir.path())
            .args(["-", "--action", "event", "--format", "csv"])
            .write_stdin("id,name,plan\nu1,renewed,pro\n")
            .assert()
            .success();
        let e = stderr(&out);
        assert!(
            e.contains(
                "stdin: no timestamp column: each event goes without a time (Customer.io gives \
                 it the time it arrives) and with an id from its content, this input's name and \
                 its line, so identical rows are distinct events, and a re-run, --resume or a \
                 replay of the failures file sends the same ids; read from a stream, every run \
                 gives the rows at the same lines the same ids, so Customer.io drops a row \
                 identical to the one an earlier run sent from its line"
            ),
            "{e}"
        );
        // As told: the second night's row is dropped as seen.
        let stats = server.sandbox.stats();
        assert_eq!((stats.events, stats.duplicate_events), (1, night), "{e}");
    }
}

#[test]
fn ndjson_events_without_a_time_are_told_once_and_kept_apart() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let lines = concat!(
        r#"{"id":"u1","name":"renewed","timestamp":"2024-06-04T10:00:00Z"}"#,
        "\n",
        r#"{"id":"u1","name":"renewed"}"#,
        "\n",
        r#"{"id":"u1","name":"renewed"}"#,
        "\n",
    );
    let out = import(
        &server,
        dir.path(),
        "renewals.ndjson",
        lines,
        &["--action", "event"],
    )
    .success();
    let e = stderr(&out);
    assert_eq!(e.matches("this event has no timestamp").count(), 1, "{e}");
    assert!(
        e.contains(
            "cio-import: warning: renewals.ndjson line 2: this event has no timestamp: it goes \
             without a time (Customer.io gives it the time it arrives) and with an id from its \
             content, this input's name and its line, as every such event does; a new export \
             written to this same path gives the rows at the same lines the same ids, so \
             Customer.io drops a row identical to the one sent from its line before (told once)"
        ),
        "{e}"
    );
    let stats = server.sandbox.stats();
    assert_eq!((stats.events, stats.duplicate_events), (3, 0));
}

#[test]
fn oversize_drop_and_truncate_count_and_tell_what_they_did() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let note = "é".repeat(600);
    let csv = format!("id,note,plan\n1,{note},pro\n2,short,free\n");
    let out = import(
        &server,
        dir.path(),
        "people.csv",
        &csv,
        &["--oversize", "truncate", "--summary", "summary.json"],
    )
    .success();
    assert_eq!(attribute(&server, "1", "note"), json!("é".repeat(500)));
    assert_eq!(attribute(&server, "2", "note"), json!("short"));
    let e = stderr(&out);
    assert!(
        e.contains(
            "cio-import: warning: people.csv line 2: column \"note\" is 1,200 bytes, over \
             Customer.io's 1,000: cut to 1,000 (--oversize truncate)"
        ),
        "{e}"
    );
    assert!(
        e.contains("1 attribute value over 1,000 bytes cut to fit (--oversize truncate)"),
        "{e}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["oversized"], json!(1));
    assert_eq!(summary["oversize"], json!("truncate"));

    let out = import(
        &server,
        dir.path(),
        "drop.csv",
        &csv.replace("\n1,", "\n3,"),
        &["--oversize", "drop"],
    )
    .success();
    assert_eq!(attribute(&server, "3", "note"), Value::Null);
    assert_eq!(attribute(&server, "3", "plan"), json!("pro"));
    assert!(
        stderr(&out).contains("1 attribute value over 1,000 bytes left out (--oversize drop)"),
        "{}",
        stderr(&out)
    );
    // The default still refuses the row.
    import(&server, dir.path(), "reject.csv", &csv, &[]).code(3);
}

#[test]
fn the_oversize_warning_names_the_first_rows_then_counts() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,note\n");
    for i in 0..30 {
        csv.push_str(&format!("{i},{}\n", "x".repeat(1_001)));
    }
    let out = import(
        &server,
        dir.path(),
        "people.csv",
        &csv,
        &["--oversize", "drop"],
    )
    .success();
    let e = stderr(&out);
    assert_eq!(
        e.matches("over Customer.io's 1,000: left out").count(),
        10,
        "{e}"
    );
    assert_eq!(
        e.matches("more attribute values over 1,000 bytes: the summary counts them")
            .count(),
        1,
        "{e}"
    );
    assert!(
        e.contains("30 attribute values over 1,000 bytes left out"),
        "{e}"
    );
}

#[test]
fn the_shopify_fixture_imports_as_the_readme_says() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &server,
        dir.path(),
        "shopify-customers.csv",
        &common::fixture("shopify-customers.csv"),
        &[
            "--strip-apostrophe",
            "--type",
            "Total Spent=number",
            "--type",
            "Total Orders=number",
            "--type",
            "Tags=list",
            "--type",
            "Accepts Email Marketing=bool",
            "--oversize",
            "truncate",
        ],
    )
    .success();
    // Text is "text" in the plan, whether --strip-apostrophe or no --type made it so.
    let e = stderr(&out);
    assert!(e.contains("attribute \"email\", text\n"), "{e}");
    assert!(!e.contains(", string"), "{e}");
    let ada = |name| attribute(&server, "7012345678", name);
    assert_eq!(ada("email"), json!("ada@example.com"));
    assert_eq!(ada("Phone"), json!("+44 20 7946 0958"));
    assert_eq!(ada("Total Spent"), json!(1853.93));
    assert_eq!(ada("Total Orders"), json!(12));
    assert_eq!(ada("Tags"), json!(["vip", "wholesale"]));
    assert_eq!(ada("Accepts Email Marketing"), json!(true));
    let note = ada("Note");
    assert_eq!(note.as_str().unwrap().len(), 1_000);
    assert!(
        note.as_str()
            .unwrap()
            .starts_with("Wholesale account since 2019.")
    );
    assert_eq!(
        attribute(&server, "7012345680", "Total Spent"),
        json!(12408)
    );
    assert_eq!(server.sandbox.people_count(), 3);
}

#[test]
fn the_stripe_fixture_imports_as_the_readme_says() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    import(
        &server,
        dir.path(),
        "stripe-payments.csv",
        &common::fixture("stripe-payments.csv"),
        &[
            "--action",
            "event",
            "--event-name",
            "payment",
            "--type",
            "timestamp=timestamp:%Y-%m-%d %H:%M",
            "--type",
            "Amount=number",
            "--type",
            "Amount Refunded=number",
            "--type",
            "captured_ms=timestamp:ms",
        ],
    )
    .success();
    let events = server.sandbox.events();
    assert_eq!(events.len(), 3);
    // Events carry their time, so they are not held to file order: found by it.
    let first = events
        .iter()
        .find(|e| e.data["Amount"] == json!(1853.93))
        .expect("the first row's event");
    assert_eq!(first.person.as_deref(), Some("cus_NffrFeUfNV2Hib"));
    assert_eq!(first.name, "payment");
    // 2023-04-12 14:03 UTC.
    assert_eq!(first.timestamp, Some(1_681_308_180));
    assert_eq!(first.data["Amount"], json!(1853.93));
    assert_eq!(first.data["Amount Refunded"], json!(0));
    assert_eq!(first.data["captured_ms"], json!(1_681_308_180));
    // The charge id is no ULID: it became one, and is not sent as data.
    assert!(first.data.get("event_id").is_none());
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn an_event_without_a_time_has_one_id_however_its_file_is_named_and_two_files_two() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = d.join("job");
    let elsewhere = d.join("elsewhere");
    for folder in [&job, &elsewhere, &d.join("jan"), &d.join("feb")] {
        std::fs::create_dir(folder).unwrap();
    }
    let csv = "id,name,seats\nu1,renewed,2\nu2,renewed,x\n";
    let file = write(&job, "renew.csv", csv);
    write(
        &job,
        "renew.toml",
        "inputs = [\"renew.csv\"]\naction = \"event\"\ntype = [\"seats=number\"]\n",
    );
    let flags = ["--action", "event", "--type", "seats=number"];
    // The ids the sandbox received since `from`, in order.
    let ids = |from: usize| -> Vec<String> {
        let sent = server.sent().into_iter().skip(from);
        sent.map(|r| r.body.unwrap()["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let absolute = file.to_str().unwrap();
    let runs: [(&Path, Vec<&str>); 3] = [
        (&job, [&["renew.csv"][..], &flags].concat()),
        (d, [&[absolute][..], &flags].concat()),
        (&elsewhere, vec!["--config", "../job/renew.toml"]),
    ];
    for (cwd, args) in runs {
        server.cmd(cwd).args(args).assert().code(3);
    }
    let first = ids(0);
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|id| *id == first[0]), "{first:?}");

    // The invalid row's failures line keeps the full path, so that its replay from another
    // folder gives the id the fixed row gives in its file.
    let mut line = read_ndjson(&job.join("renew.failures.ndjson")).remove(0);
    let full = file.canonicalize().unwrap();
    assert_eq!(line["_error"]["path"], json!(full.to_str().unwrap()));
    assert_eq!(line["_error"]["source"], json!("renew.csv"));
    line["seats"] = json!("3");
    write(&elsewhere, "fixed.ndjson", &format!("{line}\n"));
    let sent = server.sent().len();
    server
        .cmd(&elsewhere)
        .arg("fixed.ndjson")
        .args(flags)
        .assert()
        .success();
    write(&job, "renew.csv", &csv.replace(",x\n", ",3\n"));
    server
        .cmd(&job)
        .arg("renew.csv")
        .args(flags)
        .assert()
        .success();
    // u2 replayed, then u1 and u2 from the fixed file (in either order).
    let replayed = ids(sent);
    let mut again = replayed[1..].to_vec();
    again.sort();
    let mut expected = vec![first[0].clone(), replayed[0].clone()];
    expected.sort();
    assert_eq!(again, expected, "{replayed:?}");

    // Two files of one name in two folders: two inputs, two ids.
    write(&d.join("jan"), "renew.csv", "id,name\nu1,renewed\n");
    write(&d.join("feb"), "renew.csv", "id,name\nu1,renewed\n");
    let sent = server.sent().len();
    server
        .cmd(d)
        .args(["jan/renew.csv", "feb/renew.csv", "--action", "event"])
        .assert()
        .success();
    let months = ids(sent);
    assert_eq!(months.len(), 2);
    assert_ne!(months[0], months[1]);
}

#[test]
fn a_replayed_row_that_fails_again_keeps_where_it_was_read_and_so_its_events_id() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = "id,name,seats\nu1,renewed,2\nu2,renewed,x\n";
    let file = write(d, "renew.csv", csv);
    let flags = ["--action", "event", "--type", "seats=number"];
    server.cmd(d).arg("renew.csv").args(flags).assert().code(3);
    // Replayed as it is: still invalid, into the next failures file.
    server
        .cmd(d)
        .arg("renew.failures.ndjson")
        .args(flags)
        .assert()
        .code(3);
    let mut line = read_ndjson(&d.join("renew.failures-2.ndjson")).remove(0);
    let full = file.canonicalize().unwrap();
    assert_eq!(line["_error"]["source"], json!("renew.csv"), "{line}");
    assert_eq!(line["_error"]["line"], json!(3), "{line}");
    assert_eq!(line["_error"]["path"], json!(full.to_str().unwrap()));
    // Fixed in the second failures file and replayed: the id the fixed row gives in its file.
    line["seats"] = json!("3");
    write(d, "fixed.ndjson", &format!("{line}\n"));
    let sent = server.sent().len();
    server
        .cmd(d)
        .arg("fixed.ndjson")
        .args(flags)
        .assert()
        .success();
    write(d, "renew.csv", &csv.replace(",x\n", ",3\n"));
    server
        .cmd(d)
        .arg("renew.csv")
        .args(flags)
        .assert()
        .success();
    let ids: Vec<(String, String)> = server.sent()[sent..]
        .iter()
        .map(|r| {
            // `/api/v1/customers/{id}/events`: one event a request.
            let who = r.path.split('/').nth(4).unwrap_or_default();
            let id = r.body.as_ref().unwrap()["id"].as_str().unwrap();
            (who.to_owned(), id.to_owned())
        })
        .collect();
    let of = |who: &str| -> Vec<&str> {
        let ids = ids.iter().filter(|(w, _)| w == who);
        ids.map(|(_, id)| id.as_str()).collect()
    };
    let u2 = of("u2");
    assert_eq!(u2.len(), 2, "{ids:?}");
    assert_eq!(
        u2[0], u2[1],
        "the replay and the fixed file send u2 with one id"
    );
}

#[test]
fn a_replayed_send_failure_that_fails_again_keeps_where_its_row_was_read() {
    let server = Server::refusing();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The first row is invalid, so a send failure's line in the failures file is not its row's.
    write(d, "big.csv", "id,plan\n,pro\nu1,pro\nu2,free\n");
    let fails = ["--no-preflight", "--max-retries", "0"];
    server.cmd(d).arg("big.csv").args(fails).assert().code(3);
    server
        .cmd(d)
        .arg("big.failures.ndjson")
        .args(fails)
        .assert()
        .code(3);
    let again = read_ndjson(&d.join("big.failures-2.ndjson"));
    // Requests go side by side: their failures in the order they ended.
    let mut at: Vec<(&str, &str, u64)> = again
        .iter()
        .map(|l| {
            let e = &l["_error"];
            let text = |k| e[k].as_str().unwrap();
            (text("stage"), text("source"), e["line"].as_u64().unwrap())
        })
        .collect();
    at.sort_by_key(|&(_, _, line)| line);
    assert_eq!(
        at,
        [
            ("invalid", "big.csv", 2),
            ("send", "big.csv", 3),
            ("send", "big.csv", 4)
        ],
        "{again:?}"
    );
}

#[test]
fn the_summary_counts_values_cut_apart_from_json_left_out() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(1200);
    let line = json!({"id": "1", "note": long, "blob": {"text": long}});
    let out = import(
        &server,
        dir.path(),
        "people.ndjson",
        &format!("{line}\n"),
        &["--oversize", "truncate"],
    )
    .success();
    let e = stderr(&out);
    assert!(
        e.contains(
            "2 attribute values over 1,000 bytes: 1 cut to fit, 1 left out (JSON, which cannot \
             be cut) (--oversize truncate)"
        ),
        "{e}"
    );
    assert_eq!(attribute(&server, "1", "note"), json!("x".repeat(1000)));
    assert_eq!(attribute(&server, "1", "blob"), Value::Null);
}

#[test]
fn a_cell_a_format_of_the_users_does_not_read_is_told_the_common_one_that_does() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    // HubSpot writes no seconds; the job's format asks for them.
    let csv = "id,created\n1,2024-03-05 14:03\n2,yesterday\n";
    let flags = ["--type", "created=timestamp:%Y-%m-%d %H:%M:%S"];
    import(&server, dir.path(), "people.csv", csv, &flags).code(3);
    let messages: Vec<Value> = read_ndjson(&dir.path().join("people.failures.ndjson"))
        .iter()
        .map(|l| l["_error"]["message"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            "column \"created\": \"2024-03-05 14:03\" is not a timestamp written as %Y-%m-%d \
             %H:%M:%S; --type 'created=timestamp:%Y-%m-%d %H:%M' reads it (--type \
             'created=timestamp:%Y-%m-%d %H:%M:%S')",
            // No common form reads it: nothing to add to the user's own format.
            "column \"created\": \"yesterday\" is not a timestamp written as %Y-%m-%d %H:%M:%S \
             (--type 'created=timestamp:%Y-%m-%d %H:%M:%S')",
        ]
    );
}
