//! From a path to the bytes to parse: the checks before anything is sent (the file is there,
//! its format and gzip from its name), opening the file or stdin, gzip decoding, counting the
//! bytes read for the progress display, a UTF-8 BOM cut off, and gzip or UTF-16 bytes named
//! for what they are.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use super::{Format, Input, SourceError};

pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

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
                given_delimiter: None,
                encoding: None,
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
        // A pipe, a FIFO (`<(zcat ...)`, /dev/stdin) or a device is read once, like stdin:
        // opening it to look is already reading from it.
        let stream = !meta.is_file();
        if !stream {
            // Opening catches permission problems now rather than after other inputs were sent.
            File::open(path).map_err(open_error)?;
        }
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
            given_delimiter: None,
            encoding: None,
            size: (!stream).then_some(meta.len()),
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

    /// Whether the input can be read only once (stdin, a pipe, a device): it has no size,
    /// cannot be fingerprinted and cannot be resumed.
    pub fn is_stream(&self) -> bool {
        self.size.is_none()
    }

    /// Whether the input is a failures file of ours (its first line has an `_error` key), read
    /// ahead once; false for a stream, which cannot be read twice, and for a file that cannot
    /// be read (reading it for the run says why).
    pub fn is_failures_file(&self) -> bool {
        if self.format != Format::Ndjson || self.is_stream() {
            return false;
        }
        let Ok(file) = File::open(&self.path) else {
            return false;
        };
        let file: Box<dyn Read + Send> = match self.gzip {
            true => Box::new(MultiGzDecoder::new(file)),
            false => Box::new(file),
        };
        failures_file(file).is_ok_and(|(_, ours)| ours)
    }

    /// Opens the input's bytes, decoded and without a BOM; `consumed` counts raw bytes read
    /// from the file (for the ETA). `name` is the input's name.
    pub(super) fn bytes(
        &self,
        name: &str,
        consumed: Arc<AtomicU64>,
    ) -> Result<ByteSource, SourceError> {
        let file: Box<dyn Read + Send> = if self.is_stdin() {
            Box::new(io::stdin())
        } else {
            let file = File::open(&self.path).map_err(|e| SourceError::Open {
                path: name.to_string(),
                reason: os_reason(&e),
            })?;
            // Size 0 is what /proc and /sys files say whatever they hold: read them out.
            match self.size.filter(|&size| size > 0) {
                Some(size) => Box::new(AsOfStart {
                    file,
                    path: self.path.clone(),
                    size,
                    read: 0,
                }),
                None => Box::new(file),
            }
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
        // A failures file is ours, so UTF-8 whatever `--encoding` says: decoding it again would
        // turn "Zürich" into "ZÃ¼rich".
        let (decoded, ours) = match (self.format, self.encoding) {
            (Format::Ndjson, Some(_)) => {
                failures_file(decoded).map_err(|e| read_error(name, self.gzip, e, 0))?
            }
            _ => (decoded, false),
        };
        // Into UTF-8 before anything reads it, so rows, cells and line numbers are the same
        // as in a UTF-8 file; a byte order mark says which UTF-16 it is.
        let decoded: Box<dyn Read + Send> = match self.encoding.filter(|_| !ours) {
            Some(encoding) => Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding))
                    .bom_override(true)
                    .build(decoded),
            ),
            None => decoded,
        };
        let (bytes, head) = strip_bom(decoded).map_err(|e| read_error(name, self.gzip, e, 0))?;
        // Encodings that would otherwise read as "not valid UTF-8" at line 1, or as a header
        // full of NULs: text has none, so a NUL every other byte is UTF-16 without a byte
        // order mark, the zero high byte of an ASCII character second or first.
        const SAVE: &str = "or save it as UTF-8 (in Excel: CSV UTF-8)";
        let no_mark = |label: &str| {
            format!(
                "is UTF-16 text without a byte order mark (a NUL byte every other byte): pass \
                 --encoding {label}, {SAVE}"
            )
        };
        let unreadable = match head.as_slice() {
            [1..=255, 0, _] if self.encoding.is_none() => Some(no_mark("utf-16le")),
            [0, 1..=255, 0] if self.encoding.is_none() => Some(no_mark("utf-16be")),
            [0x1f, 0x8b, ..] => Some(
                "starts like a gzip file: name it .gz (or, on stdin, pipe it through gunzip)"
                    .to_string(),
            ),
            [0xff, 0xfe, ..] | [0xfe, 0xff, ..] => Some(format!(
                "is UTF-16 text: pass --encoding utf-16le (its byte order mark tells which), {SAVE}"
            )),
            _ => None,
        };
        if let Some(message) = unreadable {
            return Err(SourceError::Input {
                path: name.to_string(),
                message,
            });
        }
        Ok(bytes)
    }
}

