//! The reader: the thread that reads every input in order, maps each row, settles what
//! it can itself (invalid rows, and in a dry run valid ones) and hands the rest to the
//! dispatcher; and its stop, its warnings and its end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::delivery::Work;
use super::lock;
use super::repeats::Repeats;
use super::setup::Opened;
use super::sweep::{Removing, Sweep};
use crate::checkpoint::Skip;
use crate::error::Fatal;
use crate::record::{
    self, Invalid, Mapper, Origin, Oversize, Resized, SAMPLE_ROWS, Shard, thousands,
};
use crate::report::{Counters, Reporter, say};
use crate::send::Outgoing;
use crate::settle::{Ledger, Outcome, failure_line};
use crate::source::{NOT_UTF8, Reader, Row, RowData};
use crate::state::{Memo, State};
use crate::track::{MAX_ATTRIBUTE_VALUE_BYTES, MAX_OPERATION_BYTES};

/// Warnings of each kind (invalid rows, values over the limit, repeated events) told on
/// stderr as they are met; the failures file and the summary have every one.
const TOLD_PER_KIND: u64 = 10;

/// What the reader checks besides the mapping.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadRules {
    pub max_invalid: u64,
    /// Records go in batches: encode each and hold it to the per-operation limit.
    pub batch: bool,
    /// `--shard`: only this shard's records are sent.
    pub shard: Option<Shard>,
    /// `--show N`: a dry run writes its first N operations to stdout.
    pub show: u64,
    /// What a value over Customer.io's limit becomes, for the warnings.
    pub oversize: Oversize,
    /// A resume: it reads past its inputs' first lines, so it tells none of their warnings
    /// (the run that read them did), as setup leaves the flags unwatched.
    pub resumed: bool,
}

/// The warning for a value `--oversize` changed.
fn resized_warning(source: &str, line: u64, r: &Resized, policy: Oversize) -> String {
    let limit = thousands(MAX_ATTRIBUTE_VALUE_BYTES);
    let done = if r.cut {
        format!("cut to {limit}")
    } else {
        "left out".into()
    };
    format!(
        "{source} line {line}: column {:?} is {} bytes, over Customer.io's {limit}: {done} \
         (--oversize {})",
        r.column,
        thousands(r.bytes),
        policy.flag_name()
    )
}

/// The reader thread's share of the run.
pub(super) struct Reading {
    pub opened: Vec<Opened>,
    /// Per input, what an earlier run settled.
    pub skips: Vec<Skip>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub counters: Arc<Counters>,
    pub reporter: Reporter,
    /// None in a dry run: valid records are settled where they are read.
    pub tx: Option<mpsc::Sender<Work>>,
    pub stop: CancellationToken,
    pub rules: ReadRules,
    /// `--state`: records unchanged since their last acceptance are settled, not sent.
    pub state: Option<Arc<Mutex<State>>>,
    /// `--missing delete|suppress`: after the inputs, the people who left them.
    pub sweep: Option<Sweep>,
}

/// The reader thread, running.
pub(super) struct ReaderThread(std::thread::JoinHandle<Vec<Fatal>>);

/// Reads the next row into `row`; false at the end of the input or after an input-level
/// error, which is kept in `errors` and ends the input.
fn advance(reader: &mut Reader, row: &mut Row, errors: &mut Vec<Fatal>) -> bool {
    match reader.read(row) {
        Ok(more) => more,
        Err(e) => {
            errors.push(Fatal::Input(e.to_string()));
            false
        }
    }
}

