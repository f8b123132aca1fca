//! The columns as the user means them, end to end against the sandbox: `--rename`, `--drop`,
//! `--flatten` and `*` patterns on real exports' shapes (HubSpot, Mailchimp, Segment, Excel),
//! the errors and warnings that name their fix, the plan told before sending, and
//! `--dry-run --show N`.

use crate::common;

use std::path::Path;

use common::{Server, bin, fixture, read_ndjson, write};
use serde_json::{Value, json};

/// Every operation the sandbox received in batches, and every anonymous event's body.
fn operations(server: &Server) -> Vec<Value> {
    let mut ops = Vec::new();
    for r in server.sent() {
        let body = r.body.unwrap();
        match body.get("batch") {
            Some(batch) => ops.extend(batch.as_array().unwrap().iter().cloned()),
            None => ops.push(body),
        }
    }
    ops
}

/// Runs the binary against `server` in batches, with `args`; its exit code and stderr.
fn run(server: &Server, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = server
        .cmd(dir)
        .args(["--batch", "100"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stderr)
}

/// A dry run with `args`: its exit code, stdout and stderr.
fn dry(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = bin(dir).arg("--dry-run").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HUBSPOT: [&str; 16] = [
    "--rename",
    "Record ID=id",
    "--rename",
    "Email=email",
    "--rename",
    "First Name=first_name",
    "--rename",
    "Last Name=last_name",
    "--rename",
    "Phone Number=phone",
    "--rename",
    "Create Date=created_at",
    "--rename",
    "Lifecycle Stage=lifecycle_stage",
    "--drop",
    "Contact owner",
];

#[test]
fn a_hubspot_export_is_read_under_customer_io_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "hubspot.csv", &fixture("hubspot-contacts.csv"));
    let server = Server::plain();
    let mut args = vec!["hubspot.csv"];
    args.extend(HUBSPOT);
    let (code, stderr) = run(&server, d, &args);
    assert_eq!(code, 0, "{stderr}");
    let ops = operations(&server);
    assert_eq!(
        ops[0],
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1001"},
               "attributes": {"created_at": 1709647380, "email": "ann.lee@example.com",
                              "first_name": "Ann", "last_name": "Lee",
                              "lifecycle_stage": "lead", "phone": "+14155550101"}})
    );
    assert_eq!(ops.len(), 3);
    assert!(
        ops.iter()
            .all(|op| op["attributes"].get("Contact owner").is_none())
    );
}

#[test]
fn a_mailchimp_export_gets_its_email_identifier_its_ids_dropped_and_its_times_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "members.csv", &fixture("mailchimp-members.csv"));
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            "members.csv",
            "--rename",
            "Email Address=email",
            "--rename",
            "* Name=*_name",
            "--drop",
            "*ID",
            "--drop",
            "NOTES",
            "--drop",
            "L*TUDE",
            "--type",
            "*_TIME=timestamp",
            "--type",
            "MEMBER_RATING=number",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        operations(&server)[0],
        json!({"type": "person", "action": "identify",
               "identifiers": {"email": "ann.lee@example.com"},
               "attributes": {"First_name": "Ann", "Last_name": "Lee", "MEMBER_RATING": 2,
                              "OPTIN_TIME": 1709647380, "CONFIRM_TIME": 1709647512}})
    );
}

#[test]
fn a_segment_export_names_its_event_person_and_anonymous_id_and_lifts_properties() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "tracks.ndjson", &fixture("segment-tracks.ndjson"));
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            "tracks.ndjson",
            "--action",
            "event",
            "--rename",
            "event=name",
            "--rename",
            "userId=id",
            "--rename",
            "anonymousId=anonymous_id",
            "--flatten",
            "properties",
            "--drop",
            "type",
            "--drop",
            "context",
            "--drop",
            "messageId",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "tracks.ndjson line 1: this event is of the person in column \"userId\" (--rename \
             userId=id) and has an anonymous id too, in column \"anonymousId\" (--rename \
             anonymousId=anonymous_id)"
        ),
        "{stderr}"
    );
    let mut ops = operations(&server);
    for op in &mut ops {
        op.as_object_mut().unwrap().remove("id");
    }
    ops.sort_by_key(|op| op["name"].as_str().unwrap().to_owned());
    assert_eq!(
        ops,
        [
            json!({"type": "person", "action": "event", "identifiers": {"id": "u-1001"},
                   "name": "Order Completed", "timestamp": 1709647380,
                   "attributes": {"order_id": "A-17", "revenue": 42.5, "currency": "USD"}}),
            json!({"anonymous_id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                   "name": "Product Viewed", "timestamp": 1709647800,
                   "data": {"sku": "SKU-9", "price": 19.99}}),
            json!({"type": "person", "action": "event", "identifiers": {"id": "u-1002"},
                   "name": "Signed Up", "timestamp": 1709718060,
                   "attributes": {"plan": "pro"}}),
        ]
    );
}

