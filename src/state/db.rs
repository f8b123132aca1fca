//! The database: a SQLite file holding, for one target, each entity's key, the digest of its
//! last accepted operation and the job that last met it, and the runs that wrote it; and this
//! run's "seen" set, in a temporary table (on disk, not in memory: flat for millions of keys).
//!
//! Writes go into one open transaction that the checkpoint saver commits before each save
//! (see `run/checkpoints.rs`): the state always holds every acceptance a checkpoint counts,
//! so a resume after `kill -9` neither loses one nor sends it again.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::memo::{Kind, Memo, name_of};
use crate::record::{Identifier, Operation};

/// Bumped when the tables change: an older state is upgraded (see [`upgrade`]) or refused,
/// not misread.
const FORMAT: &str = "2";

/// The format before jobs, with emails keyed by their case.
const FORMAT_1: &str = "1";

/// The entities, as this format holds them: `job` is the job that last met a person (see
/// `config::state::job_of`), NULL for those a state of format 1 held and no run met since.
const ENTITIES: &str = "entities (
    kind TEXT NOT NULL,
    key INTEGER NOT NULL,
    name TEXT NOT NULL,
    digest BLOB,
    job TEXT,
    PRIMARY KEY (key, kind)
) WITHOUT ROWID";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    accepted INTEGER,
    unchanged INTEGER,
    failed INTEGER,
    removed INTEGER
);
CREATE TABLE IF NOT EXISTS sweep (pos INTEGER PRIMARY KEY, name TEXT NOT NULL);";

/// An open state, for one run.
pub struct State {
    conn: Connection,
    path: PathBuf,
    /// False in a dry run: the file is opened read-only.
    writes: bool,
    /// This run's row in `runs`; None in a dry run.
    run: Option<i64>,
    /// Rows of this run whose person could not be read: how many, and where the first was.
    unreadable: Option<(u64, String)>,
    /// In a dry run, the workspace the state holds what was sent to (not checked).
    said_target: Option<String>,
    /// This run's job: the people it meets are its, and its sweep removes only its own.
    /// None for a replay of a failures file, which leaves each person's job as it was.
    job: Option<String>,
}

/// The people a `--missing` sweep weighs: this job's that this run did not meet, all this
/// job's, and those it did not meet that are another job's (kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absent {
    pub missing: u64,
    pub held: u64,
    pub others: u64,
}

/// What a finished run leaves in `runs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub accepted: u64,
    pub unchanged: u64,
    /// Failed or invalid: in the failures file.
    pub failed: u64,
    /// People missing from the inputs, sent to be removed (`--missing`).
    pub removed: u64,
}

/// A key as SQLite's signed integer holds it, bit for bit.
fn sql_key(key: u64) -> i64 {
    key as i64
}

