//! The reader as a data engineer meets it, end to end against the sandbox: a failures file
//! replayed with the job's `--encoding`, old Mac line ends, Excel's `sep=` line (and a
//! `--delimiter` against it), and `_raw` giving back a row's bytes as they were in the file,
//! or written back with its delimiter when they cannot be read again.

use crate::common;

use std::path::Path;

use common::{Server, read_ndjson};
use serde_json::{Value, json};

/// Runs the binary against `server` in `dir` with `args`, which must end with `code`; the
/// body of every request the server has received by then (a person's attributes, one
/// record a request), in order.
fn import(server: &Server, dir: &Path, args: &[&str], code: i32) -> Vec<Value> {
    let out = server.cmd(dir).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    server.sent().into_iter().map(|r| r.body.unwrap()).collect()
}

/// The `city` of each.
fn cities(attributes: &[Value]) -> Vec<&str> {
    attributes
        .iter()
        .map(|a| a["city"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn a_failures_file_replayed_with_the_jobs_encoding_is_read_as_the_utf8_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("x3.csv"),
        b"sep=;\r\nemail;city;age\r\nann@example.com;Z\xfcrich;thirty\r\n",
    )
    .unwrap();
    std::fs::write(
        d.join("x3.toml"),
        "inputs = [\"x3.csv\"]\nencoding = \"windows-1252\"\ntype = [\"age=number\"]\n",
    )
    .unwrap();
    let flags = ["--encoding", "windows-1252", "--type", "age=number"];
    let server = Server::plain();
    import(&server, d, &[&["x3.csv"][..], &flags].concat(), 3);
    let mut line = read_ndjson(&d.join("x3.failures.ndjson")).remove(0);
    assert_eq!(line["city"], "Zürich");
    line["age"] = json!("30");
    std::fs::write(d.join("fixed.ndjson"), format!("{line}\n")).unwrap();

    // With the flags on the command line, and from the job's config file.
    import(&server, d, &[&["fixed.ndjson"][..], &flags].concat(), 0);
    let sent = import(&server, d, &["--config", "x3.toml", "fixed.ndjson"], 0);
    assert_eq!(cities(&sent), ["Zürich", "Zürich"]);
}

#[test]
fn an_old_mac_csv_of_bare_cr_line_ends_sends_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("mac.csv"), b"id,city\r1,Paris\r2,Rome\r").unwrap();
    std::fs::write(d.join("sep.csv"), b"sep=;\rid;city\r3;Oslo\r4;\"Lima\"\r").unwrap();
    let server = Server::plain();
    let sent = import(&server, d, &["mac.csv", "sep.csv"], 0);
    // Requests go out side by side: in any order.
    let mut got = cities(&sent);
    got.sort();
    assert_eq!(got, ["Lima", "Oslo", "Paris", "Rome"]);
}

#[test]
fn a_crlf_csv_with_a_quote_inside_a_header_cell_keeps_a_quoted_cr_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The header's quote is in a cell, not at its start: a plain byte, not a quoted cell
    // that would hide the header's CRLF and make the file look like one of bare CRs.
    std::fs::write(d.join("crlf.csv"), b"id,in\"ch\r\n1,\"a\rb\"\r\n").unwrap();
    let server = Server::plain();
    let sent = import(&server, d, &["crlf.csv"], 0);
    assert_eq!(sent, [json!({"in\"ch": "a\rb"})]);
}

#[test]
fn an_excel_separator_line_in_quotes_names_the_separator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("q.csv"),
        b"\"sep=;\"\r\nid;city\r\n1;Z\xc3\xbcrich\r\n",
    )
    .unwrap();
    let server = Server::plain();
    let sent = import(&server, d, &["q.csv"], 0);
    assert_eq!(sent, [json!({"city": "Zürich"})]);
}

