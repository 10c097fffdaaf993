//! The failure-alert lifecycles and what each notifier receives.

use std::time::Duration;

use proptest::prelude::*;
use relay_core::config::AlertFormat;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

use super::notify;
use super::state::*;
use crate::handlers::alerting::tests::postable_alerts;

const T0: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);

fn rules() -> Grouping {
    Grouping {
        group_wait: Duration::from_secs(30),
        window: Duration::from_secs(3600),
    }
}

fn failure(n: u32, after: Duration) -> Failure {
    Failure {
        id: format!("outcome-{n}"),
        job_id: format!("job-{n}"),
        handler: "call-log".into(),
        event_type: Some("call-log.answered".into()),
        status: Some(400),
        reason: Some("http_status".into()),
        detail: Some("400 Bad Request".into()),
        excerpt: Some(r#"{"error":"conversation not found"}"#.into()),
        attempts: 1,
        at: T0 + after,
    }
}

#[test]
fn a_window_alerts_once_at_its_tick_with_everything_counted_until_then() {
    let rules = rules();
    let first = failed(&Failures::default(), failure(1, Duration::ZERO), &rules);
    assert_eq!(first.effects.timer, Some(1));
    assert!(!first.effects.alert);
    let mut record = first.record;
    for n in 2..=5 {
        let step = failed(
            &record,
            failure(n, Duration::from_secs(u64::from(n))),
            &rules,
        );
        assert_eq!(
            step.effects,
            FailureEffects::default(),
            "no timer, no alert"
        );
        record = step.record;
    }
    let ticked = tick(&record, 1);
    assert!(ticked.effects.alert);
    let window = ticked.record.window.clone().unwrap();
    assert_eq!((window.count, window.reported), (5, 5));
    assert_eq!(window.last.job_id, "job-5");
    // The same tick again (a duplicate timer) and a stale epoch do nothing.
    assert!(!tick(&ticked.record, 1).changed);
    assert!(!tick(&ticked.record, 7).changed);
    // More failures in the window: counted, not alerted; the next window carries them.
    let later = failed(&ticked.record, failure(6, Duration::from_secs(600)), &rules);
    assert_eq!(later.effects, FailureEffects::default());
    let next = failed(&later.record, failure(7, Duration::from_secs(3600)), &rules);
    assert_eq!(next.effects.timer, Some(2));
    let window = next.record.window.unwrap();
    assert_eq!((window.epoch, window.count, window.carried), (2, 1, 1));
}

#[test]
fn a_repeated_outcome_is_counted_once_and_no_wait_alerts_at_once() {
    let rules = Grouping {
        group_wait: Duration::ZERO,
        ..rules()
    };
    let first = failed(&Failures::default(), failure(1, Duration::ZERO), &rules);
    assert!(first.effects.alert);
    assert_eq!(first.effects.timer, None);
    let again = failed(&first.record, failure(1, Duration::ZERO), &rules);
    assert!(!again.changed);
}

proptest! {
    /// Whatever the order, repeats and ticks: each outcome counts once, each window alerts at
    /// most once, and every counted failure is either reported, carried or still pending.
    #[test]
    fn failures_count_once_and_windows_alert_at_most_once(
        inputs in prop::collection::vec((0u32..12, 0u64..9000, any::<bool>()), 1..60)
    ) {
        let rules = rules();
        let mut record = Failures::default();
        let mut alerts: std::collections::BTreeMap<u64, u32> = Default::default();
        let mut distinct = std::collections::BTreeSet::new();
        for (n, secs, is_tick) in inputs {
            let step = if is_tick {
                tick(&record, u64::from(n % 3) + 1)
            } else {
                distinct.insert(n);
                failed(&record, failure(n, Duration::from_secs(secs)), &rules)
            };
            if step.effects.alert {
                let epoch = step.record.window.as_ref().unwrap().epoch;
                *alerts.entry(epoch).or_default() += 1;
            }
            record = step.record;
        }
        prop_assert!(alerts.values().all(|&n| n == 1), "{alerts:?}");
        prop_assert!(record.recent.len() <= RECENT);
        if let Some(window) = &record.window {
            prop_assert!(window.reported <= window.count);
            prop_assert!(window.count <= distinct.len() as u64);
        }
    }

    /// A condition fires once per epoch and alternates firing and resolved; out-of-date
    /// observations change nothing.
    #[test]
    fn conditions_alternate_firing_and_resolved(
        inputs in prop::collection::vec((any::<bool>(), 0i64..600), 1..60)
    ) {
        let mut record = Condition::default();
        let mut last = None;
        for (active, secs) in inputs {
            let seen = record.seen;
            let step = observe(&record, observation(active, 7, secs));
            if seen.is_some_and(|s| T0 + time::Duration::seconds(secs) <= s) {
                prop_assert!(!step.changed);
            }
            if let Some((notice, _)) = step.notice
                && notice != ConditionNotice::Resend
            {
                prop_assert_ne!(Some(notice), last);
                last = Some(notice);
            }
            prop_assert_eq!(step.record.firing.is_some(), last == Some(ConditionNotice::Firing));
            record = step.record;
        }
    }
}

fn observation(active: bool, value: u64, secs: i64) -> Observation {
    Observation {
        kind: "queue_depth".into(),
        subject: "relay.dead.deliveries".into(),
        active,
        value,
        threshold: 5,
        at: T0 + time::Duration::seconds(secs),
    }
}

#[test]
fn a_condition_fires_is_resent_while_active_and_resolves_once_clear() {
    let quiet = observe(&Condition::default(), observation(false, 0, 0));
    assert!(!quiet.changed && quiet.notice.is_none());
    let fired = observe(&quiet.record, observation(true, 9, 30));
    assert_eq!(fired.notice.as_ref().unwrap().0, ConditionNotice::Firing);
    let resent = observe(&fired.record, observation(true, 12, 60));
    let (notice, firing) = resent.notice.clone().unwrap();
    assert_eq!(notice, ConditionNotice::Resend);
    assert_eq!(
        (firing.since, firing.last.value),
        (T0 + Duration::from_secs(30), 12)
    );
    assert!(
        !observe(&resent.record, observation(false, 0, 45)).changed,
        "stale"
    );
    let resolved = observe(&resent.record, observation(false, 2, 90));
    assert_eq!(resolved.notice.unwrap().0, ConditionNotice::Resolved);
    assert!(resolved.record.firing.is_none());
    let again = observe(&resolved.record, observation(true, 9, 120));
    assert_eq!(again.notice.unwrap().1.epoch, 2);
}

fn window() -> Window {
    let rules = rules();
    let mut record = failed(&Failures::default(), failure(1, Duration::ZERO), &rules).record;
    for n in 2..=3 {
        record = failed(&record, failure(n, Duration::from_secs(5)), &rules).record;
    }
    tick(&record, 1).record.window.unwrap()
}

#[test]
fn the_delivery_alert_names_destination_type_status_excerpt_count_and_command() {
    let alert = notify::delivery_failed("helpdesk", &window(), Duration::from_secs(3600));
    let body = notify::alertmanager(&alert);
    let alerts = postable_alerts(&body);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["labels"]["alertname"], "RelayDeliveryFailed");
    assert_eq!(a["labels"]["destination"], "helpdesk");
    assert_eq!(a["labels"]["severity"], "warning");
    assert_eq!(
        a["annotations"]["command"],
        "relayctl dead list --destination helpdesk"
    );
    let description = a["annotations"]["description"].as_str().unwrap();
    for part in [
        "3 deliveries failed",
        "call-log.answered",
        "HTTP 400",
        "conversation not found",
    ] {
        assert!(description.contains(part), "{part} in {description}");
    }
    assert_eq!(a["startsAt"], "2026-12-04T10:00:00Z");
    assert_eq!(a["endsAt"], "2026-12-04T11:00:00Z");

    let hook = notify::body(AlertFormat::Webhook, &alert, "e-1");
    assert_eq!(hook["type"], "relay.failure_alert");
    assert_eq!(hook["status"], "firing");
    assert_eq!(hook["facts"]["failed"], 3);
    assert_eq!(hook["facts"]["last_status"], 400);
    assert_eq!(hook["facts"]["event_type"], "call-log.answered");
    let slack = notify::body(AlertFormat::Slack, &alert, "e-1");
    let text = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        text.contains("`relayctl dead list --destination helpdesk`"),
        "{text}"
    );
}

