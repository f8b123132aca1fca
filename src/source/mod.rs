//! Inputs: opens files, gzip and stdin, and reads CSV or NDJSON as a stream of rows.
//!
//! This module owns everything between a path on the command line and a `Row`: format and
//! gzip detection, the pre-flight checks, byte counting for the ETA, BOM and CRLF handling,
//! header validation, and the bounds that keep memory flat however large a row is.
//! Problems confined to one row come back as `RowData::Broken` so the run can go on;
//! problems with the input as a whole come back as `SourceError`.
//!
//! Its parts: `bytes` (from a path to the decoded bytes), `csv` and `ndjson` (from bytes to
//! rows), `raw` (a broken CSV row's bytes as they are in the file), `ahead` (the rows read
//! on a thread of their own). The types they share are here.

mod ahead;
mod bytes;
mod csv;
mod ndjson;
mod raw;
#[cfg(test)]
mod testing;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use self::ahead::Ahead;
use self::csv::CsvRows;
use self::ndjson::NdjsonRows;

/// The longest row (an NDJSON line or a CSV record, in bytes) that is read into memory.
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// The deepest an NDJSON row may nest; the row object itself is level 1.
pub const MAX_JSON_DEPTH: usize = 32;

/// The most of a broken row's text that is kept, so failures files stay small.
pub const MAX_RAW_BYTES: usize = 2000;

/// What the message of a row that is not UTF-8 says, in both formats: the run tells the
/// first such row of an input, naming `--encoding`, rather than each.
pub const NOT_UTF8: &str = "is not valid UTF-8";

/// Read buffer size, for both formats.
const BUFFER_BYTES: usize = 64 * 1024;

/// The two input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
}

/// An input, checked before anything is sent.
#[derive(Debug, Clone)]
pub struct Input {
    /// The path as given; `-` is stdin.
    pub path: PathBuf,
    pub format: Format,
    pub gzip: bool,
    /// What separates CSV cells by the file's name: `,`, or a tab for a `.tsv` file.
    pub delimiter: u8,
    /// `--delimiter`: overrides `delimiter`, and an Excel `sep=` first line must agree with
    /// it (without it, that line names the separator).
    pub given_delimiter: Option<u8>,
    /// `--encoding`: the input's text encoding, decoded into UTF-8 as it is read; None for
    /// UTF-8.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Size on disk (compressed size for gzip); None for a stream (stdin, a pipe, a
    /// device), which is read once.
    pub size: Option<u64>,
}

/// Problems with an input as a whole. Each names the input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input cannot be used as given: unknown format, an unusable header.
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    /// The input does not exist, is not a file, or cannot be opened.
    #[error("{path}: {reason}")]
    Open { path: String, reason: String },
    /// Reading failed part-way; `line` is the last line read completely.
    #[error("{path}: {}: {reason}", read_message(*line))]
    Read {
        path: String,
        line: u64,
        reason: String,
    },
    /// The gzip layer failed; `line` is the last line read completely.
    #[error("{path}: {}", gzip_message(*line))]
    Gzip { path: String, line: u64 },
    /// The CSV input ends inside a quoted field.
    #[error("{path}: the row at line {line} has a quoted field that is never closed")]
    UnterminatedQuote { path: String, line: u64 },
}

fn read_message(line: u64) -> String {
    if line == 0 {
        "cannot be read".to_string()
    } else {
        format!("reading failed after line {line}")
    }
}

fn gzip_message(line: u64) -> String {
    if line == 0 {
        "not a gzip file, or the gzip stream is corrupt at its start".to_string()
    } else {
        format!("the gzip stream is truncated or corrupt after line {line}")
    }
}

/// One row as read, before mapping. The default is an empty row to read into.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line number where the row starts.
    pub line: u64,
    pub data: RowData,
}

