//! `--missing` and `--max-missing`: what becomes of the people a state holds that a complete
//! run over a full export did not meet, and the cap that keeps a truncated export from
//! wiping a workspace.

use std::fmt;
use std::str::FromStr;

use indicatif::HumanCount;

/// What to do with the people who left the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Missing {
    /// Keep them.
    #[default]
    Ignore,
    /// Delete them from Customer.io.
    Delete,
    /// Suppress them (and delete their data).
    Suppress,
}

/// `--max-missing`: the most people a run may remove, as a number or a share of those the
/// state holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxMissing {
    Count(u64),
    Percent(f64),
}

impl Default for MaxMissing {
    fn default() -> MaxMissing {
        MaxMissing::Percent(5.0)
    }
}

/// How the people who left the export are removed: a [`Missing`] that is not `ignore`, all a
/// sweep can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Delete,
    Suppress,
}

impl Missing {
    /// The removal it asks for; None for `ignore`.
    pub fn removal(self) -> Option<Removal> {
        match self {
            Missing::Ignore => None,
            Missing::Delete => Some(Removal::Delete),
            Missing::Suppress => Some(Removal::Suppress),
        }
    }
}

impl From<Removal> for Missing {
    fn from(removal: Removal) -> Missing {
        match removal {
            Removal::Delete => Missing::Delete,
            Removal::Suppress => Missing::Suppress,
        }
    }
}

impl FromStr for MaxMissing {
    type Err = String;

    fn from_str(s: &str) -> Result<MaxMissing, String> {
        let bad =
            || format!("expected a number of people (500) or a share of the state (5%), got {s:?}");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxMissing::Percent(p)),
                _ => Err(bad()),
            },
            None => s.trim().parse().map(MaxMissing::Count).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for MaxMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxMissing::Count(n) => write!(f, "{n}"),
            MaxMissing::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl MaxMissing {
    /// Whether `missing` of the `held` people may go; else the message that says how many
    /// would have, and how to allow it. `flag` is the removal as the command line says it
    /// (`--missing delete`).
    pub fn allows(self, missing: u64, held: u64, flag: &str) -> Result<(), String> {
        let cap = match self {
            MaxMissing::Count(n) => n,
            MaxMissing::Percent(p) => (held as f64 * p / 100.0).floor() as u64,
        };
        if missing <= cap {
            return Ok(());
        }
        let share = if held > 0 {
            missing as f64 * 100.0 / held as f64
        } else {
            0.0
        };
        Err(format!(
            "{flag}: {} of the {} people in the state ({share:.1}%) are not in \
             this run's inputs, more than --max-missing {self} allows: nothing was removed. If \
             the export is complete and they did leave, run again with --max-missing {} (or \
             {:.0}%)",
            HumanCount(missing),
            HumanCount(held),
            missing,
            share.ceil()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_count_or_a_share_of_the_state() {
        assert_eq!("5%".parse(), Ok(MaxMissing::Percent(5.0)));
        assert_eq!("120".parse(), Ok(MaxMissing::Count(120)));
        assert!("-3".parse::<MaxMissing>().is_err());
        assert!("120%".parse::<MaxMissing>().is_err());
        let five = MaxMissing::default();
        assert!(five.allows(500, 10_000, "--missing delete").is_ok());
        let refused = five.allows(4_000, 10_000, "--missing delete").unwrap_err();
        assert_eq!(
            refused,
            "--missing delete: 4,000 of the 10,000 people in the state (40.0%) are not in this \
             run's inputs, more than --max-missing 5% allows: nothing was removed. If the export \
             is complete and they did leave, run again with --max-missing 4000 (or 40%)"
        );
        assert!(
            MaxMissing::Count(0)
                .allows(1, 1, "--missing delete")
                .is_err()
        );
    }
}
