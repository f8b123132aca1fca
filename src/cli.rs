//! The command line: clap types and value parsers only. `config` checks what they hold.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use crate::config::Region;
use crate::exit::Exit;
use crate::record::{Action, EmptyPolicy, ValueType};
use crate::source::Format;

const EXAMPLES: &str = "\
Examples:
  cio-import fixtures/users.csv --sandbox           Try it: import into the built-in stand-in
  cio-import users.csv --rate 50                    Import people at 50 requests/s
  cio-import events.csv --action event --batch 100  Backfill events, 100 a request
  cio-import users.csv --dry-run                    Validate everything, send nothing
  cio-import users.csv --resume                     Carry on after a crash or Ctrl-C
  cio-import users.failures.ndjson                  Replay what failed last time
  zcat users.csv.gz | cio-import - --format csv     Read stdin

Credentials come from the environment: CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY
(or --api-key-file PATH); the key is never taken from a flag's value.";

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", Exit::help_table())
}

/// Bulk-import people and events from CSV or NDJSON into Customer.io, paced to its rate
/// limits, with every record accounted for: accepted, or written with its reason to a
/// failures file that cio-import reads back as input.
#[derive(Debug, Parser)]
#[command(name = "cio-import", version, after_help = after_help(), max_term_width = 100)]
pub struct Cli {
    /// Input files: .csv, .ndjson or .jsonl, each optionally .gz; `-` reads stdin.
    #[arg(value_name = "INPUT", required_unless_present_any = ["completions", "man"])]
    pub inputs: Vec<PathBuf>,

    /// Input format, when the file name does not tell (always needed for stdin).
    #[arg(long, value_enum, help_heading = "Input")]
    pub format: Option<Format>,

    /// What each record does.
    #[arg(long, value_enum, default_value_t = Action::Identify, help_heading = "Mapping")]
    pub action: Action,

    /// Column holding the person's identifier [default: the first of id, email, cio_id].
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    pub id_column: Option<String>,

    /// Type of a column's values, repeatable: COLUMN=string|number|bool|timestamp|json.
    /// Columns are strings by default; created_at and timestamp are timestamps.
    #[arg(long = "type", value_name = "COLUMN=TYPE", value_parser = parse_type, action = ArgAction::Append, help_heading = "Mapping")]
    pub types: Vec<(String, ValueType)>,

    /// Empty cells: skip leaves the attribute untouched; clear sends "" to erase it.
    #[arg(long, value_enum, default_value_t = EmptyPolicy::Skip, help_heading = "Mapping")]
    pub empty: EmptyPolicy,

    /// Event name for every row (a non-empty `name` column wins) [--action event].
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    pub event_name: Option<String>,

