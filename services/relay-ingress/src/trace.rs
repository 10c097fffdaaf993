//! Request tracing: one OpenTelemetry `SERVER` span around every request.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// One `SERVER` span per request, parented on the caller's `traceparent` when it sends one,
/// named and described per OpenTelemetry's HTTP conventions: `{method} {route}` with the matched
/// route template (never the path, whose segments vary), `{method}` alone when no route matched;
/// status `ERROR` for a 5xx only (a 4xx is the caller's mistake, not the server's).
pub(crate) async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let (method, method_original) = relay_telemetry::propagation::method(request.method());
    let name = match &route {
        Some(route) => format!(
            "{} {route}",
            relay_telemetry::propagation::span_method(method)
        ),
        None => relay_telemetry::propagation::span_method(method).to_owned(),
    };
    // The listener is plain HTTP; TLS, if any, ends at a proxy that says so.
    let scheme = match request.headers().get("x-forwarded-proto") {
        Some(proto) if proto.as_bytes().eq_ignore_ascii_case(b"https") => "https",
        _ => "http",
    };
    // `server.address` and `server.port` as the client addressed us (the `Host` header).
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok());
    let port = host.as_ref().map(|host| {
        host.port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 })
    });
    let version = match request.version() {
        axum::http::Version::HTTP_10 => Some("1.0"),
        axum::http::Version::HTTP_11 => Some("1.1"),
        axum::http::Version::HTTP_2 => Some("2"),
        _ => None,
    };
    let span = tracing::info_span!(
        "HTTP request",
        "otel.name" = name.as_str(),
        "otel.kind" = "server",
        "otel.status_code" = tracing::field::Empty,
        "http.request.method" = method,
        "http.request.method_original" = method_original,
        "http.route" = route.as_deref(),
        "url.path" = request.uri().path(),
        "url.scheme" = scheme,
        "server.address" = host.as_ref().map(axum::http::uri::Authority::host),
        "server.port" = port,
        "network.protocol.version" = version,
        "user_agent.original" = request
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok()),
        "http.response.status_code" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    relay_telemetry::propagation::set_parent_from(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    response
}