#[test]
fn an_excel_file_has_its_separator_line_read_and_its_empty_trailing_columns_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "excel.csv",
        "sep=;\r\nemail;city;;\r\nann@example.com;Zürich;;\r\nbob@example.com;Oslo;;x\r\n\
         ;Rome;;\r\ndee@example.com;Bergen\r\n",
    );
    let server = Server::plain();
    let (code, stderr) = run(&server, d, &["excel.csv", "--failures", "f.ndjson"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        operations(&server),
        [
            json!({"type": "person", "action": "identify",
                "identifiers": {"email": "ann@example.com"},
                "attributes": {"city": "Zürich"}}),
            // A row that leaves out the empty cells of the unnamed columns, as Excel may.
            json!({"type": "person", "action": "identify",
                "identifiers": {"email": "dee@example.com"},
                "attributes": {"city": "Bergen"}}),
        ]
    );
    let failures = read_ndjson(&d.join("f.ndjson"));
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["_error"]["line"], 4);
    assert_eq!(
        failures[0]["_error"]["message"],
        "column 4 has no name in the header but this row has a value in it; name the column \
         or remove it"
    );
    // The value is kept (under "", which a replay refuses as the run did); the empty unnamed
    // cells are left out, so a line fixed otherwise replays.
    assert_eq!(failures[0][""], "x");
    let mut fixed = failures[1].clone();
    assert!(fixed.get("").is_none(), "{fixed}");
    fixed["email"] = json!("cy@example.com");
    write(d, "fixed.ndjson", &format!("{fixed}\n"));
    let (code, stderr) = run(&server, d, &["fixed.ndjson"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        server.sandbox.person("cy@example.com").unwrap()["city"],
        "Rome"
    );
}

#[test]
fn trailing_header_cells_of_only_spaces_are_unnamed_columns_like_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "u.csv",
        "email,city, ,\t\nann@example.com,Zürich\nbob@example.com,Oslo,,x\n",
    );
    let server = Server::plain();
    let (code, stderr) = run(&server, d, &["u.csv", "--failures", "f.ndjson"]);
    assert_eq!(code, 3, "{stderr}");
    // A row short by those columns leaves them empty; a value in one is refused.
    assert_eq!(
        operations(&server),
        [json!({"type": "person", "action": "identify",
            "identifiers": {"email": "ann@example.com"},
            "attributes": {"city": "Zürich"}})]
    );
    let failures = read_ndjson(&d.join("f.ndjson"));
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]["_error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("column 4 has no name in the header"),
        "{}",
        failures[0]
    );
}