    /// Workspace site id.
    #[arg(
        long,
        env = "CUSTOMERIO_SITE_ID",
        hide_env_values = true,
        help_heading = "Customer.io"
    )]
    pub site_id: Option<String>,

    /// File holding the Track API key [default: $CUSTOMERIO_TRACK_API_KEY].
    #[arg(long, value_name = "PATH", help_heading = "Customer.io")]
    pub api_key_file: Option<PathBuf>,

    /// Workspace region: picks track.customer.io or track-eu.customer.io.
    #[arg(long, value_enum, default_value_t = Region::Us, help_heading = "Customer.io")]
    pub region: Region,

    /// Base URL replacing the region's host (plain http:// only to a loopback address).
    #[arg(long, value_name = "URL", help_heading = "Customer.io")]
    pub endpoint: Option<String>,

    /// Skip the credentials and region check made before the first record.
    #[arg(long, help_heading = "Customer.io")]
    pub no_preflight: bool,

    /// Requests per second, paced smoothly [default: 50].
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50.0,
        help_heading = "Pacing"
    )]
    pub rate: f64,

    /// Requests allowed at once above the smooth pace [default: 1: no bursts].
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Pacing")]
    pub burst: u32,

    /// Requests in flight at once [default: 10].
    #[arg(long, value_name = "N", default_value_t = 10, help_heading = "Pacing")]
    pub concurrency: usize,

    /// Operations per request: above 1, records go N at a time through /api/v2/batch, and
    /// --rate still counts requests [default: 1].
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Pacing")]
    pub batch: usize,

    /// Per-request timeout, in seconds [default: 30].
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        help_heading = "Pacing"
    )]
    pub timeout: f64,

    /// Retries per record before it goes to the failures file [default: 6].
    #[arg(long, value_name = "N", default_value_t = 6, help_heading = "Pacing")]
    pub max_retries: u32,

    /// Longest Retry-After honoured, in seconds; longer ones are cut to this [default: 300].
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300.0,
        help_heading = "Pacing"
    )]
    pub max_retry_after: f64,

    /// Stop (exit 1) after this many failed requests in a row: 5xx or network errors with no
    /// success between [default: 100].
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Pacing")]
    pub max_consecutive_failures: u32,

    /// Stop (exit 1) once more than N rows are invalid: a wrongly mapped file should not
    /// fill the failures file with a million lines [default: 10000].
    #[arg(long, value_name = "N", default_value_t = 10_000, help_heading = "Run")]
    pub max_invalid: u64,

    /// Read, map and validate everything; send nothing. Needs no credentials.
    #[arg(long, help_heading = "Run")]
    pub dry_run: bool,

    /// Carry on from the checkpoint a crashed or interrupted run left.
    #[arg(long, help_heading = "Run")]
    pub resume: bool,

    /// Failures file [default: <input stem>.failures.ndjson in the current directory].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub failures: Option<PathBuf>,

    /// Checkpoint file [default: <input stem>.checkpoint.json beside the failures file].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub checkpoint: Option<PathBuf>,

    /// Write a JSON summary here at the end; `-` for stdout.
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub summary: Option<PathBuf>,

    /// Progress display on stderr: auto draws a bar on a terminal and a plain line every
    /// few seconds otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = "Run")]
    pub progress: ProgressMode,

    /// Print only errors and the final summary line.
    #[arg(long, short, help_heading = "Run")]
    pub quiet: bool,

    /// Log every request's outcome to stderr; -vv adds each retry's wait.
    #[arg(long, short, action = ArgAction::Count, help_heading = "Run")]
    pub verbose: u8,

    /// Import into a built-in stand-in of the Track API on 127.0.0.1: no account needed.
    #[arg(long, help_heading = "Sandbox")]
    pub sandbox: bool,

    /// The sandbox's limit in requests per second (sliding window); 0 for none [default: 100].
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
    pub sandbox_limit: u32,

    /// Share of sandbox requests answered 503, 0 to 1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share, requires = "sandbox", help_heading = "Sandbox")]
    pub sandbox_fail_rate: f64,

    /// Share of sandbox requests whose connection is dropped, 0 to 1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share, requires = "sandbox", help_heading = "Sandbox")]
    pub sandbox_drop_rate: f64,

    /// Share of sandbox requests that stall past --timeout, 0 to 1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share, requires = "sandbox", help_heading = "Sandbox")]
    pub sandbox_stall_rate: f64,

    /// Latency the sandbox adds to every answer, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
    pub sandbox_latency: u64,

    /// Print a shell completion script to stdout and exit.
    #[arg(
        long,
        value_name = "SHELL",
        value_enum,
        exclusive = true,
        help_heading = "Setup"
    )]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) to stdout and exit.
    #[arg(long, exclusive = true, help_heading = "Setup")]
    pub man: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

fn parse_type(s: &str) -> Result<(String, ValueType), String> {
    let (col, ty) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected COLUMN=TYPE, e.g. age=number, got {s:?}"))?;
    if col.is_empty() {
        return Err(format!("the column name before '=' is empty in {s:?}"));
    }
    let ty = ValueType::from_str(ty, false).map_err(|_| {
        format!(
            "unknown type {ty:?} for column {col:?}: use string, number, bool, timestamp or json"
        )
    })?;
    Ok((col.to_owned(), ty))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a share from 0 to 1, like 0.05, got {s:?}"
        )),
    }
}

/// Writes the completion script for `shell`, generated from this definition.
pub fn write_completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "cio-import",
        out,
    );
    Ok(())
}

/// Writes the man page (roff), generated from this definition.
pub fn write_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn type_flag_parses_and_explains_mistakes() {
        assert_eq!(
            parse_type("a=b=number").unwrap(),
            ("a=b".to_owned(), ValueType::Number)
        );
        assert!(parse_type("age").unwrap_err().contains("COLUMN=TYPE"));
        assert!(
            parse_type("age=int")
                .unwrap_err()
                .contains("use string, number")
        );
    }

    #[test]
    fn help_lists_exit_codes_and_examples() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("--resume"));
        assert!(help.contains("130"));
    }
}
