//! When to retry and how long to wait: exponential backoff with jitter, or the server's
//! `Retry-After`, both capped.

use std::time::{Duration, SystemTime};

/// Whether a status is worth another attempt: rate limiting and the 5xx that mean "try again"
/// (not 501 or 505, which will not change on a retry).
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// The wait before resend number `resend` (1 for the first retry): `initial * 2^(resend-1)`
/// capped at `max`, then jittered into `[d/2, d]` so clients that failed together do not
/// retry together.
pub(crate) fn backoff(initial: Duration, max: Duration, resend: u32) -> Duration {
    let factor = 1u32
        .checked_shl(resend.saturating_sub(1))
        .unwrap_or(u32::MAX);
    let full = initial.saturating_mul(factor).min(max);
    let half = full / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = match spread.checked_add(1) {
        Some(modulus) => entropy(resend) % modulus,
        None => entropy(resend),
    };
    half.saturating_add(Duration::from_nanos(jitter)).min(full)
}

/// A cheap, non-cryptographic random number: jitter only has to decorrelate clients, so the
/// clock's nanoseconds mixed by SplitMix64 will do and spare us a `rand` dependency.
fn entropy(salt: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut z = (u64::from(nanos) << 32 | u64::from(salt)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
        for _ in 0..50 {
            let first = backoff(initial, max, 1);
            assert!(
                first >= Duration::from_millis(50) && first <= initial,
                "{first:?}"
            );
            let third = backoff(initial, max, 3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff(initial, max, 40);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
        assert_eq!(backoff(Duration::ZERO, max, 3), Duration::ZERO);
        // Extremes saturate instead of overflowing.
        let _ = backoff(Duration::MAX, Duration::MAX, u32::MAX);
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