impl State {
    /// Opens (or creates) the state at `path` for a run of `job` (see [`State::job`]) into
    /// `target`; a resume
    /// carries on the run an interrupted one began. A dry run opens it read-only, or starts
    /// from an empty one in memory when there is no file yet.
    pub fn open(
        path: &Path,
        target: &str,
        job: Option<&str>,
        resume: bool,
        dry_run: bool,
    ) -> Result<State, String> {
        let said = |e: rusqlite::Error| say(path, e);
        let existed = path.exists();
        let conn = if dry_run && !existed {
            Connection::open_in_memory()
        } else if dry_run {
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        } else {
            Connection::open(path)
        }
        .map_err(said)?;
        // A state another run holds is refused at once, not waited for.
        conn.busy_timeout(std::time::Duration::ZERO).map_err(said)?;
        if existed {
            ours(&conn, path)?;
        }
        let writes = !dry_run;
        if writes {
            // One run at a time: the lock is held from the first write to the end. The write
            // ahead log makes each commit one append, synced so that a power cut cannot leave
            // a checkpoint ahead of the state.
            conn.execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL;",
            )
            .map_err(said)?;
        }
        conn.execute_batch("PRAGMA cache_size = -16000; PRAGMA temp_store = FILE;")
            .map_err(said)?;
        let mut state = State {
            conn,
            path: path.to_owned(),
            writes,
            run: None,
            unreadable: None,
            said_target: None,
            job: job.map(str::to_owned),
        };
        if writes || !existed {
            state.begin()?;
            state.conn.execute_batch(SCHEMA).map_err(said)?;
            let entities = format!("CREATE TABLE IF NOT EXISTS {ENTITIES}");
            state.conn.execute_batch(&entities).map_err(said)?;
        }
        state.check(target, dry_run)?;
        state
            .conn
            .execute_batch("CREATE TEMP TABLE seen (key INTEGER PRIMARY KEY);")
            .map_err(said)?;
        if writes {
            state.run = Some(state.start_run(resume)?);
        }
        Ok(state)
    }

    fn begin(&self) -> Result<(), String> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))
    }

    /// The file is a state of this format, written for `target` (a new one is made so).
    fn check(&mut self, target: &str, dry_run: bool) -> Result<(), String> {
        let meta = |key: &str| {
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
                .map_err(|e| self.err(e))
        };
        match meta("format")? {
            None if self.writes => {
                let put = "INSERT INTO meta (key, value) VALUES ('format', ?1), ('target', ?2)";
                self.conn
                    .execute(put, params![FORMAT, target])
                    .map_err(|e| self.err(e))?;
            }
            None => {}
            Some(format) if format == FORMAT_1 => {
                upgrade(&self.conn, !dry_run).map_err(|e| self.err(e))?;
            }
            Some(format) if format != FORMAT => {
                return Err(format!(
                    "--state {}: written by another version of cio-import (format {format}, \
                     this one reads {FORMAT}); give another path to start a new state",
                    self.path.display()
                ));
            }
            Some(_) => {}
        }
        let theirs = meta("target")?.unwrap_or_default();
        if dry_run && !theirs.is_empty() {
            // A dry run names no workspace: it compares with whichever the state was for.
            self.said_target = Some(theirs.clone());
        }
        if !dry_run && !theirs.is_empty() && theirs != target {
            return Err(format!(
                "--state {}: it holds what was sent to {theirs}, not {target}: its records \
                 would be skipped as unchanged where they were never sent. Give each \
                 workspace a state of its own",
                self.path.display()
            ));
        }
        Ok(())
    }

    /// This run's row: the interrupted run a resume carries on, or a new one.
    fn start_run(&self, resume: bool) -> Result<i64, String> {
        let open: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE finished IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(id) = open.filter(|_| resume) {
            return Ok(id);
        }
        // The sweep list of a run that will not be carried on.
        self.conn
            .execute("DELETE FROM sweep", [])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("INSERT INTO runs (started) VALUES (?1)", [now()])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn err(&self, e: rusqlite::Error) -> String {
        say(&self.path, e)
    }

    /// Whether the record whose operation `memo` describes is unchanged since the last
    /// accepted one, and so not sent; marks it seen by this run. A person or object met a
    /// second time in one run is never unchanged: its first record may have changed it.
    pub fn unchanged(&mut self, memo: &Memo) -> Result<bool, String> {
        match *memo {
            Memo::Compare { kind, key, digest } => {
                if !self.mark(key)? {
                    return Ok(false);
                }
                let digest = digest.to_be_bytes();
                let same: Option<bool> = self
                    .conn
                    .prepare_cached("SELECT digest FROM entities WHERE key = ?1 AND kind = ?2")
                    .and_then(|mut s| {
                        // Compared where SQLite holds it: no copy a row.
                        s.query_row(params![sql_key(key), kind.name()], |r| {
                            Ok(r.get_ref(0)?.as_blob_or_null()? == Some(&digest[..]))
                        })
                        .optional()
                    })
                    .map_err(|e| self.err(e))?;
                Ok(same == Some(true))
            }
            Memo::Event { key } => self
                .conn
                .prepare_cached("SELECT 1 FROM entities WHERE kind = 'event' AND key = ?1")
                .and_then(|mut s| s.exists([sql_key(key)]))
                .map_err(|e| self.err(e)),
            Memo::Forget { .. } | Memo::Merge { .. } => Ok(false),
        }
    }

    /// Marks `key` seen by this run: a record a resume reads past (an earlier part of the run
    /// settled it), so that the rest of the run sees what an uninterrupted one would have; or
    /// the person an invalid row names, who is still in the export if wrong tonight.
    pub fn seen(&mut self, key: u64) -> Result<(), String> {
        self.mark(key).map(drop)
    }

    /// Counts a row whose person cannot be read at all (`place`: its input and line): it may
    /// be anyone the state holds, so the `--missing` sweep refuses to run.
    pub fn unreadable(&mut self, place: impl FnOnce() -> String) {
        match &mut self.unreadable {
            Some((n, _)) => *n += 1,
            None => self.unreadable = Some((1, place())),
        }
    }

    /// In a dry run, the workspace the state was written for: a dry run names none, so the
    /// counts it gives are against that one, unchecked.
    pub fn unchecked_target(&self) -> Option<&str> {
        self.said_target.as_deref()
    }

    /// How many rows of this run named no person that could be read, and where the first was.
    pub fn unreadable_rows(&self) -> Option<(u64, &str)> {
        self.unreadable.as_ref().map(|(n, at)| (*n, at.as_str()))
    }

    /// Adds `key` to this run's seen set: false when it was there already. One set for people
    /// and objects: an object's key is hashed under a label of its own, so never a person's.
    fn mark(&self, key: u64) -> Result<bool, String> {
        self.conn
            .prepare_cached("INSERT INTO temp.seen (key) VALUES (?1) ON CONFLICT DO NOTHING")
            .and_then(|mut s| s.execute([sql_key(key)]))
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// Records what Customer.io accepted: `op`, which `memo` describes.
    pub fn accepted(&mut self, memo: &Memo, op: &Operation) -> Result<(), String> {
        if !self.writes {
            return Ok(());
        }
        let conn = &self.conn;
        let done = match *memo {
            Memo::Compare { kind, key, digest } => conn
                .prepare_cached(
                    "INSERT INTO entities (kind, key, name, digest, job) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET \
                     name = excluded.name, digest = excluded.digest, \
                     job = coalesce(excluded.job, entities.job)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        kind.name(),
                        sql_key(key),
                        name_of(op),
                        &digest.to_be_bytes()[..],
                        self.job
                    ])
                }),
            Memo::Event { key } => conn
                .prepare_cached(
                    "INSERT INTO entities (kind, key, name) VALUES ('event', ?1, ?2) \
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![sql_key(key), name_of(op)])),
            Memo::Forget { kind, key } => conn
                .prepare_cached("DELETE FROM entities WHERE kind = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![kind.name(), sql_key(key)])),
            Memo::Merge { primary, secondary } => {
                // The primary now holds both people's attributes: its next identify is sent
                // whatever it holds (no digest); it takes the secondary's place in the state.
                let moved = conn.execute(
                    "DELETE FROM entities WHERE kind = 'person' AND key = ?1",
                    [sql_key(secondary)],
                );
                moved.and_then(|moved| {
                    if moved > 0 {
                        conn.execute(
                            "INSERT INTO entities (kind, key, name, job) \
                             VALUES ('person', ?1, ?2, ?3) \
                             ON CONFLICT DO UPDATE SET digest = NULL, \
                             job = coalesce(excluded.job, entities.job)",
                            params![sql_key(primary), name_of(op), self.job],
                        )
                    } else {
                        conn.execute(
                            "UPDATE entities SET digest = NULL WHERE kind = 'person' AND key = ?1",
                            [sql_key(primary)],
                        )
                    }
                })
            }
        };
        done.map(drop).map_err(|e| self.err(e))
    }

    /// Makes everything recorded so far durable (a dry run's nothing), and goes on.
    pub fn commit(&mut self) -> Result<(), String> {
        if !self.writes {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        self.begin()
    }

    /// The people the state holds that this run has not seen, this job's and others'; and
    /// all this job's, as they are once [`State::finish`] has claimed those it met.
    pub fn missing(&self) -> Result<Absent, String> {
        let count = |filter: &str| {
            self.conn
                .query_row(
                    &format!("SELECT count(*) FROM entities WHERE kind = 'person' AND {filter}"),
                    [&self.job],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(|e| self.err(e))
        };
        Ok(Absent {
            missing: count("job = ?1 AND key NOT IN (SELECT key FROM temp.seen)")?,
            held: count("(job = ?1 OR key IN (SELECT key FROM temp.seen))")?,
            others: count("job IS NOT ?1 AND key NOT IN (SELECT key FROM temp.seen)")?,
        })
    }

    /// How long this run's `--missing` sweep list is, once made; None before.
    pub fn sweep_len(&self) -> Result<Option<u64>, String> {
        self.conn
            .query_row("SELECT count(*) FROM sweep", [], |r| r.get::<_, i64>(0))
            .map(|n| (n > 0).then_some(n as u64))
            .map_err(|e| self.err(e))
    }

    /// Makes this run's `--missing` sweep list: the people of its job it has not seen, in key
    /// order.
    /// Kept (and committed with the checkpoints) so that a resume goes on through the same
    /// list past what its earlier part settled: made again, it would differ (an accepted
    /// removal leaves the state, a refused one stays).
    pub fn make_sweep(&mut self) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO sweep (pos, name) SELECT row_number() OVER (ORDER BY key) - 1, name \
                 FROM entities WHERE kind = 'person' AND job = ?1 \
                 AND key NOT IN (SELECT key FROM temp.seen)",
                [&self.job],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Up to `n` of the sweep list's people from place `from`: their places and names
    /// (`{"id":"42"}`).
    pub fn sweep_page(&self, from: u64, n: usize) -> Result<Vec<(u64, String)>, String> {
        self.conn
            .prepare_cached("SELECT pos, name FROM sweep WHERE pos >= ?1 ORDER BY pos LIMIT ?2")
            .and_then(|mut s| {
                s.query_map(params![from as i64, n as i64], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Ends a complete run: its figures and end time recorded, everything committed.
    pub fn finish(&mut self, figures: Figures) -> Result<(), String> {
        let Some(run) = self.run else {
            return Ok(());
        };
        let n = |v: u64| v as i64;
        self.conn
            .execute(
                "UPDATE runs SET finished = ?1, accepted = ?2, unchanged = ?3, failed = ?4, \
                 removed = ?5 WHERE id = ?6",
                params![
                    now(),
                    n(figures.accepted),
                    n(figures.unchanged),
                    n(figures.failed),
                    n(figures.removed),
                    run
                ],
            )
            .map_err(|e| self.err(e))?;
        // The people it met are this job's now, unchanged ones too: the export they are in
        // is the one whose sweep removes them when they leave it.
        if let Some(job) = &self.job {
            self.conn
                .execute(
                    "UPDATE entities SET job = ?1 WHERE kind = 'person' AND job IS NOT ?1 \
                     AND key IN (SELECT key FROM temp.seen)",
                    [job],
                )
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute("DELETE FROM sweep", [])
            .map_err(|e| self.err(e))?;
        self.commit()
    }
}

/// Brings a state of format 1 to this format: a `job` column (NULL: a sweep removes nobody
/// until a run has met them), and each email keyed without its case, as Customer.io compares
/// them (two rows of one person become one). In place, in the run's transaction; in a dry run,
/// which writes nothing, in a copy in `temp` that shadows the file's table.
fn upgrade(conn: &Connection, in_place: bool) -> rusqlite::Result<()> {
    let table = if in_place {
        conn.execute_batch(&format!(
            "ALTER TABLE main.entities ADD COLUMN job TEXT; \
             UPDATE main.meta SET value = '{FORMAT}' WHERE key = 'format';"
        ))?;
        "main.entities"
    } else {
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE {ENTITIES}; INSERT INTO temp.entities \
             SELECT kind, key, name, digest, NULL FROM main.entities;"
        ))?;
        "temp.entities"
    };
    let mixed: Vec<(i64, String)> = conn
        .prepare(&format!(
            "SELECT key, name FROM {table} WHERE kind = 'person' AND name LIKE '{{\"email\":%'"
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut rekey = conn.prepare(&format!(
        "UPDATE OR REPLACE {table} SET key = ?2 WHERE kind = 'person' AND key = ?1"
    ))?;
    for (key, name) in mixed {
        // A name that does not read back is left as it is: the sweep says so if it meets it.
        if let Ok(person) = serde_json::from_str::<Identifier>(&name) {
            let folded = sql_key(Operation::Delete(person).order().keys()[0]);
            if folded != key {
                rekey.execute(params![key, folded])?;
            }
        }
    }
    Ok(())
}

/// Now, as the `runs` table writes times: RFC 3339, UTC, to the second.
fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| String::new(), |t| t.to_string())
}

/// Refuses a SQLite file another application wrote, before anything is written to it: only
/// an empty one or one holding our `meta` format is a state.
fn ours(conn: &Connection, path: &Path) -> Result<(), String> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| say(path, e))?;
    let format = || {
        conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get::<_, String>(0)
        })
    };
    if tables.is_empty() || (tables.iter().any(|t| t == "meta") && format().is_ok()) {
        return Ok(());
    }
    Err(format!(
        "--state {}: not a cio-import state (it holds the tables {}): choose another --state \
         path",
        path.display(),
        tables.join(", ")
    ))
}

fn say(path: &Path, e: rusqlite::Error) -> String {
    let why = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "another run is using it (one run at a time per state); wait for it to end".to_owned()
        }
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "it is not a cio-import state (not a SQLite database); give another path".to_owned()
        }
        _ => e.to_string(),
    };
    format!("--state {}: {why}", path.display())
}

