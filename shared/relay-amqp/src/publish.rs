//! Publishing: persistent, `mandatory`, awaited to the broker's confirm.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use lapin::{BasicProperties, Confirmation, options::BasicPublishOptions, types::FieldTable};
use tracing::Instrument;

use crate::{Broker, headers, trace};

/// How long parking a message may keep retrying through broker trouble (the caller holds the
/// message meanwhile).
const DEAD_LETTER_BUDGET: Duration = Duration::from_secs(30);

/// A publish failed: the caller must not report success upstream.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection to the broker right now (it is down, or we are reconnecting).
    #[error("broker unavailable")]
    Unavailable,
    /// The broker did not confirm in time.
    #[error("broker did not confirm within {0:?}")]
    Timeout(Duration),
    /// The broker refused the message (nack), e.g. a queue at its length limit.
    #[error("broker refused the message (nack)")]
    Nacked,
    /// The message could not be routed to any queue.
    #[error("message returned unroutable: {0}")]
    Returned(String),
    /// The channel or connection failed during the publish.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
}

impl PublishError {
    /// Whether trying again later can succeed: everything but an unroutable message, which no
    /// retry routes.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Returned(_))
    }
}

/// Every `outcome` of `relay_amqp_publish_total`: what [`Broker::publish`] came to.
pub const PUBLISH_OUTCOMES: &[&str] = &[
    "confirmed",
    "unavailable",
    "timeout",
    "nacked",
    "returned",
    "error",
];

/// Creates the series of `relay_amqp_publish_total` at zero, one per outcome (every service
/// publishes; [`Broker::start`] calls this), so an alert on failed publishes sees zeros from
/// start-up rather than a gap.
pub(crate) fn register_metrics() {
    for outcome in PUBLISH_OUTCOMES {
        metrics::counter!("relay_amqp_publish_total", "outcome" => *outcome).increment(0);
    }
}

/// Creates `relay_dead_letters_total{lot,reason}` at zero for `lot` (`events`, `deliveries`)
/// and each of `reasons`, the caller's closed set of reasons for parking a message there, plus
/// the consumer's own ([`crate::consumer::POISON_REASON`]). A service calls it at start-up for
/// each lot it parks messages in.
pub fn register_dead_letters(lot: &str, reasons: &[&str]) {
    let poison = std::iter::once(crate::consumer::POISON_REASON);
    for reason in reasons.iter().copied().chain(poison) {
        metrics::counter!("relay_dead_letters_total", "lot" => lot.to_owned(), "reason" => reason.to_owned())
            .increment(0);
    }
}

/// One message to publish.
#[derive(Clone)]
pub struct Publish<'a> {
    /// Exchange (`""` is the default exchange, routing by queue name).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// AMQP `message_id`: the event or job id.
    pub message_id: &'a str,
    /// AMQP `content_type`.
    pub content_type: &'a str,
    /// Body.
    pub body: &'a [u8],
    /// Headers; the current trace context is added.
    pub headers: FieldTable,
}