impl Reading {
    pub(super) fn spawn(self) -> Result<ReaderThread, Fatal> {
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || self.run())
            .map(ReaderThread)
            .map_err(|error| Fatal::Start {
                what: "reader thread",
                error,
            })
    }

    /// The reader thread: reads and maps every input in order, settles invalid rows (and, in a
    /// dry run, valid ones) itself, and hands valid records to the dispatcher. Returns the
    /// input-level errors met on the way: each ends its input, and the run is fatal.
    fn run(self) -> Vec<Fatal> {
        let Reading {
            opened,
            skips,
            ledger,
            counters,
            reporter,
            tx,
            stop,
            rules,
            state,
            sweep,
        } = self;
        let inputs = opened.len();
        let max_invalid = rules.max_invalid;
        let mut errors = Vec::new();
        let mut seq = 0u64;
        let mut invalid_told = Capped::default();
        let mut oversize_told = Capped::default();
        let mut row = Row::default();
        let settle = |seq: u64, outcome: Outcome| lock(&ledger).settle(seq, outcome);
        // Records read, and a dry run's valid records, are counted and settled in runs:
        // a lock and two atomic adds a run, not a row.
        let mut run = Run::default();
        let mut repeats = Repeats::default();
        let mut repeat_told = Capped::default();
        let mut shown = 0u64;
        let more_oversized = format!(
            "more attribute values over {} bytes: the summary counts them",
            thousands(MAX_ATTRIBUTE_VALUE_BYTES)
        );
        for (i, input) in opened.into_iter().enumerate() {
            let mut input = input;
            let (skip, later) = match skips.get(i).cloned().unwrap_or(Skip::NONE) {
                Skip::All => {
                    // Begun, and passed at once: the ledger numbers inputs by their place.
                    lock(&ledger).begin_input(i, seq, 0);
                    // The state's seen set is this process's: what an earlier part of the
                    // run read is read again into it.
                    if let Some(state) = &state {
                        input.reader.stop_on(stop.clone());
                        let past =
                            read_past(&mut input, u64::MAX, &mut row, Some(state), &mut errors);
                        if let Err(e) = past {
                            errors.push(e);
                        }
                        if !errors.is_empty() || stop.is_cancelled() {
                            return errors;
                        }
                    }
                    continue;
                }
                Skip::Some { first, later } => (first, later),
            };
            // A dry run parses on a second core while this thread checks; begun only now, so
            // inputs are read one at a time. A run that sends goes at the pace of its
            // requests, and keeps the core for them.
            // A read looks at the stop itself while a line runs on (reading ahead, too).
            input.reader.stop_on(stop.clone());
            // So does a run with a state, most of whose records are looked up, not sent.
            if tx.is_none() || state.is_some() {
                input.reader = input.reader.read_ahead();
            }
            // Records an earlier run settled are read past, not sent.
            if let Err(e) = read_past(&mut input, skip, &mut row, state.as_deref(), &mut errors) {
                errors.push(e);
                return errors;
            }
            lock(&ledger).begin_input(i, seq, skip);
            let first = seq;
            let source: Arc<str> = Arc::from(input.name.as_str());
            let mut later = later.into_iter().peekable();
            let mut not_utf8_told = false;
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
                    if let Some(state) = &state
                        && let Err(e) = seen(&mut input.mapper, &row, &source, state)
                    {
                        errors.push(e);
                        return errors;
                    }
                    continue;
                }
                // `--show N`: a dry run's first N valid records are written as they would go,
                // once the state has had its say.
                let show = tx.is_none() && shown < rules.show;
                // A state compares what the operation sends, so even a dry run builds it.
                let mapped = match tx.is_some() || state.is_some() || show {
                    true => input.mapper.map(&row.data, row.line).and_then(|op| {
                        // Only a batch needs the encoding, and only a batch limits an
                        // operation's size.
                        let encoded = if rules.batch {
                            op.encode_for_batch()?
                        } else {
                            Vec::new()
                        };
                        let out = Outgoing { op, encoded };
                        let shown = show.then(|| shown_request(&out)).transpose()?;
                        Ok(Some((out, shown)))
                    }),
                    // A dry run builds nothing: it checks the row, and holds the operation to
                    // the batch limit by a bound of its size, encoding it only when the bound
                    // is over the limit.
                    false => input.mapper.validate(&row.data).and_then(|bound| {
                        if rules.batch && bound > MAX_OPERATION_BYTES {
                            input.mapper.map(&row.data, row.line)?.encode_for_batch()?;
                        }
                        Ok(None)
                    }),
                };
                if let Some((warnings, resized)) = input.mapper.take_notes() {
                    for warning in warnings {
                        reporter.warn(format!("{source} line {}: {warning}", row.line));
                    }
                    Counters::add(&counters.oversized, resized.len() as u64);
                    let cut = resized.iter().filter(|r| r.cut).count();
                    Counters::add(&counters.oversized_cut, cut as u64);
                    for r in resized {
                        oversize_told.warn(
                            &reporter,
                            || resized_warning(&source, row.line, &r, rules.oversize),
                            &more_oversized,
                        );
                    }
                }
                if this == first && !rules.resumed {
                    for warning in input.mapper.first_row_warnings(&row.data) {
                        reporter.warn(format!("{source}: {warning}"));
                    }
                }
                if this - first + 1 == SAMPLE_ROWS {
                    advise(&mut input.mapper, &reporter, &source);
                }
                let ours = |shard: Shard| match &mapped {
                    Ok(Some((out, _))) => shard.takes(out.op.order().keys()[0]),
                    _ => shard.is_first(),
                };
                if rules.shard.is_some_and(|shard| !ours(shard)) {
                    // Another shard's importer sends it.
                    lock(&ledger).settle_earlier(this);
                    continue;
                }
                run.read += 1;
                // Before the state looks: a different event with an earlier one's id would be
                // dropped by Customer.io, so it is invalid, sent or not.
                let mapped = match mapped {
                    Ok(Some((out, shown))) if tx.is_some() => {
                        let again =
                            repeats.check(&out, &input.mapper, &row.data, &source, row.line);
                        again.map(|again| {
                            if let Some(again) = again {
                                repeat_told.warn(
                                    &reporter,
                                    || again,
                                    "more events repeat earlier ones; Customer.io keeps one of each",
                                );
                            }
                            Some((out, shown))
                        })
                    }
                    mapped => mapped,
                };
                let memo = match (&state, &mapped) {
                    (Some(_), Ok(Some((out, _)))) => Memo::of(&out.op, &out.encoded),
                    _ => None,
                };
                if let (Some(state), Some(memo)) = (&state, &memo) {
                    // Bound first: the state is not held while the run settles.
                    let unchanged = lock(state).unchanged(memo);
                    match unchanged {
                        Ok(false) => {}
                        Ok(true) => {
                            run.add(this, End::Unchanged, &ledger, &counters);
                            continue;
                        }
                        Err(e) => {
                            run.flush(&ledger, &counters);
                            errors.push(Fatal::State(e));
                            stop.cancel();
                            return errors;
                        }
                    }
                }
                let result = match mapped {
                    Ok(Some((out, _))) if tx.is_some() => {
                        // A replayed line that fails again keeps where its row was read.
                        let (from, line) = match record::replayed(&row.data) {
                            Some(origin) => (Arc::from(origin.source), origin.line),
                            None => (source.clone(), row.line),
                        };
                        let work = Work {
                            seq: this,
                            source: from,
                            line,
                            out,
                            memo,
                        };
                        // The record is counted as read before the dispatcher may settle it.
                        run.flush(&ledger, &counters);
                        if tx.as_ref().is_none_or(|tx| tx.blocking_send(work).is_err()) {
                            // The dispatcher has stopped: so do we.
                            return errors;
                        }
                        Ok(())
                    }
                    // A dry run's valid record: what a run would send.
                    Ok(out) => {
                        if let Some((_, Some(request))) = out {
                            shown += 1;
                            say::to_stdout(&request);
                        }
                        run.add(this, End::Accepted, &ledger, &counters);
                        Ok(())
                    }
                    Err(invalid) => {
                        let invalid = input.mapper.as_written(invalid, &row.data);
                        if let Some(state) = &state
                            && let Err(e) = seen_invalid(&input.mapper, &row, &source, state)
                        {
                            run.flush(&ledger, &counters);
                            errors.push(e);
                            stop.cancel();
                            return errors;
                        }
                        tell_invalid(
                            &reporter,
                            &mut invalid_told,
                            &mut not_utf8_told,
                            &source,
                            row.line,
                            &invalid.message,
                        );
                        if matches!(row.data, RowData::Broken { .. }) {
                            Counters::add(&counters.unreadable, 1);
                        }
                        let line = failures_line(&input, &source, &row, invalid);
                        run.flush(&ledger, &counters);
                        settle(this, Outcome::Invalid(line))
                    }
                };
                if let Err(e) = result {
                    errors.push(Fatal::Failures(e));
                    stop.cancel();
                    return errors;
                }
                if Counters::get(&counters.invalid) > max_invalid {
                    errors.push(Fatal::TooManyInvalid(max_invalid));
                    stop.cancel();
                    return errors;
                }
            }
            run.flush(&ledger, &counters);
            advise(&mut input.mapper, &reporter, &source);
            if !errors.is_empty() || stop.is_cancelled() {
                // An input that broke off (a truncated gzip, a read error) ends the reading,
                // and so does a stop that came while a read gave up on a line: settling a
                // later input's records would move the checkpoint past the rest of this one,
                // which a resume would then skip.
                return errors;
            }
            for warning in input.mapper.unused_flags() {
                reporter.warn(warning);
            }
        }
        if let Some(sweep) = sweep.as_ref().filter(|_| !stop.is_cancelled())
            && let Some(state) = &state
        {
            let (skipped, later) = match skips.get(inputs) {
                Some(Skip::Some { first, later }) => (*first, later.as_slice()),
                _ => (0, &[][..]),
            };
            let removing = Removing {
                state,
                ledger: &ledger,
                counters: &counters,
                tx: tx.as_ref(),
                stop: &stop,
                batch: rules.batch,
                input: inputs,
                seq,
                skipped,
                later,
            };
            if let Err(e) = sweep.remove(removing) {
                errors.push(e);
            }
        }
        errors
    }
}

