//! Reporting: the live counters, the progress display (the only thing that draws on
//! stderr), and the end-of-run summary.

mod counters;
mod progress;
pub mod say;
mod summary;

pub use counters::{Counters, Tally};
pub use progress::{ProgressMode, Reporter};
pub use summary::Summary;

use indicatif::HumanCount;

/// "1 record", "2,000 records", "1 retry", "3 retries".
pub fn counted(n: u64, noun: &str) -> String {
    let plural = match (n, noun.strip_suffix('y')) {
        (1, _) => noun.to_owned(),
        (_, Some(stem)) => format!("{stem}ies"),
        _ => format!("{noun}s"),
    };
    format!("{} {plural}", HumanCount(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_right_plural() {
        assert_eq!(counted(1, "retry"), "1 retry");
        assert_eq!(counted(3, "retry"), "3 retries");
        assert_eq!(counted(1, "429"), "1 429");
        assert_eq!(counted(0, "429"), "0 429s");
        assert_eq!(counted(2_000, "record"), "2,000 records");
    }
}