impl Default for Row {
    fn default() -> Row {
        Row {
            line: 0,
            data: RowData::Json(Map::new()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum RowData {
    /// A CSV record with exactly as many fields as the header, every one UTF-8.
    // `::csv` is the crate; `csv` alone is the module beside this one.
    Csv(::csv::StringRecord),
    /// An NDJSON object.
    Json(Map<String, Value>),
    /// A row that cannot be read as a record; `raw` is its bytes as read (truncated), which
    /// need not be UTF-8.
    Broken {
        message: String,
        column: Option<String>,
        raw: Vec<u8>,
    },
}

impl Input {
    /// Opens the input; `consumed` counts raw bytes read from the file (for the ETA).
    pub fn open(&self, consumed: Arc<AtomicU64>) -> Result<Reader, SourceError> {
        let name = self.name();
        let bytes = self.bytes(&name, consumed)?;
        let rows = match self.format {
            Format::Ndjson => Rows::Ndjson(NdjsonRows::new(bytes)),
            Format::Csv => {
                // The parser's bytes are the file's, so a broken row's can be read again.
                let direct = !self.gzip && self.encoding.is_none() && !self.is_stream();
                Rows::Csv(Box::new(CsvRows::open(
                    bytes,
                    &name,
                    self.gzip,
                    self.delimiter,
                    self.given_delimiter,
                    direct.then_some(self.path.as_path()),
                )?))
            }
        };
        Ok(Reader {
            name,
            gzip: self.gzip,
            rows,
        })
    }
}

/// Reads rows from one input.
pub struct Reader {
    name: String,
    gzip: bool,
    rows: Rows,
}

enum Rows {
    // Boxed: the CSV reader is far larger than the others.
    Csv(Box<CsvRows>),
    Ndjson(NdjsonRows),
    Ahead(Ahead),
}

impl Reader {
    /// CSV column names (checked: none empty, none repeated); None for NDJSON.
    /// An empty CSV input has no header, and an empty list of columns.
    pub fn headers(&self) -> Option<&[String]> {
        match &self.rows {
            Rows::Csv(csv) => Some(csv.headers()),
            Rows::Ndjson(_) => None,
            Rows::Ahead(ahead) => ahead.headers(),
        }
    }

    /// Makes a read give up at `stop` (returning Ok(false), as at the end) rather than read
    /// through a line that may never end: an NDJSON line over [`MAX_ROW_BYTES`] is read to
    /// its end to be skipped, and `/dev/zero` has none. A CSV row is held to the limit as it
    /// is read. Call it before [`Reader::read_ahead`].
    pub fn stop_on(&mut self, stop: CancellationToken) {
        if let Rows::Ndjson(ndjson) = &mut self.rows {
            ndjson.stop = Some(stop);
        }
    }

    /// Reads the next row into `row`; Ok(false) at the end of the input.
    /// After an error the reader is finished: later calls return Ok(false).
    pub fn read(&mut self, row: &mut Row) -> Result<bool, SourceError> {
        match &mut self.rows {
            Rows::Csv(csv) => csv.read(row, &self.name, self.gzip),
            Rows::Ndjson(ndjson) => ndjson.read(row, &self.name, self.gzip),
            Rows::Ahead(ahead) => ahead.read(row),
        }
    }
}

/// A row's bytes for `RowData::Broken`, as they are (the failures file keeps them
/// losslessly), at most `MAX_RAW_BYTES`.
fn raw_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut cut = bytes.len().min(MAX_RAW_BYTES);
    // Back off to the start of a UTF-8 sequence so that the cut leaves text whole.
    let mut backed = 0;
    while cut < bytes.len() && backed < 3 && cut > 0 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
        backed += 1;
    }
    bytes[..cut].to_vec()
}

/// A row that cannot be read as a record, with its text for the failures file.
fn broken_row(line: u64, message: String, column: Option<String>, raw: &[u8]) -> Row {
    Row {
        line,
        data: RowData::Broken {
            message,
            column,
            raw: raw_bytes(raw),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_is_send() {
        fn send<T: Send>() {}
        send::<Reader>();
    }

    #[test]
    fn raw_bytes_are_kept_as_they_are_and_cut_at_a_char_boundary() {
        assert_eq!(raw_bytes(b"abc"), b"abc");
        let text = "ü".repeat(MAX_RAW_BYTES);
        let raw = raw_bytes(text.as_bytes());
        assert_eq!(raw.len(), MAX_RAW_BYTES);
        assert!(std::str::from_utf8(&raw).is_ok());
        assert_eq!(raw_bytes(b"2,B\xF6b"), b"2,B\xF6b");
        assert_eq!(raw_bytes(&[0xFF; 3 * MAX_RAW_BYTES]).len(), MAX_RAW_BYTES);
    }
}
