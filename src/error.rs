//! The fatal errors: what can end the process early, each with the message it prints and
//! the exit code it ends with.

use std::io;
use std::path::PathBuf;

use crate::exit::{Exit, Signal};

/// What ends the process early. Each variant says all of it (main prints it after
/// `cio-import: error: `), and [`Fatal::exit`] is the one place that gives each its code.
/// A leaf: the stages' own errors come in as their messages, so that any module may end a
/// run without this one knowing it.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The command line is wrong, a file or column it names not there included (an input,
    /// `--id-column uid`, `--type agee=number`).
    #[error("{0}")]
    Usage(String),
    /// Something the command line names cannot be used: a key file, a header that cannot be
    /// mapped, the checkpoint to resume from, the HTTP client's settings.
    #[error("{0}")]
    Setup(String),
    /// An input cannot be opened, or broke off part-way.
    #[error("{0}")]
    Input(String),
    /// More rows are invalid than `--max-invalid` allows.
    #[error(
        "more than {0} rows are invalid (--max-invalid): the mapping looks wrong; check the \
         failures file, --id-column and --type, or raise --max-invalid"
    )]
    TooManyInvalid(u64),
    /// Customer.io, or the way to it, stopped the run: the credentials check failed, the
    /// credentials were refused, or the endpoint looks down.
    #[error("{0}")]
    Remote(String),
    #[error("--summary {}: cannot write it: {error}", path.display())]
    Summary { path: PathBuf, error: io::Error },
    #[error("cannot write the failures file: {0}")]
    Failures(io::Error),
    #[error("cannot move the earlier failures file {} aside: {error}", path.display())]
    SetAside { path: PathBuf, error: io::Error },
    #[error("cannot write the checkpoint {}: {error}", path.display())]
    Checkpoint { path: PathBuf, error: io::Error },
    #[error("cannot fingerprint the inputs for the checkpoint {}: {error}", path.display())]
    Fingerprint { path: PathBuf, error: io::Error },
    #[error("cannot start the sandbox: {0}")]
    Sandbox(io::Error),
    /// The `--state` database cannot be used, or `--missing` would remove more than
    /// `--max-missing` allows.
    #[error("{0}")]
    State(String),
    /// `--missing` would remove `missing` people, more than `--max-missing` allows.
    #[error("{message}")]
    TooManyMissing { message: String, missing: u64 },
    /// A thread or the runtime the run needs cannot start.
    #[error("cannot start the {what}: {error}")]
    Start {
        what: &'static str,
        error: io::Error,
    },
    /// Writing the completions or the man page failed.
    #[error("cannot write to stdout: {0}")]
    Output(io::Error),
    /// A task of the run panicked or was cancelled.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the reader thread failed")]
    ReaderFailed,
    /// A signal came while the run was being set up (the credentials check, say), before
    /// any record was sent.
    #[error(
        "{}: stopped during the setup, before the first record; nothing was sent: run the \
         same command again",
        .0.name()
    )]
    Stopped(Signal),
    /// The `--shared-limit` Redis stayed unreachable past `--shared-limit-timeout`.
    #[error("{0}")]
    SharedLimitLost(String),
    /// A fatal error after another; the later is told first.
    #[error("{then}: {first}")]
    Then { first: Box<Fatal>, then: Box<Fatal> },
}

impl Fatal {
    /// The code the process ends with.
    pub fn exit(&self) -> Exit {
        match self {
            Fatal::Usage(_) => Exit::Usage,
            Fatal::Setup(_)
            | Fatal::Input(_)
            | Fatal::TooManyInvalid(_)
            | Fatal::Remote(_)
            | Fatal::Summary { .. }
            | Fatal::Failures(_)
            | Fatal::SetAside { .. }
            | Fatal::Checkpoint { .. }
            | Fatal::Fingerprint { .. }
            | Fatal::Sandbox(_)
            | Fatal::State(_)
            | Fatal::TooManyMissing { .. }
            | Fatal::Start { .. }
            | Fatal::Output(_)
            | Fatal::Task(_)
            | Fatal::ReaderFailed => Exit::Fatal,
            Fatal::Stopped(signal) => Exit::Stopped(*signal),
            Fatal::SharedLimitLost(_) => Exit::SharedLimitLost,
            Fatal::Then { first, .. } => first.exit(),
        }
    }

    /// How many people `--missing` would have removed, if that is what stopped the run.
    pub fn too_many_missing(&self) -> Option<u64> {
        match self {
            Fatal::TooManyMissing { missing, .. } => Some(*missing),
            Fatal::Then { first, then } => first.too_many_missing().or(then.too_many_missing()),
            _ => None,
        }
    }

    /// The errors of a run in the order they happened, as one; None if there were none.
    pub fn all(errors: impl IntoIterator<Item = Fatal>) -> Option<Fatal> {
        errors.into_iter().reduce(|first, then| Fatal::Then {
            first: Box::new(first),
            then: Box::new(then),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_usage_error_ends_with_the_usage_code() {
        assert_eq!(
            Fatal::Usage("--rate: not a number".into()).exit(),
            Exit::Usage
        );
        let io = || io::Error::other("disk full");
        for fatal in [
            Fatal::Setup("s".into()),
            Fatal::Input("i".into()),
            Fatal::TooManyInvalid(3),
            Fatal::Remote("r".into()),
            Fatal::Failures(io()),
            Fatal::Checkpoint {
                path: "c.json".into(),
                error: io(),
            },
            Fatal::ReaderFailed,
        ] {
            assert_eq!(fatal.exit(), Exit::Fatal, "{fatal}");
        }
        let hung_up = Fatal::Stopped(Signal::HangUp);
        assert_eq!(hung_up.exit(), Exit::Stopped(Signal::HangUp));
    }

    #[test]
    fn several_errors_are_told_latest_first_and_end_as_the_first() {
        assert!(Fatal::all([]).is_none());
        let one = Fatal::all([Fatal::Input("a.csv: cannot be read".into())]).unwrap();
        assert_eq!(one.to_string(), "a.csv: cannot be read");
        let three = Fatal::all([
            Fatal::Usage("first".into()),
            Fatal::Input("second".into()),
            Fatal::Failures(io::Error::other("third")),
        ])
        .unwrap();
        assert_eq!(
            three.to_string(),
            "cannot write the failures file: third: second: first"
        );
        assert_eq!(three.exit(), Exit::Usage);
    }

    #[test]
    fn a_file_error_names_the_file_and_says_why() {
        let e = Fatal::Summary {
            path: "out/summary.json".into(),
            error: io::Error::other("permission denied"),
        };
        assert_eq!(
            e.to_string(),
            "--summary out/summary.json: cannot write it: permission denied"
        );
        assert_eq!(
            Fatal::TooManyInvalid(100).to_string(),
            "more than 100 rows are invalid (--max-invalid): the mapping looks wrong; check the \
             failures file, --id-column and --type, or raise --max-invalid"
        );
    }
}
