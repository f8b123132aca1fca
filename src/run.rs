//! The run: opens and checks every input, then wires the stages together (a reader
//! thread that reads and maps, the dispatcher that keeps each person's records in order,
//! the workers that send) and settles every record in the ledger.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Checkpoint, Skip};
use crate::config::{Config, Target};
use crate::exit::Exit;
use crate::limit::Pacer;
use crate::record::{Mapper, Operation};
use crate::report::{Counters, Reporter, Summary};
use crate::sandbox::Sandbox;
use crate::send::{Client, Delivery, Outgoing, RetryPolicy, Sender, batch_body_len};
use crate::settle::{Ledger, Outcome, failure_line};
use crate::source::{Input, Reader, Row};
use crate::track::{MAX_BATCH_BYTES, MAX_OPERATION_BYTES};

/// One way to stop: the first Ctrl-C (or a fatal error) cancels `token`, which stops
/// reading and lets requests in flight finish.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    interrupted: Arc<AtomicBool>,
}

impl Shutdown {
    /// A signal: stop, and end with exit 130.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.token.cancel();
    }
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Ctrl-C or SIGTERM once: stop reading and drain. Twice: exit at once (the checkpoint on
/// disk is still valid, as it is only ever replaced whole).
pub fn watch_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            if wait_for_signal().await.is_err() {
                return;
            }
            signals += 1;
            if signals == 1 {
                // The run says so, above its progress bar.
                shutdown.interrupt();
            } else {
                std::process::exit(i32::from(Exit::Interrupted.code()));
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// How a run ended.
pub struct RunOutcome {
    pub summary: Summary,
    pub exit: Exit,
    /// What made the run fatal, for main to print.
    pub error: Option<anyhow::Error>,
}

/// One input, opened and checked before anything is sent.
struct Opened {
    name: String,
    reader: Reader,
    mapper: Mapper,
}

/// A valid record on its way to a worker.
struct Work {
    seq: u64,
    source: Arc<str>,
    line: u64,
    out: Outgoing,
}

/// How often the checkpoint is written while the settled position moves. Records settled
/// since the last write are sent again by a resume after a crash, so this stays short.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// How long a batch waits to fill before it goes anyway: short beside the pace, so a slow
/// input (stdin) never holds records back for long.
const BATCH_LINGER: Duration = Duration::from_millis(50);

/// Records parked behind an earlier record for the same person, at most.
const MAX_PARKED: usize = 1024;

/// Invalid rows told on stderr as they are met; the failures file has every one.
const INVALID_SHOWN: u64 = 10;

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    let counters = Arc::new(Counters::default());

    // The summary file is emptied now: a path it cannot be written to is found before the
    // import rather than after it, and an earlier run's summary never passes for this one's.
    if let Some(path) = config.summary.as_ref().filter(|p| p.as_os_str() != "-") {
        std::fs::write(path, "")
            .with_context(|| format!("--summary {}: cannot write it", path.display()))?;
    }

    // Every input is opened and its header checked before the first request.
    let opened = config
        .inputs
        .iter()
        .map(|input| open(input, &config, &counters))
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_types(&config, &opened)?;

    let dry_run = matches!(config.target, Target::DryRun);
    // A resume's checkpoint is checked before anything else happens.
    let checkpoint = match (&config.checkpoint, dry_run) {
        (Some(path), false) => Some((path.clone(), load_checkpoint(path, &config)?)),
        _ => None,
    };
    let skips: Vec<Skip> = (0..opened.len())
        .map(|i| checkpoint.as_ref().map_or(Skip::NONE, |(_, cp)| cp.skip(i)))
        .collect();

    let ledger = Arc::new(Mutex::new(Ledger::new(
        counters.clone(),
        config.failures.clone(),
        config.resume,
    )));

    let total_bytes = config.inputs.iter().map(|i| i.size).sum::<Option<u64>>();
    let reporter = Reporter::new(config.progress, config.quiet, config.verbose, total_bytes);

    let mut sandbox = None;
    let client = match &config.target {
        Target::DryRun => None,
        Target::Sandbox(opts) => {
            let sb = Sandbox::start((**opts).clone())
                .await
                .context("cannot start the sandbox")?;
            let client = Client::new(
                &sb.base_url(),
                &opts.site_id,
                &crate::track::Secret::new(opts.api_key.clone()),
                config.pacing.timeout,
                config.pacing.concurrency,
            )?;
            if !config.quiet {
                eprintln!("cio-import: sandbox listening on {}", sb.base_url());
            }
            sandbox = Some(sb);
            Some((client, opts.region))
        }
        Target::Remote {
            base,
            site_id,
            api_key,
            region,
            ..
        } => Some((
            Client::new(
                base,
                site_id,
                api_key,
                config.pacing.timeout,
                config.pacing.concurrency,
            )?,
            *region,
        )),
    };
    if let Some((client, region)) = &client
        && config.preflight
    {
        client.preflight(*region).await?;
    }
    if !config.resume {
        start_fresh(checkpoint.as_ref(), &config)?;
    }

    let pacer = Arc::new(Pacer::new(config.pacing.rate, config.pacing.burst));
    let sender = client.map(|(client, _)| {
        Arc::new(Sender::new(
            client,
            pacer.clone(),
            counters.clone(),
            reporter.clone(),
            RetryPolicy {
                max_retries: config.pacing.max_retries,
                max_retry_after: config.pacing.max_retry_after,
                max_consecutive_failures: config.pacing.max_consecutive_failures,
            },
            config.pacing.batch > 1,
            shutdown.token.clone(),
        ))
    });

    {
        let reporter = reporter.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.token.cancelled().await;
            if shutdown.is_interrupted() {
                reporter.log(
                    "stopping: finishing requests in flight (press Ctrl-C again to quit at once)",
                );
            }
        });
    }

    let drawing = CancellationToken::new();
    let draw = {
        let reporter = reporter.clone();
        let counters = counters.clone();
        let pacer = pacer.clone();
        let sending = sender.is_some();
        let done = drawing.clone();
        tokio::spawn(async move {
            reporter
                .draw(counters, move || sending.then(|| pacer.rate()), done)
                .await
        })
    };

    let (tx, rx) = mpsc::channel::<Work>(config.pacing.concurrency * 4);
    let reading = {
        let ledger = ledger.clone();
        let counters = counters.clone();
        let stop = shutdown.token.clone();
        let tx = sender.is_some().then_some(tx);
        let reading = Reading {
            opened,
            skips,
            ledger,
            counters,
            reporter: reporter.clone(),
            tx,
            stop,
            rules: ReadRules {
                max_invalid: config.max_invalid,
                batch: config.pacing.batch > 1,
            },
        };
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || reading.run())
            .context("cannot start the reader thread")?
    };

    let saving = CancellationToken::new();
    let saver = checkpoint
        .clone()
        .map(|(path, cp)| tokio::spawn(save_checkpoints(path, cp, ledger.clone(), saving.clone())));

    let mut fatal: Vec<anyhow::Error> = Vec::new();
    if let Some(sender) = &sender {
        if let Err(e) = dispatch(
            rx,
            sender.clone(),
            ledger.clone(),
            config.pacing.concurrency,
            config.pacing.batch,
        )
        .await
        {
            fatal.push(e);
        }
        if let Some(halt) = sender.halted() {
            fatal.push(halt.into());
        }
    } else {
        drop(rx);
    }
    let joined = tokio::task::spawn_blocking(move || reading.join());
    // The reader looks at the stop between rows. Reading stdin, it may wait on a producer
    // that has nothing more to say: once the run is stopping, it gets a moment, not forever.
    let joined = if config.inputs.iter().any(Input::is_stdin) {
        let stopping = shutdown.token.clone();
        tokio::select! {
            joined = joined => Some(joined),
            () = async {
                stopping.cancelled().await;
                tokio::time::sleep(STDIN_GRACE).await;
            } => None,
        }
    } else {
        Some(joined.await)
    };
    match joined {
        Some(Ok(Ok(errors))) => fatal.extend(errors),
        Some(_) => fatal.push(anyhow!("the reader thread failed")),
        None => reporter.warn("stopped waiting for stdin, which has sent nothing since the stop"),
    }

    drawing.cancel();
    let _ = draw.await;
    saving.cancel();
    let mut last_checkpoint = None;
    if let Some(saver) = saver {
        match saver.await {
            Ok(Ok(cp)) => last_checkpoint = Some(cp),
            Ok(Err(e)) => fatal.push(e),
            Err(e) => fatal.push(e.into()),
        }
    }

    let failures_path = lock(&ledger).failures().written().map(Path::to_path_buf);
    let records = Counters::get(&counters.records);
    let accepted = Counters::get(&counters.accepted);
    let failed = Counters::get(&counters.failed);
    let invalid = Counters::get(&counters.invalid);
    let elapsed = started.elapsed().as_secs_f64();
    let exit = if !fatal.is_empty() {
        Exit::Fatal
    } else if shutdown.is_interrupted() {
        Exit::Interrupted
    } else if failed + invalid > 0 {
        Exit::Partial
    } else {
        Exit::Success
    };
    // A run that finished leaves no checkpoint; one that stopped early keeps it for --resume.
    let finished = fatal.is_empty() && !shutdown.is_interrupted();
    let checkpoint_path = match (&checkpoint, last_checkpoint) {
        (Some((path, _)), Some(_)) if finished => {
            let _ = std::fs::remove_file(path);
            None
        }
        (Some((path, _)), Some(_)) => Some(path.clone()),
        _ => None,
    };
    let summary = Summary {
        records,
        accepted,
        failed,
        invalid,
        unsent: records - counters.settled(),
        requests: Counters::get(&counters.requests),
        retries: Counters::get(&counters.retries),
        rate_limited: Counters::get(&counters.rate_limited),
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        accepted_per_s: if elapsed > 0.0 {
            accepted as f64 / elapsed
        } else {
            0.0
        },
        final_rate: sender.as_ref().map(|_| pacer.rate()),
        replay: failures_path.as_deref().map(|p| config.replay_command(p)),
        failures_path,
        checkpoint_path,
        dry_run,
        exit_code: exit.code(),
    };
    eprintln!("cio-import: {}", summary.human());
    if let Some(sb) = sandbox {
        if !config.quiet {
            eprintln!("cio-import: {}", sb.summary_line());
        }
        sb.shutdown().await;
    }
    if let Some(path) = &config.summary {
        write_summary(path, &summary)?;
    }
    let mut fatal = fatal.into_iter();
    let error = fatal
        .next()
        .map(|first| fatal.fold(first, |acc, e| acc.context(format!("{e:#}"))));
    Ok(RunOutcome {
        summary,
        exit,
        error,
    })
}

