//! The request of one attempt and what its response means: the URL (the destination's, plus
//! the job's path), the configured and the job's headers, trace context, `Idempotency-Key`, the
//! signature ([`crate::sign`]) and the body; then the response classified by [`crate::policy`],
//! with the first bytes of a failure's body kept for the dead letter and the outcome event.

use std::time::SystemTime;

use relay_core::DeliveryJob;
use time::OffsetDateTime;

use crate::destination::Destination;
use crate::policy::{self, Outcome};
use crate::sign;

/// Most response bytes kept in a dead letter's headers and outcome events.
const RESPONSE_SNIPPET: usize = relay_core::outcome::EXCERPT_LIMIT;

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
    let request = sign::sign(
        request,
        destination,
        job,
        OffsetDateTime::now_utc().unix_timestamp(),
    );
    match request.body(job.body.clone()).send().await {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let outcome = policy::classify(status, retry_after.as_deref(), SystemTime::now());
            let snippet = if matches!(outcome, Outcome::Delivered(_)) {
                None
            } else {
                Some(snippet(&mut response).await)
            };
            (outcome, snippet)
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

/// The first bytes of a response body, lossily decoded.
async fn snippet(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(RESPONSE_SNIPPET);
    String::from_utf8_lossy(&bytes).into_owned()
}
