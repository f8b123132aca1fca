//! Mapping: turns one input row (CSV record, NDJSON object, failures-file line) into a validated
//! [`Operation`], or says which column is wrong and how to fix it.
//!
//! Limits come from Customer.io's Track API documentation (see the shared API notes). A row that
//! breaks one is refused here, so it lands in the failures file with a reason instead of failing
//! a whole batch on the server.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io;

use serde_json::{Map, Value};
use ulid::Ulid;

use super::value::{self, Cell, Origin, Typed, json_kind, json_size, quote, str_bound, thousands};
use super::{Action, EmptyPolicy, EntityType, Identifier, Operation, ValueType};
use crate::source::RowData;
use crate::track::{
    MAX_ATTRIBUTE_NAME_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_EVENT_DATA_BYTES,
    MAX_EVENT_NAME_BYTES, MAX_IDENTIFIER_BYTES,
};

/// Identifier columns looked for, in this order, when `--id-column` is not given.
const ID_COLUMNS: [&str; 3] = ["id", "email", "cio_id"];
const ANONYMOUS_ID: &str = "anonymous_id";
/// The key our failures file adds to every line; its presence marks a replay.
const ERROR_KEY: &str = "_error";
/// The key the failures file uses for a row that could not be read at all.
const RAW_KEY: &str = "_raw";

/// What the mapping needs from the command line.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub action: Action,
    pub id_column: Option<String>,
    /// Which identifier `id_column` holds; by default, as its name says.
    pub id_type: Option<IdKind>,
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

/// Which identifier a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdKind {
    /// Your own id for the person.
    Id,
    /// The person's email address.
    Email,
    /// Customer.io's own id for the person.
    #[value(name = "cio_id")]
    CioId,
}

impl IdKind {
    /// A custom `--id-column` is an `id` unless it is named like one of the others (in any
    /// case) or `--id-type` says otherwise.
    fn of_column(name: &str) -> IdKind {
        if name.eq_ignore_ascii_case("email") {
            IdKind::Email
        } else if name.eq_ignore_ascii_case("cio_id") {
            IdKind::CioId
        } else {
            IdKind::Id
        }
    }

    fn identifier(self, text: String) -> Identifier {
        match self {
            IdKind::Id => Identifier::Id(text),
            IdKind::Email => Identifier::Email(text),
            IdKind::CioId => Identifier::CioId(text),
        }
    }
}

/// What a column is for. Worked out once per CSV header, per key for NDJSON.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Identifier(IdKind),
    AnonymousId,
    EventName,
    EventTimestamp,
    EventId,
    /// An attribute (identify) or event data; None is "no type given" (NDJSON passes the JSON
    /// value through, CSV sends the string).
    Attribute(Option<Typed>),
    /// A CSV column with an empty header name (a trailing comma, usually).
    Unnamed,
    /// Not sent (delete, suppress and unsuppress need only the identifier).
    Ignored,
}

/// The event `timestamp` column is always a timestamp: `Operation.timestamp` is Unix seconds.
const EVENT_TIME: Typed = Typed {
    ty: ValueType::Timestamp,
    origin: Origin::Fixed,
};

/// The per-column plan for a CSV input, indexed like the record's fields.
struct CsvPlan {
    headers: Vec<String>,
    roles: Vec<Role>,
}

/// Maps rows of one input. Build it once per input; `map` then does no per-row lookups by name
/// for CSV.
pub struct Mapper {
    action: Action,
    empty: EmptyPolicy,
    event_name: Option<String>,
    id_column: Option<String>,
    id_type: Option<IdKind>,
    types: HashMap<String, ValueType>,
    csv: Option<CsvPlan>,
}

/// A row's pieces as found, before the row-level checks.
#[derive(Default)]
struct Draft<'a, A> {
    /// Identifier column, kind, and value (trimmed; may be empty).
    person: Option<(&'a str, IdKind, Cow<'a, str>)>,
    /// Trimmed; may be empty.
    anonymous: Option<Cow<'a, str>>,
    /// Column and trimmed value.
    name: Option<(&'a str, &'a str)>,
    event_id: Option<(&'a str, &'a str)>,
    timestamp: Option<i64>,
    attributes: A,
}

/// Where a row's attributes go as its columns are converted: into the operation's map
/// ([`Mapper::map`]), or only into the [`Tally`] the limits need ([`Mapper::validate`]). Both
/// run the same per-column and per-row code, so they reach the same verdict.
trait Attributes: Default {
    fn put(&mut self, column: &str, v: Cell<'_>);
    fn tally(&self) -> &Tally;
}

/// An operation's attribute map being built, and its tally.
#[derive(Default)]
struct Collect {
    map: Map<String, Value>,
    tally: Tally,
}

impl Attributes for Collect {
    fn put(&mut self, column: &str, v: Cell<'_>) {
        self.tally.add(column, &v);
        self.map.insert(column.to_owned(), v.into_value());
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }
}

impl Attributes for Tally {
    // Inlined, as `add` is, so a cell is never stored to be passed (see `Cell`).
    #[inline(always)]
    fn put(&mut self, column: &str, v: Cell<'_>) {
        self.add(column, &v);
    }

    fn tally(&self) -> &Tally {
        self
    }
}

/// What the limits need to know of a row's attributes, gathered as each one is put.
#[derive(Default)]
struct Tally {
    count: usize,
    /// At least the attributes' length as a JSON object, less its braces.
    json_bound: usize,
    /// The person-attribute limit broken by the attribute whose name sorts first: the
    /// attributes are checked as a map, in name order.
    broken: Option<Invalid>,
}

impl Tally {
    /// Attribute names are distinct: a CSV header with a name twice is refused, and JSON
    /// object keys are unique.
    #[inline(always)]
    fn add(&mut self, name: &str, v: &Cell<'_>) {
        let bound = v.json_bound();
        self.count += 1;
        // "name":value,
        self.json_bound += str_bound(name) + bound + 2;
        if let Err(e) = check_attribute(name, v, bound)
            && self
                .broken
                .as_ref()
                .is_none_or(|b| b.column.as_deref().is_some_and(|c| name < c))
        {
            self.broken = Some(e);
        }
    }

    fn of(attributes: &Map<String, Value>) -> Tally {
        let mut tally = Tally::default();
        for (name, v) in attributes {
            tally.add(name, &Cell::Json(v));
        }
        tally
    }

    /// A person's attributes: name and value sizes, and how many.
    fn check_person(&self) -> Result<(), Invalid> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        if self.count > MAX_ATTRIBUTES {
            return Err(Invalid::row(format!(
                "row has {} attributes; Customer.io allows at most {MAX_ATTRIBUTES} per person \
                 (split the columns across two imports)",
                self.count
            )));
        }
        Ok(())
    }

    /// At least the attributes' length as a JSON object.
    fn object_bound(&self) -> usize {
        self.json_bound + 2
    }
}

/// Who a row is about, checked.
enum Who<'a> {
    Person(IdKind, Cow<'a, str>),
    Anonymous(Cow<'a, str>),
}

/// A row that passed every check but the size of an event's data, which needs the data
/// serialised (see [`finish_event`]).
struct Checked<'a, A> {
    action: Action,
    who: Who<'a>,
    /// An event's name.
    name: Option<&'a str>,
    /// A given event id, as the canonical ULID.
    event_id: Option<String>,
    timestamp: Option<i64>,
    attributes: A,
}

/// The most an operation's JSON takes besides its identifier, event name and attributes: the
/// keys, the punctuation, the longest action, a ULID and an i64 timestamp (about 170 bytes).
const OPERATION_FRAME_BOUND: usize = 200;

impl<A: Attributes> Checked<'_, A> {
    /// At least the operation's length as JSON.
    fn json_bound(&self) -> usize {
        let who = match &self.who {
            Who::Person(_, text) | Who::Anonymous(text) => str_bound(text),
        };
        OPERATION_FRAME_BOUND
            + who
            + self.name.map_or(0, str_bound)
            + self.attributes.tally().object_bound()
    }
}

impl Checked<'_, Collect> {
    fn into_operation(self) -> Result<Operation, Invalid> {
        let (identifiers, anonymous_id) = match self.who {
            Who::Person(kind, text) => (Some(kind.identifier(text.into_owned())), None),
            Who::Anonymous(text) => (None, Some(text.into_owned())),
        };
        let mut op = Operation {
            entity: EntityType::Person,
            action: self.action,
            identifiers,
            anonymous_id,
            name: self.name.map(str::to_owned),
            id: None,
            timestamp: self.timestamp,
            attributes: self.attributes.map,
        };
        if op.action == Action::Event {
            finish_event(&mut op, self.event_id)?;
        }
        Ok(op)
    }
}

