//! The rules of the kinds that tie a person to something or someone else, or are about an
//! object: devices, merges, objects and relationships. Called from `rules`, which holds the
//! rules of every action; kept apart so each file has one job.

use std::borrow::Cow;

use super::entity::{ObjectId, Platform, check_object_type, check_token};
use super::rules::{Checked, Fields, Source, cut, person};
use super::tally::Attributes;
use super::{Action, IdKind, Identifier, Invalid};

/// `add_device` and `delete_device`: the person and the device's token; an added device also
/// needs its platform, and its attributes are text.
#[inline(always)]
pub(super) fn device<'a, A: Attributes>(
    action: Action,
    fields: Fields<'a, A>,
    source: &Source<'a>,
) -> Result<Checked<'a, A>, Invalid> {
    let tied = fields.tied.map(|t| *t).unwrap_or_default();
    let person = person(fields.person, action, source)?;
    let Some((column, token)) = tied.device else {
        return Err(source.lacks(
            "no device: the row needs a non-empty device_id (the device's token)",
            "no device: the operation has no device token",
        ));
    };
    let token = check_token(column, token)?;
    if action == Action::DeleteDevice {
        return Ok(Checked::DeleteDevice { person, token });
    }
    let platform = match tied.platform.filter(|(_, p)| !p.trim().is_empty()) {
        Some((column, text)) => Platform::parse(column, text)?,
        None => {
            return Err(source.lacks(
                "no platform: the row needs a platform (ios or android)",
                "no platform: the device has no platform (ios or android)",
            ));
        }
    };
    let tally = fields.attributes.tally();
    tally.check_person()?;
    tally.check_text()?;
    Ok(Checked::AddDevice {
        person,
        token,
        platform,
        last_used: source.timestamp("last_used", tied.last_used)?,
        attributes: fields.attributes,
    })
}

/// `merge`: two people, neither by a phone number (Customer.io merges by id, email or
/// cio_id), and not the same one.
#[inline(always)]
pub(super) fn merge<'a, A: Attributes>(
    fields: Fields<'a, A>,
    source: &Source<'a>,
) -> Result<Checked<'a, A>, Invalid> {
    let side = |found: Option<(&'a str, Identifier<Cow<'a, str>>)>, name: &str| {
        let Some(found) = found.filter(|(_, p)| !p.value.trim().is_empty()) else {
            return Err(source.lacks(
                &format!(
                    "no {name} person: the row needs a non-empty {name}_id, {name}_email or \
                     {name}_cio_id"
                ),
                &format!("no {name} person: the operation has no {name}"),
            ));
        };
        if found.1.kind == IdKind::Phone {
            return Err(Invalid::at(
                found.0,
                format!(
                    "column {:?}: Customer.io merges people by id, email or cio_id, not by \
                     phone",
                    found.0
                ),
            ));
        }
        person(Some(found), Action::Merge, source)
    };
    let tied = fields.tied.map(|t| *t).unwrap_or_default();
    let primary = side(tied.primary, "primary")?;
    let secondary = side(tied.secondary, "secondary")?;
    if primary == secondary {
        return Err(Invalid::row(format!(
            "the primary and the secondary are both {} {:?}: a person cannot be merged into \
             themselves",
            primary.kind.name(),
            primary.value
        )));
    }
    Ok(Checked::Merge { primary, secondary })
}

/// An object's `identify` (its attributes held to a person's limits) or `delete`.
#[inline(always)]
pub(super) fn object<'a, A: Attributes>(
    action: Action,
    fields: Fields<'a, A>,
    source: &Source<'a>,
) -> Result<Checked<'a, A>, Invalid> {
    let tied = fields.tied.map(|t| *t).unwrap_or_default();
    let object = object_id(tied.object, tied.object_type, source)?;
    let keep = match action {
        Action::Identify => true,
        Action::Delete => false,
        other => {
            return Err(Invalid::row(format!(
                "an object takes identify or delete, not {}",
                other.flag_name()
            )));
        }
    };
    let attributes = kept(keep, fields.attributes)?;
    Ok(Checked::Object { object, attributes })
}

/// `add_relationships` (the relationship's attributes held to a person's limits) and
/// `delete_relationships`: a person and an object.
#[inline(always)]
pub(super) fn relationship<'a, A: Attributes>(
    action: Action,
    fields: Fields<'a, A>,
    source: &Source<'a>,
) -> Result<Checked<'a, A>, Invalid> {
    let tied = fields.tied.map(|t| *t).unwrap_or_default();
    let person = person(fields.person, action, source)?;
    let object = object_id(tied.object, tied.object_type, source)?;
    let attributes = kept(action == Action::AddRelationships, fields.attributes)?;
    Ok(Checked::Relationship {
        person,
        object,
        attributes,
    })
}

