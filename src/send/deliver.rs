//! The retry loop: takes operations to settled outcomes under the pacer, retrying what is
//! worth it, splitting batches Customer.io refuses, and halting the run when the
//! credentials are refused or the endpoint looks down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::answer::{Answer, BatchError};
use super::batch::batch_body;
use super::client::{Client, credentials_message};
use super::wait::RetryPolicy;
use crate::limit::Pacer;
use crate::record::Operation;
use crate::report::{Counters, Reporter};

/// One operation on its way: the operation and its batch encoding.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub op: Operation,
    pub encoded: Vec<u8>,
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Accepted,
    /// Settled as a failure: written to the failures file.
    Failed {
        status: Option<u16>,
        attempts: u32,
        message: String,
    },
    /// The run is stopping: the operation was not settled and a resume sends it again.
    Unsent,
}

/// How a request ended after its retries.
enum Settled {
    Answered(Answer, u32),
    GaveUp {
        status: Option<u16>,
        attempts: u32,
        message: String,
    },
    Unsent,
}

/// Why the whole run had to stop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Halt {
    #[error("{}", credentials_message(*.0))]
    Credentials(u16),
    #[error(
        "{streak} requests in a row to {base} failed with 5xx or network errors (last: {last}; \
         --max-consecutive-failures); the endpoint looks down. Unsent records were not written \
         as failures: run again with --resume"
    )]
    DeadEndpoint {
        streak: u32,
        base: String,
        last: String,
    },
}

/// Everything the workers share.
pub struct Sender {
    client: Client,
    pacer: Arc<dyn Pacer>,
    counters: Arc<Counters>,
    reporter: Reporter,
    policy: RetryPolicy,
    /// Send through `/api/v2/batch` (else one v1 request an operation).
    batch: bool,
    /// Cancelled on Ctrl-C and on a halt: no new attempt starts.
    pub stop: CancellationToken,
    halt: std::sync::Mutex<Option<Halt>>,
    streak: AtomicU32,
    warned: AtomicBool,
}

/// Failures in a row after which the user is told the endpoint is in trouble.
const WARN_STREAK: u32 = 10;

