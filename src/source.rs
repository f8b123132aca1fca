//! Inputs: opens files, gzip and stdin, and reads CSV or NDJSON as a stream of rows.
//!
//! This module owns everything between a path on the command line and a `Row`: format and
//! gzip detection, the pre-flight checks, byte counting for the ETA, BOM and CRLF handling,
//! header validation, and the bounds that keep memory flat however large a row is.
//! Problems confined to one row come back as `RowData::Broken` so the run can go on;
//! problems with the input as a whole come back as `SourceError`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use csv::{ByteRecord, StringRecord};
use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};

/// The longest row (an NDJSON line or a CSV record, in bytes) that is read into memory.
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// The deepest an NDJSON row may nest; the row object itself is level 1.
pub const MAX_JSON_DEPTH: usize = 32;

/// The most of a broken row's text that is kept, so failures files stay small.
pub const MAX_RAW_BYTES: usize = 2000;

/// Read buffer size, for both formats.
const BUFFER_BYTES: usize = 64 * 1024;

/// Rows a read-ahead thread hands over at once, and how many such chunks it may be ahead: few
/// enough that memory stays flat, enough that neither thread waits on the other for long.
const AHEAD_ROWS: usize = 256;
const AHEAD_CHUNKS: usize = 4;

/// Fed to the CSV parser after the real input ends; see `CsvSource`.
const SENTINEL: &[u8] = b"\n\"";

const BOM: &[u8] = b"\xEF\xBB\xBF";

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
    /// What separates CSV cells: `,`, or a tab for a `.tsv` file (`--delimiter` overrides).
    pub delimiter: u8,
    /// Size on disk (compressed size for gzip); None for stdin.
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
    /// A CSV record longer than `MAX_ROW_BYTES`; reading cannot resume after it.
    #[error(
        "{path}: the row at line {line} is over 1 MiB; the most a row may be is 1 MiB \
         (in CSV this is usually a quote that is never closed)"
    )]
    RowTooLong { path: String, line: u64 },
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
    Csv(csv::StringRecord),
    /// An NDJSON object.
    Json(Map<String, Value>),
    /// A row that cannot be read as a record; `raw` is its text (lossy UTF-8, truncated).
    Broken {
        message: String,
        column: Option<String>,
        raw: String,
    },
}

impl Input {
    pub fn check(path: &Path, format: Option<Format>) -> Result<Input, SourceError> {
        if path.as_os_str() == "-" {
            let format = format.ok_or_else(|| SourceError::Input {
                path: "stdin".to_string(),
                message: "the format of stdin cannot be guessed; pass --format csv|ndjson"
                    .to_string(),
            })?;
            return Ok(Input {
                path: path.to_path_buf(),
                format,
                gzip: false,
                delimiter: b',',
                size: None,
            });
        }
        let name = path.display().to_string();
        let open_error = |e: io::Error| SourceError::Open {
            path: name.clone(),
            reason: os_reason(&e),
        };
        let meta = std::fs::metadata(path).map_err(open_error)?;
        if meta.is_dir() {
            return Err(SourceError::Open {
                path: name,
                reason: "is a directory, not a file".to_string(),
            });
        }
        // Opening catches permission problems now rather than after other inputs were sent.
        File::open(path).map_err(open_error)?;
        let (guessed, gzip, delimiter) = format_from_name(path);
        let format = format.or(guessed).ok_or_else(|| SourceError::Input {
            path: name.clone(),
            message: "cannot tell the format from the file name (expected .csv, .tsv, .ndjson or \
                      .jsonl, optionally followed by .gz); pass --format csv|ndjson"
                .to_string(),
        })?;
        Ok(Input {
            path: path.to_path_buf(),
            format,
            gzip,
            delimiter,
            size: Some(meta.len()),
        })
    }

