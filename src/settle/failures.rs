//! The failures file: one NDJSON line a record that was not accepted, private to its owner,
//! opened on the first failure so that a clean run leaves none.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The failures file of a run, opened when the first line is written.
pub struct FailuresFile {
    path: PathBuf,
    file: Option<File>,
    /// On resume, failures go after the earlier run's.
    append: bool,
}

impl FailuresFile {
    pub fn new(path: PathBuf, append: bool) -> FailuresFile {
        FailuresFile {
            path,
            file: None,
            append,
        }
    }

    /// Writes one line, in one write, so a crash never leaves half a line or loses one.
    pub fn write(&mut self, line: &Map<String, Value>) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open_private(&self.path, self.append)?),
        };
        let mut buf = serde_json::to_vec(line)?;
        buf.push(b'\n');
        file.write_all(&buf)?;
        Ok(())
    }

    /// Another handle on the file, if it is open: to sync it without the ledger's lock.
    pub fn handle(&self) -> Option<File> {
        self.file.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// The file, if anything was written to it.
    pub fn written(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.path.as_path())
    }
}

/// Creates (or appends to) a file only its owner can read: failures hold personal data.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Builds a failures-file line: the payload, plus `_error`.
pub fn failure_line(
    mut payload: Map<String, Value>,
    source: &str,
    line: u64,
    error: Map<String, Value>,
) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("source".into(), source.into());
    e.insert("line".into(), line.into());
    e.extend(error);
    payload.insert("_error".into(), Value::Object(e));
    payload
}