/// Whether an NDJSON input is a failures file of ours: its first line (read ahead, then put
/// back) is an object with an `_error` key, as every line we write is. A line in another
/// encoding is not JSON, as JSON is UTF-8, so this cannot take such a file for ours.
fn failures_file(mut inner: Box<dyn Read + Send>) -> io::Result<(Box<dyn Read + Send>, bool)> {
    /// Just the key that marks our lines; the rest of the line is skipped unread.
    #[derive(serde::Deserialize)]
    struct Ours {
        #[serde(rename = "_error")]
        _error: serde::de::IgnoredAny,
    }
    let mut head = Vec::new();
    let mut chunk = [0u8; 8192];
    // Up to the end of the first line that is not blank; a longer line is not one of ours.
    let end = loop {
        let from = head.len();
        let n = match inner.read(&mut chunk) {
            Ok(0) => break head.len(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        let text = head.iter().position(|b| !b.is_ascii_whitespace());
        let newline = text.and_then(|at| memchr::memchr(b'\n', &head[at.max(from)..]));
        if let (Some(at), Some(newline)) = (text, newline) {
            break at.max(from) + newline;
        }
        if head.len() > super::MAX_ROW_BYTES {
            break 0;
        }
    };
    let ours = serde_json::from_slice::<Ours>(&head[..end]).is_ok();
    Ok((Box::new(io::Cursor::new(head).chain(inner)), ours))
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
pub(super) fn read_error(name: &str, gzip: bool, e: io::Error, line: u64) -> SourceError {
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

/// A file read as it was when the run began: at most the size it had then, and an error at
/// the end if its size changed meanwhile. An export still being written would otherwise be
/// imported with its last row cut off part-way (and the rest missing), as if complete.
struct AsOfStart {
    file: File,
    path: PathBuf,
    /// The size when the input was checked.
    size: u64,
    read: u64,
}

impl Read for AsOfStart {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.size - self.read;
        if left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self.file.read(&mut buf[..want])?;
            self.read += n as u64;
            if n > 0 {
                return Ok(n);
            }
        }
        // The end, at the size it had or before (it shrank): an error if that changed,
        // before the parser takes the end for the end of its last row.
        let now = std::fs::metadata(&self.path).map_or(self.read, |m| m.len());
        if now != self.size || self.read != self.size {
            return Err(io::Error::other(format!(
                "it changed while it was read ({} bytes when the run began, {now} now): it was \
                 still being written, so its last rows may be missing or cut off; import it \
                 again once it is complete",
                self.size
            )));
        }
        Ok(0)
    }
}

/// The decoded bytes, without a leading UTF-8 BOM.
pub(super) type ByteSource = io::Chain<io::Cursor<Vec<u8>>, Box<dyn Read + Send>>;

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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::testing::*;
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
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
    fn os_reasons() {
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(os_reason(&e), "input/output error");
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(os_reason(&e), "permission denied");
    }

    #[test]
    fn a_file_that_changes_while_it_is_read_ends_in_an_error_before_its_last_row() {
        let first = "id,plan\n1,pro\n2,premium_pl";
        for (change, says) in [("an\n3,pro\n", "changed while it was read"), ("", "")] {
            let (_dir, path) = file("users.csv", first.as_bytes());
            let input = Input::check(&path, None).unwrap();
            let mut reader = input.open(Arc::default()).unwrap();
            let mut rows = Vec::new();
            let mut row = new_row();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(change.as_bytes())
                .unwrap();
            let end = loop {
                match reader.read(&mut row) {
                    Ok(true) => rows.push(got(&row)),
                    Ok(false) => break String::new(),
                    Err(e) => break e.to_string(),
                }
            };
            assert!(end.contains(says), "{end}");
            if change.is_empty() {
                // Unchanged: its last row, without a line end, is a row like any other.
                assert_eq!(rows, [csv(2, &["1", "pro"]), csv(3, &["2", "premium_pl"])]);
            } else {
                // The row cut off part-way never comes out as a row.
                assert_eq!(rows, [csv(2, &["1", "pro"])], "{end}");
            }
        }
    }
}
