//! The worker's look at the relay's own state, every `check_interval`: each watched queue's
//! depth (a passive declare) and each destination's breaker (the open breakers delivery
//! processes report to Redis). What it sees goes out as `relay.condition.<kind>` events, clear
//! or not, for the failure-alert handler's lifecycle to fire and resolve on.
//!
//! With several worker replicas, one looks per interval: the first to claim the interval's key
//! in Redis. Without Redis nobody looks (breakers cannot be read then either) and a condition
//! keeps its last state until Redis is back.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_amqp::Broker;
use relay_core::config::Config;
use relay_core::{CloudEvent, ids, routing};
use relay_store::Store;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::state::Observation;
use super::{CONDITION_TYPE, NAME};

/// How long publishing one observation may retry through broker trouble.
const PUBLISH_BUDGET: Duration = Duration::from_secs(5);

/// What the watcher needs from the configuration.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Between looks.
    pub every: Duration,
    /// Queue → depth above which it fires.
    pub queues: BTreeMap<String, u64>,
    /// Every destination whose breaker is watched.
    pub destinations: Vec<String>,
    /// A breaker open this long fires.
    pub breaker_open_after: Duration,
    /// A delivery process's breaker report older than this is stale (the process is gone).
    pub breaker_report_fresh: Duration,
    /// This process, for the claim.
    pub instance: String,
}

impl Watch {
    /// The watch of `config`'s `[worker.failure_alert]`, if enabled.
    pub fn from_config(config: &Config) -> Option<Self> {
        let section = config.worker.failure_alert.as_ref()?;
        Some(Self {
            every: section.check_interval,
            queues: section.queue_thresholds.clone(),
            // A notifier's own breaker is not alerted about: the alert would wait behind it.
            destinations: config
                .destinations
                .keys()
                .filter(|d| !section.notifies(d))
                .cloned()
                .collect(),
            breaker_open_after: section.breaker_open_after,
            breaker_report_fresh: config.delivery.breaker_report_interval * 3,
            instance: format!("worker-{}", std::process::id()),
        })
    }

    /// Looks every `every` until `stop`.
    pub fn spawn(self, broker: Broker, store: Store, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                self.look(&broker, &store).await;
            }
        });
    }

    /// One look, if this process wins the interval's claim.
    async fn look(&self, broker: &Broker, store: &Store) {
        let now = OffsetDateTime::now_utc();
        let every_ms = self.every.as_millis().max(1);
        let bucket = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u128 / every_ms;
        let claim = format!("{NAME}:check:{bucket}");
        match store.claim(&claim, &self.instance, self.every).await {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(error) => {
                tracing::debug!(%error, "no failure-alert check this interval: Redis is unavailable");
                return;
            }
        }
        let mut seen = Vec::new();
        for (queue, threshold) in &self.queues {
            match relay_amqp::depth::queue_depth(broker, queue).await {
                Ok(Some(depth)) => seen.push(Observation {
                    kind: "queue_depth".to_owned(),
                    subject: queue.clone(),
                    active: u64::from(depth) > *threshold,
                    value: u64::from(depth),
                    threshold: *threshold,
                    at: now,
                }),
                Ok(None) => tracing::debug!(queue, "watched queue does not exist"),
                Err(error) => {
                    tracing::debug!(%error, "cannot read queue depths: the broker is unavailable");
                    return;
                }
            }
        }
        match store.open_breakers(self.breaker_report_fresh).await {
            Ok(open) => {
                let mut since: BTreeMap<&str, i64> = BTreeMap::new();
                for breaker in &open {
                    let earliest = since.entry(&breaker.destination).or_insert(i64::MAX);
                    *earliest = (*earliest).min(breaker.open_since_ms);
                }
                let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                for destination in &self.destinations {
                    let open_for = since
                        .get(destination.as_str())
                        .map_or(0, |&ms| u64::try_from(now_ms - ms).unwrap_or(0) / 1000);
                    let threshold = self.breaker_open_after.as_secs();
                    seen.push(Observation {
                        kind: "breaker_open".to_owned(),
                        subject: destination.clone(),
                        active: since.contains_key(destination.as_str()) && open_for >= threshold,
                        value: open_for,
                        threshold,
                        at: now,
                    });
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read open breakers"),
        }
        for observation in seen {
            publish(broker, &observation, bucket).await;
        }
    }
}

/// Publishes one observation to `relay.events`.
async fn publish(broker: &Broker, observation: &Observation, bucket: u128) {
    let id = ids::derived_event_id(
        "failure-alert-watch",
        &[&observation.kind, &observation.subject, &bucket.to_string()],
    );
    let data = serde_json::to_value(observation).expect("an observation always serialises");
    let mut event = CloudEvent::new(id, format!("relay/{NAME}"), CONDITION_TYPE.to_owned(), data)
        .with_subject(observation.subject.clone());
    event.time = observation.at;
    let key = routing::condition_key(&observation.kind);
    let published =
        relay_amqp::events::publish_patiently(broker, &key, &event, PUBLISH_BUDGET).await;
    if let Err(error) = published {
        tracing::debug!(%error, subject = observation.subject, "could not publish an observation");
    }
}
