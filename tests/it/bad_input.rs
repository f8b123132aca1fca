//! Broken inputs, end to end: the binary against the sandbox, one case per file of
//! tests/fixtures/broken/ (plus the cases made at run time: missing, directory, unreadable,
//! and the huge ones). A broken row is invalid and the rest of the file still goes; a broken
//! input stops the run before anything is sent; a stream broken part-way ends with an error
//! after what was read before it is settled.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Server, read_ndjson, write};
use serde_json::{Value, json};

/// A file of the corpus.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/broken")
        .join(name)
}

/// What a run left behind.
struct Ran {
    code: i32,
    stderr: String,
    /// `--summary -`; None when the run stopped before it started.
    summary: Option<Value>,
    /// The failures file of the first input, if there is one.
    failures: Vec<Value>,
}

/// Runs the binary on `inputs` against `server`, in `dir`.
fn import(server: &Server, dir: &Path, inputs: &[&Path], args: &[&str]) -> Ran {
    let out = server
        .cmd(dir)
        .args(inputs)
        .args(args)
        .args(["--summary", "-"])
        .output()
        .unwrap();
    let name = inputs[0].file_name().unwrap().to_str().unwrap();
    let stem = name.split('.').next().unwrap();
    let failures = dir.join(format!("{stem}.failures.ndjson"));
    Ran {
        code: out.status.code().unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        summary: serde_json::from_slice(&out.stdout).ok(),
        failures: if failures.exists() {
            read_ndjson(&failures)
        } else {
            Vec::new()
        },
    }
}

/// The people the server was sent a record for (the preflight's GETs left out).
fn sent(server: &Server) -> BTreeSet<String> {
    server
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.identifier.unwrap())
        .collect()
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// One invalid row: its line, the column to blame (if any), and words of its message.
type Bad<'a> = (u64, Option<&'a str>, &'a str);

/// A file with broken rows: exit 3; each broken row is told on stderr and written to the
/// failures file with its file, line, column and message; the other rows are stored.
fn rows_invalid(
    input: &Path,
    args: &[&str],
    stored: &[&str],
    invalid: &[Bad],
) -> (Server, Vec<Value>) {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[input], args);
    let name = input.display().to_string();
    assert_eq!(ran.code, 3, "{}", ran.stderr);

    for (line, _, words) in invalid {
        let told = format!("cio-import: warning: {name} line {line}: ");
        assert!(
            ran.stderr
                .lines()
                .any(|l| l.starts_with(&told) && l.contains(words)),
            "no {told}...{words} in:\n{}",
            ran.stderr
        );
    }
    assert_eq!(ran.failures.len(), invalid.len(), "{:#?}", ran.failures);
    for (failure, (line, column, words)) in ran.failures.iter().zip(invalid) {
        let error = &failure["_error"];
        assert_eq!(error["source"], json!(name));
        assert_eq!(error["line"], json!(line), "{failure}");
        assert_eq!(error["stage"], json!("invalid"));
        assert_eq!(error.get("column").and_then(Value::as_str), *column);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    }

    assert_eq!(sent(&server), ids(stored));
    for id in stored {
        assert!(server.sandbox.person(id).is_some(), "{id} not stored");
    }
    let summary = ran.summary.unwrap();
    assert_eq!(summary["accepted"], json!(stored.len()));
    assert_eq!(summary["invalid"], json!(invalid.len()));
    assert_eq!(summary["records"], json!(stored.len() + invalid.len()));
    (server, ran.failures)
}

/// An input that cannot be used, given after a good one: exit 1, the error names the file,
/// and nothing at all reaches the server.
fn input_refused(broken: &Path, message: &str) {
    refused_with(broken, 1, message);
}

