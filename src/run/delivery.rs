//! Delivery: a record on its way from the reader, and what the dispatcher hands it to — the
//! [`Sender`], whose answer the ledger settles (a failure as its failures-file line).

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::dispatch::{Deliver, Parcel};
use super::lock;
use crate::error::Fatal;
use crate::record::Order;
use crate::send::{Delivery, Outgoing, Sender};
use crate::settle::{Ledger, Outcome, failure_line};
use crate::state::{Memo, State};

/// A valid record on its way to a request.
pub(super) struct Work {
    /// Its number in the ledger.
    pub seq: u64,
    /// Where its row was read first, which its failures-file line names.
    pub source: Arc<str>,
    pub line: u64,
    pub out: Outgoing,
    /// What the state records once it is accepted (`--state`).
    pub memo: Option<Memo>,
}

impl Parcel for Work {
    fn order(&self) -> Order {
        self.out.op.order()
    }

    fn encoded_len(&self) -> usize {
        self.out.encoded.len()
    }

    fn alone(&self) -> bool {
        !self.out.op.batchable()
    }
}

/// Sends through the [`Sender`], and settles every record in the ledger as it ended, what
/// was accepted recorded in the state first (so that a checkpoint never counts an
/// acceptance the state lacks).
pub(super) struct Delivering {
    pub sender: Arc<Sender>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub state: Option<Arc<Mutex<State>>>,
}

impl Deliver for Delivering {
    type Parcel = Work;

    async fn deliver(&self, batch: Vec<Work>) -> Result<(), Fatal> {
        let outgoing: Vec<&Outgoing> = batch.iter().map(|w| &w.out).collect();
        let deliveries = self.sender.deliver(&outgoing).await;
        let mut written = Ok(());
        if let Some(state) = &self.state {
            let mut state = lock(state);
            for (work, delivery) in batch.iter().zip(&deliveries) {
                if let (Delivery::Accepted, Some(memo)) = (delivery, &work.memo)
                    && let Err(e) = state.accepted(memo, &work.out.op)
                {
                    // Not settled: a checkpoint must not count what the state lacks.
                    return Err(Fatal::State(e));
                }
            }
        }
        let mut ledger = lock(&self.ledger);
        for (work, delivery) in batch.iter().zip(deliveries) {
            if let Some(outcome) = outcome(work, delivery)
                && let Err(e) = ledger.settle(work.seq, outcome)
            {
                written = Err(Fatal::Failures(e));
            }
        }
        written
    }
}

/// What the ledger records for a record's delivery; None when it was not settled.
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
