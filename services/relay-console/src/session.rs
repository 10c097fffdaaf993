//! Sign-in sessions and CSRF tokens.
//!
//! * The cookie [`COOKIE`] holds a random 256-bit token; Redis keeps the session under the
//!   SHA-256 of it, expiring after `console.session_ttl` without use. The cookie is `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, and `Secure` when `console.secure_cookies` is set.
//! * Each session has its own CSRF token, put in every form as the hidden field [`CSRF_FIELD`]
//!   and compared in constant time on every POST. The sign-in form, before any session, uses a
//!   double-submit cookie ([`LOGIN_COOKIE`]) the same way.
//! * A page asked for without a session redirects to `/login?next=<path>`; a POST without one is
//!   refused (303 to the sign-in page as well, nothing done).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::state::AppState;
use crate::web::Problem;

/// The session cookie.
pub const COOKIE: &str = "relay_console";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "relay_console_login";
/// The hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// A session as Redis keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who signed in.
    pub user: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// When (RFC 3339).
    pub since: String,
}

/// A signed-in request: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The user's name.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The hash of the session's token (its Redis key).
    pub(crate) token_hash: String,
}

impl Authed {
    /// Checks a form's CSRF token; a missing or wrong one is refused with 403 and nothing done.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), Problem> {
        if same(given.unwrap_or_default(), &self.csrf) {
            Ok(())
        } else {
            tracing::warn!(user = %self.user, "console: a form without its CSRF token was refused");
            Err(Problem::csrf())
        }
    }
}

/// Constant-time comparison of two tokens (an empty one never matches).
pub(crate) fn same(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A fresh random token (256 bits, URL-safe base64).
pub(crate) fn token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    // getrandom fails only where the OS has no random source at all; a token of zeros would
    // then be guessable, so refuse to go on.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The Redis key part for a cookie token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` header value.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Why a request has no session.
pub enum NoSession {
    /// Go and sign in (then come back to `next`).
    SignIn(String),
    /// Redis cannot be read: sessions cannot be checked.
    Unavailable,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn(next) => {
                let target = if next.starts_with('/') && !next.starts_with("//") && next != "/" {
                    format!("/login?next={}", crate::web::encode(&next))
                } else {
                    "/login".to_owned()
                };
                Redirect::to(&target).into_response()
            }
            NoSession::Unavailable => Problem::unavailable(
                "Redis cannot be reached, so sessions cannot be checked. The console needs Redis; the relay keeps accepting callbacks without it.",
            )
            .into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let Some(token) = cookie(&parts.headers, COOKIE).filter(|t| !t.is_empty() && t.len() <= 64)
        else {
            return Err(NoSession::SignIn(next));
        };
        let hash = token_hash(token);
        let ttl = state.config().console.session_ttl;
        match state.store().console_session(&hash, ttl).await {
            Ok(Some(json)) => match serde_json::from_str::<SessionRecord>(&json) {
                Ok(record) => Ok(Authed {
                    user: record.user,
                    csrf: record.csrf,
                    token_hash: hash,
                }),
                Err(_) => Err(NoSession::SignIn(next)),
            },
            Ok(None) => Err(NoSession::SignIn(next)),
            Err(_) => Err(NoSession::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; relay_console=tok; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_when_asked() {
        let plain = set_cookie(COOKIE, "t", Some(60), false);
        assert_eq!(
            plain,
            "relay_console=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let secure = set_cookie(COOKIE, "t", None, true);
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same(&a, &a));
        assert!(!same(&a[..42], &a));
        assert!(!same("", ""));
    }
}
