//! RFC 9457 problem details: every refusal is `application/problem+json` with a stable `type`.
//!
//! The `type` URIs are an interface: clients and alerts match on them. `detail` explains the
//! instance and never contains a secret or an expected signature. Refusals of the HTTP layer
//! (no such route, wrong method, an unreadable path segment, a body too large or too slow) are
//! problems too; only hyper's own answers to a request head it cannot parse (400, 414, 431,
//! empty bodies) and the silent close of a connection whose head never completes are not.

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
    /// The request line or a path segment cannot be read (400).
    pub const MALFORMED_REQUEST: &str = "urn:relay:problem:malformed-request";
    /// The body did not arrive within `ingress.body_read_timeout` (408).
    pub const REQUEST_TIMEOUT: &str = "urn:relay:problem:request-timeout";
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
    /// 400: the request (not its body) cannot be read, e.g. a path segment that is not UTF-8.
    MalformedRequest(String),
    /// 408: the body did not arrive in time; the connection is closed after the answer.
    RequestTimeout,
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
    /// Every [`Problem::outcome`], one per variant.
    pub const OUTCOMES: &'static [&'static str] = &[
        "bad_signature",
        "malformed",
        "too_large",
        "unsupported_media_type",
        "broker_unavailable",
        "not_found",
        "unknown_source",
        "stale_timestamp",
        "method_not_allowed",
        "malformed_request",
        "request_timeout",
    ];

    /// The metrics outcome label of this refusal (one of [`Problem::OUTCOMES`]).
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
            Problem::MalformedRequest(_) => "malformed_request",
            Problem::RequestTimeout => "request_timeout",
        }
    }

    /// Status, stable `type`, title and detail of this refusal.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
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
            Problem::MalformedRequest(d) => (
                StatusCode::BAD_REQUEST,
                types::MALFORMED_REQUEST,
                "Malformed request",
                d.clone(),
            ),
            Problem::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                types::REQUEST_TIMEOUT,
                "Request body too slow",
                "the body did not arrive in time".to_owned(),
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
        match self {
            Problem::BrokerUnavailable { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            // RFC 9110, 15.5.9: the rest of the body may still be on its way; close rather than
            // read it as the next request.
            Problem::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::Problem;

    /// One problem of each variant: the match fails to compile when a variant is added.
    fn one_of_each() -> Vec<Problem> {
        let all = vec![
            Problem::BadSignature(String::new()),
            Problem::Malformed(String::new()),
            Problem::TooLarge { limit: 1 },
            Problem::UnsupportedMediaType(String::new()),
            Problem::BrokerUnavailable {
                retry_after_secs: 1,
            },
            Problem::NotFound,
            Problem::UnknownSource,
            Problem::StaleTimestamp,
            Problem::MethodNotAllowed,
            Problem::MalformedRequest(String::new()),
            Problem::RequestTimeout,
        ];
        for problem in &all {
            match problem {
                Problem::BadSignature(_)
                | Problem::Malformed(_)
                | Problem::TooLarge { .. }
                | Problem::UnsupportedMediaType(_)
                | Problem::BrokerUnavailable { .. }
                | Problem::NotFound
                | Problem::UnknownSource
                | Problem::StaleTimestamp
                | Problem::MethodNotAllowed
                | Problem::MalformedRequest(_)
                | Problem::RequestTimeout => {}
            }
        }
        all
    }

    #[test]
    fn the_outcomes_registered_at_start_up_are_every_problems() {
        let outcomes: Vec<&str> = one_of_each().iter().map(Problem::outcome).collect();
        assert_eq!(outcomes, Problem::OUTCOMES);
    }
}
