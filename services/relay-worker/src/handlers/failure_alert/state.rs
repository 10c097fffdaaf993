//! The two pure lifecycles of failure alerts (CONVENTIONS.md, "State machines are data"):
//!
//! * [`Failures`], one destination's failed deliveries grouped into windows: the first failure
//!   of a window starts it and sets a `group_wait` timer; the timer's tick sends the one alert
//!   of the window with everything counted until then; later failures of the window are
//!   counted and carried into the next window's alert. A failure seen before (a redelivered
//!   outcome) changes nothing.
//! * [`Condition`], one observed condition (a queue too deep, a breaker open too long): it
//!   fires when an observation says active, is re-sent to Alertmanager on each observation
//!   while active, and resolves on the first observation that says clear.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How many recent outcome ids a destination's record remembers, to count each failure once.
pub const RECENT: usize = 64;

/// One failed delivery, as an alert tells of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The outcome event's id (deterministic per job and failure).
    pub id: String,
    /// The job.
    pub job_id: String,
    /// The handler that made the job.
    pub handler: String,
    /// What the job carried (`plivo.call.hangup`, `call-log.answered`).
    pub event_type: Option<String>,
    /// HTTP status of the last attempt.
    pub status: Option<u16>,
    /// Why delivery gave up (`http_status`, `attempts_exhausted`, …).
    pub reason: Option<String>,
    /// The failure in words.
    pub detail: Option<String>,
    /// The start of the last response.
    pub excerpt: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// When it was reported.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One window of a destination's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// 1, 2, … per destination: names the window's timer and jobs.
    pub epoch: u64,
    /// Its first failure's time.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Failures in it so far.
    pub count: u64,
    /// How many of them its alert reported (0 before the alert).
    pub reported: u64,
    /// Failures after the previous window's alert, reported with this window's.
    pub carried: u64,
    /// The alert went out.
    pub alerted: bool,
    /// The latest failure.
    pub last: Failure,
}

/// One destination's failure record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// The current (or last) window.
    pub window: Option<Window>,
    /// Outcome ids counted lately, newest last.
    pub recent: VecDeque<String>,
}

/// The settings of [`Failures`].
#[derive(Debug, Clone, Copy)]
pub struct Grouping {
    /// Wait after a window's first failure before alerting.
    pub group_wait: Duration,
    /// One alert per this long.
    pub window: Duration,
}

/// What one input to [`Failures`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureEffects {
    /// Set the tick of this window's epoch, `group_wait` from now.
    pub timer: Option<u64>,
    /// Send the window's alert now.
    pub alert: bool,
}

/// A [`Failures`] input's result: the record after it, whether it changed, and the effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureStep {
    /// The record after the input.
    pub record: Failures,
    /// Whether it must be written.
    pub changed: bool,
    /// What to do.
    pub effects: FailureEffects,
}

impl FailureStep {
    fn unchanged(record: &Failures) -> Self {
        Self {
            record: record.clone(),
            changed: false,
            effects: FailureEffects::default(),
        }
    }
}

/// A failed delivery arrives.
pub fn failed(record: &Failures, failure: Failure, rules: &Grouping) -> FailureStep {
    if record.recent.contains(&failure.id) {
        return FailureStep::unchanged(record);
    }
    let mut after = record.clone();
    after.recent.push_back(failure.id.clone());
    while after.recent.len() > RECENT {
        after.recent.pop_front();
    }
    let mut effects = FailureEffects::default();
    match &mut after.window {
        Some(window) if failure.at < window.start + rules.window => {
            window.count += 1;
            if failure.at >= window.last.at {
                window.last = failure;
            }
        }
        current => {
            let (epoch, carried) = match current {
                Some(previous) => (previous.epoch + 1, previous.count - previous.reported),
                None => (1, 0),
            };
            let alert_now = rules.group_wait.is_zero();
            *current = Some(Window {
                epoch,
                start: failure.at,
                count: 1,
                reported: if alert_now { 1 } else { 0 },
                carried,
                alerted: alert_now,
                last: failure,
            });
            if alert_now {
                effects.alert = true;
            } else {
                effects.timer = Some(epoch);
            }
        }
    }
    FailureStep {
        record: after,
        changed: true,
        effects,
    }
}

/// The `group_wait` tick of window `epoch`: its alert goes out, once.
pub fn tick(record: &Failures, epoch: u64) -> FailureStep {
    match &record.window {
        Some(window) if window.epoch == epoch && !window.alerted => {
            let mut after = record.clone();
            let window = after.window.as_mut().expect("matched above");
            window.alerted = true;
            window.reported = window.count;
            FailureStep {
                record: after,
                changed: true,
                effects: FailureEffects {
                    timer: None,
                    alert: true,
                },
            }
        }
        _ => FailureStep::unchanged(record),
    }
}

/// A condition's alert while it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// 1, 2, … per condition: names its jobs.
    pub epoch: u64,
    /// First observed active.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The latest observation.
    pub last: Observation,
}

/// One condition's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The alert, while it fires.
    pub firing: Option<Firing>,
    /// The last firing's epoch (the next one is one more).
    pub epochs: u64,
    /// The latest observation's time (older ones are stale).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub seen: Option<OffsetDateTime>,
}

/// What the worker saw of one condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// `queue_depth` or `breaker_open`.
    pub kind: String,
    /// The queue or destination.
    pub subject: String,
    /// Above its threshold now.
    pub active: bool,
    /// Messages, or seconds open.
    pub value: u64,
    /// The configured threshold, in the same unit.
    pub threshold: u64,
    /// When it was seen.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What an observation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionNotice {
    /// It just fired: every notifier.
    Firing,
    /// Still firing: Alertmanager again (it resolves alerts that are not re-sent).
    Resend,
    /// It cleared: every notifier.
    Resolved,
}

/// A [`Condition`] input's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionStep {
    /// The record after the observation.
    pub record: Condition,
    /// Whether it must be written.
    pub changed: bool,
    /// What to send, with the firing it is about.
    pub notice: Option<(ConditionNotice, Firing)>,
}

/// An observation arrives.
pub fn observe(record: &Condition, observation: Observation) -> ConditionStep {
    let unchanged = ConditionStep {
        record: record.clone(),
        changed: false,
        notice: None,
    };
    if record.seen.is_some_and(|seen| observation.at <= seen) {
        return unchanged;
    }
    let at = observation.at;
    let mut after = record.clone();
    let notice = match (after.firing.take(), observation.active) {
        (None, false) => return unchanged,
        (None, true) => {
            after.epochs += 1;
            let firing = Firing {
                epoch: after.epochs,
                since: at,
                last: observation,
            };
            after.firing = Some(firing.clone());
            (ConditionNotice::Firing, firing)
        }
        (Some(mut firing), true) => {
            firing.last = observation;
            after.firing = Some(firing.clone());
            (ConditionNotice::Resend, firing)
        }
        (Some(mut firing), false) => {
            firing.last = observation;
            (ConditionNotice::Resolved, firing)
        }
    };
    after.seen = Some(at);
    ConditionStep {
        record: after,
        changed: true,
        notice: Some(notice),
    }
}
