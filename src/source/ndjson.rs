//! NDJSON reading: one object a line, blank lines skipped, lines over the size limit read
//! through and kept short (giving up at the run's stop), the depth limit, and a line that is
//! not an object kept as a broken row with its text for `_raw`.

use std::io::{self, BufRead, BufReader};

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::bytes::{ByteSource, read_error};
use super::{
    BUFFER_BYTES, MAX_JSON_DEPTH, MAX_RAW_BYTES, MAX_ROW_BYTES, NOT_UTF8, Row, RowData,
    SourceError, broken_row,
};

/// The rows of an NDJSON input.
pub(super) struct NdjsonRows {
    src: BufReader<ByteSource>,
    /// The current line, reused across rows.
    buf: Vec<u8>,
    /// Lines read so far: the current line's number once it is read.
    line: u64,
    done: bool,
    /// The run's stop, looked at while a line runs past one buffer: a line read through to
    /// its end may never end (`/dev/zero`).
    pub(super) stop: Option<CancellationToken>,
}

impl NdjsonRows {
    pub(super) fn new(bytes: ByteSource) -> NdjsonRows {
        NdjsonRows {
            src: BufReader::with_capacity(BUFFER_BYTES, bytes),
            buf: Vec::new(),
            line: 0,
            done: false,
            stop: None,
        }
    }

    pub(super) fn read(
        &mut self,
        row: &mut Row,
        name: &str,
        gzip: bool,
    ) -> Result<bool, SourceError> {
        if self.done {
            return Ok(false);
        }
        loop {
            let len = match read_line(&mut self.src, &mut self.buf, self.stop.as_ref()) {
                Ok(Some(len)) => len,
                Ok(None) => {
                    self.done = true;
                    return Ok(false);
                }
                Err(e) => {
                    self.done = true;
                    return Err(read_error(name, gzip, e, self.line));
                }
            };
            self.line += 1;
            if len > MAX_ROW_BYTES {
                let message = format!(
                    "is {:.1} MB long; the most a row may be is 1 MiB",
                    len as f64 / 1e6
                );
                *row = broken_row(self.line, message, None, &self.buf);
                return Ok(true);
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            row.line = self.line;
            match parse_object(&self.buf) {
                Ok(object) => row.data = RowData::Json(object),
                Err(message) => *row = broken_row(self.line, message, None, &self.buf),
            }
            return Ok(true);
        }
    }
}

/// Reads one line into `buf`, without its `\n`, keeping at most `MAX_ROW_BYTES` of it (only
/// the first `MAX_RAW_BYTES` of a longer line, which is read through and discarded).
/// Returns the line's full length, or None at the end of the input, or once `stop` is
/// cancelled while the line runs on: the rest of the input is not read.
fn read_line(
    src: &mut impl BufRead,
    buf: &mut Vec<u8>,
    stop: Option<&CancellationToken>,
) -> io::Result<Option<usize>> {
    buf.clear();
    let mut len = 0;
    let mut started = false;
    loop {
        // Looked at once a buffer, only on lines longer than one: it takes a lock.
        if started && stop.is_some_and(CancellationToken::is_cancelled) {
            return Ok(None);
        }
        let chunk = match src.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(started.then_some(len));
        }
        started = true;
        let (part, used, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        len += part.len();
        if len <= MAX_ROW_BYTES {
            buf.extend_from_slice(part);
        } else {
            buf.truncate(MAX_RAW_BYTES);
            let room = MAX_RAW_BYTES - buf.len();
            buf.extend_from_slice(&part[..room.min(part.len())]);
        }
        src.consume(used);
        if ended {
            return Ok(Some(len));
        }
    }
}

/// Parses one NDJSON line as an object; the error is a message for a broken row.
fn parse_object(line: &[u8]) -> Result<Map<String, Value>, String> {
    // Checked up front for a plain message; it also lets serde_json skip its own check.
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("{NOT_UTF8} (byte {})", e.valid_up_to() + 1))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => {
            if object.values().any(|v| deeper_than(v, MAX_JSON_DEPTH - 1)) {
                Err(too_deep())
            } else {
                Ok(object)
            }
        }
        Ok(other) => Err(format!("is {}, expected an object", json_kind(&other))),
        Err(e) => {
            let message = e.to_string();
            // serde_json stops at 128 levels on its own.
            if message.starts_with("recursion limit exceeded") {
                return Err(too_deep());
            }
            // The row is one line, so only the column says anything.
            Err(format!(
                "is not valid JSON: {}",
                message.replace(" at line 1 column ", " at column ")
            ))
        }
    }
}

fn too_deep() -> String {
    format!("nests deeper than {MAX_JSON_DEPTH} levels")
}

