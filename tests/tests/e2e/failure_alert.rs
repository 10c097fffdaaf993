//! Failure alerts end to end: a helpdesk refusing every call log raises one alert with its
//! context, not one per job; an alert destination that fails is never alerted about; a
//! parking lot above its threshold and a breaker open too long fire and resolve. Alertmanager,
//! Slack and the webhook receiver are HTTP servers in the test.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_core::config::{
    AlertFormat, DestinationConfig, FailureAlertConfig, NotifierConfig, Signing,
};
use relay_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "15105559999";
const CHANNEL: &str = "15550009999";

fn notifier(destination: &str, format: AlertFormat) -> NotifierConfig {
    NotifierConfig {
        destination: destination.into(),
        format,
    }
}

/// Failure alerts to the three peers, grouped for `group_wait`, checked every second.
fn failure_alerts(env: &mut TestEnv, peers: &[(&str, &Sink, AlertFormat)], group_wait: Duration) {
    for (name, sink, format) in peers {
        let url = if *format == AlertFormat::Alertmanager {
            sink.url.replace("/alerts", "/api/v2/alerts")
        } else {
            sink.url.clone()
        };
        env.config.destinations.insert(
            (*name).into(),
            DestinationConfig::new(url, Signing::None, None),
        );
    }
    env.config.worker.failure_alert = Some(FailureAlertConfig {
        notifiers: peers
            .iter()
            .map(|(name, _, format)| notifier(name, *format))
            .collect(),
        group_wait,
        check_interval: Duration::from_secs(1),
        queue_thresholds: BTreeMap::new(),
        ..Default::default()
    });
}

/// Every JSON request `sink` receives until it has been quiet for `quiet`.
async fn drain(sink: &mut Sink, quiet: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(got) = sink.next(quiet).await {
        all.push(serde_json::from_slice(&got.body).unwrap());
    }
    all
}

async fn next_json(sink: &mut Sink, what: &str) -> Value {
    let got = sink.next(WAIT).await.unwrap_or_else(|| panic!("{what}"));
    serde_json::from_slice(&got.body).unwrap()
}

