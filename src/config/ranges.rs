//! The ranges of the numeric flags: each checked before anything else, an absurd number a
//! usage error naming the flag and its range.

use std::ops::RangeInclusive;

use super::{ConfigError, bad};
use crate::cli::Cli;

/// Checks every numeric flag against its range, before anything else (and so before any
/// file is touched): an absurd number is a usage error naming the flag, not a panic deep in
/// the run. The bounds keep every figure the run derives (a pace's interval, a deadline, a
/// sandbox's wait) within what its types hold.
pub(super) fn check_ranges(cli: &Cli) -> Result<(), ConfigError> {
    within(
        "--rate",
        Float(cli.rate),
        Float(0.01)..=Float(100_000.0),
        "requests per second",
    )?;
    within(
        "--burst",
        cli.burst,
        1..=10_000,
        "requests (1 means smooth pacing)",
    )?;
    within(
        "--concurrency",
        cli.concurrency,
        1..=1000,
        "requests in flight",
    )?;
    within("--batch", cli.batch, 1..=1000, "operations a request")?;
    within(
        "--timeout",
        Float(cli.timeout),
        Float(0.1)..=Float(3600.0),
        "seconds",
    )?;
    within("--max-retries", cli.max_retries, 0..=1000, "retries")?;
    within(
        "--max-retry-after",
        Float(cli.max_retry_after),
        Float(0.1)..=Float(86_400.0),
        "seconds",
    )?;
    let streak = "failed requests in a row";
    within(
        "--max-consecutive-failures",
        cli.max_consecutive_failures,
        1..=1_000_000,
        streak,
    )?;
    within(
        "--stop-timeout",
        Float(cli.stop_timeout),
        Float(0.0)..=Float(3600.0),
        "seconds",
    )?;
    within(
        "--shared-limit-timeout",
        Float(cli.shared_limit_timeout),
        Float(0.1)..=Float(86_400.0),
        "seconds",
    )?;
    let limit = "requests per second (0 for no limit)";
    within("--sandbox-limit", cli.sandbox_limit, 0..=100_000, limit)?;
    for (flag, share) in [
        ("--sandbox-fail-rate", cli.sandbox_fail_rate),
        ("--sandbox-drop-rate", cli.sandbox_drop_rate),
        ("--sandbox-stall-rate", cli.sandbox_stall_rate),
    ] {
        within(
            flag,
            Float(share),
            Float(0.0)..=Float(1.0),
            "(a share of the requests)",
        )?;
    }
    within(
        "--sandbox-latency",
        cli.sandbox_latency,
        0..=60_000,
        "milliseconds",
    )?;
    Ok(())
}

/// The usage error naming `flag` and its range, unless `value` is in `range`.
fn within<T: PartialOrd + std::fmt::Display>(
    flag: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(bad(format!(
            "{flag} must be from {} to {} {unit}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

/// A flag's number as a person would write it: `1e-20`, not twenty zeros (NaN fails every
/// comparison, so it is out of any range).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = self.0.to_string();
        if plain.len() > 12 {
            write!(f, "{:e}", self.0)
        } else {
            f.write_str(&plain)
        }
    }
}
