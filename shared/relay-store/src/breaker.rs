//! The Redis circuit breaker: one per process, shared by every caller of the store.
//!
//! After `threshold` consecutive failed operations (a timeout, a refused or dropped
//! connection) the breaker opens: every operation is skipped at once with
//! [`crate::StoreError::Unavailable`] instead of waiting out its time budget, so an outage
//! costs callers nothing (docs/ARCHITECTURE.md, invariant 2). A background probe pings Redis and closes
//! the breaker when it answers. Until the first connection the breaker is open. Each change of
//! state is logged once; skipped operations are counted in `relay_redis_skipped_total{op}`.
//!
//! The transition function is pure data (CONVENTIONS.md, "State machines are data"); the
//! shared [`Breaker`] applies it under a lock on the rare failure and success paths and
//! answers "is it open?" with one atomic load on the hot path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Operations go to Redis; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Operations are skipped until the probe succeeds.
    Open,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// An operation succeeded.
    Succeeded,
    /// An operation failed for want of Redis (not a logic error such as a wrong type).
    Failed,
    /// Redis answered the probe (or a new connection was made).
    Answered,
}

/// A change of state worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Closed → open.
    Opened,
    /// Open → closed.
    Closed,
}

/// The transition function.
pub fn next(state: State, input: Input, threshold: u32) -> (State, Option<Change>) {
    match (state, input) {
        (State::Closed { .. }, Input::Succeeded | Input::Answered) => {
            (State::Closed { failures: 0 }, None)
        }
        (State::Closed { failures }, Input::Failed) => {
            let failures = failures.saturating_add(1);
            if failures >= threshold.max(1) {
                (State::Open, Some(Change::Opened))
            } else {
                (State::Closed { failures }, None)
            }
        }
        // Only the probe closes it: a success racing the opening must not flap it.
        (State::Open, Input::Answered) => (State::Closed { failures: 0 }, Some(Change::Closed)),
        (State::Open, Input::Succeeded | Input::Failed) => (State::Open, None),
    }
}

/// The breaker shared by every clone of the store.
pub(crate) struct Breaker {
    open: AtomicBool,
    /// Consecutive failures while closed, mirrored out of `state` for the lock-free path.
    failures: AtomicU32,
    state: Mutex<State>,
    threshold: u32,
}

impl Breaker {
    /// Open until the first connection.
    pub(crate) fn new(threshold: u32) -> Self {
        metrics::gauge!("relay_redis_breaker_open").set(1.0);
        Self {
            open: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            state: Mutex::new(State::Open),
            threshold,
        }
    }

    /// Whether operations are skipped right now.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Applies `input`; logs and exports a change of state.
    pub(crate) fn record(&self, input: Input) {
        // The common case, a success while closed with no failure counted, needs no lock.
        if input == Input::Succeeded
            && !self.is_open()
            && self.failures.load(Ordering::Acquire) == 0
        {
            return;
        }
        let mut state = self.state.lock().expect("breaker lock");
        let (after, change) = next(*state, input, self.threshold);
        *state = after;
        let failures = match after {
            State::Closed { failures } => failures,
            State::Open => 0,
        };
        self.failures.store(failures, Ordering::Release);
        self.open.store(after == State::Open, Ordering::Release);
        match change {
            Some(Change::Opened) => {
                metrics::gauge!("relay_redis_breaker_open").set(1.0);
                tracing::warn!(
                    "Redis unavailable: skipping it until it answers again (dedup marks, records and limits are best effort meanwhile)"
                );
            }
            Some(Change::Closed) => {
                metrics::gauge!("relay_redis_breaker_open").set(0.0);
                tracing::info!("Redis available again");
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn opens_after_the_threshold_and_only_the_probe_closes_it() {
        let mut state = State::Closed { failures: 0 };
        let mut changes = Vec::new();
        for input in [
            Input::Failed,
            Input::Failed,
            Input::Succeeded,
            Input::Failed,
            Input::Failed,
            Input::Failed,
            Input::Succeeded,
            Input::Failed,
            Input::Answered,
            Input::Answered,
        ] {
            let (after, change) = next(state, input, 3);
            state = after;
            changes.extend(change);
        }
        assert_eq!(changes, [Change::Opened, Change::Closed]);
        assert_eq!(state, State::Closed { failures: 0 });
    }

    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        proptest::collection::vec(
            prop_oneof![
                Just(Input::Succeeded),
                Just(Input::Failed),
                Just(Input::Answered)
            ],
            0..64,
        )
    }

    proptest! {
        /// Changes alternate (never opened twice without closing between), and the state
        /// after a change is the one the change names.
        #[test]
        fn changes_alternate_and_match_the_state(inputs in inputs(), threshold in 1u32..5) {
            let mut state = State::Open;
            let mut last = Some(Change::Opened);
            for input in inputs {
                let (after, change) = next(state, input, threshold);
                if let Some(change) = change {
                    prop_assert_ne!(Some(change), last);
                    prop_assert_eq!(after == State::Open, change == Change::Opened);
                    last = Some(change);
                }
                if let State::Closed { failures } = after {
                    prop_assert!(failures < threshold);
                }
                state = after;
            }
        }

        /// `threshold` failures in a row always open a closed breaker.
        #[test]
        fn consecutive_failures_open(threshold in 1u32..10) {
            let mut state = State::Closed { failures: 0 };
            for _ in 0..threshold {
                state = next(state, Input::Failed, threshold).0;
            }
            prop_assert_eq!(state, State::Open);
        }
    }
}
