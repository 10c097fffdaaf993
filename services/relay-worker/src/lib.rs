//! relay-worker: fans events out to handlers, one quorum queue each, so a slow or failing
//! handler never blocks another.
//!
//! A handler ([`handler::Handler`], one module each under [`handlers`]) turns an event into
//! Redis state and delivery jobs; the generic [`runner`] publishes the jobs with confirms and
//! only then acks the event (docs/ARCHITECTURE.md, invariant 3). Job ids are deterministic, so a
//! redelivered event yields the same jobs and delivery skips what already succeeded.

pub mod handler;
pub mod handlers;
mod runner;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay_amqp::consumer::{self, Consumer};
use relay_amqp::{Broker, BrokerSettings};
use relay_core::config::Config;
use relay_core::routing;
use relay_store::Store;
use relay_telemetry::Readiness;
use relay_telemetry::admin::{AdminServer, StartError};
use tokio_util::sync::CancellationToken;

use handler::Handler;

/// Every `outcome` of `relay_worker_events_total{handler,outcome}`: what the runner did with an
/// event (`jobs_queued`, `no_jobs`, `retrying`, `dead_lettered`, or `requeued` when it could
/// not publish).
pub fn event_outcomes() -> [&'static str; 5] {
    runner::Outcome::ALL.map(runner::Outcome::label)
}

/// Creates the series of every labelled metric the worker and `handlers` record at zero, so
/// that dashboards and alert rules see zeros from start-up rather than gaps: each handler's
/// events by outcome and its own metrics, and the events parked in `relay.dead.events` by
/// reason.
fn register_metrics(handlers: &[Arc<dyn Handler>]) {
    for handler in handlers {
        let name = handler.route().name;
        for outcome in runner::Outcome::ALL {
            metrics::counter!("relay_worker_events_total", "handler" => name, "outcome" => outcome.label())
                .increment(0);
        }
        handler.register_metrics();
    }
    relay_amqp::register_dead_letters(routing::DEAD_EVENTS_KEY, handler::DEAD_LETTER_REASONS);
}

/// A built, not yet consuming, relay-worker.
pub struct Worker {
    admin: AdminServer,
    broker: Broker,
    background: CancellationToken,
    handlers: Vec<Arc<dyn Handler>>,
    prefetch: u16,
    grace: Duration,
    delivery_limit: u32,
    timeout: Duration,
    retry_tiers: Vec<Duration>,
    retry_max_age: Duration,
}

impl Worker {
    /// Validates `config`, builds the enabled handlers, binds the admin port and starts
    /// connecting to RabbitMQ and Redis.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate_worker()?;
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let store = Store::start(&config.redis, &readiness, background.clone());
        let handlers = handlers::build(&config, &store)?;
        register_metrics(&handlers);
        if handlers.is_empty() {
            tracing::warn!(
                "no handler is enabled ([worker.*] sections): every event stays in relay.unrouted"
            );
        }
        let mut settings = BrokerSettings::from_config(&config, "relay-worker");
        settings.topology = handlers::topology(&config);
        let broker = Broker::start(settings, &readiness, background.clone());
        let mut watched: Vec<String> = [
            routing::UNROUTED,
            routing::DEAD_EVENTS_QUEUE,
            routing::DEAD_DELIVERIES_QUEUE,
            routing::DELIVERIES,
        ]
        .map(str::to_owned)
        .into();
        watched.extend(handlers.iter().map(|h| h.route().queue()));
        relay_amqp::depth::spawn_gauges(
            broker.clone(),
            watched,
            config.worker.queue_depth_interval,
            background.clone(),
        );
        if let Some(watch) = handlers::failure_alert::watch::Watch::from_config(&config) {
            watch.spawn(broker.clone(), store.clone(), background.clone());
        }
        let admin = AdminServer::bind(config.worker.admin_listen, readiness)
            .await
            .map_err(StartError::bind(config.worker.admin_listen))?;
        Ok(Self {
            admin,
            broker,
            background,
            handlers,
            prefetch: config.worker.prefetch,
            grace: config.worker.shutdown_grace,
            delivery_limit: config.amqp.delivery_limit,
            timeout: config.worker.handler_timeout,
            retry_tiers: config.amqp.retry_tiers.clone(),
            retry_max_age: config.worker.retry_max_age,
        })
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Consumes every enabled handler's queue until `stop`, then drains and closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        let mut consumers = tokio::task::JoinSet::new();
        for handler in self.handlers {
            let route = handler.route();
            let consumer = Consumer {
                queue: route.queue(),
                tag: format!("relay-worker-{}", route.name),
                prefetch: handler.prefetch().unwrap_or(self.prefetch),
                grace: self.grace,
                poison: Some((self.delivery_limit, routing::DEAD_EVENTS_KEY)),
            };
            let runner = Arc::new(runner::Runner {
                handler,
                broker: self.broker.clone(),
                timeout: self.timeout,
                retry_tiers: self.retry_tiers.clone(),
                retry_max_age: self.retry_max_age,
            });
            consumers.spawn(consumer::run(
                self.broker.clone(),
                consumer,
                runner,
                stop.clone(),
            ));
        }
        stop.cancelled().await;
        while consumers.join_next().await.is_some() {}
        self.background.cancel();
        admin.stop().await;
        tracing::info!("relay-worker stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::handler::DEAD_LETTER_REASONS;

    /// Every dead-letter reason of the worker's sources (`reason: "…"` of a permanent failure,
    /// and the runner's own for a transient one) has its series from start-up.
    #[test]
    fn the_dead_letter_reasons_are_the_ones_in_use() {
        fn scan(dir: &std::path::Path, used: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    scan(&path, used);
                } else if name.ends_with(".rs") && !name.ends_with("tests.rs") && name != "lib.rs" {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("reason: \"") {
                        let rest = &text[at + "reason: \"".len()..];
                        used.extend(rest.split('"').next().map(str::to_owned));
                    }
                }
            }
        }
        let mut used = Vec::new();
        scan(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut used,
        );
        used.push("transient".to_owned());
        used.sort_unstable();
        used.dedup();
        let mut registered = DEAD_LETTER_REASONS.to_vec();
        registered.sort_unstable();
        assert_eq!(used, registered);
    }
}
