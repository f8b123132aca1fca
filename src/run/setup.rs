//! Setup: everything checked and made ready before the first request — the summary path,
//! every input and its header against `--type`, the confirmation of a run that cannot be
//! undone, the checkpoint, the state (`--state`), the client and its credentials check (or
//! the sandbox), and an earlier run's files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::Checkpoint;
use crate::config::{Config, Target};
use crate::error::Fatal;
use crate::lock::RunLock;
use crate::record::{Columns, FlagUse, MapError, Mapper, Pattern, Rename, input_path, type_flag};
use crate::report::{Counters, say};
use crate::sandbox::Sandbox;
use crate::send::{Client, RetryPolicy};
use crate::settle::cut_to;
use crate::shell;
use crate::source::{Input, Reader};
use crate::state::State;
use crate::track::Secret;

/// One input, opened and checked before anything is sent.
pub(super) struct Opened {
    pub name: String,
    /// The input's full path, which the ids of its events without a time take, when `name`
    /// does not say it: their failures lines keep it, so that a replay gives the same ids.
    pub path: Option<String>,
    pub reader: Reader,
    pub mapper: Mapper,
}

/// What a run starts with.
pub(super) struct Prepared {
    pub opened: Vec<Opened>,
    /// Where the checkpoint is kept, and the one this run starts from.
    pub checkpoint: Option<(PathBuf, Checkpoint)>,
    /// Whether the run carries on from that checkpoint.
    pub resumed: bool,
    /// None in a dry run.
    pub client: Option<Client>,
    pub sandbox: Option<Sandbox>,
    /// `--state`, open for this run.
    pub state: Option<State>,
    /// Held until the run ends.
    pub lock: RunLock,
}

/// Checks and opens all a run needs, in the order a user is told of problems: files the
/// run cannot write and inputs it cannot read before the network, the credentials before
/// an earlier run's files are replaced.
pub(super) async fn prepare(
    config: &Config,
    counters: &Counters,
    policy: &RetryPolicy,
) -> Result<Prepared, Fatal> {
    // First, so that a second run over the same files touches none of them.
    // A link as --failures or --checkpoint was refused with the config (`check_written`).
    let lock = RunLock::take(&config.failures).map_err(Fatal::Setup)?;

    // The summary file is emptied now: a path it cannot be written to is found before the
    // import rather than after it, and an earlier run's summary never passes for this one's.
    if let Some(path) = config.summary.as_ref().filter(|p| p.as_os_str() != "-") {
        std::fs::write(path, "").map_err(|error| Fatal::Summary {
            path: path.clone(),
            error,
        })?;
    }

    // Every input is opened and its header checked before the first request.
    let mut opened = config
        .inputs
        .iter()
        .map(|input| open(input, config, counters))
        .collect::<Result<Vec<_>, _>>()?;
    check_column_flags(config, &opened)?;
    if !config.quiet {
        tell_plans(&opened);
    }
    // Before the network, and before an earlier run's files are replaced.
    super::confirm::confirm(config)?;

    // A resume's checkpoint is checked before anything else happens.
    let (checkpoint, resumed) = match (&config.checkpoint, &config.target) {
        (_, Target::DryRun) | (None, _) => (None, false),
        (Some(path), _) => {
            let (cp, resumed) = super::resume::start_from(path, config)?;
            (Some((path.clone(), cp)), resumed)
        }
    };

    // A resume does not read its inputs' first lines again: what they used is not known.
    if !resumed {
        watch_flags(&mut opened, &config.map.columns);
    }

    // Before the network too: a state of another workspace is refused at once.
    let state = match &config.state {
        None => None,
        Some(state) => Some(
            State::open(
                &state.path,
                &config.target.describe(),
                state.job.as_deref(),
                resumed,
                matches!(config.target, Target::DryRun),
            )
            .map_err(Fatal::State)?,
        ),
    };
    if let (Some(state), Some(flags)) = (&state, &config.state)
        && let Some(theirs) = state.unchecked_target()
    {
        say::warning(format_args!(
            "--dry-run --state {}: compared with what was sent to {theirs}; a dry run names \
             no workspace, so it does not check that this is the one you mean",
            flags.path.display()
        ));
    }

    let (client, sandbox) = connect(config, policy).await?;
    match checkpoint.as_ref() {
        Some((_, cp)) if resumed => cut_failures(config, cp)?,
        _ => start_fresh(checkpoint.as_ref(), config)?,
    }
    Ok(Prepared {
        opened,
        checkpoint,
        resumed,
        client,
        sandbox,
        state,
        lock,
    })
}