/// The attributes an operation sends (held to a person's limits), or none when it sends
/// none (a delete).
#[inline(always)]
fn kept<A: Attributes>(keep: bool, attributes: A) -> Result<Option<A>, Invalid> {
    if !keep {
        return Ok(None);
    }
    attributes.tally().check_person()?;
    Ok(Some(attributes))
}

/// An object's id and type: the type from its column, else `--object-type`.
#[inline(always)]
fn object_id<'a>(
    id: Option<(&'a str, Cow<'a, str>)>,
    type_id: Option<(&'a str, Cow<'a, str>)>,
    source: &Source<'a>,
) -> Result<ObjectId<Cow<'a, str>>, Invalid> {
    let Some((column, id)) = id.filter(|(_, id)| !id.trim().is_empty()) else {
        return Err(source.lacks(
            "no object: the row needs a non-empty object_id (or --id-column NAME)",
            "no object: the operation has no object_id",
        ));
    };
    let id = cut(id, |text| IdKind::Id.cut(column, text))?;
    let type_id = match type_id.filter(|(_, t)| !t.trim().is_empty()) {
        Some((column, text)) => cut(text, |text| check_object_type(column, text))?,
        None => match source.object_type() {
            Some(flag) => Cow::Borrowed(flag),
            None => {
                return Err(source.lacks(
                    "no object type: the row's object_type_id is empty; pass --object-type N",
                    "no object type: the operation has no object_type_id",
                ));
            }
        },
    };
    Ok(ObjectId { type_id, id })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, Device, Entity, MapSpec, ObjectId, Operation, Platform};
    use crate::source::RowData;
    use serde_json::{Value, json};

    fn with(action: Action, entity: Entity, object_type: Option<&str>) -> MapSpec {
        MapSpec {
            entity,
            object_type: object_type.map(str::to_owned),
            ..spec(action)
        }
    }

    fn acme(type_id: &str) -> ObjectId {
        ObjectId {
            type_id: type_id.into(),
            id: "acme".into(),
        }
    }

    /// `op` written as a failures-file line and read back by a mapper of another action.
    fn replayed(op: &Operation) -> Operation {
        let Value::Object(mut line) = serde_json::to_value(op).unwrap() else {
            panic!("not an object")
        };
        line.insert("_error".into(), json!({"stage": "send"}));
        ok(
            &mut json_mapper(&spec(Action::Identify)),
            &RowData::Json(line),
        )
    }

    #[test]
    fn devices_take_a_token_a_platform_and_text_attributes() {
        let columns = ["id", "device_id", "platform", "last_used", "app_version"];
        let mut m = csv_mapper(&spec(Action::AddDevice), &columns);
        let op = ok(
            &mut m,
            &row(&["7", " tok-1 ", "iOS", "2024-03-05T10:00:00Z", "5.2"]),
        );
        let device = Device {
            token: "tok-1".into(),
            platform: Platform::Ios,
            last_used: Some(1709632800),
            attributes: attrs(json!({"app_version": "5.2"})),
        };
        let want = Operation::AddDevice {
            person: id("7"),
            device,
        };
        assert_eq!(op, want);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"type": "person", "action": "add_device", "identifiers": {"id": "7"},
                   "device": {"token": "tok-1", "platform": "ios", "last_used": 1709632800,
                              "attributes": {"app_version": "5.2"}}})
        );
        assert_eq!(replayed(&op), op);
        let e = err(&mut m, &row(&["7", "tok", "windows", "", ""]));
        assert_eq!(e.column.as_deref(), Some("platform"));
        let e = err(&mut m, &row(&["7", "", "ios", "", ""]));
        assert_eq!(e.column.as_deref(), Some("device_id"));
        let e = csv_error(&spec(Action::AddDevice), &["id", "device_id"]);
        assert!(e.starts_with("no platform column"), "{e}");
        // NDJSON attributes must be text.
        let mut j = json_mapper(&spec(Action::AddDevice));
        let e = err(
            &mut j,
            &obj(json!({"id": "7", "device_id": "t", "platform": "android", "n": 1})),
        );
        assert_eq!(e.column.as_deref(), Some("n"));

        let mut m = csv_mapper(
            &spec(Action::DeleteDevice),
            &["id", "device_id", "platform"],
        );
        let op = ok(&mut m, &row(&["7", "tok-1", "whatever"]));
        assert_eq!(
            op,
            Operation::DeleteDevice {
                person: id("7"),
                token: "tok-1".into()
            }
        );
        assert_eq!(replayed(&op), op);
    }

    #[test]
    fn a_merge_takes_a_primary_and_a_secondary_by_column_name() {
        let columns = ["primary_email", "primary_id", "secondary_cio_id", "note"];
        let mut m = csv_mapper(&spec(Action::Merge), &columns);
        let op = ok(&mut m, &row(&["", "7", "cio_abc", "x"]));
        let want = Operation::Merge {
            primary: id("7"),
            secondary: cio_id("abc"),
        };
        assert_eq!(op, want);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"type": "person", "action": "merge", "primary": {"id": "7"},
                   "secondary": {"cio_id": "abc"}})
        );
        assert_eq!(replayed(&op), op);
        let e = err(&mut m, &row(&["", "", "abc", ""]));
        assert!(e.message.starts_with("no primary person"), "{}", e.message);
        let mut same = csv_mapper(&spec(Action::Merge), &["primary_id", "secondary_id"]);
        let e = err(&mut same, &row(&["7", "7"]));
        assert!(
            e.message.contains("cannot be merged into themselves"),
            "{}",
            e.message
        );
        let e = csv_error(&spec(Action::Merge), &["primary_id", "id"]);
        assert!(e.starts_with("no secondary column"), "{e}");
        let mut phone = csv_mapper(&spec(Action::Merge), &["primary_phone", "secondary_id"]);
        let e = err(&mut phone, &row(&["+14155552671", "7"]));
        assert_eq!(e.column.as_deref(), Some("primary_phone"));
    }

    #[test]
    fn objects_take_an_id_and_a_type_from_the_column_or_the_flag() {
        let s = with(Action::Identify, Entity::Object, Some("1"));
        let mut m = csv_mapper(&s, &["object_id", "object_type_id", "name", "created_at"]);
        let op = ok(&mut m, &row(&["acme", "", "Acme", "2024-03-05"]));
        let want = Operation::IdentifyObject {
            object: acme("1"),
            attributes: attrs(json!({"name": "Acme", "created_at": 1709596800})),
        };
        assert_eq!(op, want);
        assert_eq!(
            serde_json::to_value(&op).unwrap()["identifiers"],
            json!({"object_type_id": "1", "object_id": "acme"})
        );
        assert_eq!(replayed(&op), op);
        let op = ok(&mut m, &row(&["acme", "2", "Acme", ""]));
        assert_eq!(op.order(), Operation::DeleteObject(acme("2")).order());
        let e = err(&mut m, &row(&["acme", "0", "", ""]));
        assert_eq!(e.column.as_deref(), Some("object_type_id"));
        let e = csv_error(
            &with(Action::Identify, Entity::Object, None),
            &["object_id"],
        );
        assert!(e.starts_with("no object type"), "{e}");
        let e = csv_error(&s, &["id", "name"]);
        assert!(e.starts_with("no object id column"), "{e}");

        let mut m = csv_mapper(
            &with(Action::Delete, Entity::Object, Some("3")),
            &["object_id", "x"],
        );
        let op = ok(&mut m, &row(&["acme", "ignored"]));
        assert_eq!(op, Operation::DeleteObject(acme("3")));
        assert_eq!(replayed(&op), op);
    }

    #[test]
    fn relationships_tie_a_person_to_an_object() {
        let s = with(Action::AddRelationships, Entity::Person, Some("1"));
        let mut m = csv_mapper(&s, &["email", "object_id", "role"]);
        let op = ok(&mut m, &row(&["a@x.io", "acme", "admin"]));
        let want = Operation::Relate {
            person: email("a@x.io"),
            object: acme("1"),
            attributes: attrs(json!({"role": "admin"})),
        };
        assert_eq!(op, want);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"type": "person", "action": "add_relationships",
                   "identifiers": {"email": "a@x.io"},
                   "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"},
                                          "relationship_attributes": {"role": "admin"}}]})
        );
        assert_eq!(replayed(&op), op);
        let s = with(Action::DeleteRelationships, Entity::Person, Some("1"));
        let mut m = csv_mapper(&s, &["email", "object_id", "role"]);
        let op = ok(&mut m, &row(&["a@x.io", "acme", "admin"]));
        assert_eq!(
            op,
            Operation::Unrelate {
                person: email("a@x.io"),
                object: acme("1")
            }
        );
        assert_eq!(replayed(&op), op);
        let e = csv_error(&s, &["email", "role"]);
        assert!(e.starts_with("no object column"), "{e}");
    }

    #[test]
    fn only_existing_sends_the_update_switch_without_counting_it() {
        let s = MapSpec {
            only_existing: true,
            ..spec(Action::Identify)
        };
        let names: Vec<String> = (0..300).map(|i| format!("a{i}")).collect();
        let mut columns = vec!["id"];
        columns.extend(names.iter().map(String::as_str));
        let mut m = csv_mapper(&s, &columns);
        let op = ok(&mut m, &row(&["1"; 301]));
        let attributes = attributes(&op).unwrap();
        assert_eq!(attributes.len(), 301);
        assert_eq!(attributes["_update"], json!(true));
        // Read back, the switch stays a switch.
        assert_eq!(replayed(&op), op);
    }
}
