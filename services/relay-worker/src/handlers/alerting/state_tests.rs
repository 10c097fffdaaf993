//! The alert lifecycle, example by example and as properties over random input sequences.

use super::state::*;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);
const THROTTLE: i64 = 3600;
const QUIET: i64 = 6 * 3600;
const RESEND: i64 = 60;

fn rules() -> Rules {
    Rules {
        throttle: Duration::from_secs(THROTTLE as u64),
        quiet_period: Duration::from_secs(QUIET as u64),
        recovery: Some(10.0),
    }
}

fn at(secs: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(secs)
}

fn low(secs: i64, critical: bool) -> Input {
    Input::Low {
        at: at(secs),
        critical,
        facts: Facts {
            account_name: Some("acme".into()),
            balance: json!(1.5),
            currency: Some("USD".into()),
        },
    }
}

fn kind(step: &Step) -> Option<NoticeKind> {
    step.effects.notice.as_ref().map(|n| n.kind)
}

#[test]
fn first_low_fires_with_a_resend_timer_and_repeats_within_the_throttle_are_quiet() {
    let s = apply(&Alert::default(), "e1", &low(0, false), &rules());
    assert_eq!(kind(&s), Some(NoticeKind::Firing));
    assert_eq!(s.effects.timer, Some(1));
    let firing = s.alert.firing.clone().unwrap();
    assert_eq!(firing.severity, Severity::Warning);
    assert_eq!(firing.since, at(0));
    for (i, t) in [10, 100, 1000, 3599].into_iter().enumerate() {
        let s2 = apply(&s.alert, &format!("r{i}"), &low(t, false), &rules());
        assert!(s2.effects.is_empty());
        assert!(s2.changed, "refreshes the state");
        assert_eq!(s2.alert.firing.as_ref().unwrap().last_seen, at(t));
    }
    let later = apply(&s.alert, "e2", &low(THROTTLE, false), &rules());
    assert_eq!(kind(&later), Some(NoticeKind::Reminder));
}

#[test]
fn credit_limit_escalates_at_once_inside_the_throttle() {
    let s = apply(&Alert::default(), "e1", &low(0, false), &rules());
    let s = apply(&s.alert, "e2", &low(5, true), &rules());
    assert_eq!(kind(&s), Some(NoticeKind::SeverityChanged));
    let notice = s.effects.notice.unwrap();
    assert_eq!(notice.previous, Some(Severity::Warning));
    assert_eq!(notice.seq, 1);
    assert_eq!(s.alert.firing.unwrap().severity, Severity::Critical);
    assert_eq!(s.effects.timer, None, "the timer chain goes on as it was");
}

#[test]
fn a_balance_at_the_recovery_level_resolves_and_a_later_low_fires_anew() {
    let s = apply(&Alert::default(), "e1", &low(0, false), &rules());
    let epoch = s.alert.firing.as_ref().unwrap().epoch;
    let below = apply(
        &s.alert,
        "b1",
        &Input::Balance {
            at: at(5),
            balance: 9.99,
        },
        &rules(),
    );
    assert!(!below.changed && below.effects.is_empty());
    let r = apply(
        &s.alert,
        "b2",
        &Input::Balance {
            at: at(10),
            balance: 10.0,
        },
        &rules(),
    );
    assert_eq!(kind(&r), Some(NoticeKind::Resolved));
    assert!(r.alert.firing.is_none());
    assert_eq!(r.effects.at, Some(at(10)));
    let tick = apply(
        &r.alert,
        "t1",
        &Input::Resend {
            at: at(60),
            epoch,
            tick: 1,
        },
        &rules(),
    );
    assert!(!tick.changed && tick.effects.is_empty(), "re-sending stops");
    let again = apply(&r.alert, "e3", &low(100, false), &rules());
    assert_eq!(kind(&again), Some(NoticeKind::Firing));
    assert_ne!(again.alert.firing.unwrap().epoch, epoch);
}

#[test]
fn ticks_resend_until_the_quiet_period_resolves() {
    let mut s = apply(&Alert::default(), "e1", &low(0, false), &rules());
    let epoch = s.alert.firing.as_ref().unwrap().epoch;
    let mut t = 0;
    let mut tick = 1;
    loop {
        t += RESEND;
        s = apply(
            &s.alert,
            &format!("t{tick}"),
            &Input::Resend {
                at: at(t),
                epoch,
                tick,
            },
            &rules(),
        );
        if t < QUIET {
            assert_eq!(s.effects.resend, Some(tick));
            assert_eq!(s.effects.timer, Some(tick + 1));
            tick += 1;
        } else {
            assert_eq!(kind(&s), Some(NoticeKind::Resolved));
            assert_eq!(s.effects.timer, None);
            break;
        }
    }
}