    /// The name used in messages and the failures file: the path, or `stdin`.
    pub fn name(&self) -> String {
        if self.is_stdin() {
            "stdin".to_string()
        } else {
            self.path.display().to_string()
        }
    }

    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Opens the input; `consumed` counts raw bytes read from the file (for the ETA).
    pub fn open(&self, consumed: Arc<AtomicU64>) -> Result<Reader, SourceError> {
        let name = self.name();
        let file: Box<dyn Read + Send> = if self.is_stdin() {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(&self.path).map_err(|e| SourceError::Open {
                path: name.clone(),
                reason: os_reason(&e),
            })?)
        };
        let counted = Counting {
            inner: file,
            consumed,
        };
        let decoded: Box<dyn Read + Send> = if self.gzip {
            // Multi-member, so that concatenated .gz files (`cat a.gz b.gz`) read in full.
            Box::new(MultiGzDecoder::new(counted))
        } else {
            Box::new(counted)
        };
        let (bytes, head) = strip_bom(decoded).map_err(|e| read_error(&name, self.gzip, e, 0))?;
        // Two encodings that would otherwise read as "not valid UTF-8" at line 1.
        let unreadable = match head.as_slice() {
            [0x1f, 0x8b, ..] => {
                Some("starts like a gzip file: name it .gz (or, on stdin, pipe it through gunzip)")
            }
            [0xff, 0xfe, ..] | [0xfe, 0xff, ..] => {
                Some("is UTF-16 text: save it as UTF-8 (in Excel: CSV UTF-8)")
            }
            _ => None,
        };
        if let Some(message) = unreadable {
            return Err(SourceError::Input {
                path: name,
                message: message.to_string(),
            });
        }
        let rows = match self.format {
            Format::Ndjson => Rows::Ndjson(NdjsonRows {
                src: BufReader::with_capacity(BUFFER_BYTES, bytes),
                buf: Vec::new(),
                line: 0,
                done: false,
            }),
            Format::Csv => Rows::Csv(CsvRows::open(bytes, &name, self.gzip, self.delimiter)?),
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
    Csv(CsvRows),
    Ndjson(NdjsonRows),
    Ahead(Ahead),
}

/// The receiving end of a read-ahead thread: chunks of rows read, then the error that ended
/// the input, if any; the sender closes at the end.
struct Ahead {
    headers: Option<Vec<String>>,
    chunks: Receiver<Result<Vec<Parsed>, SourceError>>,
    /// Chunks handed back, so their rows' buffers are read into again.
    spent: SyncSender<Vec<Parsed>>,
    chunk: Vec<Parsed>,
    next: usize,
}

/// A row as the read-ahead thread hands it over. A CSV record's cells are checked as UTF-8 by
/// the receiving thread, which has the lighter load of the two.
enum Parsed {
    Csv { line: u64, record: ByteRecord },
    Row(Row),
}

impl Ahead {
    fn read(&mut self, row: &mut Row) -> Result<bool, SourceError> {
        loop {
            if let Some(ahead) = self.chunk.get_mut(self.next) {
                self.next += 1;
                // The caller's row (or its record) goes back with the chunk, to be read into
                // again.
                match ahead {
                    Parsed::Row(ahead) => std::mem::swap(row, ahead),
                    Parsed::Csv { line, record } => {
                        let record = std::mem::replace(record, take_record(&mut row.data));
                        let headers = self.headers.as_deref().unwrap_or_default();
                        text_row(row, *line, record, headers);
                    }
                }
                return Ok(true);
            }
            let spent = std::mem::take(&mut self.chunk);
            // The thread may have ended already; it then needs no more rows.
            let _ = self.spent.try_send(spent);
            self.next = 0;
            match self.chunks.recv() {
                Ok(Ok(chunk)) => self.chunk = chunk,
                Ok(Err(e)) => return Err(e),
                // The end of the input, or the end after an error.
                Err(_) => return Ok(false),
            }
        }
    }
}

/// The read-ahead thread: reads `reader` in chunks until the input ends, an error ends it,
/// or the receiving end is gone.
fn read_ahead(
    mut reader: Reader,
    chunks: SyncSender<Result<Vec<Parsed>, SourceError>>,
    spent: Receiver<Vec<Parsed>>,
) {
    loop {
        let mut chunk = spent.try_recv().unwrap_or_default();
        chunk.resize_with(AHEAD_ROWS, || Parsed::Csv {
            line: 0,
            record: ByteRecord::new(),
        });
        let mut filled = 0;
        let mut error = None;
        while filled < AHEAD_ROWS {
            match reader.read_parsed(&mut chunk[filled]) {
                Ok(true) => filled += 1,
                Ok(false) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let end = filled < AHEAD_ROWS;
        chunk.truncate(filled);
        if (filled > 0 && chunks.send(Ok(chunk)).is_err()) || end {
            if let Some(e) = error {
                let _ = chunks.send(Err(e));
            }
            return;
        }
    }
}

impl Reader {
    /// CSV column names (checked: none empty, none repeated); None for NDJSON.
    /// An empty CSV input has no header, and an empty list of columns.
    pub fn headers(&self) -> Option<&[String]> {
        match &self.rows {
            Rows::Csv(csv) => Some(&csv.headers),
            Rows::Ndjson(_) => None,
            Rows::Ahead(ahead) => ahead.headers.as_deref(),
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

    /// Reads the next row into `slot` (reusing what it held), leaving a CSV record's UTF-8
    /// check to the receiver. After the end or an error the slot is not read.
    fn read_parsed(&mut self, slot: &mut Parsed) -> Result<bool, SourceError> {
        let held = std::mem::replace(slot, Parsed::Row(Row::default()));
        if let Rows::Csv(csv) = &mut self.rows {
            let mut record = match held {
                Parsed::Csv { record, .. } => record,
                Parsed::Row(_) => ByteRecord::new(),
            };
            *slot = match csv.read_record(&mut record, &self.name, self.gzip)? {
                None => return Ok(false),
                Some(Ok(line)) => Parsed::Csv { line, record },
                Some(Err(broken)) => Parsed::Row(broken),
            };
            return Ok(true);
        }
        let mut row = match held {
            Parsed::Row(row) => row,
            Parsed::Csv { .. } => Row::default(),
        };
        let more = self.read(&mut row)?;
        *slot = Parsed::Row(row);
        Ok(more)
    }

    /// The same rows and errors, read (and parsed) ahead on a thread of its own, so reading
    /// and the caller's work on the rows take two cores. Reads in place if no thread starts.
    pub fn read_ahead(self) -> Reader {
        let (name, gzip) = (self.name.clone(), self.gzip);
        let headers = self.headers().map(<[String]>::to_vec);
        let (chunks_tx, chunks) = sync_channel(AHEAD_CHUNKS);
        let (spent, spent_rx) = sync_channel(AHEAD_CHUNKS + 2);
        // The reader comes back if the thread cannot start.
        let (start_tx, start_rx) = std::sync::mpsc::channel::<Reader>();
        let started = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                if let Ok(reader) = start_rx.recv() {
                    read_ahead(reader, chunks_tx, spent_rx);
                }
            });
        if started.is_err() {
            return self;
        }
        let _ = start_tx.send(self);
        Reader {
            name,
            gzip,
            rows: Rows::Ahead(Ahead {
                headers,
                chunks,
                spent,
                chunk: Vec::new(),
                next: 0,
            }),
        }
    }
}

/// What the input's file name says: its format, if known, whether it is gzipped, and the CSV
/// delimiter.
fn format_from_name(path: &Path) -> (Option<Format>, bool, u8) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name.as_str(), false),
    };
    let tsv = stem.ends_with(".tsv");
    let format = if stem.ends_with(".csv") || tsv {
        Some(Format::Csv)
    } else if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
        Some(Format::Ndjson)
    } else {
        None
    };
    (format, gzip, if tsv { b'\t' } else { b',' })
}

