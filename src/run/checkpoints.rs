//! Checkpoint saving: while the run goes, and once at its end, writes how far everything is
//! settled, the failures lines it counts and the state's acceptances (`--state`) reaching the
//! disk first. A run with a state and no checkpoint (a stream) commits the state alone.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::lock;
use crate::checkpoint::Checkpoint;
use crate::error::Fatal;
use crate::settle::Ledger;
use crate::state::State;

/// How often the checkpoint is written while the settled position moves. Records settled
/// since the last write are sent again by a resume after a crash, so this stays short.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The task that keeps the checkpoint.
pub(super) struct Saver {
    path: Option<PathBuf>,
    done: CancellationToken,
    task: JoinHandle<Result<(), Fatal>>,
}

impl Saver {
    /// Starts saving; a checkpoint that cannot be saved cancels `stop`: the run drains and
    /// ends, rather than go on sending records that a crash would make a resume send again
    /// (and end with a checkpoint far behind).
    pub(super) fn start(
        checkpoint: Option<(PathBuf, Checkpoint)>,
        state: Option<Arc<Mutex<State>>>,
        ledger: Arc<Mutex<Ledger>>,
        stop: CancellationToken,
    ) -> Saver {
        let done = CancellationToken::new();
        let path = checkpoint.as_ref().map(|(path, _)| path.clone());
        let saving = save_checkpoints(checkpoint, state, ledger, done.clone());
        let task = tokio::spawn(async move {
            let saved = saving.await;
            if saved.is_err() {
                stop.cancel();
            }
            saved
        });
        Saver { path, done, task }
    }

    /// Writes the checkpoint a last time and stops: where it is, once written.
    pub(super) async fn stop(self) -> Result<Option<PathBuf>, Fatal> {
        self.done.cancel();
        self.task.await??;
        Ok(self.path)
    }
}

/// Every few moments, and once at the end, writes how far everything is settled.
async fn save_checkpoints(
    mut checkpoint: Option<(PathBuf, Checkpoint)>,
    state: Option<Arc<Mutex<State>>>,
    ledger: Arc<Mutex<Ledger>>,
    done: CancellationToken,
) -> Result<(), Fatal> {
    let resumed_at = checkpoint.as_ref().map(|(_, cp)| cp.position);
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => false,
        };
        let (position, ahead, tally, failures_bytes) = {
            let ledger = lock(&ledger);
            let bytes = ledger.failures().bytes();
            (
                ledger.position(),
                ledger.settled_ahead(),
                ledger.tally(),
                bytes,
            )
        };
        // Before the reader reaches the resumed input, the ledger knows nothing newer.
        let moved = match &mut checkpoint {
            Some((_, cp)) if resumed_at.is_some_and(|at| position >= at) => {
                let moved = cp.advance(position, ahead);
                if moved {
                    cp.settled = tally;
                    cp.failures_bytes = failures_bytes;
                }
                moved
            }
            Some(_) => false,
            // No checkpoint to keep in step with: the state is committed every time.
            None => true,
        };
        if moved || last {
            // Taken after the position: the file only grows, so the sync below still covers
            // every line the position counts; and the state holds every acceptance the
            // position counts, recorded before the ledger settled it.
            let failures = lock(&ledger).failures().handle();
            let saved = checkpoint.clone();
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(state) = state {
                    lock(&state).commit().map_err(Fatal::State)?;
                }
                let Some((path, cp)) = saved else {
                    return Ok(());
                };
                // The failures lines a checkpoint counts as settled reach the disk before it
                // does, so a power cut cannot leave one without the other.
                let written = match failures {
                    Some(file) => file.sync_data(),
                    None => Ok(()),
                };
                written
                    .and_then(|()| cp.save(&path))
                    .map_err(|error| Fatal::Checkpoint { path, error })
            })
            .await??;
        }
        if last {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Counters;
    use crate::settle::{Outcome, Position};

    fn ledger(dir: &std::path::Path) -> Arc<Mutex<Ledger>> {
        let failures = dir.join("users.failures.ndjson");
        let ledger = Ledger::new(Arc::new(Counters::default()), failures, false);
        Arc::new(Mutex::new(ledger))
    }

    /// A checkpoint at the start of no input: all the saver looks at is the position.
    fn start() -> Checkpoint {
        Checkpoint {
            version: 2,
            inputs: Vec::new(),
            target: "the sandbox".into(),
            mapping: Vec::new(),
            settled: Default::default(),
            failures_bytes: 0,
            position: Position {
                input: 0,
                records: 0,
            },
            ahead: Vec::new(),
        }
    }

    fn saved(path: &std::path::Path) -> Position {
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str::<Checkpoint>(&text).unwrap().position
    }

    #[tokio::test(start_paused = true)]
    async fn the_checkpoint_follows_the_settled_position_and_is_written_at_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.checkpoint.json");
        let ledger = ledger(dir.path());
        let saver = Saver::start(
            Some((path.clone(), start())),
            None,
            ledger.clone(),
            CancellationToken::new(),
        );
        {
            let mut ledger = lock(&ledger);
            ledger.begin_input(0, 0, 0);
            ledger.settle(0, Outcome::Accepted).unwrap();
            ledger.settle(1, Outcome::Accepted).unwrap();
        }
        tokio::time::sleep(CHECKPOINT_EVERY * 2).await;
        assert_eq!(saved(&path).records, 2);
        lock(&ledger).settle(2, Outcome::Accepted).unwrap();
        assert_eq!(saver.stop().await.unwrap(), Some(path.clone()));
        assert_eq!(saved(&path).records, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_that_cannot_be_written_stops_the_run_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("c.json");
        let ledger = ledger(dir.path());
        let stop = CancellationToken::new();
        let saver = Saver::start(
            Some((path.clone(), start())),
            None,
            ledger.clone(),
            stop.clone(),
        );
        {
            let mut ledger = lock(&ledger);
            ledger.begin_input(0, 0, 0);
            ledger.settle(0, Outcome::Accepted).unwrap();
        }
        // The first save after the position moved fails, and stops the run.
        tokio::time::timeout(Duration::from_secs(1), stop.cancelled())
            .await
            .expect("the run is stopped");
        let message = saver.stop().await.unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot write the checkpoint {}: ", path.display())),
            "{message}"
        );
    }
}
