//! CSV (and TSV) reading: the parser set up, the header checked (Excel's `sep=` line named),
//! records with exact line numbers and the wrong field count or non-UTF-8 cells as broken
//! rows, CRLF and blank lines, and the size limit per row.

use std::io::{self, Read};

use csv::{ByteRecord, StringRecord};
use serde_json::Map;

use super::bytes::{ByteSource, read_error};
use super::{BUFFER_BYTES, MAX_RAW_BYTES, MAX_ROW_BYTES, Row, RowData, SourceError, broken_row};

/// Fed to the CSV parser after the real input ends; see `CsvSource`.
const SENTINEL: &[u8] = b"\n\"";

/// Raised by `CsvSource` when a record outgrows its window.
#[derive(Debug)]
struct RowTooLong;

impl std::fmt::Display for RowTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("row is over 1 MiB")
    }
}

impl std::error::Error for RowTooLong {}

/// The byte stream under the csv parser. It does two jobs the csv crate cannot do itself:
///
/// * Bounds memory. The parser grows its record to hold a whole row, so a cell with an
///   unclosed quote would otherwise swallow the whole file. This refuses to hand over more
///   than `MAX_ROW_BYTES` past the current record's start, plus one parser buffer of
///   read-ahead (the parser refills only when its buffer is empty, so a record within the
///   bound never hits this).
/// * Detects an unclosed quote at the end of the input, which the csv crate silently
///   accepts as a complete field. After the real input it feeds `SENTINEL` (`\n"`): from
///   any state but "inside a quoted field" the `\n` ends the last record and the `"` opens
///   a synthetic record holding one empty field; inside a quoted field both bytes join the
///   open field, so the parser swallows the whole sentinel into a real record. Which of the
///   two happened is visible from where the record that consumed the sentinel ends.
struct CsvSource {
    inner: ByteSource,
    /// Bytes handed to the parser, sentinel included: the parser's byte offsets.
    delivered: u64,
    /// Offset where the record being parsed starts (the end of the previous one).
    record_start: u64,
    /// The real input's length, once it has ended.
    real_len: Option<u64>,
    /// How much of the sentinel has been handed over.
    sentinel_sent: usize,
}

impl Read for CsvSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let window = (MAX_ROW_BYTES + BUFFER_BYTES) as u64;
        let allowed = (self.record_start + window).saturating_sub(self.delivered);
        if allowed == 0 {
            return Err(io::Error::other(RowTooLong));
        }
        let len = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        if len == 0 {
            return Ok(0);
        }
        let buf = &mut buf[..len];
        if self.real_len.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 {
                self.delivered += n as u64;
                return Ok(n);
            }
            self.real_len = Some(self.delivered);
        }
        let rest = &SENTINEL[self.sentinel_sent..];
        let n = rest.len().min(len);
        buf[..n].copy_from_slice(&rest[..n]);
        self.sentinel_sent += n;
        self.delivered += n as u64;
        Ok(n)
    }
}

/// The rows of a CSV input.
pub(super) struct CsvRows {
    rdr: csv::Reader<CsvSource>,
    headers: Vec<String>,
    /// Lines read completely so far, for errors.
    lines_done: u64,
    /// Reused when a trailing `\r` is cut from a record's last field.
    scratch: Vec<u8>,
    done: bool,
}

impl CsvRows {
    /// Starts the parser and reads and checks the header row.
    pub(super) fn open(
        bytes: ByteSource,
        name: &str,
        gzip: bool,
        delimiter: u8,
    ) -> Result<CsvRows, SourceError> {
        let source = CsvSource {
            inner: bytes,
            delivered: 0,
            record_start: 0,
            real_len: None,
            sentinel_sent: 0,
        };
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(delimiter)
            // Field counts are checked here so that a bad row is a broken row, not an error.
            .flexible(true)
            // Only `\n` ends a record, and it is consumed with it, which keeps line numbers
            // exact (see `next_record`); a `\r` before it is cut off there.
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(source);
        let mut rows = CsvRows {
            rdr,
            headers: Vec::new(),
            lines_done: 0,
            scratch: Vec::new(),
            done: false,
        };
        let mut record = ByteRecord::new();
        // No header at all is an empty input: a run with nothing to do.
        if rows.next_record(&mut record, name, gzip)?.is_some() {
            rows.headers = check_headers(&record).map_err(|message| SourceError::Input {
                path: name.to_string(),
                message: format!("header row: {message}"),
            })?;
        }
        Ok(rows)
    }