#[test]
fn mistaken_column_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "id,Email,email,plan\n1,a@x.io,b@x.io,pro\n");
    // Each a usage error: the command line is wrong about the header.
    let cases: [(&[&str], &str); 7] = [
        (
            &["--flatten", "properties"],
            "--flatten properties: lifts the keys of an NDJSON object, and every input is CSV, \
             whose cells do not nest; leave it out",
        ),
        (
            &["--rename", "Email=email"],
            "u.csv: --rename Email=email: the header has a column \"email\" already; rename \
             that one too (--rename email=OTHER, and --drop OTHER to leave it out)",
        ),
        (
            &["--rename", "Email=x", "--rename", "plan=x"],
            "--rename Email=x and --rename plan=x both name a column \"x\"; keep one",
        ),
        (
            &["--rename", "*mail=contact"],
            "u.csv: --rename '*mail=contact': renames both \"Email\" and \"email\" to \
             \"contact\"; rename them apart",
        ),
        (
            &["--drop", "NOTES*"],
            "--drop 'NOTES*': the pattern \"NOTES*\" matches no column of any input; u.csv's \
             header has: id, Email, email, plan",
        ),
        (
            &["--rename", "Plan=plan_name"],
            "--rename Plan=plan_name: no input has a column \"Plan\"; u.csv's header has: id, \
             Email, email, plan",
        ),
        (
            &["--id-column", "email", "--drop", "e*"],
            "u.csv: --drop 'e*': that drops \"email\", the --id-column; drop another column or \
             choose another --id-column",
        ),
    ];
    for (args, message) in cases {
        let (got, _, stderr) = dry(d, &[&["u.csv"], args].concat());
        assert_eq!(got, 2, "{args:?}: {stderr}");
        let expected = format!("cio-import: error: {message}");
        assert!(
            stderr.lines().any(|l| l == expected),
            "{args:?}: {stderr}\nexpected: {expected}"
        );
    }
}

#[test]
fn a_column_that_is_a_customer_io_name_but_for_case_or_spaces_is_warned_with_its_rename() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "u.csv",
        "id,Email,Created At,E-mail,PHONE\n1,a@x.io,2024-03-05,a@x.io,+14155550101\n",
    );
    let (code, _, stderr) = dry(d, &["u.csv"]);
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            "cio-import: warning: u.csv: column \"Email\" is sent as a custom attribute \
             \"Email\", not as Customer.io's \"email\"; if it is meant as that, pass --rename \
             Email=email",
            "cio-import: warning: u.csv: column \"PHONE\" is sent as a custom attribute \
             \"PHONE\", not as Customer.io's \"phone\"; if it is meant as that, pass --rename \
             PHONE=phone",
            "cio-import: warning: u.csv: column \"Created At\" is sent as a custom attribute \
             \"Created At\", not as Customer.io's \"created_at\"; if it is meant as that, pass \
             --rename 'Created At=created_at'",
        ]
    );
    // Renamed, nothing is left to warn of.
    let (_, _, stderr) = dry(
        d,
        &[
            "u.csv",
            "--rename",
            "Email=email",
            "--rename",
            "Created At=created_at",
            "--drop",
            "PHONE",
        ],
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    // NDJSON: its first line's keys, lifted ones too.
    write(
        d,
        "e.ndjson",
        "{\"id\":\"1\",\"name\":\"x\",\"properties\":{\"Time Stamp\":1}}\n",
    );
    let (_, _, stderr) = dry(
        d,
        &["e.ndjson", "--action", "event", "--flatten", "properties"],
    );
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            // An event without a time is told once, whatever the columns.
            "cio-import: warning: e.ndjson line 1: this event has no timestamp: it goes without \
          a time (Customer.io gives it the time it arrives) and with an id from its content, \
          this input's name and its line, as every such event does; a new export written to \
          this same path gives the rows at the same lines the same ids, so Customer.io drops a \
          row identical to the one sent from its line before (told once)",
            "cio-import: warning: e.ndjson: key \"Time Stamp\" is sent as a custom attribute \
          \"Time Stamp\", not as Customer.io's \"timestamp\"; if it is meant as that, pass \
          --rename 'Time Stamp=timestamp'"
        ]
    );
}

