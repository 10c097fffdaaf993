//! The in-flight limiter: at most `max_in_flight` requests to one destination at once, and a job
//! that finds them all taken is not held for long.
//!
//! Every destination shares the consumer's prefetch slots (one consumer on `relay.deliveries`).
//! A job whose destination has no free slot waits for one only while that destination keeps
//! up: if one of its slots changed hands within the last [`PATIENCE`], the job waits at most
//! [`PATIENCE`]; otherwise, or when that wait runs out, it is deferred to a delay tier (without
//! spending an attempt) and its prefetch slot goes to the next job, whatever its destination.
//! So a destination that hangs holds at most `max_in_flight` prefetch slots (its hung requests)
//! plus, for one [`PATIENCE`] when it starts hanging, the jobs that were waiting for it; a
//! healthy destination at its limit is fed from memory rather than by cycling its jobs through
//! the broker (docs/ARCHITECTURE.md, "Delivery isolation").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest a job waits in memory for a slot, and how recently a slot must have changed hands
/// for it to wait at all. Long enough for a healthy destination's queue of waiters to move (a
/// slot frees every few hundred microseconds on loopback), short enough that a destination
/// which stops answering costs the others one such pause.
pub(crate) const PATIENCE: Duration = Duration::from_millis(20);

/// One destination's limiter.
pub(crate) struct InFlight {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    limit: u32,
    /// The origin of `progress`.
    base: Instant,
    /// When a slot last changed hands (taken or given back), in nanoseconds since `base`.
    progress: AtomicU64,
}

/// Whether a job may send now.
#[derive(Debug)]
pub(crate) enum Admission {
    /// A slot, held until dropped.
    Go(Slot),
    /// Every slot is taken, and none has changed hands for `stalled`.
    Full {
        /// Time since a slot last changed hands.
        stalled: Duration,
    },
}

/// A taken slot; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("limit", &self.limit)
            .field("free", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.moved(Instant::now());
    }
}

impl Inner {
    fn moved(&self, now: Instant) {
        let at =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.progress.fetch_max(at, Ordering::AcqRel);
    }

    fn stalled(&self, now: Instant) -> Duration {
        let since_base = now.saturating_duration_since(self.base);
        since_base.saturating_sub(Duration::from_nanos(self.progress.load(Ordering::Acquire)))
    }
}

impl InFlight {
    /// A limiter of `limit` slots (at least one).
    pub(crate) fn new(limit: u32) -> Self {
        let limit = limit.max(1);
        Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(limit as usize)),
                limit,
                base: Instant::now(),
                progress: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a free slot at `now`, without waiting.
    pub(crate) fn try_take(&self, now: Instant) -> Admission {
        match self.inner.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.inner.moved(now);
                Admission::Go(Slot {
                    _permit: permit,
                    inner: self.inner.clone(),
                })
            }
            Err(_) => Admission::Full {
                stalled: self.inner.stalled(now),
            },
        }
    }

    /// Takes a slot, waiting up to [`PATIENCE`] for one when the destination is keeping up.
    pub(crate) async fn take(&self) -> Admission {
        match self.try_take(Instant::now()) {
            Admission::Full { stalled } if may_wait(stalled) => {}
            decided => return decided,
        }
        // The semaphore is fair: a slot given back goes to the longest waiter.
        match tokio::time::timeout(PATIENCE, self.inner.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                self.inner.moved(Instant::now());
                Admission::Go(Slot {
                    _permit: permit,
                    inner: self.inner.clone(),
                })
            }
            // Timed out (the semaphore is never closed).
            _ => Admission::Full {
                stalled: self.inner.stalled(Instant::now()),
            },
        }
    }

    /// Requests in flight now.
    #[cfg(test)]
    pub(crate) fn taken(&self) -> u32 {
        let free = u32::try_from(self.inner.slots.available_permits()).unwrap_or(u32::MAX);
        self.inner.limit.saturating_sub(free)
    }
}

/// Whether a job whose destination has been at its limit, with no slot changing hands, for
/// `stalled` may wait for a slot in memory.
pub(crate) fn may_wait(stalled: Duration) -> bool {
    stalled < PATIENCE
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn never_more_than_the_limit_at_once() {
        let limiter = InFlight::new(2);
        let now = Instant::now();
        let a = limiter.try_take(now);
        let b = limiter.try_take(now);
        assert!(matches!(a, Admission::Go(_)) && matches!(b, Admission::Go(_)));
        assert!(matches!(limiter.try_take(now), Admission::Full { .. }));
        drop(a);
        assert!(matches!(limiter.try_take(now), Admission::Go(_)));
    }

    #[test]
    fn a_destination_that_stopped_moving_is_not_waited_for() {
        let limiter = InFlight::new(1);
        let now = Instant::now();
        let _held = limiter.try_take(now);
        let later = now + Duration::from_secs(3);
        match limiter.try_take(later) {
            Admission::Full { stalled } => {
                assert!(stalled >= Duration::from_secs(3), "{stalled:?}");
                assert!(!may_wait(stalled));
            }
            Admission::Go(_) => panic!("the only slot is held"),
        }
        assert!(may_wait(Duration::ZERO));
    }

    #[tokio::test]
    async fn a_held_slot_that_never_comes_back_defers_the_waiter() {
        let limiter = InFlight::new(1);
        let _held = limiter.take().await;
        // The slot was just taken, so the job waits, but not past its patience.
        assert!(matches!(limiter.take().await, Admission::Full { .. }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_contention_no_more_than_the_limit_are_out_and_all_come_back() {
        let limiter = Arc::new(InFlight::new(4));
        let peak = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let limiter = limiter.clone();
            let peak = peak.clone();
            tasks.push(tokio::spawn(async move {
                let mut sent = 0;
                for _ in 0..20 {
                    if let Admission::Go(slot) = limiter.take().await {
                        peak.fetch_max(u64::from(limiter.taken()), Ordering::AcqRel);
                        tokio::task::yield_now().await;
                        drop(slot);
                        sent += 1;
                    }
                }
                sent
            }));
        }
        let mut sent = 0;
        for task in tasks {
            sent += task.await.unwrap();
        }
        assert!(peak.load(Ordering::Acquire) <= 4);
        assert!(sent > 0);
        assert_eq!(limiter.taken(), 0, "every slot came back");
    }

    proptest! {
        /// Over any sequence of takes and returns, the slots out never pass the limit, a take
        /// fails exactly when they are all out, and every slot comes back.
        #[test]
        fn slots_are_counted_exactly(limit in 1u32..8, ops in proptest::collection::vec(any::<bool>(), 0..100)) {
            let limiter = InFlight::new(limit);
            let now = Instant::now();
            let mut held = Vec::new();
            for take in ops {
                if take {
                    let full = held.len() == limit as usize;
                    match limiter.try_take(now) {
                        Admission::Go(slot) => {
                            prop_assert!(!full);
                            held.push(slot);
                        }
                        Admission::Full { .. } => prop_assert!(full),
                    }
                } else {
                    held.pop();
                }
                prop_assert_eq!(limiter.taken() as usize, held.len());
            }
            held.clear();
            prop_assert_eq!(limiter.taken(), 0);
        }
    }
}
