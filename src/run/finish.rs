//! The finish: how a run ends — its exit code, the checkpoint kept or removed, the summary
//! on stderr and in `--summary`, the sandbox's last line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Config, Target};
use crate::error::Fatal;
use crate::exit::Exit;
use crate::report::{Counters, Summary, say};
use crate::sandbox::Sandbox;

/// Everything a run's end is made of.
pub(super) struct Ending<'a> {
    pub config: &'a Config,
    pub started: Instant,
    pub counters: &'a Counters,
    /// What made the run fatal, in the order it happened.
    pub fatal: Vec<Fatal>,
    pub interrupted: bool,
    /// The failures file, if anything was written to it.
    pub failures: Option<PathBuf>,
    /// The checkpoint, if it was written to the end.
    pub checkpoint: Option<PathBuf>,
    /// The pacer's rate at the end; None in a dry run.
    pub final_rate: Option<f64>,
    pub sandbox: Option<Sandbox>,
}

/// Ends the run: tells the summary and gives its exit code, or the error that made it fatal.
pub(super) async fn finish(ending: Ending<'_>) -> Result<Exit, Fatal> {
    let Ending {
        config,
        started,
        counters,
        fatal,
        interrupted,
        failures,
        checkpoint,
        final_rate,
        sandbox,
    } = ending;
    let fatal = Fatal::all(fatal);
    let failed = Counters::get(&counters.failed);
    let invalid = Counters::get(&counters.invalid);
    let exit = exit_code(fatal.as_ref(), interrupted, failed + invalid);
    // A run that finished leaves no checkpoint; one that stopped early keeps it for --resume.
    let checkpoint_path = checkpoint.filter(|path| {
        let finished = fatal.is_none() && !interrupted;
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
        unsent: records - counters.settled(),
        requests: Counters::get(&counters.requests),
        retries: Counters::get(&counters.retries),
        rate_limited: Counters::get(&counters.rate_limited),
        recent_events: Counters::get(&counters.recent_events),
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        accepted_per_s: if elapsed > 0.0 {
            accepted as f64 / elapsed
        } else {
            0.0
        },
        final_rate,
        replay: failures.as_deref().map(|p| config.replay_command(p)),
        failures_path: failures,
        checkpoint_path,
        dry_run: matches!(config.target, Target::DryRun),
        exit_code: exit.code(),
    };
    say::say(summary.human());
    if let Some(sb) = sandbox {
        if !config.quiet {
            say::say(sb.summary_line());
        }
        sb.shutdown().await;
    }
    if let Some(path) = &config.summary {
        write_summary(path, &summary)?;
    }
    fatal.map_or(Ok(exit), Err)
}

/// The exit code: a fatal error's, else an interruption, else whether every record made it.
fn exit_code(fatal: Option<&Fatal>, interrupted: bool, not_accepted: u64) -> Exit {
    match fatal {
        Some(e) => e.exit(),
        None if interrupted => Exit::Interrupted,
        None if not_accepted > 0 => Exit::Partial,
        None => Exit::Success,
    }
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
    fn a_fatal_error_outranks_a_stop_which_outranks_records_not_accepted() {
        let fatal = Fatal::ReaderFailed;
        assert_eq!(exit_code(Some(&fatal), true, 5), Exit::Fatal);
        assert_eq!(exit_code(None, true, 5), Exit::Interrupted);
        assert_eq!(exit_code(None, false, 1), Exit::Partial);
        assert_eq!(exit_code(None, false, 0), Exit::Success);
    }
}