    /// The column names; empty for an empty input.
    pub(super) fn headers(&self) -> &[String] {
        &self.headers
    }

    pub(super) fn read(
        &mut self,
        row: &mut Row,
        name: &str,
        gzip: bool,
    ) -> Result<bool, SourceError> {
        let mut record = take_record(&mut row.data);
        Ok(match self.read_record(&mut record, name, gzip)? {
            None => false,
            Some(Ok(line)) => {
                text_row(row, line, record, &self.headers);
                true
            }
            Some(Err(broken)) => {
                *row = broken;
                true
            }
        })
    }

    /// Reads the next record into `record` and checks its field count: the line it starts
    /// on, or the row as broken; None at the end of the input. Its cells are not checked as
    /// UTF-8 yet (see [`text_row`]).
    pub(super) fn read_record(
        &mut self,
        record: &mut ByteRecord,
        name: &str,
        gzip: bool,
    ) -> Result<Option<Result<u64, Row>>, SourceError> {
        let Some(line) = self.next_record(record, name, gzip)? else {
            return Ok(None);
        };
        if record.len() != self.headers.len() {
            let message = format!(
                "has {} field{}, the header has {}",
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                self.headers.len()
            );
            return Ok(Some(Err(broken_row(
                line,
                message,
                None,
                &csv_text(record),
            ))));
        }
        Ok(Some(Ok(line)))
    }

    /// Reads the next record into `record` and returns the line it starts on, or None at
    /// the end of the input. Skips blank lines, including CRLF ones.
    fn next_record(
        &mut self,
        record: &mut ByteRecord,
        name: &str,
        gzip: bool,
    ) -> Result<Option<u64>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let result = self.next_record_inner(record, name, gzip);
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn next_record_inner(
        &mut self,
        record: &mut ByteRecord,
        name: &str,
        gzip: bool,
    ) -> Result<Option<u64>, SourceError> {
        loop {
            let start = self.rdr.position().byte();
            match self.rdr.read_byte_record(record) {
                Ok(true) => {}
                // Unreachable in practice (the sentinel always yields a last record), but
                // the end is the end.
                Ok(false) => return Ok(None),
                Err(e) => return Err(self.csv_error(e, name, gzip)),
            }
            let end = self.rdr.position().byte();
            self.rdr.get_mut().record_start = end;
            // The parser counts every `\n` it consumed; the record's own are those inside
            // quoted cells plus its terminator. So this is exact even after blank lines and
            // cells with line breaks, unlike the record's `Position`, which is just where the
            // previous record ended.
            let line_end = self.rdr.position().line();
            // Only a quoted cell holds a line break, and a quote is a byte the parser drops: a
            // record that kept every byte but its separators and terminator has none to count.
            let kept = (record.as_slice().len() + record.len()) as u64;
            let newlines = if end - start == kept {
                0
            } else {
                memchr::memchr_iter(b'\n', record.as_slice()).count() as u64
            };
            if let Some(real_len) = self.rdr.get_ref().real_len
                && end == real_len + SENTINEL.len() as u64
            {
                // This record consumed the whole sentinel; see `CsvSource`.
                return if record.len() == 1 && record[0].is_empty() {
                    Ok(None)
                } else {
                    // No terminator of its own: the sentinel's `\n` is inside the cell.
                    Err(SourceError::UnterminatedQuote {
                        path: name.to_string(),
                        line: line_end.saturating_sub(newlines),
                    })
                };
            }
            let line = line_end.saturating_sub(newlines + 1);
            if end - start > MAX_ROW_BYTES as u64 {
                return Err(SourceError::RowTooLong {
                    path: name.to_string(),
                    line,
                });
            }
            self.lines_done = line_end.saturating_sub(1);
            if strip_cr(record, &mut self.scratch) && record.len() == 1 && record[0].is_empty() {
                // A blank CRLF line: the parser only skips blank lines it sees as blank.
                continue;
            }
            return Ok(Some(line));
        }
    }

