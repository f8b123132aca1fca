//! Track API facts that every stage points down to: the regions and their hosts, the key,
//! and the documented limits a request must keep (Customer.io's figures; see
//! `../shared/customerio/track-api-notes.md`). The sandbox keeps its own copy of the limits,
//! as the server reads them, so that a slip here is caught against it.

use std::fmt;

/// The data centre a workspace lives in, as `/api/v1/accounts/region` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl Region {
    /// The name Customer.io gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }

    /// The Track API host for the region.
    pub fn host(self) -> &'static str {
        match self {
            Region::Us => US_HOST,
            Region::Eu => EU_HOST,
        }
    }
}

pub const US_HOST: &str = "https://track.customer.io";
pub const EU_HOST: &str = "https://track-eu.customer.io";

/// The Track API key. Its Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Person identifier (`id`, `email`, `cio_id`).
pub const MAX_IDENTIFIER_BYTES: usize = 150;
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 150;
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1_000;
/// Distinct attributes in one identify call.
pub const MAX_ATTRIBUTES: usize = 300;
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// An event's data, serialised.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;

/// The most one operation in a `/api/v2/batch` request may take. Customer.io says 32 KB;
/// counting it as 32,000 bytes keeps us under it whichever KB was meant.
pub const MAX_OPERATION_BYTES: usize = 32_000;

/// A batch body must stay under this (Customer.io: "under 500 KB"; 500,000 bytes for the
/// same reason).
pub const MAX_BATCH_BYTES: usize = 500_000;
