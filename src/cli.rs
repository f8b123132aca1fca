//! The command line: clap types and value parsers only. `config` checks what they hold.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use crate::exit::Exit;
use crate::record::{Action, EmptyPolicy, Entity, IdKind, Oversize, Shard, ValueType};
use crate::report::ProgressMode;
use crate::source::Format;
use crate::state::{MaxMissing, Missing};
use crate::track::Region;

/// The examples at the end of `--help` and in the man page: (command, what it does).
/// tests/it/readme.rs runs each one.
pub const EXAMPLES: [(&str, &str); 8] = [
    (
        "cio-import fixtures/users.csv --sandbox",
        "Try it: import into the built-in stand-in",
    ),
    (
        "cio-import users.csv --dry-run",
        "Validate every row, send nothing",
    ),
    (
        "cio-import users.csv --rate 20",
        "Import people, at most 20 requests/s",
    ),
    (
        "cio-import events.csv --action event",
        "Track one event per row",
    ),
    (
        "cio-import users.csv --resume",
        "Carry on after a crash or Ctrl-C",
    ),
    (
        "cio-import users.failures.ndjson",
        "Replay what failed last time",
    ),
    (
        "cio-import users.csv --region eu",
        "Import into a workspace in the EU region",
    ),
    (
        "gunzip -c users.csv.gz | cio-import - --format csv",
        "Read stdin (a .gz file is read as it is)",
    ),
];

const CREDENTIALS: &str = "Credentials come from the environment: CUSTOMERIO_SITE_ID and \
CUSTOMERIO_TRACK_API_KEY (or --api-key-file PATH); the key is never taken from a flag's value.";

/// Commands longer than this go on a line of their own in `--help`.
const EXAMPLE_COLUMN: usize = 45;

fn after_help() -> String {
    let mut s = String::from("Examples:\n");
    for (command, what) in EXAMPLES {
        if command.len() > EXAMPLE_COLUMN {
            s.push_str(&format!("  {command}\n  {:EXAMPLE_COLUMN$}  {what}\n", ""));
        } else {
            s.push_str(&format!("  {command:EXAMPLE_COLUMN$}  {what}\n"));
        }
    }
    format!("{s}\n{CREDENTIALS}\n\n{}", Exit::help_table())
}

