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

use super::value::{self, Origin, Typed, json_kind, quote, thousands, value_size};
use super::{Action, EmptyPolicy, EntityType, Identifier, Operation, ValueType};
use crate::source::RowData;

/// Person identifier (`id`, `email`, `cio_id`).
pub const MAX_IDENTIFIER_BYTES: usize = 150;
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 150;
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1_000;
/// Distinct attributes in one identify call.
pub const MAX_ATTRIBUTES: usize = 300;
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// An event's data, serialised.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Id,
    Email,
    CioId,
}

impl IdKind {
    /// A custom `--id-column` is an `id` unless it is named like one of the others.
    fn of_column(name: &str) -> IdKind {
        match name {
            "email" => IdKind::Email,
            "cio_id" => IdKind::CioId,
            _ => IdKind::Id,
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
const CSV_STRING: Typed = Typed {
    ty: ValueType::String,
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
    types: HashMap<String, ValueType>,
    csv: Option<CsvPlan>,
}

/// A row's pieces as found, before the row-level checks.
#[derive(Default)]
struct Draft<'a> {
    /// Identifier column, kind, and value (trimmed; may be empty).
    person: Option<(&'a str, IdKind, Cow<'a, str>)>,
    /// Trimmed; may be empty.
    anonymous: Option<Cow<'a, str>>,
    /// Column and trimmed value.
    name: Option<(&'a str, &'a str)>,
    event_id: Option<(&'a str, &'a str)>,
    timestamp: Option<i64>,
    attributes: Map<String, Value>,
}

impl Mapper {
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
        if let Some(headers) = headers {
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
            return Err(MapError(format!(
                "no identifier column: expected one of {expected}; the header has: {}",
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
            return Role::Identifier(IdKind::of_column(name));
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

    pub fn map(&mut self, row: &RowData) -> Result<Operation, Invalid> {
        match row {
            RowData::Csv(record) => self.map_csv(record),
            RowData::Json(object) if object.contains_key(ERROR_KEY) => self.replay(object),
            RowData::Json(object) => self.map_object(object),
            RowData::Broken {
                message, column, ..
            } => Err(Invalid {
                column: column.clone(),
                message: message.clone(),
            }),
        }
    }

    fn map_csv(&self, record: &csv::ByteRecord) -> Result<Operation, Invalid> {
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
        for (i, (role, bytes)) in plan.roles.iter().zip(record).enumerate() {
            if *role == Role::Ignored {
                continue;
            }
            let column = plan.headers[i].as_str();
            let cell = std::str::from_utf8(bytes).map_err(|_| {
                Invalid::at(
                    column,
                    format!("column {column:?} is not valid UTF-8; save the file as UTF-8"),
                )
            })?;
            match *role {
                Role::Identifier(kind) => draft.person = Some((column, kind, cell.trim().into())),
                Role::AnonymousId => draft.anonymous = Some(cell.trim().into()),
                Role::EventName => draft.name = Some((column, cell.trim())),
                Role::EventId => draft.event_id = Some((column, cell.trim())),
                Role::EventTimestamp => {
                    draft.timestamp = value::convert_str(EVENT_TIME, column, cell)
                        .map_err(|m| Invalid::at(column, m))?
                        .and_then(|v| v.as_i64());
                }
                Role::Attribute(typed) => {
                    let v = value::convert_str(typed.unwrap_or(CSV_STRING), column, cell)
                        .map_err(|m| Invalid::at(column, m))?;
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

    fn map_object(&self, object: &Map<String, Value>) -> Result<Operation, Invalid> {
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
                        .map_err(|m| Invalid::at(column, m))?
                        .and_then(|v| v.as_i64());
                }
                Role::Attribute(typed) => {
                    let v = value::convert_json(typed, column, v)
                        .map_err(|m| Invalid::at(column, m))?;
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

    /// Adds an attribute, or applies the empty-cell policy to an empty one.
    fn put(&self, attributes: &mut Map<String, Value>, column: &str, v: Option<Value>) {
        let v = match (v, self.empty) {
            (Some(v), _) => v,
            (None, EmptyPolicy::Skip) => return,
            // "" is how Customer.io clears an attribute, whatever its type.
            (None, EmptyPolicy::Clear) => Value::String(String::new()),
        };
        attributes.insert(column.to_owned(), v);
    }

    /// The row-level part: who, which event, and the limits that span columns.
    fn finish(&self, draft: Draft<'_>) -> Result<Operation, Invalid> {
        let anonymous = draft.anonymous.filter(|a| !a.is_empty());
        let event = self.action == Action::Event;
        // An event is anonymous when the row has an anonymous_id and no person identifier.
        let person_missing = draft.person.as_ref().is_none_or(|(_, _, t)| t.is_empty());
        let (identifiers, anonymous_id) = match (draft.person, anonymous) {
            (_, Some(a)) if event && person_missing => (None, Some(a.into_owned())),
            (Some((column, kind, text)), _) => (Some(identifier(column, kind, &text)?), None),
            (None, _) => return Err(self.no_identifier()),
        };
        let mut op = Operation {
            entity: EntityType::Person,
            action: self.action,
            identifiers,
            anonymous_id,
            name: None,
            id: None,
            timestamp: None,
            attributes: draft.attributes,
        };
        match self.action {
            Action::Identify => check_person_attributes(&op.attributes)?,
            Action::Event => {
                op.name = Some(match draft.name.filter(|(_, n)| !n.is_empty()) {
                    Some((column, name)) => {
                        check_event_name(Some(column), name)?;
                        name.to_owned()
                    }
                    None => self.event_name.clone().ok_or_else(|| {
                        Invalid::row("no event name: add a name column or pass --event-name".into())
                    })?,
                });
                op.timestamp = draft.timestamp;
                check_event_data(&op.attributes)?;
                op.id = Some(match draft.event_id.filter(|(_, id)| !id.is_empty()) {
                    Some((column, id)) => parse_ulid(column, id)?,
                    None => derived_event_id(&op),
                });
            }
            Action::Delete | Action::Suppress | Action::Unsuppress => {}
        }
        Ok(op)
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
        self.map_object(object)
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
                        let cell = String::from_utf8_lossy(cell).into_owned();
                        (name, Value::String(cell))
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

/// An identifier (or anonymous id) from JSON, as trimmed text: numbers become their string form.
fn identifier_text<'a>(column: &str, v: &'a Value) -> Result<Cow<'a, str>, Invalid> {
    match v {
        Value::String(s) => Ok(Cow::Borrowed(s.trim())),
        Value::Number(n) => Ok(Cow::Owned(n.to_string())),
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

/// Builds the identifier; a `cio_id` loses its `cio_` prefix (v2 wants the bare id).
fn identifier(column: &str, kind: IdKind, text: &str) -> Result<Identifier, Invalid> {
    let text = text.trim();
    let text = match kind {
        IdKind::CioId => text.strip_prefix("cio_").unwrap_or(text),
        IdKind::Id | IdKind::Email => text,
    };
    if text.is_empty() {
        return Err(Invalid::at(
            column,
            format!("column {column:?} is empty; every row needs an identifier"),
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
    let text = text.to_owned();
    Ok(match kind {
        IdKind::Id => Identifier::Id(text),
        IdKind::Email => Identifier::Email(text),
        IdKind::CioId => Identifier::CioId(text),
    })
}

fn name_too_long(name: &str) -> String {
    format!(
        "column {} has a {}-byte name; Customer.io allows at most {MAX_ATTRIBUTE_NAME_BYTES} \
         bytes for an attribute name",
        quote(name),
        thousands(name.len())
    )
}

/// A person's attributes: name and value sizes, and how many.
fn check_person_attributes(attributes: &Map<String, Value>) -> Result<(), Invalid> {
    for (name, v) in attributes {
        if name.is_empty() {
            return Err(Invalid::at(
                name,
                "an attribute name is empty; Customer.io needs a name for every attribute".into(),
            ));
        }
        if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            return Err(Invalid::at(name, name_too_long(name)));
        }
        let size = value_size(v);
        if size > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(Invalid::at(
                name,
                format!(
                    "column {name:?} is {} bytes; Customer.io allows at most {}",
                    thousands(size),
                    thousands(MAX_ATTRIBUTE_VALUE_BYTES)
                ),
            ));
        }
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Invalid::row(format!(
            "row has {} attributes; Customer.io allows at most {MAX_ATTRIBUTES} per person \
             (split the columns across two imports)",
            attributes.len()
        )));
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

fn check_event_data(data: &Map<String, Value>) -> Result<(), Invalid> {
    let size = value::json_size(data);
    if size > MAX_EVENT_DATA_BYTES {
        return Err(Invalid::row(format!(
            "event data is {} bytes; Customer.io allows at most {} (drop or shorten columns)",
            thousands(size),
            thousands(MAX_EVENT_DATA_BYTES)
        )));
    }
    Ok(())
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
        Action::Identify => check_person_attributes(&op.attributes)?,
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
            check_event_data(&op.attributes)?;
            op.id = Some(match op.id.as_deref() {
                Some(id) => parse_ulid("id", id)?,
                None => derived_event_id(&op),
            });
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

/// The event id for an event without one: a ULID whose time part is the event time and whose
/// random part is a hash of who, what, when and the data. The same row gives the same id on
/// every run, so Customer.io drops the copy when a batch is retried, a failures file is
/// replayed, or the whole import is run again. (Two identical rows are one event by this rule.)
///
/// The hash is FNV-1a 128, written out here rather than std's `DefaultHasher`, whose output may
/// change between Rust releases; the id has to stay the same across builds. The data is hashed
/// as serialised JSON, whose key order is fixed (serde_json's map is sorted).
fn derived_event_id(op: &Operation) -> String {
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
    // Writing into a hasher cannot fail, and a Map always serialises.
    let _ = serde_json::to_writer(&mut h, &op.attributes);
    // Missing or pre-1970 times use 0, which keeps the id deterministic; ULID time is unsigned.
    let ms = op
        .timestamp
        .and_then(|ts| u64::try_from(ts).ok())
        .map_or(0, |s| s.saturating_mul(1000));
    // FNV's high bits are its best mixed: keep the top 80.
    Ulid::from_parts(ms, h.0 >> 48).to_string()
}

/// FNV-1a, 128-bit.
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl Fnv128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u128::from(b)).wrapping_mul(Self::PRIME);
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
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
