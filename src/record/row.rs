//! The row path: one CSV record or NDJSON object into fields, each cell converted by its
//! column's role, then through its action's rules. The hot loop of a dry run.
//!
//! Each loop has a cold twin that lists every cell that does not convert; a row goes there
//! only once a cell has failed, and sharing the loop's match with it cost the dry run a fifth.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::entity::Entity;
use super::event_id::Place;
use super::notes::{Resize, Resized};
use super::object::Object;
use super::operation::ANONYMOUS_ID;
use super::plan::{CsvPlan, Role};
use super::replay::{ERROR_KEY, RAW_BASE64_KEY, RAW_KEY};
use super::rules::{Checked, Fields};
use super::tally::{Attributes, Collect, Tally};
use super::time::{self, TimeFormat};
use super::value::{self, Cell, Typed, json_kind, json_size};
use super::{Action, EmptyPolicy, Identifier, Invalid, Mapper, Operation};
use crate::source::RowData;
use crate::track::MAX_ATTRIBUTE_VALUE_BYTES;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

impl Mapper {
    /// Maps one row, the one at `line` of the input. A JSON object with an `_error` key is a
    /// failures-file line (see `replay`).
    pub fn map(&mut self, row: &RowData, line: u64) -> Result<Operation, Invalid> {
        let op = self.operation(row, line)?;
        if let Operation::Event(event) = &op {
            if let Some(recent) = &self.recent {
                recent.note(event.timestamp);
            }
            if event.timestamp.is_none() {
                self.untimed();
            }
        }
        Ok(op)
    }

    fn operation(&mut self, row: &RowData, line: u64) -> Result<Operation, Invalid> {
        let place = Some(Place {
            input: &self.input,
            line,
        });
        match row {
            RowData::Csv(record) => self.check_csv::<Collect>(record)?.into_operation(place),
            RowData::Json(object) if object.contains_key(ERROR_KEY) => self.replay(object),
            RowData::Json(object) => self.object_operation(object, place),
            RowData::Broken {
                message, column, ..
            } => Err(Invalid {
                column: column.clone(),
                message: message.clone(),
            }),
        }
    }

    /// An NDJSON object's operation, the object as --rename, --drop and --flatten reshape it.
    pub(super) fn object_operation(
        &self,
        object: &Map<String, Value>,
        place: Option<Place<'_>>,
    ) -> Result<Operation, Invalid> {
        match self.reshaped(object)? {
            Some(reshaped) => self
                .check_object::<Collect, _>(&reshaped)?
                .into_operation(place),
            None => self
                .check_object::<Collect, _>(object)?
                .into_operation(place),
        }
    }

    /// The verdict [`Mapper::map`] reaches, without building the operation (a dry run's
    /// check). `Ok` holds at least the length of the operation's JSON, which a batch limits.
    pub fn validate(&mut self, row: &RowData) -> Result<usize, Invalid> {
        // A row reshaped by --rename, --drop or --flatten: checked as its own map.
        let reshaped;
        let checked = match row {
            RowData::Csv(record) => self.check_csv::<Tally>(record)?,
            RowData::Json(object) if !object.contains_key(ERROR_KEY) => {
                reshaped = self.reshaped(object)?;
                match &reshaped {
                    Some(reshaped) => self.check_object::<Tally, _>(reshaped)?,
                    None => self.check_object::<Tally, _>(object)?,
                }
            }
            // Failures-file lines and broken rows are few: they are mapped (the size of an
            // operation does not depend on where its row is).
            _ => return self.map(row, 0).map(|op| json_size(&op)),
        };
        let time = match &checked {
            Checked::Event { timestamp, .. } => Some(*timestamp),
            _ => None,
        };
        let bound = match checked.json_bound() {
            Some(bound) => bound,
            // Maybe over the limit: the message gives the exact size, which needs the data.
            // Mapped again, so its resized values are noted again.
            None => {
                self.notes.get_mut().resized.clear();
                json_size(&self.operation(row, 0)?)
            }
        };
        if let (Some(recent), Some(time)) = (&self.recent, time) {
            recent.note(time);
        }
        if time == Some(None) {
            self.untimed();
        }
        Ok(bound)
    }