/// The checkpoint this run starts from: the saved one on --resume, else a fresh one.
fn load_checkpoint(path: &Path, config: &Config) -> anyhow::Result<Checkpoint> {
    if config.resume {
        return Ok(Checkpoint::resume(
            path,
            &config.inputs,
            &config.target.describe(),
        )?);
    }
    Checkpoint::new(&config.inputs, config.target.describe()).with_context(|| {
        format!(
            "cannot fingerprint the inputs for the checkpoint {}",
            path.display()
        )
    })
}

/// A run that starts over replaces an earlier run's checkpoint and failures file, once the
/// credentials are known to work.
fn start_fresh(checkpoint: Option<&(PathBuf, Checkpoint)>, config: &Config) -> anyhow::Result<()> {
    if let Some((path, cp)) = checkpoint {
        if path.exists() && !config.quiet {
            eprintln!(
                "cio-import: warning: starting over: the checkpoint {} of an earlier run is replaced (--resume carries on from it)",
                path.display()
            );
        }
        cp.save(path)
            .with_context(|| format!("cannot write the checkpoint {}", path.display()))?;
    }
    // A failures file left by an earlier run would read as this run's; it may also be the
    // only list of what that run could not send, so it is kept under another name.
    if let Some(kept) = set_aside(&config.failures).with_context(|| {
        format!(
            "cannot move the earlier failures file {} aside",
            config.failures.display()
        )
    })? && !config.quiet
    {
        eprintln!(
            "cio-import: warning: {} of an earlier run is kept as {}",
            config.failures.display(),
            kept.display()
        );
    }
    Ok(())
}