/// An inbound Plivo call answered and hung up: three helpdesk messages.
async fn call(addr: std::net::SocketAddr) {
    let call = uuid::Uuid::now_v7().to_string();
    for (status, extra) in [
        ("in-progress", None),
        ("completed", Some(("Duration", "7"))),
    ] {
        let mut params = vec![
            ("CallUUID", call.as_str()),
            ("From", CUSTOMER),
            ("To", CHANNEL),
            ("Direction", "inbound"),
            ("CallStatus", status),
        ];
        params.extend(extra);
        let route = if status == "completed" {
            "/v1/plivo/hangup"
        } else {
            "/v1/plivo/answer"
        };
        let response = plivo_callback(addr, route, &params).await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_refusing_every_call_log_raises_one_alert_with_its_context() {
    // The helpdesk answers 400 to everything: never retried, every message fails at once.
    let helpdesk = Sink::start(&[400; 64]).await;
    let mut alertmanager = Sink::start(&[]).await;
    let mut slack = Sink::start(&[]).await;
    let mut webhook = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.plivo();
    env.helpdesk_to(&helpdesk.url);
    env.config.worker.call_log.as_mut().unwrap().default_region = Some("US".into());
    failure_alerts(
        &mut env,
        &[
            ("alertmanager", &alertmanager, AlertFormat::Alertmanager),
            ("slack", &slack, AlertFormat::Slack),
            ("ops-webhook", &webhook, AlertFormat::Webhook),
        ],
        Duration::from_secs(3),
    );
    let relay = Relay::start(&env.config).await;
    for _ in 0..3 {
        call(relay.addr).await;
    }

    let alert = next_json(&mut webhook, "the failure alert").await;
    assert_eq!(alert["type"], "relay.failure_alert");
    assert_eq!(alert["alertname"], "RelayDeliveryFailed");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["destination"], "helpdesk");
    let facts = &alert["facts"];
    assert_eq!(facts["destination"], "helpdesk");
    assert_eq!(facts["last_status"], 400);
    assert_eq!(facts["reason"], "http_status");
    assert_eq!(facts["handler"], "call-log");
    assert!(
        facts["event_type"]
            .as_str()
            .unwrap()
            .starts_with("call-log."),
        "{facts}"
    );
    assert_eq!(facts["response_excerpt"], "sink answered 400");
    assert!(
        facts["failed"].as_u64().unwrap() >= 3,
        "every call's failure counted in the one alert: {facts}"
    );
    assert_eq!(
        alert["command"],
        "relayctl dead list --destination helpdesk"
    );
    let am = next_json(&mut alertmanager, "the Alertmanager alert").await;
    assert_eq!(am[0]["labels"]["alertname"], "RelayDeliveryFailed");
    assert_eq!(am[0]["labels"]["destination"], "helpdesk");
    let text = next_json(&mut slack, "the Slack message").await["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("Deliveries to helpdesk are failing"),
        "{text}"
    );

    // More failures in the same window: counted, never alerted again.
    call(relay.addr).await;
    for (sink, name) in [
        (&mut webhook, "webhook"),
        (&mut slack, "slack"),
        (&mut alertmanager, "alertmanager"),
    ] {
        let more = drain(sink, Duration::from_secs(5)).await;
        assert!(more.is_empty(), "{name} got a second alert: {more:#?}");
    }

    // The console's Alerts page reads the notice the handler recorded: firing, once.
    let mut redis = env.redis().await;
    let prefix = &env.config.redis.key_prefix;
    let firing: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}alerts:firing"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let note: serde_json::Value =
        serde_json::from_str(&firing["delivery-failed:helpdesk"]).unwrap();
    assert_eq!(note["name"], "RelayDeliveryFailed");
    assert_eq!(note["notice"], "firing");
    assert!(
        note["ends_at"].is_string(),
        "it ends with its window: {note}"
    );
    let log: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}alerts:log"))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "one notice for the window: {log:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_destination_that_fails_is_logged_and_counted_never_alerted_about() {
    let helpdesk = Sink::start(&[400; 64]).await;
    // The only notifier refuses everything too.
    let mut alerts = Sink::start(&[400; 64]).await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.plivo();
    env.helpdesk_to(&helpdesk.url);
    env.config.worker.call_log.as_mut().unwrap().default_region = Some("US".into());
    failure_alerts(
        &mut env,
        &[("failing-alerts", &alerts, AlertFormat::Webhook)],
        Duration::from_millis(500),
    );
    let relay = Relay::start(&env.config).await;
    call(relay.addr).await;

    let first = next_json(&mut alerts, "the one failure alert").await;
    assert_eq!(first["labels"]["destination"], "helpdesk");
    let series = r#"relay_failure_alerts_suppressed_total{destination="failing-alerts"}"#;
    let deadline = tokio::time::Instant::now() + WAIT;
    while series_value(&admin_metrics(relay.worker.admin).await, series) < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert's own failure was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past a group wait and more: nothing about the alert destination's failure.
    let more = drain(&mut alerts, Duration::from_secs(3)).await;
    assert!(more.is_empty(), "an alert about the alert: {more:#?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parking_lot_above_its_threshold_fires_and_resolves_when_cleared() {
    let refusing = Sink::start(&[400; 4]).await;
    let mut webhook = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.config.destinations.insert(
        "refusing".into(),
        DestinationConfig::new(&refusing.url, Signing::None, None),
    );
    failure_alerts(
        &mut env,
        &[("ops-webhook", &webhook, AlertFormat::Webhook)],
        Duration::from_secs(60),
    );
    env.config
        .worker
        .failure_alert
        .as_mut()
        .unwrap()
        .queue_thresholds = BTreeMap::from([("relay.dead.deliveries".into(), 1)]);
    let relay = Relay::start(&env.config).await;
    publish_jobs(&env, &jobs_for("refusing", 2)).await;

    let fired = next_json(&mut webhook, "the queue alert").await;
    assert_eq!(fired["alertname"], "RelayQueueDepth");
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["labels"]["queue"], "relay.dead.deliveries");
    assert_eq!(fired["facts"]["value"], 2);
    assert_eq!(
        fired["command"],
        "relayctl dead list --queue dead-deliveries"
    );

    let connection = env.connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_purge(
            "relay.dead.deliveries".into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .unwrap();
    let resolved = next_json(&mut webhook, "the resolution").await;
    assert_eq!(resolved["alertname"], "RelayQueueDepth");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["facts"]["value"], 0);

    // The console's Alerts page: nothing firing any more, the firing and the resolution logged
    // (newest first). The notice is recorded before its jobs go out, so it is there by now.
    let mut redis = env.redis().await;
    let prefix = &env.config.redis.key_prefix;
    let firing: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{prefix}alerts:firing"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(firing.is_empty(), "{firing:?}");
    let log: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}alerts:log"))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let notices: Vec<(String, String)> = log
        .iter()
        .map(|n| {
            let n: Value = serde_json::from_str(n).unwrap();
            (
                n["notice"].as_str().unwrap().to_owned(),
                n["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        notices.first().map(|n| n.0.as_str()),
        Some("resolved"),
        "{notices:?}"
    );
    assert!(notices.iter().any(|n| n.0 == "firing"), "{notices:?}");
    assert!(
        notices.iter().all(|n| n.1.starts_with("condition:")),
        "{notices:?}"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_open_too_long_fires_and_resolves_once_it_closes() {
    // Two failures open the breaker; the first probe (after 3 s) fails, the next succeeds.
    let flaky = Sink::start(&[503, 503, 503]).await;
    let mut webhook = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.config.delivery.breaker_report_interval = Duration::from_millis(200);
    let mut destination = DestinationConfig::new(&flaky.url, Signing::None, None);
    destination.breaker_failures = 2;
    destination.breaker_cool_down = Duration::from_secs(3);
    destination.max_attempts = 50;
    env.config.destinations.insert("flaky".into(), destination);
    failure_alerts(
        &mut env,
        &[("ops-webhook", &webhook, AlertFormat::Webhook)],
        Duration::from_secs(60),
    );
    env.config
        .worker
        .failure_alert
        .as_mut()
        .unwrap()
        .breaker_open_after = Duration::from_secs(1);
    let relay = Relay::start(&env.config).await;
    publish_jobs(&env, &jobs_for("flaky", 1)).await;

    let fired = next_json(&mut webhook, "the breaker alert").await;
    assert_eq!(fired["alertname"], "RelayDestinationBreakerOpen");
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["labels"]["destination"], "flaky");
    assert!(fired["facts"]["value"].as_u64().unwrap() >= 1);
    let resolved = next_json(&mut webhook, "the breaker's resolution").await;
    assert_eq!(resolved["alertname"], "RelayDestinationBreakerOpen");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(flaky.count(), 4, "three failures, then the job went");
    relay.stop().await;
}