    /// Notes an event without a time, unless its input was told at the start that every
    /// event of it has none (see [`Mapper::untimed_note`]).
    #[cold]
    fn untimed(&mut self) {
        if !self.all_untimed() {
            let stream = self.stream;
            self.notes.get_mut().untimed(stream);
        }
    }

    #[inline(always)]
    pub(super) fn check_csv<'a, A: Attributes>(
        &'a self,
        record: &'a csv::StringRecord,
    ) -> Result<Checked<'a, A>, Invalid> {
        self.csv_fields::<A, false>(record)
    }

    /// A CSV row checked again with its values over 1,000 bytes resized (`--oversize`).
    #[cold]
    #[inline(never)]
    fn check_csv_resizing<'a, A: Attributes>(
        &'a self,
        record: &'a csv::StringRecord,
    ) -> Result<Checked<'a, A>, Invalid> {
        self.csv_fields::<A, true>(record)
    }

    /// A CSV row's cells into fields. `RESIZE` applies `--oversize`: a row is checked as
    /// it is first (no cell pays for the policy), and only one with a value over the limit
    /// again with it.
    #[inline(always)]
    fn csv_fields<'a, A: Attributes, const RESIZE: bool>(
        &'a self,
        record: &'a csv::StringRecord,
    ) -> Result<Checked<'a, A>, Invalid> {
        let Some(plan) = &self.csv else {
            return Err(Invalid::row(
                "a CSV row reached a mapper built without a CSV header".into(),
            ));
        };
        // The reader makes every record the header's width (a broken row otherwise), but
        // `RowData` is the library's to build: a record of another width is a row refused,
        // not cells put under the wrong names (tests/it/input_props.rs checks one short).
        if record.len() != plan.headers.len() {
            return Err(Invalid::row(format!(
                "row has {} fields; the header has {}",
                record.len(),
                plan.headers.len()
            )));
        }
        let mut fields = self.fields::<A>();
        for (i, (role, cell)) in plan.roles.iter().zip(record).enumerate() {
            let column = plan.headers[i].as_str();
            match role {
                &Role::Identifier(kind) => {
                    let value = self.conventions.unquoted(cell.trim()).into();
                    fields.person = Some((column, Identifier { kind, value }));
                }
                Role::AnonymousId => {
                    fields.anonymous = Some(self.conventions.unquoted(cell.trim()).into());
                }
                Role::EventName => fields.name = Some((column, cell.trim())),
                Role::EventId => fields.event_id = Some((column, cell.trim())),
                Role::EventTimestamp | Role::LastUsed => {
                    let typed = self.fixed_time(role);
                    let time = value::convert_str(typed, &self.conventions, column, cell)
                        .map_err(|_| self.csv_cell_errors(plan, record))?;
                    self.check_plausible(typed, column, cell, &time);
                    let time = time.and_then(|v| v.as_i64());
                    match role {
                        Role::LastUsed => fields.tied().last_used = time,
                        _ => fields.timestamp = time,
                    }
                }
                Role::ObjectId => {
                    let id = self.conventions.unquoted(cell.trim());
                    fields.tied().object = Some((column, id.into()));
                }
                Role::ObjectTypeId => {
                    let id = self.conventions.unquoted(cell.trim());
                    fields.tied().object_type = Some((column, id.into()));
                }
                Role::DeviceId => {
                    fields.tied().device = Some((column, self.conventions.unquoted(cell)));
                }
                Role::Platform => fields.tied().platform = Some((column, cell)),
                &(Role::Primary(kind) | Role::Secondary(kind)) => {
                    let found = Some((
                        column,
                        Identifier {
                            kind,
                            value: self.conventions.unquoted(cell.trim()).into(),
                        },
                    ));
                    side(&mut fields, role, found);
                }
                // Apart from the typed cells, so a text cell goes straight to the tally (see
                // `Cell`).
                Role::Attribute(None) => {
                    self.put::<A, RESIZE>(&mut fields.attributes, column, value::text(cell))
                }
                Role::Attribute(Some(typed)) => {
                    let v = value::convert_str(typed, &self.conventions, column, cell)
                        .map_err(|_| self.csv_cell_errors(plan, record))?;
                    self.check_plausible(typed, column, cell, &v);
                    self.put::<A, RESIZE>(&mut fields.attributes, column, v);
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
        if !RESIZE && self.oversize.is_some() && fields.attributes.tally().oversized() {
            return self.check_csv_resizing(record);
        }
        self.note_fields(&fields);
        Checked::new(self.action, self.entity, fields, &self.source())
    }

    pub(super) fn check_object<'a, A: Attributes, O: Object>(
        &'a self,
        object: &'a O,
    ) -> Result<Checked<'a, A>, Invalid> {
        self.object_fields::<A, O, false>(object)
    }

    /// [`Mapper::check_csv_resizing`] for NDJSON.
    #[cold]
    #[inline(never)]
    fn check_object_resizing<'a, A: Attributes, O: Object>(
        &'a self,
        object: &'a O,
    ) -> Result<Checked<'a, A>, Invalid> {
        self.object_fields::<A, O, true>(object)
    }

    fn object_fields<'a, A: Attributes, O: Object, const RESIZE: bool>(
        &'a self,
        object: &'a O,
    ) -> Result<Checked<'a, A>, Invalid> {
        // NDJSON has no header: the identifier is chosen per row, by the keys it has.
        let id_key = match &self.id_column {
            Some(col) => Some(col.as_str()),
            None => self.id_key(|k| object.value(k).is_some_and(|v| !v.is_null())),
        };
        let mut fields = self.fields::<A>();
        for (column, v) in object.entries() {
            if column == ERROR_KEY {
                continue;
            }
            match self.role(column, id_key) {
                Role::Identifier(kind) => {
                    let value = self.unquoted(identifier_text(column, v)?);
                    fields.person = Some((column, Identifier { kind, value }));
                }
                Role::AnonymousId => {
                    fields.anonymous = Some(self.unquoted(identifier_text(column, v)?))
                }
                Role::EventName => fields.name = json_text(column, v)?.map(|t| (column, t)),
                Role::EventId => fields.event_id = json_text(column, v)?.map(|t| (column, t)),
                role @ (Role::EventTimestamp | Role::LastUsed) => {
                    let typed = self.fixed_time(&role);
                    let time = value::convert_json(Some(typed), &self.conventions, column, v)
                        .map_err(|_| self.json_value_errors(object, id_key))?;
                    self.check_plausible_json(Some(typed), column, v, &time);
                    let time = time.and_then(|v| v.as_i64());
                    match role {
                        Role::LastUsed => fields.tied().last_used = time,
                        _ => fields.timestamp = time,
                    }
                }
                Role::ObjectId => {
                    let id = self.unquoted(identifier_text(column, v)?);
                    fields.tied().object = Some((column, id));
                }
                Role::ObjectTypeId => {
                    let id = self.unquoted(identifier_text(column, v)?);
                    fields.tied().object_type = Some((column, id));
                }
                Role::DeviceId => {
                    let token = json_text(column, v)?.map(|t| self.conventions.unquoted(t));
                    fields.tied().device = token.map(|t| (column, t));
                }
                Role::Platform => {
                    fields.tied().platform = json_text(column, v)?.map(|t| (column, t));
                }
                role @ (Role::Primary(kind) | Role::Secondary(kind)) => {
                    let value = self.unquoted(identifier_text(column, v)?);
                    side(
                        &mut fields,
                        &role,
                        Some((column, Identifier { kind, value })),
                    );
                }
                Role::Attribute(typed) => {
                    let cell = value::convert_json(typed.as_ref(), &self.conventions, column, v)
                        .map_err(|_| self.json_value_errors(object, id_key))?;
                    self.check_plausible_json(typed.as_ref(), column, v, &cell);
                    self.put::<A, RESIZE>(&mut fields.attributes, column, cell);
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
        if fields.person.is_none()
            && self.entity == Entity::Person
            && let Some(col) = &self.id_column
            && !(self.action.event_kind().is_some()
                && fields.anonymous.as_deref().is_some_and(|a| !a.is_empty()))
        {
            return Err(Invalid::at(
                col,
                format!("no identifier: the row has no {col:?} key (--id-column {col})"),
            ));
        }
        if !RESIZE && self.oversize.is_some() && fields.attributes.tally().oversized() {
            return self.check_object_resizing(object);
        }
        self.note_fields(&fields);
        Checked::new(self.action, self.entity, fields, &self.source())
    }

    /// Notes what the run is told of a row's fields, all read: the identifier sample, an
    /// anonymous id left out. By reference: moving the fields through here cost a copy a row.
    #[inline(always)]
    fn note_fields<A: Attributes>(&self, fields: &Fields<'_, A>) {
        if let Some(sample) = &self.sample {
            sample.note(fields.person.as_ref());
        }
        if let (Some((column, person)), Some(anonymous)) = (&fields.person, &fields.anonymous)
            && !person.value.is_empty()
            && !anonymous.is_empty()
        {
            self.note_anonymous_left_out(column);
        }
    }

    /// An event of a known person names only that person (v2's `identifiers`), so the
    /// anonymous id beside it is not sent: told once, with how Customer.io links the two.
    #[cold]
    #[inline(never)]
    fn note_anonymous_left_out(&self, column: &str) {
        self.notes.borrow_mut().warn_once(ANONYMOUS_ID, || {
            format!(
                "this event is of the person in column {column:?} and has an anonymous id \
                 too, in column {ANONYMOUS_ID:?}: an event names one person, so it is sent \
                 without it. Customer.io merges a visitor's anonymous events into the person \
                 whose attribute {ANONYMOUS_ID} holds that id, which an identify of the person \
                 sets (told once)"
            )
        });
    }

    /// Every typed cell of a row that does not convert, told at once so the row is fixed in
    /// one pass: the first names the column. Off the hot path: a row comes here only once a
    /// cell has failed.
    #[cold]
    #[inline(never)]
    fn csv_cell_errors(&self, plan: &CsvPlan, record: &csv::StringRecord) -> Invalid {
        let typed = plan.roles.iter().zip(&plan.headers).zip(record);
        all_of(typed.filter_map(|((role, column), cell)| {
            let ty = match role {
                Role::EventTimestamp | Role::LastUsed => self.fixed_time(role),
                Role::Attribute(Some(ty)) => ty,
                _ => return None,
            };
            value::convert_str(ty, &self.conventions, column, cell)
                .err()
                .map(|m| (column.as_str(), m))
        }))
    }

    /// The NDJSON counterpart of [`Mapper::csv_cell_errors`].
    #[cold]
    #[inline(never)]
    fn json_value_errors(&self, object: &impl Object, id_key: Option<&str>) -> Invalid {
        all_of(object.entries().filter_map(|(key, v)| {
            let role = self.role(key, id_key);
            let ty = match &role {
                Role::EventTimestamp | Role::LastUsed => Some(self.fixed_time(&role)),
                Role::Attribute(ty) => ty.as_ref(),
                _ => return None,
            };
            value::convert_json(ty, &self.conventions, key, v)
                .err()
                .map(|m| (key, m))
        }))
    }

    /// A row's fields before its cells: a device's attributes are held to text.
    #[inline(always)]
    fn fields<'a, A: Attributes>(&self) -> Fields<'a, A> {
        let mut fields = Fields::<A>::default();
        if self.action == Action::AddDevice {
            fields.attributes.only_text();
        }
        fields
    }

    /// How the event timestamp or a device's last_used (`role`) is read.
    fn fixed_time(&self, role: &Role) -> &Typed {
        match role {
            Role::LastUsed => &self.last_used,
            _ => &self.event_time,
        }
    }

    /// An identifier from JSON without its spreadsheet apostrophe, if asked.
    fn unquoted<'a>(&self, id: Cow<'a, str>) -> Cow<'a, str> {
        match id {
            Cow::Borrowed(s) => Cow::Borrowed(self.conventions.unquoted(s)),
            owned => owned,
        }
    }

    /// Adds an attribute, or applies the empty-cell policy to an empty one; with `RESIZE`,
    /// `--oversize` to one over the limit.
    #[inline(always)]
    fn put<A: Attributes, const RESIZE: bool>(
        &self,
        attributes: &mut A,
        column: &str,
        v: Option<Cell<'_>>,
    ) {
        let v = match (v, self.empty) {
            (Some(v), _) => v,
            (None, EmptyPolicy::Skip) => return,
            // "" is how Customer.io clears an attribute, whatever its type.
            (None, EmptyPolicy::Clear) => Cell::Text(""),
        };
        if RESIZE
            && let Some(policy) = self.oversize
            && v.size() > MAX_ATTRIBUTE_VALUE_BYTES
        {
            if let Some(v) = self.resize(policy, column, v) {
                attributes.put(column, v);
            }
            return;
        }
        attributes.put(column, v);
    }

    /// A value over the limit as `--oversize` leaves it, noted for the run to count and tell.
    #[cold]
    #[inline(never)]
    fn resize<'a>(&self, policy: Resize, column: &str, v: Cell<'a>) -> Option<Cell<'a>> {
        let bytes = v.size();
        let kept = policy.apply(v);
        self.notes.borrow_mut().resized.push(Resized {
            column: column.to_owned(),
            bytes,
            cut: kept.is_some(),
        });
        kept
    }

    /// Notes once per column a timestamp attribute whose cell `s`, a bare number, reads as a
    /// time before 2001 or after 2100: most likely misread. Not where a format the user gave
    /// read it (`%Y%m%d` reads `19850412` as they mean).
    #[inline(always)]
    fn check_plausible(&self, typed: &Typed, column: &str, s: &str, v: &Option<Cell<'_>>) {
        if let Some(format) = typed.time_format()
            && !matches!(format, TimeFormat::Pattern(_))
            && let Some(secs) = v.as_ref().and_then(Cell::as_i64)
            && time::implausible(secs, s)
        {
            self.note_implausible(column, s, secs, format);
        }
    }

    /// [`Mapper::check_plausible`] for a JSON value: a number is a bare number too.
    fn check_plausible_json(
        &self,
        typed: Option<&Typed>,
        column: &str,
        v: &Value,
        cell: &Option<Cell<'_>>,
    ) {
        let Some(typed) = typed.filter(|t| t.time_format().is_some()) else {
            return;
        };
        match v {
            Value::String(s) => self.check_plausible(typed, column, s, cell),
            // Written out only for a time outside the plausible years, not for every row.
            Value::Number(n)
                if cell
                    .as_ref()
                    .and_then(Cell::as_i64)
                    .is_some_and(|secs| !time::plausible(secs)) =>
            {
                self.check_plausible(typed, column, &n.to_string(), cell)
            }
            _ => {}
        }
    }

    #[cold]
    #[inline(never)]
    fn note_implausible(&self, column: &str, s: &str, secs: i64, format: &TimeFormat) {
        self.notes.borrow_mut().warn_once(column, || {
            time::implausible_warning(column, s, secs, format)
        });
    }

    /// The row as a JSON object, for the failures file.
    pub fn raw(&self, row: &RowData) -> Map<String, Value> {
        match row {
            RowData::Csv(record) => {
                let headers = self.csv.as_ref().map_or(&[][..], |p| &p.original[..]);
                let mut line = Map::new();
                // Columns without a name (Excel's trailing empty header cells) carry nothing
                // when empty; the values some do hold share the one key "" (a list when
                // several), which a replay refuses as the run did.
                let mut unnamed = Vec::new();
                for (i, cell) in record.iter().enumerate() {
                    match headers.get(i) {
                        Some(name) if name.is_empty() => {
                            if !cell.is_empty() {
                                unnamed.push(Value::String(cell.to_owned()));
                            }
                        }
                        Some(name) => {
                            line.insert(name.clone(), Value::String(cell.to_owned()));
                        }
                        // Past the header: never from the reader (see `csv_fields`), but a
                        // record the library was given wider than the header keeps its cells.
                        None => {
                            let name = format!("column_{}", i + 1);
                            line.insert(name, Value::String(cell.to_owned()));
                        }
                    }
                }
                let value = match unnamed.len() {
                    0 => None,
                    1 => unnamed.pop(),
                    _ => Some(Value::Array(unnamed)),
                };
                if let Some(value) = value {
                    line.insert(String::new(), value);
                }
                line
            }
            RowData::Json(object) => object.clone(),
            // Text as it is; other bytes (a file in another encoding) in base64, so that the
            // line keeps them exactly.
            RowData::Broken { raw, .. } => Map::from_iter([match std::str::from_utf8(raw) {
                Ok(text) => (RAW_KEY.to_owned(), Value::String(text.to_owned())),
                Err(_) => (RAW_BASE64_KEY.to_owned(), Value::String(BASE64.encode(raw))),
            }]),
        }
    }
}

