//! The finish: how a run ends — its exit code, the checkpoint kept or removed, the summary
//! on stderr and in `--summary`, the sandbox's last line, the error that made it fatal, and
//! last, what to run next.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Config, Target, removal_flag};
use crate::error::Fatal;
use crate::exit::{Exit, Signal};
use crate::report::{Counters, Summary, say};
use crate::sandbox::Sandbox;

/// Everything a run's end is made of.
pub(super) struct Ending<'a> {
    pub config: &'a Config,
    pub started: Instant,
    pub counters: &'a Counters,
    /// What made the run fatal, in the order it happened.
    pub fatal: Vec<Fatal>,
    /// The signal that stopped the run, if one did.
    pub signal: Option<Signal>,
    /// The failures file, if anything was written to it.
    pub failures: Option<PathBuf>,
    /// The checkpoint, if it was written to the end.
    pub checkpoint: Option<PathBuf>,
    /// The pacer's rate at the end; None in a dry run.
    pub final_rate: Option<f64>,
    pub sandbox: Option<Sandbox>,
    /// Whether the run carried on from a checkpoint.
    pub resumed: bool,
}

/// Ends the run: tells the summary, then the error that made the run fatal, if one did, then
/// what to run next; gives the exit code.
pub(super) async fn finish(ending: Ending<'_>) -> Exit {
    let Ending {
        config,
        started,
        counters,
        fatal,
        signal,
        failures,
        checkpoint,
        final_rate,
        sandbox,
        resumed,
    } = ending;
    let mut fatal = Fatal::all(fatal);
    let failed = Counters::get(&counters.failed);
    let invalid = Counters::get(&counters.invalid);
    let exit = exit_code(fatal.as_ref(), signal, failed + invalid);
    let finished = fatal.is_none() && signal.is_none();
    // A run that finished leaves no checkpoint; one that stopped early keeps it for --resume.
    let checkpoint_path = checkpoint.filter(|path| {
        if finished {
            let _ = std::fs::remove_file(path);
        }
        !finished
    });
    let records = Counters::get(&counters.records);
    let accepted = Counters::get(&counters.accepted);
    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        records,
        accepted,
        failed,
        invalid,
        unreadable: Counters::get(&counters.unreadable),
        unchanged: Counters::get(&counters.unchanged),
        missing: Counters::get(&counters.missing),
        unsent: records - counters.settled(),
        requests: Counters::get(&counters.requests),
        retries: Counters::get(&counters.retries),
        rate_limited: Counters::get(&counters.rate_limited),
        recent_events: Counters::get(&counters.recent_events),
        oversized: Counters::get(&counters.oversized),
        oversized_cut: Counters::get(&counters.oversized_cut),
        oversize: config.map.oversize,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        accepted_per_s: if elapsed > 0.0 {
            (accepted - Counters::get(&counters.accepted_before)) as f64 / elapsed
        } else {
            0.0
        },
        final_rate,
        // A run that goes on later tells the replay when it is complete.
        replay: (failures.as_deref())
            .filter(|_| finished)
            .map(|p| config.replay_command(p)),
        failures_path: failures,
        checkpoint_path,
        dry_run: matches!(config.target, Target::DryRun),
        exit_code: exit.code(),
        resumed,
        incremental: config.state.is_some(),
        removal: (config.state.as_ref())
            .and_then(|s| s.removal)
            .map(removal_flag),
    };
    say::say(summary.human());
    if let Some(sb) = sandbox {
        if !config.quiet {
            say::say(sb.summary_line());
        }
        sb.shutdown().await;
    }
    if let Some(path) = &config.summary
        && let Err(e) = write_summary(path, &summary)
    {
        fatal = Fatal::all(fatal.into_iter().chain([e]));
    }
    if let Some(e) = &fatal {
        say::error(e);
    }
    if !finished && let Some(next) = next_step(config, &summary, fatal.as_ref()) {
        say::say(next);
    }
    fatal.map_or(exit, |e| e.exit())
}

/// The exit code: a fatal error's, else a signal's, else whether every record made it.
fn exit_code(fatal: Option<&Fatal>, signal: Option<Signal>, not_accepted: u64) -> Exit {
    match (fatal, signal) {
        (Some(e), _) => e.exit(),
        (None, Some(signal)) => Exit::Stopped(signal),
        (None, None) if not_accepted > 0 => Exit::Partial,
        (None, None) => Exit::Success,
    }
}

/// What to run after a run that did not finish: the same command with --resume while the
/// checkpoint is kept, or, for a stream, which cannot be resumed, the whole run again.
/// After `--max-missing` refused the sweep, the same resume would be refused again: the
/// command that allows it is told instead.
fn next_step(config: &Config, summary: &Summary, fatal: Option<&Fatal>) -> Option<String> {
    if summary.checkpoint_path.is_some() {
        return Some(match fatal.and_then(Fatal::too_many_missing) {
            Some(missing) => format!(
                "if the export is complete and they did leave, to remove them: {}",
                config.resume_allowing(missing)
            ),
            None => format!("to carry on: {}", config.resume_command()),
        });
    }
    let stream = config.inputs.iter().find(|i| i.is_stream())?;
    (!summary.dry_run).then(|| {
        format!(
            "{} cannot be resumed (a stream is read once): to carry on, run the same command \
             again with the whole input; what was sent already is sent again harmlessly \
             (identifies are idempotent, events keep their ids)",
            stream.name()
        )
    })
}

/// `--summary`: the summary as JSON, to the file or (`-`) to stdout.
fn write_summary(path: &Path, summary: &Summary) -> Result<(), Fatal> {
    let written = serde_json::to_string_pretty(summary)
        .map_err(std::io::Error::from)
        .and_then(|json| {
            if path.as_os_str() == "-" {
                say::to_stdout(&json);
                Ok(())
            } else {
                std::fs::write(path, format!("{json}\n"))
            }
        });
    written.map_err(|error| Fatal::Summary {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fatal_error_outranks_a_signal_which_outranks_records_not_accepted() {
        let fatal = Fatal::ReaderFailed;
        let term = Some(Signal::Terminate);
        assert_eq!(exit_code(Some(&fatal), term, 5), Exit::Fatal);
        assert_eq!(exit_code(None, term, 5), Exit::Stopped(Signal::Terminate));
        assert_eq!(exit_code(None, None, 1), Exit::Partial);
        assert_eq!(exit_code(None, None, 0), Exit::Success);
    }
}