    fn csv_error(&self, e: csv::Error, name: &str, gzip: bool) -> SourceError {
        let reason = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(e) if e.get_ref().is_some_and(|e| e.is::<RowTooLong>()) => {
                // The parser cannot resynchronise mid-record (the rest of the row might hold
                // quotes that change where it ends), so this ends the input.
                SourceError::RowTooLong {
                    path: name.to_string(),
                    line: self.lines_done + 1,
                }
            }
            csv::ErrorKind::Io(e) => read_error(name, gzip, e, self.lines_done),
            // Reading flexible byte records only fails on I/O; report anything else as is.
            _ => SourceError::Read {
                path: name.to_string(),
                line: self.lines_done,
                reason,
            },
        }
    }
}

/// The row of a record with the right field count: its cells as text, or broken, naming the
/// column that is not UTF-8.
pub(super) fn text_row(row: &mut Row, line: u64, record: ByteRecord, headers: &[String]) {
    row.line = line;
    // Checks the whole record at once when it is ASCII, as exports mostly are.
    match StringRecord::from_byte_record(record) {
        Ok(record) => row.data = RowData::Csv(record),
        Err(e) => {
            let column = headers
                .get(e.utf8_error().field())
                .cloned()
                .unwrap_or_default();
            let message = format!("column \"{column}\" is not valid UTF-8");
            let raw = csv_text(&e.into_byte_record());
            *row = broken_row(line, message, Some(column), &raw);
        }
    }
}

/// The record inside `data`, to be read into again (the hot path), or a new one.
pub(super) fn take_record(data: &mut RowData) -> ByteRecord {
    match std::mem::replace(data, RowData::Json(Map::new())) {
        RowData::Csv(record) => record.into_byte_record(),
        _ => ByteRecord::new(),
    }
}

/// Cuts a trailing `\r` (from a CRLF line ending) off the last field; true if there was one.
fn strip_cr(record: &mut ByteRecord, scratch: &mut Vec<u8>) -> bool {
    match record
        .iter()
        .next_back()
        .and_then(|f| f.strip_suffix(b"\r"))
    {
        Some(field) => {
            scratch.clear();
            scratch.extend_from_slice(field);
        }
        None => return false,
    }
    record.truncate(record.len() - 1);
    record.push_field(scratch);
    true
}

/// Checks and converts the header row: UTF-8, no empty names, no repeats.
fn check_headers(record: &ByteRecord) -> Result<Vec<String>, String> {
    // Excel can write its separator as a first line of its own, `sep=,`.
    if record.len() <= 2 && record.get(0).is_some_and(|f| f.starts_with(b"sep=")) {
        return Err(
            "the first line is Excel's separator hint (sep=...), not a header: delete that line"
                .to_string(),
        );
    }
    let mut headers: Vec<String> = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(field) else {
            return Err(format!("column {} is not valid UTF-8", i + 1));
        };
        if name.is_empty() {
            return Err(format!("column {} has an empty name", i + 1));
        }
        if let Some(first) = headers.iter().position(|h| h == name) {
            return Err(format!(
                "column \"{name}\" appears twice (columns {} and {})",
                first + 1,
                i + 1
            ));
        }
        headers.push(name.to_string());
    }
    Ok(headers)
}

