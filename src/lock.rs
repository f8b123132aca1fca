//! One run at a time over the same files: an exclusive lock, held for the whole run, on a
//! file beside the failures file (whose name the checkpoint's is made from). Two runs in one
//! folder would otherwise rename each other's live failures file and fight over the
//! checkpoint.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The lock; it is released, and its file removed, when dropped (a crash releases it too:
/// the file left behind is locked again by the next run).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    _file: File,
}

/// `<failures stem>.lock` beside the failures file: `users.failures.ndjson` is locked by
/// `users.failures.lock`.
pub fn lock_path(failures: &Path) -> PathBuf {
    failures.with_extension("lock")
}

impl RunLock {
    /// Takes the lock for the run whose failures file is `failures`, or says which process
    /// holds it.
    pub fn take(failures: &Path) -> Result<RunLock, String> {
        let path = lock_path(failures);
        let cannot = |e: std::io::Error| format!("cannot lock {}: {e}", path.display());
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(cannot)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    let who = match pid.trim() {
                        "" => "another cio-import".to_owned(),
                        pid => format!("another cio-import (process {pid})"),
                    };
                    return Err(format!(
                        "{who} is running with {} and its checkpoint (locked by {}); wait for \
                         it to end, or give this run its own --failures and --checkpoint",
                        failures.display(),
                        path.display()
                    ));
                }
                Err(TryLockError::Error(e)) => return Err(cannot(e)),
            }
            // The run that held it may have removed the file after we opened it: then this
            // lock is on a file nobody else will open, and the lock is taken again.
            if !same_file(&file, &path) {
                continue;
            }
            // A file of another program's at that name (`--failures Gemfile.ndjson` beside
            // Gemfile.lock) would be emptied, then removed; a lock of ours holds a pid or
            // nothing.
            let mut held = String::new();
            let ours = file.read_to_string(&mut held).is_ok()
                && held.trim().bytes().all(|b| b.is_ascii_digit());
            if !ours {
                return Err(format!(
                    "--failures {}: the run locks it with {}, which is there already and is \
                     not a lock of cio-import's; give --failures another name",
                    failures.display(),
                    path.display()
                ));
            }
            // From the start: the read above left the offset past a crashed run's pid.
            file.set_len(0)
                .and_then(|()| file.rewind())
                .map_err(cannot)?;
            write!(file, "{}", std::process::id()).map_err(cannot)?;
            return Ok(RunLock { path, _file: file });
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked, so a run waiting to open it finds a fresh file.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_over_the_same_files_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let failures = dir.path().join("users.failures.ndjson");
        let first = RunLock::take(&failures).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock_path(&failures)).unwrap(),
            std::process::id().to_string()
        );
        let err = RunLock::take(&failures).unwrap_err();
        assert!(
            err.contains(&format!("(process {})", std::process::id())),
            "{err}"
        );
        assert!(err.contains("users.failures.lock"), "{err}");
        drop(first);
        assert!(!lock_path(&failures).exists());
        let _again = RunLock::take(&failures).unwrap();
        // Another run's files are not locked by this one.
        RunLock::take(&dir.path().join("other.failures.ndjson")).unwrap();
    }

    #[test]
    fn a_file_of_another_programs_at_the_locks_name_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let failures = dir.path().join("Gemfile.ndjson");
        let theirs = "GEM\n  remote: https://rubygems.org/\n";
        std::fs::write(lock_path(&failures), theirs).unwrap();
        let err = RunLock::take(&failures).unwrap_err();
        assert!(err.contains("is not a lock of cio-import's"), "{err}");
        assert_eq!(
            std::fs::read_to_string(lock_path(&failures)).unwrap(),
            theirs
        );
        // One a crash left behind is taken.
        std::fs::write(lock_path(&failures), "4242").unwrap();
        let taken = RunLock::take(&failures).unwrap();
        // Holding this run's pid alone: a crash of this run leaves a lock that is taken too.
        assert_eq!(
            std::fs::read_to_string(lock_path(&failures)).unwrap(),
            std::process::id().to_string()
        );
        drop(taken);
        assert!(!lock_path(&failures).exists());
    }
}
