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