/// Tells an invalid row on stderr: the first few of them, and of the rows a file in
/// another encoding has throughout, only the first.
fn tell_invalid(
    reporter: &Reporter,
    told: &mut Capped,
    not_utf8_told: &mut bool,
    source: &str,
    line: u64,
    message: &str,
) {
    if !message.contains(NOT_UTF8) {
        told.warn(
            reporter,
            || format!("{source} line {line}: {message}"),
            "more invalid rows: the failures file has every one",
        );
    } else if !*not_utf8_told {
        *not_utf8_told = true;
        reporter.warn(format!(
            "{source} line {line}: {message}: the input is not UTF-8; if it is in another \
             encoding, pass it as --encoding LABEL (windows-1252 for Excel on Windows, latin1, \
             utf-16le). Every such row is invalid and in the failures file"
        ));
    }
}

/// The failures-file line of `input`'s invalid `row`: the row as read, and an `_error` of
/// why and where. A replayed line that fails again keeps where its row was read first (an
/// event without a time takes its id from there).
fn failures_line(input: &Opened, source: &str, row: &Row, invalid: Invalid) -> Map<String, Value> {
    let mut error = Map::new();
    error.insert("stage".into(), "invalid".into());
    if let Some(c) = invalid.column {
        error.insert("column".into(), c.into());
    }
    error.insert("message".into(), invalid.message.into());
    let origin = record::replayed(&row.data).unwrap_or(Origin {
        source,
        line: row.line,
        path: input.path.as_deref(),
    });
    if let Some(path) = origin.path {
        error.insert("path".into(), path.into());
    }
    failure_line(
        input.mapper.raw(&row.data),
        origin.source,
        origin.line,
        error,
    )
}