#[test]
fn an_id_identifier_holding_email_addresses_is_warned_once_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: String = (0..150)
        .map(|i| format!("user{i}@example.com,pro\n"))
        .collect();
    write(d, "u.csv", &format!("Email Address,plan\n{rows}"));
    let (code, _, stderr) = dry(d, &["u.csv", "--rename", "Email Address=id"]);
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            "cio-import: warning: u.csv: the identifier column \"Email Address\" (--rename \
          'Email Address=id') is sent as id, but 100 of \
          its first 100 values look like email addresses: Customer.io would make people whose \
          id is an address and who have no email. If they are emails, pass --rename \
          'Email Address=email' in place of --rename 'Email Address=id' (or --id-column \
          id --id-type email)"
        ]
    );
    // A file shorter than the sample is judged at its end; --id-column names its own fix.
    write(
        d,
        "short.ndjson",
        "{\"uid\":\"a@x.io\"}\n{\"uid\":\"b@x.io\"}\n",
    );
    let (_, _, stderr) = dry(d, &["short.ndjson", "--id-column", "uid"]);
    assert!(
        stderr.contains(
            "short.ndjson: the identifier column \"uid\" is sent as id, but 2 of its first 2 \
             values look like email addresses"
        ) && stderr.contains("pass --id-type email (with --id-column uid)"),
        "{stderr}"
    );
    let (_, _, stderr) = dry(d, &["u.csv", "--rename", "Email Address=email"]);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_flattened_key_that_clashes_makes_its_row_invalid_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "e.ndjson",
        "{\"id\":\"1\",\"plan\":\"pro\",\"properties\":{\"seats\":3}}\n\
         {\"id\":\"2\",\"plan\":\"pro\",\"properties\":{\"plan\":\"free\"}}\n\
         {\"id\":\"3\",\"properties\":\"flat\"}\n",
    );
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            "e.ndjson",
            "--flatten",
            "properties",
            "--failures",
            "f.ndjson",
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        operations(&server),
        [
            json!({"type": "person", "action": "identify", "identifiers": {"id": "1"},
                "attributes": {"plan": "pro", "seats": 3}})
        ]
    );
    let failures = read_ndjson(&d.join("f.ndjson"));
    let messages: Vec<&Value> = failures.iter().map(|f| &f["_error"]["message"]).collect();
    assert_eq!(
        messages,
        [
            "\"plan\" and \"properties.plan\" are both read as \"plan\"; --drop or --rename \
             one of them",
            "\"properties\" is a string, not an object to lift (--flatten properties)",
        ]
    );
    // The line keeps the row as it was, for a replay with the same flags.
    assert_eq!(failures[0]["properties"], json!({"plan": "free"}));
}

#[test]
fn the_plan_says_what_each_column_becomes_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "Record ID,Email,age,LEID,\n1,a@x.io,36,9,\n");
    let server = Server::plain();
    let (code, stderr) = run(
        &server,
        d,
        &[
            "u.csv",
            "--rename",
            "Record ID=id",
            "--rename",
            "Email=email",
            "--drop",
            "LEID",
            "--type",
            "age=number",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let plan: Vec<&str> = stderr.lines().take(6).collect();
    assert_eq!(
        plan,
        [
            "cio-import: u.csv: the plan, column by column:",
            "  \"Record ID\"  the identifier, as id (--rename)",
            "  \"Email\"      attribute \"email\", text (--rename)",
            "  \"age\"        attribute \"age\", number (--type)",
            "  \"LEID\"       dropped (--drop)",
            "  \"\"           no name: must stay empty",
        ]
    );
}

#[test]
fn the_plan_lines_up_names_that_are_not_ascii_or_hold_a_quote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "u.csv", "名前前前,\"in\"\"ch\",id\na,b,1\n");
    let server = Server::plain();
    let (code, stderr) = run(&server, d, &["u.csv"]);
    assert_eq!(code, 0, "{stderr}");
    let plan: Vec<&str> = stderr.lines().skip(1).take(3).collect();
    assert_eq!(
        plan,
        [
            "  \"名前前前\"    attribute \"名前前前\", text",
            "  \"in\\\"ch\"  attribute \"in\\\"ch\", text",
            "  \"id\"      the identifier, as id",
        ]
    );
}