#[test]
fn condition_alerts_fire_with_a_label_set_that_stays_and_resolve_with_ends_at_now() {
    let fired = observe(&Condition::default(), observation(true, 9, 30));
    let (_, firing) = fired.notice.unwrap();
    let every = Duration::from_secs(30);
    let alert = notify::condition(ConditionNotice::Firing, &firing, every, T0);
    let body = notify::alertmanager(&alert);
    let a = &postable_alerts(&body)[0];
    assert_eq!(a["labels"]["alertname"], "RelayQueueDepth");
    assert_eq!(a["labels"]["queue"], "relay.dead.deliveries");
    assert_eq!(
        a["annotations"]["command"],
        "relayctl dead list --queue dead-deliveries"
    );
    assert_eq!(a["endsAt"], "2026-12-04T10:02:30Z", "four checks ahead");
    let resolved = observe(&fired.record, observation(false, 1, 60));
    let (notice, firing) = resolved.notice.unwrap();
    let done = notify::condition(notice, &firing, every, T0);
    let body = notify::alertmanager(&done);
    let r = &postable_alerts(&body)[0];
    assert_eq!(r["labels"], a["labels"], "the same alert, resolved");
    assert_eq!(r["endsAt"], "2026-12-04T10:01:00Z");
    let slack: Value = notify::slack(&done);
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: Resolved")
    );
    let breaker = Observation {
        kind: "breaker_open".into(),
        subject: "helpdesk".into(),
        active: true,
        value: 420,
        threshold: 300,
        at: T0,
    };
    let fired = observe(&Condition::default(), breaker);
    let (notice, firing) = fired.notice.unwrap();
    let alert = notify::condition(notice, &firing, every, T0);
    assert_eq!(alert.name, "RelayDestinationBreakerOpen");
    assert!(
        alert.summary.contains("open for 7 min"),
        "{}",
        alert.summary
    );
}
