//! The commands a run tells the user: the replay of its failures file, the resume of an
//! interrupted run, each with the flags that made this one.

use std::path::Path;

use super::{Config, Target, default_failures_path, state};
use crate::cli::Cli;
use crate::record::{Action, EmptyPolicy, Entity, Oversize, value_name};
use crate::shell;
use crate::track::Region;

impl Config {
    /// The flags that decide what a row becomes, as words of a command line (none when
    /// every one is at its default): a replay needs them, and a resume must have the same.
    pub fn mapping_flags(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| args.extend([name.to_owned(), value]);
        let map = &self.map;
        if map.action != Action::Identify {
            flag("--action", value_name(map.action));
        }
        if let Some(name) = &map.event_name {
            flag("--event-name", name.clone());
        }
        if let Some(column) = &map.id_column {
            flag("--id-column", column.clone());
        }
        if let Some(kind) = map.id_type {
            flag("--id-type", value_name(kind));
        }
        for (column, ty) in &map.types {
            flag("--type", format!("{column}={ty}"));
        }
        let conventions = &map.conventions;
        if let Some(zone) = conventions.zone.iana_name().filter(|z| *z != "UTC") {
            flag("--timezone", zone.to_owned());
        }
        if map.oversize != Oversize::Reject {
            flag("--oversize", value_name(map.oversize));
        }
        if map.empty != EmptyPolicy::Skip {
            flag("--empty", value_name(map.empty));
        }
        if map.entity != Entity::Person {
            flag("--entity", value_name(map.entity));
        }
        if let Some(object_type) = &map.object_type {
            flag("--object-type", object_type.clone());
        }
        if map.only_existing {
            args.push("--only-existing".to_owned());
        }
        if conventions.decimal_comma {
            args.push("--decimal-comma".to_owned());
        }
        if conventions.strip_apostrophe {
            args.push("--strip-apostrophe".to_owned());
        }
        args.extend(map.columns.flags());
        args
    }

    /// What a checkpoint holds for a resume to match: the mapping flags and the shard (a
    /// resume taking another shard's records would skip by another run's positions).
    pub fn resume_flags(&self) -> Vec<String> {
        let mut flags = self.mapping_flags();
        // Not a mapping flag: a replay reads our own failures file, which is UTF-8.
        if let Some(encoding) = self.inputs.first().and_then(|i| i.encoding) {
            flags.extend(["--encoding".to_owned(), encoding.name().to_owned()]);
        }
        if let Some(shard) = self.shard {
            flags.extend(["--shard".to_owned(), shard.to_string()]);
        }
        flags
    }

    /// The command that replays `failures` as this run would: the same mapping flags, the
    /// same target (a sandbox run's replay stays in the sandbox) and state, quoted for a shell.
    pub fn replay_command(&self, failures: &Path) -> String {
        let mut args = self.command_for([failures]);
        // So that what the replay sends is remembered, not sent again by the next run. Never
        // --missing: a failures file holds only the people whose records failed.
        if let Some(state) = &self.state {
            args.extend(["--state".to_owned(), state.path.display().to_string()]);
        }
        shell_line(args)
    }

    /// The command that carries this run on from its checkpoint: the same inputs, mapping
    /// flags, target, files and run flags, with `--resume`, quoted for a shell.
    pub fn resume_command(&self) -> String {
        shell_line(self.resume_args(self.run_flags.iter().cloned()))
    }

    /// [`Config::resume_command`] with `--max-missing` raised to `missing`: the command that
    /// lets the `--missing` sweep the cap refused remove them.
    pub fn resume_allowing(&self, missing: u64) -> String {
        let mut flags = Vec::new();
        let mut given = self.run_flags.iter().cloned();
        while let Some(flag) = given.next() {
            if flag == "--max-missing" {
                given.next();
            } else {
                flags.push(flag);
            }
        }
        flags.extend(["--max-missing".to_owned(), missing.to_string()]);
        shell_line(self.resume_args(flags))
    }

