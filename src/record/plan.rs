//! Header planning: the mapping options, and each column's role, worked out once per CSV
//! header (per key for NDJSON), refusing a header no row could get past.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::columns::{Columns, Fate, Pattern, Rename, told_as_written, type_flag};
use super::entity::{DEVICE_ID, Entity, LAST_USED, OBJECT_ID, OBJECT_TYPE_ID, PLATFORM};
use super::notes::{Notes, Oversize, Resize, Resized, same_ids};
use super::operation::ANONYMOUS_ID;
use super::preview::{IdSample, folded};
use super::recent::Recent;
use super::rules::Source;
use super::tally::name_too_long;
use super::unused::Watch;
use super::value::{Conventions, Origin, Typed, thousands};
use super::{Action, EmptyPolicy, IdKind, ValueType};
use crate::shell;
use crate::track::{MAX_ATTRIBUTE_NAME_BYTES, MAX_EVENT_NAME_BYTES};

/// What the mapping needs from the command line.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub action: Action,
    /// What the rows are about: people, or objects.
    pub entity: Entity,
    pub id_column: Option<String>,
    /// Which identifier `id_column` holds; by default, as its name says.
    pub id_type: Option<IdKind>,
    /// `--type`: the column side may be a pattern (`*_TIME`).
    pub types: Vec<(String, ValueType)>,
    /// How the input writes times, numbers and identifiers.
    pub conventions: Conventions,
    /// `--rename`, `--drop`, `--flatten`.
    pub columns: Columns,
    pub empty: EmptyPolicy,
    /// `--oversize`: what a person's attribute value over 1,000 bytes becomes.
    pub oversize: Oversize,
    pub event_name: Option<String>,
    /// `--object-type`: the type of the objects a row names without an object_type_id
    /// (checked by `config`: a whole number from 1).
    pub object_type: Option<String>,
    /// `--only-existing`: identifies update only people who exist.
    pub only_existing: bool,
    /// Whether records that cannot be undone (delete, suppress, merge) may go: the run was
    /// confirmed, or sends nowhere real. Else a failures-file line of such a kind, which no
    /// `--action` asked for, is refused.
    pub may_destroy: bool,
}

/// An input that cannot be mapped at all.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// A flag the header contradicts (`--id-column uid` without such a column): the command
    /// line's mistake.
    #[error("{0}")]
    Flag(String),
    /// A header no row could get past (no identifier column, a name twice).
    #[error("{0}")]
    Header(String),
}

/// What a column is for. Worked out once per CSV header, per key for NDJSON.
// A tag of its own (see `Cell`): with the time format's pointer as its niche, every cell's
// `match` decoded the variant arithmetically, a tenth more instructions in the dry run's loop.
#[derive(Debug, Clone, PartialEq)]
#[repr(u8)]
pub(super) enum Role {
    Identifier(IdKind),
    AnonymousId,
    EventName,
    EventTimestamp,
    EventId,
    ObjectId,
    ObjectTypeId,
    /// A device's token, its platform, when it was last used.
    DeviceId,
    Platform,
    LastUsed,
    /// A merge's people.
    Primary(IdKind),
    Secondary(IdKind),
    /// An attribute (a person's, an object's, a device's or a relationship's) or event data;
    /// None is "no type given" (NDJSON passes the JSON value through, CSV sends the string).
    Attribute(Option<Typed>),
    /// A CSV column with an empty header name (a trailing comma, usually).
    Unnamed,
    /// Not sent (delete, suppress and unsuppress need only the identifier).
    Ignored,
}

/// The per-column plan for a CSV input, indexed like the record's fields.
pub(super) struct CsvPlan {
    /// Each column's name as mapped: after `--rename`.
    pub headers: Vec<String>,
    /// As the header has it (trimmed, without a byte order mark): what a failures line keeps,
    /// so that a replay with the same flags maps it the same way.
    pub original: Vec<String>,
    /// `--drop`ped (their role is `Ignored`).
    pub dropped: Vec<bool>,
    pub roles: Vec<Role>,
}