fn open(input: &Input, config: &Config, counters: &Counters) -> Result<Opened, Fatal> {
    let name = input.name();
    let reader = input
        .open(counters.bytes.clone())
        .map_err(|e| Fatal::Input(e.to_string()))?;
    let mut mapper = Mapper::new(&config.map, reader.headers()).map_err(|e| {
        let message = format!("{name}: {e}");
        match e {
            MapError::Flag(_) => Fatal::Usage(message),
            MapError::Header(_) => Fatal::Setup(message),
        }
    })?;
    let path = input_path(&input.path, input.is_stream(), &name);
    mapper.set_input(&path, input.is_stream());
    let path = (config.map.action.event_kind().is_some() && path != name).then_some(path);
    if let Some(note) = mapper.untimed_note()
        && !config.quiet
    {
        say::say(format_args!("{name}: {note}"));
    }
    let now = jiff::Timestamp::now().as_second();
    mapper.count_recent_events(now, counters.recent_events.clone());

    Ok(Opened {
        name,
        path,
        reader,
        mapper,
    })
}

/// Each input's plan, and the warnings about its header, before anything is sent.
fn tell_plans(opened: &[Opened]) {
    // An empty CSV has nothing to plan.
    for o in opened
        .iter()
        .filter(|o| o.reader.headers().is_none_or(|h| !h.is_empty()))
    {
        say::say(format_args!(
            "{}: {}",
            o.name,
            o.mapper.plan_lines().join("\n")
        ));
        for warning in o.mapper.header_warnings() {
            say::warning(format_args!("{}: {warning}", o.name));
        }
    }
}

/// A `--type`, `--rename` or `--drop` must name a column (or match one, as a pattern) some
/// input has: a name mistyped would silently send the column as it is. Only CSV headers
/// list columns, so with an NDJSON input (whose keys vary by line) nothing is checked; with
/// none, `--flatten` has nothing to lift.
fn check_column_flags(config: &Config, opened: &[Opened]) -> Result<(), Fatal> {
    if opened.iter().any(|o| o.reader.headers().is_none()) {
        return Ok(());
    }
    if let Some(key) = config.map.columns.flatten().first() {
        return Err(Fatal::Usage(format!(
            "{}: lifts the keys of an NDJSON object, and every input is CSV, \
             whose cells do not nest; leave it out",
            shell::flag("--flatten", key)
        )));
    }
    // (input, columns as mapped, columns as the header has them)
    let columns: Vec<(&str, &[String], &[String])> = opened
        .iter()
        .filter_map(|o| Some((o.name.as_str(), o.mapper.columns()?, o.mapper.header()?)))
        .collect();
    let Some(&(name, mapped, first)) = columns.first() else {
        return Ok(());
    };
    let any = |pattern: &Pattern, original: bool| {
        columns.iter().any(|(_, mapped, header)| {
            let names = if original { header } else { mapped };
            names.iter().any(|c| pattern.matches(c))
        })
    };
    let flags = &config.map.columns;
    let types = config
        .map
        .types
        .iter()
        .map(|(c, ty)| (Pattern::new(c), None, type_flag(c, ty), format!("={ty}")));
    let renames = flags.renames().iter();
    let renames = renames.map(|r| (r.from.clone(), Some(r), r.flag(), String::new()));
    let drops = flags.drops().iter();
    let drops = drops.map(|d| {
        (
            d.clone(),
            None,
            shell::flag("--drop", d.as_str()),
            String::new(),
        )
    });
    let Some((pattern, rename, flag, tail)) = types
        .chain(renames)
        .chain(drops)
        .find(|(p, rename, ..)| !any(p, rename.is_some()))
    else {
        return Ok(());
    };
    let what = if pattern.is_exact() {
        format!("no input has a column {:?}", pattern.as_str())
    } else {
        format!(
            "the pattern {:?} matches no column of any input",
            pattern.as_str()
        )
    };
    // The header's column an exact name meant, before a rename took it away.
    let renamed = columns
        .iter()
        .find_map(|(_, _, header)| header.iter().find(|h| pattern.matches(h)))
        .filter(|_| pattern.is_exact());
    // Renames do not chain, and other flags name a renamed column by its new name.
    let why = match rename {
        Some(rename) => flags
            .renamed_onto(pattern.as_str())
            .filter(|_| pattern.is_exact())
            .map(|earlier| {
                let direct = Rename {
                    from: earlier.from.clone(),
                    to: rename.to.clone(),
                };
                format!(
                    "; {:?} is the new name {} gives, and renames do not chain: each OLD names \
                     a column as the input has it ({})",
                    pattern.as_str(),
                    earlier.flag(),
                    direct.flag()
                )
            }),
        None => renamed.and_then(|h| flags.by_new_name(h)).map(|(why, to)| {
            let verb = flag.split_whitespace().next().unwrap_or_default();
            let meant = shell::flag(verb, &format!("{to}{tail}"));
            format!("; {why}: did you mean {meant}?")
        }),
    };
    let listed = match (why, rename.is_none() && !flags.renames().is_empty()) {
        (Some(why), _) => why,
        (None, true) => format!(
            "; {name}'s columns after --rename are: {}",
            mapped.join(", ")
        ),
        (None, false) => format!("; {name}'s header has: {}", first.join(", ")),
    };
    Err(Fatal::Usage(format!("{flag}: {what}{listed}")))
}

