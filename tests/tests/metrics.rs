//! Assertions on metrics. Metrics are per process, so these tests have a binary of their own
//! (no other test's counts mix in) and run one after the other (a lock).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use relay_core::config::{
    AcrobitsAccount, AcrobitsSource, AlertFormat, DestinationConfig, FailureAlertConfig,
    MissedCallbacks, NotifierConfig, PlivoOrigination, Provider, ReamazeSource, SignatureEncoding,
    Signing, SourceConfig, SourceScheme, WebCallbackConfig,
};
use relay_e2e::*;
use relay_ingress::problem::Problem;
use relay_telemetry::catalog::{Kind, METRICS};
use tokio::sync::Mutex;

static ALONE: Mutex<()> = Mutex::const_new(());
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_counted_for_every_request_it_touches() {
    let _alone = ALONE.lock().await;
    let mut env = TestEnv::new();
    env.config.redis.url = format!("redis://127.0.0.1:{}", dead_port());
    let (ingress, addr) = start_ingress(&env.config).await;
    // Ready needs Redis once; wait for the broker by posting until accepted.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut id = 100;
    while post_callbacks(addr, min_balance_body(id), &[])
        .await
        .status()
        != 200
    {
        assert!(tokio::time::Instant::now() < deadline, "never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = r#"relay_redis_skipped_total{op="seen"}"#;
    let accepted = r#"relay_ingress_requests_total{source="voximplant",outcome="accepted"}"#;
    let (seen_before, accepted_before) = (metric(seen), metric(accepted));
    for _ in 0..5 {
        id += 1;
        assert_eq!(
            post_callbacks(addr, min_balance_body(id), &[])
                .await
                .status(),
            200
        );
    }
    assert_eq!(metric(accepted) - accepted_before, 5.0);
    assert_eq!(
        metric(seen) - seen_before,
        5.0,
        "each accepted request counts its skipped dedup check"
    );
    assert_eq!(metric("relay_redis_breaker_open"), 1.0);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_opens_the_breaker_and_coming_back_closes_it() {
    let _alone = ALONE.lock().await;
    let mut redis = PrivateRedis::start().await;
    let mut env = TestEnv::new();
    env.config.redis.url = redis.url();
    env.config.redis.probe_interval = Duration::from_millis(50);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let status = |id| async move {
        post_callbacks(addr, min_balance_body(id), &[])
            .await
            .status()
    };
    let duplicates = |id| async move {
        let answer: serde_json::Value = post_callbacks(addr, min_balance_body(id), &[])
            .await
            .json()
            .await
            .unwrap();
        answer["duplicates"].clone()
    };
    assert_eq!(status(1).await, 200);
    assert_eq!(duplicates(1).await, 1, "dedup works while Redis is up");
    assert_eq!(metric("relay_redis_breaker_open"), 0.0);

    // Redis dies: every request is still accepted, and once the breaker opens Redis is
    // skipped (counted) instead of being waited for.
    redis.kill();
    let skipped = r#"relay_redis_skipped_total{op="seen"}"#;
    let before = metric(skipped);
    for id in 10..40 {
        assert_eq!(status(id).await, 200);
    }
    assert_eq!(metric("relay_redis_breaker_open"), 1.0);
    let skipped_now = metric(skipped) - before;
    assert!(
        skipped_now >= 30.0 - f64::from(env.config.redis.breaker_failures),
        "only the first few requests waited for Redis; {skipped_now} skipped"
    );

    // Redis is back: the probe closes the breaker and dedup works again.
    redis.resume().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric("relay_redis_breaker_open") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(50).await, 200);
    assert_eq!(duplicates(50).await, 1, "dedup works again");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depth_of_relay_unrouted_is_a_metric() {
    let _alone = ALONE.lock().await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.config.worker.queue_depth_interval = Duration::from_millis(100);
    let worker = start_worker(&env.config).await;
    worker.wait_ready().await;
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    let series = r#"relay_queue_messages{queue="relay.unrouted"}"#;
    for n in 0..3 {
        let confirm = channel
            .basic_publish(
                "relay.events".into(),
                format!("nobody.listens{n}").as_str().into(),
                Default::default(),
                b"{}",
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(series) != 3.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {}",
            metric(series)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_service_describes_its_metrics_and_shows_zeros_not_gaps() {
    let env = TestEnv::new();
    let delivery = env.spawn("relay-delivery").await;
    let text = delivery.metrics_text().await;
    // Every label-less metric exists, described, before any traffic: a counter at zero, a
    // histogram without observations, a gauge at its value (labelled series: the next test).
    let mut seen = 0;
    for metric in METRICS.iter().filter(|m| !m.labelled) {
        assert!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "no HELP for {}: {text}",
            metric.name
        );
        let there = |l: &str| match metric.kind {
            Kind::Counter => l == format!("{} 0", metric.name),
            Kind::Histogram => l == format!("{}_count 0", metric.name),
            Kind::Gauge => l.starts_with(&format!("{} ", metric.name)),
        };
        assert!(
            text.lines().any(there),
            "{} is not there at start-up: {text}",
            metric.name
        );
        seen += 1;
    }
    assert!(seen >= 10, "{seen}");
    delivery.terminate();
}

/// One series of a Prometheus text exposition.
#[derive(Debug)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The series of `text` (label values here hold no quotes or commas).
fn series_of(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match key.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Series {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// One service's `/metrics` right after start-up.
struct Exposition {
    service: &'static str,
    text: String,
    series: Vec<Series>,
}

impl Exposition {
    async fn of(child: &Child) -> Self {
        let text = child.metrics_text().await;
        Self {
            service: child.name(),
            series: series_of(&text),
            text,
        }
    }

    /// The value of the series `name` with exactly `labels`, if it exists.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.series
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Asserts that the series `name` with exactly `labels` is there, at 0.
    fn zero(&self, name: &str, labels: &[(&str, &str)]) {
        assert_eq!(
            self.value(name, labels),
            Some(0.0),
            "{}: {name}{labels:?} is not there at 0:\n{}",
            self.service,
            self.text
        );
    }

    /// The values of label `label` among the series of `name`.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.series
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

/// The generic source of [`everything_on`], and its Basic credentials.
const HOOK: &str = "shop";
const HOOK_USER: &str = "sender";
const HOOK_PASSWORD: &str = "shop-password";

/// Every handler on, every built-in route and a generic source, destinations of each kind (one
/// with its secrets in a file). The failure-alert watch has nothing to look at (no queue
/// thresholds, every destination a notifier), so nothing moves before the test reads.
fn everything_on() -> TestEnv {
    let mut env = TestEnv::new();
    let hash = relay_signing::password::hash_argon2("console-password").unwrap();
    env.config.console.users = vec![relay_core::config::ConsoleUser {
        name: "ops".into(),
        password_hash_env: env.secret("TEST_CONSOLE_HASH", &hash),
    }];
    let nowhere = "http://127.0.0.1:1/nowhere";
    env.alerts_to(nowhere);
    env.helpdesk_to(nowhere);
    env.plivo();
    env.voximplant_events();
    env.config.ingress.reamaze = Some(ReamazeSource {
        secret_env: env.secret("TEST_REAMAZE_SECRET", "rz-secret"),
    });
    let hook = SourceConfig {
        scheme: SourceScheme::Basic,
        secret_env: env.secret("TEST_HOOK_PASSWORD", HOOK_PASSWORD),
        username: Some(HOOK_USER.into()),
        header: None,
        encoding: SignatureEncoding::Hex,
        prefix: String::new(),
        type_pointer: None,
        id_pointer: Some("/id".into()),
        tolerance: Duration::from_secs(300),
    };
    env.config.ingress.sources.insert(HOOK.into(), hook);
    // A public port known before ingress starts in its own process.
    env.config.ingress.listen = std::net::SocketAddr::from(([127, 0, 0, 1], dead_port()));
    let hash = relay_signing::password::hash_argon2("secretW0rd").unwrap();
    env.config.ingress.acrobits = Some(AcrobitsSource {
        accounts: vec![AcrobitsAccount {
            username: "alice".into(),
            password_hash_env: Some(env.secret("TEST_ALICE_HASH", &hash)),
            password_env: None,
        }],
        ..AcrobitsSource::default()
    });
    let mut plivo_api = DestinationConfig::new(
        nowhere,
        Signing::Basic,
        Some(env.secret("TEST_PLIVO_API_TOKEN", "plivo-api-token")),
    );
    plivo_api.username = Some("MA123".into());
    env.config
        .destinations
        .insert("plivo-api".into(), plivo_api);
    let secret_file = std::env::temp_dir().join(format!(
        "relay-e2e-metrics-secret-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
    let mut rotating = DestinationConfig::new(nowhere, Signing::StandardWebhooks, None);
    rotating.secret_file = Some(secret_file);
    env.config.destinations.insert("rotating".into(), rotating);
    env.config.worker.web_callback = Some(WebCallbackConfig {
        provider: Provider::Plivo,
        plivo: Some(PlivoOrigination {
            destination: "plivo-api".into(),
            auth_id: "MA123".into(),
            caller_id: "+15550001111".into(),
            ring_timeout: 30,
        }),
        missed_calls: Some(MissedCallbacks {
            channels: vec!["+15550009999".into()],
            hours: "00:00-24:00".into(),
            time_zone: "UTC".into(),
            per_caller_per_day: 1,
            user: "missed-call".into(),
            first_number: None,
        }),
        ..Default::default()
    });
    env.config.worker.failure_alert = Some(FailureAlertConfig {
        notifiers: env
            .config
            .destinations
            .keys()
            .map(|destination| NotifierConfig {
                destination: destination.clone(),
                format: AlertFormat::Webhook,
            })
            .collect(),
        queue_thresholds: Default::default(),
        ..Default::default()
    });
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_labelled_metric_is_there_at_zero_from_start_up() {
    let env = everything_on();
    let config = &env.config;
    // Processes of their own: nothing else has counted anything in them.
    let ingress_child = env.spawn("relay-ingress").await;
    let worker = env.spawn("relay-worker").await;
    let delivery = env.spawn("relay-delivery").await;
    let console = env.spawn("relay-console").await;
    let ingress = Exposition::of(&ingress_child).await;
    let worker = Exposition::of(&worker).await;
    let delivery = Exposition::of(&delivery).await;
    let console = Exposition::of(&console).await;
    let all = [&ingress, &worker, &delivery, &console];

    // From the catalogue: every labelled metric is described and has series in some service,
    // every counter's at 0 (but for Redis operations the services skipped before they first
    // reached Redis), every histogram's without an observation. A new labelled metric nobody
    // registers at start-up fails here.
    for metric in METRICS.iter().filter(|m| m.labelled) {
        let series_name = match metric.kind {
            Kind::Histogram => format!("{}_count", metric.name),
            Kind::Counter | Kind::Gauge => metric.name.to_owned(),
        };
        let mut found = 0;
        for exposition in all {
            let series: Vec<&Series> = exposition
                .series
                .iter()
                .filter(|s| s.name == series_name)
                .collect();
            if series.is_empty() {
                continue;
            }
            assert!(
                exposition
                    .text
                    .contains(&format!("# HELP {} {}", metric.name, metric.help)),
                "{}: no HELP for {}",
                exposition.service,
                metric.name
            );
            let moved_at_start_up = metric.name == "relay_redis_skipped_total";
            if metric.kind != Kind::Gauge && !moved_at_start_up {
                for s in &series {
                    assert_eq!(
                        s.value, 0.0,
                        "{}: {series_name}{:?} before any traffic",
                        exposition.service, s.labels
                    );
                }
            }
            found += series.len();
        }
        assert!(
            found > 0,
            "{} has no series at start-up in any service: register its label values where it \
             is recorded",
            metric.name
        );
    }

    // Console: the parked indexer's copies by every outcome.
    for outcome in relay_parked::index::Outcome::ALL {
        console.zero(
            "relay_parked_index_copies_total",
            &[("outcome", outcome.label())],
        );
    }

    // Ingress: each configured source by every outcome it can have, and its events.
    let sources = relay_ingress::sources(config);
    assert_eq!(sources.len(), 6, "every route is on: {sources:?}");
    for source in &sources {
        let mut outcomes = vec!["accepted"];
        outcomes.extend(Problem::OUTCOMES);
        if source == relay_ingress::acrobits::SOURCE {
            outcomes.extend(relay_ingress::acrobits::OUTCOMES);
        }
        for outcome in outcomes {
            ingress.zero(
                "relay_ingress_requests_total",
                &[("source", source), ("outcome", outcome)],
            );
        }
        ingress.zero("relay_ingress_request_seconds_count", &[("source", source)]);
        ingress.zero("relay_ingress_events_total", &[("source", source)]);
        ingress.zero("relay_ingress_duplicates_total", &[("source", source)]);
    }
    for reason in relay_ingress::voximplant::REJECTION_REASONS {
        ingress.zero(
            "relay_ingress_callbacks_rejected_total",
            &[
                ("source", relay_ingress::voximplant::SOURCE),
                ("reason", reason),
            ],
        );
    }
    for reason in relay_ingress::acrobits::REASONS
        .iter()
        .chain(Problem::OUTCOMES)
    {
        ingress.zero(
            "relay_ingress_callbacks_refused_total",
            &[("reason", reason)],
        );
    }
    for scheme in relay_ingress::acrobits::SCHEMES {
        ingress.zero(
            "relay_ingress_acrobits_password_checks_total",
            &[("scheme", scheme)],
        );
    }
    for kind in relay_ingress::CONNECTION_ERROR_KINDS {
        ingress.zero("relay_ingress_connection_errors_total", &[("kind", kind)]);
    }

    // One `source` label, one set of values: a source's requests and its events are counted
    // under the same name (a generic source's too), and the worker names providers the way
    // ingress does.
    let requested = ingress.label_values("relay_ingress_requests_total", "source");
    let published = ingress.label_values("relay_ingress_events_total", "source");
    assert!(
        published.is_subset(&requested),
        "{published:?} vs {requested:?}"
    );
    let providers = worker.label_values("relay_web_callback_originations_total", "source");
    assert!(
        !providers.is_empty() && providers.is_subset(&published),
        "{providers:?} vs {published:?}"
    );
    for exposition in all {
        assert!(
            exposition
                .series
                .iter()
                .all(|s| !s.labels.contains_key("provider")),
            "{}: a `provider` label; the relay says `source`",
            exposition.service
        );
    }

    // Every service publishes and uses Redis.
    for exposition in all {
        for outcome in relay_amqp::PUBLISH_OUTCOMES {
            exposition.zero("relay_amqp_publish_total", &[("outcome", outcome)]);
        }
        for op in relay_store::OPS {
            for name in ["relay_redis_skipped_total", "relay_redis_errors_total"] {
                assert!(
                    exposition.value(name, &[("op", op)]).is_some(),
                    "{}: no {name}{{op={op}}}",
                    exposition.service
                );
            }
        }
    }

    // Worker: every handler by every outcome, the events it may park by reason, the queues it
    // watches.
    for handler in relay_core::routing::HANDLERS {
        for outcome in relay_worker::event_outcomes() {
            worker.zero(
                "relay_worker_events_total",
                &[("handler", handler.name), ("outcome", outcome)],
            );
        }
    }
    let poison = relay_amqp::consumer::POISON_REASON;
    for reason in relay_worker::handler::DEAD_LETTER_REASONS
        .iter()
        .chain([&poison])
    {
        worker.zero(
            "relay_dead_letters_total",
            &[("lot", "events"), ("reason", reason)],
        );
    }
    for queue in ["relay.unrouted", "relay.dead.events", "relay.deliveries"] {
        assert!(
            worker
                .value("relay_queue_messages", &[("queue", queue)])
                .is_some(),
            "{queue}"
        );
    }

    // Delivery: every destination by every outcome and reason, the jobs it may park by reason.
    for destination in config.destinations.keys() {
        let d = ("destination", destination.as_str());
        for outcome in relay_delivery::policy::ATTEMPT_OUTCOMES {
            delivery.zero("relay_delivery_attempts_total", &[d, ("outcome", outcome)]);
        }
        delivery.zero("relay_delivery_latency_seconds_count", &[d]);
        for reason in relay_delivery::DEFERRAL_REASONS {
            delivery.zero("relay_delivery_deferred_total", &[d, ("reason", reason)]);
        }
        delivery.zero("relay_delivery_skipped_total", &[d]);
        delivery.zero("relay_delivery_destination_gone_total", &[d]);
        delivery.zero("relay_destination_disabled", &[d]);
        assert_eq!(
            delivery.value("relay_destination_breaker", &[d, ("state", "closed")]),
            Some(1.0)
        );
        assert!(
            delivery
                .value("relay_destination_secret_loaded_timestamp_seconds", &[d])
                .is_some_and(|at| at > 0.0)
        );
    }
    for result in ["reloaded", "failed"] {
        delivery.zero(
            "relay_destination_secret_reloads_total",
            &[("destination", "rotating"), ("result", result)],
        );
    }
    for reason in relay_delivery::DEAD_LETTER_REASONS.iter().chain([&poison]) {
        delivery.zero(
            "relay_dead_letters_total",
            &[("lot", "deliveries"), ("reason", reason)],
        );
    }

    // Traffic moves the series that were there: a generic source's request and the event it
    // published count under the source's one name.
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/hooks/{HOOK}", config.ingress.listen))
        .header("content-type", "application/json")
        .header(
            "authorization",
            relay_signing::basic::header(HOOK_USER, HOOK_PASSWORD),
        )
        .body(r#"{"id":"order-1","type":"paid"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let after = Exposition::of(&ingress_child).await;
    let source = ("source", HOOK);
    assert_eq!(
        after.value(
            "relay_ingress_requests_total",
            &[source, ("outcome", "accepted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.value("relay_ingress_events_total", &[source]),
        Some(1.0)
    );
    assert_eq!(
        after.label_values("relay_ingress_events_total", "source"),
        published,
        "no new source label appeared: {}",
        after.text
    );
}