/// [`input_refused`], ending with `code`.
fn refused_with(broken: &Path, code: i32, message: &str) {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", "id,plan\n1,pro\n");
    let ran = import(&server, dir.path(), &[&good, broken], &[]);
    assert_eq!(ran.code, code, "{}", ran.stderr);
    let expected = format!("cio-import: error: {}: {message}", broken.display());
    assert!(
        ran.stderr.lines().any(|l| l == expected),
        "expected {expected:?} in:\n{}",
        ran.stderr
    );
    assert!(server.sandbox.requests().is_empty());
    assert!(ran.failures.is_empty());
}

/// A stream that breaks part-way: exit 1, the error names the file and the line, and the
/// rows before it are stored and settled.
fn stream_broken(input: &Path, message: &str, stored: &[&str]) {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[input], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let expected = format!("cio-import: error: {}: {message}", input.display());
    assert!(
        ran.stderr.lines().any(|l| l == expected),
        "expected {expected:?} in:\n{}",
        ran.stderr
    );
    assert_eq!(sent(&server), ids(stored));
    let summary = ran.summary.unwrap();
    assert_eq!(summary["records"], json!(stored.len()));
    assert_eq!(summary["accepted"], json!(stored.len()));
    assert_eq!(summary["unsent"], json!(0));
}

// --- a broken row is invalid; the rest of the file goes

#[test]
fn too_many_fields() {
    rows_invalid(
        &fixture("too_many_fields.csv"),
        &[],
        &["1", "3"],
        &[(3, None, "has 4 fields, the header has 3")],
    );
}

#[test]
fn too_few_fields() {
    rows_invalid(
        &fixture("too_few_fields.csv"),
        &[],
        &["1", "3"],
        &[(3, None, "has 2 fields, the header has 3")],
    );
}

#[test]
fn invalid_utf8_in_a_csv_cell() {
    let (server, _) = rows_invalid(
        &fixture("invalid_utf8.csv"),
        &[],
        &["1", "3"],
        &[(3, Some("name"), "column \"name\" is not valid UTF-8")],
    );
    assert_eq!(server.sandbox.person("3").unwrap()["name"], json!("Cat"));
}

#[test]
fn invalid_utf8_in_an_ndjson_line() {
    rows_invalid(
        &fixture("invalid_utf8.ndjson"),
        &[],
        &["1", "3"],
        &[(2, None, "is not valid UTF-8 (byte 20)")],
    );
}

#[test]
fn attribute_value_over_the_limit() {
    rows_invalid(
        &fixture("value_over_limit.csv"),
        &[],
        &["1", "3"],
        &[(3, Some("bio"), "column \"bio\" is 1,001 bytes")],
    );
}

#[test]
fn identifier_over_the_limit() {
    rows_invalid(
        &fixture("identifier_over_limit.csv"),
        &[],
        &["1", "3"],
        &[(
            3,
            Some("id"),
            "column \"id\" is 151 bytes; Customer.io allows at most 150",
        )],
    );
}

#[test]
fn ndjson_line_not_an_object() {
    let (_, failures) = rows_invalid(
        &fixture("not_an_object.ndjson"),
        &[],
        &["1", "4"],
        &[
            (2, None, "is a JSON array, expected an object"),
            (3, None, "is a JSON string, expected an object"),
        ],
    );
    // The failures file keeps what the line held, for fixing by hand.
    let raw: Vec<&Value> = failures.iter().map(|f| &f["_raw"]).collect();
    assert_eq!(raw, [&json!("[{\"id\":\"2\"}]"), &json!("\"3\"")]);
}

#[test]
fn ndjson_line_not_json() {
    rows_invalid(
        &fixture("not_json.ndjson"),
        &[],
        &["1", "4"],
        &[
            (
                2,
                None,
                "is not valid JSON: EOF while parsing a value at column 10",
            ),
            (
                3,
                None,
                "is not valid JSON: key must be a string at column 2",
            ),
        ],
    );
}

#[test]
fn ndjson_line_nested_too_deep() {
    rows_invalid(
        &fixture("too_deep.ndjson"),
        &[],
        &["1", "3"],
        &[(2, None, "nests deeper than 32 levels")],
    );
}