/// A record written back as CSV text, for a broken row's `raw`; stops once long enough.
fn csv_text(record: &ByteRecord) -> Vec<u8> {
    let mut text = Vec::new();
    for (i, field) in record.iter().enumerate() {
        if text.len() > MAX_RAW_BYTES {
            break;
        }
        if i > 0 {
            text.push(b',');
        }
        if field
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        {
            text.push(b'"');
            for &b in field {
                if b == b'"' {
                    text.push(b'"');
                }
                text.push(b);
            }
            text.push(b'"');
        } else {
            text.extend_from_slice(field);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::Input;
    use super::super::testing::*;
    use super::*;

    #[test]
    fn csv_quoting() {
        let rows = rows_of(
            "users.csv",
            b"id,note\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,\"three\n\nlines\"\n5,after\n",
        );
        assert_eq!(
            rows,
            [
                csv(2, &["1", "a, b"]),
                csv(3, &["2", "say \"hi\""]),
                csv(4, &["3", "two\nlines"]),
                csv(6, &["4", "three\n\nlines"]),
                csv(9, &["5", "after"]),
            ]
        );
    }

    #[test]
    fn csv_headers_and_non_ascii() {
        let (_dir, path) = file("users.csv", "名前,email\nZoë,zoë@example.com\n".as_bytes());
        let input = Input::check(&path, None).unwrap();
        let mut reader = input.open(Arc::new(AtomicU64::new(0))).unwrap();
        assert_eq!(reader.headers().unwrap(), ["名前", "email"]);
        let mut row = new_row();
        assert!(reader.read(&mut row).unwrap());
        assert_eq!(got(&row), csv(2, &["Zoë", "zoë@example.com"]));
        assert!(!reader.read(&mut row).unwrap());
    }

    #[test]
    fn csv_bom_and_crlf() {
        let rows = rows_of(
            "users.csv",
            b"\xEF\xBB\xBFid,email\r\n1,\"a@x\"\r\n\r\n2,\"b\r\nc\"\r\n3,z\r\n",
        );
        assert_eq!(
            rows,
            [
                csv(2, &["1", "a@x"]),
                csv(4, &["2", "b\r\nc"]),
                csv(6, &["3", "z"]),
            ]
        );
    }

    #[test]
    fn csv_blank_lines_and_no_final_newline() {
        let rows = rows_of("users.csv", b"id\n\n1\n\n\n2");
        assert_eq!(rows, [csv(3, &["1"]), csv(6, &["2"])]);
    }

    #[test]
    fn csv_bad_headers() {
        let (_, error) = error_of("users.csv", b"id,email,,name\n");
        assert!(error.ends_with("column 3 has an empty name"), "{error}");
        let (_, error) = error_of("users.csv", b"id,email,a,b,email\n1,2,3,4,5\n");
        assert!(
            error.ends_with("column \"email\" appears twice (columns 2 and 5)"),
            "{error}"
        );
        let (_, error) = error_of("users.csv", b"id,\xFF\n");
        assert!(error.ends_with("column 2 is not valid UTF-8"), "{error}");
    }

    #[test]
    fn csv_wrong_field_counts_are_broken_rows() {
        let rows = rows_of(
            "users.csv",
            b"a,b,c,d\n1,2,3,4\n1,2,3,4,5\n1,2\n1\n9,9,9,9\n",
        );
        assert_eq!(rows[0], csv(2, &["1", "2", "3", "4"]));
        assert_eq!(
            rows[1],
            Got::Broken(
                3,
                "has 5 fields, the header has 4".to_string(),
                None,
                "1,2,3,4,5".to_string()
            )
        );
        assert_eq!(
            broken_message(&rows[2]),
            (4, "has 2 fields, the header has 4")
        );
        assert_eq!(
            broken_message(&rows[3]),
            (5, "has 1 field, the header has 4")
        );
        assert_eq!(rows[4], csv(6, &["9", "9", "9", "9"]));
    }

    #[test]
    fn csv_character_split_across_two_cells_is_broken_row() {
        // "é" is C3 A9: each cell holds half of it, so the row's bytes joined are valid UTF-8.
        let rows = rows_of("users.csv", b"id,a,b,c\n1,x\xC3,,\xA9y\n");
        assert_eq!(
            broken_message(&rows[0]),
            (2, "column \"a\" is not valid UTF-8")
        );
    }

    #[test]
    fn csv_invalid_utf8_cell_is_broken_row() {
        let rows = rows_of("users.csv", b"id,name\n1,ok\n2,bad\xFFname\n3,ok\n");
        assert_eq!(
            rows,
            [
                csv(2, &["1", "ok"]),
                Got::Broken(
                    3,
                    "column \"name\" is not valid UTF-8".to_string(),
                    Some("name".to_string()),
                    "2,bad\u{FFFD}name".to_string()
                ),
                csv(4, &["3", "ok"]),
            ]
        );
    }

    #[test]
    fn csv_broken_row_raw_is_requoted_and_truncated() {
        let long = "x".repeat(5000);
        let text = format!("a,b\n\"q,\"\"r\",{long},3\n");
        let rows = rows_of("users.csv", text.as_bytes());
        let Got::Broken(_, _, _, raw) = &rows[0] else {
            panic!("{:?}", rows[0]);
        };
        assert!(raw.starts_with("\"q,\"\"r\",xxx"), "{raw}");
        assert_eq!(raw.len(), MAX_RAW_BYTES);
    }

    #[test]
    fn csv_excel_separator_line_is_named() {
        let (_dir, path) = file("users.csv", b"sep=,\nid,plan\n1,pro\n");
        let input = Input::check(&path, None).unwrap();
        let Err(e) = input.open(Arc::new(AtomicU64::new(0))) else {
            panic!("the sep= line was taken for a header");
        };
        assert!(e.to_string().contains("Excel's separator hint"), "{e}");
    }

    #[test]
    fn csv_empty_and_header_only() {
        for bytes in [&b""[..], b"\n\n", b"\xEF\xBB\xBF"] {
            let (_dir, path) = file("users.csv", bytes);
            let input = Input::check(&path, None).unwrap();
            let mut reader = input.open(Arc::new(AtomicU64::new(0))).unwrap();
            assert_eq!(reader.headers(), Some(&[][..]));
            assert!(!reader.read(&mut new_row()).unwrap());
        }
        for bytes in [&b"id,email"[..], b"id,email\n", b"id,email\r\n\r\n"] {
            let (_dir, path) = file("users.csv", bytes);
            let input = Input::check(&path, None).unwrap();
            let mut reader = input.open(Arc::new(AtomicU64::new(0))).unwrap();
            assert_eq!(reader.headers().unwrap(), ["id", "email"]);
            assert!(!reader.read(&mut new_row()).unwrap());
        }
    }

    #[test]
    fn csv_unclosed_quote_at_end() {
        let (rows, error) = error_of("users.csv", b"id,note\n1,ok\n2,\"never\nclosed\n");
        assert_eq!(rows, [csv(2, &["1", "ok"])]);
        assert!(
            error.ends_with("the row at line 3 has a quoted field that is never closed"),
            "{error}"
        );
        // A closed quote as the very last byte is fine.
        let rows = rows_of("users.csv", b"id,note\n1,\"closed\"");
        assert_eq!(rows, [csv(2, &["1", "closed"])]);
        let rows = rows_of("users.csv", b"id,note\n1,\"\"");
        assert_eq!(rows, [csv(2, &["1", ""])]);
    }

    #[test]
    fn csv_row_over_limit_ends_input() {
        // An unclosed quote swallowing the rest of a large file.
        let mut text = b"id,note\n1,ok\n2,\"open\n".to_vec();
        while text.len() < 3 * MAX_ROW_BYTES {
            text.extend_from_slice(b"3,filler row\n");
        }
        let (rows, error) = error_of("users.csv", &text);
        assert_eq!(rows, [csv(2, &["1", "ok"])]);
        assert!(error.contains("the row at line 3 is over 1 MiB"), "{error}");

        // Just over the limit, within the read-ahead window: still refused.
        let text = format!("id,note\n1,{}\n2,ok\n", "x".repeat(MAX_ROW_BYTES));
        let (rows, error) = error_of("users.csv", text.as_bytes());
        assert!(rows.is_empty());
        assert!(error.contains("the row at line 2 is over 1 MiB"), "{error}");

        // Just under: read.
        let text = format!("id,note\n1,{}\n2,ok\n", "x".repeat(MAX_ROW_BYTES - 10));
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], csv(3, &["2", "ok"]));
    }

    #[test]
    fn csv_reuses_the_record() {
        let (_dir, path) = file("users.csv", b"id\n1\n2\n");
        let input = Input::check(&path, None).unwrap();
        let mut reader = input.open(Arc::new(AtomicU64::new(0))).unwrap();
        let mut row = new_row();
        assert!(reader.read(&mut row).unwrap());
        let RowData::Csv(record) = &row.data else {
            panic!()
        };
        let before = record.as_slice().as_ptr();
        assert!(reader.read(&mut row).unwrap());
        let RowData::Csv(record) = &row.data else {
            panic!()
        };
        assert_eq!(record.as_slice().as_ptr(), before);
        assert_eq!(got(&row), csv(3, &["2"]));
    }
}
