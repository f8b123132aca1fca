//! The incremental-sync flags checked: `--state`, `--missing`, `--max-missing`.

use std::path::{Path, PathBuf};

use super::{ConfigError, bad, value_name};
use crate::cli::Cli;
use crate::record::{Action, Entity};
use crate::source::Input;
use crate::state::{MaxMissing, Missing, Removal};

/// `--state` and what the run does with it.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub path: PathBuf,
    /// `--missing delete|suppress`; None for `ignore`.
    pub removal: Option<Removal>,
    pub max_missing: MaxMissing,
    /// The job the run's people belong to in the state ([`job_of`]); None for a replay of
    /// a failures file, which is not a job of its own: its people stay their export's.
    pub job: Option<String>,
}

/// `removal` as the command line says it: `--missing delete`.
pub fn removal_flag(removal: Removal) -> String {
    format!("--missing {}", value_name(Missing::from(removal)))
}

/// Checks the incremental-sync flags; None without `--state`. Its path is checked with the run's other files (`Config::from_cli`).
pub(super) fn state_config(
    cli: &Cli,
    inputs: &[Input],
) -> Result<Option<StateConfig>, ConfigError> {
    let Some(path) = &cli.state else {
        return Ok(None);
    };
    if cli.only_existing {
        // Customer.io accepts such an identify whether or not the person exists: the state
        // would hold people who were never created, and skip them next time.
        return Err(bad(format!(
            "--state {} with --only-existing: Customer.io accepts an identify of someone who \
             does not exist without creating them, so the state cannot tell who was updated; \
             drop one",
            path.display()
        )));
    }
    let replay = inputs.iter().find(|i| i.is_failures_file());
    if let Some(flag) = cli.missing.removal().map(removal_flag) {
        if cli.action != Action::Identify || cli.entity != Entity::Person {
            return Err(bad(format!(
                "{flag} removes the people a full export of people no longer has: it goes with \
                 --action identify (the default) of people, not --action {}{}",
                value_name(cli.action),
                if cli.entity == Entity::Object {
                    " --entity object"
                } else {
                    ""
                }
            )));
        }
        // A failures file holds the few people whose records failed: everyone else would be
        // missing from it.
        if let Some(replay) = replay {
            return Err(bad(format!(
                "{flag} removes the people a full export no longer has, and {} is a failures \
                 file, which holds only the records that failed: replay it without {flag}",
                replay.path.display()
            )));
        }
        if cli.shard.is_some() {
            return Err(bad(format!(
                "{flag} needs the whole export, and --shard sends a share of it: drop one"
            )));
        }
        if !(cli.yes || cli.dry_run || cli.sandbox) {
            return Err(bad(format!(
                "{flag} removes people for good: add --yes to confirm (a --dry-run first says \
                 how many would go)"
            )));
        }
    }
    Ok(Some(StateConfig {
        path: path.clone(),
        removal: cli.missing.removal(),
        max_missing: cli.max_missing,
        job: replay.is_none().then(|| job_of(&cli.inputs)),
    }))
}

/// What names a job in the state: its inputs' paths, made absolute, with each run of digits
/// as `#`. A nightly export named by its date (`users-2026-12-01.csv`) stays one job, whose
/// `--missing` sweep removes only the people it met; another export into the same state
/// (`signups.csv`, a backfill) is another job, whose people that sweep keeps.
fn job_of(inputs: &[PathBuf]) -> String {
    let absolute = |path: &Path| {
        if path == Path::new("-") {
            return path.to_owned();
        }
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    };
    let mut job = String::new();
    for path in inputs {
        if !job.is_empty() {
            job.push(' ');
        }
        for c in absolute(path).display().to_string().chars() {
            match c {
                '0'..='9' if job.ends_with('#') => {}
                '0'..='9' => job.push('#'),
                c => job.push(c),
            }
        }
    }
    job
}

/// The incremental-sync flags as words, for the command that carries a run on.
pub(super) fn state_flags(cli: &Cli) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(path) = &cli.state {
        words.extend(["--state".to_owned(), path.display().to_string()]);
    }
    if cli.missing != Missing::Ignore {
        words.extend(["--missing".to_owned(), value_name(cli.missing)]);
        // Confirmed once for the run: its resume would be refused without it.
        if cli.yes {
            words.push("--yes".to_owned());
        }
    }
    if cli.max_missing != MaxMissing::default() {
        words.extend(["--max-missing".to_owned(), cli.max_missing.to_string()]);
    }
    words
}