/// An OS error as a short lowercase reason: "no such file", not "No such file or directory (os error 2)".
fn os_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
        _ => {
            let text = e.to_string();
            let text = text.find(" (os error ").map_or(&text[..], |i| &text[..i]);
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
    }
}

/// An I/O error from the file itself, tagged so it is not mistaken for a gzip failure.
#[derive(Debug)]
struct FileError(io::Error);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FileError {}

/// Turns a mid-stream I/O error into a `SourceError`; `line` is the last line read completely.
fn read_error(name: &str, gzip: bool, e: io::Error, line: u64) -> SourceError {
    let path = name.to_string();
    if let Some(FileError(os)) = e.get_ref().and_then(|e| e.downcast_ref::<FileError>()) {
        SourceError::Read {
            path,
            line,
            reason: os_reason(os),
        }
    } else if gzip {
        // Everything between the file and us that can fail, other than the file, is gzip.
        SourceError::Gzip { path, line }
    } else {
        SourceError::Read {
            path,
            line,
            reason: os_reason(&e),
        }
    }
}

/// Counts the raw bytes read from the file, for the progress bar's ETA.
struct Counting {
    inner: Box<dyn Read + Send>,
    consumed: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.consumed.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                // Retried here because neither BufReader nor the csv crate retries it.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io::Error::new(e.kind(), FileError(e))),
            }
        }
    }
}

