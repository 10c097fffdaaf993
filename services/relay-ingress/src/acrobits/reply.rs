//! What the app reads back: a `message` (and on failure the stable problem `type`) in the
//! format it asked for (JSON, XML or form).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::problem::Problem;

/// The response format the app will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
    Form,
}

/// `Accept` first, then the request's own `Content-Type`, then JSON.
pub(crate) fn negotiate(headers: &HeaderMap) -> Format {
    let read = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    for text in [read(header::ACCEPT), read(header::CONTENT_TYPE)] {
        if text.contains("json") {
            return Format::Json;
        }
        if text.contains("xml") {
            return Format::Xml;
        }
        if text.contains("x-www-form-urlencoded") {
            return Format::Form;
        }
    }
    Format::Json
}

pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A reply with `message` (and, on failure, the stable problem `type`) in `format`.
pub(super) fn reply(
    format: Format,
    status: StatusCode,
    ty: Option<&str>,
    message: &str,
) -> Response {
    let (content_type, body) = match format {
        Format::Json => {
            let mut object = Map::new();
            object.insert("message".into(), Value::String(message.to_owned()));
            if let Some(ty) = ty {
                object.insert("type".into(), Value::String(ty.to_owned()));
            }
            ("application/json", Value::Object(object).to_string())
        }
        Format::Xml => (
            "application/xml",
            format!("<message>{}</message>", xml_escape(message)),
        ),
        Format::Form => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("message", message);
            if let Some(ty) = ty {
                form.append_pair("type", ty);
            }
            ("application/x-www-form-urlencoded", form.finish())
        }
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Every `outcome` of a refusal on this route besides its problems' ([`Problem::OUTCOMES`]), in
/// `relay_ingress_requests_total`.
pub const OUTCOMES: &[&str] = &[
    "bad_credentials",
    "store_unavailable",
    "busy",
    "locked_out",
    "invalid_number",
    "destination_not_allowed",
    "rate_limited",
    "in_progress",
];

/// Every `reason` of `relay_ingress_callbacks_refused_total` besides the problems'
/// ([`Problem::OUTCOMES`]): an outcome, or the finer reason of a lockout, a number refused by
/// the policy or a limit reached.
pub const REASONS: &[&str] = &[
    "bad_credentials",
    "store_unavailable",
    "busy",
    "locked_out_user",
    "locked_out_address",
    "invalid_number",
    "destination_not_allowed",
    "destination_denied",
    "account_per_minute",
    "account_per_day",
    "target_per_minute",
    "target_per_day",
    "global_per_minute",
    "global_per_day",
    "account_in_progress",
    "in_progress",
];

/// Creates the series of `relay_ingress_callbacks_refused_total` at zero, one per reason.
pub(super) fn register_metrics() {
    for reason in REASONS.iter().chain(Problem::OUTCOMES) {
        metrics::counter!("relay_ingress_callbacks_refused_total", "reason" => *reason)
            .increment(0);
    }
}

/// A refusal the app shows to its user.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) ty: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
    /// The `outcome` label of `relay_ingress_requests_total`.
    pub(super) outcome: &'static str,
    /// The finer `reason` label of `relay_ingress_callbacks_refused_total` (which limit, which
    /// lockout); the outcome unless set.
    pub(super) reason: &'static str,
}

impl Refusal {
    pub(super) fn new(
        status: StatusCode,
        ty: &'static str,
        outcome: &'static str,
        message: impl Into<String>,
    ) -> Self {
        debug_assert!(
            OUTCOMES.contains(&outcome) || Problem::OUTCOMES.contains(&outcome),
            "add `{outcome}` to acrobits::OUTCOMES"
        );
        Self {
            status,
            ty,
            message: message.into(),
            retry_after: None,
            outcome,
            reason: outcome,
        }
    }

    /// The same refusal with a finer metrics `reason`.
    pub(super) fn because(self, reason: &'static str) -> Self {
        Self { reason, ..self }
    }

