//! Min-balance alerts end to end, with their lifecycle: signed Voximplant callbacks in;
//! Alertmanager (`POST /api/v2/alerts`), Slack and a signed webhook out, each a real HTTP
//! server in the test. Firing is throttled for Slack and webhooks, re-sent to Alertmanager from
//! a durable timer, escalated at once, resolved by a recovered balance, and survives `kill -9`.

use std::collections::BTreeSet;
use std::time::Duration;

use relay_core::config::{
    AlertFormat, DestinationConfig, MinBalanceAlertConfig, NotifierConfig, Signing,
};
use relay_e2e::*;
use relay_signing::standard_webhooks;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WAIT: Duration = Duration::from_secs(20);
/// The re-send interval of these tests (production: 1 m).
const RESEND: Duration = Duration::from_secs(1);

/// The three notifiers' peers.
struct Peers {
    alertmanager: Sink,
    slack: Sink,
    webhook: Sink,
}

impl Peers {
    async fn start() -> Self {
        Self {
            alertmanager: Sink::start(&[]).await,
            slack: Sink::start(&[]).await,
            webhook: Sink::start(&[]).await,
        }
    }
}

/// Alerting to all three, a 1 h throttle, re-sent every second, recovered at 10.
fn env(peers: &Peers) -> TestEnv {
    let mut env = TestEnv::new();
    env.alerts_to(&peers.webhook.url);
    let am = peers.alertmanager.url.replace("/alerts", "/api/v2/alerts");
    env.config.destinations.insert(
        "alertmanager".into(),
        DestinationConfig::new(am, Signing::None, None),
    );
    env.config.destinations.insert(
        "slack".into(),
        DestinationConfig::new(&peers.slack.url, Signing::None, None),
    );
    let notifier = |destination: &str, format| NotifierConfig {
        destination: destination.into(),
        format,
    };
    env.config.worker.min_balance_alert = Some(MinBalanceAlertConfig {
        notifiers: vec![
            notifier("alertmanager", AlertFormat::Alertmanager),
            notifier("slack", AlertFormat::Slack),
            notifier("alerts", AlertFormat::Webhook),
        ],
        throttle: Duration::from_secs(3600),
        resend_interval: RESEND,
        quiet_period: Duration::from_secs(3600),
        recovery_balance: Some(10.0),
        generator_url: Some("https://manage.voximplant.com/billing".into()),
        ..Default::default()
    });
    env
}

/// A signed `min_balance` callback.
async fn low(addr: std::net::SocketAddr, callback_id: u64, credit_limit: bool) {
    let body = relay_signing::voximplant::sample_min_balance(
        ACCOUNT_ID,
        callback_id,
        API_KEY,
        SALT,
        1.25,
        credit_limit,
    );
    let response = post_callbacks(addr, serde_json::to_vec(&body).unwrap(), &[]).await;
    assert_eq!(response.status(), 200);
}

/// A signed account callback of another type that reports the balance.
async fn balance(addr: std::net::SocketAddr, callback_id: u64, balance: f64) {
    let hash = relay_signing::voximplant::callback_hash(SALT, ACCOUNT_ID, API_KEY, callback_id);
    let body = json!({"callbacks": [{
        "callback_id": callback_id, "type": "account_document_verified", "account_id": ACCOUNT_ID,
        "balance": balance, "currency": "USD", "hash": hash,
    }]});
    let response = post_callbacks(addr, serde_json::to_vec(&body).unwrap(), &[]).await;
    assert_eq!(response.status(), 200);
}

async fn json_of(sink: &mut Sink, what: &str) -> Value {
    let got = sink.next(WAIT).await.unwrap_or_else(|| panic!("{what}"));
    serde_json::from_slice(&got.body).unwrap()
}

/// Every request `sink` received within `window`.
async fn drain(sink: &mut Sink, window: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Some(got) = sink
        .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        all.push(serde_json::from_slice(&got.body).unwrap());
    }
    all
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a date-time"), &Rfc3339).expect("RFC 3339")
}

