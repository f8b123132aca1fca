//! The checked configuration: what the command line and environment hold, validated once.
//! Every error names the flag or variable to fix.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Cli, Resume};
use crate::error::Fatal;
use crate::record::{
    Action, Columns, Conventions, Entity, MapSpec, Shard, check_type_flags, value_name,
};
use crate::report::ProgressMode;
use crate::sandbox::SandboxOptions;
use crate::source::{Input, SourceError};
use crate::track::{Region, Secret};
use commands::run_flags;

mod commands;
mod file;
mod print;
mod ranges;
mod state;
mod written;

pub use file::{Args, ArgsError, FromFile};

use ranges::check_ranges;
pub use state::{StateConfig, removal_flag};
use written::{Written, check_written, same_file};

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Validate only.
    DryRun,
    /// The built-in stand-in, started in-process.
    Sandbox(Box<SandboxOptions>),
    /// A Track API host.
    Remote {
        base: String,
        site_id: String,
        api_key: Secret,
        /// Where the key was read from, if not the environment.
        api_key_file: Option<PathBuf>,
        /// The region the user asked for (or implied), checked by the preflight.
        region: Region,
    },
}

impl Target {
    /// Where records go, as a checkpoint records it: a resume must go to the same workspace
    /// (the host may differ: `--endpoint` may point at a proxy that moved).
    pub fn describe(&self) -> String {
        match self {
            Target::DryRun => "a dry run".to_owned(),
            Target::Sandbox(_) => "the sandbox".to_owned(),
            Target::Remote {
                site_id, region, ..
            } => format!("workspace {site_id} ({})", region.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pacing {
    pub rate: f64,
    pub burst: NonZeroU32,
    pub concurrency: usize,
    /// Operations per request; 1 sends each through its v1 endpoint.
    pub batch: usize,
    pub timeout: Duration,
    pub max_retries: u32,
    pub max_retry_after: Duration,
    pub max_consecutive_failures: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub inputs: Vec<Input>,
    pub map: MapSpec,
    pub target: Target,
    pub preflight: bool,
    pub pacing: Pacing,
    /// `--resume`, when this run may carry on from a checkpoint.
    pub resume: Option<Resume>,
    /// How long a stopping run waits for requests in flight (`--stop-timeout`).
    pub stop_timeout: Duration,
    pub max_invalid: u64,
    pub failures: PathBuf,
    /// None when an input is stdin: a stream cannot be resumed.
    pub checkpoint: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    /// The flags not at their defaults that shape how the run goes (pace, limits, output),
    /// as words: the command that carries the run on repeats them.
    pub run_flags: Vec<String>,
    pub progress: ProgressMode,
    pub quiet: bool,
    pub verbose: u8,
    /// `--yes`: an action that cannot be undone goes on without asking.
    pub yes: bool,
    /// `--shared-limit`: the schedule in Redis this run paces on, if any.
    pub shared_limit: Option<SharedLimit>,
    /// `--shard K/N`: the share of the records this run takes, if not all.
    pub shard: Option<Shard>,
    /// `--state`: what an incremental sync remembers, if given.
    pub state: Option<StateConfig>,
    /// `--show N`: a dry run writes its first N operations to stdout.
    pub show: u64,
}

/// A pace shared through Redis (`--shared-limit`).
#[derive(Debug, Clone)]
pub struct SharedLimit {
    /// The URL, password included: only given to the Redis client.
    pub url: Secret,
    /// The URL as it may be shown: without its password.
    pub shown: String,
    /// Names the schedule: the workspace (site id and region) or the sandbox.
    pub workspace: String,
    /// `--shared-limit-timeout`.
    pub timeout: Duration,
}

/// Checks `--shared-limit` and its timeout; `None` when there is no flag or nothing is sent.
fn shared_limit(
    url: Option<&str>,
    timeout: f64,
    target: &Target,
) -> Result<Option<SharedLimit>, ConfigError> {
    let Some(raw) = url.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let timeout = Duration::from_secs_f64(timeout);
    let url = url::Url::parse(raw.trim()).map_err(|e| {
        bad(format!(
            "--shared-limit (or CIO_IMPORT_SHARED_LIMIT) is not a URL ({e}): give \
             redis://HOST:PORT, or rediss://HOST:PORT for TLS"
        ))
    })?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!(
            "--shared-limit must be a redis://HOST[:PORT] URL (rediss:// for TLS), got scheme \
             {}:",
            url.scheme()
        )));
    }
    let secret = Secret::new(url.as_str());
    let shown = masked_password(url.as_str()).unwrap_or_else(|| url.to_string());
    let workspace = match target {
        Target::DryRun => return Ok(None),
        Target::Sandbox(_) => "sandbox".to_owned(),
        Target::Remote {
            site_id, region, ..
        } => format!("{site_id}:{}", region.as_str()),
    };
    Ok(Some(SharedLimit {
        url: secret,
        shown,
        workspace,
        timeout,
    }))
}

/// `text`, a URL holding a password, as it may be shown: the password masked. None for
/// anything else.
fn masked_password(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    url.password()?;
    // Fails only on URLs that cannot have a password, which this one has.
    let _ = url.set_password(Some("***"));
    Some(url.to_string())
}

/// A configuration problem; the message names the flag, variable or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// Something the command line names is not usable: an input, the key file.
    #[error("{0}")]
    Setup(String),
}

