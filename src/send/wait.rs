//! How long a request waits before it is tried again: backoff with full jitter, and the
//! server's own word in Retry-After.

use std::time::{Duration, SystemTime};

use rand::RngExt;

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
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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
}
