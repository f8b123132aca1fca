//! Repeats: an event with the id of an earlier one of the run. Customer.io keeps the first
//! event of an id and drops the others as duplicates: the same event again (a row read twice)
//! is meant to be dropped, and is told; a different event is lost, so it is invalid, never
//! counted accepted.

use std::collections::HashMap;
use std::sync::Arc;

use crate::record::{Invalid, Mapper};
use crate::send::Outgoing;
use crate::source::RowData;

/// The ids of the events read, each with the event's digest and where it was read. Bounded:
/// two generations of at most [`Repeats::GENERATION`] ids (25 bytes each with the map's
/// own, about 12.5 MiB a generation); an id older than both is forgotten, so a repeat at least that far back goes
/// unnoticed.
#[derive(Default)]
pub(super) struct Repeats {
    recent: HashMap<u64, Seen>,
    older: HashMap<u64, Seen>,
    /// The inputs the ids were read from, by [`Seen::input`].
    inputs: Vec<Arc<str>>,
}

/// Where an id was first seen, and what event it had.
struct Seen {
    /// Part of the event's digest: enough to tell another event from the same.
    digest: u32,
    input: u32,
    line: u64,
}

impl Repeats {
    /// Ids a generation holds: 7/8 of a power of two, the most a map holds before it grows.
    const GENERATION: usize = 7 << 16;

    /// Checks the event of `out`, read at `line` of `source`, against the earlier ones: a
    /// different event with an earlier one's id is invalid; the same event again is
    /// accepted, and a warning says so.
    pub fn check(
        &mut self,
        out: &Outgoing,
        mapper: &Mapper,
        row: &RowData,
        source: &Arc<str>,
        line: u64,
    ) -> Result<Option<String>, Invalid> {
        let Some(id) = out.op.event_id() else {
            return Ok(None);
        };
        // A ULID's 128 bits are a time and random bits, or a hash: folded, they key well.
        let key = (id.0 as u64) ^ ((id.0 >> 64) as u64);
        // FNV's high bits are its best mixed.
        let digest = (out.op.digest(&out.encoded) >> 96) as u32;
        let Some(earlier) = self.recent.get(&key).or_else(|| self.older.get(&key)) else {
            self.remember(key, digest, source, line);
            return Ok(None);
        };
        let from = &self.inputs[earlier.input as usize];
        let at = match **from == **source {
            true => format!("line {}", earlier.line),
            false => format!("{from} line {}", earlier.line),
        };
        let given = mapper.given_event_id(row);
        if earlier.digest != digest {
            let (column, value) =
                given.map_or(("event_id", id.to_string()), |(c, v)| (c, v.to_owned()));
            return Err(Invalid {
                column: Some(column.to_owned()),
                message: format!(
                    "event id {value:?} (column {column:?}) was given to another event at \
                     {at}; Customer.io keeps only the first event of an id and would drop \
                     this one as a duplicate: give each event an id of its own"
                ),
            });
        }
        Ok(Some(match given {
            Some((column, value)) => format!(
                "{source} line {line}: the same event as {at} (same {column} {value:?}, \
                 person, name, timestamp and data); Customer.io keeps one"
            ),
            None => format!(
                "{source} line {line}: the same event as {at} (same event id: person, name, \
                 timestamp and data alike); Customer.io keeps one. If both happened, give them \
                 an event_id column or timestamps that differ"
            ),
        }))
    }

    fn remember(&mut self, key: u64, digest: u32, source: &Arc<str>, line: u64) {
        if self.recent.len() == Self::GENERATION {
            self.older = std::mem::take(&mut self.recent);
        }
        if self
            .inputs
            .last()
            .is_none_or(|last| !Arc::ptr_eq(last, source))
        {
            self.inputs.push(source.clone());
        }
        let input = (self.inputs.len() - 1) as u32;
        self.recent.insert(
            key,
            Seen {
                digest,
                input,
                line,
            },
        );
    }
}
