//! The circuit breaker of one destination, in this process.
//!
//! Closed, it lets every request through and counts retryable failures (5xx, 408, 429,
//! timeouts, connection errors): `breaker_failures` of them in a row, or a share of at least
//! `breaker_failure_ratio` among the attempts of one `breaker_window` (once it has seen
//! `breaker_min_requests`), open it. Open, it lets nothing through: the destination's jobs wait
//! in the delay tiers without spending an attempt. Once `breaker_cool_down` has passed it is
//! half-open: the next job goes as the one probe while the others keep waiting; the probe's
//! success closes the breaker, its failure opens it for another cool-down, and a probe that was
//! never sent (its job had been delivered already, or went back to its queue) lets the next job
//! probe instead. Any other status (2xx, 3xx, 4xx) means the destination answered: a success.
//!
//! [`next`] is the whole state machine, a pure function (CONVENTIONS.md, "State machines are
//! data"); [`Breaker`] applies it under a lock, logs each transition once and exports the state
//! as `relay_destination_breaker{destination,state}` (1 for the current state). Each delivery
//! process keeps its own breakers: replicas learn of a destination's trouble separately, and
//! each sends its own probe.
//!
//! A breaker also remembers since when (wall clock, unix ms) it has been open: a failed probe
//! continues the same open period, only a close ends it. [`report`] tells Redis which of this
//! process's breakers are open and since when, for the worker's alert on one open too long.

mod machine;
pub(crate) mod report;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub(crate) use machine::{Cause, Decision, Input, Settings, State, Transition, next};

/// One destination's breaker, shared by every attempt to it in this process.
pub(crate) struct Breaker {
    destination: String,
    settings: Settings,
    state: Mutex<State>,
    /// Unix ms when the current open period began; `None` while closed. Written under the
    /// `state` lock, after it.
    open_since_ms: Mutex<Option<i64>>,
}

impl Breaker {
    /// A closed breaker for `destination`.
    pub(crate) fn new(destination: &str, settings: Settings) -> Self {
        let state = State::closed(Instant::now());
        export(destination, state);
        Self {
            destination: destination.to_owned(),
            settings,
            state: Mutex::new(state),
            open_since_ms: Mutex::new(None),
        }
    }

    /// Since when (unix ms, wall clock) it has been open, half-open included; `None` while
    /// closed.
    pub(crate) fn open_since_ms(&self) -> Option<i64> {
        *self.open_since_ms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request now would be told to wait, and for how long; changes nothing.
    pub(crate) fn waiting(&self, now: Instant) -> Option<Duration> {
        machine::waiting(*self.state.lock().unwrap_or_else(|e| e.into_inner()), now)
    }

    /// Whether a job may send now (and whether as the probe).
    pub(crate) fn admit(&self, now: Instant) -> Decision {
        self.apply(Input::Request, now).unwrap_or(Decision::Send)
    }

    /// Records what became of an admitted request.
    pub(crate) fn record(&self, input: Input, now: Instant) {
        self.apply(input, now);
    }

    /// Applies `input`; exports and logs a transition (under the lock, so the gauge and the
    /// log follow the order of the transitions).
    fn apply(&self, input: Input, now: Instant) -> Option<Decision> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (after, effects) = next(*state, input, now, &self.settings);
        *state = after;
        if let Some(transition) = effects.transition {
            export(&self.destination, after);
            let mut since = self.open_since_ms.lock().unwrap_or_else(|e| e.into_inner());
            *since = open_since(*since, transition, unix_ms(SystemTime::now()));
            self.log(transition);
        }
        effects.decision
    }

    fn log(&self, transition: Transition) {
        let destination = self.destination.as_str();
        let cool_down = humanize(self.settings.cool_down);
        match transition {
            Transition::Opened(Cause::InARow(failures)) => tracing::warn!(
                destination,
                failures,
                "destination breaker opened after {failures} failures in a row; its jobs wait in the delay tiers for {cool_down}, then one probe goes"
            ),
            Transition::Opened(Cause::Ratio { failures, attempts }) => tracing::warn!(
                destination,
                failures,
                attempts,
                "destination breaker opened: {failures} of {attempts} attempts failed; its jobs wait in the delay tiers for {cool_down}, then one probe goes"
            ),
            Transition::HalfOpened => tracing::info!(
                destination,
                "destination breaker half-open: sending one probe"
            ),
            Transition::Closed => tracing::info!(
                destination,
                "destination breaker closed: the probe succeeded, its jobs go again"
            ),
            Transition::Reopened => tracing::warn!(
                destination,
                "destination breaker opened again: the probe failed; next probe in {cool_down}"
            ),
        }
    }
}