/// Bulk-import people and events from CSV or NDJSON into Customer.io, paced to its rate
/// limits, with every record accounted for: accepted, or written with its reason to a
/// failures file that cio-import reads back as input.
#[derive(Debug, Parser)]
// A flag given twice takes its last value, so wrappers and aliases can be overridden.
#[command(
    name = "cio-import",
    version,
    after_help = after_help(),
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    /// Input files, read in order: .csv, .tsv, .ndjson or .jsonl, each optionally .gz; `-` reads
    /// stdin. A failures file is an input too: it replays what failed.
    #[arg(
        value_name = "INPUT",
        required_unless_present_any = ["completions", "man", "print_config", "show_state"]
    )]
    pub inputs: Vec<PathBuf>,

    /// Input format [default: from the file name; stdin needs this flag].
    #[arg(long, value_enum, help_heading = "Input")]
    pub format: Option<Format>,

    /// What separates CSV cells: one character, e.g. ';' as spreadsheets in many countries
    /// write, or `tab` [default: what an Excel file's first line sep=; names, a tab for .tsv
    /// files, else ','].
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter, help_heading = "Input")]
    pub delimiter: Option<u8>,

    /// What each record does.
    #[arg(long, value_enum, default_value_t = Action::Identify, help_heading = "Mapping")]
    pub action: Action,

    /// Column holding the person's identifier [default: the first of id, email, cio_id].
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    pub id_column: Option<String>,

    /// Which identifier --id-column holds [default: email for a column named email, cio_id for
    /// one named cio_id (in any case), else id]. `--id-column user_email --id-type email`
    /// sends the values as email addresses, not as ids.
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        requires = "id_column",
        help_heading = "Mapping"
    )]
    pub id_type: Option<IdKind>,

    /// Type of a column's values, repeatable: COLUMN=string|number|bool|timestamp|json|list
    /// [default: string; created_at, and an event's timestamp, are timestamps]. A timestamp
    /// is sent as Unix seconds and read from RFC 3339, a date, or Unix seconds;
    /// timestamp:ms reads Unix milliseconds, timestamp:FORMAT a strftime format
    /// (timestamp:%m/%d/%Y). A number may group thousands (1,853.93). A list (list:; for
    /// another separator than ',') is sent as an array of its trimmed items.
    #[arg(long = "type", value_name = "COLUMN=TYPE", value_parser = parse_type, action = ArgAction::Append, help_heading = "Mapping")]
    pub types: Vec<(String, ValueType)>,

    /// Time zone of times written without an offset (an IANA name: America/New_York)
    /// [default: UTC].
    #[arg(long, value_name = "ZONE", value_parser = crate::record::parse_zone, help_heading = "Mapping")]
    pub timezone: Option<jiff::tz::TimeZone>,

    /// Number columns write a decimal comma: 0,34 and 1.853,93 (the dot, or a space,
    /// groups thousands).
    #[arg(long, help_heading = "Mapping")]
    pub decimal_comma: bool,

    /// Remove the apostrophe a spreadsheet puts before a number kept as text ('7012345678,
    /// '+1 613 555 0123), in every column; other values keep theirs ('s-Hertogenbosch).
    #[arg(long, help_heading = "Mapping")]
    pub strip_apostrophe: bool,

    /// A person's (or object's) attribute value over Customer.io's 1,000 bytes: reject makes
    /// the row invalid, drop leaves the attribute out, truncate cuts text to fit (a JSON value
    /// is left out). Counted in the summary.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = Oversize::Reject, help_heading = "Mapping")]
    pub oversize: Oversize,

    /// Empty cells: skip leaves the attribute untouched; clear sends "" to erase it.
    #[arg(long, value_enum, default_value_t = EmptyPolicy::Skip, help_heading = "Mapping")]
    pub empty: EmptyPolicy,

    /// Event name for rows whose `name` column is empty or missing [--action event, page or
    /// screen only] [default: the row's `name` column].
    #[arg(long, value_name = "NAME", help_heading = "Mapping")]
    pub event_name: Option<String>,

    /// What the rows are about: people, or objects (an object_id column; --action identify
    /// or delete).
    #[arg(long, value_enum, default_value_t = Entity::Person, help_heading = "Mapping")]
    pub entity: Entity,

    /// Object type id (a whole number from 1) of the objects that rows without an
    /// object_type_id column name [--entity object and relationships].
    #[arg(long, value_name = "ID", help_heading = "Mapping")]
    pub object_type: Option<String>,

    /// Update only people who exist; never create one (sends _update: true) [--action
    /// identify only].
    #[arg(long, help_heading = "Mapping")]
    pub only_existing: bool,

    /// Workspace site id; needed unless --sandbox or --dry-run.
    #[arg(
        long,
        env = "CUSTOMERIO_SITE_ID",
        hide_env_values = true,
        help_heading = "Customer.io"
    )]
    pub site_id: Option<String>,

    /// File holding the Track API key [default: the key in $CUSTOMERIO_TRACK_API_KEY].
    #[arg(long, value_name = "PATH", help_heading = "Customer.io")]
    pub api_key_file: Option<PathBuf>,

    /// Workspace region: picks track.customer.io or track-eu.customer.io.
    #[arg(long, value_enum, default_value_t = Region::Us, help_heading = "Customer.io")]
    pub region: Region,

    /// Base URL replacing the region's host, e.g. a proxy (plain http:// only to a loopback
    /// address) [default: the --region host].
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["sandbox", "dry_run"],
        help_heading = "Customer.io"
    )]
    pub endpoint: Option<String>,

    /// Skip the credentials and region check (GET /api/v1/accounts/region) made before the
    /// first record.
    #[arg(long, help_heading = "Customer.io")]
    pub no_preflight: bool,

    /// Most requests per second, retries included, spaced evenly; lowered for a while after
    /// a 429, in requests/s.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50.0,
        help_heading = "Pacing"
    )]
    pub rate: f64,

    /// Requests that may go back to back above the even pace after a quiet spell, in
    /// requests; 1 means none.
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Pacing")]
    pub burst: u32,

    /// Most requests in flight at once (sent and not yet answered), in requests.
    #[arg(long, value_name = "N", default_value_t = 10, help_heading = "Pacing")]
    pub concurrency: usize,

    /// Operations per request, in operations: records go that many at a time through
    /// /api/v2/batch (each request under 500 KB; --rate still counts requests); 1 sends each
    /// record alone through its v1 endpoint (or /api/v2/entity, for what v1 cannot carry).
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Pacing")]
    pub batch: usize,

    /// Time one request may take before it is retried, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        help_heading = "Pacing"
    )]
    pub timeout: f64,

    /// Retries per record after its first attempt (429s included) before it goes to the
    /// failures file.
    #[arg(long, value_name = "N", default_value_t = 6, help_heading = "Pacing")]
    pub max_retries: u32,

    /// Longest Retry-After honoured, in seconds; longer ones are cut to this.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300.0,
        help_heading = "Pacing"
    )]
    pub max_retry_after: f64,

    /// Stop (exit 1) after this many failed requests in a row (5xx, timeouts or network
    /// errors with no success between), in requests.
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Pacing")]
    pub max_consecutive_failures: u32,

    /// Once stopping (a signal, a fatal error), the longest requests in flight may take to
    /// finish, in seconds; records of those still unanswered then stay unsettled, for
    /// --resume to send again.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, help_heading = "Run")]
    pub stop_timeout: f64,

    /// Share --rate with every importer naming this Redis and the same workspace: one
    /// schedule kept in Redis paces them all (redis://[:PASSWORD@]HOST[:PORT][/DB], or
    /// rediss:// for TLS). Give a URL holding a password through the environment.
    // The doc comment is the help text, brackets and all: no links.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(
        long,
        value_name = "URL",
        env = "CIO_IMPORT_SHARED_LIMIT",
        hide_env_values = true,
        help_heading = "Pacing"
    )]
    pub shared_limit: Option<String>,

    /// How long sending waits for an unreachable --shared-limit Redis before the run stops
    /// (checkpoint kept), in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        help_heading = "Pacing"
    )]
    pub shared_limit_timeout: f64,

    /// Take only shard K of N (e.g. 2/3): the records whose person (or object) key hashes
    /// to K, so N importers given 1/N .. N/N send every record exactly once between them.
    /// Rows that do not map go to shard 1's failures file.
    #[arg(long, value_name = "K/N", value_parser = parse_shard, help_heading = "Input")]
    pub shard: Option<Shard>,

    /// Stop (exit 1) once more than N rows are invalid, in rows: a wrongly mapped file
    /// should not fill the failures file with a million lines.
    #[arg(long, value_name = "N", default_value_t = 10_000, help_heading = "Run")]
    pub max_invalid: u64,

    /// Read, map and validate every row; send nothing. Needs no credentials; invalid rows
    /// go to <stem>.dry-run.failures.ndjson (--failures to choose).
    // The doc comment is the help text: `<stem>` is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long, conflicts_with_all = ["sandbox", "shard"], help_heading = "Run")]
    pub dry_run: bool,

    /// Go on without asking with an action that cannot be undone (delete, suppress, merge);
    /// without it such a run asks on the terminal, or is refused when there is none.
    #[arg(long, short = 'y', help_heading = "Run")]
    pub yes: bool,

    /// Carry on from the checkpoint an interrupted or crashed run left, with the same
    /// inputs; new failures are added to the failures file. `--resume=auto` (with the `=`)
    /// resumes when a checkpoint of this run exists and starts over otherwise, so a job can
    /// give it every time.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        num_args = 0..=1,
        // `--resume users.csv` keeps meaning: resume, and users.csv is the input.
        require_equals = true,
        default_missing_value = "always",
        help_heading = "Run"
    )]
    pub resume: Option<Resume>,

    /// Failures file [default: <input stem>.failures.ndjson in the current directory].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub failures: Option<PathBuf>,

    /// Checkpoint file [default: <input stem>.checkpoint.json beside the failures file].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub checkpoint: Option<PathBuf>,

    /// Write a JSON summary here at the end; `-` for stdout [default: none].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub summary: Option<PathBuf>,

    /// Progress display on stderr (NO_COLOR=1 draws the bar without colours).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = "Run")]
    pub progress: ProgressMode,

    /// Print only errors and the final summary: no progress, warnings or sandbox lines.
    #[arg(long, short, help_heading = "Run")]
    pub quiet: bool,

    /// Log every request's outcome to stderr; -vv adds each retry's wait.
    #[arg(long, short, action = ArgAction::Count, help_heading = "Run")]
    pub verbose: u8,

    /// Remember in this SQLite file what Customer.io accepted, and send only what changed
    /// since: unchanged records are counted, not sent. One file per workspace; jobs may share
    /// one (a job is its inputs' paths, digits aside): --missing removes only its own job's.
    #[arg(long, value_name = "PATH", help_heading = "Incremental sync")]
    pub state: Option<PathBuf>,

    /// After a complete run, delete or suppress the people the state holds that this run's
    /// inputs did not have (the inputs must be a full export of people).
    #[arg(long, value_enum, default_value_t = Missing::Ignore, requires = "state", help_heading = "Incremental sync")]
    pub missing: Missing,

    /// The most people --missing may remove: a number, or a share of the people in the
    /// state (P%); over it nothing is removed and the run exits 1.
    #[arg(long, value_name = "N|P%", default_value_t = MaxMissing::default(), help_heading = "Incremental sync")]
    pub max_missing: MaxMissing,

    /// Print what a state holds (its target, entities per kind, its last runs) and exit.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["inputs", "man", "completions"], help_heading = "Incremental sync")]
    pub show_state: Option<PathBuf>,
    // The columns as the user means them (issue 17): renamed, dropped, lifted, previewed.
    /// Read column OLD as NEW everywhere: every other flag then names it NEW
    /// (`--rename "Email Address=email"` makes it the email identifier). OLD may be a
    /// pattern (`*` for any text), and a `*` in NEW stands for what OLD's matched.
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_rename, action = ArgAction::Append, help_heading = "Mapping")]
    pub rename: Vec<(String, String)>,

    /// Never send the column COL (its name after --rename; `*` patterns too).
    #[arg(long, value_name = "COL", action = ArgAction::Append, help_heading = "Mapping")]
    pub drop: Vec<String>,

    /// NDJSON: lift the keys of the nested object KEY to the top level (`--flatten
    /// properties`).
    #[arg(long, value_name = "KEY", action = ArgAction::Append, help_heading = "Mapping")]
    pub flatten: Vec<String>,

    /// The inputs' text encoding: windows-1252, latin1 (iso-8859-1), utf-16le, utf-16be, or
    /// any WHATWG label; a byte order mark overrides it, and a failures file (NDJSON whose
    /// first line holds `_error`) is read as the UTF-8 it was written in [default: utf-8].
    #[arg(long, value_name = "LABEL", value_parser = parse_encoding, help_heading = "Input")]
    pub encoding: Option<&'static encoding_rs::Encoding>,

    /// With --dry-run: write the first N operations to stdout, one a line, exactly as they
    /// would be sent: a batch's JSON operation, or (one a request) the method, path and body.
    // Excluding what --dry-run excludes: clap waives `requires` when the required flag is
    // excluded (`--sandbox --show 2` ran, showing nothing), and a file's --show then gives way
    // to the command line's --sandbox, as its --dry-run does.
    #[arg(
        long,
        value_name = "N",
        requires = "dry_run",
        conflicts_with_all = ["sandbox", "shard", "endpoint"],
        help_heading = "Run"
    )]
    pub show: Option<u64>,

    /// Import into a built-in stand-in of the Track API on 127.0.0.1: no account needed.
    #[arg(long, help_heading = "Sandbox")]
    pub sandbox: bool,

    /// The sandbox's limit, in requests per second over a sliding second (429 beyond it);
    /// 0 for none.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
    pub sandbox_limit: u32,

    /// Share of sandbox requests answered 503, from 0 to 1.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
    pub sandbox_fail_rate: f64,

    /// Share of sandbox requests whose connection is dropped unanswered, from 0 to 1.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
    pub sandbox_drop_rate: f64,

    /// Share of sandbox requests that stall until past --timeout, from 0 to 1.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        requires = "sandbox",
        help_heading = "Sandbox"
    )]
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

    /// Read flags from a TOML file, each under its long name (`rate = 50`, `dry-run = true`,
    /// `type = ["age=number"]`, `inputs = ["users.csv"]`), never the API key; its paths are
    /// relative to its folder. The command line wins over the environment, which wins over
    /// the file; a repeatable flag on the command line replaces the file's list.
    #[arg(long, value_name = "FILE", help_heading = "Setup")]
    pub config: Option<PathBuf>,

    /// Print the configuration this invocation would run with (--config file and command
    /// line) as TOML, for --config, and exit without reading the inputs.
    #[arg(long, help_heading = "Setup")]
    pub print_config: bool,

    /// Print the completion script for SHELL to stdout and exit (committed copies are in
    /// completions/).
    #[arg(
        long,
        value_name = "SHELL",
        value_enum,
        conflicts_with_all = ["inputs", "man"],
        help_heading = "Setup"
    )]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) to stdout and exit.
    // Not `exclusive`: clap counts a flag set from the environment (CUSTOMERIO_SITE_ID) as
    // given, so `--man` would fail for exactly the people who use the tool.
    #[arg(long, conflicts_with = "inputs", help_heading = "Setup")]
    pub man: bool,
}