impl Mapper {
    /// `headers` is the CSV header, or None for NDJSON (whose identifier is then found per row).
    /// Fails when no row of the input could map: no identifier column, an unknown
    /// `--id-column`, no event name at all, a duplicate or over-long column name.
    pub fn new(spec: &MapSpec, headers: Option<&[String]>) -> Result<Mapper, MapError> {
        let mut mapper = Mapper {
            action: spec.action,
            empty: spec.empty,
            event_name: spec
                .event_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            id_column: spec.id_column.clone(),
            id_type: spec.id_type,
            types: spec.types.iter().cloned().collect(),
            csv: None,
        };
        if let Some(name) = &mapper.event_name
            && name.len() > MAX_EVENT_NAME_BYTES
        {
            return Err(MapError(format!(
                "--event-name is {} bytes; Customer.io allows at most {MAX_EVENT_NAME_BYTES}",
                thousands(name.len())
            )));
        }
        // An empty CSV has no header (and no rows): nothing to check, nothing to map.
        if let Some(headers) = headers.filter(|h| !h.is_empty()) {
            mapper.csv = Some(mapper.plan(headers)?);
        }
        Ok(mapper)
    }

    /// Works out every CSV column's role once, and refuses headers no row could get past.
    fn plan(&self, headers: &[String]) -> Result<CsvPlan, MapError> {
        let mut headers = headers.to_vec();
        // A UTF-8 byte order mark would hide an `id` first column.
        if let Some(first) = headers.first_mut()
            && let Some(rest) = first.strip_prefix('\u{feff}')
        {
            *first = rest.to_owned();
        }
        // `id, email, plan` is a common way to write a header; " email" is no attribute name.
        for header in &mut headers {
            if header.trim().len() != header.len() {
                *header = header.trim().to_owned();
            }
        }
        let listed = || headers.join(", ");
        let has = |name: &str| headers.iter().any(|h| h == name);

        let id_key = match &self.id_column {
            Some(col) if has(col) => Some(col.as_str()),
            Some(col) => {
                return Err(MapError(format!(
                    "--id-column {col:?}: no such column; the header has: {}",
                    listed()
                )));
            }
            None => ID_COLUMNS.into_iter().find(|c| has(c)),
        };
        if id_key.is_none() && !(self.action == Action::Event && has(ANONYMOUS_ID)) {
            let expected = if self.action == Action::Event {
                "id, email, cio_id (or --id-column NAME), or anonymous_id for anonymous events"
            } else {
                "id, email, cio_id (or --id-column NAME)"
            };
            // One column whose name holds a separator: the file is separated by something else.
            let hint = match headers.as_slice() {
                [only] => [';', '\t', '|']
                    .into_iter()
                    .find(|c| only.contains(*c))
                    .map(|c| {
                        let flag = if c == '\t' {
                            "tab".to_owned()
                        } else {
                            format!("'{c}'")
                        };
                        format!(" (separated by {c:?}? pass --delimiter {flag})")
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            return Err(MapError(format!(
                "no identifier column: expected one of {expected}; the header has: {}{hint}",
                listed()
            )));
        }
        if self.action == Action::Event && self.event_name.is_none() && !has("name") {
            return Err(MapError(
                "no event name: add a name column or pass --event-name".into(),
            ));
        }

        let roles: Vec<Role> = headers.iter().map(|h| self.role(h, id_key)).collect();
        let mut seen = HashSet::new();
        for (header, role) in headers.iter().zip(&roles) {
            if matches!(role, Role::Ignored | Role::Unnamed) {
                continue;
            }
            if !seen.insert(header.as_str()) {
                return Err(MapError(format!(
                    "column {header:?} appears twice in the header; rename or remove one"
                )));
            }
            if matches!(role, Role::Attribute(_)) && header.len() > MAX_ATTRIBUTE_NAME_BYTES {
                return Err(MapError(name_too_long(header)));
            }
        }
        Ok(CsvPlan { headers, roles })
    }

    /// The role of column `name` when `id_key` is the identifier column.
    fn role(&self, name: &str, id_key: Option<&str>) -> Role {
        if id_key == Some(name) {
            return Role::Identifier(self.id_type.unwrap_or_else(|| IdKind::of_column(name)));
        }
        match (self.action, name) {
            (Action::Identify, _) => {}
            (Action::Event, "anonymous_id") => return Role::AnonymousId,
            (Action::Event, "name") => return Role::EventName,
            (Action::Event, "timestamp") => return Role::EventTimestamp,
            (Action::Event, "event_id") => return Role::EventId,
            (Action::Event, _) => {}
            (Action::Delete | Action::Suppress | Action::Unsuppress, _) => return Role::Ignored,
        }
        if name.is_empty() {
            return Role::Unnamed;
        }
        let typed = match self.types.get(name) {
            Some(&ty) => Some(Typed::new(ty, Origin::Flag)),
            // Customer.io reads created_at as Unix seconds; a date in a file is the usual form.
            None if name == "created_at" => Some(Typed::new(ValueType::Timestamp, Origin::Default)),
            None => None,
        };
        Role::Attribute(typed)
    }

    /// Maps one row. A JSON object with an `_error` key is a failures-file line (see `replay`).
    pub fn map(&mut self, row: &RowData) -> Result<Operation, Invalid> {
        match row {
            RowData::Csv(record) => self.check_csv::<Collect>(record)?.into_operation(),
            RowData::Json(object) if object.contains_key(ERROR_KEY) => self.replay(object),
            RowData::Json(object) => self.check_object::<Collect>(object)?.into_operation(),
            RowData::Broken {
                message, column, ..
            } => Err(Invalid {
                column: column.clone(),
                message: message.clone(),
            }),
        }
    }

    /// A CSV input's column names as mapped (trimmed, without a byte order mark); None for
    /// NDJSON and for an empty CSV.
    pub fn columns(&self) -> Option<&[String]> {
        self.csv.as_ref().map(|plan| &plan.headers[..])
    }

    /// The verdict [`Mapper::map`] reaches, without building the operation (a dry run's
    /// check). `Ok` holds at least the length of the operation's JSON, which a batch limits.
    pub fn validate(&mut self, row: &RowData) -> Result<usize, Invalid> {
        let checked = match row {
            RowData::Csv(record) => self.check_csv::<Tally>(record)?,
            RowData::Json(object) if !object.contains_key(ERROR_KEY) => {
                self.check_object::<Tally>(object)?
            }
            // Failures-file lines and broken rows are few: they are mapped.
            _ => return self.map(row).map(|op| json_size(&op)),
        };
        let bound = checked.json_bound();
        let event_data = checked.attributes.object_bound();
        if checked.action == Action::Event && event_data > MAX_EVENT_DATA_BYTES {
            // Maybe over the limit: the message gives the exact size, which needs the data.
            return self.map(row).map(|op| json_size(&op));
        }
        Ok(bound)
    }

    #[inline(always)]
    fn check_csv<'a, A: Attributes>(
        &'a self,
        record: &'a csv::StringRecord,
    ) -> Result<Checked<'a, A>, Invalid> {
        let Some(plan) = &self.csv else {
            return Err(Invalid::row(
                "a CSV row reached a mapper built without a CSV header".into(),
            ));
        };
        if record.len() != plan.headers.len() {
            return Err(Invalid::row(format!(
                "row has {} fields; the header has {}",
                record.len(),
                plan.headers.len()
            )));
        }
        let mut draft = Draft::default();
        for (i, (role, cell)) in plan.roles.iter().zip(record).enumerate() {
            let column = plan.headers[i].as_str();
            match *role {
                Role::Identifier(kind) => draft.person = Some((column, kind, cell.trim().into())),
                Role::AnonymousId => draft.anonymous = Some(cell.trim().into()),
                Role::EventName => draft.name = Some((column, cell.trim())),
                Role::EventId => draft.event_id = Some((column, cell.trim())),
                Role::EventTimestamp => {
                    draft.timestamp = value::convert_str(EVENT_TIME, column, cell)
                        .map_err(|_| self.csv_cell_errors(plan, record))?
                        .and_then(|v| v.as_i64());
                }
                // Apart from the typed cells, so a text cell goes straight to the tally (see
                // `Cell`).
                Role::Attribute(None) => self.put(&mut draft.attributes, column, value::text(cell)),
                Role::Attribute(Some(typed)) => {
                    let v = value::convert_str(typed, column, cell)
                        .map_err(|_| self.csv_cell_errors(plan, record))?;
                    self.put(&mut draft.attributes, column, v);
                }
                Role::Unnamed if !cell.is_empty() => {
                    return Err(Invalid::row(format!(
                        "column {} has no name in the header but this row has a value in it; \
                         name the column or remove it",
                        i + 1
                    )));
                }
                Role::Unnamed | Role::Ignored => {}
            }
        }
        self.finish(draft)
    }

    fn check_object<'a, A: Attributes>(
        &'a self,
        object: &'a Map<String, Value>,
    ) -> Result<Checked<'a, A>, Invalid> {
        // NDJSON has no header: the identifier is chosen per row, by the keys it has.
        let id_key = match &self.id_column {
            Some(col) => Some(col.as_str()),
            None => ID_COLUMNS
                .into_iter()
                .find(|k| object.get(*k).is_some_and(|v| !v.is_null())),
        };
        let mut draft = Draft::default();
        for (key, v) in object {
            let column = key.as_str();
            if column == ERROR_KEY {
                continue;
            }
            match self.role(column, id_key) {
                Role::Identifier(kind) => {
                    draft.person = Some((column, kind, identifier_text(column, v)?));
                }
                Role::AnonymousId => draft.anonymous = Some(identifier_text(column, v)?),
                Role::EventName => draft.name = json_text(column, v)?.map(|t| (column, t)),
                Role::EventId => draft.event_id = json_text(column, v)?.map(|t| (column, t)),
                Role::EventTimestamp => {
                    draft.timestamp = value::convert_json(Some(EVENT_TIME), column, v)
                        .map_err(|_| self.json_value_errors(object, id_key))?
                        .and_then(|v| v.as_i64());
                }
                Role::Attribute(typed) => {
                    let v = value::convert_json(typed, column, v)
                        .map_err(|_| self.json_value_errors(object, id_key))?;
                    self.put(&mut draft.attributes, column, v);
                }
                Role::Unnamed => {
                    if !v.is_null() {
                        return Err(Invalid::at(
                            column,
                            "an attribute name is empty; Customer.io needs a name for every \
                             attribute"
                                .into(),
                        ));
                    }
                }
                Role::Ignored => {}
            }
        }
        if draft.person.is_none()
            && let Some(col) = &self.id_column
            && !(self.action == Action::Event
                && draft.anonymous.as_deref().is_some_and(|a| !a.is_empty()))
        {
            return Err(Invalid::at(
                col,
                format!("no identifier: the row has no {col:?} key (--id-column {col})"),
            ));
        }
        self.finish(draft)
    }

    /// Every typed cell of a row that does not convert, told at once so the row is fixed in
    /// one pass: the first names the column. Off the hot path: a row comes here only once a
    /// cell has failed.
    #[cold]
    #[inline(never)]
    fn csv_cell_errors(&self, plan: &CsvPlan, record: &csv::StringRecord) -> Invalid {
        let typed = plan.roles.iter().zip(&plan.headers).zip(record);
        all_of(typed.filter_map(|((role, column), cell)| {
            let ty = match *role {
                Role::EventTimestamp => EVENT_TIME,
                Role::Attribute(Some(ty)) => ty,
                _ => return None,
            };
            value::convert_str(ty, column, cell)
                .err()
                .map(|m| (column.as_str(), m))
        }))
    }

    /// The NDJSON counterpart of [`Mapper::csv_cell_errors`].
    #[cold]
    #[inline(never)]
    fn json_value_errors(&self, object: &Map<String, Value>, id_key: Option<&str>) -> Invalid {
        all_of(object.iter().filter_map(|(key, v)| {
            let ty = match self.role(key, id_key) {
                Role::EventTimestamp => Some(EVENT_TIME),
                Role::Attribute(ty) => ty,
                _ => return None,
            };
            value::convert_json(ty, key, v)
                .err()
                .map(|m| (key.as_str(), m))
        }))
    }

    /// Adds an attribute, or applies the empty-cell policy to an empty one.
    #[inline(always)]
    fn put<A: Attributes>(&self, attributes: &mut A, column: &str, v: Option<Cell<'_>>) {
        let v = match (v, self.empty) {
            (Some(v), _) => v,
            (None, EmptyPolicy::Skip) => return,
            // "" is how Customer.io clears an attribute, whatever its type.
            (None, EmptyPolicy::Clear) => Cell::Text(""),
        };
        attributes.put(column, v);
    }

    /// The row-level part: who, which event, and the limits that span columns (all but the
    /// event data's size).
    #[inline(always)]
    fn finish<'a, A: Attributes>(&'a self, draft: Draft<'a, A>) -> Result<Checked<'a, A>, Invalid> {
        let anonymous = draft.anonymous.filter(|a| !a.is_empty());
        let event = self.action == Action::Event;
        // An event is anonymous when the row has an anonymous_id and no person identifier.
        let person_missing = draft.person.as_ref().is_none_or(|(_, _, t)| t.is_empty());
        let who = match (draft.person, anonymous) {
            (_, Some(a)) if event && person_missing => Who::Anonymous(a),
            (Some((column, kind, text)), _) => {
                Who::Person(kind, checked_identifier(column, kind, text)?)
            }
            (None, _) => return Err(self.no_identifier()),
        };
        let mut checked = Checked {
            action: self.action,
            who,
            name: None,
            event_id: None,
            timestamp: None,
            attributes: draft.attributes,
        };
        match self.action {
            Action::Identify => checked.attributes.tally().check_person()?,
            Action::Event => {
                checked.name = Some(match draft.name.filter(|(_, n)| !n.is_empty()) {
                    Some((column, name)) => {
                        check_event_name(Some(column), name)?;
                        name
                    }
                    None => self.event_name.as_deref().ok_or_else(|| {
                        Invalid::row("no event name: add a name column or pass --event-name".into())
                    })?,
                });
                checked.timestamp = draft.timestamp;
                // Event data is held to its documented total only: the per-attribute limits
                // (name, value size, count) are documented for people, not for event data.
                checked.event_id = match draft.event_id.filter(|(_, id)| !id.is_empty()) {
                    Some((column, id)) => Some(parse_ulid(column, id)?),
                    None => None,
                };
            }
            Action::Delete | Action::Suppress | Action::Unsuppress => {}
        }
        Ok(checked)
    }

    fn no_identifier(&self) -> Invalid {
        match (&self.id_column, self.action) {
            (Some(col), _) => Invalid::at(
                col,
                format!("column {col:?} is empty; every row needs an identifier"),
            ),
            (None, Action::Event) => Invalid::row(
                "no identifier: the row needs a non-empty id, email, cio_id or anonymous_id \
                 (or --id-column NAME)"
                    .into(),
            ),
            (None, _) => Invalid::row(
                "no identifier: the row needs a non-empty id, email or cio_id \
                 (or --id-column NAME)"
                    .into(),
            ),
        }
    }

    /// A line from our own failures file. A line holding an operation is sent as it is (after
    /// the same checks, and keeping its event id so Customer.io dedups a resend); a line holding
    /// a row's raw columns is mapped like any row.
    fn replay(&self, object: &Map<String, Value>) -> Result<Operation, Invalid> {
        let is_operation = object.get("type").and_then(Value::as_str) == Some("person")
            && object.contains_key("action");
        if is_operation {
            let mut rest = object.clone();
            rest.remove(ERROR_KEY);
            let op: Operation = serde_json::from_value(Value::Object(rest)).map_err(|e| {
                Invalid::row(format!("failures-file line is not a valid operation: {e}"))
            })?;
            return check_operation(op);
        }
        if object.contains_key(RAW_KEY) {
            return Err(Invalid::row(
                "this failures-file line holds a row that could not be read (_raw); fix it in \
                 the original input and import that row again"
                    .into(),
            ));
        }
        self.check_object::<Collect>(object)?.into_operation()
    }

    /// The row as a JSON object, for the failures file.
    pub fn raw(&self, row: &RowData) -> Map<String, Value> {
        match row {
            RowData::Csv(record) => {
                let headers = self.csv.as_ref().map_or(&[][..], |p| &p.headers[..]);
                record
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| {
                        let name = headers
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("column_{}", i + 1));
                        (name, Value::String(cell.to_owned()))
                    })
                    .collect()
            }
            RowData::Json(object) => object.clone(),
            RowData::Broken { raw, .. } => {
                Map::from_iter([(RAW_KEY.to_owned(), Value::String(raw.clone()))])
            }
        }
    }
}