#[test]
fn csv_value_not_of_its_type() {
    let (server, _) = rows_invalid(
        &fixture("bad_type.csv"),
        &["--type", "age=number", "--type", "vip=bool"],
        &["1", "4"],
        &[
            (
                3,
                Some("age"),
                "column \"age\": \"thirty\" is not a number (--type age=number)",
            ),
            (4, Some("vip"), "column \"vip\": \"maybe\" is not a bool"),
        ],
    );
    assert_eq!(
        Value::Object(server.sandbox.person("4").unwrap()),
        json!({"age": 41, "vip": true})
    );
}

#[test]
fn ndjson_value_not_of_its_type() {
    let (server, _) = rows_invalid(
        &fixture("bad_type.ndjson"),
        &["--type", "signed_up=timestamp"],
        &["1", "3"],
        &[(
            2,
            Some("signed_up"),
            "column \"signed_up\": \"last tuesday\" is not a timestamp",
        )],
    );
    assert_eq!(
        server.sandbox.person("1").unwrap()["signed_up"],
        json!(1_709_596_800)
    );
}

#[test]
fn ndjson_line_of_5_mb_is_skipped_and_the_next_imported() {
    let dir = tempfile::tempdir().unwrap();
    let blob = "x".repeat(5_000_000);
    let input = write(
        dir.path(),
        "huge_line.ndjson",
        &format!("{{\"id\":\"1\"}}\n{{\"id\":\"2\",\"blob\":\"{blob}\"}}\n{{\"id\":\"3\"}}\n"),
    );
    let server = Server::plain();
    let ran = import(&server, dir.path(), &[&input], &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let error = &ran.failures[0]["_error"];
    assert_eq!(error["line"], json!(2));
    assert_eq!(
        error["message"],
        json!("is 5.0 MB long; the most a row may be is 1 MiB")
    );
    // Only the start of the line is kept.
    let raw = ran.failures[0]["_raw"].as_str().unwrap();
    assert!(raw.starts_with("{\"id\":\"2\",\"blob\":\"xxx") && raw.len() <= 2000);
    assert!(
        ran.stderr
            .contains("huge_line.ndjson line 2: is 5.0 MB long")
    );
    assert_eq!(sent(&server), ids(&["1", "3"]));
}

#[test]
fn csv_cell_of_5_mb_is_one_invalid_row_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let blob = "x".repeat(5_000_000);
    let input = write(
        dir.path(),
        "huge_cell.csv",
        &format!("id,note\n1,ok\n2,\"a\n{blob}\"\n3,\"two\nlines\"\n4,ok\n"),
    );
    let (server, failures) = rows_invalid(
        &input,
        &[],
        &["1", "3", "4"],
        &[(3, None, "is 5.0 MB long, to line 4")],
    );
    assert!(
        failures[0]["_error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("; the most a row may be is 1 MiB")
    );
    // Only the start of the record is kept.
    let raw = failures[0]["_raw"].as_str().unwrap();
    assert!(raw.starts_with("2,\"a\nxxx") && raw.len() <= 2000, "{raw}");
    // The rows after it are read from where it ends.
    assert_eq!(
        Value::Object(server.sandbox.person("3").unwrap()),
        json!({"note": "two\nlines"})
    );
}

#[test]
fn only_the_first_invalid_rows_are_told_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "users.csv",
        &format!("id\n{}1\n", ",\n".repeat(15)),
    );
    let server = Server::plain();
    let ran = import(&server, dir.path(), &[&input], &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.failures.len(), 15);
    let told = ran.stderr.lines().filter(|l| l.contains(" line ")).count();
    assert_eq!(told, 10, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("warning: more invalid rows: the failures file has every one")
    );
    assert_eq!(sent(&server), ids(&["1"]));
}

// --- a broken input stops the run before anything is sent

#[test]
fn missing_input() {
    let dir = tempfile::tempdir().unwrap();
    // A path with no file is the command line's mistake (a typo): a usage error.
    refused_with(&dir.path().join("missing.csv"), 2, "no such file");
}

