//! The failures file: one NDJSON line a record that was not accepted, private to its owner,
//! opened on the first failure so that a clean run leaves none.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The failures file of a run, opened when the first line is written.
pub struct FailuresFile {
    path: PathBuf,
    file: Option<File>,
    /// On resume, failures go after the earlier run's.
    append: bool,
    /// The bytes of whole lines in the file: what a checkpoint counts, and what a write
    /// that fails part-way is cut back to.
    whole: u64,
}

impl FailuresFile {
    /// The run's failures file; on resume (`append`) it holds the earlier part's lines,
    /// already cut back to what the checkpoint counts (see [`cut_to`]).
    pub fn new(path: PathBuf, append: bool) -> FailuresFile {
        let whole = match append {
            true => std::fs::metadata(&path).map_or(0, |m| m.len()),
            false => 0,
        };
        FailuresFile {
            path,
            file: None,
            append,
            whole,
        }
    }

    /// Writes one line, in one write. A write that fails part-way (a full disk, a size
    /// limit) is cut off again, so the file only ever holds whole lines.
    pub fn write(&mut self, line: &Map<String, Value>) -> io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open_private(&self.path, self.append)?),
        };
        let mut buf = serde_json::to_vec(line)?;
        buf.push(b'\n');
        if let Err(e) = file.write_all(&buf) {
            let _ = file.set_len(self.whole);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", self.path.display()),
            ));
        }
        self.whole += buf.len() as u64;
        Ok(())
    }

    /// The bytes of whole lines written so far (on resume, the earlier part's included).
    pub fn bytes(&self) -> u64 {
        self.whole
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

/// Cuts the failures file at `path` back to `len` bytes, what the checkpoint a resume
/// starts from counts, and returns how many bytes went: lines written after that
/// checkpoint (and a line torn by a crash) are of records the resume reads again, which
/// would otherwise be in the file twice, or unreadable with the next line appended to it.
pub fn cut_to(path: &Path, len: u64) -> io::Result<u64> {
    let cannot =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot cut {} back: {e}", path.display()));
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(cannot(e)),
    };
    let now = file.metadata().map_err(cannot)?.len();
    if now > len {
        file.set_len(len).map_err(cannot)?;
    }
    Ok(now.saturating_sub(len))
}

/// Opens a file only its owner can read, to write it anew or to append to it: failures
/// and checkpoints hold personal data. A symbolic link is never followed (a link planted
/// at the path would make the run write wherever it points, an input included), anything
/// but a regular file is refused, and a file others could read is made private.
pub fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let cannot = |why: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot write {}: {why}{e}", path.display()),
        )
    };
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        // Read too: a torn last line is looked for before appending.
        o.append(true).read(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            let why = "it is a symbolic link, which cio-import does not write through \
                       (remove the link or choose another path): ";
            return cannot(why, e);
        }
        cannot("", e)
    })?;
    let meta = file.metadata().map_err(|e| cannot("", e))?;
    if !meta.is_file() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file");
        return Err(cannot("", e));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| cannot("cannot make it private: ", e))?;
        }
    }
    Ok(file)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> Map<String, Value> {
        failure_line(Map::new(), "in.csv", n, Map::new())
    }

    #[test]
    fn a_resume_cuts_what_the_checkpoint_does_not_count_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.ndjson");
        assert_eq!(cut_to(&path, 0).unwrap(), 0, "no file: nothing to cut");
        // Two lines the checkpoint counts, then one written after it and a torn one.
        let counted = "{\"a\":1}\n{\"b\":2}\n";
        std::fs::write(&path, format!("{counted}{{\"c\":3}}\n{{\"_error\":{{\"li")).unwrap();
        let len = counted.len() as u64;
        assert_eq!(cut_to(&path, len).unwrap(), 22);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), counted);
        assert_eq!(cut_to(&path, len).unwrap(), 0, "a second cut finds nothing");
        let mut f = FailuresFile::new(path.clone(), true);
        assert_eq!(f.bytes(), len);
        f.write(&line(3)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(f.bytes(), text.len() as u64);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines
                .iter()
                .all(|l| serde_json::from_str::<Value>(l).is_ok())
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let planted = dir.path().join("f.ndjson");
        std::os::unix::fs::symlink(&input, &planted).unwrap();
        let dangling = dir.path().join("g.ndjson");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &dangling).unwrap();
        for (path, append) in [(&planted, false), (&planted, true), (&dangling, false)] {
            let err = FailuresFile::new(path.clone(), append)
                .write(&line(1))
                .unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "id\n1\n");
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[cfg(unix)]
    #[test]
    fn appending_makes_a_readable_file_private_and_refuses_what_is_not_a_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.ndjson");
        std::fs::write(&path, "{}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        FailuresFile::new(path.clone(), true)
            .write(&line(1))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let err = open_private(dir.path(), true).unwrap_err();
        assert!(err.to_string().starts_with("cannot write "), "{err}");
    }
}
