//! Log throttling: at most one line per kind per interval, each carrying the count of the lines
//! it stands for, so a flood of refusals or an outage cannot flood the logs.
//!
//! Throttling is for logs only. Whatever is throttled must also be counted in a metric on every
//! occurrence (`relay_ingress_requests_total`, `relay_amqp_publish_total`, …): the metric has the
//! exact numbers, the log the first example of each kind per interval and how many it stood for.
//!
//! ```
//! use std::sync::LazyLock;
//! use std::time::Duration;
//! use relay_telemetry::throttle::Throttles;
//!
//! static REFUSED: LazyLock<Throttles> = LazyLock::new(|| Throttles::new(Duration::from_secs(1)));
//! # let (source, outcome) = ("voximplant", "bad_signature");
//! if let Some(suppressed) = REFUSED.allow(&(source, outcome)) {
//!     tracing::info!(source, outcome, suppressed, "request refused");
//! }
//! ```
//!
//! Lines suppressed at the end of a burst are reported by the next line of their kind, if one
//! ever comes; the metric has them either way.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Kinds a [`Throttles`] tracks separately; past this, new kinds share one throttle, so a
/// caller that passes unbounded kinds cannot grow memory without bound.
pub const MAX_KINDS: usize = 1024;

/// One kind of line: lock-free, cheap enough for a hot path.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    /// Milliseconds since [`epoch`] before which no line is allowed.
    next_ms: AtomicU64,
    /// Lines held back since the last one allowed.
    suppressed: AtomicU64,
}

impl Throttle {
    /// A throttle allowing one line per `interval` (at least a millisecond).
    pub const fn new(interval: Duration) -> Self {
        let ms = interval.as_millis();
        Self {
            interval_ms: if ms == 0 {
                1
            } else if ms > u64::MAX as u128 {
                u64::MAX
            } else {
                ms as u64
            },
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the lines suppressed since the
    /// previous one (write it in the line); `None` when this one is suppressed.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Acquire);
        // Of callers racing past the same instant, only the one whose exchange wins writes.
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.interval_ms),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// Throttles by kind: `allow(&kind)` for any hashable kind (a name, a `(source, outcome)` pair),
/// each kind with its own [`Throttle`]. Looking up a known kind takes a shared lock and no
/// allocation.
///
/// Kinds are told apart by a 64-bit hash; two kinds that collide (vanishingly unlikely for the
/// few dozen kinds a service has) would share one throttle, which only moves lines between
/// their suppressed counts.
#[derive(Debug)]
pub struct Throttles {
    interval: Duration,
    kinds: RwLock<HashMap<u64, Throttle, BuildHasherDefault<DefaultHasher>>>,
    overflow: Throttle,
}

impl Throttles {
    /// Throttles allowing one line per kind per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: RwLock::default(),
            overflow: Throttle::new(interval),
        }
    }

    /// Like [`Throttle::allow`], for the line's `kind`.
    pub fn allow<K: Hash + ?Sized>(&self, kind: &K) -> Option<u64> {
        self.allow_at(kind, now_ms())
    }

    fn allow_at<K: Hash + ?Sized>(&self, kind: &K, now_ms: u64) -> Option<u64> {
        // Fixed keys: the fingerprint must be the same on every call.
        let key = BuildHasherDefault::<DefaultHasher>::default().hash_one(kind);
        {
            let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
            if let Some(throttle) = kinds.get(&key) {
                return throttle.allow_at(now_ms);
            }
        }
        let mut kinds = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        if kinds.len() >= MAX_KINDS && !kinds.contains_key(&key) {
            return self.overflow.allow_at(now_ms);
        }
        kinds
            .entry(key)
            .or_insert_with(|| Throttle::new(self.interval))
            .allow_at(now_ms)
    }
}

/// Milliseconds since the first throttled line of the process.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_carrying_the_count_of_the_suppressed() {
        let throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.allow_at(5_000), Some(0), "the first line goes out");
        for t in [5_000, 5_001, 5_500, 5_999] {
            assert_eq!(throttle.allow_at(t), None, "within the interval at {t}");
        }
        assert_eq!(
            throttle.allow_at(6_000),
            Some(4),
            "the next line counts the four"
        );
        assert_eq!(throttle.allow_at(6_100), None);
        assert_eq!(throttle.allow_at(60_000), Some(1));
        assert_eq!(throttle.allow_at(60_000), None);
    }

    #[test]
    fn every_call_is_either_written_or_counted_once() {
        let throttle = std::sync::Arc::new(Throttle::new(Duration::from_millis(10)));
        let written_and_reported: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|thread| {
                    let throttle = throttle.clone();
                    scope.spawn(move || {
                        let mut total = 0;
                        for i in 0..10_000u64 {
                            if let Some(suppressed) = throttle.allow_at(thread * 7 + i / 3) {
                                total += 1 + suppressed;
                            }
                        }
                        total
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let pending = throttle.suppressed.load(Ordering::Acquire);
        assert_eq!(written_and_reported + pending, 40_000);
    }

    #[test]
    fn kinds_are_throttled_separately() {
        let throttles = Throttles::new(Duration::from_secs(1));
        assert_eq!(
            throttles.allow_at(&("voximplant", "bad_signature"), 0),
            Some(0)
        );
        assert_eq!(
            throttles.allow_at(&("voximplant", "bad_signature"), 1),
            None
        );
        // Another kind is not held back by the first one's flood.
        assert_eq!(throttles.allow_at(&("plivo", "bad_signature"), 2), Some(0));
        assert_eq!(throttles.allow_at("publish failed", 3), Some(0));
        // A borrowed and an owned key of the same kind are the same kind.
        let owned = (String::from("voximplant"), "bad_signature");
        assert_eq!(throttles.allow_at(&owned, 4), None);
        assert_eq!(throttles.allow_at(&owned, 1_000), Some(2));
    }

    #[test]
    fn unbounded_kinds_share_one_throttle_past_the_cap() {
        let throttles = Throttles::new(Duration::from_secs(1));
        for i in 0..MAX_KINDS {
            assert_eq!(throttles.allow_at(&i, 0), Some(0));
        }
        assert_eq!(throttles.allow_at(&(MAX_KINDS + 1), 0), Some(0));
        assert_eq!(throttles.allow_at(&(MAX_KINDS + 2), 0), None);
        assert_eq!(throttles.kinds.read().unwrap().len(), MAX_KINDS);
    }
}