#[test]
fn directory_as_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("folder.csv");
    std::fs::create_dir(&path).unwrap();
    input_refused(&path, "is a directory, not a file");
}

/// Opens but cannot be read (tests run as root, where no permission bit stops a read):
/// /proc/self/mem has nothing mapped at offset 0.
#[cfg(target_os = "linux")]
#[test]
fn unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unreadable.csv");
    std::os::unix::fs::symlink("/proc/self/mem", &path).unwrap();
    input_refused(&path, "cannot be read: input/output error");
}

#[test]
fn csv_header_with_a_duplicated_column() {
    input_refused(
        &fixture("duplicate_column.csv"),
        "header row: column \"email\" appears twice (columns 2 and 4)",
    );
}

#[test]
fn csv_header_with_an_empty_column_name() {
    input_refused(
        &fixture("empty_column_name.csv"),
        "header row: column 2 has an empty name",
    );
}

#[test]
fn csv_header_with_a_name_of_only_spaces_is_refused_as_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let blank = write(dir.path(), "blank.csv", "id, ,plan\n1,,pro\n2,x,pro\n");
    input_refused(&blank, "header row: column 2 has an empty name");
}

#[test]
fn csv_header_not_utf8() {
    input_refused(
        &fixture("header_invalid_utf8.csv"),
        "header row: column 2 is not valid UTF-8",
    );
}

#[test]
fn gz_input_that_is_not_gzip() {
    input_refused(
        &fixture("not_gzip.csv.gz"),
        "not a gzip file, or the gzip stream is corrupt at its start",
    );
}

#[test]
fn a_gzipped_file_without_gz_in_its_name_and_utf16_text_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("users.csv");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, b"id\n1\n").unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    input_refused(
        &gz,
        "starts like a gzip file: name it .gz (or, on stdin, pipe it through gunzip)",
    );
    let utf16 = dir.path().join("excel.csv");
    let text: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("id\n1\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    std::fs::write(&utf16, text).unwrap();
    input_refused(
        &utf16,
        "is UTF-16 text: pass --encoding utf-16le (its byte order mark tells which), or save it as UTF-8 (in Excel: CSV UTF-8)",
    );
}

#[test]
fn csv_without_an_identifier_column() {
    input_refused(
        &fixture("no_identifier_column.csv"),
        "no identifier column: expected one of id, email, cio_id (or --id-column NAME); \
         the header has: name, plan",
    );
}

// --- nothing to read is nothing to do

#[test]
fn empty_inputs_and_a_header_without_rows() {
    for name in ["empty.csv", "empty.ndjson", "header_only.csv"] {
        let server = Server::plain();
        let dir = tempfile::tempdir().unwrap();
        let ran = import(&server, dir.path(), &[&fixture(name)], &[]);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
        assert!(!ran.stderr.contains("warning"), "{name}: {}", ran.stderr);
        assert_eq!(ran.summary.unwrap()["records"], json!(0), "{name}");
        assert!(sent(&server).is_empty());
        assert!(ran.failures.is_empty());
    }
}

// --- a stream broken part-way ends that input; what came before is settled

#[test]
fn truncated_gzip() {
    let input = fixture("truncated.ndjson.gz");
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[&input], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let prefix = format!(
        "cio-import: error: {}: the gzip stream is truncated or corrupt after line ",
        input.display()
    );
    let last: usize = ran
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{}", ran.stderr))
        .parse()
        .unwrap();
    // The fixture holds 3,000 rows, id = line; half of it is cut off.
    assert!(last > 0 && last < 3000, "{last}");
    let lines: Vec<String> = (1..=last).map(|i| i.to_string()).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    drop(server);
    stream_broken(
        &input,
        &format!("the gzip stream is truncated or corrupt after line {last}"),
        &lines,
    );
}

