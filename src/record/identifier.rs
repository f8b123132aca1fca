//! Identifiers: how a person is addressed (kind and value), what each kind's value must be,
//! and how one reads and prints as v2 `identifiers` (`{"id": "42"}`).
//!
//! A kind is one [`IdKind`] variant: its name is its column, its JSON key and its `--id-type`
//! value, and the lists messages give are made from the variants.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Unexpected, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Invalid;
use super::value::thousands;
use crate::track::MAX_IDENTIFIER_BYTES;

/// Which identifier a column holds. Declared in the order identifier columns are looked for
/// when `--id-column` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Your own id for the person.
    Id,
    /// The person's email address.
    Email,
    /// Customer.io's own id for the person.
    #[value(name = "cio_id")]
    CioId,
    /// The person's phone number, E.164 (a + and up to 15 digits); only where the workspace
    /// has phone identifiers on. Never looked for by itself: `--id-column phone` picks it.
    Phone,
}

impl IdKind {
    /// Every kind.
    pub(super) fn all() -> &'static [IdKind] {
        <IdKind as clap::ValueEnum>::value_variants()
    }

    /// The kinds whose column is the identifier without `--id-column`, in the order they are
    /// looked for: a phone number only works where a workspace turned it on.
    pub(super) fn detected() -> &'static [IdKind] {
        &[IdKind::Id, IdKind::Email, IdKind::CioId]
    }

    /// The column, the JSON key and the `--id-type` value (a test holds the three to it).
    pub(super) fn name(self) -> &'static str {
        match self {
            IdKind::Id => "id",
            IdKind::Email => "email",
            IdKind::CioId => "cio_id",
            IdKind::Phone => "phone",
        }
    }

    /// The detected kinds' names for a message, `last` before the last one: "id, email or
    /// cio_id".
    pub(super) fn listed(last: &str) -> String {
        let names: Vec<&str> = IdKind::detected().iter().map(|k| k.name()).collect();
        match names.split_last() {
            Some((end, rest)) if !rest.is_empty() => format!("{}{last}{end}", rest.join(", ")),
            _ => names.concat(),
        }
    }

    /// A custom `--id-column` holds the kind it is named like (in any case), else an `id`.
    pub(super) fn of_column(name: &str) -> IdKind {
        IdKind::all()
            .iter()
            .copied()
            .find(|k| name.eq_ignore_ascii_case(k.name()))
            .unwrap_or(IdKind::Id)
    }

    /// The identifier as sent: trimmed, and a `cio_id` without its `cio_` prefix (v2 wants the
    /// bare id); refused, naming `column`, when empty or too long.
    pub(super) fn cut<'a>(self, column: &str, text: &'a str) -> Result<&'a str, Invalid> {
        let mut text = text.trim();
        if self == IdKind::CioId {
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
        if self != IdKind::CioId && (text == "." || text == "..") {
            return Err(Invalid::at(
                column,
                format!(
                    "column {column:?} is {text:?}, which cannot identify a person: Customer.io's \
                     API names people by identifier in URL paths, where . and .. are path steps"
                ),
            ));
        }
        if self == IdKind::Phone && !is_e164(text) {
            return Err(Invalid::at(
                column,
                format!(
                    "column {column:?} is {text:?}, which is not a phone number in E.164 form \
                     (a + and up to 15 digits, e.g. +14155552671)"
                ),
            ));
        }
        if text.len() > MAX_IDENTIFIER_BYTES {
            return Err(Invalid::at(
                column,
                format!(
                    "column {column:?} is {} bytes; Customer.io allows at most \
                     {MAX_IDENTIFIER_BYTES} for an identifier",
                    thousands(text.len())
                ),
            ));
        }
        Ok(text)
    }
}

/// `+` and 1 to 15 digits.
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// How a person is addressed: an [`Operation`](super::Operation) owns its value; a row being
/// checked borrows it (`Identifier<Cow<str>>`), so a dry run copies nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier<S = String> {
    pub kind: IdKind,
    pub value: S,
}

impl<S: AsRef<str>> Identifier<S> {
    /// Whether a v1 path names this person. Customer.io reads a path's kind from the value
    /// (`cio_…` a cio_id, one with an `@` an email, else an id), so an id with an `@`, an
    /// email without one, or either starting `cio_`, would name someone else; and no path
    /// takes a phone number.
    pub(super) fn in_path(&self) -> bool {
        let value = self.value.as_ref();
        let cio = value.starts_with("cio_");
        match self.kind {
            IdKind::Id => !cio && !value.contains('@'),
            IdKind::Email => !cio && value.contains('@'),
            IdKind::CioId => true,
            IdKind::Phone => false,
        }
    }