/// The one place a configuration problem meets its exit code: a wrong command line ends as
/// a usage error, an unusable input or key file as a setup one.
impl From<ConfigError> for Fatal {
    fn from(e: ConfigError) -> Fatal {
        match e {
            ConfigError::Usage(message) => Fatal::Usage(message),
            ConfigError::Setup(message) => Fatal::Setup(message),
        }
    }
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError::Usage(msg.into())
}

fn setup(msg: impl Into<String>) -> ConfigError {
    ConfigError::Setup(msg.into())
}

impl Config {
    /// Checks the command line. `env_key` is `$CUSTOMERIO_TRACK_API_KEY`, passed in so tests
    /// need not touch the process environment.
    pub fn from_cli(cli: Cli, env_key: Option<String>) -> Result<Config, ConfigError> {
        check_ranges(&cli)?;
        let run_flags = run_flags(&cli);
        // At least 1: checked above.
        let burst = NonZeroU32::new(cli.burst).unwrap_or(NonZeroU32::MIN);
        let timeout = Duration::from_secs_f64(cli.timeout);
        let max_retry_after = Duration::from_secs_f64(cli.max_retry_after);
        if cli.show.is_some() && cli.summary.as_deref() == Some(Path::new("-")) {
            return Err(bad(
                "--show and --summary - both write to stdout, where they would mix: give \
                 --summary a file (--summary PATH)",
            ));
        }
        // `--resume=auto` means "when there is something to resume": a dry run, or stdin,
        // has nothing, and simply starts.
        let always = cli.resume == Some(Resume::Always);
        if cli.dry_run && always {
            return Err(bad(
                "--resume carries on a run that sends; a --dry-run has nothing to resume: drop one",
            ));
        }
        if always && cli.inputs.iter().any(|p| p.as_os_str() == "-") {
            return Err(bad(
                "--resume cannot be used with stdin (-): a stream cannot be re-read from a position",
            ));
        }
        if cli.inputs.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
            return Err(bad("stdin (-) can be given only once"));
        }

