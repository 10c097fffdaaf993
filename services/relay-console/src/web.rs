//! What every page shares: the page chrome (user, CSRF token, navigation), rendering a
//! template into a response, and the error page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// What the layout needs of every page.
pub(crate) struct Chrome {
    /// The signed-in user.
    pub(crate) user: String,
    /// The session's CSRF token, for the page's forms (and the sign-out button).
    pub(crate) csrf: String,
    /// The navigation entry to highlight.
    pub(crate) active: &'static str,
}

impl Chrome {
    pub(crate) fn new(authed: &crate::session::Authed, active: &'static str) -> Self {
        Self {
            user: authed.user.clone(),
            csrf: authed.csrf.clone(),
            active,
        }
    }

    /// The navigation entries: (path, label, whether it is this page).
    pub(crate) fn nav(&self) -> Vec<(&'static str, &'static str, bool)> {
        NAV.iter()
            .map(|(href, label)| (*href, *label, *href == self.active))
            .collect()
    }
}

/// The navigation: (path, label).
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/calls", "Calls"),
    ("/deliveries", "Deliveries"),
    ("/parked", "Parked"),
    ("/destinations", "Destinations"),
    ("/alerts", "Alerts"),
];

/// Renders `page`, or the error page if the template fails.
pub(crate) fn render(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "console: a page did not render");
            Problem::internal("the page could not be rendered").into_response()
        }
    }
}

/// An error page with its status.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    title: &'a str,
    detail: &'a str,
}

impl Problem {
    /// 403: a form without its CSRF token.
    pub(crate) fn csrf() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "Refused: CSRF token missing or wrong",
            detail: "This form was not sent from the console page you were shown, so nothing was done. Reload the page and try again.".into(),
        }
    }

    /// 404.
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
        }
    }

    /// 400.
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            detail: detail.into(),
        }
    }

    /// 503: a backing service is down.
    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Unavailable",
            detail: detail.into(),
        }
    }

    /// 500.
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Error",
            detail: detail.into(),
        }
    }

    /// Redis could not answer `what`.
    pub(crate) fn store(what: &str, error: &relay_store::StoreError) -> Self {
        Self::unavailable(format!("{what}: Redis did not answer ({error})."))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let page = ProblemPage {
            title: self.title,
            detail: &self.detail,
        };
        let html = page.render().unwrap_or_else(|_| self.detail.clone());
        (self.status, Html(html)).into_response()
    }
}

/// Percent-encodes `text` for a query string value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A time in RFC 3339, shortened for a table (`2026-12-04 18:33:49`).
pub(crate) fn short_time(rfc3339: &str) -> String {
    let text = rfc3339.replacen('T', " ", 1);
    match text.find(['.', 'Z', '+']) {
        Some(end) if end > 10 => text[..end].to_owned(),
        _ => text,
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub(crate) fn millis_of(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_and_times_shortened() {
        assert_eq!(encode("/calls?q=+1 555"), "/calls%3Fq%3D%2B1%20555");
        assert_eq!(
            short_time("2026-12-04T18:33:49.123Z"),
            "2026-12-04 18:33:49"
        );
        assert_eq!(
            short_time("2026-12-04T18:33:49+01:00"),
            "2026-12-04 18:33:49"
        );
        assert_eq!(millis_of("1970-01-01T00:00:01Z"), Some(1000));
    }
}