impl Sender {
    pub fn new(
        client: Client,
        pacer: Arc<dyn Pacer>,
        counters: Arc<Counters>,
        reporter: Reporter,
        policy: RetryPolicy,
        batch: bool,
        stop: CancellationToken,
    ) -> Sender {
        Sender {
            client,
            pacer,
            counters,
            reporter,
            policy,
            batch,
            stop,
            halt: std::sync::Mutex::new(None),
            streak: AtomicU32::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Why the run halted, if it did.
    pub fn halted(&self) -> Option<Halt> {
        self.halt.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn halt(&self, why: Halt) {
        self.halt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.stop.cancel();
    }

    /// Takes operations to settled outcomes, one per operation, in order: one batch request
    /// (split when Customer.io refuses it whole), or one request each through its own
    /// endpoint (`--batch 1`, and what no batch carries).
    pub async fn deliver(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        if !self.batch || !items.iter().all(|i| i.op.batchable()) {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let label = || {
                    let r = item.op.one_request();
                    format!("{:?} {}", r.method, r.path)
                };
                let settled = self
                    .until_settled(&label, || self.client.send_one(&item.op))
                    .await;
                out.push(match settled {
                    Settled::Answered(Answer::Partial(errors), attempts) => {
                        // A 207 to a v1 request is not expected; read it as a refusal.
                        Delivery::Failed {
                            status: Some(207),
                            attempts,
                            message: join_errors(&errors),
                        }
                    }
                    other => whole(other),
                });
            }
            return out;
        }
        self.deliver_batch(items).await
    }

    async fn split_batch(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        let (left, right) = items.split_at(items.len() / 2);
        let mut out = Box::pin(self.deliver_batch(left)).await;
        out.extend(Box::pin(self.deliver_batch(right)).await);
        out
    }

    async fn deliver_batch(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        let body = batch_body(items.iter().map(|i| i.encoded.as_slice()));
        let label = || format!("batch of {} ({} bytes)", items.len(), body.len());
        let settled = self
            .until_settled(&label, || self.client.send_batch(body.clone()))
            .await;
        match settled {
            // A 207 means some operations were refused; one that does not say which (a body
            // cut off or not the documented shape, an index that is not one of this batch's)
            // is split like a refusal, down to single operations, rather than taken for a
            // success of the operations it does not name.
            Settled::Answered(Answer::Partial(errors), attempts) => {
                match attribute(errors, items.len(), attempts) {
                    Some(out) => out,
                    None if items.len() > 1 => self.split_batch(items).await,
                    None => vec![
                        Delivery::Failed {
                            status: Some(207),
                            attempts,
                            message: "Customer.io answered 207 (some operations refused) but \
                                      did not say which"
                                .to_owned(),
                        };
                        items.len()
                    ],
                }
            }
            // Refused whole, or too large: split it to find the bad operations and send the
            // good ones.
            Settled::Answered(
                Answer::Rejected {
                    status: 400 | 413, ..
                },
                _,
            ) if items.len() > 1 => self.split_batch(items).await,
            Settled::Answered(
                Answer::Rejected {
                    status: 413,
                    message,
                },
                attempts,
            ) => {
                let d = Delivery::Failed {
                    status: Some(413),
                    attempts,
                    message: format!("{message}; the operation is too large even alone"),
                };
                vec![d; items.len()]
            }
            other => {
                let d = whole(other);
                vec![d; items.len()]
            }
        }
    }

    /// Sends one request until it gets an answer that is not worth retrying, under the
    /// pacing rules.
    /// `label` names the request in -v logs.
    async fn until_settled<F, Fut>(&self, label: &(dyn Fn() -> String + Sync), send: F) -> Settled
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        let mut attempts = 0u32;
        let mut history: Vec<String> = Vec::new();
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Settled::Unsent,
                p = self.pacer.acquire() => p,
            };
            attempts += 1;
            Counters::add(&self.counters.requests, 1);
            // An attempt under way is allowed to finish (bounded by --timeout) even when the
            // run is stopping, so its outcome is settled rather than sent twice.
            let answer = send().await;
            if self.reporter.verbose() > 0 {
                self.reporter
                    .log(format!("{} attempt {attempts}: {answer:?}", label()));
            }
            let (status, message, wait) = match answer {
                Answer::Accepted | Answer::Partial(_) | Answer::Rejected { .. } => {
                    if !matches!(answer, Answer::Rejected { .. }) {
                        self.streak.store(0, Ordering::Relaxed);
                        self.pacer.on_accepted();
                    }
                    return Settled::Answered(answer, attempts);
                }
                Answer::Unauthorized { status } => {
                    self.halt(Halt::Credentials(status));
                    return Settled::Unsent;
                }
                Answer::RateLimited { retry_after } => {
                    Counters::add(&self.counters.rate_limited, 1);
                    // The pacer pauses everyone, this request included: no wait of its own.
                    self.pacer
                        .on_rate_limited(permit, self.policy.cap(retry_after));
                    (
                        Some(429),
                        "429 Too Many Requests".to_owned(),
                        Duration::ZERO,
                    )
                }
                Answer::Retry {
                    status,
                    retry_after,
                    message,
                } => {
                    let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
                    self.pacer.on_trouble(streak);
                    if streak >= WARN_STREAK && !self.warned.swap(true, Ordering::Relaxed) {
                        self.reporter.warn(format!(
                            "{streak} requests in a row failed (last: {message}); slowing down"
                        ));
                    }
                    if streak >= self.policy.max_consecutive_failures {
                        self.halt(Halt::DeadEndpoint {
                            streak,
                            base: self.client.base().to_owned(),
                            last: message,
                        });
                        return Settled::Unsent;
                    }
                    (status, message, self.policy.wait(attempts, retry_after))
                }
            };
            history.push(message);
            if self.policy.spent(attempts) {
                return Settled::GaveUp {
                    status,
                    attempts,
                    message: format!(
                        "gave up {}: {}",
                        self.policy.after(attempts),
                        history.join("; ")
                    ),
                };
            }
            Counters::add(&self.counters.retries, 1);
            if self.reporter.verbose() > 1 {
                self.reporter.log(format!(
                    "{}: waiting {wait:?} before retry {attempts}",
                    label()
                ));
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Settled::Unsent,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The outcome of each of `n` operations a 207 answered: those it names failed with its
/// reasons, the others accepted. None when it does not name one of them.
fn attribute(errors: Vec<BatchError>, n: usize, attempts: u32) -> Option<Vec<Delivery>> {
    if errors.is_empty() {
        return None;
    }
    let mut out = vec![Delivery::Accepted; n];
    for e in errors {
        let slot = out.get_mut(e.index)?;
        let message = match slot {
            Delivery::Failed { message, .. } => format!("{message}; {}", e.message),
            _ => e.message,
        };
        *slot = Delivery::Failed {
            status: Some(207),
            attempts,
            message,
        };
    }
    Some(out)
}

/// The same outcome for every operation a request carried.
fn whole(settled: Settled) -> Delivery {
    match settled {
        Settled::Answered(Answer::Accepted, _) => Delivery::Accepted,
        Settled::Answered(Answer::Rejected { status, message }, attempts) => Delivery::Failed {
            status: Some(status),
            attempts,
            message,
        },
        Settled::Answered(other, attempts) => Delivery::Failed {
            status: None,
            attempts,
            message: format!("unexpected answer: {other:?}"),
        },
        Settled::GaveUp {
            status,
            attempts,
            message,
        } => Delivery::Failed {
            status,
            attempts,
            message,
        },
        Settled::Unsent => Delivery::Unsent,
    }
}

fn join_errors(errors: &[BatchError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(index: usize, message: &str) -> BatchError {
        BatchError {
            index,
            message: message.into(),
        }
    }

    fn failed(message: &str) -> Delivery {
        Delivery::Failed {
            status: Some(207),
            attempts: 2,
            message: message.into(),
        }
    }

    #[test]
    fn a_207_is_attributed_only_when_it_names_operations_of_the_batch() {
        assert_eq!(
            attribute(vec![error(2, "a"), error(0, "b"), error(2, "c")], 3, 2),
            Some(vec![failed("b"), Delivery::Accepted, failed("a; c")])
        );
        assert_eq!(attribute(vec![], 3, 2), None);
        assert_eq!(attribute(vec![error(0, "a"), error(3, "b")], 3, 2), None);
    }
}