    /// The identifier as the v1 API takes it in a path: `cio_` marks a cio_id.
    pub fn path_value(&self) -> Cow<'_, str> {
        let value = self.value.as_ref();
        match self.kind {
            IdKind::CioId => Cow::Owned(format!("cio_{value}")),
            IdKind::Id | IdKind::Email | IdKind::Phone => Cow::Borrowed(value),
        }
    }
}

impl Identifier {
    /// The same identifier, borrowed.
    pub(super) fn borrowed(&self) -> Identifier<&str> {
        Identifier {
            kind: self.kind,
            value: &self.value,
        }
    }
}

impl Identifier<Cow<'_, str>> {
    pub(super) fn into_owned(self) -> Identifier {
        Identifier {
            kind: self.kind,
            value: self.value.into_owned(),
        }
    }
}

impl Serialize for Identifier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.name(), &self.value)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Identifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Identifier, D::Error> {
        deserializer.deserialize_map(OneKey)
    }
}

/// Reads `{"kind": "value"}`, one key only (serde's wording for an enum, which this was).
struct OneKey;

impl<'de> Visitor<'de> for OneKey {
    type Value = Identifier;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("map with a single key")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Identifier, M::Error> {
        let Some((kind, value)) = map.next_entry()? else {
            return Err(de::Error::invalid_value(Unexpected::Map, &self));
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_value(Unexpected::Map, &self));
        }
        Ok(Identifier { kind, value })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, MapSpec};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kind_has_one_name_for_columns_json_and_the_flag() {
        for &kind in IdKind::all() {
            let flag = clap::ValueEnum::to_possible_value(&kind).unwrap();
            assert_eq!(flag.get_name(), kind.name());
            let read: IdKind = serde_json::from_value(json!(kind.name())).unwrap();
            assert_eq!(read, kind);
            assert_eq!(IdKind::of_column(&kind.name().to_uppercase()), kind);
        }
        assert_eq!(IdKind::of_column("user_id"), IdKind::Id);
        assert_eq!(IdKind::listed(" or "), "id, email or cio_id");
        assert_eq!(IdKind::listed(", "), "id, email, cio_id");
    }

    #[test]
    fn reads_and_prints_as_one_key() {
        let id = Identifier {
            kind: IdKind::CioId,
            value: "7".to_owned(),
        };
        assert_eq!(serde_json::to_value(&id).unwrap(), json!({"cio_id": "7"}));
        assert_eq!(
            serde_json::from_value::<Identifier>(json!({"cio_id": "7"})).unwrap(),
            id
        );
        for bad in [json!({}), json!({"id": "1", "email": "a@x.io"})] {
            let e = serde_json::from_value::<Identifier>(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                "invalid value: map, expected map with a single key"
            );
        }
        let e = serde_json::from_value::<Identifier>(json!({"ssn": "1"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown variant `ssn`, expected one of `id`, `email`, `cio_id`, `phone`"
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
        assert_eq!(person(&op), Some(&id(&at)));

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
        assert_eq!(person(&op), Some(&cio_id("7")));
    }

    #[test]
    fn a_phone_identifier_is_chosen_by_name_and_must_be_e164() {
        // Never by itself: a workspace may not take phone identifiers.
        let e = csv_error(&spec(Action::Identify), &["phone", "plan"]);
        assert!(e.starts_with("no identifier column"), "{e}");
        let s = MapSpec {
            id_column: Some("phone".into()),
            ..spec(Action::Identify)
        };
        let mut m = csv_mapper(&s, &["phone", "plan"]);
        let op = ok(&mut m, &row(&[" +14155552671 ", "pro"]));
        assert_eq!(person(&op), Some(&ident(IdKind::Phone, "+14155552671")));
        for bad in ["14155552671", "+1 415 555", "+", "+1234567890123456", "+1a"] {
            let e = err(&mut m, &row(&[bad, "pro"]));
            assert_eq!(e.column.as_deref(), Some("phone"), "{bad}");
            assert!(e.message.contains("E.164"), "{}", e.message);
        }
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
}
