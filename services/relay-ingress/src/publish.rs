//! What every route does once a request is verified and parsed (docs/ARCHITECTURE.md, invariant 1): drop
//! repeats and what an earlier request already stored, publish the rest with confirms, and only
//! when every one is confirmed write their dedup marks.
//!
//! Outages are logged at most once per kind per second ([`relay_telemetry::throttle`]); the
//! exact numbers are in `relay_amqp_publish_total{outcome}` and `relay_redis_errors_total{op}`
//! / `relay_redis_skipped_total{op}`. Redis being away is not logged here at all: the store's
//! circuit breaker logs each change of its state once.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::join_all;
use relay_amqp::{FieldTable, Publish, PublishError};
use relay_core::{CloudEvent, event, routing};
use relay_store::StoreError;
use relay_telemetry::throttle::Throttles;

use crate::Shared;
use crate::problem::Problem;

/// Outage warnings, one line per kind per second.
static WARNINGS: LazyLock<Throttles> = LazyLock::new(|| Throttles::new(Duration::from_secs(1)));

/// One event a route wants published.
pub(crate) struct Outgoing {
    /// Routing key on `relay.events`.
    pub(crate) routing_key: String,
    /// The event.
    pub(crate) event: CloudEvent,
    /// The source's own unique name of the event, when it has one: its dedup mark.
    pub(crate) dedup_key: Option<String>,
}

/// What a successful request answers.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Accepted {
    /// Events published by this request.
    accepted: usize,
    /// Callbacks already seen (not published again).
    duplicates: usize,
    /// The ids of the events published, to follow them through the worker's and delivery's
    /// logs (`event_id`).
    events: Vec<String>,
    /// Items of a batch refused one by one (Voximplant); absent on routes without batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<usize>,
}

impl Accepted {
    /// The same answer, reporting `rejected` items of the batch.
    pub(crate) fn with_rejected(self, rejected: usize) -> Self {
        Self {
            rejected: Some(rejected),
            ..self
        }
    }
}

/// Creates `source`'s series of `relay_ingress_events_total` and
/// `relay_ingress_duplicates_total` at zero.
pub(crate) fn register(source: &str) {
    metrics::counter!("relay_ingress_events_total", "source" => source.to_owned()).increment(0);
    metrics::counter!("relay_ingress_duplicates_total", "source" => source.to_owned()).increment(0);
}

/// Publishes `events` of `source` with confirms, then marks them seen (under the source's
/// name). Any failed publish answers 503 and marks nothing, so the provider's retry is
/// processed in full.
pub(crate) async fn publish_all(
    app: &Shared,
    source: &str,
    events: Vec<Outgoing>,
) -> Result<Accepted, Problem> {
    publish_in(app, source, source, events).await
}

