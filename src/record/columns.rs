//! The columns as the user means them: `--rename OLD=NEW`, `--drop COL` and `--flatten KEY`,
//! and the `*` patterns that name columns in them and in `--type`.
//!
//! A CSV header is resolved once into each column's name and fate (see `plan`); an NDJSON
//! row is reshaped per row, and only when one of these flags was given.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::object::Reshaped;
use super::replay::ERROR_KEY;
use super::value::{ValueType, json_kind};
use super::{Invalid, Mapper};
use crate::shell;
use crate::source::RowData;

/// A column name, or a pattern of them where `*` stands for any text (`*_TIME`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    /// The text between the stars; one part when there is no star.
    parts: Vec<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        Pattern {
            text: text.to_owned(),
            parts: text.split('*').map(str::to_owned).collect(),
        }
    }

    /// As the flag gave it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_exact(&self) -> bool {
        self.parts.len() == 1
    }

    fn stars(&self) -> usize {
        self.parts.len() - 1
    }

    pub fn matches(&self, name: &str) -> bool {
        self.captures(name).is_some()
    }

    /// What each `*` stood for in `name`, if `name` matches. The text between two stars is
    /// found leftmost: any match will do, and leftmost always finds one when there is one.
    fn captures<'a>(&self, name: &'a str) -> Option<Vec<&'a str>> {
        let (first, rest) = self.parts.split_first()?;
        let Some((last, middle)) = rest.split_last() else {
            return (name == first).then(Vec::new);
        };
        // Prefix and suffix taken apart, so they cannot overlap (`ab*ba` is not `aba`).
        let mut at = name
            .strip_prefix(first.as_str())?
            .strip_suffix(last.as_str())?;
        let mut captures = Vec::with_capacity(self.stars());
        for part in middle {
            let found = at.find(part.as_str())?;
            captures.push(&at[..found]);
            at = &at[found + part.len()..];
        }
        captures.push(at);
        Some(captures)
    }
}

/// `--rename OLD=NEW`: OLD may be a pattern; a `*` in NEW is what the `*` of OLD at its
/// place stood for (`--rename 'Custom *=*'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    pub from: Pattern,
    pub to: String,
}

impl Rename {
    /// The flag as the user wrote it, quoted when a shell would split it.
    pub fn flag(&self) -> String {
        shell::flag("--rename", &format!("{}={}", self.from.as_str(), self.to))
    }

    fn apply(&self, name: &str) -> Option<String> {
        let captures = self.from.captures(name)?;
        if !self.to.contains('*') {
            return Some(self.to.clone());
        }
        let mut out = String::new();
        for (i, part) in self.to.split('*').enumerate() {
            if i > 0 {
                out.push_str(captures.get(i - 1).copied().unwrap_or_default());
            }
            out.push_str(part);
        }
        Some(out)
    }
}

/// The column flags, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    renames: Vec<Rename>,
    drops: Vec<Pattern>,
    flatten: Vec<String>,
}

