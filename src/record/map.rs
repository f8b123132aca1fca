//! STUB: being written on branch `record`.

use super::{Action, EmptyPolicy, Operation, ValueType};
use crate::source::RowData;

/// What the mapping needs from the command line.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub action: Action,
    pub id_column: Option<String>,
    pub types: Vec<(String, ValueType)>,
    pub empty: EmptyPolicy,
    pub event_name: Option<String>,
}

/// An input that cannot be mapped at all (no identifier column, say).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// Why a row is invalid: the column (when one is to blame) and a message naming the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub column: Option<String>,
    pub message: String,
}

pub struct Mapper {}

impl Mapper {
    pub fn new(_spec: &MapSpec, _headers: Option<&[String]>) -> Result<Mapper, MapError> {
        todo!()
    }

    pub fn map(&mut self, _row: &RowData) -> Result<Operation, Invalid> {
        todo!()
    }

    /// The row as a JSON object, for the failures file.
    pub fn raw(&self, _row: &RowData) -> serde_json::Map<String, serde_json::Value> {
        todo!()
    }
}