/// Renames the file at `path`, if there is one, to `<stem>.<when it was written>.ndjson`
/// (`users.failures.20261129T174400Z.ndjson`); an empty one is removed.
fn set_aside(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
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

/// Every few moments, and once at the end, writes how far everything is settled.
async fn save_checkpoints(
    path: PathBuf,
    mut cp: Checkpoint,
    ledger: Arc<Mutex<Ledger>>,
    done: CancellationToken,
) -> anyhow::Result<Checkpoint> {
    let resumed_at = cp.position;
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => false,
        };
        let (position, ahead) = {
            let ledger = lock(&ledger);
            (ledger.position(), ledger.settled_ahead())
        };
        // Before the reader reaches the resumed input, the ledger knows nothing newer.
        let moved = position >= resumed_at && cp.advance(position, ahead);
        if moved || last {
            // Taken after the position: the file only grows, so the sync below still covers
            // every line the position counts.
            let failures = lock(&ledger).failures().handle();
            let (c, p) = (cp.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                // The failures lines a checkpoint counts as settled reach the disk before it
                // does, so a power cut cannot leave one without the other.
                if let Some(file) = failures {
                    file.sync_data()?;
                }
                c.save(&p)
            })
            .await?
            .with_context(|| format!("cannot write the checkpoint {}", path.display()))?;
        }
        if last {
            return Ok(cp);
        }
    }
}