/// The start of the open period after `transition`, given the one before (`since`) and the
/// time now: opening starts one, a probe (half-open) and its failure (reopened) continue it,
/// closing ends it.
fn open_since(since: Option<i64>, transition: Transition, now_ms: i64) -> Option<i64> {
    match transition {
        Transition::Opened(_) => Some(now_ms),
        // Never without a start in practice (half-open and reopened follow an opening); should
        // one come, the period is counted from now rather than lost.
        Transition::HalfOpened | Transition::Reopened => since.or(Some(now_ms)),
        Transition::Closed => None,
    }
}

/// `at` in unix milliseconds (0 before 1970).
fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sets `relay_destination_breaker{destination,state}`: 1 for `state`, 0 for the others.
fn export(destination: &str, state: State) {
    for name in machine::NAMES {
        let value = if name == state.name() { 1.0 } else { 0.0 };
        metrics::gauge!("relay_destination_breaker", "destination" => destination.to_owned(), "state" => name)
            .set(value);
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            failures: 3,
            ratio: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            cool_down: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_gauge_names_the_current_state() {
        let breaker = Breaker::new("gauge-test", settings());
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record(Input::Failed { probe: false }, now);
        }
        assert!(matches!(
            breaker.admit(now),
            Decision::Wait { remaining } if remaining == Duration::from_secs(10)
        ));
        assert_eq!(
            breaker.admit(now + Duration::from_secs(10)),
            Decision::Probe
        );
        assert_eq!(
            breaker.state.lock().unwrap().name(),
            "half_open",
            "the wrapper applies the machine"
        );
    }

    #[test]
    fn the_open_period_starts_on_opening_survives_probes_and_ends_on_closing() {
        let opened = Transition::Opened(Cause::InARow(3));
        assert_eq!(open_since(None, opened, 100), Some(100));
        assert_eq!(
            open_since(Some(100), Transition::HalfOpened, 200),
            Some(100)
        );
        assert_eq!(open_since(Some(100), Transition::Reopened, 300), Some(100));
        assert_eq!(open_since(Some(100), Transition::Closed, 400), None);
        assert_eq!(
            open_since(None, Transition::Reopened, 500),
            Some(500),
            "a period without a start is counted from now"
        );
    }

    #[test]
    fn the_breaker_remembers_since_when_it_is_open_until_it_closes() {
        let breaker = Breaker::new("open-since-test", settings());
        let now = Instant::now();
        assert_eq!(breaker.open_since_ms(), None, "closed");
        let before = unix_ms(SystemTime::now());
        for _ in 0..3 {
            breaker.record(Input::Failed { probe: false }, now);
        }
        let since = breaker.open_since_ms().expect("open");
        assert!(
            since >= before && since <= unix_ms(SystemTime::now()),
            "{since}"
        );

        // A failed probe continues the same open period.
        let later = now + Duration::from_secs(10);
        assert_eq!(breaker.admit(later), Decision::Probe);
        assert_eq!(breaker.open_since_ms(), Some(since), "half-open");
        std::thread::sleep(Duration::from_millis(2));
        breaker.record(Input::Failed { probe: true }, later);
        assert_eq!(breaker.open_since_ms(), Some(since), "reopened");

        // The next probe's success ends it.
        let later = later + Duration::from_secs(10);
        assert_eq!(breaker.admit(later), Decision::Probe);
        breaker.record(Input::Answered { probe: true }, later);
        assert_eq!(breaker.open_since_ms(), None, "closed");

        // Opening again starts a new period.
        std::thread::sleep(Duration::from_millis(2));
        for _ in 0..3 {
            breaker.record(Input::Failed { probe: false }, later);
        }
        assert!(breaker.open_since_ms().expect("open again") > since);
    }
}