#[test]
fn the_same_event_again_replays_its_effects_without_a_second_transition() {
    let s = apply(&Alert::default(), "e1", &low(0, false), &rules());
    let again = apply(&s.alert, "e1", &low(0, false), &rules());
    assert!(!again.changed);
    assert_eq!(again.effects, s.effects);
    assert_eq!(again.alert, s.alert);
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Low {
        dt: i64,
        critical: bool,
    },
    Balance {
        dt: i64,
        balance: f64,
    },
    /// The pending re-send timer fires.
    Tick,
    /// A stale or foreign timer.
    StaleTick {
        tick: u32,
        other_epoch: bool,
    },
    /// The previous event again (redelivery).
    Replay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..4000, any::<bool>()).prop_map(|(dt, critical)| Op::Low { dt, critical }),
        2 => (0i64..600, 0.0f64..20.0).prop_map(|(dt, balance)| Op::Balance { dt, balance }),
        4 => Just(Op::Tick),
        1 => (0u32..5, any::<bool>()).prop_map(|(tick, other_epoch)| Op::StaleTick { tick, other_epoch }),
        1 => Just(Op::Replay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives: a notice only ever follows the lifecycle (fire → change/remind →
    /// resolve), reminders respect the throttle, notice numbers grow, a firing alert always
    /// has exactly its next tick pending, stale timers and replays change nothing.
    #[test]
    fn lifecycle_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let rules = rules();
        let mut alert = Alert::default();
        let mut now = 0i64;
        let mut pending: Option<(i64, u32, i64)> = None; // (epoch, tick, due)
        let mut last: Option<(String, Input)> = None;
        let mut n = 0;
        let mut epochs = Vec::new();
        for op in ops {
            n += 1;
            let id = format!("ev{n}");
            let (id, input) = match op {
                Op::Low { dt, critical } => { now += dt; (id, low(now, critical)) }
                Op::Balance { dt, balance } => { now += dt; (id, Input::Balance { at: at(now), balance }) }
                Op::Tick => match pending {
                    Some((epoch, tick, due)) => { now = now.max(due); (id, Input::Resend { at: at(now), epoch, tick }) }
                    None => continue,
                },
                Op::StaleTick { tick, other_epoch } => {
                    let epoch = alert.firing.as_ref().map_or(0, |f| f.epoch) + i64::from(other_epoch);
                    let current = alert.firing.as_ref().map(|f| (f.epoch, f.tick));
                    if current == Some((epoch, tick)) { continue; }
                    let step = apply(&alert, &id, &Input::Resend { at: at(now), epoch, tick }, &rules);
                    prop_assert!(!step.changed && step.effects.is_empty(), "a stale timer does nothing");
                    continue;
                }
                Op::Replay => match last.clone() {
                    Some((id, input)) => {
                        let before = alert.last.clone();
                        let step = apply(&alert, &id, &input, &rules);
                        prop_assert!(!step.changed);
                        prop_assert_eq!(Some(step.effects), before.map(|b| b.effects));
                        continue;
                    }
                    None => continue,
                },
            };
            let before = alert.firing.clone();
            let step = apply(&alert, &id, &input, &rules);
            let after = step.alert.firing.clone();
            if let Some(notice) = &step.effects.notice {
                match notice.kind {
                    NoticeKind::Firing => {
                        prop_assert!(before.is_none());
                        let f = after.as_ref().unwrap();
                        prop_assert_eq!(notice.seq, 0);
                        prop_assert!(epochs.last().is_none_or(|e| *e < f.epoch), "a new firing, a new epoch");
                        epochs.push(f.epoch);
                    }
                    NoticeKind::SeverityChanged => {
                        let (b, a) = (before.as_ref().unwrap(), after.as_ref().unwrap());
                        prop_assert_ne!(b.severity, a.severity);
                        prop_assert_eq!(notice.previous, Some(b.severity));
                    }
                    NoticeKind::Reminder => {
                        let b = before.as_ref().unwrap();
                        prop_assert!(at(now) - b.last_notified >= time::Duration::seconds(THROTTLE));
                    }
                    NoticeKind::Resolved => {
                        prop_assert!(before.is_some() && after.is_none());
                        prop_assert_eq!(step.effects.timer, None);
                    }
                }
                if let (Some(b), Some(a)) = (&before, &after) {
                    prop_assert_eq!(a.notices, b.notices + 1);
                    prop_assert_eq!(notice.seq, b.notices);
                }
            } else if let (Some(b), Some(a), Input::Low { critical, .. }) = (&before, &after, &input) {
                prop_assert_eq!(b.severity, a.severity);
                prop_assert_eq!(a.severity == Severity::Critical, *critical);
                prop_assert!(at(now) - b.last_notified < time::Duration::seconds(THROTTLE), "throttled");
            }
            if let Input::Low { critical, .. } = &input {
                let a = after.as_ref().unwrap();
                prop_assert_eq!(a.severity == Severity::Critical, *critical, "severity follows the latest callback");
            }
            if let Some(tick) = step.effects.timer {
                let a = after.as_ref().unwrap();
                prop_assert_eq!(tick, a.tick);
                pending = Some((a.epoch, tick, now + RESEND));
            }
            if after.is_none() {
                pending = None;
            }
            if let Some(a) = &after {
                let p = pending.unwrap();
                prop_assert_eq!((p.0, p.1), (a.epoch, a.tick), "exactly the next tick is pending while firing");
            }
            if step.changed {
                last = Some((id, input));
            }
            alert = step.alert;
        }
    }
}

#[test]
fn without_a_throttle_every_callback_notifies_even_one_handled_late() {
    let rules = Rules {
        throttle: Duration::ZERO,
        ..rules()
    };
    let s = apply(&Alert::default(), "e1", &low(10, false), &rules);
    let s = apply(&s.alert, "e2", &low(20, false), &rules);
    assert_eq!(kind(&s), Some(NoticeKind::Reminder));
    let late = apply(&s.alert, "e0", &low(5, false), &rules);
    assert_eq!(kind(&late), Some(NoticeKind::Reminder));
    assert_eq!(late.alert.firing.unwrap().last_notified, at(20));
}
