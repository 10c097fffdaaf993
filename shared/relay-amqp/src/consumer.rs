//! The consumer loop: prefetch, manual acks after the side effect is durable, drain on stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Broker;

/// What to do with a message once its handler is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or parked in a dead-letter queue by the handler itself, confirmed): remove it.
    Ack,
    /// Transient failure: give it back to the queue for another try. The queue's delivery limit
    /// dead-letters a message that keeps failing.
    Requeue,
}

/// Processes one message. Implementations must be idempotent: a message may come again after a
/// crash or a lost connection (at-least-once).
pub trait Handler: Send + Sync + 'static {
    /// Handles `delivery` and says what to do with it.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Disposition> + Send;
}

/// A queue consumer's settings.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Queue to consume.
    pub queue: String,
    /// Consumer tag prefix shown by the broker.
    pub tag: String,
    /// Unacknowledged messages at once; also the number of concurrent handler calls.
    pub prefetch: u16,
    /// How long in-flight handlers may run after `stop` before their messages are handed back.
    pub grace: Duration,
    /// The queue's `x-delivery-limit` and the parking lot (`relay.dead` routing key) of what
    /// exceeds it. A message delivered that often already has crashed or stalled its
    /// consumer each time (a poison message): instead of handing it to the handler once more
    /// and letting the broker park it silently, the consumer parks it itself, with the reason
    /// `redelivered_too_often`, a log line naming it and a count.
    pub poison: Option<(u32, &'static str)>,
}

/// Header in which quorum queues count a message's earlier deliveries.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// The dead-letter `reason` of a poison message (in `relay_dead_letters_total` too).
pub const POISON_REASON: &str = "redelivered_too_often";

/// Consumes `consumer.queue` with `handler` until `stop`, reconnecting with the broker.
///
/// On stop: cancel the consumer (no new deliveries), wait up to `grace` for in-flight handlers,
/// then close the channel; whatever is still unacknowledged goes back to the queue.
pub async fn run<H: Handler>(
    broker: Broker,
    consumer: Consumer,
    handler: Arc<H>,
    stop: CancellationToken,
) {
    let mut sessions = broker.sessions();
    let mut in_flight = JoinSet::new();
    loop {
        // Wait for a live connection.
        let session = tokio::select! {
            () = stop.cancelled() => break,
            session = sessions.wait_for(Option::is_some) => match session {
                Ok(s) => s.clone().expect("waited for Some"),
                Err(_) => break,
            },
        };
        match consume_session(
            &broker,
            &session.connection,
            &consumer,
            &handler,
            &stop,
            &mut in_flight,
        )
        .await
        {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(queue = %consumer.queue, %error, "consumer interrupted, resuming after reconnect");
                // Wait for the supervisor to notice and replace the session before retrying,
                // rather than spinning on a dead one.
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = sessions.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    drain(&mut in_flight, consumer.grace, &consumer.queue).await;
}

async fn consume_session<H: Handler>(
    broker: &Broker,
    connection: &lapin::Connection,
    consumer: &Consumer,
    handler: &Arc<H>,
    stop: &CancellationToken,
    in_flight: &mut JoinSet<()>,
) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    // Prefetch bounds the unacknowledged messages, and so the concurrent handler calls.
    channel
        .basic_qos(consumer.prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("{}-{}", consumer.tag, std::process::id());
    let mut deliveries = channel
        .basic_consume(
            consumer.queue.as_str().into(),
            tag.as_str().into(),
            // Manual acks: a message is removed only after its handler's work is durable.
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %consumer.queue, prefetch = consumer.prefetch, "consuming");
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                drain(in_flight, consumer.grace, &consumer.queue).await;
                let _ = channel.close(200, "relay draining".into()).await;
                return Ok(());
            }
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => {
                    let handler = handler.clone();
                    let broker = broker.clone();
                    let poison = consumer.poison;
                    let queue = consumer.queue.clone();
                    in_flight.spawn(async move {
                        let disposition = match poison {
                            Some((limit, lot)) if is_poison(&delivery, limit) => {
                                park_poison(&broker, &delivery, lot, &queue).await
                            }
                            _ => handler.handle(&delivery).await,
                        };
                        let result = match disposition {
                            Disposition::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
                            Disposition::Requeue => {
                                delivery
                                    .acker
                                    .nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() })
                                    .await
                            }
                        };
                        if let Err(error) = result {
                            // The channel is gone; the broker redelivers the message.
                            tracing::warn!(%error, "could not settle a message; it will be redelivered");
                        }
                    });
                }
                Some(Err(error)) => return Err(error),
                None => return Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Closed,
                ))),
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
}

/// Whether `delivery` has been delivered `limit - 1` times before: one more return and the
/// broker would park it without a word.
fn is_poison(delivery: &Delivery, limit: u32) -> bool {
    let count = crate::headers::get_int(delivery.properties.headers().as_ref(), DELIVERY_COUNT)
        .unwrap_or(0);
    count >= i64::from(limit.saturating_sub(1)).max(1)
}

/// Parks a poison message in `relay.dead` (`lot`) with its reason, visibly.
async fn park_poison(broker: &Broker, delivery: &Delivery, lot: &str, queue: &str) -> Disposition {
    let id = crate::headers::message_id(&delivery.properties);
    tracing::error!(
        queue,
        message_id = %id,
        "message redelivered too often (its handling crashed or stalled every time); parking it"
    );
    let mut detail = FieldTable::default();
    crate::headers::put_str(
        &mut detail,
        crate::headers::DETAIL,
        format!("delivered too often from {queue}; see the consumer's logs for why"),
    );
    match broker
        .dead_letter(lot, delivery, POISON_REASON, detail)
        .await
    {
        Ok(()) => Disposition::Ack,
        Err(error) => {
            tracing::warn!(%error, "could not park the message; it goes back to its queue");
            Disposition::Requeue
        }
    }
}

async fn drain(in_flight: &mut JoinSet<()>, grace: Duration, queue: &str) {
    if in_flight.is_empty() {
        return;
    }
    let pending = in_flight.len();
    tracing::info!(queue, pending, "waiting for in-flight messages");
    if tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            queue,
            remaining = in_flight.len(),
            "grace period over, handing messages back"
        );
        in_flight.abort_all();
    }
}
