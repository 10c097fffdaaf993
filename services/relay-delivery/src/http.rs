//! The request of one attempt and what its response means: the URL (the destination's, plus
//! the job's path), the configured and the job's headers, trace context, `Idempotency-Key`, the
//! signature ([`crate::sign`]) and the body; then the response classified by [`crate::policy`]
//! (and, for `voximplant-jwt`, by its body), with the first bytes of a failure's body kept for
//! the dead letter and the outcome event, and of a success's when the job asked for its
//! outcome (an origination needs the provider's answer).

use std::time::SystemTime;

use relay_core::DeliveryJob;
use relay_core::config::Signing;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::destination::Destination;
use crate::policy::{self, Outcome};
use crate::{sign, voximplant};

/// Most response bytes kept in a dead letter's headers and outcome events.
const RESPONSE_SNIPPET: usize = relay_core::outcome::EXCERPT_LIMIT;
/// Most response bytes read to classify a 2xx body (a Voximplant answer is far smaller).
const CLASSIFIED_BODY: usize = 64 * 1024;

/// Sends `job` to `destination` once, as attempt number `attempt` (from 1); returns what it
/// came to and, for a failure, the start of the response body.
///
/// The request is one `CLIENT` span ([`client_span`]), whose context the request carries in
/// `traceparent`.
pub(crate) async fn send(
    client: &reqwest::Client,
    destination: &Destination,
    job: &DeliveryJob,
    attempt: u32,
) -> (Outcome, Option<String>) {
    let url = if job.path.is_empty() {
        destination.url.clone()
    } else {
        match reqwest::Url::parse(&format!("{}{}", destination.config.url, job.path)) {
            Ok(url) => url,
            Err(e) => return (Outcome::Unsendable(format!("invalid URL: {e}")), None),
        }
    };
    let method =
        reqwest::Method::from_bytes(job.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let span = client_span(&method, &url, attempt);
    let (outcome, response) = request(client, destination, job, method, url)
        .instrument(span.clone())
        .await;
    // Status `ERROR` for every attempt that did not deliver: a 4xx, a 5xx or no answer, as
    // OpenTelemetry's HTTP client spans have it, and, knowing more than a generic client, a 3xx
    // (never followed) and a 2xx whose body says the request failed.
    let error = match &outcome {
        Outcome::Delivered(_) => None,
        Outcome::Retryable {
            status: None,
            reason,
            ..
        } => Some(
            match reason.as_str() {
                "timeout" => "timeout",
                "connection error" => "connection_error",
                _ => "request_error",
            }
            .to_owned(),
        ),
        Outcome::Retryable {
            status: Some(status),
            ..
        }
        | Outcome::Permanent(status) => Some(status.to_string()),
        Outcome::Gone => Some("410".to_owned()),
        Outcome::Refused { .. } => Some("refused".to_owned()),
        Outcome::Unsendable(_) => Some("unsendable".to_owned()),
    };
    if let Some(error) = error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", error.as_str());
    }
    (outcome, response)
}

/// The span of one request: named `{method}` (a URL is no low-cardinality target), `CLIENT`,
/// with OpenTelemetry's HTTP client attributes. `url.full` has neither credentials nor query
/// ([`url_full`]); `http.request.resend_count` is set from the second attempt on.
fn client_span(method: &reqwest::Method, url: &reqwest::Url, attempt: u32) -> tracing::Span {
    let (method, method_original) = relay_telemetry::propagation::method(method);
    tracing::info_span!(
        "HTTP request",
        "otel.name" = relay_telemetry::propagation::span_method(method),
        "otel.kind" = "client",
        "otel.status_code" = tracing::field::Empty,
        "http.request.method" = method,
        "http.request.method_original" = method_original,
        "server.address" = url.host_str(),
        "server.port" = url.port_or_known_default(),
        "url.full" = url_full(url).as_str(),
        "http.request.resend_count" = (attempt > 1).then(|| attempt - 1),
        "http.response.status_code" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    )
}

/// `url` as a span may show it: without user name and password (a `basic` destination's may be
/// in the URL), query (tokens often are) or fragment. The conventions allow redacting more than
/// they list; a trace backend is no place for a secret.
fn url_full(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    // Only a URL that cannot be a base (no host) refuses these; it has no credentials either.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

/// The request itself, under the span of [`send`].
async fn request(
    client: &reqwest::Client,
    destination: &Destination,
    job: &DeliveryJob,
    method: reqwest::Method,
    url: reqwest::Url,
) -> (Outcome, Option<String>) {
    let mut http_headers = reqwest::header::HeaderMap::new();
    for (name, value) in destination.config.headers.iter().chain(job.headers.iter()) {
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) {
            http_headers.insert(n, v);
        }
    }
    relay_telemetry::propagation::inject_current(&mut http_headers);
    let request = client
        .request(method, url)
        .timeout(destination.config.timeout)
        .headers(http_headers)
        .header(reqwest::header::CONTENT_TYPE, job.content_type.as_str())
        .header("Idempotency-Key", job.idempotency_key.as_str());
    let secrets = destination.secrets.current();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let request = match sign::sign(request, destination, &secrets, job, now) {
        Ok(request) => request,
        Err(detail) => return (Outcome::Unsendable(detail), None),
    };
    match request.body(job.body.clone()).send().await {
        Ok(mut response) => {
            let status = response.status().as_u16();
            tracing::Span::current().record("http.response.status_code", status);
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let outcome = policy::classify(status, retry_after.as_deref(), SystemTime::now());
            match outcome {
                Outcome::Delivered(status)
                    if destination.config.signing == Signing::VoximplantJwt =>
                {
                    let body = read(&mut response, CLASSIFIED_BODY).await;
                    let text = secrets.redact(&lossy(&body, RESPONSE_SNIPPET));
                    match voximplant::api_error(&body) {
                        Some(detail) => (Outcome::Refused { status, detail }, Some(text)),
                        None => (outcome, job.report_outcome.then_some(text)),
                    }
                }
                Outcome::Delivered(_) if !job.report_outcome => (outcome, None),
                _ => {
                    let body = read(&mut response, RESPONSE_SNIPPET).await;
                    (
                        outcome,
                        Some(secrets.redact(&lossy(&body, RESPONSE_SNIPPET))),
                    )
                }
            }
        }
        Err(e) => {
            let reason = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connection error"
            } else {
                "request error"
            };
            tracing::info!(error = %e, "attempt failed");
            (
                Outcome::Retryable {
                    reason: reason.to_owned(),
                    status: None,
                    retry_after: None,
                },
                None,
            )
        }
    }
}

/// The first `limit` bytes of a response body (or all of it, when shorter).
async fn read(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(limit);
    bytes
}

/// At most `limit` bytes of `body`, lossily decoded.
fn lossy(body: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&body[..body.len().min(limit)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_shows_the_url_without_its_secrets() {
        let url =
            reqwest::Url::parse("https://user:pass@hooks.example.com:8443/in/x?token=t#f").unwrap();
        assert_eq!(url_full(&url), "https://hooks.example.com:8443/in/x");
        let plain = reqwest::Url::parse("http://127.0.0.1:9/alerts").unwrap();
        assert_eq!(url_full(&plain), "http://127.0.0.1:9/alerts");
    }
}