/// A `--type` must name a column some input has. Only CSV headers list columns, so with an
/// NDJSON input (whose keys vary by line) nothing is checked.
fn check_types(config: &Config, opened: &[Opened]) -> anyhow::Result<()> {
    if opened.iter().any(|o| o.reader.headers().is_none()) {
        return Ok(());
    }
    let columns: Vec<(&str, &[String])> = opened
        .iter()
        .filter_map(|o| Some((o.name.as_str(), o.mapper.columns()?)))
        .collect();
    let Some(&(name, first)) = columns.first() else {
        return Ok(());
    };
    let has = |column: &str| columns.iter().any(|(_, c)| c.iter().any(|c| c == column));
    if let Some((column, ty)) = config.map.types.iter().find(|(c, _)| !has(c)) {
        anyhow::bail!(
            "--type {column}={ty}: no input has a column {column:?}; {name}'s header has: {}",
            first.join(", ")
        );
    }
    Ok(())
}

fn open(input: &Input, config: &Config, counters: &Counters) -> anyhow::Result<Opened> {
    let name = input.name();
    let reader = input.open(counters.bytes.clone())?;
    let mapper = Mapper::new(&config.map, reader.headers()).with_context(|| name.clone())?;
    Ok(Opened {
        name,
        reader,
        mapper,
    })
}

/// What the reader checks besides the mapping.
#[derive(Debug, Clone, Copy)]
struct ReadRules {
    max_invalid: u64,
    /// Records go in batches: encode each and hold it to the per-operation limit.
    batch: bool,
}

/// The reader thread's share of the run.
struct Reading {
    opened: Vec<Opened>,
    skips: Vec<Skip>,
    ledger: Arc<Mutex<Ledger>>,
    counters: Arc<Counters>,
    reporter: Reporter,
    /// None in a dry run: valid records are settled where they are read.
    tx: Option<mpsc::Sender<Work>>,
    stop: CancellationToken,
    rules: ReadRules,
}

/// Reads the next row into `row`; false at the end of the input or after an input-level
/// error, which is kept in `errors` and ends the input.
fn advance(reader: &mut Reader, row: &mut Row, errors: &mut Vec<anyhow::Error>) -> bool {
    match reader.read(row) {
        Ok(more) => more,
        Err(e) => {
            errors.push(anyhow::Error::new(e));
            false
        }
    }
}

