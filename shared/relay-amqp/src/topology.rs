//! The broker topology of docs/ARCHITECTURE.md, declared idempotently by every service at start-up (and
//! after every reconnect) and by `relayctl topology`.
//!
//! | name | kind |
//! |---|---|
//! | `relay.events` | topic exchange, `alternate-exchange = relay.unrouted` |
//! | `relay.unrouted` | fanout exchange + quorum queue, bounded by TTL and length |
//! | `relay.handler.<name>` | quorum queue per enabled handler, delivery limit, dead-letter to `relay.dead` (`events`) |
//! | `relay.handlers` | headers exchange: `relay-handler = <name>` → that handler's queue |
//! | `relay.handler-retry.<delay>` | quorum queue, `x-message-ttl`, dead-letter to `relay.handlers` |
//! | `relay.timer.<handler>.<delay>` | quorum queue, `x-message-ttl`, dead-letter to `relay.handlers` |
//! | `relay.deliveries` | fanout exchange + quorum queue, delivery limit, dead-letter to `relay.dead` (`deliveries`) |
//! | `relay.retry.<delay>` | quorum queue, `x-message-ttl`, dead-letter back to `relay.deliveries` |
//! | `relay.dead` | direct exchange + quorum queues `relay.dead.events`, `relay.dead.deliveries` |
//! | `relay.parked.index` | quorum queue bound to `relay.unrouted` and to `relay.dead` (`events`, `deliveries`): a copy of everything parked, for the parked index; bounded by length, bytes and TTL, oldest dropped |
//! | `relay.probe` | quorum queue of at most one message: a publisher's health probe |
//!
//! Declaring a queue that exists with *different* arguments fails with `PRECONDITION_FAILED`:
//! the arguments below are a contract; change them only with a migration (docs/operations.md).

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use relay_core::config::Config;
use relay_core::routing::{self, HandlerRoute};

/// `x-max-length` of `relay.parked.index`: past it the oldest copy is dropped.
pub const PARKED_INDEX_MAX_LENGTH: i64 = 200_000;
/// `x-max-length-bytes` of `relay.parked.index` (copies carry their bodies): 256 MiB.
pub const PARKED_INDEX_MAX_BYTES: i64 = 256 * 1024 * 1024;
/// `x-message-ttl` of `relay.parked.index`: how long a copy waits for an indexer (a console
/// that is down for less than this misses nothing).
pub const PARKED_INDEX_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Declaring one name failed.
#[derive(Debug, thiserror::Error)]
#[error("declaring {what} `{name}` failed: {source}{hint}")]
pub struct DeclareError {
    what: &'static str,
    name: String,
    hint: &'static str,
    #[source]
    source: lapin::Error,
}

fn failed(what: &'static str, name: &str) -> impl FnOnce(lapin::Error) -> DeclareError {
    let name = name.to_owned();
    move |source| {
        let hint = if source.to_string().contains("PRECONDITION_FAILED") {
            " (it exists with other arguments; see \"Migrations\" in docs/operations.md)"
        } else {
            ""
        };
        DeclareError {
            what,
            name,
            hint,
            source,
        }
    }
}

/// What to declare.
#[derive(Debug, Clone)]
pub struct Topology {
    /// `x-delivery-limit` of the handler queues and `relay.deliveries`.
    pub delivery_limit: u32,
    /// Retry delay tiers (deliveries and handler retries alike).
    pub retry_tiers: Vec<Duration>,
    /// `x-message-ttl` of `relay.unrouted`.
    pub unrouted_ttl: Duration,
    /// `x-max-length` of `relay.unrouted`.
    pub unrouted_max_length: u32,
    /// Enabled handlers: their queues and bindings.
    pub handlers: Vec<HandlerRoute>,
    /// Known handlers that are disabled: if their queue exists it is unbound, so it stops
    /// collecting events that would otherwise reach `relay.unrouted`.
    pub disabled: Vec<HandlerRoute>,
    /// Timer queues: (handler, delay).
    pub timers: Vec<(&'static str, Duration)>,
}

impl Topology {
    /// The topology for this configuration: its enabled handlers, no timers (the worker adds
    /// those it uses).
    pub fn from_config(config: &Config) -> Self {
        let handlers = config.enabled_handlers();
        let disabled = routing::HANDLERS
            .iter()
            .filter(|h| !handlers.contains(h))
            .copied()
            .collect();
        Self {
            delivery_limit: config.amqp.delivery_limit,
            retry_tiers: config.amqp.retry_tiers.clone(),
            unrouted_ttl: config.amqp.unrouted_ttl,
            unrouted_max_length: config.amqp.unrouted_max_length,
            handlers,
            disabled,
            timers: Vec::new(),
        }
    }

