//! How long a request waits before it is tried again and how often it is tried: backoff
//! with full jitter, the server's own word in Retry-After, and the limits from the command
//! line.

use std::time::{Duration, SystemTime};

use rand::RngExt;

/// What the retry loop needs from the command line.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub max_retry_after: Duration,
    pub max_consecutive_failures: u32,
}

impl RetryPolicy {
    /// A server's Retry-After, cut to --max-retry-after.
    pub(super) fn cap(&self, retry_after: Option<Duration>) -> Option<Duration> {
        retry_after.map(|d| d.min(self.max_retry_after))
    }

    /// The wait before retry number `retry` (1-based): the server's word, else a backoff.
    pub(super) fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.cap(retry_after)
            .unwrap_or_else(|| backoff(retry, &mut rand::rng()))
    }

    /// Whether a request tried `attempts` times has used up its retries.
    pub(super) fn spent(&self, attempts: u32) -> bool {
        attempts > self.max_retries
    }

    /// "after 3 attempts (--max-retries 2)", for messages of requests given up.
    pub(super) fn after(&self, attempts: u32) -> String {
        format!(
            "after {} (--max-retries {})",
            crate::report::counted(u64::from(attempts), "attempt"),
            self.max_retries
        )
    }
}

/// Backoff before retry number `retry` (1-based): full jitter, a random wait between zero
/// and min(cap, base x 2^(retry-1)), so retrying workers spread out instead of colliding.
pub fn backoff(retry: u32, rng: &mut impl rand::Rng) -> Duration {
    const BASE: Duration = Duration::from_millis(250);
    // Customer.io's own Node client caps at 5 s; a little longer rides out a short outage,
    // and the pacer's slowdown, not this wait, is what protects a struggling endpoint.
    const CAP: Duration = Duration::from_secs(10);
    let ceiling = BASE
        .checked_mul(1u32 << (retry.saturating_sub(1)).min(16))
        .map_or(CAP, |d| d.min(CAP));
    Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos() as u64))
}

/// Reads a Retry-After value: delay-seconds or an HTTP date, relative to `now`. A date in
/// the past means "now"; anything else unreadable is ignored (None).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Some(delay) = loose_seconds(value) {
        return Some(delay);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds the standard does not allow but servers send: more than u64 holds (read as the
/// longest wait, which --max-retry-after then cuts) or with a fraction (rounded up to whole
/// milliseconds, so a wait is never shorter than asked).
fn loose_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    // All digits, so the only way to fail is to be too large.
    let secs = whole.parse::<u64>().unwrap_or(u64::MAX);
    let millis = (fraction.bytes().chain(std::iter::repeat(b'0')).take(3))
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'));
    let past_millis = fraction.bytes().skip(3).any(|b| b != b'0');
    let millis = Duration::from_millis(millis + u64::from(past_millis));
    Some(Duration::from_secs(secs).saturating_add(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=10u32 {
            let ceiling =
                Duration::from_millis(250 * (1 << (retry - 1))).min(Duration::from_secs(10));
            let waits: Vec<_> = (0..200).map(|_| backoff(retry, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling));
            // Spread across the range, not stuck at one end.
            assert!(waits.iter().any(|w| *w < ceiling / 4));
            assert!(waits.iter().any(|w| *w > ceiling * 3 / 4));
        }
        assert!(backoff(u32::MAX, &mut rng) <= Duration::from_secs(10));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn retry_after_past_u64_is_the_longest_wait_and_a_fraction_is_rounded_up() {
        let now = SystemTime::UNIX_EPOCH;
        let read = |v| parse_retry_after(v, now);
        for huge in ["99999999999999999999", "99999999999999999999.5"] {
            assert!(read(huge) >= Some(Duration::from_secs(u64::MAX)), "{huge}");
        }
        assert_eq!(read("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(read(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(read("2."), Some(Duration::from_secs(2)));
        assert_eq!(read("0.0001"), Some(Duration::from_millis(1)));
        assert_eq!(read("1.2340"), Some(Duration::from_millis(1234)));
        assert_eq!(read("1.23401"), Some(Duration::from_millis(1235)));
        for garbage in [
            "-1.5",
            "-99999999999999999999",
            ".5",
            "1.5.",
            "1,5",
            "1e3",
            "1.5s",
            "",
        ] {
            assert_eq!(read(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn a_huge_retry_after_is_cut_to_max_retry_after() {
        let policy = RetryPolicy {
            max_retries: 3,
            max_retry_after: Duration::from_secs(2),
            max_consecutive_failures: 10,
        };
        let huge = parse_retry_after("99999999999999999999", SystemTime::UNIX_EPOCH);
        assert_eq!(policy.wait(1, huge), Duration::from_secs(2));
        assert_eq!(policy.cap(huge), Some(Duration::from_secs(2)));
        let half = Some(Duration::from_millis(500));
        assert_eq!(policy.wait(1, half), Duration::from_millis(500));
        // Without a word from the server, the backoff of the first retry: at most 250 ms.
        assert!(policy.wait(1, None) <= Duration::from_millis(250));
    }
}
