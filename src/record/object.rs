//! An NDJSON row as the checks read it: the object as read, or the view of it that
//! `--rename`, `--drop` and `--flatten` make, which borrows the row's values rather than
//! copying every one of every row.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A row as the column flags make it: each key as renamed, to its value in the row as read.
/// Ordered as a [`Map`] is, so that its keys are checked in the order the map's would be.
pub(super) type Reshaped<'a> = BTreeMap<Cow<'a, str>, &'a Value>;

/// The keys and values of an NDJSON row.
pub(super) trait Object {
    fn value(&self, key: &str) -> Option<&Value>;
    fn entries(&self) -> impl Iterator<Item = (&str, &Value)>;
}

impl Object for Map<String, Value> {
    #[inline(always)]
    fn value(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }

    #[inline(always)]
    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl Object for Reshaped<'_> {
    #[inline(always)]
    fn value(&self, key: &str) -> Option<&Value> {
        self.get(key).copied()
    }

    #[inline(always)]
    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(k, v)| (k.as_ref(), *v))
    }
}