/// Reads past `count` rows of `input` that an earlier part of the run settled (fewer at its
/// end, or at an input-level error, kept in `errors`). With a state, each row's record is
/// marked seen; its error ends the reading.
fn read_past(
    input: &mut Opened,
    count: u64,
    row: &mut Row,
    state: Option<&Mutex<State>>,
    errors: &mut Vec<Fatal>,
) -> Result<(), Fatal> {
    for _ in 0..count {
        if !advance(&mut input.reader, row, errors) {
            break;
        }
        if let Some(state) = state {
            seen(&mut input.mapper, row, &input.name, state)?;
        }
    }
    Ok(())
}

/// Marks the record in `row` seen by this run, as an earlier part of it read it: so that the
/// rest of the run finds what an uninterrupted one would have. Only its key is needed.
fn seen(mapper: &mut Mapper, row: &Row, source: &str, state: &Mutex<State>) -> Result<(), Fatal> {
    match mapper.map(&row.data, row.line) {
        Ok(op) => match Memo::compared_key(&op) {
            Some(key) => lock(state).seen(key).map_err(Fatal::State),
            None => Ok(()),
        },
        Err(_) => seen_invalid(mapper, row, source, state),
    }
}

/// Marks the person an invalid row names as seen: still in the export, if wrong tonight, and
/// so not removed as missing. A row naming no one that can be read is counted instead: the
/// sweep refuses to guess.
fn seen_invalid(
    mapper: &Mapper,
    row: &Row,
    source: &str,
    state: &Mutex<State>,
) -> Result<(), Fatal> {
    let mut state = lock(state);
    match mapper.person_of(&row.data) {
        Some(key) => state.seen(key).map_err(Fatal::State),
        None => {
            state.unreadable(|| format!("{source} line {}", row.line));
            Ok(())
        }
    }
}

/// The warning about the identifiers of an input's first rows, if there is one (once).
fn advise(mapper: &mut Mapper, reporter: &Reporter, source: &str) {
    if let Some(advice) = mapper.id_advice() {
        reporter.warn(format!("{source}: {advice}"));
    }
}

/// An operation as `--show` writes it: as it goes in a batch, or, one a request (and for
/// what a batch cannot carry: anonymous events), its own request's method, path and body
/// (none for one without a body).
fn shown_request(out: &Outgoing) -> Result<String, Invalid> {
    if !out.encoded.is_empty() {
        return Ok(String::from_utf8_lossy(&out.encoded).into_owned());
    }
    let request = out.op.one_request();
    let mut line = format!("{} {}", request.method.as_str(), request.path);
    if let Some(body) = &request.body {
        let body = serde_json::to_string(body).map_err(|e| Invalid {
            column: None,
            message: format!("cannot encode the operation: {e}"),
        })?;
        line.push(' ');
        line.push_str(&body);
    }
    Ok(line)
}

