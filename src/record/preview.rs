//! What the mapping will do, told before anything is sent: the plan (which column is the
//! identifier and as what, what every other column becomes), and the warnings that catch a
//! silent mistake: a column one letter-case away from a Customer.io name, an `id`
//! identifier holding email addresses.

use std::cell::Cell;

use super::columns::{Fate, Pattern, Rename, told_as_written};
use super::entity::Entity;
use super::plan::{CsvPlan, Role};
use super::replay::ERROR_KEY;
use super::value::{Origin, Typed};
use super::{Action, IdKind, Identifier, Mapper, ValueType};
use crate::shell;
use crate::source::RowData;

/// The rows of an input whose identifiers are looked at for email addresses.
pub const SAMPLE_ROWS: u64 = 100;

/// Names Customer.io gives a meaning to, as attributes of a person.
const RESERVED: [&str; 9] = [
    "id",
    "email",
    "cio_id",
    "phone",
    "created_at",
    "unsubscribed",
    "anonymous_id",
    "cio_subscription_preferences",
    "cio_relationships",
];

/// An event's own columns, beside the person's.
const EVENT_RESERVED: [&str; 3] = ["name", "timestamp", "event_id"];

/// The first rows' `id` identifiers, counted for how many look like email addresses.
#[derive(Debug, Default)]
pub(super) struct IdSample {
    seen: Cell<u32>,
    emails: Cell<u32>,
    /// The column they came from (NDJSON: the last row's).
    column: std::cell::RefCell<String>,
    done: Cell<bool>,
}

