//! W3C trace context (`traceparent`, `tracestate`) in AMQP message headers.
//!
//! Publishing injects the current span's context; consuming extracts it and parents the handler's
//! span on it, so one trace follows an event from the ingress request to the outbound request.
//! The names and attributes of those spans (OpenTelemetry's messaging conventions) are here
//! too: [`publish_destination`] and friends for [`crate::Broker::publish`]'s span, and
//! [`process_span!`](crate::process_span) for a consumer's.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, LongString},
};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct TableInjector<'a>(&'a mut FieldTable);

impl Injector for TableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

struct TableExtractor(Vec<(String, String)>);

impl Extractor for TableExtractor {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Writes the current span's trace context into `headers`.
pub fn inject_current(headers: &mut FieldTable) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut TableInjector(headers));
    });
}

/// The trace context carried by a message (empty when there is none).
pub fn extract(properties: &BasicProperties) -> opentelemetry::Context {
    let pairs = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(k, v)| match v {
                    AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec())
                        .ok()
                        .map(|v| (k.to_string(), v)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let extractor = TableExtractor(pairs);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&extractor))
}

/// Makes `span` a child of the context carried by the message, if any.
pub fn set_parent_from(span: &tracing::Span, properties: &BasicProperties) {
    let cx = extract(properties);
    if opentelemetry::trace::TraceContextExt::has_active_span(&cx) {
        let _ = span.set_parent(cx);
    }
}

/// `messaging.system` of every AMQP span.
pub const SYSTEM: &str = "rabbitmq";

// Span names and attributes follow the OpenTelemetry semantic conventions for messaging and
// RabbitMQ (docs/messaging/messaging-spans.md and rabbitmq.md, v1.44): a publish is a
// `PRODUCER` span named `publish {destination}` whose context is injected into the message (the
// message's creation context, so no separate "create" span), and a handler's run is a
// `CONSUMER` span named `process {queue}`, parented on that context (one message per span).
// `messaging.destination.name` is RabbitMQ's compound name (`{exchange}:{routing key}` when
// publishing, `{exchange}:{routing key}:{queue}` when consuming); the span name carries only
// its low-cardinality part, the exchange or the queue, since routing keys hold provider-chosen
// event types.

/// `messaging.destination.name` of a publish: `{exchange}:{routing key}`, either one alone when
/// the other is empty, `amq.default` when both are.
pub fn publish_destination(exchange: &str, routing_key: &str) -> String {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => format!("{exchange}:{routing_key}"),
        (false, true) => exchange.to_owned(),
        (true, false) => routing_key.to_owned(),
        (true, true) => "amq.default".to_owned(),
    }
}

/// The `{destination}` of a publish span's name: the exchange, or for the default exchange the
/// routing key (there a queue's name).
pub fn publish_target<'a>(exchange: &'a str, routing_key: &'a str) -> &'a str {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, _) => exchange,
        (true, false) => routing_key,
        (true, true) => "amq.default",
    }
}

/// `messaging.destination.name` of a consumed message: `{exchange}:{routing key}:{queue}`
/// without the empty parts, and the routing key only once when it is the queue's name.
pub fn process_destination(exchange: &str, routing_key: &str, queue: &str) -> String {
    let routing_key = if routing_key == queue {
        ""
    } else {
        routing_key
    };
    [exchange, routing_key, queue]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(":")
}

/// `Some(text)` unless it is empty: attributes the conventions want only when not empty.
pub fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// The AMQP `message_id` of a message, if it has one.
pub fn message_id(properties: &BasicProperties) -> Option<&str> {
    properties
        .message_id()
        .as_ref()
        .map(lapin::types::ShortString::as_str)
        .and_then(non_empty)
}

#[doc(hidden)]
pub use tracing as __tracing;

/// The `CONSUMER` span of one message consumed from `queue`: `process {queue}`, with the
/// messaging attributes, parented on the trace context the message carries. Further fields
/// (the service's own: a handler name, an id recorded later) follow the two arguments, as in
/// [`tracing::info_span!`]: `process_span!(&queue, delivery, handler = name)`.
#[macro_export]
macro_rules! process_span {
    ($queue:expr, $delivery:expr $(, $($fields:tt)+)?) => {{
        let queue: &str = $queue;
        let delivery: &$crate::Delivery = $delivery;
        let name = format!("process {queue}");
        let destination = $crate::trace::process_destination(
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
            queue,
        );
        let span = $crate::trace::__tracing::info_span!(
            "process",
            "otel.name" = name.as_str(),
            "otel.kind" = "consumer",
            "messaging.system" = $crate::trace::SYSTEM,
            "messaging.operation.type" = "process",
            "messaging.operation.name" = "process",
            "messaging.destination.name" = destination.as_str(),
            "messaging.rabbitmq.destination.routing_key" =
                $crate::trace::non_empty(delivery.routing_key.as_str()),
            "messaging.rabbitmq.message.delivery_tag" = delivery.delivery_tag,
            "messaging.message.id" = $crate::trace::message_id(&delivery.properties)
            $(, $($fields)+)?
        );
        $crate::trace::set_parent_from(&span, &delivery.properties);
        span
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_destination_is_exchange_and_routing_key() {
        assert_eq!(
            publish_destination("relay.events", "voximplant.min_balance"),
            "relay.events:voximplant.min_balance"
        );
        assert_eq!(
            publish_destination("relay.deliveries", ""),
            "relay.deliveries"
        );
        assert_eq!(
            publish_destination("", "relay.retry.30s"),
            "relay.retry.30s"
        );
        assert_eq!(publish_destination("", ""), "amq.default");
        assert_eq!(
            publish_target("relay.events", "voximplant.min_balance"),
            "relay.events"
        );
        assert_eq!(publish_target("", "relay.retry.30s"), "relay.retry.30s");
    }

    #[test]
    fn a_consumed_destination_adds_the_queue() {
        assert_eq!(
            process_destination(
                "relay.events",
                "voximplant.min_balance",
                "relay.handler.min-balance-alert"
            ),
            "relay.events:voximplant.min_balance:relay.handler.min-balance-alert"
        );
        assert_eq!(
            process_destination("relay.deliveries", "", "relay.deliveries"),
            "relay.deliveries:relay.deliveries"
        );
        assert_eq!(
            process_destination("", "relay.deliveries", "relay.deliveries"),
            "relay.deliveries"
        );
    }
}
