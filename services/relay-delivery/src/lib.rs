//! relay-delivery: consumes `relay.deliveries`, signs each request at send time, sends it,
//! classifies the outcome ([`policy`]) and retries durably or dead-letters.
//!
//! Durability (docs/ARCHITECTURE.md, invariant 4): a job is acked only after its success is recorded, or
//! after its retry copy (in a `relay.retry.<delay>` TTL queue that dead-letters back into
//! `relay.deliveries`) or its dead-letter copy is confirmed by the broker. A restart of any
//! service or of RabbitMQ therefore loses no job, and no broker plugin is needed.
//!
//! Idempotency: every request carries the job id as `Idempotency-Key`, and a job whose record
//! says `delivered` is not sent again.

mod admin;
mod attempt;
mod breaker;
mod destination;
mod http;
mod in_flight;
mod outcome;
pub mod policy;
mod secrets;
mod settle;
mod sign;
mod voximplant;
mod watch;

pub use settle::{DEAD_LETTER_REASONS, DEFERRAL_REASONS};

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

/// A built, not yet consuming, relay-delivery.
pub struct DeliveryService {
    admin: AdminServer,
    broker: Broker,
    background: CancellationToken,
    /// The open-breaker reporter, awaited on shutdown so that it deletes its report.
    breaker_report: tokio::task::JoinHandle<()>,
    sender: Arc<attempt::Sender>,
    prefetch: u16,
    grace: Duration,
    delivery_limit: u32,
}

impl DeliveryService {
    /// Validates `config`, binds the admin port and starts connecting to RabbitMQ and Redis.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate_delivery()?;
        let destinations = Arc::new(destination::from_config(&config)?);
        outcome::register_metrics();
        relay_amqp::register_dead_letters(
            routing::DEAD_DELIVERIES_KEY,
            settle::DEAD_LETTER_REASONS,
        );
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings::from_config(&config, "relay-delivery"),
            &readiness,
            background.clone(),
        );
        let store = Store::start(&config.redis, &readiness, background.clone());
        let client = reqwest::Client::builder()
            // 3xx is a failure by policy: never follow a redirect to somewhere unconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::Init {
                what: "the HTTP client",
                message: e.to_string(),
            })?;
        // `/v1/deliveries/{id}` beside the common admin routes: a job's record and attempts.
        let routes = admin::routes(store.clone());
        let admin = AdminServer::bind_with(config.delivery.admin_listen, readiness, routes)
            .await
            .map_err(StartError::bind(config.delivery.admin_listen))?;
        tokio::spawn(watch::run(
            destinations.clone(),
            store.clone(),
            config.delivery.secret_check_interval,
            background.clone(),
        ));
        let breaker_report = tokio::spawn(breaker::report::run(
            destinations.clone(),
            store.clone(),
            breaker::report::instance(),
            config.delivery.breaker_report_interval,
            background.clone(),
        ));
        let sender = Arc::new(attempt::Sender {
            client,
            destinations,
            settle: settle::Settle {
                broker: broker.clone(),
                store,
                tiers: config.amqp.retry_tiers.clone(),
                record_ttl: config.redis.delivery_record_ttl,
            },
        });
        Ok(Self {
            admin,
            broker,
            background,
            breaker_report,
            sender,
            prefetch: config.delivery.prefetch,
            grace: config.delivery.shutdown_grace,
            delivery_limit: config.amqp.delivery_limit,
        })
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Consumes `relay.deliveries` until `stop`, then drains and closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        let consumer = Consumer {
            queue: routing::DELIVERIES.to_owned(),
            tag: "relay-delivery".to_owned(),
            prefetch: self.prefetch,
            grace: self.grace,
            poison: Some((self.delivery_limit, routing::DEAD_DELIVERIES_KEY)),
        };
        consumer::run(self.broker, consumer, self.sender, stop).await;
        self.background.cancel();
        // Its last act deletes this process's report of open breakers (bounded by the store's
        // operation budget).
        let _ = self.breaker_report.await;
        admin.stop().await;
        tracing::info!("relay-delivery stopped");
        Ok(())
    }
}
