//! Validation of the kinds beyond people's identifies and events: devices, merges, objects
//! and relationships, as their v1 and v2 bodies hold them.

use serde_json::{Map, Value};

use super::validate::{
    Invalid, ObjectKey, Op, check_attributes, optional_object, unix_seconds, v2_identifiers,
};

/// `+` and 1 to 15 digits.
pub(super) fn is_e164(text: &str) -> bool {
    text.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn missing(field: &str) -> Invalid {
    Invalid::new("required", field, format!("{field} is missing"))
}

fn wrong(field: &str, what: &str, got: &Value) -> Invalid {
    Invalid::new(
        "invalid",
        field,
        format!("{field} must be {what}, got {got}"),
    )
}

fn object_of<'a>(value: Option<&'a Value>, field: &str) -> Result<&'a Map<String, Value>, Invalid> {
    match value {
        Some(Value::Object(map)) => Ok(map),
        None | Some(Value::Null) => Err(missing(field)),
        Some(other) => Err(wrong(field, "an object", other)),
    }
}

fn text<'a>(map: &'a Map<String, Value>, key: &str, field: &str) -> Result<&'a str, Invalid> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(missing(field)),
        Some(other) => Err(wrong(field, "a non-empty string", other)),
    }
}

/// A device to add: `token_key` (`token` in v2, `id` in v1) and `platform` (ios or android)
/// required; `last_used` Unix seconds; `attributes` text.
pub(super) fn add_device(
    person: String,
    device: Option<&Value>,
    token_key: &str,
) -> Result<Op, Invalid> {
    let device = object_of(device, "device")?;
    let token = text(device, token_key, &format!("device.{token_key}"))?.to_owned();
    match text(device, "platform", "device.platform")? {
        "ios" | "android" => {}
        other => {
            return Err(Invalid::new(
                "invalid",
                "device.platform",
                format!("platform must be ios or android, got {other:?}"),
            ));
        }
    }
    if let Some(last_used) = device.get("last_used").filter(|v| !v.is_null()) {
        unix_seconds(last_used, "device.last_used")?;
    }
    if let Some(attributes) = device.get("attributes").filter(|v| !v.is_null()) {
        let attributes = object_of(Some(attributes), "device.attributes")?;
        if let Some((name, _)) = attributes.iter().find(|(_, v)| !v.is_string()) {
            return Err(Invalid::new(
                "invalid",
                format!("device.attributes.{name}"),
                format!("device attribute {name} must be a string"),
            ));
        }
    }
    let mut kept = device.clone();
    kept.remove(token_key);
    Ok(Op::AddDevice {
        person,
        token,
        device: kept,
    })
}

/// A device to remove, by its v2 `token`.
pub(super) fn delete_device(person: String, device: Option<&Value>) -> Result<Op, Invalid> {
    let device = object_of(device, "device")?;
    let token = text(device, "token", "device.token")?.to_owned();
    Ok(Op::DeleteDevice { person, token })
}

/// A merge (v2 op or v1 body): `primary` and `secondary`, each one of id, email or cio_id.
pub(super) fn merge(body: &Map<String, Value>) -> Result<Op, Invalid> {
    let side = |key: &str| {
        let value = body
            .get(key)
            .ok_or_else(|| Invalid::new("required", key, format!("a merge needs {key}")))?;
        if value.get("phone").is_some() {
            return Err(Invalid::new(
                "invalid",
                key,
                format!("{key}: people are merged by id, email or cio_id, not phone"),
            ));
        }
        v2_identifiers(value).map_err(|e| Invalid::new(e.reason, key, e.message))
    };
    let primary = side("primary")?;
    let secondary = side("secondary")?;
    if primary == secondary {
        return Err(Invalid::new(
            "invalid",
            "secondary",
            "primary and secondary are the same person".into(),
        ));
    }
    Ok(Op::Merge { primary, secondary })
}

/// An object's `identifiers`: `object_type_id` (a whole number from 1, as a string) and
/// `object_id`.
fn object_key(value: Option<&Value>, field: &str) -> Result<ObjectKey, Invalid> {
    let ids = object_of(value, field)?;
    if ids.contains_key("cio_object_id") {
        return Err(Invalid::new(
            "unsupported",
            field,
            "the sandbox names objects by object_type_id and object_id".into(),
        ));
    }
    let type_id = text(ids, "object_type_id", &format!("{field}.object_type_id"))?;
    let whole = type_id.bytes().all(|b| b.is_ascii_digit()) && !type_id.starts_with('0');
    if !whole {
        return Err(Invalid::new(
            "invalid",
            format!("{field}.object_type_id"),
            format!("object_type_id must be a whole number from 1, got {type_id:?}"),
        ));
    }
    let id = text(ids, "object_id", &format!("{field}.object_id"))?;
    super::validate::identifier(id, &format!("{field}.object_id"))?;
    Ok((type_id.to_owned(), id.to_owned()))
}

/// A v2 object operation: `identify` (attributes) or `delete`.
pub(super) fn object_op(action: &str, mut op: Map<String, Value>) -> Result<Op, Invalid> {
    let object = object_key(op.get("identifiers"), "identifiers")?;
    match action {
        "identify" => {
            let attributes = optional_object(op.remove("attributes"), "attributes")?;
            check_attributes(&attributes)?;
            Ok(Op::IdentifyObject { object, attributes })
        }
        "delete" => Ok(Op::DeleteObject(object)),
        other => Err(Invalid::new(
            "unsupported",
            "action",
            format!("the sandbox takes identify and delete for objects, not {other:?}"),
        )),
    }
}

/// A person's `add_relationships` or `delete_relationships`: a non-empty `cio_relationships`
/// list of objects, each with its `relationship_attributes`.
pub(super) fn relationships(
    action: &str,
    person: String,
    list: Option<&Value>,
) -> Result<Op, Invalid> {
    let items = match list {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(Invalid::new(
                "required",
                "cio_relationships",
                "cio_relationships must be a non-empty list".into(),
            ));
        }
    };
    let mut objects = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("cio_relationships.{i}");
        let object = object_key(item.get("identifiers"), &format!("{field}.identifiers"))?;
        let attributes = optional_object(
            item.get("relationship_attributes").cloned(),
            &format!("{field}.relationship_attributes"),
        )?;
        check_attributes(&attributes)?;
        objects.push((object, attributes));
    }
    Ok(if action == "add_relationships" {
        Op::Relate { person, objects }
    } else {
        Op::Unrelate {
            person,
            objects: objects.into_iter().map(|(o, _)| o).collect(),
        }
    })
}