/// With an NDJSON input, whose keys are known only as its lines are read, every input notes
/// which column flags its keys use, and the last NDJSON input read tells, at its end, of
/// each flag none used (CSV headers are checked by [`check_column_flags`] before the run).
fn watch_flags(opened: &mut [Opened], columns: &Columns) {
    let Some(last) = opened.iter().rposition(|o| o.reader.headers().is_none()) else {
        return;
    };
    if columns.is_empty() {
        return;
    }
    let all = Arc::new(Mutex::new(FlagUse::new(columns)));
    for (i, o) in opened.iter_mut().enumerate() {
        o.mapper.watch_flags(all.clone(), i == last);
    }
}

/// The client for the run's target (and the sandbox it talks to), its credentials checked
/// unless --no-preflight; no client in a dry run.
async fn connect(
    config: &Config,
    policy: &RetryPolicy,
) -> Result<(Option<Client>, Option<Sandbox>), Fatal> {
    let client = |base: &str, site_id: &str, api_key: &Secret| {
        Client::new(
            base,
            site_id,
            api_key,
            config.pacing.timeout,
            config.pacing.concurrency,
        )
        .map_err(|e| Fatal::Setup(format!("{e:#}")))
    };
    let (client, region, sandbox) = match &config.target {
        Target::DryRun => return Ok((None, None)),
        Target::Sandbox(opts) => {
            let sb = Sandbox::start((**opts).clone())
                .await
                .map_err(Fatal::Sandbox)?;
            let client = client(
                &sb.base_url(),
                &opts.site_id,
                &Secret::new(opts.api_key.clone()),
            )?;
            if !config.quiet {
                say::say(format_args!("sandbox listening on {}", sb.base_url()));
            }
            (client, opts.region, Some(sb))
        }
        Target::Remote {
            base,
            site_id,
            api_key,
            region,
            ..
        } => (client(base, site_id, api_key)?, *region, None),
    };
    if config.preflight {
        client
            .preflight(region, policy)
            .await
            .map_err(|e| Fatal::Remote(format!("{e:#}")))?;
    }
    Ok((Some(client), sandbox))
}

