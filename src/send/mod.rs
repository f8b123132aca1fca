//! Sending: what each answer from the Track API means, the bodies of batch requests, the
//! HTTP client, and the retry loop that takes operations to settled outcomes.

mod answer;
mod batch;
mod client;
mod deliver;
mod wait;

pub use answer::{Answer, BatchError, Body, Redact, Reply, classify};
pub use batch::{batch_body, batch_body_len};
pub use client::{Client, RegionInfo, credentials_message};
pub use deliver::{Delivery, Halt, Outgoing, Sender};
pub use wait::RetryPolicy;