#[test]
fn show_writes_the_first_operations_exactly_as_a_real_run_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "hubspot.csv", &fixture("hubspot-contacts.csv"));
    let mut args = vec!["hubspot.csv", "--batch", "100"];
    args.extend(HUBSPOT);
    let (code, stdout, stderr) = dry(d, &[&args[..], &["--show", "2"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let shown: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let server = Server::plain();
    let (code, stderr) = run(&server, d, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(shown, operations(&server)[..2]);
    // One a request, what is shown is each request: its method and path (which name the
    // person), then its body.
    let (_, stdout, _) = dry(d, &[&args[..], &["--batch", "1", "--show", "1"]].concat());
    let body = stdout.trim().strip_prefix("PUT /api/v1/customers/1001 ");
    let body: Value = serde_json::from_str(body.unwrap_or_else(|| panic!("{stdout}"))).unwrap();
    assert_eq!(body["email"], "ann.lee@example.com");
    assert_eq!(body.get("identifiers"), None);
    // A request without a body is its method and path.
    let (_, stdout, _) = dry(
        d,
        &[
            &args[..],
            &["--batch", "1", "--show", "1", "--action", "delete", "--yes"],
        ]
        .concat(),
    );
    assert_eq!(stdout, "DELETE /api/v1/customers/1001\n");
}

#[test]
fn a_failures_line_keeps_the_header_names_and_replays_with_the_same_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "u.csv",
        "Record ID,Create Date\n1,2024-03-05\n2,last tuesday\n",
    );
    let server = Server::plain();
    let flags = [
        "--rename",
        "Record ID=id",
        "--rename",
        "Create Date=created_at",
    ];
    let (code, stderr) = run(
        &server,
        d,
        &[&["u.csv", "--failures", "f.ndjson"][..], &flags].concat(),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "fix and replay: cio-import f.ndjson --rename 'Record ID=id' --rename \
             'Create Date=created_at'"
        ),
        "{stderr}"
    );
    let mut line = read_ndjson(&d.join("f.ndjson")).remove(0);
    assert_eq!(line["Create Date"], "last tuesday");
    line["Create Date"] = json!("2024-03-06");
    write(d, "fixed.ndjson", &format!("{line}\n"));
    let (code, stderr) = run(&server, d, &[&["fixed.ndjson"][..], &flags].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        operations(&server)[1],
        json!({"type": "person", "action": "identify", "identifiers": {"id": "2"},
               "attributes": {"created_at": 1709683200}})
    );
}

#[test]
fn an_excel_export_in_windows_1252_is_decoded_with_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/excel-export.csv"))
            .unwrap();
    std::fs::write(d.join("excel.csv"), bytes).unwrap();
    let server = Server::plain();
    let (code, stderr) = run(&server, d, &["excel.csv", "--encoding", "windows-1252"]);
    assert_eq!(code, 0, "{stderr}");
    let cities: Vec<Value> = operations(&server)
        .iter()
        .map(|op| op["attributes"]["city"].clone())
        .collect();
    assert_eq!(cities, ["Zürich", "São Paulo"]);

    // UTF-16 with a byte order mark: the mark says which one.
    let text = "\u{feff}email,city\nann@example.com,Zürich\n";
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    std::fs::write(d.join("u16.csv"), be).unwrap();
    let (_, stdout, stderr) = dry(d, &["u16.csv", "--encoding", "utf-16le", "--show", "1"]);
    let op: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stderr}"));
    assert_eq!(op["attributes"]["city"], "Zürich");
}

#[test]
fn a_file_not_in_utf8_is_told_once_naming_encoding_and_its_rows_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut bytes = b"id,city\n".to_vec();
    for i in 0..5 {
        bytes.extend_from_slice(format!("{i},Z").as_bytes());
        bytes.extend_from_slice(b"\xfcrich\n");
    }
    std::fs::write(d.join("w.csv"), &bytes).unwrap();
    let (code, _, stderr) = dry(d, &["w.csv", "--failures", "f.ndjson"]);
    assert_eq!(code, 3, "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            "cio-import: warning: w.csv line 2: column \"city\" is not valid UTF-8: the input is \
          not UTF-8; if it is in another encoding, pass it as --encoding LABEL (windows-1252 \
          for Excel on Windows, latin1, utf-16le). Every such row is invalid and in the \
          failures file"
        ]
    );
    let failures = read_ndjson(&d.join("f.ndjson"));
    assert_eq!(failures.len(), 5);
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(failures[0]["_raw_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, b"0,Z\xfcrich");
}

#[test]
fn show_and_a_summary_on_stdout_are_refused_together() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "u.csv", "id\n1\n");
    let (code, stdout, stderr) = dry(dir.path(), &["u.csv", "--show", "1", "--summary", "-"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(
            "--show and --summary - both write to stdout, where they would mix: give --summary \
             a file (--summary PATH)"
        ),
        "{stderr}"
    );
}
