//! CSV (and TSV) reading: the parser set up, the header checked (Excel's `sep=` line named),
//! records with exact line numbers and the wrong field count or non-UTF-8 cells as broken
//! rows, CRLF, old Mac CR and blank lines, and the size limit per row: a record over it is
//! read through to its end, keeping only its start, and is one broken row.

use std::io::{self, Read};
use std::path::Path;

use csv::{ByteRecord, StringRecord};
use csv_core::ReadRecordResult;
use serde_json::Map;

use super::bytes::{ByteSource, read_error};
use super::raw::{RawBytes, Span};
use super::{BUFFER_BYTES, MAX_ROW_BYTES, NOT_UTF8, Row, RowData, SourceError, broken_row};

/// Fed to the CSV parser after the real input ends; see `CsvSource`.
const SENTINEL: &[u8] = b"\n\"";

/// Fed to the CSV parser, a step at a time, to end a record over the limit; see `Oversize`.
const PROBE: &[u8] = b"\n\"\n\"\n";

/// Where each step of `PROBE` ends.
const PROBE_STEPS: [usize; 3] = [1, 3, 5];

/// The byte stream under the csv parser. It does two jobs the csv crate cannot do itself:
///
/// * Bounds memory. The parser grows its record to hold a whole row, so a 200 MB cell (or a
///   quote never closed) would be held whole. Once the record being parsed is over
///   `MAX_ROW_BYTES` (checked when the parser asks for more, so a record within the bound
///   never meets this), this ends it for the parser and reads through the rest of it
///   itself; see `Oversize`.
/// * Detects an unclosed quote at the end of the input, which the csv crate silently
///   accepts as a complete field. After the real input it feeds `SENTINEL` (`\n"`): from
///   any state but "inside a quoted field" the `\n` ends the last record and the `"` opens
///   a synthetic record holding one empty field; inside a quoted field both bytes join the
///   open field, so the parser swallows the whole sentinel into a real record. Which of the
///   two happened is visible from where the record that consumed the sentinel ends.
struct CsvSource {
    inner: ByteSource,
    /// Input read while reading through a record over the limit, not handed over yet: what
    /// follows that record.
    pending: Vec<u8>,
    pending_at: usize,
    /// `inner` has ended.
    inner_done: bool,
    delimiter: u8,
    /// Bytes handed to the parser, probe and sentinel included: the parser's byte offsets.
    delivered: u64,
    /// Offset where the record being parsed starts (the end of the previous one).
    record_start: u64,
    /// The last byte of the input handed over.
    last: u8,
    /// The real input's length, once it has ended.
    real_len: Option<u64>,
    /// How much of the sentinel has been handed over.
    sentinel_sent: usize,
    /// The record being parsed is over the limit and being ended.
    oversize: Option<Oversize>,
    /// The input's lines end in a bare `\r`: each is read as `\n` (see `CsvSource::start`).
    cr_lines: bool,
}

/// A record over the limit, being ended. The parser's state (inside a quoted cell or not)
/// is private, so `CsvSource` stops handing over the input and hands over `PROBE` instead,
/// a step at a time, until the parser ends the record; the steps it took tell the state:
///
/// * `\n` ends the record unless a quoted cell is open (or no record has begun: so far only
///   blank lines, which the parser skips);
/// * then `"\n` closes the open cell and ends it;
/// * if the record still goes on, none had begun: the first `"` opened one, a synthetic
///   record, and the second `"\n` ends it.
///
/// A csv-core reader put in that state then reads the rest of the record, keeping nothing,
/// to its true end (`CsvSource::read_past`). Outside a quoted cell, the last byte handed
/// over tells the state but for one case: after a quote, the parser may be in an unquoted
/// cell (`ab"`) or just past the quote closing a quoted one (`"ab"`), and a quote next is
/// kept as it is in the first and ends up an escaped quote in the second. So the probe
/// never starts between two quotes: the rest of a run of quotes is cut to its parity (one
/// more quote or none), which leaves every state as the whole run would, and the byte
/// after the run is read alike in both.
struct Oversize {
    /// Bytes of the record cut from a run of quotes, not handed over.
    cut: u64,
    /// The offset where the probe starts.
    probe_at: u64,
    /// How much of `PROBE` has been handed over.
    sent: usize,
}

/// The rest of a record over the limit, read through by `CsvSource::read_past`.
struct Past {
    /// Bytes of the record the parser was not handed.
    bytes: u64,
    /// Line breaks among them, its terminator included.
    newlines: u64,
    end: PastEnd,
}

/// Where a record over the limit ends.
#[derive(Debug, PartialEq)]
enum PastEnd {
    /// At a line break.
    Line,
    /// At the end of the input.
    Input,
    /// The input ends inside a quoted cell.
    OpenQuote,
}

impl Read for CsvSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.oversize.is_none()
            && self.real_len.is_none()
            && self.delivered - self.record_start > MAX_ROW_BYTES as u64
        {
            // Not inside a run of quotes; see `Oversize`.
            let run = if self.last == b'"' {
                self.cut_quotes()?
            } else {
                0
            };
            let odd = run % 2;
            self.oversize = Some(Oversize {
                cut: run - odd,
                probe_at: self.delivered + odd,
                sent: 0,
            });
            if odd == 1 {
                buf[0] = b'"';
                self.delivered += 1;
                return Ok(1);
            }
        }
        if let Some(over) = &mut self.oversize {
            let sent = over.sent;
            let Some(&step_end) = PROBE_STEPS.iter().find(|&&end| end > sent) else {
                // Every state ends at one of the steps; this is the parser not doing so.
                return Err(io::Error::other(
                    "the CSV parser did not end a record over the size limit",
                ));
            };
            let n = (step_end - sent).min(buf.len());
            buf[..n].copy_from_slice(&PROBE[sent..sent + n]);
            over.sent += n;
            self.delivered += n as u64;
            return Ok(n);
        }
        if self.real_len.is_none() {
            let n = self.read_input(buf)?;
            if n > 0 {
                self.delivered += n as u64;
                self.last = buf[n - 1];
                return Ok(n);
            }
            self.real_len = Some(self.delivered);
        }
        let rest = &SENTINEL[self.sentinel_sent..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.sentinel_sent += n;
        self.delivered += n as u64;
        Ok(n)
    }
}