        if cli.event_name.is_some() && cli.action.event_kind().is_none() {
            return Err(bad(
                "--event-name names events: add --action event (or leave --event-name out)",
            ));
        }
        check_model(&cli)?;
        if cli.resume.is_some() && cli.inputs.iter().any(|p| p == "auto" && !p.exists()) {
            return Err(bad(
                "there is no input file named auto: to resume only when a checkpoint exists, \
                 write --resume=auto (with the =; after a bare --resume, the next word is an \
                 input)",
            ));
        }
        let inputs = cli
            .inputs
            .iter()
            .map(|p| {
                let mut input = Input::check(p, cli.format).map_err(|e| match e {
                    // The format cannot be told: the command line must say it.
                    SourceError::Input { .. } => bad(e.to_string()),
                    // No file at the path: the argument is mistyped. (One that cannot be
                    // read is the machine's problem.)
                    SourceError::Open { .. } if !p.exists() => bad(e.to_string()),
                    e => setup(e.to_string()),
                })?;
                input.given_delimiter = cli.delimiter;
                input.encoding = cli.encoding.filter(|e| *e != encoding_rs::UTF_8);
                Ok(input)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let state = state::state_config(&cli, &inputs)?;
        let failures = match cli.failures {
            Some(p) => p,
            // A dry run's list is its own: it must not take the place of a real run's, which
            // may be half-way (--resume appends to it) or not replayed yet.
            None if cli.dry_run => {
                let path = default_failures_path(&inputs);
                let name = path
                    .to_string_lossy()
                    .replacen(".failures", ".dry-run.failures", 1);
                PathBuf::from(name)
            }
            None => {
                let path = default_failures_path(&inputs);
                match cli.shard {
                    // Each shard its own failures, checkpoint and lock files.
                    Some(shard) => PathBuf::from(path.to_string_lossy().replacen(
                        ".failures",
                        &format!(".{}.failures", shard.file_tag()),
                        1,
                    )),
                    None => path,
                }
            }
        };

        let target = if cli.dry_run {
            Target::DryRun
        } else if cli.sandbox {
            Target::Sandbox(Box::new(SandboxOptions {
                limit: (cli.sandbox_limit > 0).then_some(cli.sandbox_limit),
                fail_rate: cli.sandbox_fail_rate,
                drop_rate: cli.sandbox_drop_rate,
                stall_rate: cli.sandbox_stall_rate,
                // A stall must outlast the client's timeout to exercise it.
                stall_for: timeout + Duration::from_secs(1),
                latency: Duration::from_millis(cli.sandbox_latency),
                // The stand-in lives where the user says the workspace does.
                region: cli.region,
                ..SandboxOptions::default()
            }))
        } else {
            let site_id = cli.site_id.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                bad("no site id: set CUSTOMERIO_SITE_ID or pass --site-id (or try --sandbox or --dry-run)")
            })?;
            let api_key = match &cli.api_key_file {
                Some(path) => read_key_file(path)?,
                None => env_key
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .map(Secret::new)
                    .ok_or_else(|| {
                        bad("no API key: set CUSTOMERIO_TRACK_API_KEY or pass --api-key-file PATH")
                    })?,
            };
            let base = match &cli.endpoint {
                Some(url) => check_endpoint(url)?,
                None => cli.region.host().to_owned(),
            };
            Target::Remote {
                base,
                site_id: site_id.trim().to_owned(),
                api_key,
                api_key_file: cli.api_key_file,
                region: cli.region,
            }
        };

