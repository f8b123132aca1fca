//! The person a row names, read even when the row is invalid: what `--state` marks as still
//! in the export, so that `--missing` never removes someone whose row was only wrong tonight.

use super::object::Object;
use super::operation::person_key;
use super::plan::Role;
use super::replay::ERROR_KEY;
use super::row::identifier_text;
use super::{Entity, Identifier, Mapper, Who};
use crate::source::RowData;

impl Mapper {
    /// The key of the person `row` names (as [`super::Operation::order`] has it), whether or
    /// not the row maps; None when its identifier cannot be read (none, empty, a CSV row of
    /// the wrong width, whose cells may be shifted), or for a row not about one person.
    pub fn person_of(&self, row: &RowData) -> Option<u64> {
        if self.entity != Entity::Person {
            return None;
        }
        let (column, kind, text) = match row {
            RowData::Csv(record) => {
                let plan = self.csv.as_ref()?;
                if record.len() != plan.headers.len() {
                    return None;
                }
                plan.roles
                    .iter()
                    .zip(record)
                    .enumerate()
                    .find_map(|(i, (role, cell))| {
                        let &Role::Identifier(kind) = role else {
                            return None;
                        };
                        let text = self.conventions.unquoted(cell.trim());
                        Some((plan.headers[i].as_str(), kind, text))
                    })?
            }
            RowData::Json(object) if !object.contains_key(ERROR_KEY) => {
                return match self.reshaped(object).ok()? {
                    Some(reshaped) => self.json_person(&reshaped),
                    None => self.json_person(object),
                };
            }
            _ => return None,
        };
        let value = kind.cut(column, text).ok()?;
        Some(person_key(&Who::Person(Identifier { kind, value })))
    }

    fn json_person(&self, object: &impl Object) -> Option<u64> {
        let column = match &self.id_column {
            Some(col) => col.as_str(),
            None => self.id_key(|k| object.value(k).is_some_and(|v| !v.is_null()))?,
        };
        let Role::Identifier(kind) = self.role(column, Some(column)) else {
            return None;
        };
        let text = identifier_text(column, object.value(column)?).ok()?;
        let value = kind.cut(column, self.conventions.unquoted(&text)).ok()?;
        Some(person_key(&Who::Person(Identifier { kind, value })))
    }
}