/// What becomes of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate<'a> {
    /// Read under this name: its own, or a `--rename`'s.
    Kept(Cow<'a, str>),
    /// `--drop`: never sent. The name is the one `--drop` matched: its new one, if renamed.
    Dropped(Cow<'a, str>),
}

impl Columns {
    /// Checks the flags: a NEW name that is empty, or holds more stars than OLD, and two
    /// exact renames to one name are refused, each message naming the flag.
    pub fn new(
        renames: &[(String, String)],
        drops: &[String],
        flatten: &[String],
    ) -> Result<Columns, String> {
        let mut checked: Vec<Rename> = Vec::new();
        for (from, to) in renames {
            let rename = Rename {
                from: Pattern::new(from.trim()),
                to: to.trim().to_owned(),
            };
            let stars = rename.to.matches('*').count();
            if rename.from.as_str().is_empty() || rename.to.is_empty() {
                return Err(format!(
                    "{}: both sides must name a column (--rename OLD=NEW)",
                    rename.flag()
                ));
            }
            if stars > 0 && stars != rename.from.stars() {
                return Err(format!(
                    "{}: NEW may hold a * only where OLD has one, as many as OLD has",
                    rename.flag()
                ));
            }
            // The later one would be silently ignored (the first that applies wins).
            if let Some(twin) = checked.iter().find(|r| r.from == rename.from) {
                return Err(format!(
                    "{} and {} both rename {:?}; keep one",
                    twin.flag(),
                    rename.flag(),
                    rename.from.as_str()
                ));
            }
            if let Some(twin) = checked
                .iter()
                .find(|r| r.to == rename.to && r.from.is_exact() && rename.from.is_exact())
            {
                return Err(format!(
                    "{} and {} both name a column {:?}; keep one",
                    twin.flag(),
                    rename.flag(),
                    rename.to
                ));
            }
            checked.push(rename);
        }
        Ok(Columns {
            renames: checked,
            drops: drops.iter().map(|d| Pattern::new(d.trim())).collect(),
            flatten: flatten.iter().map(|f| f.trim().to_owned()).collect(),
        })
    }

    /// No flag given: every column is read as it is named.
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.drops.is_empty() && self.flatten.is_empty()
    }

    pub fn renames(&self) -> &[Rename] {
        &self.renames
    }

    pub fn drops(&self) -> &[Pattern] {
        &self.drops
    }

    pub fn flatten(&self) -> &[String] {
        &self.flatten
    }

    /// The rename that applies to `name`: an exact one first, else the first pattern given.
    pub fn rename_of(&self, name: &str) -> Option<(&Rename, String)> {
        let exact = self.renames.iter().filter(|r| r.from.is_exact());
        let patterns = self.renames.iter().filter(|r| !r.from.is_exact());
        exact
            .chain(patterns)
            .find_map(|r| Some((r, r.apply(name)?)))
    }

    /// The rename that takes the name `name` away (to another), if one does.
    pub fn renamed_away(&self, name: &str) -> Option<(&Rename, String)> {
        self.rename_of(name).filter(|(_, to)| to != name)
    }

    /// The exact rename whose NEW is `name`: a flag naming `name` may mean that column.
    pub fn renamed_onto(&self, name: &str) -> Option<&Rename> {
        self.renames.iter().find(|r| r.to == name)
    }

    /// Why a flag other than `--rename` that names `name` finds no column, when `name` is
    /// one the header has but a rename takes away (every such flag names the new name),
    /// and that new name.
    pub fn by_new_name(&self, name: &str) -> Option<(String, String)> {
        let (rename, to) = self.renamed_away(name)?;
        let why = format!(
            "{} renames {name:?} to {to:?}, and every flag but --rename names a column by its \
             new name",
            rename.flag()
        );
        Some((why, to))
    }

    /// What becomes of column `name`: renamed first, then dropped if `--drop` names the
    /// new name (every flag but `--rename` names a column by its new name).
    pub fn fate<'a>(&self, name: &'a str) -> Fate<'a> {
        let name = match self.rename_of(name) {
            Some((_, to)) => Cow::Owned(to),
            None => Cow::Borrowed(name),
        };
        if self.drops.iter().any(|d| d.matches(&name)) {
            Fate::Dropped(name)
        } else {
            Fate::Kept(name)
        }
    }

    /// The words of a command line that give these flags again (for a replay or a resume).
    pub fn flags(&self) -> Vec<String> {
        let mut args = Vec::new();
        for r in &self.renames {
            args.extend([
                "--rename".to_owned(),
                format!("{}={}", r.from.as_str(), r.to),
            ]);
        }
        for d in &self.drops {
            args.extend(["--drop".to_owned(), d.as_str().to_owned()]);
        }
        for f in &self.flatten {
            args.extend(["--flatten".to_owned(), f.clone()]);
        }
        args
    }
}

