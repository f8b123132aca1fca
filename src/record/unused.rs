//! The column flags no NDJSON line used: a `--flatten`, `--rename` or `--drop` naming a key
//! that no line of any input had, told once at the end of the input with the nearest key
//! seen (a CSV header refuses such a typo before the run; NDJSON's keys vary by line).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use super::Mapper;
use super::columns::{Columns, Fate};
use super::replay::ERROR_KEY;
use crate::shell;

/// Distinct keys kept for the suggestion: enough for any export, bounded for any input.
const KEYS_KEPT: usize = 1_000;

/// Which flags some line used, and the keys seen.
#[derive(Debug, Clone)]
pub struct FlagUse {
    renames: Vec<bool>,
    drops: Vec<bool>,
    flatten: Vec<bool>,
    /// Keys as the lines write them (top-level and lifted), for `--flatten` and `--rename`.
    keys: BTreeSet<String>,
    /// The same after `--rename`, for `--drop`.
    names: BTreeSet<String>,
}

/// A mapper's part in it: its own marks (no lock per line), and the use of all inputs it
/// adds them to at the end of its input; the last input's mapper tells what none used.
pub(super) struct Watch {
    own: RefCell<FlagUse>,
    /// Every flag used: lines are no longer looked at.
    done: Cell<bool>,
    all: Arc<Mutex<FlagUse>>,
    tells: bool,
}

impl FlagUse {
    pub fn new(columns: &Columns) -> FlagUse {
        FlagUse {
            renames: vec![false; columns.renames().len()],
            drops: vec![false; columns.drops().len()],
            flatten: vec![false; columns.flatten().len()],
            keys: BTreeSet::new(),
            names: BTreeSet::new(),
        }
    }

    fn all_used(&self) -> bool {
        [&self.renames, &self.drops, &self.flatten]
            .iter()
            .all(|used| used.iter().all(|u| *u))
    }

    /// Notes the key `key` of a line (at its top, or lifted).
    fn key(&mut self, columns: &Columns, key: &str) {
        for (used, rename) in self.renames.iter_mut().zip(columns.renames()) {
            *used |= rename.from.matches(key);
        }
        let (Fate::Kept(name) | Fate::Dropped(name)) = columns.fate(key);
        for (used, drop) in self.drops.iter_mut().zip(columns.drops()) {
            *used |= drop.matches(&name);
        }
        keep(&mut self.keys, key);
        keep(&mut self.names, &name);
    }

    /// Notes every key of an NDJSON line.
    fn line(&mut self, columns: &Columns, object: &Map<String, Value>) {
        for (key, v) in object.iter().filter(|(k, _)| k.as_str() != ERROR_KEY) {
            let lifted = columns.flatten().iter().position(|f| f == key);
            match (lifted, v) {
                (Some(i), Value::Object(inner)) => {
                    self.flatten[i] = true;
                    keep(&mut self.keys, key);
                    for k in inner.keys() {
                        self.key(columns, k);
                    }
                }
                (Some(i), _) => self.flatten[i] = true,
                (None, _) => self.key(columns, key),
            }
        }
    }

    fn add(&mut self, other: &FlagUse) {
        for (mine, theirs) in [
            (&mut self.renames, &other.renames),
            (&mut self.drops, &other.drops),
            (&mut self.flatten, &other.flatten),
        ] {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m |= *t;
            }
        }
        for (mine, theirs) in [
            (&mut self.keys, &other.keys),
            (&mut self.names, &other.names),
        ] {
            let room = KEYS_KEPT.saturating_sub(mine.len());
            mine.extend(theirs.iter().take(room).cloned());
        }
    }

    /// A warning for each flag no line used, with the nearest key seen.
    fn warnings(&self, columns: &Columns) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut tell = |flag: String, exact: bool, among: &BTreeSet<String>, text: &str| {
            let what = match exact {
                true => "no line had that key",
                false => "the pattern matches no key of any line",
            };
            let near =
                nearest(text, among).map_or(String::new(), |k| format!("; did you mean {k}?"));
            warnings.push(format!("{flag}: {what}{near}"));
        };
        for (key, _) in columns
            .flatten()
            .iter()
            .zip(&self.flatten)
            .filter(|u| !*u.1)
        {
            tell(shell::flag("--flatten", key), true, &self.keys, key);
        }
        for (r, _) in columns
            .renames()
            .iter()
            .zip(&self.renames)
            .filter(|u| !*u.1)
        {
            tell(r.flag(), r.from.is_exact(), &self.keys, r.from.as_str());
        }
        for (d, _) in columns.drops().iter().zip(&self.drops).filter(|u| !*u.1) {
            let flag = shell::flag("--drop", d.as_str());
            tell(flag, d.is_exact(), &self.names, d.as_str());
        }
        warnings
    }
}

/// Adds `key` to `keys`, unless they are full.
fn keep(keys: &mut BTreeSet<String>, key: &str) {
    if keys.len() < KEYS_KEPT && !keys.contains(key) {
        keys.insert(key.to_owned());
    }
}

/// The key among `keys` most like `text`, if one is like it at all.
fn nearest<'a>(text: &str, keys: &'a BTreeSet<String>) -> Option<&'a str> {
    keys.iter()
        .map(|k| (strsim::jaro_winkler(text, k), k.as_str()))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

impl Mapper {
    /// Watches the column flags against this input's keys, adding them at its end to `all`
    /// (every input's); `tells` for the last input read, which tells what no line used. A
    /// CSV header is noted now.
    pub fn watch_flags(&mut self, all: Arc<Mutex<FlagUse>>, tells: bool) {
        let mut own = FlagUse::new(&self.columns);
        if let Some(header) = self.header() {
            for key in header {
                own.key(&self.columns, key);
            }
        }
        self.watch = Some(Watch {
            done: Cell::new(own.all_used()),
            own: RefCell::new(own),
            all,
            tells,
        });
    }

    /// Notes an NDJSON line's keys, until every flag has been used.
    pub(super) fn watch_line(&self, object: &Map<String, Value>) {
        if let Some(watch) = self.watch.as_ref().filter(|w| !w.done.get()) {
            let mut own = watch.own.borrow_mut();
            own.line(&self.columns, object);
            watch.done.set(own.all_used());
        }
    }

    /// At the end of the input: the warnings about flags no line of any input used, told by
    /// the last input's mapper (once).
    pub fn unused_flags(&mut self) -> Vec<String> {
        let Some(watch) = self.watch.take() else {
            return Vec::new();
        };
        let mut all = watch.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.add(&watch.own.into_inner());
        match watch.tells {
            true => all.warnings(&self.columns),
            false => Vec::new(),
        }
    }
}
