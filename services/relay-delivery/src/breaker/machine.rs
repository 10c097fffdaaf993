//! The breaker's state machine, pure: [`next`] maps a state, an input and the time to the next
//! state and its effects (a decision for a request, a transition to log). No I/O, no clock.

use std::time::{Duration, Instant};

use relay_core::config::DestinationConfig;

/// A destination's breaker settings (`breaker_*` in its configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// Retryable failures in a row that open the breaker.
    pub(crate) failures: u32,
    /// Share of failures in one window that opens it...
    pub(crate) ratio: f64,
    /// ...once the window has seen this many attempts.
    pub(crate) min_requests: u32,
    /// Length of a counting window.
    pub(crate) window: Duration,
    /// How long an open breaker lets nothing through.
    pub(crate) cool_down: Duration,
}

impl Settings {
    /// The settings of `config`.
    pub(crate) fn of(config: &DestinationConfig) -> Self {
        Self {
            failures: config.breaker_failures,
            ratio: config.breaker_failure_ratio,
            min_requests: config.breaker_min_requests,
            window: config.breaker_window,
            cool_down: config.breaker_cool_down,
        }
    }
}

/// Attempts and failures counted since `started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    started: Instant,
    attempts: u32,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            attempts: 0,
            failures: 0,
        }
    }

    /// Counts one attempt at `now`, in a fresh window when this one is over.
    fn count(self, now: Instant, length: Duration, failed: bool) -> Self {
        let mut window = if now.saturating_duration_since(self.started) >= length {
            Self::new(now)
        } else {
            self
        };
        window.attempts = window.attempts.saturating_add(1);
        window.failures = window.failures.saturating_add(u32::from(failed));
        window
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Requests go through.
    Closed {
        /// Retryable failures in a row so far.
        in_a_row: u32,
        /// The current counting window.
        window: Window,
    },
    /// Nothing goes through before `until`.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// One probe may go; `probing` while it is out.
    HalfOpen {
        /// Whether the probe is out.
        probing: bool,
    },
}

impl State {
    /// A closed breaker with nothing counted.
    pub(crate) fn closed(now: Instant) -> Self {
        Self::Closed {
            in_a_row: 0,
            window: Window::new(now),
        }
    }

    /// The state's name, as the metric's `state` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// Every state name, for the metric.
pub(crate) const NAMES: [&str; 3] = ["closed", "open", "half_open"];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// A job asks to send a request.
    Request,
    /// A request got an answer that is not a retryable failure.
    Answered {
        /// Whether it was the half-open breaker's probe.
        probe: bool,
    },
    /// A request failed retryably (5xx, 408, 429, timeout, connection error).
    Failed {
        /// Whether it was the half-open breaker's probe.
        probe: bool,
    },
    /// The probe was admitted but never sent.
    ProbeUnsent,
}

/// The answer to [`Input::Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send it.
    Send,
    /// Send it as the probe; report its outcome with `probe: true`, or [`Input::ProbeUnsent`].
    Probe,
    /// Do not send it; the cool-down ends in `remaining` (zero while a probe is out).
    Wait {
        /// Time left before a probe may go.
        remaining: Duration,
    },
}

/// Why a closed breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// This many retryable failures in a row.
    InARow(u32),
    /// `failures` of the window's `attempts` failed.
    Ratio {
        /// Failures in the window.
        failures: u32,
        /// Attempts in the window.
        attempts: u32,
    },
}

/// A change of state: one log line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Closed → open.
    Opened(Cause),
    /// Open → half-open, its cool-down over.
    HalfOpened,
    /// Half-open → closed: the probe was answered.
    Closed,
    /// Half-open → open: the probe failed.
    Reopened,
}

/// What a step yields besides the next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Effects {
    /// The answer to a [`Input::Request`] (none for other inputs).
    pub(crate) decision: Option<Decision>,
    /// The change of state, if any.
    pub(crate) transition: Option<Transition>,
}

impl Effects {
    const NONE: Self = Self {
        decision: None,
        transition: None,
    };

    fn decide(decision: Decision) -> Self {
        Self {
            decision: Some(decision),
            transition: None,
        }
    }

    fn change(transition: Transition) -> Self {
        Self {
            decision: None,
            transition: Some(transition),
        }
    }
}

/// How long a request at `now` would have to wait, without asking: `Some` while open before
/// the end of its cool-down or half-open with the probe out. A request it lets through may
/// still be told to wait by [`next`] (which alone decides, and picks the probe).
pub(crate) fn waiting(state: State, now: Instant) -> Option<Duration> {
    match state {
        State::Open { until } if now < until => Some(until.saturating_duration_since(now)),
        State::HalfOpen { probing: true } => Some(Duration::ZERO),
        _ => None,
    }
}

/// The state machine: the state after `input` at `now`, and its effects.
pub(crate) fn next(state: State, input: Input, now: Instant, s: &Settings) -> (State, Effects) {
    let open = || State::Open {
        until: now
            .checked_add(s.cool_down)
            .unwrap_or_else(|| now + Duration::from_secs(86_400)),
    };
    match (state, input) {
        (State::Closed { .. }, Input::Request) => (state, Effects::decide(Decision::Send)),
        (State::Closed { window, .. }, Input::Answered { .. }) => (
            State::Closed {
                in_a_row: 0,
                window: window.count(now, s.window, false),
            },
            Effects::NONE,
        ),
        (State::Closed { in_a_row, window }, Input::Failed { .. }) => {
            let in_a_row = in_a_row.saturating_add(1);
            let window = window.count(now, s.window, true);
            let cause = if in_a_row >= s.failures {
                Some(Cause::InARow(in_a_row))
            } else if window.attempts >= s.min_requests
                && f64::from(window.failures) >= s.ratio * f64::from(window.attempts)
            {
                Some(Cause::Ratio {
                    failures: window.failures,
                    attempts: window.attempts,
                })
            } else {
                None
            };
            match cause {
                Some(cause) => (open(), Effects::change(Transition::Opened(cause))),
                None => (State::Closed { in_a_row, window }, Effects::NONE),
            }
        }
        (State::Closed { .. }, Input::ProbeUnsent) => (state, Effects::NONE),
        (State::Open { until }, Input::Request) if now >= until => (
            State::HalfOpen { probing: true },
            Effects {
                decision: Some(Decision::Probe),
                transition: Some(Transition::HalfOpened),
            },
        ),
        (State::Open { until }, Input::Request) => (
            state,
            Effects::decide(Decision::Wait {
                remaining: until.saturating_duration_since(now),
            }),
        ),
        // Requests sent before it opened and answered since change nothing: only a probe,
        // sent after the cool-down, speaks for the destination as it is now.
        (State::Open { .. }, _) => (state, Effects::NONE),
        (State::HalfOpen { probing: false }, Input::Request) => (
            State::HalfOpen { probing: true },
            Effects::decide(Decision::Probe),
        ),
        (State::HalfOpen { probing: true }, Input::Request) => (
            state,
            Effects::decide(Decision::Wait {
                remaining: Duration::ZERO,
            }),
        ),
        (State::HalfOpen { .. }, Input::Answered { probe: true }) => {
            (State::closed(now), Effects::change(Transition::Closed))
        }
        (State::HalfOpen { .. }, Input::Failed { probe: true }) => {
            (open(), Effects::change(Transition::Reopened))
        }
        (State::HalfOpen { .. }, Input::ProbeUnsent) => {
            (State::HalfOpen { probing: false }, Effects::NONE)
        }
        (
            State::HalfOpen { .. },
            Input::Answered { probe: false } | Input::Failed { probe: false },
        ) => (state, Effects::NONE),
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
