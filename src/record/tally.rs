//! Attributes as a record's columns are put: collected into the operation's map, or only
//! tallied for the limits (a dry run), and the person-attribute limits they are held to.

use serde_json::{Map, Value};

use super::Invalid;
use super::columns::type_flag;
use super::value::{Cell, quote, str_bound, thousands};
use crate::track::{MAX_ATTRIBUTE_NAME_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES};

/// Where a row's attributes go as its columns are converted: into the operation's map
/// ([`Collect`], to send), or only into the [`Tally`] the limits need (a dry run). Both run the
/// same per-column and per-row code, so they reach the same verdict.
pub(super) trait Attributes: Default {
    fn put(&mut self, column: &str, v: Cell<'_>);
    fn tally(&self) -> &Tally;
    /// Makes the tally name the first value that is not text (a device's attributes must
    /// be); other rows never pay for the name.
    fn only_text(&mut self);
}

/// An operation's attribute map being built, and its tally.
#[derive(Default)]
pub(super) struct Collect {
    pub map: Map<String, Value>,
    tally: Tally,
}

/// The key that makes an identify update only a person who exists (`--only-existing`): a
/// switch among the attributes, not one of them.
pub(super) const UPDATE_ONLY: &str = "_update";

impl Collect {
    /// Attributes that come whole (a failures-file line's).
    pub fn of(map: Map<String, Value>) -> Collect {
        // Which kind the line is is not known here: it is told the first value not text.
        let mut tally = Tally::default();
        tally.only_text();
        for (name, v) in map.iter().filter(|(name, _)| *name != UPDATE_ONLY) {
            tally.add(name, &Cell::Json(v));
        }
        Collect { map, tally }
    }
}

impl Attributes for Collect {
    fn put(&mut self, column: &str, v: Cell<'_>) {
        self.tally.add(column, &v);
        self.map.insert(column.to_owned(), v.into_value());
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn only_text(&mut self) {
        self.tally.only_text();
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

    fn only_text(&mut self) {
        self.only_text = true;
    }
}

/// What the limits need to know of a row's attributes, gathered as each one is put.
#[derive(Default)]
pub(super) struct Tally {
    count: usize,
    /// At least the attributes' length as a JSON object, less its braces.
    json_bound: usize,
    /// The person-attribute limit broken by the attribute whose name sorts first: the
    /// attributes are checked as a map, in name order. Boxed: rare, and every row's tally
    /// is moved about with the row's fields.
    broken: Option<Box<Invalid>>,
    /// The first attribute whose value is not text, if one is and [`Attributes::only_text`]
    /// asked.
    not_text: Option<String>,
    only_text: bool,
    /// Whether a value is over Customer.io's 1,000 bytes (which `--oversize` may resize).
    oversized: bool,
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
        let text = match v {
            Cell::Text(_) => true,
            Cell::Json(v) => v.is_string(),
            Cell::Owned(v) => v.is_string(),
        };
        if !text && self.only_text && self.not_text.is_none() {
            self.not_text = Some(name.to_owned());
        }
        if let Err(e) = check_attribute(name, v, bound) {
            self.oversized |= v.size() > MAX_ATTRIBUTE_VALUE_BYTES;
            if self
                .broken
                .as_ref()
                .is_none_or(|b| b.column.as_deref().is_some_and(|c| name < c))
            {
                self.broken = Some(Box::new(e));
            }
        }
    }

    /// Whether a value is over Customer.io's 1,000 bytes.
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// A person's attributes: name and value sizes, and how many.
    pub fn check_person(&self) -> Result<(), Invalid> {
        if let Some(broken) = &self.broken {
            return Err((**broken).clone());
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

    /// A device's attributes: Customer.io takes text only.
    pub fn check_text(&self) -> Result<(), Invalid> {
        match &self.not_text {
            None => Ok(()),
            Some(name) => Err(Invalid::at(
                name,
                format!(
                    "column {name:?}: a device's attributes are text; write the value as a \
                     string (and leave out {})",
                    type_flag(name, "...")
                ),
            )),
        }
    }

    /// At least the attributes' length as a JSON object.
    pub fn object_bound(&self) -> usize {
        self.json_bound + 2
    }
}

pub(super) fn name_too_long(name: &str) -> String {
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
                "column {name:?} is {} bytes; Customer.io allows at most {} (--oversize \
                 truncate cuts such values to fit, --oversize drop leaves them out)",
                thousands(v.size()),
                thousands(MAX_ATTRIBUTE_VALUE_BYTES)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Action;
    use super::super::testkit::*;
    use crate::source::RowData;
    use serde_json::Map;
    use serde_json::json;

    #[test]
    fn attribute_value_at_most_1000_bytes() {
        let mut m = csv_mapper(&spec(Action::Identify), &["id", "bio"]);
        ok(&mut m, &row(&["1", &"x".repeat(1000)]));
        let e = err(&mut m, &row(&["1", &"x".repeat(1001)]));
        assert_eq!(e.column.as_deref(), Some("bio"));
        assert_eq!(
            e.message,
            "column \"bio\" is 1,001 bytes; Customer.io allows at most 1,000 (--oversize \
             truncate cuts such values to fit, --oversize drop leaves them out)"
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
}
