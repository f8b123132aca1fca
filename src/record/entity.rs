//! What besides people an operation names: objects (a type and an id), a person's devices, and
//! what each one must be; with `identifiers` as a v2 operation holds them, a person's or an
//! object's.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::hash::Fnv128;
use super::value::quote;
use super::{IdKind, Identifier, Invalid};

/// Which kind of thing a row is about (`--entity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// People (and their events, devices and relationships).
    #[default]
    Person,
    /// Objects (companies, accounts, ...): `--object-type` and an `object_id` column.
    Object,
}

/// The columns, and the JSON keys, that name an object.
pub(super) const OBJECT_ID: &str = "object_id";
pub(super) const OBJECT_TYPE_ID: &str = "object_type_id";

/// An object: its type (a whole number from 1, as a string) and its id within the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId<S = String> {
    pub type_id: S,
    pub id: S,
}

impl<S: AsRef<str>> ObjectId<S> {
    /// Equal for two operations on the same object, never equal to a person's.
    pub fn key(&self) -> u64 {
        let mut h = Fnv128::default();
        h.field(b"object");
        h.field(self.type_id.as_ref().as_bytes());
        h.field(self.id.as_ref().as_bytes());
        h.top64()
    }
}

impl ObjectId<Cow<'_, str>> {
    pub(super) fn into_owned(self) -> ObjectId {
        ObjectId {
            type_id: self.type_id.into_owned(),
            id: self.id.into_owned(),
        }
    }
}

/// An object type id as given: refused, naming `column`, unless a whole number from 1.
pub(super) fn check_object_type<'a>(column: &str, text: &'a str) -> Result<&'a str, Invalid> {
    let text = text.trim();
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if digits && !text.starts_with('0') && text.len() <= 10 {
        return Ok(text);
    }
    Err(Invalid::at(
        column,
        format!(
            "{column}: {} is not an object type id: Customer.io numbers object types from 1 \
             (Data & Integrations > Objects shows them); pass --object-type N or fix the column",
            quote(text)
        ),
    ))
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(OBJECT_TYPE_ID, &self.type_id)?;
        map.serialize_entry(OBJECT_ID, &self.id)?;
        map.end()
    }
}

/// A v2 operation's `identifiers`: a person's (one key) or an object's (type and id).
/// Borrowed to write, owned when read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ids<'a> {
    Person(Cow<'a, Identifier>),
    Object(Cow<'a, ObjectId>),
}

impl Serialize for Ids<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ids::Person(person) => person.serialize(serializer),
            Ids::Object(object) => object.serialize(serializer),
        }
    }
}

/// Read owned, so of any lifetime.
impl<'de, 'a> Deserialize<'de> for Ids<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ids<'a>, D::Error> {
        deserializer.deserialize_map(IdsVisitor)
    }
}

/// Reads `{"id": "42"}` (one key, a person's kind) or `{"object_type_id", "object_id"}`.
struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = Ids<'static>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of id, email, cio_id, phone, or object_type_id and object_id")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Ids<'static>, M::Error> {
        let mut entries: Vec<(String, String)> = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        let find = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        match (find(OBJECT_TYPE_ID), find(OBJECT_ID), entries.as_slice()) {
            (Some(type_id), Some(id), [_, _]) => Ok(Ids::Object(Cow::Owned(ObjectId {
                type_id: type_id.clone(),
                id: id.clone(),
            }))),
            (None, None, [(kind, value)]) => {
                let kind = IdKind::deserialize(de::value::StrDeserializer::<M::Error>::new(kind))?;
                Ok(Ids::Person(Cow::Owned(Identifier {
                    kind,
                    value: value.clone(),
                })))
            }
            _ => Err(de::Error::invalid_value(de::Unexpected::Map, &self)),
        }
    }
}

/// A mobile device's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
}

impl Platform {
    /// As Customer.io spells it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }

    /// `ios` or `android`, in any case.
    pub(super) fn parse(column: &str, text: &str) -> Result<Platform, Invalid> {
        let text = text.trim();
        [Platform::Ios, Platform::Android]
            .into_iter()
            .find(|p| text.eq_ignore_ascii_case(p.name()))
            .ok_or_else(|| {
                Invalid::at(
                    column,
                    format!(
                        "column {column:?} is {}; a device's platform is ios or android",
                        quote(text)
                    ),
                )
            })
    }
}

/// A device to add to a person: its token, platform, when it was last used, and its
/// attributes (text only, as Customer.io takes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub token: String,
    pub platform: Platform,
    /// Unix seconds.
    pub last_used: Option<i64>,
    pub attributes: Map<String, Value>,
}

/// The column, and the JSON key, that holds a device's token (`id` in v1, `token` in v2).
pub(super) const DEVICE_ID: &str = "device_id";
pub(super) const PLATFORM: &str = "platform";
pub(super) const LAST_USED: &str = "last_used";

/// A device token as given: trimmed, not empty.
pub(super) fn check_token<'a>(column: &str, text: &'a str) -> Result<&'a str, Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Invalid::at(
            column,
            format!("column {column:?} is empty; every row needs a device token"),
        ));
    }
    // A v1 path names the device by its token, where these are steps ("here", "up").
    if text == "." || text == ".." {
        return Err(Invalid::at(
            column,
            format!("column {column:?} is {text:?}, which is no device token"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_read_as_a_persons_or_an_objects() {
        let read = |v: Value| serde_json::from_value::<Ids>(v);
        assert_eq!(
            read(json!({"phone": "+14155552671"})).unwrap(),
            Ids::Person(Cow::Owned(Identifier {
                kind: IdKind::Phone,
                value: "+14155552671".into()
            }))
        );
        let object = Ids::Object(Cow::Owned(ObjectId {
            type_id: "1".into(),
            id: "acme".into(),
        }));
        assert_eq!(
            read(json!({"object_id": "acme", "object_type_id": "1"})).unwrap(),
            object
        );
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"object_type_id":"1","object_id":"acme"}"#
        );
        for bad in [
            json!({}),
            json!({"id": "1", "email": "a@x.io"}),
            json!({"object_id": "acme"}),
            json!({"object_id": "a", "object_type_id": "1", "id": "2"}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        assert!(
            read(json!({"ssn": "1"}))
                .unwrap_err()
                .to_string()
                .contains("unknown variant")
        );
    }

    #[test]
    fn object_types_are_whole_numbers_from_1() {
        assert_eq!(check_object_type("t", " 12 ").unwrap(), "12");
        for bad in ["", "0", "01", "-1", "1.5", "companies", "12345678901"] {
            let e = check_object_type("object_type_id", bad).unwrap_err();
            assert_eq!(e.column.as_deref(), Some("object_type_id"), "{bad}");
        }
        let a = ObjectId {
            type_id: "1",
            id: "acme",
        };
        assert_ne!(
            a.key(),
            ObjectId {
                type_id: "2",
                id: "acme"
            }
            .key()
        );
    }
}
