//! Rendering, counting and logging a route's outcome, and the refusals of the HTTP layer itself
//! (no such route, wrong method, an unreadable path segment).
//!
//! Every request is counted in `relay_ingress_requests_total{source,outcome}` and timed in
//! `relay_ingress_request_seconds{source}`. A refusal is logged at most once per (source,
//! outcome) per second, with the number of refusals that line stands for: a flood of bad
//! requests costs a counter increment each, not a log line each.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::{IntoResponse, Response};
use relay_telemetry::throttle::Throttles;

use crate::Accepted;
use crate::problem::Problem;

/// The `source` label of requests no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// The `outcome` of an answered request; every refusal's is its problem's
/// ([`Problem::OUTCOMES`]) or, on the Acrobits route, its own.
pub(crate) const ACCEPTED: &str = "accepted";

/// Refusal lines, one per (source, outcome) per second.
static REFUSALS: LazyLock<Throttles> = LazyLock::new(|| Throttles::new(Duration::from_secs(1)));

/// Counts, times and logs a route's outcome, and renders it.
pub(crate) fn respond(
    source: &str,
    started: Instant,
    result: Result<Accepted, Problem>,
) -> Response {
    respond_with(
        source,
        started,
        result.map(|accepted| Json(accepted).into_response()),
    )
}

/// [`respond`] for routes that render their own success response.
pub(crate) fn respond_with(
    source: &str,
    started: Instant,
    result: Result<Response, Problem>,
) -> Response {
    let outcome = match &result {
        Ok(_) => ACCEPTED,
        Err(p) => p.outcome(),
    };
    count(source, started, outcome);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Creates `source`'s series at zero: `relay_ingress_requests_total` for each of `outcomes`,
/// and `relay_ingress_request_seconds`.
pub(crate) fn register(source: &str, outcomes: &[&'static str]) {
    for outcome in outcomes {
        metrics::counter!("relay_ingress_requests_total", "source" => source.to_owned(), "outcome" => *outcome).increment(0);
    }
    // Registering the handle is what creates the series (count 0).
    let _ = metrics::histogram!("relay_ingress_request_seconds", "source" => source.to_owned());
}

/// Counts and times one request of `source`, and logs a refusal now and then (never its
/// content).
pub(crate) fn count(source: &str, started: Instant, outcome: &'static str) {
    metrics::counter!("relay_ingress_requests_total", "source" => source.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("relay_ingress_request_seconds", "source" => source.to_owned())
        .record(started.elapsed().as_secs_f64());
    if outcome != ACCEPTED
        && let Some(suppressed) = REFUSALS.allow(&(source, outcome))
    {
        tracing::info!(source, outcome, suppressed, "request refused");
    }
}

/// The route's one path segment (`{source}`, `{channel}`, `{kind}`), or the problem of a segment
/// that is not valid percent-encoded UTF-8.
pub(crate) fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(segment)| segment).map_err(|_| {
        Problem::MalformedRequest(
            "the path is not valid percent-encoded UTF-8 or lacks a segment".to_owned(),
        )
    })
}

/// The fallback of paths no route matches: 404 problem.
pub(crate) async fn not_found() -> Response {
    respond_with(UNMATCHED, Instant::now(), Err(Problem::NotFound))
}

/// The fallback of routes called with a method they do not take: 405 problem (axum adds
/// `Allow`).
pub(crate) async fn method_not_allowed() -> Response {
    respond_with(UNMATCHED, Instant::now(), Err(Problem::MethodNotAllowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::capture;

    #[test]
    fn a_flood_of_refusals_logs_one_line_per_kind_not_one_per_request() {
        let (lines, guard) = capture();
        for _ in 0..1_000 {
            count("flood-test", Instant::now(), "bad_signature");
        }
        count("flood-test", Instant::now(), "malformed");
        count("flood-test-other", Instant::now(), "bad_signature");
        drop(guard);
        let refused = lines.containing("request refused");
        assert_eq!(
            refused.len(),
            3,
            "one line per (source, outcome): {refused:#?}"
        );
        assert!(refused[0].contains("flood-test") && refused[0].contains("suppressed=0"));
    }
}