/// A resume appends to the failures file after the lines its checkpoint counts: what a
/// stopped run wrote after its last checkpoint (a line torn by a crash included) is of
/// records the resume reads again.
fn cut_failures(config: &Config, checkpoint: &Checkpoint) -> Result<(), Fatal> {
    let cut = cut_to(&config.failures, checkpoint.failures_bytes)
        .map_err(|e| Fatal::Setup(e.to_string()))?;
    if cut > 0 && !config.quiet {
        say::warning(format_args!(
            "{}: cut back to the lines the checkpoint counts ({cut} bytes written after it \
             went); their records are read again",
            config.failures.display()
        ));
    }
    Ok(())
}

/// A run that starts over replaces an earlier run's checkpoint and failures file, once the
/// credentials are known to work.
fn start_fresh(checkpoint: Option<&(PathBuf, Checkpoint)>, config: &Config) -> Result<(), Fatal> {
    if let Some((path, cp)) = checkpoint {
        // `--resume=auto` said already why it starts over.
        if path.exists() && !config.quiet && config.resume.is_none() {
            say::warning(format_args!(
                "starting over: the checkpoint {} of an earlier run is replaced (--resume carries on from it)",
                path.display()
            ));
        }
        cp.save(path).map_err(|error| Fatal::Checkpoint {
            path: path.clone(),
            error,
        })?;
    }
    // A failures file left by an earlier run would read as this run's; it may also be the
    // only list of what that run could not send, so it is kept under another name.
    let kept = set_aside(&config.failures).map_err(|error| Fatal::SetAside {
        path: config.failures.clone(),
        error,
    })?;
    if let Some(kept) = kept
        && !config.quiet
    {
        say::warning(format_args!(
            "{} of an earlier run is kept as {}",
            config.failures.display(),
            kept.display()
        ));
    }
    Ok(())
}

/// Renames the file at `path`, if there is one, to `<stem>.<when it was written>.ndjson`
/// (`users.failures.20261129T174400Z.ndjson`); an empty one is removed.
fn set_aside(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Only a file is renamed or removed: /dev/null (empty, so "removed") is refused by the
    // config, and one made in its place since is refused when opened.
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() == 0 {
        std::fs::remove_file(path)?;
        return Ok(None);
    }
    let when = meta
        .modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map_or_else(
            || "earlier".to_owned(),
            |t| t.strftime("%Y%m%dT%H%M%SZ").to_string(),
        );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".ndjson").unwrap_or(&name);
    let mut kept = path.with_file_name(format!("{stem}.{when}.ndjson"));
    let mut n = 1;
    while kept.exists() {
        n += 1;
        kept = path.with_file_name(format!("{stem}.{when}-{n}.ndjson"));
    }
    std::fs::rename(path, &kept)?;
    Ok(Some(kept))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// Writes `text` at `path`, as if written at 2023-11-14 22:13:20 UTC.
    fn write_then(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(then).unwrap();
    }

    #[test]
    fn an_earlier_failures_file_is_kept_under_the_time_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.failures.ndjson");
        assert_eq!(set_aside(&path).unwrap(), None, "no file, nothing to keep");

        std::fs::write(&path, "").unwrap();
        assert_eq!(set_aside(&path).unwrap(), None);
        assert!(!path.exists(), "an empty file is removed");

        write_then(&path, "{}\n");
        let kept = set_aside(&path).unwrap().unwrap();
        assert_eq!(
            kept,
            dir.path().join("users.failures.20231114T221320Z.ndjson")
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{}\n");
        assert!(!path.exists());

        // Another of the same second gets a name of its own.
        write_then(&path, "{}\n");
        assert_eq!(
            set_aside(&path).unwrap().unwrap(),
            dir.path().join("users.failures.20231114T221320Z-2.ndjson")
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_a_file_is_set_aside_never_a_pipe_or_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe.ndjson");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status();
        assert!(made.unwrap().success());
        let link = dir.path().join("link.ndjson");
        std::os::unix::fs::symlink(&pipe, &link).unwrap();
        for path in [&pipe, &link] {
            assert_eq!(set_aside(path).unwrap(), None, "{}", path.display());
        }
        let kind = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();
        use std::os::unix::fs::FileTypeExt;
        assert!(kind(&pipe).is_fifo(), "the empty pipe is still there");
        assert!(kind(&link).is_symlink());
    }
}