/// One error for a row's failed cells: the first names the column, the messages are joined.
fn all_of<'a>(mut errors: impl Iterator<Item = (&'a str, String)>) -> Invalid {
    let Some((column, first)) = errors.next() else {
        return Invalid::row("a value does not convert".into());
    };
    let message = std::iter::once(first)
        .chain(errors.map(|(_, m)| m))
        .collect::<Vec<_>>()
        .join("; ");
    Invalid::at(column, message)
}

/// An identifier (or anonymous id) from JSON, as trimmed text: numbers become their string form.
fn identifier_text<'a>(column: &str, v: &'a Value) -> Result<Cow<'a, str>, Invalid> {
    match v {
        Value::String(s) => Ok(Cow::Borrowed(s.trim())),
        // Only an integer keeps its digits: a float (which any integer past u64 becomes in
        // JSON parsing) would be sent as something like 1.2345678901234569e+23.
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Cow::Owned(n.to_string())),
        Value::Number(n) => Err(Invalid::at(
            column,
            format!(
                "column {column:?} is the number {n}, which does not keep its digits as an \
                 identifier; write it as a string (\"...\") in the file"
            ),
        )),
        Value::Null => Ok(Cow::Borrowed("")),
        v => Err(Invalid::at(
            column,
            format!(
                "column {column:?} is {}; an identifier must be a string or a number",
                json_kind(v)
            ),
        )),
    }
}