impl Reading {
    /// The reader thread: reads and maps every input in order, settles invalid rows (and, in a
    /// dry run, valid ones) itself, and hands valid records to the dispatcher. Returns the
    /// input-level errors met on the way: each ends its input, and the run is fatal.
    fn run(self) -> Vec<anyhow::Error> {
        let Reading {
            opened,
            skips,
            ledger,
            counters,
            reporter,
            tx,
            stop,
            rules,
        } = self;
        let max_invalid = rules.max_invalid;
        let mut errors = Vec::new();
        let mut seq = 0u64;
        let mut invalid_told = Capped::default();
        let mut row = Row::default();
        let settle = |seq: u64, outcome: Outcome| lock(&ledger).settle(seq, outcome);
        // Records read, and a dry run's valid records, are counted and settled in runs:
        // a lock and two atomic adds a run, not a row.
        let mut run = Run::default();
        let mut recent = RecentEvents::default();
        for (i, input) in opened.into_iter().enumerate() {
            let (skip, later) = match skips.get(i).cloned().unwrap_or(Skip::NONE) {
                Skip::All => {
                    // Begun, and passed at once: the ledger numbers inputs by their place.
                    lock(&ledger).begin_input(i, seq, 0);
                    continue;
                }
                Skip::Some { first, later } => (first, later),
            };
            // A dry run parses on a second core while this thread checks; begun only now, so
            // inputs are read one at a time. A run that sends goes at the pace of its
            // requests, and keeps the core for them.
            let mut input = match tx {
                Some(_) => input,
                None => Opened {
                    reader: input.reader.read_ahead(),
                    ..input
                },
            };
            // Records an earlier run settled are read past, not sent.
            for _ in 0..skip {
                if !advance(&mut input.reader, &mut row, &mut errors) {
                    break;
                }
            }
            lock(&ledger).begin_input(i, seq, skip);
            let first = seq;
            let source: Arc<str> = Arc::from(input.name.as_str());
            let mut later = later.into_iter().peekable();
            loop {
                // Checking takes a lock, so a dry run of millions of rows looks every so often:
                // a stop still comes within microseconds.
                if seq.is_multiple_of(STOP_CHECK_EVERY) && stop.is_cancelled() {
                    // Later inputs are not begun: the checkpoint must not move past this one.
                    run.flush(&ledger, &counters);
                    return errors;
                }
                if !advance(&mut input.reader, &mut row, &mut errors) {
                    break;
                }
                let this = seq;
                seq += 1;
                // Settled by the earlier run while a record before it waited: read past.
                let index = skip + (this - first);
                while later.next_if(|r| r.end <= index).is_some() {}
                if later.peek().is_some_and(|r| r.contains(&index)) {
                    lock(&ledger).settle_earlier(this);
                    continue;
                }
                let mapped = match &tx {
                    Some(_) => input.mapper.map(&row.data).and_then(|op| {
                        // Only a batch needs the encoding, and only a batch limits an
                        // operation's size.
                        let encoded = if rules.batch {
                            op.encode_for_batch()?
                        } else {
                            Vec::new()
                        };
                        Ok(Some(Outgoing { op, encoded }))
                    }),
                    // A dry run builds nothing: it checks the row, and holds the operation to
                    // the batch limit by a bound of its size, encoding it only when the bound
                    // is over the limit.
                    None => input.mapper.validate(&row.data).and_then(|bound| {
                        if rules.batch && bound > MAX_OPERATION_BYTES {
                            input.mapper.map(&row.data)?.encode_for_batch()?;
                        }
                        Ok(None)
                    }),
                };
                run.read += 1;
                let result = match mapped {
                    Ok(Some(out)) => {
                        if let Some(earlier) = recent.repeat(&out.op, &source, row.line) {
                            recent.warn(&reporter, &source, row.line, earlier);
                        }
                        let work = Work {
                            seq: this,
                            source: source.clone(),
                            line: row.line,
                            out,
                        };
                        // The record is counted as read before the dispatcher may settle it.
                        run.flush(&ledger, &counters);
                        if tx.as_ref().is_none_or(|tx| tx.blocking_send(work).is_err()) {
                            // The dispatcher has stopped: so do we.
                            return errors;
                        }
                        Ok(())
                    }
                    Ok(None) => {
                        if run.valid == RUN {
                            run.flush(&ledger, &counters);
                        }
                        if run.valid == 0 {
                            run.first = this;
                        }
                        run.valid += 1;
                        Ok(())
                    }
                    Err(invalid) => {
                        invalid_told.warn(
                            &reporter,
                            || format!("{source} line {}: {}", row.line, invalid.message),
                            "more invalid rows: the failures file has every one",
                        );
                        let mut error = Map::new();
                        error.insert("stage".into(), "invalid".into());
                        if let Some(c) = invalid.column {
                            error.insert("column".into(), c.into());
                        }
                        error.insert("message".into(), invalid.message.into());
                        let line =
                            failure_line(input.mapper.raw(&row.data), &source, row.line, error);
                        run.flush(&ledger, &counters);
                        settle(this, Outcome::Invalid(line))
                    }
                };
                if let Err(e) = result {
                    errors.push(anyhow::Error::new(e).context("cannot write the failures file"));
                    stop.cancel();
                    return errors;
                }
                if result.is_ok() && Counters::get(&counters.invalid) > max_invalid {
                    errors.push(anyhow!(
                    "more than {max_invalid} rows are invalid (--max-invalid): the mapping looks wrong; \
                     check the failures file, --id-column and --type, or raise --max-invalid"
                ));
                    stop.cancel();
                    return errors;
                }
            }
            run.flush(&ledger, &counters);
            if !errors.is_empty() {
                // An input that broke off (a truncated gzip, a read error) ends the reading:
                // settling a later input's records would move the checkpoint past the rest
                // of this one, which a resume would then skip.
                return errors;
            }
        }
        errors
    }
}