/// The flag `--type COLUMN=TYPE` as a command line gives it: `--type 'Signup Date=bool'`.
pub fn type_flag(column: &str, ty: impl std::fmt::Display) -> String {
    shell::flag("--type", &format!("{column}={ty}"))
}

/// `--type COLUMN=TYPE` given twice for one column with two types: the later one would be
/// silently ignored, so both are refused, naming each.
pub fn check_type_flags(types: &[(String, ValueType)]) -> Result<(), String> {
    for (i, (column, ty)) in types.iter().enumerate() {
        if let Some((_, other)) = types[..i].iter().find(|(c, t)| c == column && t != ty) {
            return Err(format!(
                "{} and {} both give {column:?} a type; keep one",
                type_flag(column, other),
                type_flag(column, ty)
            ));
        }
    }
    Ok(())
}

impl Mapper {
    /// An NDJSON row as the column flags make it, or None without any: `--flatten`ed
    /// objects' keys lifted to the top (their values as they are), then each key renamed,
    /// or dropped. Two keys that end up with one name make the row invalid, naming both.
    pub(super) fn reshaped<'a>(
        &self,
        object: &'a Map<String, Value>,
    ) -> Result<Option<Reshaped<'a>>, Invalid> {
        if self.columns.is_empty() {
            return Ok(None);
        }
        self.watch_line(object);
        let mut out = Reshaped::new();
        let flattened = self.columns.flatten();
        for (key, v) in object {
            if key == ERROR_KEY {
                continue;
            }
            if !flattened.contains(key) {
                self.place(&mut out, key, v, object)?;
                continue;
            }
            match v {
                Value::Object(inner) => {
                    for (k, v) in inner {
                        self.place(&mut out, k, v, object)?;
                    }
                }
                Value::Null => {}
                v => {
                    return Err(Invalid::at(
                        key,
                        format!(
                            "{key:?} is {}, not an object to lift ({})",
                            json_kind(v),
                            shell::flag("--flatten", key)
                        ),
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    /// Puts `key` of the row `object` (at its top, or lifted) into `out` under its new
    /// name, unless dropped; a name `out` has already is a clash.
    fn place<'a>(
        &self,
        out: &mut Reshaped<'a>,
        key: &'a str,
        v: &'a Value,
        object: &Map<String, Value>,
    ) -> Result<(), Invalid> {
        let name = match self.columns.fate(key) {
            Fate::Dropped(_) => return Ok(()),
            Fate::Kept(name) => name,
        };
        if out.contains_key(name.as_ref()) {
            return Err(self.clash(&name, object));
        }
        out.insert(name, v);
        Ok(())
    }

    /// The two keys of `object` read as `name`, each as it was written (`properties.plan`)
    /// and with its rename. Off the row path: a row comes here only once it clashed.
    #[cold]
    fn clash(&self, name: &str, object: &Map<String, Value>) -> Invalid {
        let origins: Vec<String> = self
            .keys_of(object)
            .filter(|(key, _, _)| self.columns.fate(key) == Fate::Kept(name.into()))
            .map(|(key, written, _)| match self.columns.rename_of(&key) {
                Some((rename, _)) => format!("{written:?} ({})", rename.flag()),
                None => format!("{written:?}"),
            })
            .take(2)
            .collect();
        Invalid::at(
            name,
            format!(
                "{} are both read as {name:?}; --drop or --rename one of them",
                origins.join(" and ")
            ),
        )
    }

    /// Every key of an NDJSON row before renames: (the key, as the row writes it, the
    /// `--flatten` that lifted it), top-level keys first, then the lifted ones
    /// (`properties.plan`).
    pub(super) fn keys_of<'a>(
        &'a self,
        object: &'a Map<String, Value>,
    ) -> impl Iterator<Item = (String, String, Option<&'a str>)> + 'a {
        let flattened = self.columns.flatten();
        let top = object
            .keys()
            .filter(|k| !flattened.contains(k) && k.as_str() != ERROR_KEY)
            .map(|k| (k.clone(), k.clone(), None));
        let lifted = object
            .iter()
            .filter(|(k, _)| flattened.contains(k))
            .filter_map(|(k, v)| Some((k, v.as_object()?)))
            .flat_map(|(k, inner)| {
                inner
                    .keys()
                    .map(move |i| (i.clone(), format!("{k}.{i}"), Some(k.as_str())))
            });
        top.chain(lifted)
    }

    /// `invalid` told by the names the input has: a column the flags renamed (or lifted)
    /// is named as the row writes it, with the flags (`column "Customer ID" (--rename
    /// "Customer ID=id") is empty`), and its `column` is a key the failures line holds (which
    /// a replay with the same flags maps the same way). Off the row path: only an invalid
    /// row comes here.
    #[cold]
    pub fn as_written(&self, mut invalid: Invalid, row: &RowData) -> Invalid {
        let object = match row {
            RowData::Json(object) => Some(object),
            _ => None,
        };
        let names = self.written_names(object);
        if names.is_empty() {
            return invalid;
        }
        if let Some(column) = &mut invalid.column
            && let Some(named) = names.iter().find(|n| n.mapped == *column)
        {
            column.clone_from(&named.written);
        }
        invalid.message = told_as_written(&invalid.message, &names);
        invalid
    }

    /// Each column that messages would name otherwise than the input does. An NDJSON row's
    /// from its keys; without the row, from the exact renames.
    pub(super) fn written_names(&self, object: Option<&Map<String, Value>>) -> Vec<Written> {
        if self.columns.is_empty() {
            return Vec::new();
        }
        let flags = |key: &str, lifted: Option<&str>| {
            let rename = self.columns.renamed_away(key).map(|(r, _)| r.flag());
            let flatten = lifted.map(|outer| shell::flag("--flatten", outer));
            flatten
                .into_iter()
                .chain(rename)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(plan) = &self.csv {
            return (0..plan.headers.len())
                .filter(|&i| !plan.dropped[i] && plan.original[i] != plan.headers[i])
                .map(|i| Written {
                    mapped: plan.headers[i].clone(),
                    written: plan.original[i].clone(),
                    flags: flags(&plan.original[i], None),
                })
                .collect();
        }
        let Some(object) = object else {
            let exact = self.columns.renames().iter();
            let exact = exact.filter(|r| r.from.is_exact() && r.from.as_str() != r.to);
            return exact
                .map(|r| Written {
                    mapped: r.to.clone(),
                    written: r.from.as_str().to_owned(),
                    flags: r.flag(),
                })
                .collect();
        };
        self.keys_of(object)
            .filter_map(|(key, written, lifted)| {
                let Fate::Kept(name) = self.columns.fate(&key) else {
                    return None;
                };
                (name != written).then(|| Written {
                    mapped: name.into_owned(),
                    flags: flags(&key, lifted),
                    written,
                })
            })
            .collect()
    }
}

/// A column as messages name it (after the flags) and as the input writes it.
pub(super) struct Written {
    pub mapped: String,
    pub written: String,
    /// The flags between the two (`--rename "Customer ID=id"`).
    flags: String,
}

/// `message` with each `column "NAME"` of a column in `names` told as the input writes it,
/// in one pass (a written name may be another column's mapped one).
pub(super) fn told_as_written(message: &str, names: &[Written]) -> String {
    const COLUMN: &str = "column ";
    let mut out = String::with_capacity(message.len() + 40);
    let mut rest = message;
    while let Some(at) = rest.find("column \"") {
        // A word of its own: not the end of `--id-column "id"`.
        let before = match at {
            0 => out.chars().next_back(),
            _ => rest[..at].chars().next_back(),
        };
        let word = before.is_none_or(char::is_whitespace);
        out.push_str(&rest[..at + COLUMN.len()]);
        rest = &rest[at + COLUMN.len()..];
        if !word {
            continue;
        }
        let found = names.iter().find_map(|n| {
            let quoted = format!("{:?}", n.mapped);
            rest.starts_with(&quoted).then_some((quoted.len(), n))
        });
        if let Some((len, n)) = found {
            out.push_str(&format!("{:?} ({})", n.written, n.flags));
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(renames: &[(&str, &str)], drops: &[&str]) -> Columns {
        let renames: Vec<(String, String)> = renames
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let drops: Vec<String> = drops.iter().map(|d| d.to_string()).collect();
        Columns::new(&renames, &drops, &[]).unwrap()
    }

    #[test]
    fn patterns_match_with_stars_anywhere() {
        let p = Pattern::new("*_TIME");
        assert!(p.matches("SIGNUP_TIME") && p.matches("_TIME") && !p.matches("TIME"));
        let p = Pattern::new("a*b*c");
        assert!(p.matches("abc") && p.matches("axxbyyc") && p.matches("abbc"));
        assert!(!p.matches("acb") && !p.matches("ab"));
        assert_eq!(p.captures("a1b2b3c"), Some(vec!["1", "2b3"]));
        let p = Pattern::new("*");
        assert!(p.matches("") && p.matches("anything"));
        assert!(Pattern::new("exact").matches("exact") && !Pattern::new("exact").matches("exac"));
        // The prefix and the suffix may not overlap.
        assert!(!Pattern::new("ab*ba").matches("aba"));
    }

    #[test]
    fn a_column_is_renamed_by_an_exact_name_before_a_pattern_then_dropped_by_its_new_name() {
        let c = columns(
            &[
                ("Custom *", "*"),
                ("Custom Email", "email"),
                ("Old", "gone"),
            ],
            &["gone", "MMERGE*"],
        );
        assert_eq!(c.fate("Custom Email"), Fate::Kept("email".into()));
        assert_eq!(c.fate("Custom Plan"), Fate::Kept("Plan".into()));
        assert_eq!(c.fate("plan"), Fate::Kept("plan".into()));
        assert_eq!(c.fate("Old"), Fate::Dropped("gone".into()));
        assert_eq!(c.fate("MMERGE3"), Fate::Dropped("MMERGE3".into()));
    }

    #[test]
    fn bad_renames_are_refused_naming_the_flag() {
        let e = |r: &[(&str, &str)]| {
            let r: Vec<(String, String)> = r
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            Columns::new(&r, &[], &[]).unwrap_err()
        };
        assert_eq!(
            e(&[("A", "x"), ("B", "x")]),
            r#"--rename A=x and --rename B=x both name a column "x"; keep one"#
        );
        assert_eq!(
            e(&[("A", "")]),
            "--rename A=: both sides must name a column (--rename OLD=NEW)"
        );
        assert_eq!(
            e(&[("A", "*")]),
            "--rename 'A=*': NEW may hold a * only where OLD has one, as many as OLD has"
        );
        assert_eq!(
            e(&[("A", "x"), ("A", "y")]),
            r#"--rename A=x and --rename A=y both rename "A"; keep one"#
        );
    }

    #[test]
    fn a_message_names_each_renamed_column_as_written_in_one_pass() {
        let written = |mapped: &str, written: &str| Written {
            mapped: mapped.into(),
            written: written.into(),
            flags: format!("--rename {written}={mapped}"),
        };
        // `B` was A's new name and `A` is Z's: neither rewrite is rewritten again.
        let names = [written("B", "A"), written("A", "Z")];
        assert_eq!(
            told_as_written(r#"column "B": bad; column "A" is empty"#, &names),
            r#"column "A" (--rename A=B): bad; column "Z" (--rename Z=A) is empty"#
        );
        // Only a word of its own: not a flag's end, nor a longer name.
        let told = r#"--id-column "B" or column "BB""#;
        assert_eq!(told_as_written(told, &names), told);
    }
}