/// Maps rows of one input. Build it once per input; `map` then does no per-row lookups by name
/// for CSV.
pub struct Mapper {
    pub(super) action: Action,
    pub(super) entity: Entity,
    pub(super) empty: EmptyPolicy,
    event_name: Option<String>,
    pub(super) id_column: Option<String>,
    pub(super) id_type: Option<IdKind>,
    types: HashMap<String, ValueType>,
    pub(super) conventions: Conventions,
    /// How the event `timestamp` and a device's `last_used` are read: always as timestamps
    /// (they are Unix seconds), in the format a `--type` gives them.
    pub(super) event_time: Typed,
    pub(super) last_used: Typed,
    /// The `--oversize` policy where it changes values: not reject, and not for events
    /// (whose data is held to its total only).
    pub(super) oversize: Option<Resize>,
    pub(super) notes: RefCell<Notes>,
    /// The input's name, which tells apart events without a time (see `event_id`).
    pub(super) input: String,
    /// Whether the input is a stream (stdin, a pipe), which every run reads anew.
    pub(super) stream: bool,
    /// The `--type`s whose column is a pattern, in the order given.
    type_patterns: Vec<(Pattern, ValueType)>,
    pub(super) columns: Columns,
    object_type: Option<String>,
    only_existing: bool,
    pub(super) may_destroy: bool,
    pub(super) csv: Option<CsvPlan>,
    /// Where the input's recent events are counted, if anywhere.
    pub(super) recent: Option<Recent>,
    /// The first rows' `id` identifiers, looked at for email addresses.
    pub(super) sample: Option<IdSample>,
    /// The column flags checked against NDJSON keys as lines are read.
    pub(super) watch: Option<Watch>,
}

impl Mapper {
    /// `headers` is the CSV header, or None for NDJSON (whose identifier is then found per row).
    /// Fails when no row of the input could map: no identifier column, an unknown
    /// `--id-column`, no event name at all, a duplicate or over-long column name.
    pub fn new(spec: &MapSpec, headers: Option<&[String]>) -> Result<Mapper, MapError> {
        let mut mapper = Mapper {
            action: spec.action,
            entity: spec.entity,
            empty: spec.empty,
            event_name: spec
                .event_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            id_column: spec.id_column.clone(),
            id_type: spec.id_type,
            types: spec
                .types
                .iter()
                .filter(|(c, _)| !c.contains('*'))
                .cloned()
                .collect(),
            type_patterns: spec
                .types
                .iter()
                .filter(|(c, _)| c.contains('*'))
                .map(|(c, ty)| (Pattern::new(c), ty.clone()))
                .collect(),
            columns: spec.columns.clone(),
            conventions: spec.conventions.clone(),
            event_time: fixed_time(&spec.types, "timestamp"),
            last_used: fixed_time(&spec.types, LAST_USED),
            oversize: (spec.oversize.resize()).filter(|_| spec.action.event_kind().is_none()),
            notes: RefCell::default(),
            input: String::new(),
            stream: false,
            object_type: spec.object_type.clone(),
            only_existing: spec.only_existing,
            may_destroy: spec.may_destroy,
            csv: None,
            recent: None,
            sample: None,
            watch: None,
        };
        if let Some(name) = &mapper.event_name
            && name.len() > MAX_EVENT_NAME_BYTES
        {
            return Err(MapError::Flag(format!(
                "--event-name is {} bytes; Customer.io allows at most {MAX_EVENT_NAME_BYTES}",
                thousands(name.len())
            )));
        }
        if let Some(col) = &mapper.id_column
            && let Some(drop) = mapper.columns.drops().iter().find(|d| d.matches(col))
        {
            return Err(MapError::Flag(format!(
                "{}: that drops {col:?}, the --id-column; drop another column or \
                 choose another --id-column",
                shell::flag("--drop", drop.as_str())
            )));
        }
        // Every flag but --rename names the new name: the old one is no column any more.
        if let Some(col) = &mapper.id_column
            && mapper.columns.renamed_onto(col).is_none()
            && let Some((why, to)) = mapper.columns.by_new_name(col)
        {
            return Err(MapError::Flag(format!(
                "{}: no such column; {why}: did you mean {}?",
                shell::flag("--id-column", col),
                shell::flag("--id-column", &to)
            )));
        }
        // An empty CSV has no header (and no rows): nothing to check, nothing to map.
        if let Some(headers) = headers.filter(|h| !h.is_empty()) {
            mapper.csv = Some(mapper.plan(headers)?);
        }
        mapper.check_fixed_types(spec)?;
        mapper.start_sample();
        Ok(mapper)
    }

