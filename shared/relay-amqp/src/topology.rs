//! The broker topology of DESIGN.md, declared idempotently by every service at start-up (and
//! after every reconnect) and by `relayctl topology`.
//!
//! | name | kind |
//! |---|---|
//! | `relay.events` | topic exchange, `alternate-exchange = relay.unrouted` |
//! | `relay.unrouted` | fanout exchange + quorum queue |
//! | `relay.handler.<name>` | quorum queue, delivery limit, dead-letter to `relay.dead` (`events`) |
//! | `relay.deliveries` | fanout exchange + quorum queue, delivery limit, dead-letter to `relay.dead` (`deliveries`) |
//! | `relay.retry.<delay>` | quorum queue, `x-message-ttl`, dead-letter back to `relay.deliveries` |
//! | `relay.dead` | direct exchange + quorum queues `relay.dead.events`, `relay.dead.deliveries` |
//!
//! Declaring a queue that exists with *different* arguments fails with `PRECONDITION_FAILED`:
//! the arguments below are a contract; change them only with a migration.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use relay_core::config::AmqpConfig;
use relay_core::routing::{self, HandlerRoute};

/// What to declare.
#[derive(Debug, Clone)]
pub struct Topology {
    /// `x-delivery-limit` of the handler queues and `relay.deliveries`.
    pub delivery_limit: u32,
    /// Retry delay tiers.
    pub retry_tiers: Vec<Duration>,
    /// Handler queues and their bindings.
    pub handlers: Vec<HandlerRoute>,
}

impl Topology {
    /// The topology for this configuration, with every implemented handler.
    pub fn from_config(amqp: &AmqpConfig) -> Self {
        Self {
            delivery_limit: amqp.delivery_limit,
            retry_tiers: amqp.retry_tiers.clone(),
            handlers: routing::HANDLERS.to_vec(),
        }
    }

    /// Declares everything; safe to run any number of times, from any number of processes.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };

        // Unrouted events: declared first, it is the alternate exchange of relay.events.
        channel
            .exchange_declare(
                routing::UNROUTED.into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        declare_queue(channel, routing::UNROUTED, quorum()).await?;
        bind(channel, routing::UNROUTED, routing::UNROUTED, "").await?;

        // relay.events: an event no handler binds goes to relay.unrouted instead of vanishing
        // (invariant 5), and a mandatory publish therefore never comes back as returned.
        let mut events_args = FieldTable::default();
        events_args.insert("alternate-exchange".into(), text(routing::UNROUTED));
        channel
            .exchange_declare(
                routing::EVENTS_EXCHANGE.into(),
                ExchangeKind::Topic,
                durable,
                events_args,
            )
            .await?;

        // Parking lots.
        channel
            .exchange_declare(
                routing::DEAD_EXCHANGE.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        for (queue, key) in [
            (routing::DEAD_EVENTS_QUEUE, routing::DEAD_EVENTS_KEY),
            (routing::DEAD_DELIVERIES_QUEUE, routing::DEAD_DELIVERIES_KEY),
        ] {
            declare_queue(channel, queue, quorum()).await?;
            bind(channel, queue, routing::DEAD_EXCHANGE, key).await?;
        }

        // Outbound jobs. Fanout, so a retry copy coming back from a delay tier (which keeps its
        // routing key, the tier's queue name) lands here whatever that key is.
        channel
            .exchange_declare(
                routing::DELIVERIES.into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        let deliveries_args = self.with_delivery_limit(at_least_once_dead_letter(
            routing::DEAD_EXCHANGE,
            Some(routing::DEAD_DELIVERIES_KEY),
        ));
        declare_queue(channel, routing::DELIVERIES, deliveries_args).await?;
        bind(channel, routing::DELIVERIES, routing::DELIVERIES, "").await?;

        for handler in &self.handlers {
            let queue = handler.queue();
            let args = self.with_delivery_limit(at_least_once_dead_letter(
                routing::DEAD_EXCHANGE,
                Some(routing::DEAD_EVENTS_KEY),
            ));
            declare_queue(channel, &queue, args).await?;
            for pattern in handler.patterns {
                bind(channel, &queue, routing::EVENTS_EXCHANGE, pattern).await?;
            }
        }

        for delay in &self.retry_tiers {
            // No consumer ever reads a tier: messages expire after the tier's TTL and are
            // dead-lettered back into relay.deliveries. At-least-once dead-lettering keeps a
            // message safe while it moves, even across a broker crash.
            let mut args = at_least_once_dead_letter(routing::DELIVERIES, None);
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            declare_queue(channel, &routing::retry_queue(*delay), args).await?;
        }
        Ok(())
    }

    fn with_delivery_limit(&self, mut args: FieldTable) -> FieldTable {
        // RabbitMQ 3.x has no default delivery limit: without one, a message that crashes its
        // consumer is redelivered forever.
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Arguments of a quorum queue: replicated in a cluster, durable on one node.
fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args
}

/// A quorum queue that dead-letters to `exchange` at least once.
///
/// Dead-lettering out of a quorum queue is at-most-once unless the queue sets
/// `x-dead-letter-strategy = at-least-once`, which RabbitMQ only honours together with
/// `x-overflow = reject-publish` (a full queue then refuses publishes, which our confirmed
/// publishers see as a nack, instead of dropping its head).
fn at_least_once_dead_letter(exchange: &str, routing_key: Option<&str>) -> FieldTable {
    let mut args = quorum();
    args.insert("x-dead-letter-exchange".into(), text(exchange));
    if let Some(key) = routing_key {
        args.insert("x-dead-letter-routing-key".into(), text(key));
    }
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    args
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, args)
        .await
        .map(|_| ())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