        let shared_limit = shared_limit(
            cli.shared_limit.as_deref(),
            cli.shared_limit_timeout,
            &target,
        )?;
        if let Some(stream) = inputs.iter().find(|i| i.is_stream()).filter(|_| always) {
            return Err(bad(format!(
                "--resume cannot be used with {}: it is a stream (a pipe or a device), which \
                 cannot be re-read from a position",
                stream.name()
            )));
        }
        let checkpoint = (!inputs.iter().any(Input::is_stream)).then(|| {
            cli.checkpoint
                .unwrap_or_else(|| crate::checkpoint::default_path(&failures))
        });
        // What the run writes must be neither an input nor another of its own files: a
        // checkpoint written over an input, then removed at the end, would destroy it.
        let written = [
            ("--failures", Some(&failures), true),
            ("--checkpoint", checkpoint.as_ref(), true),
            ("--state", state.as_ref().map(|s| &s.path), true),
            (
                "--summary",
                cli.summary.as_ref().filter(|p| p.as_os_str() != "-"),
                false,
            ),
        ];
        let written: Vec<Written> = written
            .into_iter()
            .filter_map(|(flag, path, replaced)| {
                Some(Written {
                    flag,
                    path: path?,
                    replaced,
                })
            })
            .collect();
        check_written(&inputs, &written)?;
        check_type_flags(&cli.types).map_err(bad)?;
        Ok(Config {
            state,
            shared_limit,
            shard: cli.shard,
            show: cli.show.unwrap_or(0),
            inputs,
            map: MapSpec {
                action: cli.action,
                id_column: cli.id_column,
                id_type: cli.id_type,
                types: cli.types,
                conventions: Conventions {
                    zone: cli.timezone.unwrap_or(jiff::tz::TimeZone::UTC),
                    decimal_comma: cli.decimal_comma,
                    strip_apostrophe: cli.strip_apostrophe,
                },
                columns: Columns::new(&cli.rename, &cli.drop, &cli.flatten).map_err(bad)?,
                empty: cli.empty,
                oversize: cli.oversize,
                event_name: cli.event_name,
                entity: cli.entity,
                object_type: cli.object_type,
                only_existing: cli.only_existing,
                // A destroying --action is confirmed (or refused) for the whole run.
                may_destroy: cli.yes || cli.dry_run || cli.sandbox || cli.action.destroys(),
            },
            target,
            preflight: !cli.no_preflight,
            pacing: Pacing {
                rate: cli.rate,
                burst,
                concurrency: cli.concurrency,
                batch: cli.batch,
                timeout,
                max_retries: cli.max_retries,
                max_retry_after,
                max_consecutive_failures: cli.max_consecutive_failures,
            },
            // Nothing to resume in a dry run or from a stream (no checkpoint).
            resume: cli.resume.filter(|_| !cli.dry_run && checkpoint.is_some()),
            stop_timeout: Duration::from_secs_f64(cli.stop_timeout),
            max_invalid: cli.max_invalid,
            checkpoint,
            failures,
            summary: cli.summary,
            run_flags,
            progress: cli.progress,
            quiet: cli.quiet,
            verbose: cli.verbose,
            yes: cli.yes,
        })
    }
}

