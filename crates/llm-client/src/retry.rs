//! When to retry and how long to wait: exponential backoff with jitter ([`Backoff`], public so
//! services retrying their own work wait the same way), or the server's `Retry-After`, both
//! capped.

use std::time::{Duration, SystemTime};

use rand::Rng as _;

/// Whether a status is worth another attempt: rate limiting and the 5xx that mean "try again"
/// (not 501 or 505, which will not change on a retry).
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Exponential backoff with jitter: the wait before retry `n` (1 for the first) is
/// `initial * 2^(n-1)` capped at `max`, then jittered into `[d/2, d]` so clients that failed
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry, before jitter.
    pub initial: Duration,
    /// The longest wait, also the cap on a wait the server asks for.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first; 0 counts as 1). Saturates
    /// instead of overflowing, however large the numbers.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let full = self.initial.saturating_mul(factor).min(self.max);
        let half = full / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = rand::rng().random_range(0..=spread);
        half.saturating_add(Duration::from_nanos(jitter)).min(full)
    }

    /// A wait the server asked for (`Retry-After`), capped at `max` so a server cannot park
    /// us for hours.
    pub fn cap(&self, wait: Duration) -> Duration {
        wait.min(self.max)
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date, relative to `now`; `None` when absent or
/// unparseable. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let backoff = Backoff { initial, max };
        for _ in 0..50 {
            let first = backoff.delay(1);
            assert!(
                first >= Duration::from_millis(50) && first <= initial,
                "{first:?}"
            );
            let third = backoff.delay(3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff.delay(40);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
        let none = Backoff {
            initial: Duration::ZERO,
            max,
        };
        assert_eq!(none.delay(3), Duration::ZERO);
        // Extremes saturate instead of overflowing.
        let huge = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
        };
        let _ = huge.delay(u32::MAX);
    }

    #[test]
    fn server_waits_are_capped_at_the_longest_backoff() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        assert_eq!(backoff.cap(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(
            backoff.cap(Duration::from_secs(3600)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [429, 500, 502, 503, 504] {
            assert!(retryable_status(status));
        }
        for status in [400, 401, 403, 404, 422, 501, 505] {
            assert!(!retryable_status(status));
        }
    }
}