impl CsvSource {
    fn new(inner: ByteSource, delimiter: u8) -> CsvSource {
        CsvSource {
            inner,
            pending: Vec::new(),
            pending_at: 0,
            inner_done: false,
            delimiter,
            delivered: 0,
            record_start: 0,
            last: b'\n',
            real_len: None,
            sentinel_sent: 0,
            oversize: None,
            cr_lines: false,
        }
    }

    /// The next bytes of the input: those pending first, then `inner`'s.
    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending_at < self.pending.len() {
            let rest = &self.pending[self.pending_at..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pending_at += n;
            return Ok(n);
        }
        if self.inner_done {
            return Ok(0);
        }
        let n = self.read_inner(buf)?;
        self.inner_done = n == 0;
        Ok(n)
    }

    /// Reads from `inner`, every `\r` a `\n` in an input of old Mac line ends.
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.cr_lines {
            cr_to_lf(&mut buf[..n]);
        }
        Ok(n)
    }

    /// Looks at the first line before the parser does. One that ends in a bare `\r` (old
    /// Mac Excel, whose every line does) makes every `\r` a line end from here on, as Excel
    /// reads it: the parser and the line count know only `\n`. Excel's line naming the
    /// separator (`sep=;`, or `"sep=;"` as some tools write it) is taken off the input, and
    /// its separator given. Called first.
    fn start(&mut self) -> io::Result<Option<u8>> {
        let mut n = 0;
        self.cr_lines = loop {
            if let Some(bare) = ends_in_bare_cr(&self.pending[..n], self.delimiter) {
                break bare;
            }
            if n == BUFFER_BYTES {
                break false;
            }
            // A pipe may give a few bytes a read.
            self.pending.resize(BUFFER_BYTES, 0);
            match self.inner.read(&mut self.pending[n..]) {
                Ok(0) => {
                    self.inner_done = true;
                    break false;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.pending.truncate(n);
        self.pending_at = 0;
        if self.cr_lines {
            cr_to_lf(&mut self.pending);
        }
        let Some((sep, len)) = excel_separator(&self.pending) else {
            return Ok(None);
        };
        self.pending_at = len;
        Ok(Some(sep))
    }

    /// Makes `pending` hold input, unless the input has ended: false then.
    fn fill_pending(&mut self) -> io::Result<bool> {
        if self.pending_at == self.pending.len() && !self.inner_done {
            let mut pending = std::mem::take(&mut self.pending);
            pending.resize(BUFFER_BYTES, 0);
            self.pending_at = 0;
            let read = self.read_inner(&mut pending);
            pending.truncate(*read.as_ref().unwrap_or(&0));
            self.pending = pending;
            self.inner_done = read? == 0;
        }
        Ok(self.pending_at < self.pending.len())
    }

    /// Takes the quotes that come next from the input: how many.
    fn cut_quotes(&mut self) -> io::Result<u64> {
        let mut run = 0;
        while self.fill_pending()? {
            let rest = &self.pending[self.pending_at..];
            let quotes = rest.iter().take_while(|&&b| b == b'"').count();
            self.pending_at += quotes;
            run += quotes as u64;
            if quotes < rest.len() {
                break;
            }
        }
        Ok(run)
    }

    /// Once the parser has ended a record over the limit: reads through the rest of it to
    /// its true end, keeping nothing, from the state the probe found (see `Oversize`). None
    /// if no record had begun.
    fn read_past(&mut self, over: &Oversize) -> io::Result<Option<Past>> {
        // Bytes that put a new reader in the state the parser was in when the probe began.
        let last = [self.last];
        let state: &[u8] = match over.sent {
            // Unquoted, after a quote: past one closing a quoted cell will do (see `Oversize`).
            1 if self.last == b'"' => b"\"\"",
            // Unquoted, after a delimiter or in a cell: the same byte puts it there.
            1 => &last,
            // In a quoted cell.
            3 => b"\"",
            _ => return Ok(None),
        };
        let mut reader = csv_core::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .terminator(csv_core::Terminator::Any(b'\n'))
            .build();
        // What the reader copies out, thrown away as it fills.
        let (mut out, mut ends) = ([0; 4096], [0; 64]);
        reader.read_record(state, &mut out, &mut ends);
        let mut bytes = over.cut;
        loop {
            if !self.fill_pending()? {
                let newlines = reader.line() - 1;
                // The end of the input ends the record unless a quoted cell is open, which
                // a line break then joins (see `SENTINEL`).
                let (result, ..) = reader.read_record(b"\n", &mut out, &mut ends);
                let end = if result == ReadRecordResult::Record {
                    PastEnd::Input
                } else {
                    PastEnd::OpenQuote
                };
                return Ok(Some(Past {
                    bytes,
                    newlines,
                    end,
                }));
            }
            let input = &self.pending[self.pending_at..];
            let (result, read, ..) = reader.read_record(input, &mut out, &mut ends);
            self.pending_at += read;
            bytes += read as u64;
            if result == ReadRecordResult::Record {
                return Ok(Some(Past {
                    bytes,
                    newlines: reader.line() - 1,
                    end: PastEnd::Line,
                }));
            }
        }
    }
}

/// Makes every `\r` of `bytes` a `\n`: the line ends of an input of old Mac line ends.
fn cr_to_lf(bytes: &mut [u8]) {
    for b in bytes {
        if *b == b'\r' {
            *b = b'\n';
        }
    }
}

/// Whether the first line of `head` ends in a bare `\r`, or in `\n` or `\r\n`; None while
/// `head` does not show it. A line break inside a quoted cell ends no line; as for the
/// parser, only a quote that starts a cell opens one (`in"ch` is a plain cell).
fn ends_in_bare_cr(head: &[u8], delimiter: u8) -> Option<bool> {
    enum At {
        CellStart,
        Cell,
        Quoted,
        /// A quote in a quoted cell: it closes the cell, unless a quote follows (`""`).
        QuotedQuote,
    }
    let mut at = At::CellStart;
    for (i, &b) in head.iter().enumerate() {
        at = match at {
            At::Quoted if b == b'"' => At::QuotedQuote,
            At::Quoted => At::Quoted,
            At::CellStart | At::QuotedQuote if b == b'"' => At::Quoted,
            _ if b == b'\n' => return Some(false),
            _ if b == b'\r' => return head.get(i + 1).map(|&next| next != b'\n'),
            _ if b == delimiter => At::CellStart,
            _ => At::Cell,
        };
    }
    None
}

/// Excel's separator line at the start of `head`, `sep=;` or `"sep=;"`: the separator, and
/// the line's length with its line break.
fn excel_separator(head: &[u8]) -> Option<(u8, usize)> {
    let (quoted, rest) = match head.strip_prefix(b"\"sep=") {
        Some(rest) => (true, rest),
        None => (false, head.strip_prefix(b"sep=")?),
    };
    let (&sep, rest) = rest.split_first()?;
    let rest = if quoted {
        rest.strip_prefix(b"\"")?
    } else {
        rest
    };
    let line_break = if rest.starts_with(b"\r\n") {
        2
    } else if rest.starts_with(b"\n") {
        1
    } else {
        return None;
    };
    if matches!(sep, b'"' | b'\r' | b'\n') {
        return None;
    }
    Some((sep, head.len() - rest.len() + line_break))
}

/// The rows of a CSV input.
pub(super) struct CsvRows {
    rdr: csv::Reader<CsvSource>,
    headers: Vec<String>,
    /// Lines read completely so far, for errors.
    lines_done: u64,
    /// What to add to the parser's line count for the input's: the line breaks of records
    /// over the limit that it was not handed, less those of the probes it was.
    line_shift: i64,
    /// Reused when a trailing `\r` is cut from a record's last field.
    scratch: Vec<u8>,
    done: bool,
    /// A broken row's bytes, found again by its span.
    raw: RawBytes,
    /// What to add to the parser's byte offsets for the input's: Excel's line, which the
    /// parser is not handed, and the bytes of records over the limit that it was not handed,
    /// less those of the probes it was.
    byte_shift: i64,
}

/// A record `CsvRows::read_record` read and checked.
pub(super) enum Checked {
    /// Within the size limit, with the header's field count: the line it starts on, and
    /// where it is.
    Fits {
        line: u64,
        span: Span,
    },
    Broken(Row),
}

/// What `CsvRows::next_record` read.
enum Found {
    /// A record, the line it starts on, and where it is.
    Record { line: u64, span: Span },
    /// A record over the size limit, read through to its end: the line it starts on, what
    /// is wrong with it, and where it is. The record holds its start.
    TooLong {
        line: u64,
        message: String,
        span: Span,
    },
}

impl CsvRows {
    /// Starts the parser and reads and checks the header row. The cells are separated by
    /// `given` (`--delimiter`), or else by what Excel's `sep=` line names, or else by
    /// `delimiter` (the file name's).
    pub(super) fn open(
        bytes: ByteSource,
        name: &str,
        gzip: bool,
        delimiter: u8,
        given: Option<u8>,
        file: Option<&Path>,
    ) -> Result<CsvRows, SourceError> {
        let mut source = CsvSource::new(bytes, given.unwrap_or(delimiter));
        let excel = source.start().map_err(|e| read_error(name, gzip, e, 0))?;
        let excel_len = source.pending_at as i64;
        let delimiter = match (given, excel) {
            // Which one is wrong only the user can tell.
            (Some(flag), Some(sep)) if flag != sep => {
                return Err(SourceError::Input {
                    path: name.to_string(),
                    message: format!(
                        "--delimiter {} but the file's first line sep={} says {}: leave out \
                         --delimiter, or delete that line",
                        shown(flag),
                        char::from(sep),
                        shown(sep)
                    ),
                });
            }
            (Some(flag), _) => flag,
            (None, sep) => sep.unwrap_or(delimiter),
        };
        source.delimiter = delimiter;
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(delimiter)
            // Field counts are checked here so that a bad row is a broken row, not an error.
            .flexible(true)
            // Only `\n` ends a record, and it is consumed with it, which keeps line numbers
            // exact (see `next_record`); a `\r` before it is cut off there. (In an input of
            // old Mac line ends, every `\r` reaches the parser as `\n`: see `CsvSource::start`.)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(source);
        let mut rows = CsvRows {
            rdr,
            headers: Vec::new(),
            // The parser never sees Excel's line.
            lines_done: u64::from(excel.is_some()),
            line_shift: i64::from(excel.is_some()),
            scratch: Vec::new(),
            done: false,
            raw: RawBytes::new(file, delimiter),
            byte_shift: excel_len,
        };
        let mut record = ByteRecord::new();
        let header = |message: String| SourceError::Input {
            path: name.to_string(),
            message: format!("header row: {message}"),
        };
        match rows.next_record(&mut record, name, gzip)? {
            Some(Found::Record { .. }) => rows.headers = check_headers(&record).map_err(header)?,
            Some(Found::TooLong { message, .. }) => return Err(header(message)),
            // No header at all is an empty input: a run with nothing to do.
            None => {}
        }
        Ok(rows)
    }

    /// The column names; empty for an empty input.
    pub(super) fn headers(&self) -> &[String] {
        &self.headers
    }

    /// How a broken row's bytes are found again.
    pub(super) fn raw(&self) -> &RawBytes {
        &self.raw
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
            Some(Checked::Fits { line, span }) => {
                text_row(row, line, span, record, &self.headers, &self.raw);
                true
            }
            Some(Checked::Broken(broken)) => {
                *row = broken;
                true
            }
        })
    }

    /// Reads the next record into `record` and checks its size and field count: the line
    /// it starts on and where it is, or the row as broken; None at the end of the input. Its
    /// cells are not checked as UTF-8 yet (see [`text_row`]).
    pub(super) fn read_record(
        &mut self,
        record: &mut ByteRecord,
        name: &str,
        gzip: bool,
    ) -> Result<Option<Checked>, SourceError> {
        let (line, span) = match self.next_record(record, name, gzip)? {
            None => return Ok(None),
            Some(Found::Record { line, span }) => (line, span),
            Some(Found::TooLong {
                line,
                message,
                span,
            }) => {
                let raw = self.raw.of(span, record);
                return Ok(Some(Checked::Broken(broken_row(line, message, None, &raw))));
            }
        };
        // Excel leaves out a row's last cells under columns without a name (`email,name,,`)
        // when they are empty, as such a column's cells must be: they are put back.
        let short = record.len()..self.headers.len();
        if !short.is_empty() && self.headers[short.clone()].iter().all(String::is_empty) {
            short.for_each(|_| record.push_field(b""));
        }
        if record.len() != self.headers.len() {
            let message = format!(
                "has {} field{}, the header has {}",
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                self.headers.len()
            );
            let raw = self.raw.of(span, record);
            return Ok(Some(Checked::Broken(broken_row(line, message, None, &raw))));
        }
        Ok(Some(Checked::Fits { line, span }))
    }

    /// Where the parser's bytes from `start` to `end` are in the input.
    fn span(&self, start: u64, end: u64) -> Span {
        let at = |offset: u64| offset.saturating_add_signed(self.byte_shift);
        Span {
            start: at(start),
            end: at(end),
        }
    }

    /// Reads the next record into `record`; None at the end of the input. Skips blank
    /// lines, including CRLF ones.
    fn next_record(
        &mut self,
        record: &mut ByteRecord,
        name: &str,
        gzip: bool,
    ) -> Result<Option<Found>, SourceError> {
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
    ) -> Result<Option<Found>, SourceError> {
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
            let line_end = self.line();
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
            if let Some(over) = self.rdr.get_mut().oversize.take() {
                match self.read_past(over, start, line, name, gzip)? {
                    Some(found) => return Ok(Some(found)),
                    None => continue,
                }
            }
            self.lines_done = line_end.saturating_sub(1);
            if end - start > MAX_ROW_BYTES as u64 {
                let message = too_long(end - start, line, self.lines_done);
                let span = self.span(start, end);
                return Ok(Some(Found::TooLong {
                    line,
                    message,
                    span,
                }));
            }
            if strip_cr(record, &mut self.scratch) && record.len() == 1 && record[0].is_empty() {
                // A blank CRLF line: the parser only skips blank lines it sees as blank.
                continue;
            }
            let span = self.span(start, end);
            return Ok(Some(Found::Record { line, span }));
        }
    }

    /// After the probe ended the record at `start`, on `line`, for the parser (see
    /// `Oversize`): reads through the rest of it. None if there was no record, only blank
    /// lines.
    #[cold]
    fn read_past(
        &mut self,
        over: Oversize,
        start: u64,
        line: u64,
        name: &str,
        gzip: bool,
    ) -> Result<Option<Found>, SourceError> {
        // The probe's line breaks are not the input's.
        let probed = PROBE[..over.sent].iter().filter(|&&b| b == b'\n').count();
        self.line_shift -= probed as i64;
        let past = self
            .rdr
            .get_mut()
            .read_past(&over)
            .map_err(|e| read_error(name, gzip, e, self.lines_done))?;
        // Neither are its bytes, nor those of the record it did not hand the parser.
        let span = self.span(start, over.probe_at);
        self.byte_shift -= over.sent as i64;
        let Some(past) = past else {
            self.lines_done = self.line().saturating_sub(1);
            return Ok(None);
        };
        self.byte_shift += past.bytes as i64;
        self.line_shift += past.newlines as i64;
        if past.end == PastEnd::OpenQuote {
            return Err(SourceError::UnterminatedQuote {
                path: name.to_string(),
                line,
            });
        }
        self.lines_done = self.line().saturating_sub(1);
        // The record's last line: the one its line break ends, or the input's last.
        let last = self.lines_done + u64::from(past.end == PastEnd::Input);
        // The probe's own bytes are not the record's.
        let len = over.probe_at - start + past.bytes;
        let message = too_long(len, line, last);
        Ok(Some(Found::TooLong {
            line,
            message,
            span,
        }))
    }

    /// The input's line the parser is on: 1 + the line breaks read so far.
    fn line(&self) -> u64 {
        self.rdr
            .position()
            .line()
            .saturating_add_signed(self.line_shift)
    }

    fn csv_error(&self, e: csv::Error, name: &str, gzip: bool) -> SourceError {
        let reason = e.to_string();
        match e.into_kind() {
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

/// A delimiter as `--delimiter` takes it: `tab`, or the character quoted (`';'`).
fn shown(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".to_string(),
        c => format!("'{}'", char::from(c)),
    }
}

/// What is wrong with a record over the size limit: `len` bytes, on lines `line` to `last`.
fn too_long(len: u64, line: u64, last: u64) -> String {
    let size = format!("is {:.1} MB long", len as f64 / 1e6);
    let limit = "the most a row may be is 1 MiB";
    if last > line {
        format!(
            "{size}, to line {last} (a quoted cell holds its line breaks: is a quote left \
             open?); {limit}"
        )
    } else {
        format!("{size}; {limit}")
    }
}

/// The row of a record with the right field count: its cells as text, or broken, naming the
/// column that is not UTF-8.
pub(super) fn text_row(
    row: &mut Row,
    line: u64,
    span: Span,
    record: ByteRecord,
    headers: &[String],
    raw: &RawBytes,
) {
    row.line = line;
    // Checks the whole record at once when it is ASCII, as exports mostly are.
    match StringRecord::from_byte_record(record) {
        Ok(record) => row.data = RowData::Csv(record),
        Err(e) => {
            let column = headers
                .get(e.utf8_error().field())
                .cloned()
                .unwrap_or_default();
            let message = format!("column \"{column}\" {NOT_UTF8}");
            let raw = raw.of(span, &e.into_byte_record());
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

/// Checks and converts the header row: UTF-8, no empty names but trailing ones (a
/// spreadsheet's empty columns, whose cells must then be empty: see `record::plan`), no
/// repeats. A name of only spaces is empty: the mapping trims names.
fn check_headers(record: &ByteRecord) -> Result<Vec<String>, String> {
    // Excel's separator line is taken off the input when it is well formed (see
    // `excel_separator`); this is one that is not.
    if record.len() <= 2 && record.get(0).is_some_and(|f| f.starts_with(b"sep=")) {
        return Err(
            "the first line is Excel's separator hint but not of one character (sep=;), not a \
             header: write it as sep= and the character, or delete that line"
                .to_string(),
        );
    }
    let blank = |field: &[u8]| std::str::from_utf8(field).is_ok_and(|s| s.trim().is_empty());
    let named = record.iter().rposition(|f| !blank(f)).map_or(0, |i| i + 1);
    let mut headers: Vec<String> = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(field) else {
            return Err(format!("column {} is not valid UTF-8", i + 1));
        };
        let name = if blank(field) { "" } else { name };
        if name.is_empty() && i < named {
            return Err(format!("column {} has an empty name", i + 1));
        }
        if let Some(first) = headers.iter().position(|h| h == name && !name.is_empty()) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::testing::*;
    use super::super::{Input, MAX_RAW_BYTES};
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
    fn csv_broken_row_raw_from_the_file_is_cut_to_the_most_kept() {
        let long = "x".repeat(5000);
        let text = format!("a,b\n\"q,\"\"r\",{long},3\n");
        let rows = rows_of("users.csv", text.as_bytes());
        let Got::Broken(_, _, _, raw) = &rows[0] else {
            panic!("{:?}", rows[0]);
        };
        assert!(raw.starts_with("\"q,\"\"r\",xxx"), "{raw}");
        assert_eq!(raw.len(), MAX_RAW_BYTES);
    }

    /// The `_raw` of each broken row.
    fn raws(rows: &[Got]) -> Vec<&str> {
        rows.iter()
            .filter_map(|row| match row {
                Got::Broken(.., raw) => Some(raw.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn csv_broken_row_raw_is_the_files_bytes() {
        // Quotes, the file's delimiter, blank lines before, a byte order mark and Excel's line
        // before, CR line ends, and the last row without a line break.
        let cases: [(&str, &[u8], &[&str]); 5] = [
            (
                "q.csv",
                b"id,city,note\r\n1,\"Z\xfcrich\",\"say \"\"hi\"\", ok\"\r\n2,\"Paris\",plain\r\n",
                &["1,\"Z\u{FFFD}rich\",\"say \"\"hi\"\", ok\""],
            ),
            (
                "q2.csv",
                b"\xEF\xBB\xBFsep=;\r\nid;city;note\r\n\r\n\r\n1;Z\xfcrich;a,b\r\n2;x;y;z",
                &["1;Z\u{FFFD}rich;a,b", "2;x;y;z"],
            ),
            (
                "q3.tsv",
                b"id\tcity\tnote\n1\tZ\xfcrich\ta,b\n",
                &["1\tZ\u{FFFD}rich\ta,b"],
            ),
            (
                "mac.csv",
                b"id,city\r1,\"a\rb\",x\r\r2,ok\r",
                &["1,\"a\rb\",x"],
            ),
            (
                "big.csv",
                format!("id,note\n1,{}\n2,\"x\"\"\",y\n", "x".repeat(3_000_000))
                    .leak()
                    .as_bytes(),
                &["1,xx", "2,\"x\"\"\",y"],
            ),
        ];
        for (name, text, want) in cases {
            let rows = rows_of(name, text);
            let got: Vec<&str> = raws(&rows)
                .into_iter()
                .map(|raw| {
                    if raw.len() == MAX_RAW_BYTES {
                        &raw[..4]
                    } else {
                        raw
                    }
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn csv_excel_separator_line_names_the_delimiter() {
        for text in [
            &b"sep=;\nid;plan\n1;pro,x\n"[..],
            b"\xEF\xBB\xBFsep=;\r\nid;plan\r\n1;pro,x\r\n",
        ] {
            let rows = rows_of("users.csv", text);
            // The line numbers are the file's: Excel's line is line 1.
            assert_eq!(rows, [csv(3, &["1", "pro,x"])]);
        }
        let (_dir, path) = file("users.csv", b"sep=;;\nid,plan\n1,pro\n");
        let input = Input::check(&path, None).unwrap();
        let Err(e) = input.open(Arc::new(AtomicU64::new(0))) else {
            panic!("the sep= line was taken for a header");
        };
        assert!(e.to_string().contains("Excel's separator hint"), "{e}");
    }

    #[test]
    fn csv_excel_separator_line_quoted_is_the_separator_line() {
        for text in [
            &b"\"sep=;\"\r\nid;plan\r\n1;pro,x\r\n"[..],
            b"\"sep=;\"\nid;plan\n1;pro,x",
        ] {
            assert_eq!(rows_of("users.csv", text), [csv(3, &["1", "pro,x"])]);
        }
    }

    #[test]
    fn csv_old_mac_line_ends_are_line_ends() {
        // Every bare `\r` ends a line, as Excel reads it: blank lines skipped, a quoted one
        // a line break in the cell, and the lines numbered as the file's.
        let rows = rows_of(
            "users.csv",
            b"id,city\r1,Paris\r\r2,\"Rome\rItaly\"\r3,x,extra\r4,Oslo",
        );
        assert_eq!(
            rows,
            [
                csv(2, &["1", "Paris"]),
                csv(4, &["2", "Rome\nItaly"]),
                Got::Broken(
                    6,
                    "has 3 fields, the header has 2".to_string(),
                    None,
                    "3,x,extra".to_string()
                ),
                csv(7, &["4", "Oslo"]),
            ]
        );
        // With Excel's separator line, and a header whose quoted cell holds a `\r`.
        let rows = rows_of("users.csv", b"sep=;\rid;city\r1;Paris\r");
        assert_eq!(rows, [csv(3, &["1", "Paris"])]);
        let rows = rows_of("users.csv", b"id,\"a\rb\"\r1,Paris\r");
        assert_eq!(rows, [csv(3, &["1", "Paris"])]);
        // Escaped quotes keep the header's cell quoted; a quote inside a plain cell is a byte.
        let rows = rows_of("users.csv", b"id,\"a\"\"\r\"\"b\",c\"d\r1,Paris,x\r");
        assert_eq!(rows, [csv(3, &["1", "Paris", "x"])]);
        // A file of CRLF lines keeps a bare `\r` inside a quoted cell as it is.
        let rows = rows_of("users.csv", b"id,note\r\n1,\"a\rb\r\nc\"\r\n2,d\r\n");
        assert_eq!(rows, [csv(2, &["1", "a\rb\r\nc"]), csv(4, &["2", "d"])]);
    }

    #[test]
    fn csv_trailing_empty_header_names_are_kept_as_unnamed_columns() {
        let rows = rows_of("users.csv", b"id,name,,\n1,Ann,,\n2,Bob\n3,Cy,\n");
        // Rows short by only those columns are Excel's way of leaving them empty.
        let full = |line, id, name| csv(line, &[id, name, "", ""]);
        assert_eq!(
            rows,
            [full(2, "1", "Ann"), full(3, "2", "Bob"), full(4, "3", "Cy")]
        );
        let rows = rows_of("users.csv", b"id,name,,\n4\n");
        assert!(matches!(rows[0], Got::Broken(2, ..)), "{rows:?}");
        let (_, error) = error_of("users.csv", b",id\n");
        assert!(error.ends_with("column 1 has an empty name"), "{error}");
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

    /// A broken row's line, message and `_raw`; panics on any other row.
    fn broken(row: &Got) -> (u64, &str, &str) {
        match row {
            Got::Broken(line, message, None, raw) => (*line, message, raw),
            other => panic!("expected a broken row, got {other:?}"),
        }
    }

    const OVER: &str = "the most a row may be is 1 MiB";

    /// Reads `text`, whose row 1 is fine and whose row on line 3 opens a quote never closed.
    fn never_closed_on_line_3(text: &[u8]) {
        let (rows, error) = error_of("users.csv", text);
        assert_eq!(rows, [csv(2, &["1", "ok"])]);
        assert!(
            error.ends_with("the row at line 3 has a quoted field that is never closed"),
            "{error}"
        );
    }

    #[test]
    fn csv_record_over_limit_is_one_broken_row_and_reading_goes_on() {
        let big = "x".repeat(5_000_000);
        // In the middle.
        let text = format!("id,note\n1,ok\n2,{big}\n3,ok\n");
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(rows.len(), 3, "{:?}", rows[2]);
        assert_eq!(rows[0], csv(2, &["1", "ok"]));
        let (line, message, raw) = broken(&rows[1]);
        assert_eq!((line, message), (3, &*format!("is 5.0 MB long; {OVER}")));
        assert!(
            raw.starts_with("2,xxx") && raw.len() == MAX_RAW_BYTES,
            "{raw}"
        );
        assert_eq!(rows[2], csv(4, &["3", "ok"]));

        // The first row, and the last, with a final line break or without.
        for end in ["\n", ""] {
            let text = format!("id,note\n1,{big}\n2,ok\n3,{big}{end}");
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(rows.len(), 3);
            assert_eq!(broken(&rows[0]).0, 2);
            assert_eq!(rows[1], csv(3, &["2", "ok"]));
            assert_eq!(broken(&rows[2]).0, 4);
            assert!(broken(&rows[2]).1.starts_with("is 5.0 MB long; "));
        }

        // Several in a row, one of them a quoted cell, and blank lines between.
        let text = format!("id,note\n1,{big}\n\n2,\"{big}\"\n3,{big}\n\n\n4,ok\n");
        let rows = rows_of("users.csv", text.as_bytes());
        let lines: Vec<u64> = rows[..3].iter().map(|r| broken(r).0).collect();
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(rows[3], csv(8, &["4", "ok"]));
    }

    #[test]
    fn csv_record_over_limit_ends_where_its_quotes_say() {
        // The limit met in a quoted cell of lines, delimiters and escaped quotes; in a quoted
        // cell of delimiters closed and followed by text; in unquoted delimiters.
        let lines = "a,b\n\"\"c\"\"\n".repeat(200_000);
        let commas = ",".repeat(2_000_000);
        let text = format!(
            "id,note\n1,ok\n2,\"{lines}\"\n3,\"{commas}\"x,y\n4,{commas}\n5,\"two\nlines\"\n6,ok\n"
        );
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(rows.len(), 6, "{:?}", &rows[4..]);
        assert_eq!(rows[0], csv(2, &["1", "ok"]));
        let (line, message, raw) = broken(&rows[1]);
        assert_eq!(line, 3);
        assert_eq!(
            message,
            format!(
                "is 2.0 MB long, to line 400003 (a quoted cell holds its line breaks: is a \
                 quote left open?); {OVER}"
            )
        );
        assert!(raw.starts_with("2,\"a,b\n\"\"c\"\"\na,b\n"), "{raw}");
        assert_eq!(
            broken(&rows[2]),
            (
                400_004,
                &*format!("is 2.0 MB long; {OVER}"),
                &*format!("3,\"{}", &commas[..MAX_RAW_BYTES - 3])
            )
        );
        assert_eq!(broken(&rows[3]).0, 400_005);
        assert_eq!(rows[4], csv(400_006, &["5", "two\nlines"]));
        assert_eq!(rows[5], csv(400_008, &["6", "ok"]));
    }

    #[test]
    fn csv_record_over_limit_in_a_run_of_quotes() {
        let quotes = |n: usize| "\"".repeat(n);
        // The limit is checked as the parser asks for more input, at a fixed offset; the id's
        // length moves the record under it, so that it falls after an odd or even number of
        // the run's quotes.
        for id in ["1", "12"] {
            // An unquoted cell: each quote is kept, the line break ends it.
            let text = format!("id,note\n{id},a{}\n2,ok\n", quotes(3_000_000));
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(broken(&rows[0]).0, 2);
            assert_eq!(rows[1..], [csv(3, &["2", "ok"])]);
            // A quoted cell of escaped quotes, closed by the last: the same.
            let text = format!("id,note\n{id},\"{}\"\n2,ok\n", quotes(3_000_000));
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(broken(&rows[0]).0, 2);
            assert_eq!(rows[1..], [csv(3, &["2", "ok"])]);
            // The same, one quote fewer: still open, so the next line joins it.
            let text = format!("id,note\n{id},\"{}\n2,ok\"\n3,ok\n", quotes(3_000_000));
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(broken(&rows[0]).0, 2);
            assert!(broken(&rows[0]).1.contains("to line 3"), "{:?}", rows[0]);
            assert_eq!(rows[1..], [csv(4, &["3", "ok"])]);
            // A run of quotes to the end of the input: closed, or not.
            let text = format!("id,note\n1,ok\n{id},\"{}", quotes(3_000_001));
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(rows.len(), 2);
            assert_eq!(broken(&rows[1]).0, 3);
            let text = format!("id,note\n1,ok\n{id},\"{}", quotes(3_000_000));
            never_closed_on_line_3(text.as_bytes());
        }
    }

    #[test]
    fn csv_record_over_limit_of_quoted_cells() {
        // Cells of one line break each: the limit falls after a delimiter, an opening quote,
        // a line break or a closing quote, as the id's length moves the record under it.
        let cells = "\"\n\",".repeat(600_000);
        for id in ["1", "12", "123", "1234"] {
            let text = format!("id,note\n{id},{cells}\"end\"\n2,ok\n");
            let rows = rows_of("users.csv", text.as_bytes());
            assert_eq!(broken(&rows[0]).0, 2);
            assert!(
                broken(&rows[0]).1.contains("to line 600002"),
                "{:?}",
                rows[0]
            );
            assert_eq!(rows[1..], [csv(600_003, &["2", "ok"])]);
        }
    }

    /// Random bytes of the four kinds CSV tells apart: three records over the limit, each
    /// a quoted cell of lines up to just before where the reader meets the limit, then
    /// quotes (in runs, some long), delimiters and text, and line breaks from the limit on.
    fn soup(seed: u64) -> Vec<u8> {
        use rand::{RngExt, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(seed);
        let mut text = b"a\n".to_vec();
        let add = |rng: &mut StdRng, text: &mut Vec<u8>, len: usize, bytes: &[u8]| {
            let end = text.len() + len;
            while text.len() < end {
                let byte = bytes[rng.random_range(0..bytes.len())];
                let run = match byte {
                    b'"' if rng.random_bool(0.01) => rng.random_range(1..100_000),
                    b'"' => rng.random_range(1..4),
                    _ => 1,
                };
                text.extend(std::iter::repeat_n(byte, run));
            }
        };
        for _ in 0..3 {
            // From any state, `x"\n` ends the record (`x` leaves a cell quoted or not, `"`
            // then closes a quoted one or is kept in an unquoted one, and `\n` ends either).
            text.extend_from_slice(b"x\"\n\"");
            // The limit is met where the parser asks for more input after it: reads are of
            // the three bytes looked at for a BOM, then a buffer at a time.
            let start = text.len() - 1;
            let met = (start + MAX_ROW_BYTES - 3) / BUFFER_BYTES * BUFFER_BYTES + 3;
            let met = if met > start + MAX_ROW_BYTES {
                met
            } else {
                met + BUFFER_BYTES
            };
            // Up to there, no line break outside a quoted cell: the record goes on, into
            // any state at the limit; after it, they end the record soon, where that state
            // says.
            let lines = met - rng.random_range(1..200);
            while text.len() < lines {
                text.extend_from_slice(b"x,\n");
            }
            let cells = met.saturating_sub(text.len());
            add(&mut rng, &mut text, cells, b"xx,\"");
            add(&mut rng, &mut text, 2_000, b"xx,\n\"");
        }
        text.extend_from_slice(b"x\"\n");
        text
    }

    #[test]
    fn csv_records_over_limit_end_where_a_whole_parse_ends_them() {
        for seed in 0..8 {
            let text = soup(seed);
            // The csv crate reading the whole input, each record whole.
            let mut whole = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(&text[..]);
            let mut expected = Vec::new();
            let mut record = ByteRecord::new();
            let mut start = 0;
            while whole.read_byte_record(&mut record).unwrap() {
                let end = whole.position().byte();
                let newlines = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
                let line = whole.position().line() - newlines - 1;
                let fields: Vec<String> = record
                    .iter()
                    .map(|f| String::from_utf8(f.to_vec()).unwrap())
                    .collect();
                expected.push(if end - start > MAX_ROW_BYTES as u64 {
                    (line, None)
                } else if fields.len() != 1 {
                    (line, Some(vec!["has fields".to_string()]))
                } else {
                    (line, Some(fields))
                });
                start = end;
            }
            let rows: Vec<(u64, Option<Vec<String>>)> = rows_of("users.csv", &text)
                .into_iter()
                .map(|row| match row {
                    Got::Csv(line, fields) => (line, Some(fields)),
                    Got::Broken(line, message, ..) if message.starts_with("has ") => {
                        (line, Some(vec!["has fields".to_string()]))
                    }
                    Got::Broken(line, message, ..) => {
                        assert!(message.starts_with("is "), "{message}");
                        (line, None)
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            let too_long = expected
                .iter()
                .filter(|(_, fields)| fields.is_none())
                .count();
            eprintln!(
                "seed {seed}: {} records, {too_long} over the limit",
                expected.len()
            );
            assert!(too_long > 0, "seed {seed}");
            assert_eq!(rows.len() + 1, expected.len(), "seed {seed}");
            for (got, expected) in rows.iter().zip(&expected[1..]) {
                assert_eq!(got, expected, "seed {seed}");
            }
        }
    }

    #[test]
    fn csv_quote_never_closed_in_a_large_input_is_told_as_such() {
        let mut text = b"id,note\n1,ok\n2,\"open\n".to_vec();
        while text.len() < 3 * MAX_ROW_BYTES {
            text.extend_from_slice(b"3,filler row\n");
        }
        never_closed_on_line_3(&text);
    }

    #[test]
    fn csv_record_just_over_limit_and_just_under() {
        // Just over, ended within the parser's read-ahead: broken, and the next one read.
        let text = format!("id,note\n1,{}\n2,ok\n", "x".repeat(MAX_ROW_BYTES));
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(
            broken(&rows[0]),
            (
                2,
                &*format!("is 1.0 MB long; {OVER}"),
                &*format!("1,{}", "x".repeat(MAX_RAW_BYTES - 2))
            )
        );
        assert_eq!(rows[1], csv(3, &["2", "ok"]));
        // Just under: read.
        let text = format!("id,note\n1,{}\n2,ok\n", "x".repeat(MAX_ROW_BYTES - 10));
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], csv(3, &["2", "ok"]));
    }

    #[test]
    fn csv_blank_lines_over_limit_are_blank_lines() {
        let text = format!("id\n1\n{}2\n", "\n".repeat(3 * MAX_ROW_BYTES));
        let rows = rows_of("users.csv", text.as_bytes());
        assert_eq!(
            rows,
            [csv(2, &["1"]), csv(3 * MAX_ROW_BYTES as u64 + 3, &["2"])]
        );
    }

    #[test]
    fn csv_header_over_limit_is_an_error() {
        let text = format!("id,{}\n1,ok\n", "n".repeat(2_000_000));
        let (rows, error) = error_of("users.csv", text.as_bytes());
        assert!(rows.is_empty());
        assert!(
            error.ends_with(&format!("header row: is 2.0 MB long; {OVER}")),
            "{error}"
        );
    }

    #[test]
    fn csv_record_over_limit_is_not_held() {
        let text = format!("id,note\n1,{}\n2,ok\n", "x".repeat(20_000_000));
        let bytes: Box<dyn Read + Send> = Box::new(io::Cursor::new(text.into_bytes()));
        let mut rows = CsvRows::open(
            io::Cursor::new(Vec::new()).chain(bytes),
            "users.csv",
            false,
            b',',
            None,
            None,
        )
        .unwrap();
        let mut row = new_row();
        assert!(rows.read(&mut row, "users.csv", false).unwrap());
        assert_eq!(broken(&got(&row)).0, 2);
        assert!(rows.read(&mut row, "users.csv", false).unwrap());
        assert_eq!(got(&row), csv(3, &["2", "ok"]));
        // The parser was handed the header, the record up to the limit and one buffer more,
        // the probe and the next row.
        let handed = rows.rdr.get_ref().delivered;
        assert!(
            handed < (MAX_ROW_BYTES + 2 * BUFFER_BYTES) as u64,
            "{handed}"
        );
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