/// The ids of the last events read, to tell when one repeats an earlier one: a
/// derived id repeats when person, name, timestamp and data do, and Customer.io keeps only
/// one of such events. Bounded: a repeat further back goes unnoticed.
#[derive(Default)]
struct RecentEvents {
    /// A hash of each id, and the input and line its event came from.
    lines: HashMap<u64, (Arc<str>, u64)>,
    order: VecDeque<u64>,
    told: Capped,
}

impl RecentEvents {
    const KEPT: usize = 65_536;

    /// Where the earlier event with the same id as `op` came from, if it is among the last
    /// ones.
    fn repeat(&mut self, op: &Operation, source: &Arc<str>, line: u64) -> Option<(Arc<str>, u64)> {
        let id = op.event_id()?;
        let key = {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(id, &mut h);
            std::hash::Hasher::finish(&h)
        };
        if let Some(earlier) = self.lines.insert(key, (source.clone(), line)) {
            return Some(earlier);
        }
        self.order.push_back(key);
        if self.order.len() > Self::KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.lines.remove(&old);
        }
        None
    }

    fn warn(&mut self, reporter: &Reporter, source: &str, line: u64, earlier: (Arc<str>, u64)) {
        let (from, at) = earlier;
        let earlier = if *from == *source {
            format!("line {at}")
        } else {
            format!("{from} line {at}")
        };
        self.told.warn(
            reporter,
            || {
                format!(
                    "{source} line {line}: the same event as {earlier} (same event id: person, \
                     name, timestamp and data alike); Customer.io keeps one. If both happened, \
                     give them an event_id column or timestamps that differ"
                )
            },
            "more events repeat earlier ones; Customer.io keeps one of each",
        );
    }
}

/// Warnings of one kind, told on stderr up to [`INVALID_SHOWN`] times, then once more to say
/// there are more.
#[derive(Default)]
struct Capped {
    told: u64,
}

impl Capped {
    fn warn(&mut self, reporter: &Reporter, message: impl FnOnce() -> String, more: &str) {
        if self.told < INVALID_SHOWN {
            reporter.warn(message());
        } else if self.told == INVALID_SHOWN {
            reporter.warn(more);
        }
        self.told += 1;
    }
}

/// How long a stopping run waits for a row from stdin.
const STDIN_GRACE: Duration = Duration::from_secs(1);

/// Rows read between two looks at the stop token.
const STOP_CHECK_EVERY: u64 = 64;

/// Rows per run a dry run settles at once.
const RUN: u64 = 1024;

/// Rows read but not yet counted, and the dry run's valid records not yet settled: the
/// `valid` records numbered from `first`.
#[derive(Default)]
struct Run {
    read: u64,
    first: u64,
    valid: u64,
}

impl Run {
    fn flush(&mut self, ledger: &Mutex<Ledger>, counters: &Counters) {
        Counters::add(&counters.records, self.read);
        if self.valid > 0 {
            lock(ledger).settle_accepted(self.first, self.valid);
        }
        *self = Run::default();
    }
}

