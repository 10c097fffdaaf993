//! The delivery outcome policy (docs/ARCHITECTURE.md): what a response means and when to try again.
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
    /// A 2xx whose body says the request failed (a profile's reading of the body, e.g.
    /// Voximplant's `{"error": {...}}`): not retried, like a 4xx.
    Refused {
        /// The HTTP status (2xx).
        status: u16,
        /// What the body said.
        detail: String,
    },
    /// The request could not even be built (e.g. a job path that makes an invalid URL).
    Unsendable(String),
}

/// Every `outcome` of `relay_delivery_attempts_total`, one per [`Outcome`] variant
/// ([`Outcome::label`]).
pub const ATTEMPT_OUTCOMES: &[&str] = &[
    "delivered",
    "retryable",
    "gone",
    "rejected",
    "refused",
    "invalid",
];

impl Outcome {
    /// Its label: the `outcome` of `relay_delivery_attempts_total` and of the attempt history.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered(_) => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Gone => "gone",
            Outcome::Permanent(_) => "rejected",
            Outcome::Refused { .. } => "refused",
            Outcome::Unsendable(_) => "invalid",
        }
    }
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

pub use relay_core::backoff::{pick_tier, retry_delay};

/// The delay tier for a job deferred without an attempt, expected to be taken after `wait`:
/// the longest tier not past `wait` (so it comes back no later than needed, and is deferred
/// again if still early), else the shortest.
pub fn defer_tier(tiers: &[Duration], wait: Duration) -> Duration {
    tiers
        .iter()
        .copied()
        .rfind(|t| *t <= wait)
        .or_else(|| tiers.first().copied())
        .expect("configuration guarantees at least one tier")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_label_registered_at_start_up() {
        let one_of_each = [
            Outcome::Delivered(200),
            Outcome::Retryable {
                reason: String::new(),
                status: None,
                retry_after: None,
            },
            Outcome::Gone,
            Outcome::Permanent(400),
            Outcome::Refused {
                status: 200,
                detail: String::new(),
            },
            Outcome::Unsendable(String::new()),
        ];
        let labels: Vec<&str> = one_of_each.iter().map(Outcome::label).collect();
        assert_eq!(labels, ATTEMPT_OUTCOMES);
    }

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
    fn deferrals_come_back_no_later_than_needed() {
        let tiers: Vec<Duration> = [1, 5, 30].into_iter().map(Duration::from_secs).collect();
        let at = |ms| defer_tier(&tiers, Duration::from_millis(ms));
        assert_eq!(at(0), Duration::from_secs(1), "at least the shortest");
        assert_eq!(at(999), Duration::from_secs(1));
        assert_eq!(at(9_999), Duration::from_secs(5));
        assert_eq!(at(30_000), Duration::from_secs(30));
        assert_eq!(at(86_400_000), Duration::from_secs(30));
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
}