    /// Works out every CSV column's role once, and refuses headers no row could get past.
    fn plan(&self, headers: &[String]) -> Result<CsvPlan, MapError> {
        let mut headers = headers.to_vec();
        // A UTF-8 byte order mark would hide an `id` first column.
        if let Some(first) = headers.first_mut()
            && let Some(rest) = first.strip_prefix('\u{feff}')
        {
            *first = rest.to_owned();
        }
        // `id, email, plan` is a common way to write a header; " email" is no attribute name.
        for header in &mut headers {
            if header.trim().len() != header.len() {
                *header = header.trim().to_owned();
            }
        }
        let original = headers;
        let (headers, dropped) = self.resolve(&original)?;
        let kept = || {
            headers
                .iter()
                .zip(&dropped)
                .filter(|(_, d)| !**d)
                .map(|(h, _)| h.as_str())
        };
        let listed = || kept().collect::<Vec<_>>().join(", ");
        let has = |name: &str| kept().any(|h| h == name);
        let missing = |what: &str| {
            Err(MapError::Header(format!(
                "{what}; the header has: {}",
                listed()
            )))
        };

        let id_key = match &self.id_column {
            Some(col) if has(col) => Some(col.as_str()),
            Some(col) => {
                return Err(MapError::Flag(format!(
                    "--id-column {col:?}: no such column; the header has: {}",
                    listed()
                )));
            }
            None => self.id_key(has),
        };
        let event = self.action.event_kind().is_some();
        if self.entity == Entity::Object {
            if id_key.is_none() {
                return missing("no object id column: expected object_id (or --id-column NAME)");
            }
        } else if self.action == Action::Merge {
            for side in ["primary", "secondary"] {
                if !headers
                    .iter()
                    .any(|h| side_of(h).is_some_and(|(s, _)| s == side))
                {
                    return missing(&format!(
                        "no {side} column: a merge needs {side}_id, {side}_email or {side}_cio_id"
                    ));
                }
            }
        } else if id_key.is_none() && !(event && has(ANONYMOUS_ID)) {
            let anonymous = if event {
                ", or anonymous_id for anonymous events"
            } else {
                ""
            };
            let expected = format!("{} (or --id-column NAME){anonymous}", IdKind::listed(", "));
            // One column whose name holds a separator: the file is separated by something else.
            let hint = match headers.as_slice() {
                [only] => [';', '\t', '|']
                    .into_iter()
                    .find(|c| only.contains(*c))
                    .map(|c| {
                        let flag = if c == '\t' {
                            "tab".to_owned()
                        } else {
                            format!("'{c}'")
                        };
                        format!(" (separated by {c:?}? pass --delimiter {flag})")
                    })
                    .unwrap_or_default(),
                _ => self.near_identifier(&original, &headers, &dropped),
            };
            return Err(MapError::Header(format!(
                "no identifier column: expected one of {expected}; the header has: {}{hint}",
                listed()
            )));
        }
        if event && self.event_name.is_none() && !has("name") {
            return Err(MapError::Header(
                "no event name: add a name column or pass --event-name".into(),
            ));
        }
        let relationship = matches!(
            self.action,
            Action::AddRelationships | Action::DeleteRelationships
        );
        if relationship && !has(OBJECT_ID) {
            return missing("no object column: a relationship needs an object_id column");
        }
        if (relationship || self.entity == Entity::Object)
            && self.object_type.is_none()
            && !has(OBJECT_TYPE_ID)
        {
            return missing(
                "no object type: pass --object-type N (or add an object_type_id column)",
            );
        }
        if matches!(self.action, Action::AddDevice | Action::DeleteDevice) && !has(DEVICE_ID) {
            return missing("no device column: a device needs a device_id column (its token)");
        }
        if self.action == Action::AddDevice && !has(PLATFORM) {
            return missing(
                "no platform column: an added device needs a platform (ios or android)",
            );
        }

        let mut roles: Vec<Role> = headers
            .iter()
            .zip(&dropped)
            .map(|(h, d)| {
                if *d {
                    Role::Ignored
                } else {
                    self.role(h, id_key)
                }
            })
            .collect();
        // An untyped cell is sent as it is, unless its apostrophe is to go.
        if self.conventions.strip_apostrophe {
            for role in &mut roles {
                if *role == Role::Attribute(None) {
                    *role = Role::Attribute(Some(Typed::new(ValueType::String, Origin::Fixed)));
                }
            }
        }
        let mut seen = HashSet::new();
        for (header, role) in headers.iter().zip(&roles) {
            if matches!(role, Role::Ignored | Role::Unnamed) {
                continue;
            }
            if !seen.insert(header.as_str()) {
                return Err(MapError::Header(format!(
                    "column {header:?} appears twice in the header; rename or remove one"
                )));
            }
            if matches!(role, Role::Attribute(_)) && header.len() > MAX_ATTRIBUTE_NAME_BYTES {
                return Err(MapError::Header(name_too_long(header)));
            }
        }
        Ok(CsvPlan {
            headers,
            original,
            dropped,
            roles,
        })
    }