/// Whether `value` nests more than `levels` levels of arrays and objects.
fn deeper_than(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(items) => levels == 0 || items.iter().any(|v| deeper_than(v, levels - 1)),
        Value::Object(object) => levels == 0 || object.values().any(|v| deeper_than(v, levels - 1)),
        _ => false,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "JSON null",
        Value::Bool(_) => "a JSON boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a JSON string",
        Value::Array(_) => "a JSON array",
        Value::Object(_) => "a JSON object",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::Input;
    use super::super::testing::*;
    use super::*;

    #[test]
    fn ndjson_rows_blank_lines_crlf_bom() {
        let rows = rows_of(
            "events.ndjson",
            b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n   \n\t\n{\"b\":\"x\"}\r\n\n{\"c\":[1,{\"d\":null}]}",
        );
        assert_eq!(
            rows,
            [
                json(1, r#"{"a":1}"#),
                json(5, r#"{"b":"x"}"#),
                json(7, r#"{"c":[1,{"d":null}]}"#),
            ]
        );
    }

    #[test]
    fn ndjson_broken_rows() {
        let rows = rows_of(
            "events.jsonl",
            b"[1,2]\n\"s\"\nnull\n{\"a\":}\n{\"a\":\"\xFF\"}\n{\"ok\":true}\n",
        );
        assert_eq!(
            rows[0],
            Got::Broken(
                1,
                "is a JSON array, expected an object".to_string(),
                None,
                "[1,2]".to_string()
            )
        );
        assert_eq!(
            broken_message(&rows[1]),
            (2, "is a JSON string, expected an object")
        );
        assert_eq!(
            broken_message(&rows[2]),
            (3, "is JSON null, expected an object")
        );
        assert_eq!(
            broken_message(&rows[3]),
            (4, "is not valid JSON: expected value at column 6")
        );
        assert_eq!(broken_message(&rows[4]), (5, "is not valid UTF-8 (byte 7)"));
        let Got::Broken(_, _, _, raw) = &rows[4] else {
            unreachable!()
        };
        assert_eq!(raw, "{\"a\":\"\u{FFFD}\"}");
        assert_eq!(rows[5], json(6, r#"{"ok":true}"#));
    }

    #[test]
    fn ndjson_depth() {
        let nest = |levels: usize| format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        let text = format!("{}\n{}\n{}\n{}\n", nest(32), nest(33), nest(200), arrays);
        let rows = rows_of("events.ndjson", text.as_bytes());
        assert!(matches!(rows[0], Got::Json(1, _)), "{:?}", rows[0]);
        assert_eq!(broken_message(&rows[1]), (2, "nests deeper than 32 levels"));
        assert_eq!(broken_message(&rows[2]), (3, "nests deeper than 32 levels"));
        assert_eq!(broken_message(&rows[3]), (4, "nests deeper than 32 levels"));
    }

    #[test]
    fn ndjson_long_line_is_skipped() {
        let long = format!("{{\"a\":\"{}\"}}", "é".repeat(2_600_000));
        let text = format!("{{\"n\":1}}\n{long}\n{{\"n\":3}}\n");
        let rows = rows_of("events.ndjson", text.as_bytes());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], json(1, r#"{"n":1}"#));
        let Got::Broken(line, message, None, raw) = &rows[1] else {
            panic!("{:?}", rows[1]);
        };
        assert_eq!(*line, 2);
        assert_eq!(message, "is 5.2 MB long; the most a row may be is 1 MiB");
        assert!(raw.starts_with("{\"a\":\"éé"));
        assert!(raw.len() <= MAX_RAW_BYTES && raw.len() > MAX_RAW_BYTES - 4);
        assert!(!raw.contains('\u{FFFD}'));
        assert_eq!(rows[2], json(3, r#"{"n":3}"#));
    }

    #[test]
    fn a_line_that_never_ends_is_given_up_at_the_stop() {
        let mut buf = Vec::new();
        let stop = CancellationToken::new();
        // Short lines are read whole whatever the stop says: it is looked at only within a
        // line longer than one buffer.
        let mut short = io::Cursor::new(b"{}\n".to_vec());
        stop.cancel();
        assert_eq!(
            read_line(&mut short, &mut buf, Some(&stop)).unwrap(),
            Some(2)
        );
        // An endless line, as /dev/zero is, ends at the stop.
        let mut zeros = BufReader::with_capacity(BUFFER_BYTES, io::repeat(0));
        assert_eq!(read_line(&mut zeros, &mut buf, Some(&stop)).unwrap(), None);
        assert!(buf.len() <= BUFFER_BYTES);
    }

    #[test]
    fn ndjson_numbers_read_exactly() {
        // Correctly rounded, so the value sent (and written back) is the one in the file.
        let rows = rows_of("events.ndjson", b"{\"x\":-7.301496642518403e224}\n");
        assert_eq!(
            rows,
            [Got::Json(
                1,
                serde_json::json!({"x": -7.301496642518403e224})
            )]
        );
    }

    #[test]
    fn ndjson_empty() {
        assert!(rows_of("events.ndjson", b"").is_empty());
        assert!(rows_of("events.ndjson", b"\n\n  \r\n").is_empty());
    }

    #[test]
    fn ndjson_has_no_headers() {
        let (_dir, path) = file("events.ndjson", b"{}\n");
        let input = Input::check(&path, None).unwrap();
        let reader = input.open(Arc::new(AtomicU64::new(0))).unwrap();
        assert!(reader.headers().is_none());
    }
}
