//! The end-of-run figures: JSON for `--summary`, and the human lines on stderr.

use std::path::PathBuf;

use indicatif::HumanCount;
use serde::Serialize;

use super::counted;
use crate::record::Oversize;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The end-of-run figures; `--summary` writes them as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub records: u64,
    pub accepted: u64,
    pub failed: u64,
    pub invalid: u64,
    /// Of those, rows that could not be read (`_raw` lines, which a replay cannot map).
    #[serde(skip)]
    pub unreadable: u64,
    /// Not sent: unchanged since the last accepted one (`--state`).
    pub unchanged: u64,
    /// People the state held that the inputs no longer had, removed (`--missing`); in a dry
    /// run, those that would be.
    pub missing: u64,
    /// Read but not settled: the run stopped before they were sent (resume sends them).
    pub unsent: u64,
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// Events read that can still trigger campaigns and messages (see `Counters`).
    pub recent_events: u64,
    /// Attribute values over 1,000 bytes that `--oversize` changed, and what it did to them;
    /// left out of the JSON when none was.
    #[serde(skip_serializing_if = "is_zero")]
    pub oversized: u64,
    /// Of those, the ones cut to fit (the rest were left out).
    #[serde(skip)]
    pub oversized_cut: u64,
    #[serde(skip_serializing_if = "Oversize::is_reject")]
    pub oversize: Oversize,
    pub elapsed_s: f64,
    /// Accepted records per second over the run.
    pub accepted_per_s: f64,
    /// The pace when the run ended: after 429s, what the server was found to accept.
    pub final_rate: Option<f64>,
    pub failures_path: Option<PathBuf>,
    /// The command that replays the failures file as this run would, once the run is
    /// complete (for people, not JSON).
    #[serde(skip)]
    pub replay: Option<String>,
    pub checkpoint_path: Option<PathBuf>,
    pub dry_run: bool,
    pub exit_code: u8,
    /// Whether the run carried on from a checkpoint (`--resume`): some counts are this
    /// part's only.
    #[serde(skip)]
    pub resumed: bool,
    /// Whether the run had a `--state` (for people: the line of what it sent and skipped).
    #[serde(skip)]
    pub incremental: bool,
    /// `--missing delete` or `suppress`, when the state may remove people.
    #[serde(skip)]
    pub removal: Option<String>,
}

impl Summary {
    /// The human summary, for stderr.
    pub fn human(&self) -> String {
        let verb = if self.dry_run { "valid" } else { "accepted" };
        let mut s = format!(
            "{} in {:.1}s: {} {verb}, {} failed, {} invalid",
            counted(self.records, "record"),
            self.elapsed_s,
            HumanCount(self.accepted),
            HumanCount(self.failed),
            HumanCount(self.invalid),
        );
        if self.unchanged > 0 {
            s.push_str(&format!(", {} unchanged", HumanCount(self.unchanged)));
        }
        if self.unsent > 0 {
            s.push_str(&format!(", {} not sent", HumanCount(self.unsent)));
        }
        if self.incremental {
            let (sent, removed) = if self.dry_run {
                ("would be sent", "would be removed")
            } else {
                ("sent", "removed")
            };
            s.push_str(&format!(
                "\n  {} {sent}, {} skipped as unchanged (--state)",
                counted(self.accepted + self.failed, "record"),
                HumanCount(self.unchanged),
            ));
            if let Some(removal) = &self.removal {
                let people = if self.missing == 1 {
                    "person"
                } else {
                    "people"
                };
                s.push_str(&format!(
                    "; {} {people} {removed} as missing ({removal})",
                    HumanCount(self.missing)
                ));
            }
        }
        if !self.dry_run {
            s.push_str(&format!(
                "\n  {} ({}, {} answered 429), {:.1} accepted/s",
                counted(self.requests, "request"),
                counted(self.retries, "retry"),
                HumanCount(self.rate_limited),
                self.accepted_per_s
            ));
            if let Some(r) = self.final_rate.filter(|_| self.rate_limited > 0) {
                s.push_str(&format!("; the server accepted about {r:.1} requests/s"));
            }
        }
        if self.recent_events > 0 {
            let one = self.recent_events == 1;
            let (are, they) = match (self.dry_run, one) {
                (true, true) => ("is", "it would be able to"),
                (true, false) => ("are", "they would be able to"),
                (false, true) => ("was", "it can"),
                (false, false) => ("were", "they can"),
            };
            // The events an earlier part of the run read are not read again to be counted.
            let part = if self.resumed {
                " (of the records this --resume read)"
            } else {
                ""
            };
            s.push_str(&format!(
                "\n  {}{part} {are} from the last 72 hours or without a time: {they} \
                 trigger campaigns and messages (older events do not)",
                counted(self.recent_events, "event")
            ));
        }
        if self.oversized > 0 {
            let left = self.oversized - self.oversized_cut;
            let done = match (self.oversized_cut, left) {
                (0, _) => " left out".to_owned(),
                (_, 0) => " cut to fit".to_owned(),
                (cut, left) => format!(
                    ": {} cut to fit, {} left out (JSON, which cannot be cut)",
                    HumanCount(cut),
                    HumanCount(left)
                ),
            };
            s.push_str(&format!(
                "\n  {} over 1,000 bytes{done} (--oversize {})",
                counted(self.oversized, "attribute value"),
                self.oversize.flag_name()
            ));
        }
        if let Some(p) = &self.failures_path {
            // Both kinds go to the one file; `_error.stage` tells them apart.
            let kinds = [
                (
                    self.failed,
                    "failed (sent and refused: _error.stage \"send\")",
                ),
                (
                    self.invalid,
                    "invalid (never sent: _error.stage \"invalid\")",
                ),
            ];
            let held: Vec<String> = kinds
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, kind)| format!("{} {kind}", HumanCount(*n)))
                .collect();
            s.push_str(&format!(
                "\n  failures: {}: {}",
                p.display(),
                held.join(", ")
            ));
            if self.dry_run {
                s.push_str("\n  fix these rows in the input before the real run");
            } else if let Some(command) = &self.replay {
                let unreadable = match self.unreadable {
                    1 => "1 row could not be read",
                    _ => "these rows could not be read",
                };
                let fix = "(_raw lines, which a replay cannot map): fix them in the original \
                           input and import those rows again";
                if self.unreadable == self.failed + self.invalid {
                    s.push_str(&format!("\n  {unreadable} {fix}"));
                } else {
                    s.push_str(&format!("\n  fix and replay: {command}"));
                    if self.unreadable > 0 {
                        s.push_str(&format!(
                            "\n  {} of them could not be read {fix}",
                            HumanCount(self.unreadable)
                        ));
                    }
                }
            }
        }
        if let Some(p) = &self.checkpoint_path {
            s.push_str(&format!(
                "\n  checkpoint: {} (kept for --resume)",
                p.display()
            ));
        }
        s
    }
}
