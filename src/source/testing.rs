//! Helpers for the source's tests: inputs written to temporary files and read whole (read
//! in place and read ahead, which must agree), and rows in a form easy to compare.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::Value;

use super::{Input, Row, RowData, SourceError};

/// Writes `bytes` to a file named `name` in a fresh temporary directory.
pub(super) fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

pub(super) fn new_row() -> Row {
    Row::default()
}

/// A row in a form that is easy to compare.
#[derive(Debug, PartialEq)]
pub(super) enum Got {
    Csv(u64, Vec<String>),
    Json(u64, Value),
    Broken(u64, String, Option<String>, String),
}

pub(super) fn got(row: &Row) -> Got {
    match &row.data {
        RowData::Csv(record) => Got::Csv(row.line, record.iter().map(str::to_owned).collect()),
        RowData::Json(object) => Got::Json(row.line, Value::Object(object.clone())),
        RowData::Broken {
            message,
            column,
            raw,
        } => Got::Broken(
            row.line,
            message.clone(),
            column.clone(),
            String::from_utf8_lossy(raw).into_owned(),
        ),
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

pub(super) fn rows_of(name: &str, bytes: &[u8]) -> Vec<Got> {
    let (_dir, path) = file(name, bytes);
    let (rows, error) = read_all(&path);
    assert!(error.is_none(), "unexpected error: {error:?}");
    rows
}

pub(super) fn error_of(name: &str, bytes: &[u8]) -> (Vec<Got>, String) {
    let (_dir, path) = file(name, bytes);
    let (rows, error) = read_all(&path);
    let error = error.expect("an error").to_string();
    assert!(error.starts_with(&path.display().to_string()), "{error}");
    (rows, error)
}

pub(super) fn csv(line: u64, fields: &[&str]) -> Got {
    Got::Csv(line, fields.iter().map(|f| f.to_string()).collect())
}

pub(super) fn json(line: u64, text: &str) -> Got {
    Got::Json(line, serde_json::from_str(text).unwrap())
}

pub(super) fn broken_message(row: &Got) -> (u64, &str) {
    match row {
        Got::Broken(line, message, _, _) => (*line, message),
        other => panic!("expected a broken row, got {other:?}"),
    }
}
