//! Inputs: opens files, gzip and stdin, and reads CSV or NDJSON as a stream of rows.
//!
//! STUB: the interface below is fixed; the bodies are being written on branch `source`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::{Map, Value};

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
    /// Size on disk (compressed size for gzip); None for stdin.
    pub size: Option<u64>,
}

/// Problems with an input as a whole. Each names the input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
}

/// One row as read, before mapping.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line number where the row starts.
    pub line: u64,
    pub data: RowData,
}

#[derive(Debug, Clone)]
pub enum RowData {
    /// A CSV record with exactly as many fields as the header.
    Csv(csv::ByteRecord),
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
    pub fn check(_path: &Path, _format: Option<Format>) -> Result<Input, SourceError> {
        todo!()
    }

    /// The name used in messages and the failures file: the path, or `stdin`.
    pub fn name(&self) -> String {
        todo!()
    }

    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Opens the input; `consumed` counts raw bytes read from the file (for the ETA).
    pub fn open(&self, _consumed: Arc<AtomicU64>) -> Result<Reader, SourceError> {
        todo!()
    }
}

/// Reads rows from one input.
pub struct Reader {}

impl Reader {
    /// CSV column names (checked: none empty, none repeated); None for NDJSON.
    pub fn headers(&self) -> Option<&[String]> {
        todo!()
    }

    /// Reads the next row into `row`; Ok(false) at the end of the input.
    pub fn read(&mut self, _row: &mut Row) -> Result<bool, SourceError> {
        todo!()
    }
}