/// `--resume`'s WHEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resume {
    /// There must be a checkpoint to carry on from (`--resume` alone).
    Always,
    /// Carry on from the checkpoint of this run if there is one, else start over.
    Auto,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

/// `--delimiter`: one ASCII character that can separate cells, or `tab`.
fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match s.as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(*b),
            _ => Err(format!(
                "expected one character (not a quote or a line break) or `tab`, got {s:?}"
            )),
        },
    }
}

fn parse_type(s: &str) -> Result<(String, ValueType), String> {
    let (col, ty) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected COLUMN=TYPE, e.g. age=number, got {s:?}"))?;
    if col.is_empty() {
        return Err(format!("the column name before '=' is empty in {s:?}"));
    }
    let ty = ty
        .parse::<ValueType>()
        .map_err(|e| format!("column {col:?}: {e}"))?;
    Ok((col.to_owned(), ty))
}

/// An encoding by its WHATWG label; UTF-8, the default, is None.
fn parse_encoding(s: &str) -> Result<&'static encoding_rs::Encoding, String> {
    encoding_rs::Encoding::for_label(s.trim().as_bytes()).ok_or_else(|| {
        format!("unknown encoding {s:?}: use windows-1252, latin1, utf-16le, utf-16be or utf-8")
    })
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    let (old, new) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected OLD=NEW, e.g. \"Email Address=email\", got {s:?}"))?;
    Ok((old.to_owned(), new.to_owned()))
}

/// Writes the completion script for `shell`, generated from this definition.
pub fn write_completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Made in memory first: clap_complete panics on a write that fails (a closed stdout).
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "cio-import",
        &mut script,
    );
    out.write_all(&script)
}

/// Writes the man page (roff), generated from this definition: clap_mangen's sections,
/// then the examples, environment and exit codes as man pages lay them out.
pub fn write_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use roff::{Roff, bold, roman};
    let command = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (command, what) in EXAMPLES {
        roff.control("TP", [])
            .text([bold(command)])
            .text([roman(what)]);
    }
    roff.control("SH", ["ENVIRONMENT"])
        .text([roman(CREDENTIALS)]);
    roff.control("SH", ["EXIT STATUS"]);
    for e in Exit::ALL {
        roff.control("TP", [])
            .text([bold(e.code().to_string())])
            .text([roman(e.meaning())]);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
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