/// The decoded bytes, without a leading UTF-8 BOM.
type ByteSource = io::Chain<io::Cursor<Vec<u8>>, Box<dyn Read + Send>>;

/// Reads the first three bytes and puts them back unless they are a BOM.
/// Also gives the first bytes as read, BOM and all.
fn strip_bom(mut inner: Box<dyn Read + Send>) -> io::Result<(ByteSource, Vec<u8>)> {
    let mut head = [0u8; 3];
    let mut n = 0;
    // A pipe may deliver fewer than three bytes per read.
    while n < head.len() {
        match inner.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let keep = if head[..n] == *BOM { 0 } else { n };
    Ok((
        io::Cursor::new(head[..keep].to_vec()).chain(inner),
        head[..n].to_vec(),
    ))
}

/// A row's text for `RowData::Broken`: lossy UTF-8, at most `MAX_RAW_BYTES`.
fn raw_text(bytes: &[u8]) -> String {
    let mut cut = bytes.len().min(MAX_RAW_BYTES);
    // Back off to the start of a UTF-8 sequence so the cut does not leave a stray U+FFFD.
    let mut backed = 0;
    while cut < bytes.len() && backed < 3 && cut > 0 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
        backed += 1;
    }
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    // Each replaced byte grows by two, so the text can still be too long.
    text.truncate(text.floor_char_boundary(MAX_RAW_BYTES));
    text
}

/// A row that cannot be read as a record, with its text for the failures file.
fn broken_row(line: u64, message: String, column: Option<String>, raw: &[u8]) -> Row {
    Row {
        line,
        data: RowData::Broken {
            message,
            column,
            raw: raw_text(raw),
        },
    }
}

// ---------------------------------------------------------------------------------------
// CSV

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

