//! Checkpoints: how far a run got, written durably while it runs, so `--resume` carries on
//! without re-sending what was settled and refuses an input that changed since.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::report::Tally;
use crate::settle::{Position, Span, open_private};
use crate::source::Input;

/// What identifies an input's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub path: PathBuf,
    pub size: u64,
    pub modified_ns: u128,
    /// Of every byte: a file rewritten in place with the same size and time (rows sorted
    /// anew, say) would make a resume skip rows it never sent. CRC-32 reads a file at
    /// several GB/s, so a 2-million-row export costs a fraction of a second.
    pub crc32: u32,
}

impl Fingerprint {
    pub fn of(input: &Input) -> std::io::Result<Fingerprint> {
        let meta = fs::metadata(&input.path)?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut file = File::open(&input.path)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Fingerprint {
            path: input.path.clone(),
            size: meta.len(),
            modified_ns,
            crc32: hasher.finalize(),
        })
    }
}

/// The checkpoint file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub inputs: Vec<Fingerprint>,
    /// Where the records went (see `Target::describe`); empty in older checkpoints.
    #[serde(default)]
    pub target: String,
    /// Every record before this position is settled.
    pub position: Position,
    /// The flags that decided what each row became (`Config::mapping_flags`): a resume
    /// with others would turn the rest of the input into other operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapping: Vec<String>,
    /// What was settled when it was saved (`position` and `ahead`): a resume counts on
    /// from it.
    #[serde(default)]
    pub settled: Tally,
    /// The length of the failures file's lines for those records: a resume cuts what
    /// follows (lines of records it reads again).
    #[serde(default)]
    pub failures_bytes: u64,
    /// Records past `position` settled out of order (while an earlier one waited): a resume
    /// reads past them too, so none is sent or written to the failures file twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ahead: Vec<Span>,
}

/// 2: the whole content is hashed (1 hashed its first 64 KiB).
const VERSION: u32 = 2;

/// `<stem>.checkpoint.json` in the current directory, beside the default failures file.
pub fn default_path(failures: &Path) -> PathBuf {
    let name = failures
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".ndjson")
        .map(|s| s.replace(".failures", ""))
        .unwrap_or(name);
    failures.with_file_name(format!("{stem}.checkpoint.json"))
}

/// Problems with `--resume`. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("--resume: there is no checkpoint at {0}: nothing to resume (run without --resume)")]
    Missing(PathBuf),
    #[error("--resume: cannot read the checkpoint {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error(
        "--resume: the checkpoint {path} was written by another version of cio-import (its \
         format is {version}, this one reads {VERSION}); run without --resume to start over"
    )]
    OtherVersion { path: PathBuf, version: u32 },
    #[error(
        "--resume: {input} changed since the checkpoint ({what}); resuming would skip the wrong \
         records. Run without --resume to start over (records already sent are sent again; \
         identifies are idempotent and events keep their ids)"
    )]
    Changed { input: String, what: &'static str },
    #[error(
        "--resume: the checkpoint {path} was made for other inputs ({theirs}); give the same inputs in the same order"
    )]
    OtherInputs { path: PathBuf, theirs: String },
    #[error(
        "--resume: the checkpoint {path} is of a run with {theirs}, and this one has {ours}: the \
         rest of the input would become other operations. Resume with the same flags, or run \
         without --resume to start over"
    )]
    OtherMapping {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
    #[error(
        "--resume: the checkpoint {path} is of a run into {theirs}, not {ours}: the records it \
         counts as settled were not sent here. Run without --resume to import everything here"
    )]
    OtherTarget {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
}

impl Checkpoint {
    /// A checkpoint at the start of `inputs`, for a run into `target`.
    pub fn new(
        inputs: &[Input],
        target: String,
        mapping: Vec<String>,
    ) -> std::io::Result<Checkpoint> {
        Ok(Checkpoint {
            version: VERSION,
            inputs: inputs
                .iter()
                .map(Fingerprint::of)
                .collect::<Result<_, _>>()?,
            target,
            mapping,
            settled: Tally::default(),
            failures_bytes: 0,
            position: Position {
                input: 0,
                records: 0,
            },
            ahead: Vec::new(),
        })
    }

    /// Moves the checkpoint to `position`, with `ahead` settled past it. Spans it held
    /// already stay (the reader may not have reached them again yet) unless now behind.
    /// Returns whether anything changed.
    pub fn advance(&mut self, position: Position, ahead: Vec<Span>) -> bool {
        let mut spans: Vec<Span> = self
            .ahead
            .iter()
            .copied()
            .chain(ahead)
            .filter_map(|mut span| {
                if span.input == position.input {
                    span.from = span.from.max(position.records);
                }
                (span.input > position.input
                    || (span.input == position.input && span.from < span.to))
                    .then_some(span)
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if last.input == span.input && span.from <= last.to => {
                    last.to = last.to.max(span.to);
                }
                _ => merged.push(span),
            }
        }
        let moved = position != self.position || merged != self.ahead;
        self.position = position;
        self.ahead = merged;
        moved
    }

