//! The delivery outcome policy (DESIGN.md): what a response means and when to try again.
//!
//! 2xx: done. 5xx, 408, 429, timeout, connection error: retry with exponential backoff and
//! jitter, honouring `Retry-After`, until the destination's attempt or age limit, then
//! dead-letter. 410: dead-letter and flag the destination. Other 4xx: dead-letter at once, never
//! retried. 3xx: not followed, a failure that no retry fixes.

use std::time::{Duration, SystemTime};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered(u16),
    /// Worth another try later; `retry_after` when the destination asked for a pause.
    Retryable {
        /// Short description (`status 503`, `timeout`, `connection error`).
        reason: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The destination's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// 410: the destination is gone for good.
    Gone,
    /// Any other status: retrying the same request cannot succeed.
    Permanent(u16),
    /// The request could not even be built (e.g. a job path that makes an invalid URL).
    Unsendable(String),
}

/// Classifies a response status (with its `Retry-After` header value, if any).
pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered(status),
        408 | 429 | 500..=599 => Outcome::Retryable {
            reason: format!("status {status}"),
            status: Some(status),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        410 => Outcome::Gone,
        _ => Outcome::Permanent(status),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The pause before attempt `next_attempt` (2 for the first retry): `base * 2^(n-2)` capped at
/// `max`, with "equal jitter" (a random point in the upper half), and never less than the
/// destination's `Retry-After`.
pub fn retry_delay(
    next_attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    unit_random: f64,
) -> Duration {
    let exponent = next_attempt.saturating_sub(2).min(30);
    let raw = base.saturating_mul(1u32 << exponent).min(max);
    let jittered = raw.mul_f64(0.5 + 0.5 * unit_random.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or(Duration::ZERO))
}

/// The delay tier to park a retry in: the shortest tier at least `delay`, else the longest.
pub fn pick_tier(tiers: &[Duration], delay: Duration) -> Duration {
    tiers
        .iter()
        .copied()
        .find(|t| *t >= delay)
        .or_else(|| tiers.last().copied())
        .expect("configuration guarantees at least one tier")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn statuses_follow_the_design() {
        assert_eq!(classify(200, None, NOW), Outcome::Delivered(200));
        assert_eq!(classify(204, None, NOW), Outcome::Delivered(204));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, None, NOW), Outcome::Retryable { .. }),
                "{s}"
            );
        }
        assert_eq!(classify(410, None, NOW), Outcome::Gone);
        for s in [301, 302, 400, 401, 403, 404, 422] {
            assert_eq!(classify(s, None, NOW), Outcome::Permanent(s), "{s}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        assert_eq!(
            parse_retry_after("120", NOW),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", NOW), None);
        match classify(503, Some("7"), NOW) {
            Outcome::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(2, base, max, None, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, base, max, None, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(5, base, max, None, 1.0), Duration::from_secs(8));
        assert_eq!(retry_delay(5, base, max, None, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(40, base, max, None, 1.0), max);
        assert_eq!(
            retry_delay(2, base, max, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn tiers_round_up_then_saturate() {
        let tiers = [
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(30),
        ];
        assert_eq!(
            pick_tier(&tiers, Duration::from_millis(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            pick_tier(&tiers, Duration::from_secs(2)),
            Duration::from_secs(5)
        );
        assert_eq!(
            pick_tier(&tiers, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(
            pick_tier(&tiers, Duration::from_secs(99)),
            Duration::from_secs(30)
        );
    }
}