    /// A hint for a header without an identifier: an identifier `--drop` took, naming that
    /// flag, or else the first column named like one but for case, spaces or underscores
    /// (`Email`), and the rename that makes it one.
    fn near_identifier(&self, original: &[String], names: &[String], dropped: &[bool]) -> String {
        let kinds = IdKind::detected();
        let taken = (0..names.len()).find(|&i| {
            dropped[i] && !names[i].is_empty() && kinds.iter().any(|k| k.name() == names[i])
        });
        if let Some(i) = taken
            && let Some(drop) = self.columns.drops().iter().find(|d| d.matches(&names[i]))
        {
            return format!(
                " ({:?} is dropped by {}: drop fewer columns, or name the identifier \
                 with --id-column)",
                names[i],
                shell::flag("--drop", drop.as_str())
            );
        }
        let near = kinds.iter().find_map(|kind| {
            let i = (0..names.len())
                .find(|&i| !dropped[i] && folded(&names[i]) == folded(kind.name()))?;
            Some((&original[i], kind.name()))
        });
        match near {
            Some((column, kind)) => {
                let rename = Rename {
                    from: Pattern::new(column),
                    to: kind.to_owned(),
                };
                format!(" (is {column:?} the {kind}? pass {})", rename.flag())
            }
            None => String::new(),
        }
    }

