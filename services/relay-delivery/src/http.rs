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

use crate::destination::Destination;
use crate::policy::{self, Outcome};
use crate::{sign, voximplant};

/// Most response bytes kept in a dead letter's headers and outcome events.
const RESPONSE_SNIPPET: usize = relay_core::outcome::EXCERPT_LIMIT;
/// Most response bytes read to classify a 2xx body (a Voximplant answer is far smaller).
const CLASSIFIED_BODY: usize = 64 * 1024;

/// Sends `job` to `destination` once; returns what it came to and, for a failure, the start of
/// the response body.
pub(crate) async fn send(
    client: &reqwest::Client,
    destination: &Destination,
    job: &DeliveryJob,
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
