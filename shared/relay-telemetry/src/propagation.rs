//! W3C trace context over HTTP headers (`traceparent`, `tracestate`), and what HTTP spans on
//! either side share of OpenTelemetry's HTTP conventions ([`method`]).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

/// The remote context carried by request headers (empty when there is none).
pub fn extract(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Makes `span` a child of the context in `headers`, if they carry one.
pub fn set_parent_from(span: &tracing::Span, headers: &HeaderMap) {
    let cx = extract(headers);
    if opentelemetry::trace::TraceContextExt::has_active_span(&cx) {
        // Fails only when the span is disabled, in which case there is nothing to link.
        let _ = span.set_parent(cx);
    }
}

/// Writes the current span's context into `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers));
    });
}

/// `http.request.method` of an HTTP span and the `{method}` of its name, per OpenTelemetry's
/// HTTP conventions: a method of RFC 9110 or RFC 5789 as it is; any other is `_OTHER` (the span
/// is then named `HTTP` and carries `http.request.method_original`), so a scan of made-up
/// methods cannot make span names of its own.
pub fn method(method: &Method) -> (&'static str, Option<&str>) {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    match KNOWN.iter().find(|known| **known == method.as_str()) {
        Some(known) => (known, None),
        None => ("_OTHER", Some(method.as_str())),
    }
}

/// The `{method}` of an HTTP span's name: the method, or `HTTP` for one the conventions call
/// `_OTHER`.
pub fn span_method(attribute: &'static str) -> &'static str {
    if attribute == "_OTHER" {
        "HTTP"
    } else {
        attribute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_name_spans() {
        assert_eq!(method(&Method::POST), ("POST", None));
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method(&odd), ("_OTHER", Some("PURGE")));
        assert_eq!(span_method("_OTHER"), "HTTP");
        assert_eq!(span_method("GET"), "GET");
    }
}