impl IdSample {
    /// Notes a row's person; stops after [`SAMPLE_ROWS`] rows with an `id`.
    #[inline]
    pub(super) fn note(&self, person: Option<&(&str, Identifier<std::borrow::Cow<'_, str>>)>) {
        if self.done.get() {
            return;
        }
        let Some((column, Identifier { kind, value })) = person else {
            return;
        };
        if *kind != IdKind::Id || value.is_empty() {
            return;
        }
        let seen = self.seen.get() + 1;
        self.seen.set(seen);
        if looks_like_email(value) {
            self.emails.set(self.emails.get() + 1);
            if self.column.borrow().as_str() != *column {
                *self.column.borrow_mut() = (*column).to_owned();
            }
        }
        if u64::from(seen) >= SAMPLE_ROWS {
            self.done.set(true);
        }
    }
}

/// `a@b.c`: something, an at sign, and a domain with a dot, no spaces.
fn looks_like_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// A name with case, spaces and underscores left out: `Created At` and `created_at` alike.
pub(super) fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| *c != ' ' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Mapper {
    /// Starts looking at the first rows' identifiers; built once per input.
    pub(super) fn start_sample(&mut self) {
        let csv_id = self
            .csv
            .as_ref()
            .map(|plan| plan.roles.contains(&Role::Identifier(IdKind::Id)));
        if self.entity == Entity::Person && csv_id != Some(false) {
            self.sample = Some(IdSample::default());
        }
    }

    /// The warning about the identifiers sampled so far, once: when more than half of
    /// those of the first rows look like email addresses. Ask after [`SAMPLE_ROWS`] rows
    /// and at the end of the input.
    pub fn id_advice(&mut self) -> Option<String> {
        let sample = self.sample.take()?;
        let (seen, emails) = (sample.seen.get(), sample.emails.get());
        if seen == 0 || emails * 2 <= seen {
            return None;
        }
        let column = sample.column.into_inner();
        let id_column = shell::flag("--id-column", &column);
        let id_type = format!("{id_column} --id-type email");
        let fix = match &self.id_column {
            Some(_) => format!("--id-type email (with {id_column})"),
            None => match self.renamed_to(&column) {
                // The rename that made it `id` changed to make it `email`.
                Ok(Some(rename)) if !rename.to.contains('*') => {
                    let to_email = Rename {
                        from: rename.from.clone(),
                        to: "email".to_owned(),
                    };
                    format!(
                        "{} in place of {} (or {id_type})",
                        to_email.flag(),
                        rename.flag()
                    )
                }
                Ok(_) => {
                    let to_email = Rename {
                        from: Pattern::new(&self.original_name(&column)),
                        to: "email".to_owned(),
                    };
                    format!("{} (or {id_type})", to_email.flag())
                }
                // A key a pattern renamed: which one is not known here.
                Err(()) => id_type,
            },
        };
        let advice = format!(
            "the identifier column {column:?} is sent as id, but {emails} of its first {seen} \
             values look like email addresses: Customer.io would make people whose id is an \
             address and who have no email. If they are emails, pass {fix}"
        );
        Some(told_as_written(&advice, &self.written_names(None)))
    }

    /// The rename that gave the column `name` its name, if one did: known for a CSV header;
    /// for NDJSON, from an exact NEW, unless a pattern's may have given it (Err).
    fn renamed_to(&self, name: &str) -> Result<Option<&Rename>, ()> {
        if self.csv.is_some() {
            let original = self.original_name(name);
            return Ok(self.columns.renamed_away(&original).map(|(r, _)| r));
        }
        match self.columns.renamed_onto(name) {
            Some(rename) => Ok(Some(rename)),
            None if self.columns.renames().iter().any(|r| r.to.contains('*')) => Err(()),
            None => Ok(None),
        }
    }

    /// The header's name of the column now called `name` (before `--rename`).
    fn original_name(&self, name: &str) -> String {
        self.csv
            .as_ref()
            .and_then(|plan| {
                let i = plan.headers.iter().position(|h| h == name)?;
                Some(plan.original[i].clone())
            })
            .unwrap_or_else(|| name.to_owned())
    }

    /// Warnings about the header: each attribute column whose name is a Customer.io name
    /// but for case, spaces or underscores (`Email`, `Created At`), naming the `--rename`
    /// that makes it that name. None for NDJSON, whose keys are per row (see
    /// [`Mapper::first_row_warnings`]).
    pub fn header_warnings(&self) -> Vec<String> {
        let Some(plan) = &self.csv else {
            return Vec::new();
        };
        let columns = (0..plan.headers.len())
            .filter(|&i| !plan.dropped[i])
            .map(|i| {
                let attribute = matches!(plan.roles[i], Role::Attribute(_));
                (
                    plan.original[i].as_str(),
                    plan.headers[i].clone(),
                    attribute,
                )
            });
        self.near_misses("column", columns.collect())
    }

    /// The same warnings for an NDJSON input, from the keys of its first line (after
    /// `--flatten`, `--rename` and `--drop`); none for any other row.
    pub fn first_row_warnings(&self, row: &RowData) -> Vec<String> {
        let RowData::Json(object) = row else {
            return Vec::new();
        };
        if self.csv.is_some() || object.contains_key(ERROR_KEY) {
            return Vec::new();
        }
        let keys: Vec<_> = self.keys_of(object).collect();
        let id_key = match &self.id_column {
            Some(col) => Some(col.as_str()),
            None => self.id_key(|k| object.contains_key(k)),
        };
        let columns = keys
            .iter()
            .filter_map(|(key, ..)| match self.columns.fate(key) {
                Fate::Dropped(_) => None,
                Fate::Kept(name) => {
                    let attribute = matches!(self.role(&name, id_key), Role::Attribute(_));
                    Some((key.as_str(), name.into_owned(), attribute))
                }
            });
        self.near_misses("key", columns.collect())
    }

    /// Each attribute among `columns` (as the input names it, as mapped, whether an
    /// attribute) that is a Customer.io name but for case, spaces or underscores, unless
    /// the input has that name itself (and so means the other as something else).
    fn near_misses(&self, noun: &str, columns: Vec<(&str, String, bool)>) -> Vec<String> {
        let event = self.action.event_kind().is_some();
        let reserved = RESERVED
            .iter()
            .chain(EVENT_RESERVED.iter().filter(|_| event));
        let mut warnings = Vec::new();
        for reserved in reserved {
            if columns.iter().any(|(_, name, _)| name == reserved) {
                continue;
            }
            for (original, name, attribute) in &columns {
                if *attribute && folded(name) == folded(reserved) {
                    let rename = Rename {
                        from: Pattern::new(original),
                        to: (*reserved).to_owned(),
                    };
                    warnings.push(format!(
                        "{noun} {name:?} is sent as a custom attribute {name:?}, not as \
                         Customer.io's {reserved:?}; if it is meant as that, pass {}",
                        rename.flag()
                    ));
                }
            }
        }
        warnings
    }

    /// The plan, a line a column: what each becomes. For NDJSON, whose keys are per row,
    /// the rules instead.
    pub fn plan_lines(&self) -> Vec<String> {
        match &self.csv {
            Some(plan) => self.csv_plan_lines(plan),
            None => self.ndjson_plan_lines(),
        }
    }

    fn csv_plan_lines(&self, plan: &CsvPlan) -> Vec<String> {
        // Padded by chars, as `format!` pads: measured on the text shown.
        let shown: Vec<String> = plan.original.iter().map(|h| format!("{h:?}")).collect();
        let width = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        let mut lines = vec!["the plan, column by column:".to_owned()];
        for (i, role) in plan.roles.iter().enumerate() {
            let (original, name) = (&plan.original[i], &plan.headers[i]);
            // The flags that made it so, in one parenthesis.
            let mut by = Vec::new();
            if original != name {
                by.push("--rename");
            }
            let what = if plan.dropped[i] {
                by.push("--drop");
                "dropped".to_owned()
            } else {
                if self.typed_by_flag(role) {
                    by.push("--type");
                }
                self.role_text(role, name)
            };
            let by = match by.is_empty() {
                true => String::new(),
                false => format!(" ({})", by.join(", ")),
            };
            lines.push(format!("  {:width$}  {what}{by}", shown[i]));
        }
        lines
    }

    fn ndjson_plan_lines(&self) -> Vec<String> {
        let identifier = match (&self.id_column, self.entity, self.action) {
            (Some(col), ..) => {
                let kind = self.id_type.unwrap_or_else(|| IdKind::of_column(col));
                format!("the {col:?} key of each line, as {}", kind.name())
            }
            (None, Entity::Object, _) => "the object_id key of each line".to_owned(),
            (None, _, Action::Merge) => "each line's primary_* and secondary_* keys".to_owned(),
            // A kind a rename gives says so: `id` may be a line's `userId`.
            (None, ..) => format!(
                "the first of {} each line has",
                IdKind::detected()
                    .iter()
                    .map(|k| match self.columns.renamed_onto(k.name()) {
                        Some(r) => format!("{} ({:?}, {})", k.name(), r.from.as_str(), r.flag()),
                        None => k.name().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut lines = vec![format!("the plan: the identifier is {identifier}")];
        for key in self.columns.flatten() {
            lines.push(format!("  {key:?}: its keys lifted to the top (--flatten)"));
        }
        for rename in self.columns.renames() {
            lines.push(format!(
                "  {:?}: read as {:?} ({})",
                rename.from.as_str(),
                rename.to,
                rename.flag()
            ));
        }
        for drop in self.columns.drops() {
            lines.push(format!("  {:?}: dropped (--drop)", drop.as_str()));
        }
        lines.push("  every other key: an attribute of its own name, its JSON value".to_owned());
        lines
    }

    /// Whether a `--type` gave the column of `role` its type (or its time's format).
    fn typed_by_flag(&self, role: &Role) -> bool {
        match role {
            Role::Attribute(Some(typed)) => typed.origin == Origin::Flag,
            Role::EventTimestamp => self.event_time.ty != ValueType::TIMESTAMP,
            Role::LastUsed => self.last_used.ty != ValueType::TIMESTAMP,
            _ => false,
        }
    }

    /// What a column of role `role`, named `name`, becomes.
    pub(super) fn role_text(&self, role: &Role, name: &str) -> String {
        let data = match (self.entity, self.action) {
            (_, action) if action.event_kind().is_some() => "event data",
            (Entity::Object, _) => "object attribute",
            (_, Action::AddDevice) => "device attribute",
            (_, Action::AddRelationships) => "relationship attribute",
            _ => "attribute",
        };
        match role {
            Role::Identifier(kind) => format!("the identifier, as {}", kind.name()),
            Role::AnonymousId => "the anonymous id".to_owned(),
            Role::EventName => "the event name".to_owned(),
            Role::EventTimestamp => format!("the event's time{}", format_of(&self.event_time)),
            Role::EventId => "the event id".to_owned(),
            Role::ObjectId => "the object id".to_owned(),
            Role::ObjectTypeId => "the object type id".to_owned(),
            Role::DeviceId => "the device token".to_owned(),
            Role::Platform => "the device platform".to_owned(),
            Role::LastUsed => format!(
                "when the device was last used{}",
                format_of(&self.last_used)
            ),
            Role::Primary(kind) => format!("the primary person, as {}", kind.name()),
            Role::Secondary(kind) => format!("the secondary person, as {}", kind.name()),
            // Text however it came to be (no --type, `string`, --strip-apostrophe): one word.
            Role::Attribute(typed) => match typed.as_ref().map(|t| &t.ty) {
                None | Some(ValueType::String) => format!("{data} {name:?}, text"),
                Some(ty) => format!("{data} {name:?}, {ty}"),
            },
            Role::Unnamed => "no name: must stay empty".to_owned(),
            Role::Ignored => format!("not sent (--action {})", self.action.flag_name()),
        }
    }
}

/// A time column's format, told when a `--type` gave one: `, timestamp:%m/%d/%Y`.
fn format_of(typed: &Typed) -> String {
    match typed.ty == ValueType::TIMESTAMP {
        true => String::new(),
        false => format!(", {}", typed.ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_looks() {
        assert!(looks_like_email("ann@example.com"));
        for not in ["ann", "@x.io", "ann@x", "a b@x.io", "ann@.io", "ann@x."] {
            assert!(!looks_like_email(not), "{not}");
        }
    }

    #[test]
    fn names_fold_case_spaces_and_underscores_only() {
        assert_eq!(folded("Created At"), folded("created_at"));
        assert_eq!(folded("EMAIL"), "email");
        assert_ne!(folded("E-mail"), "email");
    }
}