struct CsvRows {
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
    fn open(
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

    fn read(&mut self, row: &mut Row, name: &str, gzip: bool) -> Result<bool, SourceError> {
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
    fn read_record(
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
fn text_row(row: &mut Row, line: u64, record: ByteRecord, headers: &[String]) {
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
fn take_record(data: &mut RowData) -> ByteRecord {
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

// ---------------------------------------------------------------------------------------
// NDJSON

struct NdjsonRows {
    src: BufReader<ByteSource>,
    /// The current line, reused across rows.
    buf: Vec<u8>,
    /// Lines read so far: the current line's number once it is read.
    line: u64,
    done: bool,
}

impl NdjsonRows {
    fn read(&mut self, row: &mut Row, name: &str, gzip: bool) -> Result<bool, SourceError> {
        if self.done {
            return Ok(false);
        }
        loop {
            let len = match read_line(&mut self.src, &mut self.buf) {
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
/// Returns the line's full length, or None at the end of the input.
fn read_line(src: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    buf.clear();
    let mut len = 0;
    let mut started = false;
    loop {
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
        .map_err(|e| format!("is not valid UTF-8 (byte {})", e.valid_up_to() + 1))?;
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
    use super::*;
    use std::io::Write;

    /// Writes `bytes` to a file named `name` in a fresh temporary directory.
    fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn new_row() -> Row {
        Row::default()
    }

    /// A row in a form that is easy to compare.
    #[derive(Debug, PartialEq)]
    enum Got {
        Csv(u64, Vec<String>),
        Json(u64, Value),
        Broken(u64, String, Option<String>, String),
    }

    fn got(row: &Row) -> Got {
        match &row.data {
            RowData::Csv(record) => Got::Csv(row.line, record.iter().map(str::to_owned).collect()),
            RowData::Json(object) => Got::Json(row.line, Value::Object(object.clone())),
            RowData::Broken {
                message,
                column,
                raw,
            } => Got::Broken(row.line, message.clone(), column.clone(), raw.clone()),
        }
    }

    /// Reads a whole input: its rows, then the error that ended it, if any. Read ahead on a
    /// thread, it reads the same.
    fn read_all(path: &Path) -> (Vec<Got>, Option<SourceError>) {
        let read = read_all_by(path, false);
        let ahead = read_all_by(path, true);
        assert_eq!(read.0, ahead.0, "read ahead, the rows differ");
        let text = |e: &Option<SourceError>| e.as_ref().map(ToString::to_string);
        assert_eq!(
            text(&read.1),
            text(&ahead.1),
            "read ahead, the error differs"
        );
        read
    }

    fn read_all_by(path: &Path, ahead: bool) -> (Vec<Got>, Option<SourceError>) {
        let input = Input::check(path, None).unwrap();
        let mut reader = match input.open(Arc::new(AtomicU64::new(0))) {
            Ok(reader) if ahead => reader.read_ahead(),
            Ok(reader) => reader,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut rows = Vec::new();
        let mut row = new_row();
        loop {
            match reader.read(&mut row) {
                Ok(true) => rows.push(got(&row)),
                Ok(false) => return (rows, None),
                Err(e) => {
                    // Finished after an error.
                    assert!(!reader.read(&mut row).unwrap());
                    return (rows, Some(e));
                }
            }
        }
    }

    fn rows_of(name: &str, bytes: &[u8]) -> Vec<Got> {
        let (_dir, path) = file(name, bytes);
        let (rows, error) = read_all(&path);
        assert!(error.is_none(), "unexpected error: {error:?}");
        rows
    }

    fn error_of(name: &str, bytes: &[u8]) -> (Vec<Got>, String) {
        let (_dir, path) = file(name, bytes);
        let (rows, error) = read_all(&path);
        let error = error.expect("an error").to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        (rows, error)
    }

    fn csv(line: u64, fields: &[&str]) -> Got {
        Got::Csv(line, fields.iter().map(|f| f.to_string()).collect())
    }

    fn json(line: u64, text: &str) -> Got {
        Got::Json(line, serde_json::from_str(text).unwrap())
    }

    fn broken_message(row: &Got) -> (u64, &str) {
        match row {
            Got::Broken(line, message, _, _) => (*line, message),
            other => panic!("expected a broken row, got {other:?}"),
        }
    }

    // --- checking inputs

    #[test]
    fn format_from_extension() {
        let cases = [
            ("users.csv", Format::Csv, false),
            ("users.CSV", Format::Csv, false),
            ("users.csv.gz", Format::Csv, true),
            ("Users.Csv.GZ", Format::Csv, true),
            ("events.ndjson", Format::Ndjson, false),
            ("events.jsonl", Format::Ndjson, false),
            ("events.jsonl.gz", Format::Ndjson, true),
            ("EVENTS.NDJSON.GZ", Format::Ndjson, true),
            ("users.tsv", Format::Csv, false),
            ("users.TSV.gz", Format::Csv, true),
        ];
        for (name, format, gzip) in cases {
            let (_dir, path) = file(name, b"");
            let input = Input::check(&path, None).unwrap();
            assert_eq!((input.format, input.gzip), (format, gzip), "{name}");
            let tab = name.to_ascii_lowercase().contains(".tsv");
            assert_eq!(input.delimiter, if tab { b'\t' } else { b',' }, "{name}");
            assert_eq!(input.size, Some(0));
            assert_eq!(input.name(), path.display().to_string());
        }
    }

    #[test]
    fn format_override_wins_and_gzip_still_detected() {
        let (_dir, path) = file("data.csv", b"{}");
        let input = Input::check(&path, Some(Format::Ndjson)).unwrap();
        assert_eq!((input.format, input.gzip), (Format::Ndjson, false));
        let (_dir, path) = file("export.gz", b"");
        let input = Input::check(&path, Some(Format::Csv)).unwrap();
        assert_eq!((input.format, input.gzip), (Format::Csv, true));
    }

    #[test]
    fn unknown_extension_needs_format() {
        for name in ["users.txt", "users", "users.gz", "users.json"] {
            let (_dir, path) = file(name, b"");
            let error = Input::check(&path, None).unwrap_err().to_string();
            assert!(error.starts_with(&path.display().to_string()), "{error}");
            assert!(error.contains("--format csv|ndjson"), "{error}");
        }
    }

    #[test]
    fn stdin_needs_format() {
        let error = Input::check(Path::new("-"), None).unwrap_err().to_string();
        assert!(error.starts_with("stdin: "), "{error}");
        assert!(error.contains("--format csv|ndjson"), "{error}");
        let input = Input::check(Path::new("-"), Some(Format::Ndjson)).unwrap();
        assert!(input.is_stdin());
        assert_eq!(input.name(), "stdin");
        assert_eq!(
            (input.format, input.gzip, input.size),
            (Format::Ndjson, false, None)
        );
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        let error = Input::check(&path, None).unwrap_err().to_string();
        assert_eq!(error, format!("{}: no such file", path.display()));
    }

    #[test]
    fn directory_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::create_dir(&path).unwrap();
        let error = Input::check(&path, None).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("{}: is a directory, not a file", path.display())
        );
    }

    #[test]
    fn size_is_on_disk_size() {
        let (_dir, path) = file("users.csv.gz", &gzip(b"email\na@example.com\n"));
        let input = Input::check(&path, None).unwrap();
        assert_eq!(input.size, Some(std::fs::metadata(&path).unwrap().len()));
    }

    #[test]
    fn reader_is_send() {
        fn send<T: Send>() {}
        send::<Reader>();
    }

    // --- CSV

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
    fn csv_read_ahead_over_many_chunks_reads_the_same() {
        // Odd rows on both sides of chunk edges, so recycled buffers carry every kind of row.
        let mut text = b"id,name\n".to_vec();
        let mut want = Vec::new();
        let mut line = 2;
        for i in 0..AHEAD_ROWS * 3 + 7 {
            let row = match i % AHEAD_ROWS {
                0 | 1 => format!("{i},x,extra\n").into_bytes(),
                2 => [format!("{i},bad").as_bytes(), b"\xFF\n"].concat(),
                3 => format!("{i},\"two\nlines\"\n").into_bytes(),
                _ => format!("{i},n{i}\n").into_bytes(),
            };
            let kept = match i % AHEAD_ROWS {
                0 | 1 => None,
                2 => Some(None),
                3 => Some(Some("two\nlines".to_string())),
                _ => Some(Some(format!("n{i}"))),
            };
            want.push((line, kept));
            line += if i % AHEAD_ROWS == 3 { 2 } else { 1 };
            text.extend_from_slice(&row);
        }
        let rows = rows_of("users.csv", &text);
        assert_eq!(rows.len(), want.len());
        for (got, (line, kept)) in rows.iter().zip(want) {
            match (got, kept) {
                (Got::Csv(at, cells), Some(Some(name))) => {
                    assert_eq!((*at, cells[1].as_str()), (line, name.as_str()));
                }
                (Got::Broken(at, message, column, _), Some(None)) => {
                    assert_eq!(*at, line);
                    assert_eq!(column.as_deref(), Some("name"), "{message}");
                }
                (Got::Broken(at, message, None, _), None) => {
                    assert_eq!(
                        (*at, message.as_str()),
                        (line, "has 3 fields, the header has 2")
                    );
                }
                (got, kept) => panic!("line {line}: got {got:?}, wanted {kept:?}"),
            }
        }
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

    // --- NDJSON

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

    // --- gzip and byte counting

    #[test]
    fn gzip_plain_and_concatenated() {
        let rows = rows_of("users.csv.gz", &gzip(b"\xEF\xBB\xBFid\n1\n2\n"));
        assert_eq!(rows, [csv(2, &["1"]), csv(3, &["2"])]);
        let mut both = gzip(b"{\"n\":1}\n");
        both.extend(gzip(b"{\"n\":2}\n"));
        let rows = rows_of("events.ndjson.gz", &both);
        assert_eq!(rows, [json(1, r#"{"n":1}"#), json(2, r#"{"n":2}"#)]);
    }

    #[test]
    fn gzip_truncated() {
        let mut text = String::new();
        for i in 0..50_000 {
            text.push_str(&format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}\n",
                i * 7919 % 100_003
            ));
        }
        let packed = gzip(text.as_bytes());
        let cut = &packed[..packed.len() / 2];
        let (rows, error) = error_of("events.ndjson.gz", cut);
        assert!(!rows.is_empty());
        assert!(
            error.ends_with(&format!(
                "the gzip stream is truncated or corrupt after line {}",
                rows.len()
            )),
            "{error}"
        );

        let mut text = String::from("id,pad\n");
        for i in 0..50_000 {
            text.push_str(&format!("{i},{}\n", i * 7919 % 100_003));
        }
        let packed = gzip(text.as_bytes());
        let (rows, error) = error_of("users.csv.gz", &packed[..packed.len() / 2]);
        assert!(!rows.is_empty());
        assert!(
            error.contains("the gzip stream is truncated or corrupt after line"),
            "{error}"
        );
        // Cut off only the trailer (checksum and length).
        let (_, error) = error_of("users.csv.gz", &packed[..packed.len() - 4]);
        assert!(
            error.contains("the gzip stream is truncated or corrupt"),
            "{error}"
        );
    }

    #[test]
    fn gzip_not_gzip() {
        let (_dir, path) = file("users.csv.gz", b"id\n1\n");
        let input = Input::check(&path, None).unwrap();
        let error = input.open(Arc::new(AtomicU64::new(0))).err().unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: not a gzip file, or the gzip stream is corrupt at its start",
                path.display()
            )
        );
    }

    #[test]
    fn consumed_counts_file_bytes() {
        let mut text = String::from("id,email\n");
        for i in 0..20_000 {
            text.push_str(&format!("{i},user{i}@example.com\n"));
        }
        for (name, bytes) in [
            ("users.csv", text.clone().into_bytes()),
            ("users.csv.gz", gzip(text.as_bytes())),
        ] {
            let (_dir, path) = file(name, &bytes);
            let input = Input::check(&path, None).unwrap();
            let consumed = Arc::new(AtomicU64::new(0));
            let mut reader = input.open(consumed.clone()).unwrap();
            let mut row = new_row();
            assert!(reader.read(&mut row).unwrap());
            let early = consumed.load(Ordering::Relaxed);
            assert!(early > 0 && early < bytes.len() as u64, "{name}: {early}");
            let mut n = 1;
            while reader.read(&mut row).unwrap() {
                n += 1;
            }
            assert_eq!(n, 20_000);
            assert_eq!(
                consumed.load(Ordering::Relaxed),
                bytes.len() as u64,
                "{name}"
            );
        }
    }

    #[test]
    fn raw_text_truncates_at_char_boundary() {
        assert_eq!(raw_text(b"abc"), "abc");
        let text = "ü".repeat(MAX_RAW_BYTES);
        let raw = raw_text(text.as_bytes());
        assert_eq!(raw.len(), MAX_RAW_BYTES);
        assert!(!raw.contains('\u{FFFD}'));
        // Invalid bytes grow into U+FFFD; the result is still bounded.
        let raw = raw_text(&[0xFF; 3 * MAX_RAW_BYTES]);
        assert!(raw.len() <= MAX_RAW_BYTES);
    }

    #[test]
    fn os_reasons() {
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(os_reason(&e), "input/output error");
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(os_reason(&e), "permission denied");
    }
}