    /// Loads the checkpoint at `path` and checks it was made for exactly these inputs, into
    /// the same target, with the same mapping flags.
    pub fn resume(
        path: &Path,
        inputs: &[Input],
        target: &str,
        mapping: &[String],
    ) -> Result<Checkpoint, ResumeError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ResumeError::Missing(path.to_owned()));
            }
            Err(e) => {
                return Err(ResumeError::Unreadable {
                    path: path.to_owned(),
                    why: e.to_string(),
                });
            }
        };
        let unreadable = |e: serde_json::Error| ResumeError::Unreadable {
            path: path.to_owned(),
            why: e.to_string(),
        };
        // The version first: another version's fields would read as a broken file.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let version = serde_json::from_str::<Versioned>(&text)
            .map_err(unreadable)?
            .version;
        if version != VERSION {
            return Err(ResumeError::OtherVersion {
                path: path.to_owned(),
                version,
            });
        }
        let saved: Checkpoint = serde_json::from_str(&text).map_err(unreadable)?;
        let other = || ResumeError::OtherInputs {
            path: path.to_owned(),
            theirs: saved
                .inputs
                .iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        if saved.inputs.len() != inputs.len() {
            return Err(other());
        }
        if !saved.target.is_empty() && saved.target != target {
            return Err(ResumeError::OtherTarget {
                path: path.to_owned(),
                theirs: saved.target,
                ours: target.to_owned(),
            });
        }
        if saved.mapping != mapping {
            let said = |words: &[String]| match words {
                [] => "no mapping flags".to_owned(),
                _ => words.join(" "),
            };
            return Err(ResumeError::OtherMapping {
                path: path.to_owned(),
                theirs: said(&saved.mapping),
                ours: said(mapping),
            });
        }
        for (was, input) in saved.inputs.iter().zip(inputs) {
            if was.path != input.path {
                return Err(other());
            }
            let now = Fingerprint::of(input).map_err(|e| ResumeError::Unreadable {
                path: input.path.clone(),
                why: e.to_string(),
            })?;
            let what = if now.size != was.size {
                Some("its size")
            } else if now.modified_ns != was.modified_ns {
                Some("its modification time")
            } else if now.crc32 != was.crc32 {
                Some("its content")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(ResumeError::Changed {
                    input: input.name(),
                    what,
                });
            }
        }
        Ok(saved)
    }

    /// Records to skip in input `i` on resume.
    pub fn skip(&self, i: usize) -> Skip {
        use std::cmp::Ordering::*;
        let first = match i.cmp(&self.position.input) {
            Less => return Skip::All,
            Equal => self.position.records,
            Greater => 0,
        };
        let later = self
            .ahead
            .iter()
            .filter(|s| s.input == i)
            .map(|s| s.from..s.to)
            .collect();
        Skip::Some { first, later }
    }

    /// Writes the checkpoint durably: a temporary file, fsync, then rename over the old one,
    /// so a crash at any moment leaves either the old checkpoint or the new one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        // What is there already (a crash's leftover, or a link planted to make the run
        // write elsewhere) goes first: the file is made anew.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        {
            let mut f = open_private(&tmp, false)?;
            f.write_all(&serde_json::to_vec_pretty(self)?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// How much of an input a resume skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A whole input settled by the earlier run.
    All,
    /// Its first records, and later ones settled out of order (record numbers, ascending).
    Some { first: u64, later: Vec<Range<u64>> },
}

impl Skip {
    /// Nothing to skip.
    pub const NONE: Skip = Skip::Some {
        first: 0,
        later: Vec::new(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;

    const TARGET: &str = "the sandbox";

    fn input(path: &Path) -> Input {
        Input::check(path, Some(Format::Csv)).unwrap()
    }

    #[test]
    fn saved_checkpoint_resumes_and_tells_what_to_skip() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        fs::write(&a, "id\n1\n2\n").unwrap();
        fs::write(&b, "id\n3\n").unwrap();
        let inputs = [input(&a), input(&b)];
        let mut cp = Checkpoint::new(&inputs, TARGET.into(), Vec::new()).unwrap();
        cp.position = Position {
            input: 1,
            records: 1,
        };
        let path = dir.path().join("x.checkpoint.json");
        cp.save(&path).unwrap();
        let back = Checkpoint::resume(&path, &inputs, TARGET, &[]).unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.skip(0), Skip::All);
        assert_eq!(
            back.skip(1),
            Skip::Some {
                first: 1,
                later: Vec::new()
            }
        );
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn records_settled_ahead_are_kept_merged_and_skipped_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        fs::write(&a, "id\n1\n").unwrap();
        fs::write(&b, "id\n2\n").unwrap();
        let inputs = [input(&a), input(&b)];
        let mut cp = Checkpoint::new(&inputs, TARGET.into(), Vec::new()).unwrap();
        let at = |input, records| Position { input, records };
        let span = |input, from, to| Span { input, from, to };
        assert!(cp.advance(at(0, 5), vec![span(0, 7, 9), span(1, 0, 2)]));
        assert!(!cp.advance(at(0, 5), Vec::new()), "nothing new");
        // The ledger of a resumed run does not know the earlier spans until it reads them.
        cp.advance(at(0, 8), vec![span(0, 9, 12)]);
        assert_eq!(cp.ahead, [span(0, 8, 12), span(1, 0, 2)]);
        cp.advance(at(1, 1), vec![span(1, 4, 6)]);
        assert_eq!(cp.ahead, [span(1, 1, 2), span(1, 4, 6)]);

        let path = dir.path().join("x.checkpoint.json");
        cp.save(&path).unwrap();
        let back = Checkpoint::resume(&path, &inputs, TARGET, &[]).unwrap();
        assert_eq!(back.skip(0), Skip::All);
        assert_eq!(
            back.skip(1),
            Skip::Some {
                first: 1,
                later: vec![1..2, 4..6]
            }
        );
    }

