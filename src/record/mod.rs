//! Records: the Customer.io operation a row becomes, and how a row is mapped and validated into it.
//!
//! An [`Operation`] serialises to exactly the shape of one `/api/v2/batch` operation, so the
//! same value is what a batch carries, what a failures-file line holds, and what a replay reads.
//!
//! A row goes: header plan (`plan`) → cells into fields (`row`) → its action's rules
//! (`rules`) → an operation (its event id from `event_id`). A failures-file line goes
//! through `replay` into the same rules.

mod columns;
mod digest;
mod entity;
mod event_id;
mod exported;
mod hash;
mod identifier;
mod key;
mod notes;
mod object;
mod operation;
mod order;
mod plan;
mod preview;
mod recent;
mod replay;
mod row;
mod rules;
mod shard;
mod tally;
mod ties;
mod time;
mod unused;
mod v1;
mod value;

#[cfg(test)]
mod testkit;

pub use columns::{Columns, Pattern, Rename, check_type_flags, type_flag};
pub use entity::{Device, Entity, ObjectId, Platform};
pub use event_id::input_path;
pub use identifier::{IdKind, Identifier};
pub use notes::{Oversize, Resized};
pub use operation::{Event, EventKind, Operation, Who};
pub use order::Order;
pub use plan::{MapError, MapSpec, Mapper};
pub use preview::SAMPLE_ROWS;
pub use recent::TRIGGER_WINDOW_SECS;
pub use replay::{Origin, replayed};
pub use shard::Shard;
pub use time::{TimeFormat, parse_zone};
pub use unused::FlagUse;
pub use v1::{ENTITY_PATH, EventBody, Method, OneBody, OneRequest, V1Device};
pub use value::{Conventions, ValueType};
pub(crate) use value::{json_size, thousands};

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
    /// Track a page view (its name is the page's URL or name), like an event.
    Page,
    /// Track a mobile screen view (its name is the screen's), like an event.
    Screen,
    /// Delete the person.
    Delete,
    /// Suppress the person (and delete their data).
    Suppress,
    /// Lift a suppression.
    Unsuppress,
    /// Add a mobile device to the person: device_id (its token) and platform columns.
    AddDevice,
    /// Remove a device from the person: a device_id column.
    DeleteDevice,
    /// Merge each row's secondary person into its primary (primary_id, primary_email or
    /// primary_cio_id, and secondary_...): for good.
    Merge,
    /// Relate the person to an object: an object_id column, and --object-type.
    AddRelationships,
    /// Remove a person's relationship to an object.
    DeleteRelationships,
}

/// A value of a flag as the command line spells it (`add-device`), asked of clap, which reads
/// it.
pub fn value_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

impl Action {
    /// What kind of event the action tracks; None for the actions that are no event.
    pub(crate) fn event_kind(self) -> Option<EventKind> {
        match self {
            Action::Event => Some(EventKind::Event),
            Action::Page => Some(EventKind::Page),
            Action::Screen => Some(EventKind::Screen),
            _ => None,
        }
    }

    /// As the command line spells it (`add-device`).
    pub fn flag_name(self) -> String {
        value_name(self)
    }

    /// Whether its records cannot be undone: they delete (a person or an object), suppress
    /// or merge.
    pub fn destroys(self) -> bool {
        matches!(self, Action::Delete | Action::Suppress | Action::Merge)
    }
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