/// [`publish_all`] for a source whose dedup marks have a `namespace` of their own (a generic
/// source's is `hook-<name>`); its metrics carry its `source` label all the same, the one its
/// requests are counted under.
pub(crate) async fn publish_in(
    app: &Shared,
    source: &str,
    namespace: &str,
    events: Vec<Outgoing>,
) -> Result<Accepted, Problem> {
    let received = events.len();
    let mut unique: Vec<Outgoing> = Vec::with_capacity(received);
    for event in events {
        if event.dedup_key.is_none() || !unique.iter().any(|u| u.dedup_key == event.dedup_key) {
            unique.push(event);
        }
    }
    let keys: Vec<String> = unique.iter().filter_map(|e| e.dedup_key.clone()).collect();
    let seen = match app.store.seen(namespace, &keys).await {
        Ok(seen) => seen,
        Err(error) => {
            // Invariant 2: accept without dedup; the deterministic event id still collapses a
            // duplicate downstream.
            redis_failed("seen", &error);
            vec![false; keys.len()]
        }
    };
    let already: HashSet<&str> = keys
        .iter()
        .zip(seen)
        .filter_map(|(k, seen)| seen.then_some(k.as_str()))
        .collect();
    let to_publish: Vec<&Outgoing> = unique
        .iter()
        .filter(|e| e.dedup_key.as_deref().is_none_or(|k| !already.contains(k)))
        .collect();
    let duplicates = received - to_publish.len();

    let bodies: Vec<Vec<u8>> = to_publish
        .iter()
        .map(|o| serde_json::to_vec(&o.event).expect("a CloudEvent always serialises"))
        .collect();
    let results = join_all(to_publish.iter().zip(&bodies).map(|(o, body)| {
        app.broker.publish(Publish {
            exchange: routing::EVENTS_EXCHANGE,
            routing_key: &o.routing_key,
            message_id: &o.event.id,
            content_type: event::CONTENT_TYPE,
            body,
            headers: FieldTable::default(),
        })
    }))
    .await;
    if let Some(error) = results.into_iter().find_map(Result::err) {
        let kind = publish_outcome(&error);
        if let Some(suppressed) = WARNINGS.allow(&("publish failed", kind)) {
            tracing::warn!(%error, suppressed, "publish failed, answering 503");
        }
        return Err(Problem::BrokerUnavailable {
            retry_after_secs: app.retry_after_secs,
        });
    }

    // Only now, with every event confirmed, remember them.
    let to_mark: Vec<String> = to_publish
        .iter()
        .filter_map(|o| o.dedup_key.clone())
        .collect();
    if let Err(error) = app
        .store
        .mark_seen(namespace, &to_mark, app.dedup_ttl)
        .await
    {
        redis_failed("mark_seen", &error);
    }
    metrics::counter!("relay_ingress_events_total", "source" => source.to_owned())
        .increment(to_publish.len() as u64);
    if duplicates > 0 {
        metrics::counter!("relay_ingress_duplicates_total", "source" => source.to_owned())
            .increment(duplicates as u64);
    }
    tracing::debug!(
        source,
        accepted = to_publish.len(),
        duplicates,
        "events accepted"
    );
    Ok(Accepted {
        accepted: to_publish.len(),
        duplicates,
        events: to_publish.iter().map(|o| o.event.id.clone()).collect(),
        rejected: None,
    })
}

/// Logs a failed Redis operation `op` that the request goes on without. Redis being away is
/// the breaker's to log (once per change); only an answer Redis gave is worth a line here.
pub(crate) fn redis_failed(op: &'static str, error: &StoreError) {
    if error.means_unavailable() {
        return;
    }
    if let Some(suppressed) = WARNINGS.allow(&("redis failed", op)) {
        tracing::warn!(op, %error, suppressed, "a Redis operation failed; going on without it");
    }
}

/// The `relay_amqp_publish_total` outcome of a failed publish: the kind of its warning.
fn publish_outcome(error: &PublishError) -> &'static str {
    match error {
        PublishError::Unavailable => "unavailable",
        PublishError::Timeout(_) => "timeout",
        PublishError::Nacked => "nacked",
        PublishError::Returned(_) => "returned",
        PublishError::Amqp(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::capture;
    use relay_amqp::{Broker, BrokerSettings};
    use relay_core::config::Config;
    use relay_store::Store;
    use relay_telemetry::Readiness;
    use tokio_util::sync::CancellationToken;

    /// A port nothing listens on.
    fn dead_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_outage_is_logged_once_per_kind_not_once_per_request() {
        let (lines, _guard) = capture();
        let mut config = Config::default();
        config.amqp.url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port());
        config.redis.url = format!("redis://127.0.0.1:{}", dead_port());
        let (readiness, stop) = (Readiness::new(), CancellationToken::new());
        let settings = BrokerSettings::from_config(&config, "relay-ingress-test");
        let broker = Broker::start(settings, &readiness, stop.clone());
        let store = Store::start(&config.redis, &readiness, stop.clone());
        let app = crate::Shared::new(&config, broker, store).unwrap();

        for i in 0..200 {
            let outgoing = Outgoing {
                routing_key: "test.outage".to_owned(),
                event: CloudEvent::new(
                    format!("event-{i}"),
                    "test".to_owned(),
                    "test.outage".to_owned(),
                    serde_json::Value::Null,
                ),
                dedup_key: Some(format!("key-{i}")),
            };
            let result = publish_all(&app, "outage-test", vec![outgoing]).await;
            assert!(matches!(result, Err(Problem::BrokerUnavailable { .. })));
        }
        stop.cancel();
        assert_eq!(
            lines.containing("publish failed").len(),
            1,
            "{:#?}",
            lines.lines()
        );
        // Redis being away is the breaker's to log, once; never a line per request here.
        for per_request in ["dedup check", "dedup marks", "Redis operation failed"] {
            assert!(lines.containing(per_request).is_empty(), "{per_request}");
        }
    }
}