    /// A `--type` on a column whose role fixes how it is sent would be silently ignored:
    /// refused, naming what works. A time (an event's, a device's last use) takes a
    /// timestamp format; every other role is text. NDJSON's identifier is taken to be the
    /// first kind it may be (`id`), or the `--id-column`.
    fn check_fixed_types(&self, spec: &MapSpec) -> Result<(), MapError> {
        for (column, ty) in spec.types.iter().filter(|(c, _)| !c.contains('*')) {
            let role = match &self.csv {
                Some(plan) => {
                    let named = |i: &usize| plan.headers[*i] == *column && !plan.dropped[*i];
                    match (0..plan.headers.len()).find(named) {
                        Some(i) => plan.roles[i].clone(),
                        None => continue,
                    }
                }
                None => {
                    let id_key = self.id_column.as_deref().or(self.id_key(|_| true));
                    self.role(column, id_key)
                }
            };
            let fix = match role {
                Role::Attribute(_) | Role::Unnamed | Role::Ignored => continue,
                Role::EventTimestamp | Role::LastUsed => {
                    if matches!(ty, ValueType::Timestamp(_)) {
                        continue;
                    }
                    format!(
                        "it is always read as a timestamp: give its format with {} (or \
                         timestamp:ms), or --rename the column to send it as data",
                        type_flag(column, "timestamp:FORMAT")
                    )
                }
                _ if *ty == ValueType::String => continue,
                _ => "it is sent as text: leave this --type out, or --rename the column to \
                      send it as data"
                    .to_owned(),
            };
            return Err(MapError::Flag(format!(
                "{}: {column:?} is {}; {fix}",
                type_flag(column, ty),
                self.role_text(&role, column)
            )));
        }
        Ok(())
    }

    /// Each column's name after `--rename`, and whether `--drop` drops it. Refuses a rename
    /// onto a column the header has already, and two columns renamed to one name.
    fn resolve(&self, original: &[String]) -> Result<(Vec<String>, Vec<bool>), MapError> {
        if self.columns.is_empty() {
            return Ok((original.to_vec(), vec![false; original.len()]));
        }
        let (mut names, mut dropped) = (Vec::new(), Vec::new());
        for name in original {
            let (named, drop) = match self.columns.fate(name) {
                _ if name.is_empty() => (String::new(), false),
                Fate::Kept(named) => (named.into_owned(), false),
                // By its new name too, so that a drop taking two columns is found below.
                Fate::Dropped(named) => (named.into_owned(), true),
            };
            names.push(named);
            dropped.push(drop);
        }
        for (i, name) in names.iter().enumerate() {
            let Some((rename, _)) = self.columns.rename_of(&original[i]) else {
                continue;
            };
            let clash = |j: usize| j != i && names[j] == *name;
            let Some(j) = (0..names.len()).find(|&j| clash(j)) else {
                continue;
            };
            let other = self.columns.rename_of(&original[j]);
            // One flag that renames both onto a name --drop takes drops both, as meant.
            if dropped[i] && other.as_ref().is_some_and(|(other, _)| *other == rename) {
                continue;
            }
            let message = match other {
                Some((other, _)) if other == rename => format!(
                    "{}: renames both {:?} and {:?} to {name:?}; rename them apart",
                    rename.flag(),
                    original[i.min(j)],
                    original[i.max(j)]
                ),
                Some((other, _)) => format!(
                    "{} and {} both rename a column to {name:?}; keep one",
                    other.flag(),
                    rename.flag()
                ),
                None if dropped[i] => format!(
                    "{} and {}: the drop takes both {:?} and {:?}, since --drop names a \
                     column by its new name; to keep the renamed one, rename the other apart \
                     ({} {})",
                    rename.flag(),
                    shell::flag(
                        "--drop",
                        self.columns
                            .drops()
                            .iter()
                            .find(|d| d.matches(name))
                            .map_or(name.as_str(), Pattern::as_str)
                    ),
                    original[i],
                    original[j],
                    Rename {
                        from: Pattern::new(&original[j]),
                        to: format!("{name}_old"),
                    }
                    .flag(),
                    shell::flag("--drop", &format!("{name}_old")),
                ),
                None => format!(
                    "{}: the header has a column {name:?} already; rename that one too \
                     ({}, and --drop OTHER to leave it out)",
                    rename.flag(),
                    shell::flag("--rename", &format!("{name}=OTHER"))
                ),
            };
            return Err(MapError::Flag(message));
        }
        Ok((names, dropped))
    }

