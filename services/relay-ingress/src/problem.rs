//! RFC 9457 problem details: every refusal is `application/problem+json` with a stable `type`.
//!
//! The `type` URIs are an interface: clients and alerts match on them. `detail` explains the
//! instance and never contains a secret or an expected signature.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Stable problem type URIs.
pub mod types {
    /// A signature, hash or credential does not verify (401).
    pub const BAD_SIGNATURE: &str = "urn:relay:problem:bad-signature";
    /// The body does not parse or lacks required fields (400).
    pub const MALFORMED_BODY: &str = "urn:relay:problem:malformed-body";
    /// The body is larger than the configured limit (413).
    pub const PAYLOAD_TOO_LARGE: &str = "urn:relay:problem:payload-too-large";
    /// The request's media type is not one this route reads (415).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "urn:relay:problem:unsupported-media-type";
    /// The broker did not take the events; retry later (503).
    pub const BROKER_UNAVAILABLE: &str = "urn:relay:problem:broker-unavailable";
    /// No such route (404).
    pub const NOT_FOUND: &str = "urn:relay:problem:not-found";
    /// No source of that name is configured (404).
    pub const UNKNOWN_SOURCE: &str = "urn:relay:problem:unknown-source";
    /// The signed timestamp is outside the accepted window (401).
    pub const STALE_TIMESTAMP: &str = "urn:relay:problem:stale-timestamp";
    /// The route exists but not with this method (405).
    pub const METHOD_NOT_ALLOWED: &str = "urn:relay:problem:method-not-allowed";
}

/// A refusal, rendered as problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// 401.
    BadSignature(String),
    /// 400.
    Malformed(String),
    /// 413.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415.
    UnsupportedMediaType(String),
    /// 503 with `Retry-After`.
    BrokerUnavailable {
        /// Seconds the provider should wait.
        retry_after_secs: u64,
    },
    /// 404.
    NotFound,
    /// 404: no such configured source.
    UnknownSource,
    /// 401: the signed timestamp is too far from now.
    StaleTimestamp,
    /// 405.
    MethodNotAllowed,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
}

impl Problem {
    /// The metrics outcome label of this refusal.
    pub fn outcome(&self) -> &'static str {
        match self {
            Problem::BadSignature(_) => "bad_signature",
            Problem::Malformed(_) => "malformed",
            Problem::TooLarge { .. } => "too_large",
            Problem::UnsupportedMediaType(_) => "unsupported_media_type",
            Problem::BrokerUnavailable { .. } => "broker_unavailable",
            Problem::NotFound => "not_found",
            Problem::UnknownSource => "unknown_source",
            Problem::StaleTimestamp => "stale_timestamp",
            Problem::MethodNotAllowed => "method_not_allowed",
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            Problem::BadSignature(d) => (
                StatusCode::UNAUTHORIZED,
                types::BAD_SIGNATURE,
                "Signature does not verify",
                d.clone(),
            ),
            Problem::Malformed(d) => (
                StatusCode::BAD_REQUEST,
                types::MALFORMED_BODY,
                "Malformed request body",
                d.clone(),
            ),
            Problem::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                types::PAYLOAD_TOO_LARGE,
                "Request body too large",
                format!("the body exceeds the limit of {limit} bytes"),
            ),
            Problem::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                types::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                d.clone(),
            ),
            Problem::BrokerUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                types::BROKER_UNAVAILABLE,
                "Event store unavailable",
                "the events were not stored; retry after the indicated delay".to_owned(),
            ),
            Problem::NotFound => (
                StatusCode::NOT_FOUND,
                types::NOT_FOUND,
                "Not found",
                "no such route".to_owned(),
            ),
            Problem::UnknownSource => (
                StatusCode::NOT_FOUND,
                types::UNKNOWN_SOURCE,
                "Unknown source",
                "no source of that name is configured".to_owned(),
            ),
            Problem::StaleTimestamp => (
                StatusCode::UNAUTHORIZED,
                types::STALE_TIMESTAMP,
                "Stale timestamp",
                "the signed timestamp is outside the accepted window".to_owned(),
            ),
            Problem::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                types::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this route does not accept that method".to_owned(),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, ty, title, detail) = self.parts();
        let body = serde_json::to_vec(&Body {
            ty,
            title,
            status: status.as_u16(),
            detail,
        })
        .unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Problem::BrokerUnavailable { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