    #[test]
    fn a_changed_input_or_other_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        fs::write(&a, "id\n1\n2\n").unwrap();
        let path = dir.path().join("x.checkpoint.json");
        Checkpoint::new(&[input(&a)], TARGET.into(), Vec::new())
            .unwrap()
            .save(&path)
            .unwrap();

        fs::write(&a, "id\n1\n2\n3\n").unwrap();
        let err = Checkpoint::resume(&path, &[input(&a)], TARGET, &[]).unwrap_err();
        assert!(
            err.to_string().contains("changed since the checkpoint"),
            "{err}"
        );

        let b = dir.path().join("b.csv");
        fs::write(&b, "id\n1\n").unwrap();
        let err = Checkpoint::resume(&path, &[input(&b)], TARGET, &[]).unwrap_err();
        assert!(matches!(err, ResumeError::OtherInputs { .. }), "{err}");

        let err = Checkpoint::resume(&dir.path().join("none.json"), &[input(&a)], TARGET, &[])
            .unwrap_err();
        assert!(matches!(err, ResumeError::Missing(_)));
    }

    #[test]
    fn a_checkpoint_of_a_run_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        fs::write(&a, "id\n1\n").unwrap();
        let path = dir.path().join("x.checkpoint.json");
        Checkpoint::new(&[input(&a)], TARGET.into(), Vec::new())
            .unwrap()
            .save(&path)
            .unwrap();
        let real = "workspace abc (us)";
        let err = Checkpoint::resume(&path, &[input(&a)], real, &[]).unwrap_err();
        assert!(matches!(err, ResumeError::OtherTarget { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is of a run into the sandbox, not workspace abc"),
            "{err}"
        );
    }

    #[test]
    fn default_path_sits_beside_the_failures_file() {
        assert_eq!(
            default_path(Path::new("users.failures.ndjson")),
            PathBuf::from("users.checkpoint.json")
        );
        assert_eq!(
            default_path(Path::new("out/users.failures-2.ndjson")),
            PathBuf::from("out/users-2.checkpoint.json")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temporary_file_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("users.csv");
        fs::write(&a, "id\n1\n2\n").unwrap();
        let path = dir.path().join("users.checkpoint.json");
        std::os::unix::fs::symlink(&a, path.with_extension("json.tmp")).unwrap();
        let cp = Checkpoint::new(&[input(&a)], TARGET.into(), Vec::new()).unwrap();
        cp.save(&path).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "id\n1\n2\n");
        assert_eq!(
            Checkpoint::resume(&path, &[input(&a)], TARGET, &[]).unwrap(),
            cp
        );
    }

    #[test]
    fn a_resume_with_other_mapping_flags_is_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        fs::write(&a, "id\n1\n").unwrap();
        let path = dir.path().join("cp.json");
        let delete = vec!["--action".to_owned(), "delete".to_owned()];
        Checkpoint::new(&[input(&a)], TARGET.into(), delete.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        let err = Checkpoint::resume(&path, &[input(&a)], TARGET, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("is of a run with --action delete, and this one has no mapping flags"),
            "{err}"
        );
        assert!(Checkpoint::resume(&path, &[input(&a)], TARGET, &delete).is_ok());
    }

    #[test]
    fn a_change_anywhere_in_an_input_is_refused_and_another_version_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        // Past the first 64 KiB, two rows swap places: same size, same time.
        let rows: Vec<String> = (0..10_000).map(|i| format!("{i:08}\n")).collect();
        fs::write(&a, format!("id\n{}", rows.concat())).unwrap();
        let when = fs::metadata(&a).unwrap().modified().unwrap();
        let path = dir.path().join("cp.json");
        let cp = Checkpoint::new(&[input(&a)], TARGET.into(), Vec::new()).unwrap();
        cp.save(&path).unwrap();
        let mut swapped = rows.clone();
        swapped.swap(9_000, 9_001);
        fs::write(&a, format!("id\n{}", swapped.concat())).unwrap();
        File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let err = Checkpoint::resume(&path, &[input(&a)], TARGET, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("changed since the checkpoint (its content)"),
            "{err}"
        );

        let old = fs::read_to_string(&path)
            .unwrap()
            .replace("\"version\": 2", "\"version\": 1");
        fs::write(&path, old).unwrap();
        let err = Checkpoint::resume(&path, &[input(&a)], TARGET, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("another version of cio-import (its format is 1"),
            "{err}"
        );
    }
}
