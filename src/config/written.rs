//! The files a run writes (failures, checkpoint, state, summary), checked before it starts:
//! each in a folder that exists, none an input or another's file, and what the run replaces
//! or removes a regular file.

use std::path::{Path, PathBuf};

use super::{ConfigError, bad};
use crate::source::Input;

/// A file the run writes, named by its flag.
pub(super) struct Written<'a> {
    pub flag: &'static str,
    pub path: &'a Path,
    /// The run replaces, renames or removes it, not only writes it.
    pub replaced: bool,
}

/// Found now, not at the first failure after an hour of sending.
pub(super) fn check_written(inputs: &[Input], written: &[Written]) -> Result<(), ConfigError> {
    for (
        i,
        Written {
            flag,
            path,
            replaced,
        },
    ) in written.iter().enumerate()
    {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(folder) = folder.filter(|f| !f.is_dir()) {
            return Err(bad(format!(
                "{flag} {}: the folder {} does not exist; create it first",
                path.display(),
                folder.display()
            )));
        }
        if inputs.iter().any(|input| same_file(&input.path, path)) {
            return Err(bad(format!(
                "{flag} {} is also an input: the run writes it, so it must be another file",
                path.display()
            )));
        }
        if let Some(other) = written[..i].iter().find(|w| same_file(w.path, path)) {
            return Err(bad(format!(
                "{} and {flag} name the same file ({}); give each its own",
                other.flag,
                path.display()
            )));
        }
        // Run as root, setting aside an empty "failures file" at /dev/null deleted the device
        // and left a regular file in its place, which every later reader of /dev/null read.
        if let Some(kind) = replaced.then(|| not_a_file(path)).flatten() {
            let advice = match *flag {
                "--failures" => {
                    "; every record not accepted is written to it, to be replayed: name a \
                     file, and delete it after the run if you want none"
                }
                _ => "; name a file",
            };
            return Err(bad(format!(
                "{flag} {} is {kind}, not a regular file: the run replaces and removes the file \
                 there{advice}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// What is at `path` when it is there and not a regular file: a link is not followed, as
/// the run never writes through one.
fn not_a_file(path: &Path) -> Option<&'static str> {
    let kind = std::fs::symlink_metadata(path).ok()?.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_symlink() {
        return Some("a symbolic link");
    }
    if kind.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_block_device() {
            return Some("a device");
        }
        if kind.is_fifo() {
            return Some("a named pipe");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("something else")
}

pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The path with links and `.`/`..` resolved; for a file not made yet, its folder's.
fn resolved(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok().or_else(|| {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        let folder = folder.unwrap_or(Path::new(".")).canonicalize().ok()?;
        Some(folder.join(path.file_name()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_or_nothing_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.ndjson");
        assert_eq!(not_a_file(&file), None, "not made yet");
        std::fs::write(&file, "").unwrap();
        assert_eq!(not_a_file(&file), None);
        assert_eq!(not_a_file(dir.path()), Some("a folder"));
        #[cfg(unix)]
        {
            assert_eq!(not_a_file(Path::new("/dev/null")), Some("a device"));
            let link = dir.path().join("link.ndjson");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert_eq!(not_a_file(&link), Some("a symbolic link"));
        }
    }
}
