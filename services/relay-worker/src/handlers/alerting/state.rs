//! The min-balance alert of one account as data: a pure transition function
//! `apply(alert, event id, input, rules) -> Step` (CONVENTIONS.md, "State machines are data").
//!
//! * Idle + `Low` → Firing (notice `Firing`, first re-send timer).
//! * Firing + `Low`: another severity → notice `SeverityChanged` at once; the same severity →
//!   refresh only, unless `throttle` has passed since the last notice (notice `Reminder`;
//!   a zero `throttle`: every callback).
//! * Firing + `Balance` at or above the recovery level → Idle (notice `Resolved`).
//! * Firing + the expected `Resend` tick → re-send to Alertmanager and set the next tick, or,
//!   when no `min_balance` callback came for `quiet_period`, → Idle (notice `Resolved`).
//!   Any other tick (an older firing's, a duplicate) changes nothing.
//!
//! The record remembers the last event it applied and what that produced, so the same event
//! again (a redelivery after a crash between the write and the publish) produces the same
//! effects, whose deterministic ids make the repeat harmless, and no second transition.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Below the account's minimum balance.
    Warning,
    /// At the credit limit (`is_min_credit`): calls stop.
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What the latest callback said of the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Facts {
    /// Account name, when known.
    pub account_name: Option<String>,
    /// Balance as sent (kept exact).
    pub balance: serde_json::Value,
    /// Currency code.
    pub currency: Option<String>,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// Identifies this firing (its start in Unix milliseconds): part of every id it makes, so
    /// a later firing never collides with an earlier one.
    pub epoch: i64,
    /// Current severity.
    pub severity: Severity,
    /// The first callback's time (`startsAt`).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The last notice to Slack and webhooks.
    #[serde(with = "time::serde::rfc3339")]
    pub last_notified: OffsetDateTime,
    /// The latest `min_balance` callback.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// What the latest callback said.
    pub facts: Facts,
    /// Notices so far in this firing (the next notice's number).
    pub notices: u32,
    /// The re-send tick expected next.
    pub tick: u32,
}

/// What happened to an alert, for Slack and webhooks (and Alertmanager, except `Reminder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// It started.
    Firing,
    /// Its severity changed (the former one is in `Notice::previous`).
    SeverityChanged,
    /// Still firing after `throttle`.
    Reminder,
    /// It ended.
    Resolved,
}

/// A notice: what, its number in the firing, and the alert as it is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub kind: NoticeKind,
    /// Its number within the firing (part of its job ids).
    pub seq: u32,
    /// The severity before a change.
    pub previous: Option<Severity>,
}

/// What a transition asks the I/O layer to do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Effects {
    /// Tell every notifier (Alertmanager too, unless a `Reminder`).
    pub notice: Option<Notice>,
    /// Re-send the firing alert to Alertmanager: this tick.
    pub resend: Option<u32>,
    /// Set the re-send timer for this tick.
    pub timer: Option<u32>,
    /// The alert the effects are about (for a resolution: the one that ended).
    pub alert: Option<Firing>,
    /// When (the event's time): `endsAt` of a resolution, the base of a firing's `endsAt`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

impl Effects {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.notice.is_none() && self.resend.is_none() && self.timer.is_none()
    }
}

/// The last event applied and its effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Its event id.
    pub event: String,
    /// What it produced.
    pub effects: Effects,
}

/// One account's record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Alert {
    /// The firing alert; none: idle.
    pub firing: Option<Firing>,
    /// The last event applied.
    pub last: Option<Applied>,
}

/// What arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A `min_balance` callback.
    Low {
        /// Its time.
        at: OffsetDateTime,
        /// `is_min_credit`.
        critical: bool,
        /// What it says.
        facts: Facts,
    },
    /// Another account callback, with its balance.
    Balance {
        /// Its time.
        at: OffsetDateTime,
        /// The balance.
        balance: f64,
    },
    /// A re-send timer.
    Resend {
        /// Its due time.
        at: OffsetDateTime,
        /// The firing it belongs to.
        epoch: i64,
        /// Its tick.
        tick: u32,
    },
}