/// Checks `body` field by field against Alertmanager's v2 OpenAPI schema (`postableAlerts`:
/// an array of `postableAlert` = `labels` (required `labelSet`: string → string),
/// `annotations` (`labelSet`), `startsAt` and `endsAt` (`date-time`), `generatorURL` (`uri`),
/// nothing else) and the relay's own contract for this alert; returns the alerts.
fn postable_alerts(body: &Value) -> Vec<Value> {
    let alerts = body.as_array().expect("postableAlerts is a JSON array");
    assert!(!alerts.is_empty());
    for alert in alerts {
        let fields: BTreeSet<&str> = alert
            .as_object()
            .expect("postableAlert is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "labels",
                "annotations",
                "startsAt",
                "endsAt",
                "generatorURL"
            ]),
        );
        for set in ["labels", "annotations"] {
            for (name, value) in alert[set].as_object().expect("labelSet is an object") {
                assert!(
                    name.chars().next().unwrap().is_ascii_alphabetic()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{set}: {name} is a valid label name"
                );
                assert!(value.is_string(), "{set}.{name} is a string");
            }
        }
        let labels: BTreeSet<&str> = alert["labels"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            labels,
            BTreeSet::from(["alertname", "account_id", "account_name", "severity"])
        );
        assert_eq!(alert["labels"]["alertname"], "VoximplantLowBalance");
        assert_eq!(alert["labels"]["account_id"], ACCOUNT_ID.to_string());
        assert_eq!(alert["labels"]["account_name"], "sample");
        let summary = alert["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains(&ACCOUNT_ID.to_string()), "{summary}");
        assert_eq!(alert["annotations"]["description"], "Balance 1.25 USD");
        assert!(time_of(&alert["startsAt"]) <= time_of(&alert["endsAt"]));
        assert_eq!(
            alert["generatorURL"],
            "https://manage.voximplant.com/billing"
        );
    }
    alerts.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_low_balance_callbacks_notify_once_and_alertmanager_is_resent_until_escalation() {
    let mut peers = Peers::start().await;
    let env = env(&peers);
    let relay = Relay::start(&env.config).await;
    for callback_id in 1..=5 {
        low(relay.addr, callback_id, false).await;
    }

    // Slack: one readable message with blocks.
    let slack = json_of(&mut peers.slack, "the Slack message").await;
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with(":warning:"), "{text}");
    assert!(text.contains("below its minimum balance") && text.contains("1.25 USD"));
    assert_eq!(slack["blocks"][0]["type"], "section");
    // The webhook: one signed alert.
    let got = peers.webhook.next(WAIT).await.expect("the webhook");
    let secret = standard_webhooks::Secret::parse(WEBHOOK_SECRET).unwrap();
    standard_webhooks::verify(
        &secret,
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
        &got.body,
        OffsetDateTime::now_utc().unix_timestamp(),
        300,
    )
    .expect("signature verifies");
    let webhook: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(webhook["status"], "firing");
    assert_eq!(webhook["severity"], "warning");
    assert_eq!(webhook["account_id"], ACCOUNT_ID.to_string());

    // Alertmanager: the alert, then again every second, one stable label set and start.
    let first = json_of(&mut peers.alertmanager, "the first Alertmanager post").await;
    let first = postable_alerts(&first);
    let mut posts = drain(&mut peers.alertmanager, RESEND * 4 + RESEND / 2).await;
    assert!(posts.len() >= 3, "re-sent every second: {}", posts.len());
    assert!(posts.len() <= 6, "not more often: {}", posts.len());
    let now = OffsetDateTime::now_utc();
    for post in &posts {
        let alerts = postable_alerts(post);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["labels"], first[0]["labels"], "stable label set");
        assert_eq!(alerts[0]["startsAt"], first[0]["startsAt"], "one start");
        assert_eq!(alerts[0]["labels"]["severity"], "warning");
        assert!(
            time_of(&alerts[0]["endsAt"]) > now,
            "ends a few re-sends ahead"
        );
    }
    assert_eq!(peers.slack.count(), 1, "five callbacks, one Slack message");
    assert_eq!(peers.webhook.count(), 1, "five callbacks, one webhook");

    // The credit limit escalates at once, throttle or not.
    low(relay.addr, 6, true).await;
    let slack = json_of(&mut peers.slack, "the escalation on Slack").await;
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with(":rotating_light:") && text.contains("credit limit"),
        "{text}"
    );
    let webhook = json_of(&mut peers.webhook, "the escalation webhook").await;
    assert_eq!(webhook["severity"], "critical");
    assert_eq!(webhook["previous_severity"], "warning");
    // Alertmanager: the warning ends, the critical one fires (another label set).
    posts.clear();
    let escalated = loop {
        let post = json_of(&mut peers.alertmanager, "the escalation on Alertmanager").await;
        if post.as_array().unwrap().len() == 2 {
            break post;
        }
        posts.push(post);
    };
    let alerts = postable_alerts(&escalated);
    assert_eq!(alerts[0]["labels"]["severity"], "warning");
    assert!(time_of(&alerts[0]["endsAt"]) <= OffsetDateTime::now_utc());
    assert_eq!(alerts[1]["labels"]["severity"], "critical");
    let next = json_of(&mut peers.alertmanager, "the critical alert re-sent").await;
    assert_eq!(postable_alerts(&next)[0]["labels"]["severity"], "critical");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_balance_resolves_everywhere_and_a_later_low_balance_fires_anew() {
    let mut peers = Peers::start().await;
    let env = env(&peers);
    let relay = Relay::start(&env.config).await;
    low(relay.addr, 1, false).await;
    json_of(&mut peers.slack, "firing on Slack").await;
    json_of(&mut peers.webhook, "firing webhook").await;
    let first = json_of(&mut peers.alertmanager, "firing on Alertmanager").await;
    let started = first[0]["startsAt"].clone();

    // Below the recovery level: nothing happens.
    balance(relay.addr, 2, 9.5).await;
    // At or above it: resolved everywhere.
    balance(relay.addr, 3, 25.0).await;
    let slack = json_of(&mut peers.slack, "resolved on Slack").await;
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with(":white_check_mark: Resolved"), "{text}");
    let webhook = json_of(&mut peers.webhook, "resolved webhook").await;
    assert_eq!(webhook["status"], "resolved");
    assert_eq!(webhook["balance"], 25.0);
    let resolved = loop {
        let post = json_of(&mut peers.alertmanager, "resolved on Alertmanager").await;
        if time_of(&post[0]["endsAt"]) <= OffsetDateTime::now_utc() {
            break post;
        }
    };
    let resolved = &resolved[0];
    assert_eq!(resolved["startsAt"], started);
    assert_eq!(resolved["labels"], first[0]["labels"]);
    // Re-sending stops.
    let after = drain(&mut peers.alertmanager, RESEND * 3).await;
    assert!(after.is_empty(), "re-sent after resolution: {after:?}");
    assert_eq!(peers.slack.count(), 2);
    assert_eq!(peers.webhook.count(), 2);

    // A later low balance fires anew, with a new start.
    low(relay.addr, 4, false).await;
    let slack = json_of(&mut peers.slack, "firing again on Slack").await;
    assert!(slack["text"].as_str().unwrap().starts_with(":warning:"));
    let webhook = json_of(&mut peers.webhook, "firing again webhook").await;
    assert_eq!(webhook["status"], "firing");
    let again = json_of(&mut peers.alertmanager, "firing again on Alertmanager").await;
    assert!(time_of(&again[0]["startsAt"]) > time_of(&started));
    assert!(time_of(&again[0]["endsAt"]) > OffsetDateTime::now_utc());
    json_of(&mut peers.alertmanager, "and re-sent again").await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_firing_keeps_resending_after_restart_without_a_second_message() {
    let mut peers = Peers::start().await;
    let env = env(&peers);
    let (ingress, addr) = start_ingress(&env.config).await;
    let delivery = start_delivery(&env.config).await;
    ingress.wait_ready().await;
    let worker = env.spawn("relay-worker").await;
    for callback_id in 1..=3 {
        low(addr, callback_id, false).await;
    }
    json_of(&mut peers.slack, "firing on Slack").await;
    let first = json_of(&mut peers.alertmanager, "firing on Alertmanager").await;
    json_of(&mut peers.alertmanager, "re-sent once").await;

    // kill -9, and a while without any worker: the next tick waits in its queue.
    worker.kill();
    tokio::time::sleep(RESEND * 3).await;
    drain(&mut peers.alertmanager, Duration::from_millis(100)).await;
    let worker = env.spawn("relay-worker").await;
    low(addr, 4, false).await;
    let posts = drain(&mut peers.alertmanager, RESEND * 4).await;
    assert!(
        posts.len() >= 2,
        "re-sending goes on after the restart: {}",
        posts.len()
    );
    for post in &posts {
        let alerts = postable_alerts(post);
        assert_eq!(alerts[0]["labels"], first[0]["labels"]);
        assert_eq!(alerts[0]["startsAt"], first[0]["startsAt"]);
    }
    assert_eq!(peers.slack.count(), 1, "no second Slack message");
    assert_eq!(peers.webhook.count(), 1, "no second webhook");
    worker.terminate();
    delivery.stop().await;
    ingress.stop().await;
}