/// A read-only look at a state: its target, what it holds per kind, and its last runs.
pub fn describe(path: &Path) -> Result<String, String> {
    if !path.exists() {
        return Err(format!("--show-state {}: no such file", path.display()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| say(path, e))?;
    ours(&conn, path)?;
    let err = |e: rusqlite::Error| say(path, e);
    let target: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'target'", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    let mut out = format!("{}\n  target: {target}\n", path.display());
    for kind in Kind::ALL {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM entities WHERE kind = ?1",
                [kind.name()],
                |r| r.get(0),
            )
            .map_err(err)?;
        out.push_str(&format!(
            "  {}: {}\n",
            kind.name(),
            indicatif::HumanCount(n as u64)
        ));
    }
    // Whose people a sweep would weigh; a state of format 1 has no jobs yet.
    let format: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    if format == FORMAT {
        let mut jobs = conn
            .prepare(
                "SELECT coalesce(job, '(no run met them since the upgrade)'), count(*) \
                 FROM entities WHERE kind = 'person' GROUP BY job ORDER BY job",
            )
            .map_err(err)?;
        let jobs = jobs
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err)?;
        for job in jobs {
            let (job, n) = job.map_err(err)?;
            let n = indicatif::HumanCount(n as u64);
            out.push_str(&format!("  people of job {job}: {n}\n"));
        }
    }
    let mut runs = conn
        .prepare(
            "SELECT id, started, finished, accepted, unchanged, failed, removed FROM runs \
             ORDER BY id DESC LIMIT 5",
        )
        .map_err(err)?;
    let rows = runs
        .query_map([], |r| {
            let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0));
            Ok(match r.get::<_, Option<String>>(2)? {
                Some(finished) => format!(
                    "  run {}: {} to {finished}: {} accepted, {} unchanged, {} failed, {} removed",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    n(3)?,
                    n(4)?,
                    n(5)?,
                    n(6)?
                ),
                None => format!(
                    "  run {}: {}, did not finish (stopped, or still going)",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?
                ),
            })
        })
        .map_err(err)?;
    for row in rows {
        out.push_str(&row.map_err(err)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::record::{IdKind, Identifier};

    const JOB: &str = "/exports/users-#.csv";

    fn person(id: &str) -> Identifier {
        Identifier {
            kind: IdKind::Id,
            value: id.to_owned(),
        }
    }

    fn identify(id: &str) -> Operation {
        Operation::Identify {
            person: person(id),
            attributes: Map::new(),
        }
    }

    /// Opens `path` for a new run and records `ops` as accepted.
    fn run_accepting(path: &Path, ops: &[Operation]) -> State {
        let mut state = State::open(path, "the sandbox", Some(JOB), false, false).unwrap();
        for op in ops {
            let memo = Memo::of(op, &[]).unwrap();
            state.accepted(&memo, op).unwrap();
        }
        state.commit().unwrap();
        state
    }

    fn unchanged(state: &mut State, op: &Operation) -> bool {
        state.unchanged(&Memo::of(op, &[]).unwrap()).unwrap()
    }

    #[test]
    fn a_delete_forgets_and_a_merge_moves_the_secondary_to_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let merge = Operation::Merge {
            primary: person("c"),
            secondary: person("b"),
        };
        let ops = [
            identify("a"),
            identify("b"),
            Operation::Delete(person("a")),
            merge,
        ];
        drop(run_accepting(&path, &ops));
        let mut state = State::open(&path, "the sandbox", Some(JOB), false, false).unwrap();
        // Forgotten: sent again. Moved: the primary is held, with nothing to compare.
        assert!(!unchanged(&mut state, &identify("a")));
        assert!(!unchanged(&mut state, &identify("c")));
        let absent = Absent {
            missing: 0,
            held: 1,
            others: 0,
        };
        assert_eq!(state.missing().unwrap(), absent, "c was seen; b is gone");
        state.make_sweep().unwrap();
        assert_eq!(state.sweep_len().unwrap(), None);
        drop(state);

        // A new run that meets nobody finds c missing, by its name.
        let mut state = State::open(&path, "the sandbox", Some(JOB), false, false).unwrap();
        state.make_sweep().unwrap();
        assert_eq!(state.sweep_len().unwrap(), Some(1));
        let missing = state.sweep_page(0, 10).unwrap();
        assert_eq!(missing, [(0, r#"{"id":"c"}"#.to_owned())]);
    }

    /// The key a state of format 1 held for an email: hashed with its case.
    fn cased_key(email: &str) -> i64 {
        let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        for field in ["email", email] {
            let len = (field.len() as u64).to_le_bytes();
            for &b in len.iter().chain(field.as_bytes()) {
                hash = (hash ^ u128::from(b)).wrapping_mul((1 << 88) + 0x13b);
            }
        }
        (hash >> 64) as u64 as i64
    }

    #[test]
    fn a_state_of_format_1_keys_emails_without_their_case_once_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('format', '1'), ('target', 'the sandbox');
             CREATE TABLE entities (kind TEXT NOT NULL, key INTEGER NOT NULL, name TEXT NOT \
             NULL, digest BLOB, PRIMARY KEY (key, kind)) WITHOUT ROWID;",
        )
        .unwrap();
        // One person twice, by two cases of their email, and another once.
        for email in [
            "User1@Example.com",
            "user1@example.com",
            "User2@Example.com",
        ] {
            let name = json!({ "email": email }).to_string();
            old.execute(
                "INSERT INTO entities VALUES ('person', ?1, ?2, NULL)",
                params![cased_key(email), name],
            )
            .unwrap();
        }
        drop(old);
        let key = |email: &str| {
            let person = Identifier {
                kind: IdKind::Email,
                value: email.to_owned(),
            };
            sql_key(Operation::Delete(person).order().keys()[0])
        };
        let keys = |state: &State| -> Vec<i64> {
            let mut s = state
                .conn
                .prepare("SELECT key FROM entities ORDER BY key")
                .unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let mut folded = vec![key("user1@example.com"), key("user2@example.com")];
        folded.sort();
        // A dry run reads it upgraded and leaves the file as it was.
        let dry = State::open(&path, "the sandbox", Some(JOB), false, true).unwrap();
        assert_eq!(keys(&dry), folded);
        drop(dry);
        let mut state = State::open(&path, "the sandbox", Some(JOB), false, false).unwrap();
        assert_eq!(keys(&state), folded);
        state.commit().unwrap();
        drop(state);
        let file = Connection::open(&path).unwrap();
        let format: String = file
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(format, FORMAT);
    }

    #[test]
    fn a_person_met_twice_in_a_run_is_not_unchanged_the_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(run_accepting(&path, &[identify("a")]));
        let mut state = State::open(&path, "the sandbox", Some(JOB), false, false).unwrap();
        assert!(unchanged(&mut state, &identify("a")));
        assert!(!unchanged(&mut state, &identify("a")));
        drop(state);
        let refused = State::open(&path, "workspace s (us)", Some(JOB), false, false)
            .err()
            .unwrap();
        assert!(refused.contains("it holds what was sent to the sandbox, not workspace s (us)"));
    }
}
