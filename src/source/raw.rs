//! A broken CSV row's bytes for `_raw`, as they are in the file: read again from the file by
//! where the record was, so that pasting them back restores the row (its quotes, its
//! delimiter, its bytes before any decoding). Valid rows cost only their two offsets: nothing
//! is kept or copied until a row turns out broken. When the parser's bytes are not the file's
//! (gzip, `--encoding`, stdin or a pipe), the row is written back as CSV with the file's
//! delimiter instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use csv::ByteRecord;

use super::MAX_RAW_BYTES;
use super::bytes::BOM;

/// Where a record's bytes are in the file, terminator and any blank lines before it
/// included.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Span {
    pub(super) start: u64,
    pub(super) end: u64,
}

/// How a broken row's bytes are found again; cheap to clone onto the read-ahead thread.
#[derive(Clone)]
pub(super) struct RawBytes {
    /// The input opened again, and the length of its byte order mark, which the parser's
    /// offsets do not count; None when its bytes are not the parser's.
    file: Option<(Arc<File>, u64)>,
    delimiter: u8,
}

impl RawBytes {
    /// For an input whose bytes the parser reads as they are in the file at `path`, if
    /// given, or else written back with `delimiter`.
    pub(super) fn new(path: Option<&Path>, delimiter: u8) -> RawBytes {
        // If the file cannot be opened again, the row is written back as CSV: never an error.
        let file = path.and_then(|path| File::open(path).ok()).map(|file| {
            let mut head = [0; 3];
            let bom = file.read_at(&mut head, 0).is_ok_and(|n| head[..n] == *BOM);
            (Arc::new(file), if bom { 3 } else { 0 })
        });
        RawBytes { file, delimiter }
    }

    /// The bytes of the record at `span` (the parser's offsets) as they are in the file,
    /// without the blank lines before it and its line break, at most about `MAX_RAW_BYTES`;
    /// `record` written back as CSV if the file cannot give them.
    pub(super) fn of(&self, span: Span, record: &ByteRecord) -> Vec<u8> {
        self.file
            .as_ref()
            .and_then(|(file, bom)| {
                let span = Span {
                    start: span.start + bom,
                    end: span.end + bom,
                };
                from_file(file, span).ok()
            })
            .unwrap_or_else(|| csv_text(record, self.delimiter))
    }
}

/// Reads the record at `span` from `file`.
fn from_file(file: &File, span: Span) -> io::Result<Vec<u8>> {
    let mut at = span.start;
    let mut chunk = vec![0; MAX_RAW_BYTES + 2];
    loop {
        let want = chunk
            .len()
            .min(usize::try_from(span.end - at).unwrap_or(usize::MAX));
        let n = file.read_at(&mut chunk[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Blank lines the parser skipped before the record.
        let blank = chunk[..n]
            .iter()
            .take_while(|&&b| matches!(b, b'\r' | b'\n'))
            .count();
        at += blank as u64;
        if blank == n {
            continue;
        }
        if blank == 0 {
            chunk.truncate(n);
            break;
        }
    }
    // Its line break, if the record ends within what was read.
    if at + chunk.len() as u64 >= span.end {
        let kept = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
        let kept = kept.strip_suffix(b"\r").unwrap_or(kept);
        chunk.truncate(kept.len());
    }
    Ok(chunk)
}

/// A record written back as CSV text with `delimiter`, quoting only the cells that need it;
/// stops once long enough.
fn csv_text(record: &ByteRecord, delimiter: u8) -> Vec<u8> {
    let mut text = Vec::new();
    for (i, field) in record.iter().enumerate() {
        if text.len() > MAX_RAW_BYTES {
            break;
        }
        if i > 0 {
            text.push(delimiter);
        }
        if field
            .iter()
            .any(|&b| b == delimiter || matches!(b, b'"' | b'\n' | b'\r'))
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