/// The configuration the transitions read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// See `MinBalanceAlertConfig::throttle`.
    pub throttle: Duration,
    /// See `MinBalanceAlertConfig::quiet_period`.
    pub quiet_period: Duration,
    /// The account's recovery level.
    pub recovery: Option<f64>,
}

/// The result of one transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The record after (to be written when `changed`).
    pub alert: Alert,
    /// What to do (also when the event was applied before: the same effects again).
    pub effects: Effects,
    /// Whether the record must be written.
    pub changed: bool,
}

/// Applies `input` (of event `event_id`) to `alert`.
pub fn apply(alert: &Alert, event_id: &str, input: &Input, rules: &Rules) -> Step {
    if let Some(last) = alert.last.as_ref().filter(|l| l.event == event_id) {
        return Step {
            alert: alert.clone(),
            effects: last.effects.clone(),
            changed: false,
        };
    }
    let unchanged = || Step {
        alert: alert.clone(),
        effects: Effects::default(),
        changed: false,
    };
    let (firing, effects) = match (&alert.firing, input) {
        (
            None,
            Input::Low {
                at,
                critical,
                facts,
            },
        ) => {
            let firing = Firing {
                epoch: (at.unix_timestamp_nanos() / 1_000_000) as i64,
                severity: severity(*critical),
                since: *at,
                last_notified: *at,
                last_seen: *at,
                facts: facts.clone(),
                notices: 1,
                tick: 1,
            };
            let effects = notify(&firing, NoticeKind::Firing, 0, None, *at, Some(1));
            (Some(firing), effects)
        }
        (
            Some(current),
            Input::Low {
                at,
                critical,
                facts,
            },
        ) => {
            let mut firing = current.clone();
            firing.facts = facts.clone();
            firing.last_seen = firing.last_seen.max(*at);
            let new = severity(*critical);
            let effects = if new != current.severity {
                firing.severity = new;
                notice(
                    &mut firing,
                    NoticeKind::SeverityChanged,
                    Some(current.severity),
                    *at,
                )
            } else if rules.throttle.is_zero() || *at - current.last_notified >= rules.throttle {
                // No throttle: every callback notifies, also one handled after a later one.
                notice(&mut firing, NoticeKind::Reminder, None, *at)
            } else {
                Effects::default()
            };
            (Some(firing), effects)
        }
        (Some(current), Input::Balance { at, balance }) => match rules.recovery {
            Some(level) if *balance >= level => {
                let mut ended = current.clone();
                ended.facts.balance = serde_json::json!(balance);
                (None, notice(&mut ended, NoticeKind::Resolved, None, *at))
            }
            _ => return unchanged(),
        },
        (Some(current), Input::Resend { at, epoch, tick })
            if *epoch == current.epoch && *tick == current.tick =>
        {
            let mut firing = current.clone();
            if *at - current.last_seen >= rules.quiet_period {
                (None, notice(&mut firing, NoticeKind::Resolved, None, *at))
            } else {
                firing.tick += 1;
                let effects = Effects {
                    resend: Some(*tick),
                    timer: Some(firing.tick),
                    alert: Some(firing.clone()),
                    at: Some(*at),
                    ..Effects::default()
                };
                (Some(firing), effects)
            }
        }
        _ => return unchanged(),
    };
    Step {
        alert: Alert {
            firing,
            last: Some(Applied {
                event: event_id.to_owned(),
                effects: effects.clone(),
            }),
        },
        effects,
        changed: true,
    }
}

fn severity(critical: bool) -> Severity {
    if critical {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// A notice of `firing` (counted, `last_notified` moved to `at`).
fn notice(
    firing: &mut Firing,
    kind: NoticeKind,
    previous: Option<Severity>,
    at: OffsetDateTime,
) -> Effects {
    let seq = firing.notices;
    firing.notices += 1;
    firing.last_notified = firing.last_notified.max(at);
    notify(firing, kind, seq, previous, at, None)
}

fn notify(
    firing: &Firing,
    kind: NoticeKind,
    seq: u32,
    previous: Option<Severity>,
    at: OffsetDateTime,
    timer: Option<u32>,
) -> Effects {
    Effects {
        notice: Some(Notice {
            kind,
            seq,
            previous,
        }),
        resend: None,
        timer,
        alert: Some(firing.clone()),
        at: Some(at),
    }
}