impl ReaderThread {
    /// The errors the reader ended with, once it has. The reader looks at the stop between
    /// rows and within long lines; reading a stream (stdin, a pipe), it may wait on a
    /// producer that has nothing more to say: once the run is stopping, it gets a moment,
    /// not forever. `stream` names the stream among the inputs, if one is.
    pub(super) async fn join(
        self,
        stream: Option<&str>,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> Vec<Fatal> {
        let joined = tokio::task::spawn_blocking(move || self.0.join());
        let errors = |joined: Result<std::thread::Result<Vec<Fatal>>, _>| match joined {
            Ok(Ok(errors)) => errors,
            _ => vec![Fatal::ReaderFailed],
        };
        let Some(stream) = stream else {
            return errors(joined.await);
        };
        tokio::select! {
            joined = joined => errors(joined),
            () = async {
                stop.cancelled().await;
                tokio::time::sleep(STREAM_GRACE).await;
            } => {
                reporter.warn(format!(
                    "stopped waiting for {stream}, which has sent nothing since the stop"
                ));
                Vec::new()
            }
        }
    }
}

/// Warnings of one kind, told on stderr up to [`TOLD_PER_KIND`] times, then once more to say
/// there are more.
#[derive(Default)]
struct Capped {
    told: u64,
}

impl Capped {
    fn warn(&mut self, reporter: &Reporter, message: impl FnOnce() -> String, more: &str) {
        if self.told < TOLD_PER_KIND {
            reporter.warn(message());
        } else if self.told == TOLD_PER_KIND {
            reporter.warn(more);
        }
        self.told += 1;
    }
}

/// How long a stopping run waits for a row from a stream.
const STREAM_GRACE: Duration = Duration::from_secs(1);

/// Rows read between two looks at the stop token.
const STOP_CHECK_EVERY: u64 = 64;

/// Rows per run a dry run settles at once.
const RUN: u64 = 1024;

/// Rows read but not yet counted, and records settled where they are read but not yet in
/// the ledger (a dry run's valid ones, a state's unchanged ones): the `count` records
/// numbered from `first`, all ending as `end`.
#[derive(Default)]
struct Run {
    read: u64,
    first: u64,
    count: u64,
    end: End,
}

/// How the records of a [`Run`] end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A dry run's valid record.
    #[default]
    Accepted,
    /// The same as the state holds as accepted: not sent.
    Unchanged,
}

impl Run {
    /// Adds record `seq`, which ends as `end`, to the run (flushed first when full, of
    /// another end, or not next: the ledger settles a run as numbers from `first`, and records
    /// between may have been settled apart, another shard's or an earlier part's).
    fn add(&mut self, seq: u64, end: End, ledger: &Mutex<Ledger>, counters: &Counters) {
        if self.count == RUN
            || (self.count > 0 && (self.end != end || seq != self.first + self.count))
        {
            self.flush(ledger, counters);
        }
        if self.count == 0 {
            (self.first, self.end) = (seq, end);
        }
        self.count += 1;
    }

    fn flush(&mut self, ledger: &Mutex<Ledger>, counters: &Counters) {
        Counters::add(&counters.records, self.read);
        if self.count > 0 {
            let mut ledger = lock(ledger);
            match self.end {
                End::Accepted => ledger.settle_accepted(self.first, self.count),
                End::Unchanged => ledger.settle_unchanged(self.first, self.count),
            }
        }
        *self = Run::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_counts_what_was_read_and_settles_a_dry_runs_valid_rows_at_once() {
        let counters = Arc::new(Counters::default());
        let dir = tempfile::tempdir().unwrap();
        let ledger = Mutex::new(Ledger::new(
            counters.clone(),
            dir.path().join("f.ndjson"),
            false,
        ));
        lock(&ledger).begin_input(0, 0, 0);
        lock(&ledger).settle_earlier(0);
        let mut run = Run {
            read: 5,
            first: 1,
            count: 3,
            end: End::Accepted,
        };
        run.flush(&ledger, &counters);
        assert_eq!(Counters::get(&counters.records), 5);
        assert_eq!(Counters::get(&counters.accepted), 3);
        assert_eq!(lock(&ledger).position().records, 4);
        // Flushed: a second flush adds nothing.
        run.flush(&ledger, &counters);
        assert_eq!(Counters::get(&counters.records), 5);
    }
}