/// Puts a merge's person where its column says, unless an earlier column of the same side
/// gave one already (the first non-empty one counts).
fn side<'a, A>(
    fields: &mut Fields<'a, A>,
    role: &Role,
    found: Option<(&'a str, Identifier<Cow<'a, str>>)>,
) {
    let slot = match role {
        Role::Primary(_) => &mut fields.tied().primary,
        _ => &mut fields.tied().secondary,
    };
    if slot.as_ref().is_none_or(|(_, p)| p.value.is_empty()) {
        *slot = found;
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
pub(super) fn identifier_text<'a>(column: &str, v: &'a Value) -> Result<Cow<'a, str>, Invalid> {
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, MapSpec, ValueType};
    use super::*;
    use serde_json::json;

    #[test]
    fn identify_maps_every_other_column_to_an_attribute() {
        let mut m = csv_mapper(
            &spec(Action::Identify),
            &["id", "email", "plan", "created_at"],
        );
        let op = ok(&mut m, &row(&[" 42 ", "a@x.io", " pro ", "2024-03-05"]));
        assert_eq!(op.action(), Action::Identify);
        assert_eq!(person(&op), Some(&id("42")));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"email": "a@x.io", "plan": " pro ", "created_at": 1709596800}))
        );
        assert!(matches!(op, Operation::Identify { .. }));
    }

    #[test]
    fn ndjson_chooses_the_identifier_per_row() {
        let mut m = json_mapper(&spec(Action::Identify));
        let op = ok(&mut m, &obj(json!({"email": "a@x.io", "plan": "pro"})));
        assert_eq!(person(&op), Some(&email("a@x.io")));
        let op = ok(&mut m, &obj(json!({"id": 42, "email": "a@x.io"})));
        assert_eq!(person(&op), Some(&id("42")));
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"email": "a@x.io"})));
        // A null id does not count as present.
        let op = ok(&mut m, &obj(json!({"id": null, "cio_id": "cio_7"})));
        assert_eq!(person(&op), Some(&cio_id("7")));

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
        assert_eq!(person(&op), Some(&id("u1")));
        let e = err(&mut m, &obj(json!({"id": "x"})));
        assert_eq!(e.column.as_deref(), Some("uid"));
        assert_eq!(
            e.message,
            r#"no identifier: the row has no "uid" key (--id-column uid)"#
        );
    }

    #[test]
    fn types_from_the_flag_apply_to_csv_cells() {
        let s = typed(
            Action::Identify,
            &[
                ("age", ValueType::Number),
                ("vip", ValueType::Bool),
                ("prefs", ValueType::Json),
                ("seen", ValueType::TIMESTAMP),
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
            *attributes(&op).unwrap(),
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
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"created_at": 1709632800}))
        );
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
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"note": "  "})));

        let s = MapSpec {
            empty: EmptyPolicy::Clear,
            ..typed(Action::Identify, &types)
        };
        let mut m = csv_mapper(&s, &["id", "plan", "age", "created_at"]);
        let op = ok(&mut m, &row(&["1", "", "", ""]));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"plan": "", "age": "", "created_at": ""}))
        );
        let mut m = json_mapper(&s);
        let op = ok(&mut m, &obj(json!({"id": "1", "plan": null, "age": ""})));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"plan": "", "age": ""}))
        );
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
            *attributes(&op).unwrap(),
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
    fn a_number_identifier_must_keep_its_digits() {
        let mut m = Mapper::new(&spec(Action::Identify), None).unwrap();
        let op = ok(&mut m, &obj(json!({"id": 12345678901234567890u64})));
        assert_eq!(person(&op), Some(&id("12345678901234567890")));
        let row: Value = serde_json::from_str(r#"{"id": 123456789012345678901234}"#).unwrap();
        let e = err(&mut m, &obj(row));
        assert!(e.message.contains("write it as a string"), "{}", e.message);
        let e = err(&mut m, &obj(json!({"id": 1.5})));
        assert_eq!(e.column.as_deref(), Some("id"));
    }

    #[test]
    fn raw_gives_the_row_back_as_an_object() {
        let m = csv_mapper(&spec(Action::Identify), &["\u{feff}id", "name"]);
        let rec = csv::StringRecord::from(vec!["1", "café"]);
        assert_eq!(
            Value::Object(m.raw(&RowData::Csv(rec))),
            json!({"id": "1", "name": "café"})
        );
        let wide = csv::StringRecord::from(vec!["1", "café", "x"]);
        assert_eq!(
            Value::Object(m.raw(&RowData::Csv(wide))),
            json!({"id": "1", "name": "café", "column_3": "x"})
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
            raw: Vec::new(),
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
