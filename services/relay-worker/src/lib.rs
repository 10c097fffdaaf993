//! relay-worker: fans events out to handlers, one quorum queue each, so a slow or failing
//! handler never blocks another.
//!
//! A handler turns an event into zero or more delivery jobs; the jobs are published with
//! confirms, and only then is the event acked (DESIGN.md, invariant 3). Job ids derive from
//! (event id, handler, ordinal), so a redelivered event yields the same jobs and delivery skips
//! what already succeeded.

pub mod min_balance;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay_amqp::consumer::{self, Consumer, Disposition, Handler};
use relay_amqp::{Broker, BrokerSettings, Delivery, FieldTable, Publish, headers};
use relay_core::config::{AlertFormat, Config};
use relay_core::{CloudEvent, job, routing};
use relay_telemetry::Readiness;
use relay_telemetry::admin::{AdminServer, StartError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A built, not yet consuming, relay-worker.
pub struct Worker {
    admin: AdminServer,
    broker: Broker,
    background: CancellationToken,
    min_balance: Arc<MinBalanceAlert>,
    prefetch: u16,
    grace: Duration,
}

impl Worker {
    /// Validates `config`, binds the admin port and starts connecting to RabbitMQ.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate_worker()?;
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings::from_config(&config.amqp, "relay-worker"),
            &readiness,
            background.clone(),
        );
        let admin = AdminServer::bind(config.worker.admin_listen, readiness)
            .await
            .map_err(StartError::bind(config.worker.admin_listen))?;
        let alert = &config.worker.min_balance_alert;
        Ok(Self {
            admin,
            min_balance: Arc::new(MinBalanceAlert {
                broker: broker.clone(),
                destination: alert.destination.clone(),
                format: alert.format,
            }),
            broker,
            background,
            prefetch: config.worker.prefetch,
            grace: config.worker.shutdown_grace,
        })
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Consumes every handler queue until `stop`, then drains and closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        let consumer = Consumer {
            queue: routing::MIN_BALANCE_ALERT.queue(),
            tag: "relay-worker".to_owned(),
            prefetch: self.prefetch,
            grace: self.grace,
        };
        consumer::run(self.broker, consumer, self.min_balance, stop).await;
        self.background.cancel();
        admin.stop().await;
        tracing::info!("relay-worker stopped");
        Ok(())
    }
}

/// The min-balance-alert handler bound to its broker and destination.
struct MinBalanceAlert {
    broker: Broker,
    destination: String,
    format: AlertFormat,
}

impl Handler for MinBalanceAlert {
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        let span = tracing::info_span!(
            "worker.handle",
            otel.kind = "consumer",
            handler = min_balance::NAME
        );
        relay_amqp::trace::set_parent_from(&span, &delivery.properties);
        async {
            let outcome = self.process(delivery).await;
            metrics::counter!("relay_worker_events_total", "handler" => min_balance::NAME, "outcome" => outcome.1)
                .increment(1);
            outcome.0
        }
        .instrument(span)
        .await
    }
}

impl MinBalanceAlert {
    async fn process(&self, delivery: &Delivery) -> (Disposition, &'static str) {
        let job = serde_json::from_slice::<CloudEvent>(&delivery.data)
            .map_err(|e| format!("not a CloudEvent: {e}"))
            .and_then(|event| min_balance::job(&event, &self.destination, self.format));
        let job = match job {
            Ok(job) => job,
            Err(detail) => return self.park(delivery, &detail).await,
        };
        let body = serde_json::to_vec(&job).expect("a job always serialises");
        let mut table = FieldTable::default();
        headers::put_int(&mut table, headers::ATTEMPT, 0);
        headers::put_str(&mut table, headers::DESTINATION, job.destination.as_str());
        let published = self
            .broker
            .publish(Publish {
                exchange: routing::DELIVERIES,
                routing_key: "",
                message_id: &job.id,
                content_type: job::CONTENT_TYPE,
                body: &body,
                headers: table,
            })
            .await;
        match published {
            Ok(()) => {
                tracing::info!(job_id = %job.id, event_id = %job.event_id, destination = %job.destination, "alert job queued");
                (Disposition::Ack, "job_queued")
            }
            Err(error) => {
                tracing::warn!(%error, "could not queue the alert job; the event goes back to its queue");
                // A short pause so a broker hiccup does not become a hot redelivery loop; the
                // queue's delivery limit parks an event that keeps failing.
                tokio::time::sleep(Duration::from_millis(500)).await;
                (Disposition::Requeue, "requeued")
            }
        }
    }

    /// Parks an event no retry can fix in `relay.dead.events`.
    async fn park(&self, delivery: &Delivery, detail: &str) -> (Disposition, &'static str) {
        tracing::warn!(detail, "unprocessable event, dead-lettering");
        let mut extra = FieldTable::default();
        headers::put_str(&mut extra, headers::DETAIL, detail);
        match self
            .broker
            .dead_letter(routing::DEAD_EVENTS_KEY, delivery, "malformed_event", extra)
            .await
        {
            Ok(()) => (Disposition::Ack, "dead_lettered"),
            Err(error) => {
                tracing::warn!(%error, "could not dead-letter; the event goes back to its queue");
                (Disposition::Requeue, "requeued")
            }
        }
    }
}