/// Sends records with at most `concurrency` requests in flight, `batch` records a request at
/// most, keeping each person's records in file order: a record whose person has one in a
/// request under way (or in the batch being filled) waits until that one is settled.
async fn dispatch(
    mut rx: mpsc::Receiver<Work>,
    sender: Arc<Sender>,
    ledger: Arc<Mutex<Ledger>>,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<u64>>();
    let slots = Arc::new(Semaphore::new(concurrency));
    let stop = sender.stop.clone();
    // A person's key is here while one of their records is filling or in flight; the queue
    // holds their later records.
    let mut busy: HashMap<u64, VecDeque<Work>> = HashMap::new();
    let mut parked = 0usize;
    // Records free to go (their person was not busy, or their turn came) that the batch
    // being filled had no room for yet.
    let mut ready: VecDeque<Work> = VecDeque::new();
    let mut filling: Vec<Work> = Vec::new();
    let mut filling_since = Instant::now();
    let mut reading = true;
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut result = Ok(());

    let launch = |batch: Vec<Work>, tasks: &mut JoinSet<anyhow::Result<()>>, slot| {
        let sender = sender.clone();
        let ledger = ledger.clone();
        let done_tx = done_tx.clone();
        tasks.spawn(async move {
            let outgoing: Vec<&Outgoing> = batch.iter().map(|w| &w.out).collect();
            let deliveries = sender.deliver(&outgoing).await;
            drop(slot);
            let mut written = Ok(());
            {
                let mut ledger = lock(&ledger);
                for (work, delivery) in batch.iter().zip(deliveries) {
                    if let Some(outcome) = outcome(work, delivery)
                        && let Err(e) = ledger.settle(work.seq, outcome)
                    {
                        written =
                            Err(anyhow::Error::new(e).context("cannot write the failures file"));
                    }
                }
            }
            let _ = done_tx.send(batch.iter().map(|w| w.out.op.person_key()).collect());
            written
        });
    };

    loop {
        while let Some(joined) = tasks.try_join_next() {
            if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                stop.cancel();
                result = result.and(Err(e));
            }
        }
        if stop.is_cancelled() {
            // Records not yet in a request stay unsettled: a resume sends them.
            break;
        }
        // Fill the batch from the ready records while they fit.
        while let Some(next) = ready.front() {
            let fits = filling.len() < batch
                && (filling.is_empty()
                    || batch_body_len(
                        filling
                            .iter()
                            .chain(std::iter::once(next))
                            .map(|w| w.out.encoded.len()),
                    ) < MAX_BATCH_BYTES);
            if !fits {
                break;
            }
            if filling.is_empty() {
                filling_since = Instant::now();
            }
            filling.extend(ready.pop_front());
        }
        let full = filling.len() >= batch || !ready.is_empty();
        let linger_over = filling_since + BATCH_LINGER;
        let launchable = !filling.is_empty() && (full || !reading || Instant::now() >= linger_over);
        if filling.is_empty() && ready.is_empty() && !reading && busy.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => {}
            Some(keys) = done_rx.recv() => {
                for key in keys {
                    match busy.get_mut(&key).and_then(VecDeque::pop_front) {
                        Some(work) => {
                            parked -= 1;
                            ready.push_back(work);
                        }
                        None => {
                            busy.remove(&key);
                        }
                    }
                }
            }
            slot = slots.clone().acquire_owned(), if launchable => {
                launch(std::mem::take(&mut filling), &mut tasks, slot?);
            }
            work = rx.recv(), if reading && ready.is_empty() && parked < MAX_PARKED => match work {
                Some(work) => {
                    let key = work.out.op.person_key();
                    if let Some(queue) = busy.get_mut(&key) {
                        queue.push_back(work);
                        parked += 1;
                    } else {
                        busy.insert(key, VecDeque::new());
                        ready.push_back(work);
                    }
                }
                None => reading = false,
            },
            _ = tokio::time::sleep_until(linger_over.into()), if !filling.is_empty() && !launchable => {}
        }
    }
    // Dropping the receiver unblocks the reader if it waits on a full queue.
    drop(rx);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
            result = result.and(Err(e));
        }
    }
    result
}

/// What the ledger records for a record's delivery; None when it was not settled.
/// The ledger, even after a worker panicked holding it: its state is still whole, and the
/// run's records must still be settled.
fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

fn outcome(work: &Work, delivery: Delivery) -> Option<Outcome> {
    match delivery {
        Delivery::Accepted => Some(Outcome::Accepted),
        Delivery::Failed {
            status,
            attempts,
            message,
        } => {
            let mut error = Map::new();
            error.insert("stage".into(), "send".into());
            error.insert("status".into(), status.map_or(Value::Null, Value::from));
            error.insert("attempts".into(), attempts.into());
            error.insert("message".into(), message.into());
            let payload = match serde_json::to_value(&work.out.op) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            Some(Outcome::Failed(failure_line(
                payload,
                &work.source,
                work.line,
                error,
            )))
        }
        Delivery::Unsent => None,
    }
}

fn write_summary(path: &std::path::Path, summary: &Summary) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(summary)?;
    if path.as_os_str() == "-" {
        println!("{json}");
    } else {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("--summary {}: cannot write it", path.display()))?;
    }
    Ok(())
}