/// The data-model flags: what `--entity`, `--object-type` and `--only-existing` go with.
fn check_model(cli: &Cli) -> Result<(), ConfigError> {
    let action = value_name(cli.action);
    if cli.entity == Entity::Object && !matches!(cli.action, Action::Identify | Action::Delete) {
        return Err(bad(format!(
            "--entity object takes --action identify or delete, not {action}; a person's \
             relationships to objects are --action add-relationships (or delete-relationships)"
        )));
    }
    let takes_type = cli.entity == Entity::Object
        || matches!(
            cli.action,
            Action::AddRelationships | Action::DeleteRelationships
        );
    if let Some(object_type) = &cli.object_type {
        if !takes_type {
            return Err(bad(
                "--object-type names the objects of --entity object or of a relationship \
                 action (add-relationships, delete-relationships): add one or leave it out",
            ));
        }
        let digits = !object_type.is_empty() && object_type.bytes().all(|b| b.is_ascii_digit());
        if !digits || object_type.starts_with('0') || object_type.len() > 10 {
            return Err(bad(format!(
                "--object-type {object_type:?}: an object type id is a whole number from 1 \
                 (Customer.io shows it under Data & Integrations > Objects)"
            )));
        }
    }
    if cli.only_existing && (cli.action != Action::Identify || cli.entity != Entity::Person) {
        return Err(bad(format!(
            "--only-existing updates people who exist: it goes with --action identify, not \
             {action}{}",
            if cli.entity == Entity::Object {
                " of objects"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        setup(format!(
            "--api-key-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(setup(format!(
            "--api-key-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Secret::new(key))
}

/// Accepts https anywhere, and http only to loopback: credentials must not cross a network
/// in the clear.
fn check_endpoint(url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| bad(format!("--endpoint {url:?} is not a URL: {e}")))?;
    // Credentials go in the Authorization header; a URL holding them would be printed (the
    // replay hint) and logged.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "--endpoint must not hold credentials (user:password@): the site id and key go in \
             CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY",
        ));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(format!(
                "--endpoint {url}: plain http:// is allowed only to a loopback address; use https://"
            )));
        }
        other => {
            return Err(bad(format!(
                "--endpoint {url}: unsupported scheme {other:?}"
            )));
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(format!(
            "--endpoint {url}: give only scheme, host, port and path"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `<stem>.failures.ndjson` in the current directory, stem from the first input: `users.csv.gz`
/// gives `users.failures.ndjson`. Replaying `users.failures.ndjson` writes
/// `users.failures-2.ndjson` so the file being read is never written.
pub fn default_failures_path(inputs: &[Input]) -> PathBuf {
    let stem = inputs
        .first()
        .filter(|i| !i.is_stdin())
        .and_then(|i| i.path.file_name())
        .map(|n| {
            let n = n.to_string_lossy();
            let n = n.strip_suffix(".gz").unwrap_or(&n);
            n.rsplit_once('.').map_or(n, |(s, _)| s).to_owned()
        })
        .unwrap_or_else(|| "stdin".to_owned());
    let (base, mut n) = match stem.rsplit_once(".failures") {
        Some((b, rest)) if rest.is_empty() || rest.starts_with('-') => (
            b.to_owned(),
            rest.trim_start_matches('-').parse::<u32>().unwrap_or(1) + 1,
        ),
        _ => (stem, 1),
    };
    loop {
        let name = if n == 1 {
            format!("{base}.failures.ndjson")
        } else {
            format!("{base}.failures-{n}.ndjson")
        };
        let path = PathBuf::from(name);
        if !inputs.iter().any(|i| same_file(&i.path, &path)) {
            return path;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn debug_output_of_a_config_never_shows_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "sk-from-file-5e6f7a\n").unwrap();
        let parse = |extra: &[&str]| {
            let mut args = vec!["cio-import", input.to_str().unwrap(), "--site-id", "site"];
            args.extend(extra);
            Cli::try_parse_from(args).unwrap()
        };

        let from_env = Config::from_cli(parse(&[]), Some("sk-from-env-1a2b3c".into())).unwrap();
        let shown = format!("{from_env:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("sk-from-env-1a2b3c"), "{shown}");

        let from_file =
            Config::from_cli(parse(&["--api-key-file", key_file.to_str().unwrap()]), None).unwrap();
        let shown = format!("{from_file:?} {from_file:#?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("sk-from-file-5e6f7a"), "{shown}");
    }

    #[test]
    fn the_replay_command_keeps_the_mapping_and_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let config = |extra: &[&str]| {
            let mut args = vec!["cio-import", input.to_str().unwrap()];
            args.extend(extra);
            Config::from_cli(Cli::try_parse_from(args).unwrap(), Some("key".into())).unwrap()
        };
        let failures = Path::new("users.failures.ndjson");
        let sandbox = config(&[
            "--sandbox",
            "--action",
            "event",
            "--event-name",
            "signed up",
            "--id-column",
            "user_id",
            "--type",
            "age=number",
            "--empty",
            "clear",
        ]);
        assert_eq!(
            sandbox.replay_command(failures),
            "cio-import users.failures.ndjson --action event --event-name 'signed up' \
             --id-column user_id --type age=number --empty clear --sandbox"
        );
        let eu = config(&["--site-id", "s", "--region", "eu"]);
        assert_eq!(
            eu.replay_command(failures),
            "cio-import users.failures.ndjson --site-id s --region eu"
        );
        let key = dir.path().join("stage.key");
        std::fs::write(&key, "k\n").unwrap();
        let key = key.to_str().unwrap();
        let keyed = config(&["--site-id", "s", "--api-key-file", key]);
        assert_eq!(
            keyed.replay_command(failures),
            format!("cio-import users.failures.ndjson --site-id s --api-key-file {key}")
        );
        // A replay records what it sends in the run's state, and never sweeps.
        let synced = config(&[
            "--sandbox",
            "--state",
            "users.db",
            "--missing",
            "delete",
            "--max-missing",
            "9",
        ]);
        assert_eq!(
            synced.replay_command(failures),
            "cio-import users.failures.ndjson --sandbox --state users.db"
        );
        let odd = config(&["--site-id", "s", "--endpoint", "http://127.0.0.1:9"]);
        assert_eq!(
            odd.replay_command(Path::new("it's.ndjson")),
            "cio-import 'it'\\''s.ndjson' --site-id s --endpoint http://127.0.0.1:9"
        );
    }

    #[test]
    fn the_resume_command_repeats_the_files_and_the_flags_not_at_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let input = input.to_str().unwrap();
        let config = |extra: &[&str]| {
            let mut args = vec!["cio-import", input, "--sandbox"];
            args.extend(extra);
            Config::from_cli(Cli::try_parse_from(args).unwrap(), None).unwrap()
        };
        let plain = config(&["--rate", "50", "--batch", "100", "--progress", "auto"]);
        assert_eq!(
            plain.resume_command(),
            format!("cio-import {input} --sandbox --resume")
        );
        let folder = dir.path().to_str().unwrap();
        let (failures, checkpoint) = (format!("{folder}/f.ndjson"), format!("{folder}/c.json"));
        let chosen = config(&[
            "--type",
            "age=number",
            "--failures",
            &failures,
            "--checkpoint",
            &checkpoint,
            "--rate",
            "0.5",
            "--max-invalid",
            "18446744073709551615",
            "--stop-timeout",
            "0",
            "--summary",
            "-",
            "-vv",
        ]);
        assert_eq!(
            chosen.resume_command(),
            format!(
                "cio-import {input} --type age=number --sandbox --failures {failures} \
                 --checkpoint {checkpoint} --rate 0.5 --max-invalid 18446744073709551615 \
                 --stop-timeout 0 --summary - -v -v --resume"
            )
        );
    }

    #[test]
    fn no_file_the_run_writes_may_be_an_input_or_another_of_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let input = input.to_str().unwrap();
        let other = dir.path().join("out.json");
        let other = other.to_str().unwrap();
        let refused = |extra: &[&str]| {
            let mut args = vec!["cio-import", input, "--sandbox"];
            args.extend(extra);
            match Config::from_cli(Cli::try_parse_from(args).unwrap(), None) {
                Err(ConfigError::Usage(message)) => message,
                other => panic!("{extra:?} was not refused: {other:?}"),
            }
        };
        for flag in ["--failures", "--checkpoint", "--summary"] {
            let message = refused(&[flag, input]);
            assert!(
                message.starts_with(&format!("{flag} {input} is also an input")),
                "{message}"
            );
        }
        let message = refused(&["--checkpoint", other, "--summary", other]);
        assert!(
            message.starts_with("--checkpoint and --summary name the same file"),
            "{message}"
        );
        // Not made yet, and written two ways.
        let dotted = dir.path().join(".").join("out.json");
        let message = refused(&[
            "--failures",
            other,
            "--checkpoint",
            dotted.to_str().unwrap(),
        ]);
        assert!(
            message.starts_with("--failures and --checkpoint name the same file"),
            "{message}"
        );
        let missing = dir.path().join("no-such-folder").join("f.ndjson");
        let message = refused(&["--failures", missing.to_str().unwrap()]);
        assert!(
            message.contains("no-such-folder does not exist; create it first"),
            "{message}"
        );
        assert!(
            Config::from_cli(
                Cli::try_parse_from(["cio-import", input, "--sandbox", "--summary", "-"]).unwrap(),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn an_endpoint_holding_credentials_is_refused_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let args = [
            "cio-import",
            input.to_str().unwrap(),
            "--site-id",
            "s",
            "--endpoint",
            "http://me:hunter2@proxy.example.com",
        ];
        match Config::from_cli(Cli::try_parse_from(args).unwrap(), Some("k".into())) {
            Err(ConfigError::Usage(message)) => {
                assert!(message.contains("must not hold credentials"), "{message}");
                assert!(!message.contains("hunter2"), "{message}");
            }
            other => panic!("not refused: {other:?}"),
        }
    }
}