/// A string-only field (event name, event id) from JSON, trimmed; null is absent.
fn json_text<'a>(column: &str, v: &'a Value) -> Result<Option<&'a str>, Invalid> {
    match v {
        Value::String(s) => Ok(Some(s.trim())),
        Value::Null => Ok(None),
        v => Err(Invalid::at(
            column,
            format!("column {column:?} is {}; it must be a string", json_kind(v)),
        )),
    }
}

/// Checks an identifier's text and cuts it to the id sent.
fn checked_identifier<'a>(
    column: &str,
    kind: IdKind,
    text: Cow<'a, str>,
) -> Result<Cow<'a, str>, Invalid> {
    Ok(match text {
        Cow::Borrowed(text) => Cow::Borrowed(identifier_cut(column, kind, text)?),
        Cow::Owned(text) => Cow::Owned(identifier_cut(column, kind, &text)?.to_owned()),
    })
}

/// Builds the identifier (for a replayed operation).
fn identifier(column: &str, kind: IdKind, text: &str) -> Result<Identifier, Invalid> {
    Ok(kind.identifier(identifier_cut(column, kind, text)?.to_owned()))
}

/// The identifier as sent: trimmed, and a `cio_id` without its `cio_` prefix (v2 wants the
/// bare id); refused when empty or too long.
fn identifier_cut<'a>(column: &str, kind: IdKind, text: &'a str) -> Result<&'a str, Invalid> {
    let mut text = text.trim();
    if kind == IdKind::CioId {
        // Every prefix, so the bare id never starts with one: a replayed operation comes
        // through here again and must keep the same id.
        while let Some(rest) = text.strip_prefix("cio_") {
            text = rest.trim_start();
        }
    }
    if text.is_empty() {
        return Err(Invalid::at(
            column,
            format!("column {column:?} is empty; every row needs an identifier"),
        ));
    }
    // Customer.io's API names a person by identifier in URL paths (a cio_id after `cio_`),
    // where these are steps ("here", "up"): no request could name this person.
    if kind != IdKind::CioId && (text == "." || text == "..") {
        return Err(Invalid::at(
            column,
            format!(
                "column {column:?} is {text:?}, which cannot identify a person: Customer.io's API \
                 names people by identifier in URL paths, where . and .. are path steps"
            ),
        ));
    }
    if text.len() > MAX_IDENTIFIER_BYTES {
        return Err(Invalid::at(
            column,
            format!(
                "column {column:?} is {} bytes; Customer.io allows at most {MAX_IDENTIFIER_BYTES} \
                 for an identifier",
                thousands(text.len())
            ),
        ));
    }
    Ok(text)
}

fn name_too_long(name: &str) -> String {
    format!(
        "column {} has a {}-byte name; Customer.io allows at most {MAX_ATTRIBUTE_NAME_BYTES} \
         bytes for an attribute name",
        quote(name),
        thousands(name.len())
    )
}

/// One person attribute's name and value size; `bound` is [`Cell::json_bound`], which a value
/// under the limit by it is not measured past.
fn check_attribute(name: &str, v: &Cell<'_>, bound: usize) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::at(
            name,
            "an attribute name is empty; Customer.io needs a name for every attribute".into(),
        ));
    }
    if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
        return Err(Invalid::at(name, name_too_long(name)));
    }
    if bound > MAX_ATTRIBUTE_VALUE_BYTES && v.size() > MAX_ATTRIBUTE_VALUE_BYTES {
        return Err(Invalid::at(
            name,
            format!(
                "column {name:?} is {} bytes; Customer.io allows at most {}",
                thousands(v.size()),
                thousands(MAX_ATTRIBUTE_VALUE_BYTES)
            ),
        ));
    }
    Ok(())
}

fn check_event_name(column: Option<&str>, name: &str) -> Result<(), Invalid> {
    if name.len() <= MAX_EVENT_NAME_BYTES {
        return Ok(());
    }
    let message = format!(
        "event name is {} bytes; Customer.io allows at most {MAX_EVENT_NAME_BYTES}",
        thousands(name.len())
    );
    Err(match column {
        Some(column) => Invalid::at(column, format!("column {column:?}: {message}")),
        None => Invalid::row(message),
    })
}

/// A failures-file operation, held to the same limits as a mapped row.
fn check_operation(mut op: Operation) -> Result<Operation, Invalid> {
    let event = op.action == Action::Event;
    op.identifiers = match op.identifiers.take() {
        Some(id) => {
            let (column, kind) = match &id {
                Identifier::Id(_) => ("id", IdKind::Id),
                Identifier::Email(_) => ("email", IdKind::Email),
                Identifier::CioId(_) => ("cio_id", IdKind::CioId),
            };
            Some(identifier(column, kind, id.value())?)
        }
        None if event
            && op
                .anonymous_id
                .as_deref()
                .is_some_and(|a| !a.trim().is_empty()) =>
        {
            None
        }
        None => {
            return Err(Invalid::row(
                "no identifier: the operation has no identifiers (or anonymous_id for an event)"
                    .into(),
            ));
        }
    };
    match op.action {
        Action::Identify => Tally::of(&op.attributes).check_person()?,
        Action::Event => {
            match op.name.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() => check_event_name(Some("name"), name)?,
                _ => {
                    return Err(Invalid::at(
                        "name",
                        "no event name: the operation has no name".into(),
                    ));
                }
            }
            if let Some(ts) = op.timestamp {
                value::json_seconds("timestamp", &ts.into())
                    .map_err(|m| Invalid::at("timestamp", m))?;
            }
            let given = match op.id.as_deref() {
                Some(id) => Some(parse_ulid("id", id)?),
                None => None,
            };
            finish_event(&mut op, given)?;
        }
        Action::Delete | Action::Suppress | Action::Unsuppress => {}
    }
    Ok(op)
}

/// A given event id, as the canonical ULID string.
fn parse_ulid(column: &str, id: &str) -> Result<String, Invalid> {
    let id = id.trim();
    // 26 base32 digits hold 130 bits; a first digit above 7 would overflow 128, and the decoder
    // would silently drop those bits.
    let fits = id
        .as_bytes()
        .first()
        .is_some_and(|b| (b'0'..=b'7').contains(b));
    match Ulid::from_string(id) {
        Ok(ulid) if fits => Ok(ulid.to_string()),
        _ => Err(Invalid::at(
            column,
            format!(
                "column {column:?}: {} is not a ULID (26 characters of Crockford base32, \
                 e.g. 01HR6Z8Q9T3V5X7Z9B1D3F5H7K); leave it empty to derive one from the row",
                quote(id)
            ),
        )),
    }
}

/// Checks the event data's size and sets the event id: `given`, else one derived from the event.
///
/// A derived id is a ULID whose time part is the event time and whose random part is a hash of
/// who, what, when and the data. The same row gives the same id on every run, so Customer.io
/// drops the copy when a batch is retried, a failures file is replayed, or the whole import is
/// run again. (Two identical rows are one event by this rule.)
///
/// The hash is FNV-1a 128, written out here rather than std's `DefaultHasher`, whose output may
/// change between Rust releases; the id has to stay the same across builds. The data is hashed
/// as serialised JSON, whose key order is fixed (serde_json's map is sorted).
fn finish_event(op: &mut Operation, given: Option<String>) -> Result<(), Invalid> {
    let mut h = Fnv128::default();
    match (&op.identifiers, &op.anonymous_id) {
        (Some(id), _) => {
            let kind = match id {
                Identifier::Id(_) => "id",
                Identifier::Email(_) => "email",
                Identifier::CioId(_) => "cio_id",
            };
            h.field(kind.as_bytes());
            h.field(id.value().as_bytes());
        }
        (None, anonymous) => {
            h.field(ANONYMOUS_ID.as_bytes());
            h.field(anonymous.as_deref().unwrap_or_default().as_bytes());
        }
    }
    h.field(op.name.as_deref().unwrap_or_default().as_bytes());
    match op.timestamp {
        Some(ts) => h.field(&ts.to_le_bytes()),
        None => h.field(&[]),
    }
    // One serialisation both measures the data and hashes it. Writing into a hasher cannot
    // fail, and a Map always serialises.
    let _ = serde_json::to_writer(&mut h, &op.attributes);
    if h.written > MAX_EVENT_DATA_BYTES {
        return Err(Invalid::row(format!(
            "event data is {} bytes; Customer.io allows at most {} (drop or shorten columns)",
            thousands(h.written),
            thousands(MAX_EVENT_DATA_BYTES)
        )));
    }
    op.id = Some(given.unwrap_or_else(|| {
        // Missing or pre-1970 times use 0, which keeps the id deterministic (ULID time is
        // unsigned).
        let ms = op
            .timestamp
            .and_then(|ts| u64::try_from(ts).ok())
            .map_or(0, |s| s.saturating_mul(1000));
        // FNV's high bits are its best mixed: keep the top 80.
        Ulid::from_parts(ms, h.hash >> 48).to_string()
    }));
    Ok(())
}

/// FNV-1a, 128-bit; also counts the bytes written through `io::Write` (the serialised data).
struct Fnv128 {
    hash: u128,
    written: usize,
}

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128 {
            hash: 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d,
            written: 0,
        }
    }
}

