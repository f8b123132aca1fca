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

/// A valid record on its way to a request.
pub(super) struct Work {
    /// Its number in the ledger.
    pub seq: u64,
    pub source: Arc<str>,
    pub line: u64,
    pub out: Outgoing,
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

/// Sends through the [`Sender`], and settles every record in the ledger as it ended.
pub(super) struct Delivering {
    pub sender: Arc<Sender>,
    pub ledger: Arc<Mutex<Ledger>>,
}

impl Deliver for Delivering {
    type Parcel = Work;

    async fn deliver(&self, batch: Vec<Work>) -> Result<(), Fatal> {
        let outgoing: Vec<&Outgoing> = batch.iter().map(|w| &w.out).collect();
        let deliveries = self.sender.deliver(&outgoing).await;
        let mut written = Ok(());
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
