//! What RabbitMQ alone does on this machine: the baseline the relay is measured against.
//!
//! Publishing mirrors what ingress does per request (one channel in confirm mode shared by
//! `concurrency` tasks, each publishing a persistent message to a quorum queue and awaiting its
//! own confirm), without HTTP, verification or Redis. Consuming mirrors worker and delivery
//! (prefetch, one ack per message), without handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

use super::load::{Throughput, histogram};

/// Declares a fresh quorum queue for one measurement.
pub(crate) async fn quorum_queue(channel: &Channel, name: &str) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name.into(), options, args).await?;
    Ok(())
}

/// Deletes a measurement queue.
pub(crate) async fn delete_queue(channel: &Channel, name: &str) {
    let _ = channel
        .queue_delete(name.into(), QueueDeleteOptions::default())
        .await;
}

/// Where baseline messages go: a plain quorum queue through the default exchange, or the
/// relay's own route (`relay.events` → a handler queue) with the properties ingress sets.
#[derive(Clone, Copy)]
pub(crate) enum Route<'a> {
    Queue(&'a str),
    RelayEvents(&'a str),
}

/// Publishes `count` persistent messages of `size` bytes along `route`, `concurrency` at a
/// time, each awaiting its confirm.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    route: Route<'_>,
    count: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<Throughput> {
    let (exchange, key, relay_properties) = match route {
        Route::Queue(q) => (String::new(), q.to_owned(), false),
        Route::RelayEvents(k) => (
            relay_core::routing::EVENTS_EXCHANGE.to_owned(),
            k.to_owned(),
            true,
        ),
    };
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let payload = Arc::new(vec![b'x'; size]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (channel, payload, next) = (channel.clone(), payload.clone(), next.clone());
            let (exchange, key) = (exchange.clone(), key.clone());
            tokio::spawn(async move {
                let mut h = histogram();
                let mut failures = 0;
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let sent = Instant::now();
                    let mut properties = BasicProperties::default().with_delivery_mode(2);
                    if relay_properties {
                        let mut headers = FieldTable::default();
                        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
                        headers.insert(
                            "traceparent".into(),
                            AMQPValue::LongString(LongString::from(traceparent)),
                        );
                        properties = properties
                            .with_message_id(relay_core::ids::new_event_id().into())
                            .with_content_type(relay_core::event::CONTENT_TYPE.into())
                            .with_timestamp(0)
                            .with_headers(headers);
                    }
                    let confirmed = async {
                        channel
                            .basic_publish(
                                exchange.as_str().into(),
                                key.as_str().into(),
                                BasicPublishOptions {
                                    mandatory: true,
                                    ..BasicPublishOptions::default()
                                },
                                &payload,
                                properties,
                            )
                            .await?
                            .await
                    }
                    .await;
                    if !matches!(confirmed, Ok(c) if c.is_ack()) {
                        failures += 1;
                    }
                    h.saturating_record(sent.elapsed().as_micros() as u64);
                }
                (h, failures)
            })
        })
        .collect();
    Ok(Throughput::join(tasks, count, concurrency, started).await)
}

/// Consumes `count` messages from `queue` with `prefetch`, acking each; messages per second.
pub(crate) async fn consume_acked(
    channel: &Channel,
    queue: &str,
    count: usize,
    prefetch: u16,
) -> anyhow::Result<f64> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "relay-bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let mut seen = 0;
    while seen < count {
        let Some(delivery) = consumer.next().await else {
            break;
        };
        delivery?.acker.ack(BasicAckOptions::default()).await?;
        seen += 1;
    }
    Ok(seen as f64 / started.elapsed().as_secs_f64())
}
