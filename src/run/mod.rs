//! The run: wires the stages together — setup, a reader thread that reads and maps, the
//! dispatcher that keeps each person's records in order and hands them to the sender, the
//! checkpoint saver (which commits the state too) — and settles every record in the ledger
//! before the finish.

mod checkpoints;
mod confirm;
mod delivery;
mod dispatch;
mod finish;
mod reader;
mod repeats;
mod resume;
mod setup;
mod signals;
mod sweep;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Skip;
use crate::config::{Config, removal_flag};
use crate::error::Fatal;
use crate::exit::Exit;
use crate::limit::{Link, LocalPacer, Pacer, Schedule, SharedPacer, connect};
use crate::report::{Counters, Reporter, counted};
use crate::send::{RetryPolicy, Sender};
use crate::settle::Ledger;
use crate::source::Input;
use crate::state::Figures;

use checkpoints::Saver;
use delivery::{Delivering, Work};
use dispatch::{Limits, dispatch};
use finish::{Ending, finish};
use reader::{ReadRules, Reading};
use setup::Prepared;
pub use signals::{Shutdown, watch_signals};
use sweep::Sweep;

/// Imports as `config` says: the exit code of a run that ended (having told the summary, and
/// the error that made it fatal, if one did), or the error that stopped it before it began.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<Exit, Fatal> {
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let policy = RetryPolicy {
        max_retries: config.pacing.max_retries,
        max_retry_after: config.pacing.max_retry_after,
        max_consecutive_failures: config.pacing.max_consecutive_failures,
    };
    // Setup waits (on the sandbox's start, the credentials check) only before it moves an
    // earlier run's files: a signal then ends it at once, with nothing sent.
    let prepared = tokio::select! {
        prepared = setup::prepare(&config, &counters, &policy) => prepared?,
        signal = shutdown.signalled() => return Err(Fatal::Stopped(signal)),
    };
    let Prepared {
        opened,
        checkpoint,
        resumed,
        client,
        sandbox,
        state,
        lock: _lock,
    } = prepared;
    let state = state.map(|state| Arc::new(Mutex::new(state)));
    if let Some((_, cp)) = checkpoint.as_ref().filter(|_| resumed) {
        counters.carry(cp.settled);
    }
    // One more than the inputs: the --missing sweep's removals come after them.
    let skips: Vec<Skip> = (0..=opened.len())
        .map(|i| checkpoint.as_ref().map_or(Skip::NONE, |(_, cp)| cp.skip(i)))
        .collect();

    let ledger = Arc::new(Mutex::new(Ledger::new(
        counters.clone(),
        config.failures.clone(),
        resumed,
    )));
    let total_bytes = config.inputs.iter().map(|i| i.size).sum::<Option<u64>>();
    let reporter = Reporter::new(config.progress, config.quiet, config.verbose, total_bytes);

    let shared = match config.shared_limit.as_ref().filter(|_| client.is_some()) {
        None => None,
        Some(shared) => {
            let conn = connect(shared.url.expose(), &shared.shown, shared.timeout)
                .await
                .map_err(Fatal::SharedLimitLost)?;
            let link = Link {
                conn,
                schedule: Schedule::of(&shared.workspace),
                shown: shared.shown.clone(),
                timeout: shared.timeout,
                stop: shutdown.token.clone(),
                warn: {
                    let reporter = reporter.clone();
                    Box::new(move |message| reporter.warn(message))
                },
            };
            let rate = config.pacing.rate;
            Some(Arc::new(SharedPacer::new(
                link,
                rate,
                config.pacing.burst.get(),
            )))
        }
    };
    let pacer: Arc<dyn Pacer> = match &shared {
        Some(shared) => shared.clone(),
        None => Arc::new(LocalPacer::new(config.pacing.rate, config.pacing.burst)),
    };
    let sender = client.map(|client| {
        Arc::new(Sender::new(
            client,
            pacer.clone(),
            counters.clone(),
            reporter.clone(),
            policy,
            config.pacing.batch > 1,
            shutdown.token.clone(),
        ))
    });
    signals::tell_stopping(
        shutdown.clone(),
        reporter.clone(),
        sender.is_some(),
        config.stop_timeout,
    );

    let drawing = CancellationToken::new();
    let draw = {
        let reporter = reporter.clone();
        let counters = counters.clone();
        let pacer = pacer.clone();
        let sending = sender.is_some();
        let done = drawing.clone();
        tokio::spawn(async move {
            let held = pacer.clone();
            reporter
                .draw(
                    counters,
                    move || sending.then(|| pacer.rate()),
                    move || held.held_up(),
                    done,
                )
                .await
        })
    };

    let (tx, rx) = mpsc::channel::<Work>(config.pacing.concurrency * 4);
    let reading = Reading {
        opened,
        skips,
        ledger: ledger.clone(),
        counters: counters.clone(),
        reporter: reporter.clone(),
        tx: sender.is_some().then_some(tx),
        stop: shutdown.token.clone(),
        rules: ReadRules {
            max_invalid: config.max_invalid,
            batch: config.pacing.batch > 1,
            shard: config.shard,
            oversize: config.map.oversize,
            show: config.show,
            resumed,
        },
        state: state.clone(),
        sweep: config.state.as_ref().and_then(|s| {
            let removal = s.removal?;
            Some(Sweep {
                removal,
                max: s.max_missing,
                flag: removal_flag(removal),
            })
        }),
    }
    .spawn()?;
    // A dry run writes no state.
    let committed = state.clone().filter(|_| sender.is_some());
    let saver = (checkpoint.is_some() || committed.is_some()).then(|| {
        Saver::start(
            checkpoint,
            committed,
            ledger.clone(),
            shutdown.token.clone(),
        )
    });

    let mut fatal = Vec::new();
    if let Some(sender) = &sender {
        let delivery = Delivering {
            sender: sender.clone(),
            ledger: ledger.clone(),
            state: state.clone(),
        };
        let limits = Limits {
            concurrency: config.pacing.concurrency,
            batch: config.pacing.batch,
            stop_timeout: config.stop_timeout,
        };
        match dispatch(rx, Arc::new(delivery), shutdown.token.clone(), limits).await {
            Ok(0) => {}
            Ok(abandoned) => reporter.warn(format!(
                "{} still unanswered after {}s (--stop-timeout): their records stay unsettled, \
                 not counted as accepted, for --resume to send again",
                counted(abandoned as u64, "request"),
                config.stop_timeout.as_secs_f64()
            )),
            Err(e) => fatal.push(e),
        }
        if let Some(lost) = shared.as_ref().and_then(|s| s.lost()) {
            fatal.push(Fatal::SharedLimitLost(lost));
        }
        if let Some(halt) = sender.halted() {
            fatal.push(Fatal::Remote(halt.to_string()));
        }
    } else {
        drop(rx);
    }
    let stream = config
        .inputs
        .iter()
        .find(|i| i.is_stream())
        .map(Input::name);
    fatal.extend(
        reading
            .join(stream.as_deref(), &shutdown.token, &reporter)
            .await,
    );

    drawing.cancel();
    let _ = draw.await;
    let mut checkpoint = None;
    if let Some(saver) = saver {
        match saver.stop().await {
            Ok(path) => checkpoint = path,
            Err(e) => fatal.push(e),
        }
    }
    // A complete run is recorded in the state's runs; one that stopped is carried on by its
    // resume.
    if let Some(state) = state.filter(|_| fatal.is_empty() && shutdown.signal().is_none()) {
        let figures = Figures {
            accepted: Counters::get(&counters.accepted),
            unchanged: Counters::get(&counters.unchanged),
            failed: Counters::get(&counters.failed) + Counters::get(&counters.invalid),
            removed: Counters::get(&counters.missing),
        };
        if let Err(e) = lock(&state).finish(figures) {
            fatal.push(Fatal::State(e));
        }
    }
    // A resume's failures file may hold only the earlier part's lines.
    let failures = (Counters::get(&counters.failed) + Counters::get(&counters.invalid) > 0)
        .then(|| config.failures.clone());
    let ending = Ending {
        config: &config,
        started,
        counters: &counters,
        fatal,
        signal: shutdown.signal(),
        failures,
        checkpoint,
        final_rate: sender.as_ref().map(|_| pacer.rate()),
        sandbox,
        resumed,
    };
    Ok(finish(ending).await)
}

/// The ledger (or the state), even after a thread panicked holding it: it is still whole,
/// and the run's records must still be settled.
fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}