impl Fnv128 {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let x = self.hash ^ u128::from(b);
            // x * (2^88 + 0x13b), the FNV prime, spelt out: a shift and a small multiply are
            // cheaper than a full 128-bit multiply.
            self.hash = (x << 88).wrapping_add(x.wrapping_mul(0x13b));
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}

impl io::Write for Fnv128 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes(buf);
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(action: Action) -> MapSpec {
        MapSpec {
            action,
            id_column: None,
            id_type: None,
            types: Vec::new(),
            empty: EmptyPolicy::Skip,
            event_name: None,
        }
    }

    fn typed(action: Action, types: &[(&str, ValueType)]) -> MapSpec {
        MapSpec {
            types: types.iter().map(|(c, t)| (c.to_string(), *t)).collect(),
            ..spec(action)
        }
    }

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn csv_mapper(spec: &MapSpec, names: &[&str]) -> Mapper {
        Mapper::new(spec, Some(&headers(names))).unwrap()
    }

    fn csv_error(spec: &MapSpec, names: &[&str]) -> String {
        match Mapper::new(spec, Some(&headers(names))) {
            Ok(_) => panic!("expected a MapError for {names:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn json_mapper(spec: &MapSpec) -> Mapper {
        Mapper::new(spec, None).unwrap()
    }

    fn row(cells: &[&str]) -> RowData {
        RowData::Csv(csv::StringRecord::from(cells.to_vec()))
    }

    fn obj(v: Value) -> RowData {
        match v {
            Value::Object(m) => RowData::Json(m),
            v => panic!("not an object: {v}"),
        }
    }

    fn attrs(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            v => panic!("not an object: {v}"),
        }
    }

    fn ok(m: &mut Mapper, r: &RowData) -> Operation {
        m.map(r).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn err(m: &mut Mapper, r: &RowData) -> Invalid {
        match m.map(r) {
            Ok(op) => panic!("expected Invalid, got {op:?}"),
            Err(e) => e,
        }
    }

    // ---- identifiers ----

    #[test]
    fn identify_maps_every_other_column_to_an_attribute() {
        let mut m = csv_mapper(
            &spec(Action::Identify),
            &["id", "email", "plan", "created_at"],
        );
        let op = ok(&mut m, &row(&[" 42 ", "a@x.io", " pro ", "2024-03-05"]));
        assert_eq!(op.action, Action::Identify);
        assert_eq!(op.identifiers, Some(Identifier::Id("42".into())));
        assert_eq!(
            op.attributes,
            attrs(json!({"email": "a@x.io", "plan": " pro ", "created_at": 1709596800}))
        );
        assert_eq!((op.name, op.id, op.timestamp), (None, None, None));
    }

    #[test]
    fn identifier_column_is_id_then_email_then_cio_id_whatever_the_order() {
        let s = spec(Action::Identify);
        let mut m = csv_mapper(&s, &["cio_id", "email", "id"]);
        let op = ok(&mut m, &row(&["abc", "a@x.io", "7"]));
        assert_eq!(op.identifiers, Some(Identifier::Id("7".into())));
        assert_eq!(
            op.attributes,
            attrs(json!({"cio_id": "abc", "email": "a@x.io"}))
        );

        let mut m = csv_mapper(&s, &["cio_id", "email"]);
        let op = ok(&mut m, &row(&["abc", "a@x.io"]));
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));

        let mut m = csv_mapper(&s, &["name", "cio_id"]);
        let op = ok(&mut m, &row(&["Ann", "cio_03000001"]));
        assert_eq!(op.identifiers, Some(Identifier::CioId("03000001".into())));
        let op = ok(&mut m, &row(&["Ann", "03000001"]));
        assert_eq!(op.identifiers, Some(Identifier::CioId("03000001".into())));

        // Names are exact and case-sensitive.
        let e = csv_error(&s, &["ID", "Email", "plan"]);
        assert_eq!(
            e,
            "no identifier column: expected one of id, email, cio_id (or --id-column NAME); \
             the header has: ID, Email, plan"
        );
    }

    #[test]
    fn an_empty_csv_has_no_header_to_check() {
        for action in [Action::Identify, Action::Event] {
            assert!(Mapper::new(&spec(action), Some(&[])).is_ok());
        }
    }

    #[test]
    fn id_column_flag_picks_the_column_and_its_kind() {
        let s = MapSpec {
            id_column: Some("user_id".into()),
            ..spec(Action::Identify)
        };
        let mut m = csv_mapper(&s, &["id", "user_id"]);
        let op = ok(&mut m, &row(&["1", "u-9"]));
        assert_eq!(op.identifiers, Some(Identifier::Id("u-9".into())));
        assert_eq!(op.attributes, attrs(json!({"id": "1"})));

        let s = MapSpec {
            id_column: Some("email".into()),
            ..spec(Action::Identify)
        };
        let mut m = csv_mapper(&s, &["id", "email"]);
        let op = ok(&mut m, &row(&["1", "a@x.io"]));
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));

        // An export's `Email` is an email too, and --id-type says what any other name holds.
        let s = MapSpec {
            id_column: Some("Email".into()),
            ..spec(Action::Identify)
        };
        let op = ok(&mut csv_mapper(&s, &["Email"]), &row(&["a@x.io"]));
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));
        let s = MapSpec {
            id_column: Some("user_email".into()),
            id_type: Some(IdKind::Email),
            ..spec(Action::Identify)
        };
        let op = ok(&mut csv_mapper(&s, &["user_email"]), &row(&["a@x.io"]));
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));

        let s = MapSpec {
            id_column: Some("uid".into()),
            ..spec(Action::Identify)
        };
        let e = csv_error(&s, &["id", "plan"]);
        assert_eq!(
            e,
            r#"--id-column "uid": no such column; the header has: id, plan"#
        );
    }

    #[test]
    fn identifier_is_trimmed_and_must_be_non_empty_and_at_most_150_bytes() {
        let mut m = csv_mapper(&spec(Action::Identify), &["id"]);
        let e = err(&mut m, &row(&["   "]));
        assert_eq!(e.column.as_deref(), Some("id"));
        assert_eq!(
            e.message,
            r#"column "id" is empty; every row needs an identifier"#
        );

        let at = "x".repeat(150);
        let op = ok(&mut m, &row(&[&format!(" {at} ")]));
        assert_eq!(op.identifiers, Some(Identifier::Id(at)));

        let e = err(&mut m, &row(&[&"x".repeat(151)]));
        assert_eq!(e.column.as_deref(), Some("id"));
        assert_eq!(
            e.message,
            r#"column "id" is 151 bytes; Customer.io allows at most 150 for an identifier"#
        );
        // Bytes, not characters.
        let e = err(&mut m, &row(&[&"é".repeat(76)]));
        assert!(e.message.contains("is 152 bytes"), "{}", e.message);

        let mut m = csv_mapper(&spec(Action::Identify), &["cio_id"]);
        for cell in ["cio_", "cio_cio_ "] {
            let e = err(&mut m, &row(&[cell]));
            assert!(
                e.message
                    .ends_with("is empty; every row needs an identifier")
            );
        }
        // The bare id never keeps a prefix, so replaying the operation gives the same id.
        let op = ok(&mut m, &row(&["cio_cio_ 7"]));
        assert_eq!(op.identifiers, Some(Identifier::CioId("7".into())));
    }

    #[test]
    fn ndjson_chooses_the_identifier_per_row() {
        let mut m = json_mapper(&spec(Action::Identify));
        let op = ok(&mut m, &obj(json!({"email": "a@x.io", "plan": "pro"})));
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));
        let op = ok(&mut m, &obj(json!({"id": 42, "email": "a@x.io"})));
        assert_eq!(op.identifiers, Some(Identifier::Id("42".into())));
        assert_eq!(op.attributes, attrs(json!({"email": "a@x.io"})));
        // A null id does not count as present.
        let op = ok(&mut m, &obj(json!({"id": null, "cio_id": "cio_7"})));
        assert_eq!(op.identifiers, Some(Identifier::CioId("7".into())));

        let e = err(&mut m, &obj(json!({"id": true})));
        assert_eq!(e.column.as_deref(), Some("id"));
        assert_eq!(
            e.message,
            r#"column "id" is a bool; an identifier must be a string or a number"#
        );
        let e = err(&mut m, &obj(json!({"plan": "pro"})));
        assert_eq!(e.column, None);
        assert!(e.message.starts_with("no identifier"), "{}", e.message);

        let s = MapSpec {
            id_column: Some("uid".into()),
            ..spec(Action::Identify)
        };
        let mut m = json_mapper(&s);
        let op = ok(&mut m, &obj(json!({"uid": " u1 ", "id": "x"})));
        assert_eq!(op.identifiers, Some(Identifier::Id("u1".into())));
        let e = err(&mut m, &obj(json!({"id": "x"})));
        assert_eq!(e.column.as_deref(), Some("uid"));
        assert_eq!(
            e.message,
            r#"no identifier: the row has no "uid" key (--id-column uid)"#
        );
    }

    // ---- attribute values ----

    #[test]
    fn types_from_the_flag_apply_to_csv_cells() {
        let s = typed(
            Action::Identify,
            &[
                ("age", ValueType::Number),
                ("vip", ValueType::Bool),
                ("prefs", ValueType::Json),
                ("seen", ValueType::Timestamp),
                ("created_at", ValueType::String),
            ],
        );
        let mut m = csv_mapper(&s, &["id", "age", "vip", "prefs", "seen", "created_at"]);
        let op = ok(
            &mut m,
            &row(&[
                "1",
                " 41 ",
                "Yes",
                r#"{"a":[1]}"#,
                "2024-03-05T12:00:00+02:00",
                "2024",
            ]),
        );
        assert_eq!(
            op.attributes,
            attrs(json!({"age": 41, "vip": true, "prefs": {"a": [1]},
                         "seen": 1709632800, "created_at": "2024"}))
        );
        let e = err(&mut m, &row(&["1", "abc", "", "", "", ""]));
        assert_eq!(e.column.as_deref(), Some("age"));
        assert_eq!(
            e.message,
            r#"column "age": "abc" is not a number (--type age=number)"#
        );
        let e = err(&mut m, &row(&["1", "", "", "", "1709632800000", ""]));
        assert_eq!(e.column.as_deref(), Some("seen"));
        assert!(
            e.message.contains("looks like milliseconds"),
            "{}",
            e.message
        );
    }

    #[test]
    fn created_at_is_a_timestamp_by_default() {
        let mut m = csv_mapper(&spec(Action::Identify), &["id", "created_at"]);
        let op = ok(&mut m, &row(&["1", "1709632800"]));
        assert_eq!(op.attributes, attrs(json!({"created_at": 1709632800})));
        let e = err(&mut m, &row(&["1", "last tuesday"]));
        assert_eq!(e.column.as_deref(), Some("created_at"));
        assert!(
            e.message.contains("--type created_at=string"),
            "{}",
            e.message
        );
    }

    #[test]
    fn empty_cells_are_skipped_or_cleared() {
        let types = [("age", ValueType::Number)];
        let mut m = csv_mapper(
            &typed(Action::Identify, &types),
            &["id", "plan", "age", "note"],
        );
        let op = ok(&mut m, &row(&["1", "", " ", "  "]));
        // Whitespace is kept in string values; a typed column trims it to empty.
        assert_eq!(op.attributes, attrs(json!({"note": "  "})));

        let s = MapSpec {
            empty: EmptyPolicy::Clear,
            ..typed(Action::Identify, &types)
        };
        let mut m = csv_mapper(&s, &["id", "plan", "age", "created_at"]);
        let op = ok(&mut m, &row(&["1", "", "", ""]));
        assert_eq!(
            op.attributes,
            attrs(json!({"plan": "", "age": "", "created_at": ""}))
        );
        let mut m = json_mapper(&s);
        let op = ok(&mut m, &obj(json!({"id": "1", "plan": null, "age": ""})));
        assert_eq!(op.attributes, attrs(json!({"plan": "", "age": ""})));
    }

    #[test]
    fn ndjson_values_nest_and_type() {
        let s = typed(Action::Identify, &[("n", ValueType::Number)]);
        let mut m = json_mapper(&s);
        let op = ok(
            &mut m,
            &obj(
                json!({"id": "1", "n": "42", "prefs": {"a": [1, {"b": null}]},
                        "tags": ["x", "y"], "score": 2.5, "ok": false, "gone": null,
                        "created_at": "2024-03-05"}),
            ),
        );
        assert_eq!(
            op.attributes,
            attrs(
                json!({"n": 42, "prefs": {"a": [1, {"b": null}]}, "tags": ["x", "y"],
                         "score": 2.5, "ok": false, "created_at": 1709596800})
            )
        );
        let e = err(&mut m, &obj(json!({"id": "1", "n": {"a": 1}})));
        assert_eq!(e.column.as_deref(), Some("n"));
        assert_eq!(
            e.message,
            r#"column "n": an object is not a number (--type n=number)"#
        );
    }

    // ---- limits ----

    #[test]
    fn attribute_value_at_most_1000_bytes() {
        let mut m = csv_mapper(&spec(Action::Identify), &["id", "bio"]);
        ok(&mut m, &row(&["1", &"x".repeat(1000)]));
        let e = err(&mut m, &row(&["1", &"x".repeat(1001)]));
        assert_eq!(e.column.as_deref(), Some("bio"));
        assert_eq!(
            e.message,
            r#"column "bio" is 1,001 bytes; Customer.io allows at most 1,000"#
        );
        // Non-strings are measured as serialised JSON: ["…"] is the string plus 4 bytes.
        let mut m = json_mapper(&spec(Action::Identify));
        ok(&mut m, &obj(json!({"id": "1", "l": ["x".repeat(996)]})));
        let e = err(&mut m, &obj(json!({"id": "1", "l": ["x".repeat(997)]})));
        assert_eq!(e.column.as_deref(), Some("l"));
        // Of two too long, the first by name is named, whatever the column order.
        let mut m = csv_mapper(&spec(Action::Identify), &["id", "zed", "bio", "note"]);
        let long = "x".repeat(1001);
        let e = err(&mut m, &row(&["1", &long, "", &long]));
        assert_eq!(e.column.as_deref(), Some("note"));
        let e = err(&mut m, &row(&["1", &long, &long, &long]));
        assert_eq!(e.column.as_deref(), Some("bio"));
    }

    #[test]
    fn at_most_300_attributes() {
        let names: Vec<String> = (0..301).map(|i| format!("a{i}")).collect();
        let mut cols = vec!["id"];
        cols.extend(names.iter().map(String::as_str));
        let mut m = csv_mapper(&spec(Action::Identify), &cols);
        let mut cells = vec!["1"; 302];
        cells[301] = "";
        ok(&mut m, &row(&cells));
        let e = err(&mut m, &row(&["1"; 302]));
        assert_eq!(e.column, None);
        assert!(
            e.message
                .starts_with("row has 301 attributes; Customer.io allows at most 300"),
            "{}",
            e.message
        );
    }

    #[test]
    fn attribute_name_at_most_150_bytes() {
        let at = "n".repeat(150);
        let over = "n".repeat(151);
        let mut m = csv_mapper(&spec(Action::Identify), &["id", &at]);
        ok(&mut m, &row(&["1", "v"]));
        let e = csv_error(&spec(Action::Identify), &["id", &over]);
        assert!(
            e.contains("has a 151-byte name; Customer.io allows at most 150"),
            "{e}"
        );
        // Delete ignores the column, so its name does not matter.
        csv_mapper(&spec(Action::Delete), &["id", &over]);

        let mut m = json_mapper(&spec(Action::Identify));
        let mut row = Map::new();
        row.insert("id".into(), json!("1"));
        row.insert(at, json!("v"));
        ok(&mut m, &RowData::Json(row.clone()));
        row.insert(over.clone(), json!("v"));
        let e = err(&mut m, &RowData::Json(row));
        assert_eq!(e.column, Some(over));
    }

    // ---- events ----

    fn event_spec(name: Option<&str>) -> MapSpec {
        MapSpec {
            event_name: name.map(str::to_owned),
            ..spec(Action::Event)
        }
    }

    #[test]
    fn event_takes_name_timestamp_and_data() {
        let mut m = csv_mapper(
            &event_spec(Some("flag")),
            &["email", "name", "timestamp", "plan", "created_at"],
        );
        let op = ok(
            &mut m,
            &row(&[
                "a@x.io",
                " bought ",
                "2024-03-05T10:00:00Z",
                "pro",
                "2024-03-05",
            ]),
        );
        assert_eq!(op.action, Action::Event);
        assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));
        assert_eq!(op.name.as_deref(), Some("bought"));
        assert_eq!(op.timestamp, Some(1709632800));
        assert_eq!(
            op.attributes,
            attrs(json!({"plan": "pro", "created_at": 1709596800}))
        );
        // An empty name cell falls back to the flag; no timestamp is no timestamp.
        let op = ok(&mut m, &row(&["a@x.io", "", "", "", ""]));
        assert_eq!(op.name.as_deref(), Some("flag"));
        assert_eq!(op.timestamp, None);
        assert!(op.attributes.is_empty());

        let e = err(&mut m, &row(&["a@x.io", "", "1709632800000", "", ""]));
        assert_eq!(e.column.as_deref(), Some("timestamp"));
    }

    #[test]
    fn event_name_is_required_and_at_most_100_bytes() {
        let e = csv_error(&event_spec(None), &["id", "plan"]);
        assert_eq!(e, "no event name: add a name column or pass --event-name");
        let e = csv_error(&event_spec(Some(&"e".repeat(101))), &["id"]);
        assert_eq!(
            e,
            "--event-name is 101 bytes; Customer.io allows at most 100"
        );
        csv_mapper(&event_spec(Some(&"e".repeat(100))), &["id"]);

        let mut m = csv_mapper(&event_spec(None), &["id", "name"]);
        let e = err(&mut m, &row(&["1", " "]));
        assert_eq!(e.column, None);
        assert_eq!(
            e.message,
            "no event name: add a name column or pass --event-name"
        );
        ok(&mut m, &row(&["1", &"e".repeat(100)]));
        let e = err(&mut m, &row(&["1", &"e".repeat(101)]));
        assert_eq!(e.column.as_deref(), Some("name"));
        assert_eq!(
            e.message,
            r#"column "name": event name is 101 bytes; Customer.io allows at most 100"#
        );

        let mut m = json_mapper(&event_spec(None));
        let e = err(&mut m, &obj(json!({"id": "1"})));
        assert!(e.message.starts_with("no event name"));
        let op = ok(&mut m, &obj(json!({"id": "1", "name": "n"})));
        assert_eq!(op.name.as_deref(), Some("n"));
        let e = err(&mut m, &obj(json!({"id": "1", "name": 5})));
        assert_eq!(e.column.as_deref(), Some("name"));
    }

    #[test]
    fn anonymous_events() {
        let mut m = csv_mapper(&event_spec(Some("viewed")), &["id", "anonymous_id", "page"]);
        let op = ok(&mut m, &row(&["", " anon-1 ", "/"]));
        assert_eq!(op.identifiers, None);
        assert_eq!(op.anonymous_id.as_deref(), Some("anon-1"));
        assert_eq!(op.attributes, attrs(json!({"page": "/"})));
        // A person identifier wins, and anonymous_id is not event data.
        let op = ok(&mut m, &row(&["7", "anon-1", "/"]));
        assert_eq!(op.identifiers, Some(Identifier::Id("7".into())));
        assert_eq!(op.anonymous_id, None);
        assert_eq!(op.attributes, attrs(json!({"page": "/"})));
        let e = err(&mut m, &row(&["", "", "/"]));
        assert_eq!(e.column.as_deref(), Some("id"));

        // A file of anonymous events only.
        let mut m = csv_mapper(&event_spec(Some("viewed")), &["anonymous_id", "page"]);
        ok(&mut m, &row(&["a1", "/"]));
        let e = err(&mut m, &row(&["", "/"]));
        assert!(e.message.starts_with("no identifier"), "{}", e.message);
        // ...which does not work for identify.
        let e = csv_error(&spec(Action::Identify), &["anonymous_id"]);
        assert!(e.starts_with("no identifier column"), "{e}");

        let mut m = json_mapper(&event_spec(Some("viewed")));
        let op = ok(&mut m, &obj(json!({"anonymous_id": "a1"})));
        assert_eq!(op.anonymous_id.as_deref(), Some("a1"));
    }

    #[test]
    fn derived_event_ids_are_valid_deterministic_ulids() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        let a = ok(&mut m, &row(&["1", "1709632800", "pro"]));
        let id = a.id.clone().unwrap();
        let ulid = Ulid::from_string(&id).unwrap();
        assert_eq!(id.len(), 26);
        assert_eq!(ulid.timestamp_ms(), 1_709_632_800_000);

        // Same row, new mapper (a re-run): same id.
        let mut again = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        assert_eq!(ok(&mut again, &row(&["1", "1709632800", "pro"])).id, a.id);
        // The same event written in another form of the same time: same id.
        assert_eq!(
            ok(&mut m, &row(&["1", "2024-03-05T10:00:00Z", "pro"])).id,
            a.id
        );

        let mut ids = HashSet::new();
        for r in [
            ["1", "1709632800", "pro"],
            ["2", "1709632800", "pro"],
            ["1", "1709632801", "pro"],
            ["1", "1709632800", "free"],
            ["1", "", "pro"],
        ] {
            assert!(ids.insert(ok(&mut m, &row(&r)).id.unwrap()), "{r:?}");
        }
        // No timestamp: time part 0, still a valid, stable id.
        let none = ok(&mut m, &row(&["1", "", "pro"])).id.unwrap();
        assert_eq!(Ulid::from_string(&none).unwrap().timestamp_ms(), 0);
        assert_eq!(ok(&mut m, &row(&["1", "", "pro"])).id.unwrap(), none);

        // Identity kind and event name count too.
        let mut by_email = csv_mapper(&event_spec(Some("e")), &["email", "timestamp", "plan"]);
        let e = ok(&mut by_email, &row(&["1", "1709632800", "pro"])).id;
        assert_ne!(e, a.id);
        let mut other_name = csv_mapper(&event_spec(Some("f")), &["id", "timestamp", "plan"]);
        assert_ne!(
            ok(&mut other_name, &row(&["1", "1709632800", "pro"])).id,
            a.id
        );
        // The id does not depend on key order in NDJSON.
        let mut j = json_mapper(&event_spec(Some("e")));
        let x = ok(&mut j, &obj(json!({"id": "1", "a": 1, "b": 2}))).id;
        let y = ok(&mut j, &obj(json!({"b": 2, "a": 1, "id": "1"}))).id;
        assert_eq!(x, y);
    }

    #[test]
    fn derived_event_id_is_pinned() {
        // If this changes, re-runs after an upgrade stop deduplicating against earlier runs.
        let mut m = csv_mapper(&event_spec(Some("signed_up")), &["id", "timestamp", "plan"]);
        let op = ok(&mut m, &row(&["42", "1709632800", "pro"]));
        assert_eq!(op.id.as_deref(), Some("01HR70WH8069XEH316T6DZRYEA"));
    }

    #[test]
    fn given_event_ids_must_be_ulids() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "event_id"]);
        let op = ok(&mut m, &row(&["1", " 01hr6z8q9t3v5x7z9b1d3f5h7k "]));
        assert_eq!(op.id.as_deref(), Some("01HR6Z8Q9T3V5X7Z9B1D3F5H7K"));
        assert!(op.attributes.is_empty());
        for bad in [
            "nope",
            "01HR6Z8Q9T3V5X7Z9B1D3F5H7",
            "81HR6Z8Q9T3V5X7Z9B1D3F5H7K",
        ] {
            let e = err(&mut m, &row(&["1", bad]));
            assert_eq!(e.column.as_deref(), Some("event_id"), "{bad}");
            assert!(e.message.contains("is not a ULID"), "{}", e.message);
        }
        // Empty: derived.
        assert!(ok(&mut m, &row(&["1", ""])).id.is_some());
    }

    #[test]
    fn event_data_at_most_100000_bytes_and_values_are_not_held_to_1000() {
        let mut m = json_mapper(&event_spec(Some("e")));
        // {"blob":"…"} is the string plus 11 bytes.
        let op = ok(&mut m, &obj(json!({"id": "1", "blob": "x".repeat(99_989)})));
        assert_eq!(value::json_size(&op.attributes), 100_000);
        let e = err(&mut m, &obj(json!({"id": "1", "blob": "x".repeat(99_990)})));
        assert_eq!(e.column, None);
        assert!(
            e.message
                .starts_with("event data is 100,001 bytes; Customer.io allows at most 100,000"),
            "{}",
            e.message
        );
    }

    #[test]
    fn fnv_matches_the_published_algorithm() {
        // Any change here changes every derived event id, and breaks dedup across versions.
        let mut h = Fnv128::default();
        h.bytes(b"a");
        assert_eq!(h.hash, 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        let mut h = Fnv128::default();
        h.bytes(b"foobar");
        assert_eq!(h.hash, 0x343e_1662_793c_64bf_6f0d_3597_ba44_6f18);
    }

    // ---- delete, suppress, unsuppress ----

    #[test]
    fn delete_and_suppress_need_only_the_identifier() {
        for action in [Action::Delete, Action::Suppress, Action::Unsuppress] {
            let s = typed(action, &[("age", ValueType::Number)]);
            let mut m = csv_mapper(&s, &["email", "age", "", "age"]);
            let op = ok(&mut m, &row(&["a@x.io", "abc", "x", "1"]));
            assert_eq!(op.action, action);
            assert_eq!(op.identifiers, Some(Identifier::Email("a@x.io".into())));
            assert!(op.attributes.is_empty());
            let mut m = json_mapper(&s);
            let op = ok(&mut m, &obj(json!({"id": 5, "age": {"x": 1}, "name": 1})));
            assert_eq!(op.identifiers, Some(Identifier::Id("5".into())));
            assert!(op.attributes.is_empty() && op.name.is_none());
        }
    }

    // ---- replay ----

    #[test]
    fn replayed_operation_lines_keep_their_action_and_event_id() {
        let mut m = csv_mapper(&event_spec(Some("e")), &["id", "timestamp", "plan"]);
        let op = ok(&mut m, &row(&["1", "1709632800", "pro"]));
        let Value::Object(mut line) = serde_json::to_value(&op).unwrap() else {
            panic!()
        };
        line.insert("_error".into(), json!("429 Too Many Requests"));

        // Replayed with another action on the command line: the line's own action counts.
        let mut r = json_mapper(&spec(Action::Identify));
        assert_eq!(ok(&mut r, &RowData::Json(line.clone())), op);
        // A hand-edited id is kept; a removed one is derived again, equal to the original.
        line.insert("id".into(), json!("01HR6Z8Q9T3V5X7Z9B1D3F5H7K"));
        let kept = ok(&mut r, &RowData::Json(line.clone()));
        assert_eq!(kept.id.as_deref(), Some("01HR6Z8Q9T3V5X7Z9B1D3F5H7K"));
        line.remove("id");
        assert_eq!(ok(&mut r, &RowData::Json(line.clone())), op);

        line.insert("id".into(), json!("bad"));
        assert_eq!(
            err(&mut r, &RowData::Json(line)).column.as_deref(),
            Some("id")
        );
    }

    #[test]
    fn replayed_operation_lines_are_held_to_the_limits() {
        let mut r = json_mapper(&spec(Action::Event));
        let line = |v: Value| obj(v);
        let ok_line = json!({"_error": "x", "type": "person", "action": "identify",
                             "identifiers": {"cio_id": "cio_12"}, "attributes": {"a": 1}});
        let op = ok(&mut r, &line(ok_line));
        assert_eq!(op.identifiers, Some(Identifier::CioId("12".into())));
        assert_eq!(op.action, Action::Identify);

        let e = err(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "identify",
                         "identifiers": {"id": "x".repeat(151)}}),
            ),
        );
        assert_eq!(e.column.as_deref(), Some("id"));
        let e = err(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "identify",
                         "identifiers": {"id": "1"}, "attributes": {"bio": "x".repeat(1001)}}),
            ),
        );
        assert_eq!(e.column.as_deref(), Some("bio"));
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "event",
                         "identifiers": {"id": "1"}})),
        );
        assert_eq!(e.column.as_deref(), Some("name"));
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "event", "name": "n"})),
        );
        assert!(e.message.starts_with("no identifier"), "{}", e.message);
        let e = err(
            &mut r,
            &line(json!({"_error": "x", "type": "person", "action": "jump",
                         "identifiers": {"id": "1"}})),
        );
        assert!(
            e.message
                .starts_with("failures-file line is not a valid operation"),
            "{}",
            e.message
        );
        // An anonymous event line is fine.
        let op = ok(
            &mut r,
            &line(
                json!({"_error": "x", "type": "person", "action": "event", "name": "n",
                         "anonymous_id": "a1"}),
            ),
        );
        assert_eq!(op.anonymous_id.as_deref(), Some("a1"));
        assert!(op.id.is_some());
    }

    #[test]
    fn replayed_raw_rows_map_like_rows() {
        let s = typed(Action::Identify, &[("age", ValueType::Number)]);
        let mut csv = csv_mapper(&s, &["id", "age"]);
        let bad = row(&["1", "old"]);
        let invalid = err(&mut csv, &bad);
        let mut line = csv.raw(&bad);
        line.insert("_error".into(), json!(invalid.message));
        assert_eq!(
            Value::Object(line.clone()),
            json!({"id": "1", "age": "old", "_error": invalid.message})
        );

        // Replayed unfixed: the same complaint. Fixed: mapped, without the _error key.
        let mut r = json_mapper(&s);
        assert_eq!(err(&mut r, &RowData::Json(line.clone())), invalid);
        line.insert("age".into(), json!("70"));
        let op = ok(&mut r, &RowData::Json(line));
        assert_eq!(op.attributes, attrs(json!({"age": 70})));

        let broken = RowData::Broken {
            message: "unterminated quote".into(),
            column: None,
            raw: "1,\"x".into(),
        };
        let mut line = r.raw(&broken);
        assert_eq!(Value::Object(line.clone()), json!({"_raw": "1,\"x"}));
        line.insert("_error".into(), json!("unterminated quote"));
        let e = err(&mut r, &RowData::Json(line));
        assert!(e.message.contains("could not be read"), "{}", e.message);
    }

    #[test]
    fn a_header_of_one_column_holding_semicolons_suggests_the_delimiter() {
        let e = csv_error(&spec(Action::Identify), &["id;email;plan"]);
        assert!(
            e.ends_with("(separated by ';'? pass --delimiter ';')"),
            "{e}"
        );
        let e = csv_error(&spec(Action::Identify), &["id\temail"]);
        assert!(e.ends_with("pass --delimiter tab)"), "{e}");
    }

    #[test]
    fn every_cell_that_does_not_convert_is_told_at_once() {
        let s = typed(
            Action::Identify,
            &[("age", ValueType::Number), ("vip", ValueType::Bool)],
        );
        let mut m = csv_mapper(&s, &["id", "age", "vip", "signed"]);
        let e = err(&mut m, &row(&["1", "thirty", "maybe", "x"]));
        assert_eq!(e.column.as_deref(), Some("age"));
        assert!(
            e.message
                .starts_with("column \"age\": \"thirty\" is not a number")
                && e.message
                    .contains("; column \"vip\": \"maybe\" is not a bool"),
            "{}",
            e.message
        );
        let mut m = Mapper::new(&s, None).unwrap();
        let e = err(&mut m, &obj(json!({"id": 1, "age": "x", "vip": "maybe"})));
        assert_eq!(e.column.as_deref(), Some("age"));
        assert!(e.message.contains("column \"vip\""), "{}", e.message);
    }

    #[test]
    fn header_names_are_trimmed() {
        let s = typed(Action::Identify, &[("age", ValueType::Number)]);
        let mut m = csv_mapper(&s, &["id", " first_name", " age "]);
        let op = ok(&mut m, &row(&["1", "Ada", "36"]));
        assert_eq!(
            op.attributes,
            attrs(json!({"first_name": "Ada", "age": 36}))
        );
        let mut m = csv_mapper(&spec(Action::Identify), &[" id", "plan"]);
        assert_eq!(
            ok(&mut m, &row(&["7", "pro"])).identifiers,
            Some(Identifier::Id("7".into()))
        );
    }

    #[test]
    fn a_number_identifier_must_keep_its_digits() {
        let mut m = Mapper::new(&spec(Action::Identify), None).unwrap();
        let op = ok(&mut m, &obj(json!({"id": 12345678901234567890u64})));
        assert_eq!(
            op.identifiers,
            Some(Identifier::Id("12345678901234567890".into()))
        );
        let row: Value = serde_json::from_str(r#"{"id": 123456789012345678901234}"#).unwrap();
        let e = err(&mut m, &obj(row));
        assert!(e.message.contains("write it as a string"), "{}", e.message);
        let e = err(&mut m, &obj(json!({"id": 1.5})));
        assert_eq!(e.column.as_deref(), Some("id"));
    }

    #[test]
    fn dot_identifiers_are_refused() {
        let mut m = csv_mapper(&spec(Action::Identify), &["id", "name"]);
        for id in [".", " .. "] {
            let e = err(&mut m, &row(&[id, "a"]));
            assert_eq!(e.column.as_deref(), Some("id"));
            assert!(
                e.message.contains("cannot identify a person"),
                "{}",
                e.message
            );
        }
        ok(&mut m, &row(&["...", "a"]));
        ok(&mut m, &row(&[".a", "a"]));
        // A cio_id goes in a path after `cio_`, where it is no step.
        let mut m = csv_mapper(&spec(Action::Identify), &["cio_id", "name"]);
        ok(&mut m, &row(&["..", "a"]));
    }

    // ---- raw rows and odd input ----

    #[test]
    fn raw_gives_the_row_back_as_an_object() {
        let m = csv_mapper(&spec(Action::Identify), &["\u{feff}id", "name"]);
        let rec = csv::StringRecord::from(vec!["1", "café"]);
        assert_eq!(
            Value::Object(m.raw(&RowData::Csv(rec))),
            json!({"id": "1", "name": "café"})
        );
        let o = attrs(json!({"id": 1, "x": [1]}));
        assert_eq!(m.raw(&RowData::Json(o.clone())), o);
    }

    #[test]
    fn odd_rows_are_invalid_with_a_reason() {
        let mut m = csv_mapper(&spec(Action::Identify), &["\u{feff}id", "name", ""]);
        let broken = RowData::Broken {
            message: "bad gzip".into(),
            column: Some("name".into()),
            raw: String::new(),
        };
        assert_eq!(
            err(&mut m, &broken),
            Invalid {
                column: Some("name".into()),
                message: "bad gzip".into()
            }
        );
        let e = err(&mut m, &row(&["1", "a"]));
        assert_eq!(e.message, "row has 2 fields; the header has 3");
        // The BOM is gone from the id column, and an unnamed column may only be empty.
        ok(&mut m, &row(&["1", "a", ""]));
        let e = err(&mut m, &row(&["1", "a", "x"]));
        assert!(
            e.message.starts_with("column 3 has no name"),
            "{}",
            e.message
        );

        let e = csv_error(&spec(Action::Identify), &["id", "plan", "plan"]);
        assert_eq!(
            e,
            r#"column "plan" appears twice in the header; rename or remove one"#
        );
    }
}
