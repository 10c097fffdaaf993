//! Delivery's own admin routes, served on its admin port beside `/livez`, `/readyz` and
//! `/metrics` (never on a public one): `GET /v1/deliveries/{id}`, what delivery recorded of a
//! job, with every attempt ([`relay_store::DeliveryRecord`] as JSON).
//!
//! Refusals are RFC 9457 `application/problem+json` with a stable `type`, the shape the rest of
//! the relay answers with: an unknown job is `urn:relay:problem:unknown-delivery` (404), an id
//! that cannot be a job's is `urn:relay:problem:malformed-request` (400), Redis away is
//! `urn:relay:problem:store-unavailable` (503).

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relay_store::Store;

/// Longest job id looked up, in bytes. The relay's own ids are UUIDs (36); anything much longer
/// is not a job id, and is refused before it reaches Redis.
const MAX_JOB_ID: usize = 200;

/// Stable problem type URIs of these routes.
pub(crate) mod types {
    /// No record of that job: never attempted, or older than `redis.delivery_record_ttl` (404).
    pub(crate) const UNKNOWN_DELIVERY: &str = "urn:relay:problem:unknown-delivery";
    /// The id in the path cannot be a job id (400).
    pub(crate) const MALFORMED_REQUEST: &str = "urn:relay:problem:malformed-request";
    /// Redis is unavailable; the records cannot be read now (503).
    pub(crate) const STORE_UNAVAILABLE: &str = "urn:relay:problem:store-unavailable";
    /// The record exists but cannot be read (500).
    pub(crate) const STORE_ERROR: &str = "urn:relay:problem:store-error";
}

/// The routes, reading records from `store`.
pub(crate) fn routes(store: Store) -> Router {
    Router::new()
        .route("/v1/deliveries/{id}", get(show))
        .with_state(store)
}

async fn show(State(store): State<Store>, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return problem(
            StatusCode::BAD_REQUEST,
            types::MALFORMED_REQUEST,
            "Malformed request",
            "the job id is not readable text",
        );
    };
    if !is_job_id(&id) {
        return problem(
            StatusCode::BAD_REQUEST,
            types::MALFORMED_REQUEST,
            "Malformed request",
            &format!("a job id is 1 to {MAX_JOB_ID} printable ASCII characters, no spaces"),
        );
    }
    match store.delivery(&id).await {
        Ok(Some(record)) => match serde_json::to_vec(&record) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(_) => store_error(),
        },
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            types::UNKNOWN_DELIVERY,
            "Unknown delivery",
            "no record of this job: never attempted, or older than redis.delivery_record_ttl",
        ),
        Err(error) if error.means_unavailable() => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            types::STORE_UNAVAILABLE,
            "Delivery records unavailable",
            "Redis is unavailable; try again later",
        ),
        Err(error) => {
            tracing::warn!(%error, "a delivery record could not be read");
            store_error()
        }
    }
}

fn store_error() -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        types::STORE_ERROR,
        "Delivery record unreadable",
        "the record of this job could not be read",
    )
}

/// Whether `id` may be a job id: short, printable ASCII, no whitespace (so it is safe to put
/// in a Redis key and a log line).
fn is_job_id(id: &str) -> bool {
    (1..=MAX_JOB_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// An `application/problem+json` answer (RFC 9457).
fn problem(status: StatusCode, ty: &str, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": ty,
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_short_printable_ascii() {
        assert!(is_job_id("0196f8f2-5b7e-5c3a-9d1e-2f0a6b7c8d9e"));
        assert!(is_job_id(&"a".repeat(MAX_JOB_ID)));
        assert!(!is_job_id(""));
        assert!(!is_job_id(&"a".repeat(MAX_JOB_ID + 1)));
        assert!(!is_job_id("a b"));
        assert!(!is_job_id("a\nb"));
        assert!(!is_job_id("é"));
    }

    /// Serves the routes on a loopback port with a store whose Redis is never reachable.
    async fn serve_without_redis() -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
        let stop = tokio_util::sync::CancellationToken::new();
        let config = relay_core::config::RedisConfig {
            url: "redis://127.0.0.1:1".to_owned(),
            ..Default::default()
        };
        let store = Store::start(&config, &relay_telemetry::Readiness::new(), stop.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes(store);
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move { serve.await });
        (addr, stop)
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, serde_json::Value) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        (status, content_type, body)
    }

    #[tokio::test]
    async fn refusals_are_problems_with_a_stable_type() {
        let (addr, stop) = serve_without_redis().await;
        let long = "a".repeat(MAX_JOB_ID + 1);
        for path in [
            format!("/v1/deliveries/{long}"),
            "/v1/deliveries/a%20b".to_owned(),
        ] {
            let (status, content_type, body) = get(addr, &path).await;
            assert_eq!(status, 400, "{path}");
            assert_eq!(content_type, "application/problem+json");
            assert_eq!(body["type"], types::MALFORMED_REQUEST);
            assert_eq!(body["status"], 400);
        }
        // A valid id with Redis away: unavailable, at once (the store skips Redis), not a 404
        // that would say the job is unknown.
        let (status, content_type, body) = get(addr, "/v1/deliveries/job-1").await;
        assert_eq!(status, 503);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["type"], types::STORE_UNAVAILABLE);
        stop.cancel();
    }
}
