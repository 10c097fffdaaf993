//! Exponential backoff with jitter, and the durable delay tier a pause waits in: shared by
//! delivery's retries and the worker's handler retries.

use std::time::Duration;

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