impl Broker {
    /// Publishes persistently and waits for the broker's confirm.
    ///
    /// `Ok` means the broker has taken responsibility for the message: it is on disk in every
    /// queue it was routed to (or, for quorum queues, on a majority of nodes).
    ///
    /// Each call is one `PRODUCER` span, `publish {exchange}` (the queue's name on the default
    /// exchange; OpenTelemetry's messaging conventions, see [`trace`]), whose context the
    /// message carries to its consumers.
    pub async fn publish(&self, message: Publish<'_>) -> Result<(), PublishError> {
        let started = Instant::now();
        let span = publish_span(&message, self.server());
        let result = self
            .publish_inner(message.exchange, message)
            .instrument(span.clone())
            .await;
        if let Some(session) = self.session() {
            session.publisher.record(&result, &session.connection);
        }
        let outcome = match &result {
            Ok(()) => "confirmed",
            Err(PublishError::Unavailable) => "unavailable",
            Err(PublishError::Timeout(_)) => "timeout",
            Err(PublishError::Nacked) => "nacked",
            Err(PublishError::Returned(_)) => "returned",
            Err(PublishError::Amqp(_)) => "error",
        };
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", outcome);
        }
        metrics::counter!("relay_amqp_publish_total", "outcome" => outcome).increment(1);
        metrics::histogram!("relay_amqp_publish_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    /// Publishes like [`Broker::publish`], retrying transient failures (broker away, nack,
    /// confirm timeout) with backoff until `budget` is spent.
    ///
    /// For a caller that holds a consumed message: handing it back to its queue for a broker
    /// hiccup would spend one of the queue's delivery-limit attempts, and a few seconds of
    /// hiccups would park good messages (docs/ARCHITECTURE.md: the delivery limit is for poison messages
    /// only).
    pub async fn publish_patiently(
        &self,
        message: Publish<'_>,
        budget: Duration,
    ) -> Result<(), PublishError> {
        let deadline = Instant::now() + budget;
        let mut pauses = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.publish(message.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    let pause = pauses.next().unwrap_or(Duration::from_secs(2));
                    if Instant::now() + pause >= deadline {
                        return Err(error);
                    }
                    metrics::counter!("relay_amqp_publish_retries_total").increment(1);
                    tracing::debug!(%error, ?pause, "publish failed, trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn publish_inner(
        &self,
        exchange: &str,
        message: Publish<'_>,
    ) -> Result<(), PublishError> {
        let session = self.session().ok_or(PublishError::Unavailable)?;
        let channel = session.publisher.channel();
        let mut headers = message.headers;
        trace::inject_current(&mut headers);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let properties = BasicProperties::default()
            .with_delivery_mode(2) // persistent
            .with_message_id(message.message_id.into())
            .with_content_type(message.content_type.into())
            .with_timestamp(timestamp)
            .with_headers(headers);
        // `mandatory`: an unroutable message comes back as a return instead of being dropped.
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let timeout = self.confirm_timeout();
        let confirmation = tokio::time::timeout(timeout, async {
            channel
                .basic_publish(
                    exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.body,
                    properties,
                )
                .await?
                .await
        })
        .await
        .map_err(|_| PublishError::Timeout(timeout))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                Err(PublishError::Returned(returned.reply_text.to_string()))
            }
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            // The publisher channel is always in confirm mode; this would be a bug.
            Confirmation::NotRequested => Err(PublishError::Unavailable),
        }
    }

    /// Parks a consumed message in `relay.dead` under `routing_key` (`events` or `deliveries`),
    /// with its reason in the headers, and waits for the confirm (retrying broker hiccups for
    /// a while). Ack the original only after this returns `Ok`.
    pub async fn dead_letter(
        &self,
        routing_key: &str,
        delivery: &lapin::message::Delivery,
        reason: &str,
        mut extra: FieldTable,
    ) -> Result<(), PublishError> {
        let mut table = delivery.properties.headers().clone().unwrap_or_default();
        headers::put_str(&mut table, headers::REASON, reason);
        // A message that came back through a delay tier already carries the routing key it
        // first had; the tier's own key is no place to replay it to.
        if headers::get_str(Some(&table), headers::ROUTING_KEY).is_none() {
            headers::put_str(
                &mut table,
                headers::ROUTING_KEY,
                delivery.routing_key.as_str(),
            );
        }
        for (k, v) in std::mem::take(&mut extra).inner() {
            table.insert(k.clone(), v.clone());
        }
        let message_id = crate::headers::message_id(&delivery.properties);
        let content_type = delivery
            .properties
            .content_type()
            .as_ref()
            .map_or_else(|| "application/octet-stream".to_owned(), |s| s.to_string());
        metrics::counter!("relay_dead_letters_total", "lot" => routing_key.to_owned(), "reason" => reason.to_owned())
            .increment(1);
        self.publish_patiently(
            Publish {
                exchange: relay_core::routing::DEAD_EXCHANGE,
                routing_key,
                message_id: &message_id,
                content_type: &content_type,
                body: &delivery.data,
                headers: table,
            },
            DEAD_LETTER_BUDGET,
        )
        .await
    }
}

/// The span of one publish: `publish {exchange}` (or the queue's name, on the default exchange),
/// `PRODUCER`, with the messaging attributes of the RabbitMQ conventions.
fn publish_span(message: &Publish<'_>, server: Option<(&str, u16)>) -> tracing::Span {
    let name = format!(
        "publish {}",
        trace::publish_target(message.exchange, message.routing_key)
    );
    tracing::info_span!(
        "publish",
        "otel.name" = name.as_str(),
        "otel.kind" = "producer",
        "otel.status_code" = tracing::field::Empty,
        "messaging.system" = trace::SYSTEM,
        // `send` is the operation type (`publish` was its name before v1.28 of the
        // conventions); `publish` is RabbitMQ's own name for it (`basic.publish`).
        "messaging.operation.type" = "send",
        "messaging.operation.name" = "publish",
        "messaging.destination.name" =
            trace::publish_destination(message.exchange, message.routing_key).as_str(),
        "messaging.rabbitmq.destination.routing_key" = trace::non_empty(message.routing_key),
        "messaging.message.id" = trace::non_empty(message.message_id),
        "server.address" = server.map(|(host, _)| host),
        "server.port" = server.map(|(_, port)| port),
        "error.type" = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::PUBLISH_OUTCOMES;

    /// The outcomes registered at start-up are exactly those [`super::Broker::publish`] records.
    #[test]
    fn the_publish_outcomes_are_the_ones_recorded() {
        let source = include_str!("publish.rs");
        let start = source
            .find("let outcome = match &result {")
            .expect("the outcome match");
        let block = &source[start..];
        let block = &block[..block.find("};").expect("its end")];
        let recorded: Vec<&str> = block.split('"').skip(1).step_by(2).collect();
        let mut sorted = recorded.clone();
        sorted.sort_unstable();
        let mut registered = PUBLISH_OUTCOMES.to_vec();
        registered.sort_unstable();
        assert_eq!(sorted, registered, "{recorded:?}");
    }
}