    /// The identifier column without `--id-column`, among the names `has`: a person's first
    /// kind found, an object's `object_id`; none for a merge, whose people have columns of
    /// their own.
    pub(super) fn id_key(&self, has: impl Fn(&str) -> bool) -> Option<&'static str> {
        match (self.entity, self.action) {
            (Entity::Object, _) => has(OBJECT_ID).then_some(OBJECT_ID),
            (Entity::Person, Action::Merge) => None,
            (Entity::Person, _) => IdKind::detected().iter().map(|k| k.name()).find(|c| has(c)),
        }
    }

    /// The role of column `name` when `id_key` is the identifier column.
    pub(super) fn role(&self, name: &str, id_key: Option<&str>) -> Role {
        if id_key == Some(name) {
            return match self.entity {
                Entity::Object => Role::ObjectId,
                Entity::Person => {
                    Role::Identifier(self.id_type.unwrap_or_else(|| IdKind::of_column(name)))
                }
            };
        }
        let only_ids = match (self.entity, self.action) {
            (Entity::Object, _) if name == OBJECT_TYPE_ID => return Role::ObjectTypeId,
            (Entity::Object, action) => action == Action::Delete,
            (_, Action::Identify) => false,
            (_, Action::Event | Action::Page | Action::Screen) => match name {
                ANONYMOUS_ID => return Role::AnonymousId,
                "name" => return Role::EventName,
                "timestamp" => return Role::EventTimestamp,
                "event_id" => return Role::EventId,
                _ => false,
            },
            (_, Action::Delete | Action::Suppress | Action::Unsuppress) => true,
            (_, action @ (Action::AddDevice | Action::DeleteDevice)) => match name {
                DEVICE_ID => return Role::DeviceId,
                PLATFORM if action == Action::AddDevice => return Role::Platform,
                LAST_USED if action == Action::AddDevice => return Role::LastUsed,
                _ => action == Action::DeleteDevice,
            },
            (_, Action::Merge) => {
                return match side_of(name) {
                    Some(("primary", kind)) => Role::Primary(kind),
                    Some((_, kind)) => Role::Secondary(kind),
                    None => Role::Ignored,
                };
            }
            (_, action @ (Action::AddRelationships | Action::DeleteRelationships)) => match name {
                OBJECT_ID => return Role::ObjectId,
                OBJECT_TYPE_ID => return Role::ObjectTypeId,
                _ => action == Action::DeleteRelationships,
            },
        };
        if only_ids {
            return Role::Ignored;
        }
        if name.is_empty() {
            return Role::Unnamed;
        }
        let flagged = self.types.get(name).cloned().or_else(|| {
            let mut patterns = self.type_patterns.iter();
            patterns
                .find(|(p, _)| p.matches(name))
                .map(|(_, ty)| ty.clone())
        });
        let typed = match flagged {
            Some(ty) => Some(Typed::new(ty, Origin::Flag)),
            // Customer.io reads created_at as Unix seconds; a date in a file is the usual form.
            None if name == "created_at" => Some(Typed::new(ValueType::TIMESTAMP, Origin::Default)),
            // Customer.io unsubscribes a person only on true-like values: a CRM's "yes" or "Y"
            // sent as text would leave them subscribed.
            None if name == "unsubscribed"
                && (self.entity, self.action) == (Entity::Person, Action::Identify) =>
            {
                Some(Typed::new(ValueType::Bool, Origin::Default))
            }
            None => None,
        };
        Role::Attribute(typed)
    }

    /// What a run is told at the start when this input's events have no timestamp column:
    /// how they get their time and their ids. None for NDJSON, whose keys vary by line.
    pub fn untimed_note(&self) -> Option<String> {
        self.all_untimed().then(|| {
            format!(
                "no timestamp column: each event goes without a time (Customer.io gives it the \
                 time it arrives) and with an id from its content, this input's name and its \
                 line, so identical rows are distinct events, and a re-run, --resume or a \
                 replay of the failures file sends the same ids; {}",
                same_ids(self.stream)
            )
        })
    }

    /// Whether this input is a CSV of events without a timestamp column.
    pub(super) fn all_untimed(&self) -> bool {
        self.csv.as_ref().is_some_and(|plan| {
            self.action.event_kind().is_some() && !plan.roles.contains(&Role::EventTimestamp)
        })
    }

    /// Names the input the rows come from, as the run and its failures file name it.
    pub fn set_input(&mut self, name: &str, stream: bool) {
        self.input = name.to_owned();
        self.stream = stream;
    }

    /// Counts into `count` each event mapped (or validated) from now on that can still
    /// trigger campaigns: of the 72 hours before `now` (Unix seconds), or without a time.
    pub fn count_recent_events(&mut self, now: i64, count: Arc<AtomicU64>) {
        self.recent = Some(Recent::new(now, count));
    }

    /// The warnings noted since last asked (each told once per column, e.g. a timestamp
    /// column that looks misread), and the values `--oversize` changed in the last row.
    // Asked after every row, and almost always empty: the look inlined, the taking not.
    #[inline]
    pub fn take_notes(&mut self) -> Option<(Vec<String>, Vec<Resized>)> {
        let notes = self.notes.get_mut();
        if notes.warnings.is_empty() && notes.resized.is_empty() {
            return None;
        }
        self.notes_taken()
    }

    #[cold]
    #[inline(never)]
    fn notes_taken(&mut self) -> Option<(Vec<String>, Vec<Resized>)> {
        let notes = self.notes.get_mut();
        let (mut warnings, mut resized) = (
            std::mem::take(&mut notes.warnings),
            std::mem::take(&mut notes.resized),
        );
        // Told by the names the input has, as a row's verdict is.
        let names = self.written_names(None);
        if !names.is_empty() {
            for warning in &mut warnings {
                *warning = told_as_written(warning, &names);
            }
            for r in &mut resized {
                if let Some(n) = names.iter().find(|n| n.mapped == r.column) {
                    r.column.clone_from(&n.written);
                }
            }
        }
        Some((warnings, resized))
    }

    /// A CSV input's column names as mapped (trimmed, without a byte order mark); None for
    /// NDJSON and for an empty CSV.
    pub fn columns(&self) -> Option<&[String]> {
        self.csv.as_ref().map(|plan| &plan.headers[..])
    }

    /// A CSV input's column names as its header has them (before `--rename`).
    pub fn header(&self) -> Option<&[String]> {
        self.csv.as_ref().map(|plan| &plan.original[..])
    }

    /// What the rules say a row of this input lacks.
    pub(super) fn source(&self) -> Source<'_> {
        Source::Row {
            id_column: self.id_column.as_deref(),
            event_name: self.event_name.as_deref(),
            object_type: self.object_type.as_deref(),
            only_existing: self.only_existing,
        }
    }
}

