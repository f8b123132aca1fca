//! Records: the Customer.io operation a row becomes, and how a row is mapped and validated into it.
//!
//! An [`Operation`] serialises to exactly the shape of one `/api/v2/batch` operation, so the
//! same value is what a batch carries, what a failures-file line holds, and what a replay reads.
//!
//! A row goes: header plan (`plan`) → cells into fields (`row`) → its action's rules
//! (`rules`) → an operation (its event id from `event_id`). A failures-file line goes
//! through `replay` into the same rules.

mod event_id;
mod hash;
mod identifier;
mod operation;
mod plan;
mod replay;
mod row;
mod rules;
mod shard;
mod tally;
mod v1;
mod value;

#[cfg(test)]
mod testkit;

pub use identifier::{IdKind, Identifier};
pub use operation::{Event, Operation, Who};
pub use plan::{MapError, MapSpec, Mapper};
pub use shard::Shard;
pub use v1::{EventBody, Method, V1Body, V1Request};
pub use value::ValueType;
pub(crate) use value::json_size;

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create or update a person with the row's attributes.
    Identify,
    /// Track an event for a person (or an anonymous event, by `anonymous_id`).
    Event,
    /// Delete the person.
    Delete,
    /// Suppress the person (and delete their data).
    Suppress,
    /// Lift a suppression.
    Unsuppress,
}

/// What to do with an empty cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmptyPolicy {
    /// Leave the attribute as it is in Customer.io.
    Skip,
    /// Send "" so Customer.io clears the attribute.
    Clear,
}

/// Why a row is invalid: the column (when one is to blame) and a message naming the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub column: Option<String>,
    pub message: String,
}

impl Invalid {
    fn at(column: &str, message: String) -> Invalid {
        Invalid {
            column: Some(column.to_owned()),
            message,
        }
    }

    fn row(message: String) -> Invalid {
        Invalid {
            column: None,
            message,
        }
    }
}

/// The message alone: what serde reports when a line read as an [`Operation`] breaks a rule.
impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