    /// Declares everything on channels of its own (closed afterwards); safe to run any number
    /// of times, from any number of processes.
    pub async fn declare(&self, connection: &lapin::Connection) -> Result<(), DeclareError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(failed("channel for", "the topology"))?;
        self.declare_on(connection, &channel).await?;
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(())
    }

    async fn declare_on(
        &self,
        connection: &lapin::Connection,
        channel: &Channel,
    ) -> Result<(), DeclareError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let exchange = |name: &'static str, kind: ExchangeKind, args: FieldTable| async move {
            channel
                .exchange_declare(name.into(), kind, durable, args)
                .await
                .map_err(failed("exchange", name))
        };

        // Unrouted events: declared first, it is the alternate exchange of relay.events and of
        // relay.handlers. Bounded (invariant 5): events nobody handles must not pile up forever.
        exchange(
            routing::UNROUTED,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        let mut unrouted = quorum();
        unrouted.insert("x-message-ttl".into(), millis(self.unrouted_ttl));
        unrouted.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::from(self.unrouted_max_length)),
        );
        // drop-head (the default overflow): past the limit the oldest unrouted event goes, so a
        // flood of events nobody handles never refuses the ones a handler wants.
        declare_queue(channel, routing::UNROUTED, unrouted).await?;
        bind(channel, routing::UNROUTED, routing::UNROUTED, "", None).await?;

        // relay.events: an event no handler binds goes to relay.unrouted instead of vanishing
        // (invariant 5), and a mandatory publish therefore never comes back as returned.
        exchange(
            routing::EVENTS_EXCHANGE,
            ExchangeKind::Topic,
            alternate(routing::UNROUTED),
        )
        .await?;

        // Straight to one handler: durable handler retries and timers come back this way. A
        // message for a handler that is no longer enabled lands in relay.unrouted.
        exchange(
            routing::HANDLERS_EXCHANGE,
            ExchangeKind::Headers,
            alternate(routing::UNROUTED),
        )
        .await?;

        // Parking lots.
        exchange(
            routing::DEAD_EXCHANGE,
            ExchangeKind::Direct,
            FieldTable::default(),
        )
        .await?;
        for (queue, key) in [
            (routing::DEAD_EVENTS_QUEUE, routing::DEAD_EVENTS_KEY),
            (routing::DEAD_DELIVERIES_QUEUE, routing::DEAD_DELIVERIES_KEY),
        ] {
            declare_queue(channel, queue, quorum()).await?;
            bind(channel, queue, routing::DEAD_EXCHANGE, key, None).await?;
        }

        // A copy of everything parked, for the index a console pages through
        // (relay-parked). A quorum queue like every other, so a copy survives a node loss;
        // but bounded, and by dropping its oldest copies (never `reject-publish`): with no
        // console reading it, it must neither grow without limit nor ever refuse a copy,
        // which would nack the parking itself (a publish confirms only once every queue it
        // reaches has taken it). A dropped copy costs an index entry, never a message.
        let mut index = quorum();
        index.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(PARKED_INDEX_MAX_LENGTH),
        );
        index.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(PARKED_INDEX_MAX_BYTES),
        );
        index.insert("x-overflow".into(), text("drop-head"));
        index.insert("x-message-ttl".into(), millis(PARKED_INDEX_TTL));
        declare_queue(channel, routing::PARKED_INDEX_QUEUE, index).await?;
        for (exchange, key) in [
            (routing::UNROUTED, ""),
            (routing::DEAD_EXCHANGE, routing::DEAD_EVENTS_KEY),
            (routing::DEAD_EXCHANGE, routing::DEAD_DELIVERIES_KEY),
        ] {
            bind(channel, routing::PARKED_INDEX_QUEUE, exchange, key, None).await?;
        }

        // Where a publisher that had to reopen its channel proves the new one works: a quorum
        // queue, so the probe goes through the same replication as real events; one message
        // at most (the oldest is dropped), so probes never pile up.
        let mut probe = quorum();
        probe.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
        declare_queue(channel, crate::publisher::PROBE_QUEUE, probe).await?;

        // Outbound jobs. Fanout, so a retry copy coming back from a delay tier (which keeps its
        // routing key, the tier's queue name) lands here whatever that key is.
        exchange(
            routing::DELIVERIES,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        let deliveries_args = self.with_delivery_limit(at_least_once_dead_letter(
            routing::DEAD_EXCHANGE,
            Some(routing::DEAD_DELIVERIES_KEY),
        ));
        declare_queue(channel, routing::DELIVERIES, deliveries_args).await?;
        bind(channel, routing::DELIVERIES, routing::DELIVERIES, "", None).await?;

        for handler in &self.handlers {
            let queue = handler.queue();
            let args = self.with_delivery_limit(at_least_once_dead_letter(
                routing::DEAD_EXCHANGE,
                Some(routing::DEAD_EVENTS_KEY),
            ));
            declare_queue(channel, &queue, args).await?;
            for pattern in handler.patterns {
                bind(channel, &queue, routing::EVENTS_EXCHANGE, pattern, None).await?;
            }
            bind(
                channel,
                &queue,
                routing::HANDLERS_EXCHANGE,
                "",
                Some(handler_match(handler.name)),
            )
            .await?;
        }
        for handler in &self.disabled {
            unbind_disabled(connection, handler).await?;
        }

        for delay in &self.retry_tiers {
            // No consumer ever reads a tier: messages expire after the tier's TTL and are
            // dead-lettered back. At-least-once dead-lettering keeps a message safe while it
            // moves, even across a broker crash.
            let mut args = at_least_once_dead_letter(routing::DELIVERIES, None);
            args.insert("x-message-ttl".into(), millis(*delay));
            declare_queue(channel, &routing::retry_queue(*delay), args).await?;

            let mut args = at_least_once_dead_letter(routing::HANDLERS_EXCHANGE, None);
            args.insert("x-message-ttl".into(), millis(*delay));
            declare_queue(channel, &routing::handler_retry_queue(*delay), args).await?;
        }
        let mut timers = self.timers.clone();
        timers.sort_unstable();
        timers.dedup();
        for (handler, delay) in &timers {
            let mut args = at_least_once_dead_letter(routing::HANDLERS_EXCHANGE, None);
            args.insert("x-message-ttl".into(), millis(*delay));
            declare_queue(channel, &routing::timer_queue(handler, *delay), args).await?;
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

/// The binding arguments that route a message whose `relay-handler` header is `name`.
fn handler_match(name: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-match".into(), text("all"));
    args.insert(routing::HANDLER_HEADER.into(), text(name));
    args
}

/// Unbinds a disabled handler's queue if it exists, and says what it still holds.
async fn unbind_disabled(
    connection: &lapin::Connection,
    handler: &HandlerRoute,
) -> Result<(), DeclareError> {
    let queue = handler.queue();
    // A passive declare of a missing queue closes its channel: probe on a channel of its own.
    let probe = connection
        .create_channel()
        .await
        .map_err(failed("channel for", &queue))?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let Ok(state) = probe
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await
    else {
        return Ok(());
    };
    for pattern in handler.patterns {
        unbind(&probe, &queue, routing::EVENTS_EXCHANGE, pattern, None).await?;
    }
    unbind(
        &probe,
        &queue,
        routing::HANDLERS_EXCHANGE,
        "",
        Some(handler_match(handler.name)),
    )
    .await?;
    let _ = probe.close(200, "probed".into()).await;
    tracing::warn!(
        queue = %queue,
        messages = state.message_count(),
        "handler disabled: its queue is unbound and keeps what it holds (replay it with relayctl, or delete it)"
    );
    Ok(())
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn millis(delay: Duration) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

fn alternate(exchange: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), text(exchange));
    args
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

async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), DeclareError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, args)
        .await
        .map(|_| ())
        .map_err(failed("queue", name))
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    args: Option<FieldTable>,
) -> Result<(), DeclareError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args.unwrap_or_default(),
        )
        .await
        .map_err(failed("binding of", queue))
}

async fn unbind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    args: Option<FieldTable>,
) -> Result<(), DeclareError> {
    channel
        .queue_unbind(
            queue.into(),
            exchange.into(),
            key.into(),
            args.unwrap_or_default(),
        )
        .await
        .map_err(failed("unbinding of", queue))
}
