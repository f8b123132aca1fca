//! Which checkpoint a run starts from: the saved one it carries on from (`--resume`, or
//! `--resume=auto` finding one of this run), or a fresh one at the start of the inputs.

use std::path::Path;

use crate::checkpoint::{Checkpoint, ResumeError};
use crate::cli::Resume;
use crate::config::Config;
use crate::error::Fatal;
use crate::report::say;

/// The checkpoint this run starts from, and whether it resumes (carries on from it).
pub(super) fn start_from(path: &Path, config: &Config) -> Result<(Checkpoint, bool), Fatal> {
    let (target, mapping) = (config.target.describe(), config.resume_flags());
    let saved = || Checkpoint::resume(path, &config.inputs, &target, &mapping);
    let tell = |text: String| {
        if !config.quiet {
            say::say(text);
        }
    };
    match config.resume {
        Some(Resume::Always) => {
            return Ok((saved().map_err(|e| Fatal::Setup(e.to_string()))?, true));
        }
        Some(Resume::Auto) => match saved() {
            Ok(cp) => {
                tell(format!(
                    "--resume=auto: carrying on from the checkpoint {}",
                    path.display()
                ));
                return Ok((cp, true));
            }
            Err(ResumeError::Missing(_)) => tell(format!(
                "--resume=auto: no checkpoint at {}: starting from the first record",
                path.display()
            )),
            // A file that cannot be read is for the user to look at, not to replace.
            Err(e @ ResumeError::Unreadable { .. }) => return Err(Fatal::Setup(e.to_string())),
            // A checkpoint of another run (yesterday's export, other flags) has nothing
            // this run can carry on: a job that resumes every time starts this one over.
            Err(other) => tell(format!(
                "--resume=auto: the checkpoint {} is of another run ({}): starting over, and \
                 replacing it",
                path.display(),
                why_not(&other)
            )),
        },
        None => {}
    }
    let fresh = Checkpoint::new(&config.inputs, target, mapping);
    let fresh = fresh.map_err(|error| Fatal::Fingerprint {
        path: path.to_path_buf(),
        error,
    })?;
    Ok((fresh, false))
}

/// Why a checkpoint is not this run's, in a few words.
fn why_not(e: &ResumeError) -> String {
    match e {
        ResumeError::Changed { input, what } => format!("{input} changed since ({what})"),
        ResumeError::OtherInputs { theirs, .. } => format!("made for {theirs}"),
        ResumeError::OtherMapping { theirs, ours, .. } => {
            format!("its run had {theirs}, this one has {ours}")
        }
        ResumeError::OtherTarget { theirs, ours, .. } => {
            format!("its run went into {theirs}, this one into {ours}")
        }
        ResumeError::OtherVersion { version, .. } => {
            format!("written by another version of cio-import, format {version}")
        }
        ResumeError::Missing(_) | ResumeError::Unreadable { .. } => e.to_string(),
    }
}