#[test]
fn csv_quote_never_closed() {
    stream_broken(
        &fixture("unterminated_quote.csv"),
        "the row at line 3 has a quoted field that is never closed",
        &["1"],
    );
}

#[test]
fn an_input_that_breaks_off_ends_the_reading_and_a_resume_meets_it_again() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "a.csv",
        "id,note\n1,ok\n2,\"never closed\n3,ok\n",
    );
    let good = write(dir.path(), "b.csv", "id,note\n4,ok\n");
    let ran = import(&server, dir.path(), &[&broken, &good], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    // b.csv is not begun: its records would move the checkpoint past the rest of a.csv.
    assert_eq!(sent(&server), ids(&["1"]));
    let ran = import(&server, dir.path(), &[&broken, &good], &["--resume"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("never closed"), "{}", ran.stderr);
    assert_eq!(sent(&server), ids(&["1"]));
}

// --- a BOM and CRLF line ends are read without a word

#[test]
fn bom_and_crlf_in_csv() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[&fixture("bom_crlf.csv")], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stderr.contains("warning"), "{}", ran.stderr);
    let person = |id| Value::Object(server.sandbox.person(id).unwrap());
    assert_eq!(person("1"), json!({"plan": "pro", "note": "plain"}));
    // A line break inside a quoted cell is the cell's own: kept as it is.
    assert_eq!(person("2"), json!({"plan": "free", "note": "two\r\nlines"}));
    assert_eq!(person("3"), json!({"plan": "pro", "note": "last"}));
    assert_eq!(sent(&server), ids(&["1", "2", "3"]));
}

#[test]
fn bom_and_crlf_in_ndjson() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[&fixture("bom_crlf.ndjson")], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stderr.contains("warning"), "{}", ran.stderr);
    assert_eq!(
        Value::Object(server.sandbox.person("1").unwrap()),
        json!({"plan": "pro"})
    );
    assert_eq!(sent(&server), ids(&["1", "2"]));
}

// --- --max-invalid

#[test]
fn more_invalid_rows_than_max_invalid_stops_the_run() {
    let input = fixture("many_invalid.csv");
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ran = import(&server, dir.path(), &[&input], &["--max-invalid", "2"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("error: more than 2 rows are invalid (--max-invalid)"),
        "{}",
        ran.stderr
    );
    // It stopped at the third invalid row: the good rows after it were never read.
    let lines: Vec<&Value> = ran.failures.iter().map(|f| &f["_error"]["line"]).collect();
    assert_eq!(lines, [&json!(2), &json!(3), &json!(4)]);
    assert!(sent(&server).is_empty());
    assert_eq!(ran.summary.unwrap()["records"], json!(3));
}

#[test]
fn as_many_invalid_rows_as_max_invalid_goes_on() {
    rows_invalid(
        &fixture("many_invalid.csv"),
        &["--max-invalid", "3"],
        &["4", "5"],
        &[
            (2, Some("id"), "column \"id\" is empty"),
            (3, Some("id"), "column \"id\" is empty"),
            (4, Some("id"), "column \"id\" is empty"),
        ],
    );
}

#[test]
fn rows_that_could_not_be_read_are_not_offered_for_replay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let said = |name: &str, bytes: &[u8]| {
        std::fs::write(d.join(name), bytes).unwrap();
        let out = common::bin(d).args([name, "--sandbox"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let only = said("w.csv", b"id,city\n1,Z\xfcrich\n2,Rome\n");
    assert!(
        only.contains(
            "1 row could not be read (_raw lines, which a replay cannot map): fix them in the \
             original input and import those rows again"
        ),
        "{only}"
    );
    assert!(!only.contains("fix and replay"), "{only}");
    let mixed = said("m.csv", b"id,city\n1,Z\xfcrich\n,Rome\n");
    assert!(
        mixed.contains("fix and replay: cio-import m.failures.ndjson"),
        "{mixed}"
    );
    assert!(
        mixed.contains("1 of them could not be read (_raw lines, which a replay cannot map)"),
        "{mixed}"
    );
}
