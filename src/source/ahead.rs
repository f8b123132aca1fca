//! The read-ahead thread: a reader moved onto a thread of its own that hands over chunks of
//! rows (CSV records still unchecked as UTF-8), the chunks coming back to be read into again
//! so that the dry run's rows reuse their buffers.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use csv::ByteRecord;

use super::csv::{Checked, take_record, text_row};
use super::raw::{RawBytes, Span};
use super::{Reader, Row, Rows, SourceError};

/// Rows a read-ahead thread hands over at once, and how many such chunks it may be ahead: few
/// enough that memory stays flat, enough that neither thread waits on the other for long.
const AHEAD_ROWS: usize = 256;
const AHEAD_CHUNKS: usize = 4;

/// The receiving end of a read-ahead thread: chunks of rows read, then the error that ended
/// the input, if any; the sender closes at the end.
pub(super) struct Ahead {
    headers: Option<Vec<String>>,
    /// A broken CSV row's bytes, found again.
    raw: RawBytes,
    chunks: Receiver<Result<Vec<Parsed>, SourceError>>,
    /// Chunks handed back, so their rows' buffers are read into again.
    spent: SyncSender<Vec<Parsed>>,
    chunk: Vec<Parsed>,
    next: usize,
}

/// A row as the read-ahead thread hands it over. A CSV record's cells are checked as UTF-8 by
/// the receiving thread, which has the lighter load of the two.
enum Parsed {
    Csv {
        line: u64,
        span: Span,
        record: ByteRecord,
    },
    Row(Row),
}

impl Ahead {
    /// The CSV column names the reader had; None for NDJSON.
    pub(super) fn headers(&self) -> Option<&[String]> {
        self.headers.as_deref()
    }

    pub(super) fn read(&mut self, row: &mut Row) -> Result<bool, SourceError> {
        loop {
            if let Some(ahead) = self.chunk.get_mut(self.next) {
                self.next += 1;
                // The caller's row (or its record) goes back with the chunk, to be read into
                // again.
                match ahead {
                    Parsed::Row(ahead) => std::mem::swap(row, ahead),
                    Parsed::Csv { line, span, record } => {
                        let record = std::mem::replace(record, take_record(&mut row.data));
                        let headers = self.headers.as_deref().unwrap_or_default();
                        text_row(row, *line, *span, record, headers, &self.raw);
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
            span: Span::default(),
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
                Some(Checked::Fits { line, span }) => Parsed::Csv { line, span, record },
                Some(Checked::Broken(broken)) => Parsed::Row(broken),
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
        let raw = match &self.rows {
            Rows::Csv(csv) => csv.raw().clone(),
            // NDJSON hands over no CSV records, so this is never asked.
            _ => RawBytes::new(None, b','),
        };
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
                raw,
                chunks,
                spent,
                chunk: Vec::new(),
                next: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
