//! What each notifier receives.

use super::notify::{self, Render};
use super::state::{Facts, Firing, Notice, NoticeKind, Severity};
use super::*;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);

fn render() -> Render<'static> {
    Render {
        account: "42",
        resend_interval: Duration::from_secs(60),
        generator_url: Some("https://manage.voximplant.com/billing"),
        now: T0,
        event_id: "e-1",
    }
}

fn firing(severity: Severity) -> Firing {
    Firing {
        epoch: 1,
        severity,
        since: T0,
        last_notified: T0,
        last_seen: T0,
        facts: Facts {
            account_name: Some("acme".into()),
            balance: json!(1.5),
            currency: Some("USD".into()),
        },
        notices: 1,
        tick: 1,
    }
}

fn notice(kind: NoticeKind, previous: Option<Severity>) -> Notice {
    Notice {
        kind,
        seq: 0,
        previous,
    }
}

/// Checks `body` against Alertmanager's v2 OpenAPI schema (`postableAlerts`: an array of
/// `postableAlert` = `labels` (required `labelSet`), `annotations` (`labelSet`), `startsAt`,
/// `endsAt` (`date-time`), `generatorURL` (`uri`)), and returns its alerts.
pub(crate) fn postable_alerts(body: &Value) -> &Vec<Value> {
    let alerts = body.as_array().expect("postableAlerts is an array");
    for alert in alerts {
        let alert = alert.as_object().expect("postableAlert is an object");
        for key in alert.keys() {
            assert!(
                [
                    "labels",
                    "annotations",
                    "startsAt",
                    "endsAt",
                    "generatorURL"
                ]
                .contains(&key.as_str()),
                "{key} is not in postableAlert"
            );
        }
        let label_set = |value: &Value| {
            for (name, value) in value.as_object().expect("labelSet is an object") {
                let mut chars = name.chars();
                assert!(
                    chars
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                );
                assert!(
                    chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{name}"
                );
                assert!(
                    value.as_str().is_some_and(|v| !v.is_empty()),
                    "{name}: a string"
                );
            }
        };
        label_set(alert.get("labels").expect("labels are required"));
        label_set(&alert["annotations"]);
        for time in ["startsAt", "endsAt"] {
            OffsetDateTime::parse(alert[time].as_str().unwrap(), &Rfc3339).expect(time);
        }
        if let Some(url) = alert.get("generatorURL") {
            assert!(url.as_str().unwrap().contains("://"), "a uri");
        }
    }
    alerts
}

#[test]
fn alertmanager_firing_alert_follows_the_v2_schema_and_ends_a_few_resends_ahead() {
    let body = notify::alertmanager(
        &render(),
        &firing(Severity::Warning),
        Some(&notice(NoticeKind::Firing, None)),
        T0,
    );
    let alerts = postable_alerts(&body);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "VoximplantLowBalance", "account_id": "42",
               "account_name": "acme", "severity": "warning"})
    );
    assert_eq!(
        a["annotations"]["summary"],
        "Voximplant account acme (42) is below its minimum balance"
    );
    assert_eq!(a["annotations"]["description"], "Balance 1.5 USD");
    assert_eq!(a["startsAt"], "2026-12-04T10:00:00Z");
    assert_eq!(a["endsAt"], "2026-12-04T10:04:00Z");
    assert_eq!(a["generatorURL"], "https://manage.voximplant.com/billing");
}

#[test]
fn alertmanager_resolution_ends_now_and_a_severity_change_ends_the_former_label_set() {
    let now = T0 + time::Duration::minutes(30);
    let body = notify::alertmanager(
        &render(),
        &firing(Severity::Warning),
        Some(&notice(NoticeKind::Resolved, None)),
        now,
    );
    let alerts = postable_alerts(&body);
    assert_eq!(alerts[0]["endsAt"], "2026-12-04T10:30:00Z");
    assert_eq!(alerts[0]["startsAt"], "2026-12-04T10:00:00Z");

    let body = notify::alertmanager(
        &render(),
        &firing(Severity::Critical),
        Some(&notice(
            NoticeKind::SeverityChanged,
            Some(Severity::Warning),
        )),
        now,
    );
    let alerts = postable_alerts(&body);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["severity"], "warning");
    assert_eq!(alerts[0]["endsAt"], "2026-12-04T10:30:00Z");
    assert_eq!(alerts[1]["labels"]["severity"], "critical");
    assert_eq!(alerts[1]["endsAt"], "2026-12-04T10:34:00Z");
}

#[test]
fn slack_says_firing_and_resolved_in_text_and_blocks() {
    let f = firing(Severity::Critical);
    let body = notify::slack(&render(), &f, &notice(NoticeKind::Firing, None), T0);
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with(":rotating_light:"), "{text}");
    assert!(text.contains("reached its credit limit") && text.contains("1.5 USD"));
    assert_eq!(body["blocks"][0]["type"], "section");
    assert_eq!(body["blocks"][1]["type"], "context");

    let body = notify::slack(&render(), &f, &notice(NoticeKind::Resolved, None), T0);
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with(":white_check_mark: Resolved"), "{text}");
    let context = body["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    assert!(context.contains("RESOLVED"), "{context}");
}

#[test]
fn webhook_carries_the_alert_facts_and_status() {
    let body = notify::webhook(
        &render(),
        &firing(Severity::Warning),
        &notice(NoticeKind::Firing, None),
        T0,
    );
    assert_eq!(body["status"], "firing");
    assert_eq!(body["severity"], "warning");
    assert_eq!(body["account_id"], "42");
    assert_eq!(body["balance"], 1.5);
    assert_eq!(body["ends_at"], Value::Null);
    assert_eq!(body["event_id"], "e-1");
    let body = notify::webhook(
        &render(),
        &firing(Severity::Warning),
        &notice(NoticeKind::Resolved, None),
        T0,
    );
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["ends_at"], "2026-12-04T10:00:00Z");
}

fn event(min_credit: bool) -> CloudEvent {
    CloudEvent::new(
        "e-1".into(),
        "voximplant/account/42".into(),
        "com.voximplant.account.min_balance".into(),
        json!({"account_id": 42, "account_name": "acme", "balance": 1.5, "currency": "USD",
               "min_balance": {"is_min_credit": min_credit, "is_repeated": true}}),
    )
    .with_subject("42")
}

#[test]
fn a_one_off_job_is_the_firing_alert_with_a_deterministic_id() {
    let j = job(&event(true), "alerts", AlertFormat::Webhook).unwrap();
    let body: Value = serde_json::from_str(&j.body).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["account_id"], "42");
    assert_eq!(j.id, ids::job_id("e-1", NAME, 0));
    assert_eq!(j.idempotency_key, j.id);
    let mut e = event(false);
    e.data = json!([1]);
    assert!(job(&e, "alerts", AlertFormat::Webhook).is_err());
}
