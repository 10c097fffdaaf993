//! W3C trace context (`traceparent`, `tracestate`) in AMQP message headers.
//!
//! Publishing injects the current span's context; consuming extracts it and parents the handler's
//! span on it, so one trace follows an event from the ingress request to the outbound request.

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