    fn resume_args(&self, run_flags: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut args = self.command_for(self.inputs.iter().map(|i| i.path.as_path()));
        // The checkpoint holds one shard's positions: a resume without it is refused.
        if let Some(shard) = self.shard {
            args.extend(["--shard".to_owned(), shard.to_string()]);
        }
        let mut file = |flag: &str, path: &Path| {
            args.extend([flag.to_owned(), path.display().to_string()]);
        };
        if self.failures != default_failures_path(&self.inputs) {
            file("--failures", &self.failures);
        }
        let checkpoint = self.checkpoint.as_ref();
        if let Some(path) =
            checkpoint.filter(|p| **p != crate::checkpoint::default_path(&self.failures))
        {
            file("--checkpoint", path);
        }
        args.extend(run_flags);
        args.push("--resume".to_owned());
        args
    }

    /// `cio-import`, `inputs`, the mapping flags and the target: what a command that goes on
    /// from this run must say.
    fn command_for<'a>(&self, inputs: impl IntoIterator<Item = &'a Path>) -> Vec<String> {
        let mut args = vec!["cio-import".to_owned()];
        args.extend(inputs.into_iter().map(|p| p.display().to_string()));
        args.extend(self.mapping_flags());
        match &self.target {
            Target::Sandbox(_) => args.push("--sandbox".to_owned()),
            Target::Remote {
                base,
                region,
                site_id,
                api_key_file,
                ..
            } => {
                // The credentials too: the environment may hold another workspace's.
                args.extend(["--site-id".to_owned(), site_id.clone()]);
                if let Some(path) = api_key_file {
                    args.extend(["--api-key-file".to_owned(), path.display().to_string()]);
                }
                if *region != Region::Us {
                    args.extend(["--region".to_owned(), value_name(*region)]);
                }
                if base != region.host() {
                    args.extend(["--endpoint".to_owned(), base.clone()]);
                }
                if !self.preflight {
                    args.push("--no-preflight".to_owned());
                }
            }
            Target::DryRun => args.push("--dry-run".to_owned()),
        }
        args
    }
}

/// Words as one line for a POSIX shell.
fn shell_line(args: Vec<String>) -> String {
    args.iter()
        .map(|a| shell::word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The flags of `cli` that shape how the run goes and are not at their defaults, as words.
pub(super) fn run_flags(cli: &Cli) -> Vec<String> {
    // The defaults are clap's: a command line that gives none of these flags.
    let Ok(default) = <Cli as clap::Parser>::try_parse_from(["cio-import", "-"]) else {
        return Vec::new();
    };
    let mut words = Vec::new();
    let mut flag = |name: &str, value: String, default: String| {
        if value != default {
            words.extend([name.to_owned(), value]);
        }
    };
    // Each as its type shows it, which is how clap reads it back.
    let show =
        |a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| (a.to_string(), b.to_string());
    let (c, d) = (cli, &default);
    for (name, (value, default)) in [
        ("--rate", show(&c.rate, &d.rate)),
        ("--burst", show(&c.burst, &d.burst)),
        ("--concurrency", show(&c.concurrency, &d.concurrency)),
        ("--batch", show(&c.batch, &d.batch)),
        ("--timeout", show(&c.timeout, &d.timeout)),
        ("--max-retries", show(&c.max_retries, &d.max_retries)),
        (
            "--max-retry-after",
            show(&c.max_retry_after, &d.max_retry_after),
        ),
        (
            "--max-consecutive-failures",
            show(&c.max_consecutive_failures, &d.max_consecutive_failures),
        ),
        ("--max-invalid", show(&c.max_invalid, &d.max_invalid)),
        ("--stop-timeout", show(&c.stop_timeout, &d.stop_timeout)),
        ("--sandbox-limit", show(&c.sandbox_limit, &d.sandbox_limit)),
        (
            "--sandbox-fail-rate",
            show(&c.sandbox_fail_rate, &d.sandbox_fail_rate),
        ),
        (
            "--sandbox-drop-rate",
            show(&c.sandbox_drop_rate, &d.sandbox_drop_rate),
        ),
        (
            "--sandbox-stall-rate",
            show(&c.sandbox_stall_rate, &d.sandbox_stall_rate),
        ),
        (
            "--sandbox-latency",
            show(&c.sandbox_latency, &d.sandbox_latency),
        ),
    ] {
        flag(name, value, default);
    }
    flag(
        "--summary",
        cli.summary
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        String::new(),
    );
    flag(
        "--progress",
        value_name(cli.progress),
        value_name(default.progress),
    );
    if cli.quiet {
        words.push("--quiet".to_owned());
    }
    words.extend((0..cli.verbose).map(|_| "-v".to_owned()));
    words.extend(state::state_flags(cli));
    words
}
