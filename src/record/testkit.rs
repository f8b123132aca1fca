//! What the record tests share: specs, mappers, rows, and a look into the operations they give.

use serde_json::{Map, Value};

use super::{
    Action, EmptyPolicy, Entity, Event, EventKind, IdKind, Identifier, Invalid, MapSpec, Mapper,
    Operation, ValueType, Who,
};
use crate::source::RowData;

pub fn spec(action: Action) -> MapSpec {
    MapSpec {
        action,
        id_column: None,
        id_type: None,
        types: Vec::new(),
        conventions: Default::default(),
        oversize: Default::default(),
        columns: Default::default(),
        empty: EmptyPolicy::Skip,
        event_name: None,
        entity: Entity::Person,
        object_type: None,
        only_existing: false,
        may_destroy: true,
    }
}

pub fn typed(action: Action, types: &[(&str, ValueType)]) -> MapSpec {
    MapSpec {
        types: types
            .iter()
            .map(|(c, t)| (c.to_string(), t.clone()))
            .collect(),
        ..spec(action)
    }
}

pub fn event_spec(name: Option<&str>) -> MapSpec {
    MapSpec {
        event_name: name.map(str::to_owned),
        ..spec(Action::Event)
    }
}

fn headers(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

pub fn csv_mapper(spec: &MapSpec, names: &[&str]) -> Mapper {
    Mapper::new(spec, Some(&headers(names))).unwrap()
}

pub fn csv_error(spec: &MapSpec, names: &[&str]) -> String {
    match Mapper::new(spec, Some(&headers(names))) {
        Ok(_) => panic!("expected a MapError for {names:?}"),
        Err(e) => e.to_string(),
    }
}

pub fn json_mapper(spec: &MapSpec) -> Mapper {
    Mapper::new(spec, None).unwrap()
}

pub fn row(cells: &[&str]) -> RowData {
    RowData::Csv(csv::StringRecord::from(cells.to_vec()))
}

pub fn obj(v: Value) -> RowData {
    RowData::Json(attrs(v))
}

pub fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        v => panic!("not an object: {v}"),
    }
}

pub fn ok(m: &mut Mapper, r: &RowData) -> Operation {
    m.map(r, 1).unwrap_or_else(|e| panic!("{e:?}"))
}

pub fn err(m: &mut Mapper, r: &RowData) -> Invalid {
    match m.map(r, 1) {
        Ok(op) => panic!("expected Invalid, got {op:?}"),
        Err(e) => e,
    }
}

pub fn ident(kind: IdKind, value: &str) -> Identifier {
    Identifier {
        kind,
        value: value.to_owned(),
    }
}

pub fn id(value: &str) -> Identifier {
    ident(IdKind::Id, value)
}

pub fn email(value: &str) -> Identifier {
    ident(IdKind::Email, value)
}

pub fn cio_id(value: &str) -> Identifier {
    ident(IdKind::CioId, value)
}

/// An anonymous event "viewed" by `anonymous_id`, with a given id and a time.
pub fn anonymous_event(anonymous_id: &str) -> Operation {
    Operation::Event(Event {
        kind: EventKind::Event,
        who: Who::Anonymous(anonymous_id.to_owned()),
        name: "viewed".into(),
        id: ulid::Ulid::from_string("01HR6Z8Q9T3V5X7Z9B1D3F5H7K").unwrap(),
        timestamp: Some(1_700_000_000),
        data: Map::new(),
    })
}

/// The person an operation is about; None for an anonymous event.
pub fn person(op: &Operation) -> Option<&Identifier> {
    match op {
        Operation::Identify { person, .. }
        | Operation::Delete(person)
        | Operation::Suppress(person)
        | Operation::Unsuppress(person)
        | Operation::AddDevice { person, .. }
        | Operation::DeleteDevice { person, .. }
        | Operation::Relate { person, .. }
        | Operation::Unrelate { person, .. } => Some(person),
        Operation::Event(event) => match &event.who {
            Who::Person(person) => Some(person),
            Who::Anonymous(_) => None,
        },
        Operation::Merge { .. } | Operation::IdentifyObject { .. } | Operation::DeleteObject(_) => {
            None
        }
    }
}

/// A person's, an object's, a device's or a relationship's attributes, or an event's data;
/// None for the kinds that hold none.
pub fn attributes(op: &Operation) -> Option<&Map<String, Value>> {
    match op {
        Operation::Identify { attributes, .. }
        | Operation::IdentifyObject { attributes, .. }
        | Operation::Relate { attributes, .. } => Some(attributes),
        Operation::AddDevice { device, .. } => Some(&device.attributes),
        Operation::Event(event) => Some(&event.data),
        _ => None,
    }
}

pub fn event(op: &Operation) -> &Event {
    match op {
        Operation::Event(event) => event,
        op => panic!("not an event: {op:?}"),
    }
}

pub fn anonymous_id(op: &Operation) -> Option<&str> {
    match &event(op).who {
        Who::Anonymous(id) => Some(id),
        Who::Person(_) => None,
    }
}

/// An event's id as it is sent.
pub fn event_id(op: &Operation) -> String {
    event(op).id.to_string()
}