    /// The same refusal, telling the app to wait `wait` (whole seconds, at least one).
    pub(super) fn retry_after(self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(secs.max(1)),
            ..self
        }
    }

    /// Counts this refusal in `relay_ingress_callbacks_refused_total{reason}`.
    pub(super) fn count(&self) {
        debug_assert!(
            REASONS.contains(&self.reason) || Problem::OUTCOMES.contains(&self.reason),
            "add `{}` to acrobits::REASONS",
            self.reason
        );
        metrics::counter!("relay_ingress_callbacks_refused_total", "reason" => self.reason)
            .increment(1);
    }

    /// The app's version of a refusal the other routes answer as problem+json: the same
    /// status and `type`, a message meant for the app's user.
    pub(super) fn from_problem(problem: Problem) -> Self {
        let outcome = problem.outcome();
        let (status, ty, _, _) = problem.parts();
        let retry_after = match problem {
            Problem::BrokerUnavailable { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let message = match problem {
            // What does not parse is said as it is: the app shows it to whoever set it up.
            Problem::Malformed(detail) | Problem::MalformedRequest(detail) => detail,
            Problem::BrokerUnavailable { .. } => {
                "The service is busy, please try again shortly.".to_owned()
            }
            Problem::TooLarge { .. } => "The request is too large.".to_owned(),
            Problem::UnknownSource | Problem::NotFound => {
                "Web callback is not available.".to_owned()
            }
            Problem::UnsupportedMediaType(_) => {
                "Send the request as a query string, a form or JSON.".to_owned()
            }
            Problem::MethodNotAllowed => "Send the request with GET or POST.".to_owned(),
            Problem::RequestTimeout => {
                "The request took too long to arrive, please try again.".to_owned()
            }
            Problem::BadSignature(_) | Problem::StaleTimestamp => {
                "Wrong user name or password.".to_owned()
            }
        };
        Self {
            retry_after,
            ..Self::new(status, ty, outcome, message)
        }
    }

    /// The response in the app's `format`, with `Retry-After` when the app should wait, and
    /// `Connection: close` after a body that did not arrive in time.
    pub(super) fn render(&self, format: Format) -> Response {
        let mut response = reply(format, self.status, Some(self.ty), &self.message);
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Stable types of the web-callback refusals.
pub mod types {
    /// 400: a number is not a full international number.
    pub const INVALID_NUMBER: &str = "urn:relay:problem:invalid-number";
    /// 401: unknown user or wrong password.
    pub const BAD_CREDENTIALS: &str = "urn:relay:problem:bad-credentials";
    /// 403: a number is outside the allowed destinations.
    pub const DESTINATION_NOT_ALLOWED: &str = "urn:relay:problem:destination-not-allowed";
    /// 429: a callback limit is reached (account, target number, all accounts, or callbacks
    /// in progress); `Retry-After` says when it admits again.
    pub const RATE_LIMITED: &str = "urn:relay:problem:rate-limited";
    /// 429: too many failed logins for this user name or from this address; `Retry-After`
    /// says when the lockout ends.
    pub const LOGIN_LOCKED: &str = "urn:relay:problem:login-locked";
    /// 503: every password check slot is busy (a flood of logins); retry in a second.
    pub const BUSY: &str = "urn:relay:problem:busy";
    /// 503: Redis, which every callback limit needs, is unavailable: callbacks fail closed.
    pub const CALLBACK_UNAVAILABLE: &str = "urn:relay:problem:callback-unavailable";
    /// 503: the same callback request is being processed right now; retry in a second.
    pub const IN_PROGRESS: &str = "urn:relay:problem:callback-in-progress";
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }
    #[test]
    fn format_follows_accept_then_content_type() {
        assert_eq!(
            negotiate(&headers(&[(header::ACCEPT, "application/xml")])),
            Format::Xml
        );
        assert_eq!(
            negotiate(&headers(&[(header::CONTENT_TYPE, "application/json")])),
            Format::Json
        );
        assert_eq!(
            negotiate(&headers(&[(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded"
            )])),
            Format::Form
        );
        assert_eq!(
            negotiate(&headers(&[
                (header::ACCEPT, "*/*"),
                (header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            ])),
            Format::Form
        );
        assert_eq!(negotiate(&HeaderMap::new()), Format::Json);
    }

    #[test]
    fn xml_messages_are_escaped() {
        assert_eq!(xml_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