#[test]
fn a_delimiter_flag_that_disagrees_with_the_excel_separator_line_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("x.csv"), b"sep=;\nid;city\n1;Oslo\n").unwrap();
    std::fs::write(d.join("comma.toml"), "delimiter = \",\"\n").unwrap();
    let server = Server::plain();
    let refused = "x.csv: --delimiter ',' but the file's first line sep=; says ';': leave out \
                   --delimiter, or delete that line";
    for flags in [&["--delimiter", ","][..], &["--config", "comma.toml"]] {
        let out = server
            .cmd(d)
            .args([&["x.csv"][..], flags].concat())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(refused), "{stderr}");
    }
    assert!(server.sent().is_empty());
    // The line names the separator when no flag does, and a flag that agrees is fine.
    import(&server, d, &["x.csv"], 0);
    let sent = import(&server, d, &["x.csv", "--delimiter", ";"], 0);
    assert_eq!(cities(&sent), ["Oslo", "Oslo"]);
}

#[test]
fn utf16_without_a_byte_order_mark_is_named_with_its_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "id\tcity\r\n1\tZürich\r\n";
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    std::fs::write(d.join("le.tsv"), le).unwrap();
    std::fs::write(d.join("be.tsv"), be).unwrap();
    for (name, label) in [("le.tsv", "utf-16le"), ("be.tsv", "utf-16be")] {
        let out = common::bin(d).args([name, "--dry-run"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{name}: is UTF-16 text without a byte order mark (a NUL byte every other \
                 byte): pass --encoding {label}, or save it as UTF-8"
            )),
            "{stderr}"
        );
        let out = common::bin(d)
            .args([name, "--dry-run", "--show", "1", "--encoding", label])
            .output()
            .unwrap();
        let op: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(op["attributes"]["city"], "Zürich");
    }
}

#[test]
fn a_broken_rows_raw_is_its_line_as_it_is_in_the_file() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q: &[u8] = b"1,\"Z\xfcrich\",\"say \"\"hi\"\", ok\"";
    let q2: &[u8] = b"1;Z\xfcrich;a,b";
    let q3: &[u8] = b"1\tZ\xfcrich\ta,b";
    let files: [(&str, Vec<u8>, &[u8]); 3] = [
        (
            "q.csv",
            [b"id,city,note\r\n", q, b"\r\n2,\"Paris\",plain\r\n"].concat(),
            q,
        ),
        (
            "q2.csv",
            [b"sep=;\r\nid;city;note\r\n", q2, b"\r\n"].concat(),
            q2,
        ),
        ("q3.tsv", [b"id\tcity\tnote\n", q3, b"\n"].concat(), q3),
    ];
    for (name, text, line) in files {
        std::fs::write(d.join(name), text).unwrap();
        let out = common::bin(d)
            .args([name, "--dry-run", "--failures", "f.ndjson"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{name}");
        let failures = read_ndjson(&d.join("f.ndjson"));
        let raw = failures[0]["_raw_base64"].as_str().unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap();
        assert_eq!(raw, line, "{name}: {}", String::from_utf8_lossy(&raw));
    }
}

#[test]
fn a_broken_rows_raw_from_gzip_or_stdin_is_written_back_with_the_files_delimiter() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Five cells under three names: the row is broken, and its bytes are not the file's to
    // read again, so its cells are written back: quoted only where `;` makes them need it.
    let body = b"id;city;note\n1;\"Paris\";\"a;b\";x,y;\"say \"\"hi\"\"\"\n";
    let written = "1;Paris;\"a;b\";x,y;\"say \"\"hi\"\"\"";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[&b"sep=;\n"[..], body].concat()).unwrap();
    std::fs::write(d.join("x.csv.gz"), gz.finish().unwrap()).unwrap();
    let runs: [(&[&str], &[u8]); 2] = [
        (&["x.csv.gz"], b""),
        (&["-", "--format", "csv", "--delimiter", ";"], body),
    ];
    for (args, stdin) in runs {
        let out = common::bin(d)
            .args(args)
            .args(["--dry-run", "--failures", "f.ndjson"])
            .write_stdin(stdin)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        let failures = read_ndjson(&d.join("f.ndjson"));
        assert_eq!(failures.len(), 1, "{args:?}");
        assert_eq!(failures[0]["_raw"], written, "{args:?}");
    }
}