/// How a column that is always a timestamp is read: in the format `--type NAME=timestamp:...`
/// gives, else in the default forms.
fn fixed_time(types: &[(String, ValueType)], name: &str) -> Typed {
    let ty = types
        .iter()
        .rev()
        .find(|(c, ty)| c == name && matches!(ty, ValueType::Timestamp(_)))
        .map_or(ValueType::TIMESTAMP, |(_, ty)| ty.clone());
    Typed::new(ty, Origin::Fixed)
}

/// A merge's column: `primary_id` is the primary's id, `secondary_email` the secondary's
/// email, and so on.
fn side_of(name: &str) -> Option<(&'static str, IdKind)> {
    ["primary", "secondary"].into_iter().find_map(|side| {
        let kind = name.strip_prefix(side)?.strip_prefix('_')?;
        let kind = IdKind::all().iter().find(|k| k.name() == kind)?;
        Some((side, *kind))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Action, IdKind, MapSpec, Mapper, ValueType};
    use serde_json::json;

    #[test]
    fn identifier_column_is_id_then_email_then_cio_id_whatever_the_order() {
        let s = spec(Action::Identify);
        let mut m = csv_mapper(&s, &["cio_id", "email", "id"]);
        let op = ok(&mut m, &row(&["abc", "a@x.io", "7"]));
        assert_eq!(person(&op), Some(&id("7")));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"cio_id": "abc", "email": "a@x.io"}))
        );

        let mut m = csv_mapper(&s, &["cio_id", "email"]);
        let op = ok(&mut m, &row(&["abc", "a@x.io"]));
        assert_eq!(person(&op), Some(&email("a@x.io")));

        let mut m = csv_mapper(&s, &["name", "cio_id"]);
        let op = ok(&mut m, &row(&["Ann", "cio_03000001"]));
        assert_eq!(person(&op), Some(&cio_id("03000001")));
        let op = ok(&mut m, &row(&["Ann", "03000001"]));
        assert_eq!(person(&op), Some(&cio_id("03000001")));

        // Names are exact and case-sensitive.
        let e = csv_error(&s, &["ID", "Email", "plan"]);
        assert_eq!(
            e,
            "no identifier column: expected one of id, email, cio_id (or --id-column NAME); \
             the header has: ID, Email, plan (is \"ID\" the id? pass --rename ID=id)"
        );
    }

    #[test]
    fn an_empty_csv_has_no_header_to_check() {
        for action in [Action::Identify, Action::Event] {
            assert!(Mapper::new(&spec(action), Some(&[])).is_ok());
        }
    }

    #[test]
    fn id_column_flag_picks_the_column_and_its_kind() {
        let s = MapSpec {
            id_column: Some("user_id".into()),
            ..spec(Action::Identify)
        };
        let mut m = csv_mapper(&s, &["id", "user_id"]);
        let op = ok(&mut m, &row(&["1", "u-9"]));
        assert_eq!(person(&op), Some(&id("u-9")));
        assert_eq!(*attributes(&op).unwrap(), attrs(json!({"id": "1"})));

        let s = MapSpec {
            id_column: Some("email".into()),
            ..spec(Action::Identify)
        };
        let mut m = csv_mapper(&s, &["id", "email"]);
        let op = ok(&mut m, &row(&["1", "a@x.io"]));
        assert_eq!(person(&op), Some(&email("a@x.io")));

        // An export's `Email` is an email too, and --id-type says what any other name holds.
        let s = MapSpec {
            id_column: Some("Email".into()),
            ..spec(Action::Identify)
        };
        let op = ok(&mut csv_mapper(&s, &["Email"]), &row(&["a@x.io"]));
        assert_eq!(person(&op), Some(&email("a@x.io")));
        let s = MapSpec {
            id_column: Some("user_email".into()),
            id_type: Some(IdKind::Email),
            ..spec(Action::Identify)
        };
        let op = ok(&mut csv_mapper(&s, &["user_email"]), &row(&["a@x.io"]));
        assert_eq!(person(&op), Some(&email("a@x.io")));

        let s = MapSpec {
            id_column: Some("uid".into()),
            ..spec(Action::Identify)
        };
        let e = csv_error(&s, &["id", "plan"]);
        assert_eq!(
            e,
            r#"--id-column "uid": no such column; the header has: id, plan"#
        );
    }

    #[test]
    fn a_header_of_one_column_holding_semicolons_suggests_the_delimiter() {
        let e = csv_error(&spec(Action::Identify), &["id;email;plan"]);
        assert!(
            e.ends_with("(separated by ';'? pass --delimiter ';')"),
            "{e}"
        );
        let e = csv_error(&spec(Action::Identify), &["id\temail"]);
        assert!(e.ends_with("pass --delimiter tab)"), "{e}");
    }

    #[test]
    fn header_names_are_trimmed() {
        let s = typed(Action::Identify, &[("age", ValueType::Number)]);
        let mut m = csv_mapper(&s, &["id", " first_name", " age "]);
        let op = ok(&mut m, &row(&["1", "Ada", "36"]));
        assert_eq!(
            *attributes(&op).unwrap(),
            attrs(json!({"first_name": "Ada", "age": 36}))
        );
        let mut m = csv_mapper(&spec(Action::Identify), &[" id", "plan"]);
        assert_eq!(person(&ok(&mut m, &row(&["7", "pro"]))), Some(&id("7")));
    }
}
