//! `GET`/`POST /v1/acrobits/web-callback`: the Acrobits softphone's web callback.
//!
//! The app sends the number to call and the number to call back (plus whatever the account's
//! template adds: user name, password) as a query string, a form body or a JSON body, with
//! parameter names from its provisioning template (configurable). Success is any 2xx; a failure
//! is non-2xx with a `message` the app shows, in the response format the app reads (JSON, XML or
//! form, from the request's `Accept` or `Content-Type`): 400 invalid number, 401 bad
//! credentials, 403 destination not allowed, 429 rate-limited, 503 broker down. An accepted
//! request becomes one `acrobits.web_callback` event, without the password.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use relay_core::config::{AcrobitsSource, EnvSecret, PasswordScheme};
use relay_core::{CloudEvent, ids, phone};
use relay_signing::password;
use serde_json::{Map, Value};

use crate::problem::Problem;
use crate::{Outgoing, Shared, publish_all, read_body};

/// Routing-key source and dedup namespace.
pub const SOURCE: &str = "acrobits";

/// The configured route.
pub(crate) struct AcrobitsRoute {
    config: AcrobitsSource,
    accounts: HashMap<String, (Option<EnvSecret>, Option<EnvSecret>)>,
}

impl AcrobitsRoute {
    /// The route; an account whose argon2 hash does not parse refuses start-up.
    pub(crate) fn new(config: &AcrobitsSource) -> Result<Self, relay_core::config::ConfigError> {
        for (i, account) in config.accounts.iter().enumerate() {
            if config.password_scheme == PasswordScheme::Plain
                && !account
                    .password_hash_env
                    .as_ref()
                    .and_then(EnvSecret::value)
                    .is_some_and(password::is_argon2_phc)
            {
                return Err(relay_core::config::ConfigError::Invalid {
                    field: format!("ingress.acrobits.accounts[{i}].password_hash_env"),
                    message: "not an argon2 PHC string (make one with relayctl hash-password)"
                        .to_owned(),
                });
            }
        }
        let accounts = config
            .accounts
            .iter()
            .map(|a| {
                (
                    a.username.clone(),
                    (a.password_hash_env.clone(), a.password_env.clone()),
                )
            })
            .collect();
        Ok(Self {
            config: config.clone(),
            accounts,
        })
    }
}

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

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A reply with `message` (and, on failure, the stable problem `type`) in `format`.
fn reply(format: Format, status: StatusCode, ty: Option<&str>, message: &str) -> Response {
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

/// A refusal the app shows to its user.
struct Refusal {
    status: StatusCode,
    ty: &'static str,
    message: String,
    retry_after: Option<u64>,
    outcome: &'static str,
}

impl Refusal {
    fn new(
        status: StatusCode,
        ty: &'static str,
        outcome: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            ty,
            message: message.into(),
            retry_after: None,
            outcome,
        }
    }

    fn from_problem(problem: Problem) -> Self {
        let outcome = problem.outcome();
        match problem {
            Problem::BrokerUnavailable { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    crate::problem::types::BROKER_UNAVAILABLE,
                    outcome,
                    "The service is busy, please try again shortly.",
                )
            },
            Problem::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::problem::types::PAYLOAD_TOO_LARGE,
                outcome,
                "The request is too large.",
            ),
            Problem::UnknownSource => Self::new(
                StatusCode::NOT_FOUND,
                crate::problem::types::UNKNOWN_SOURCE,
                outcome,
                "Web callback is not available.",
            ),
            Problem::UnsupportedMediaType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::problem::types::UNSUPPORTED_MEDIA_TYPE,
                outcome,
                "Send the request as a query string, a form or JSON.",
            ),
            other => Self::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                outcome,
                match other {
                    Problem::Malformed(detail) => detail,
                    _ => "The request could not be read.".to_owned(),
                },
            ),
        }
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
    /// 429: too many requests for this account.
    pub const RATE_LIMITED: &str = "urn:relay:problem:rate-limited";
}

/// The request's parameters: query, then a form or JSON body (numbers become text).
fn parameters(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.contains("json") {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                "malformed",
                format!("The request body is not JSON: {e}"),
            )
        })?;
        let object = value.as_object().ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                crate::problem::types::MALFORMED_BODY,
                "malformed",
                "The request body must be a JSON object.",
            )
        })?;
        for (k, v) in object {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            params.push((k.clone(), text));
        }
    } else {
        // The app's default is form encoding, also when it sends no Content-Type.
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(params)
}

fn first<'a>(params: &'a [(String, String)], names: &[String]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
        .filter(|v| !v.is_empty())
}

/// Handles one web-callback request; returns the response and its metrics outcome.
pub(crate) async fn handle(
    app: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> (Response, &'static str) {
    let format = negotiate(headers);
    match process(app, uri, headers, body).await {
        Ok(()) => (
            reply(
                format,
                StatusCode::OK,
                None,
                "Calling you back, please wait.",
            ),
            "accepted",
        ),
        Err(refusal) => {
            let mut response = reply(format, refusal.status, Some(refusal.ty), &refusal.message);
            if let Some(secs) = refusal.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            (response, refusal.outcome)
        }
    }
}

async fn process(app: &Shared, uri: &Uri, headers: &HeaderMap, body: Body) -> Result<(), Refusal> {
    let route = app
        .acrobits
        .as_ref()
        .ok_or_else(|| Refusal::from_problem(Problem::UnknownSource))?;
    let config = &route.config;
    crate::require_json_or_form(headers).map_err(Refusal::from_problem)?;
    let bytes = read_body(body, app.body_limit)
        .await
        .map_err(Refusal::from_problem)?;
    let params = parameters(uri, headers, &bytes)?;

    // Credentials first: an unauthenticated caller learns nothing about numbers or limits, and
    // an unknown user and a wrong password get the same answer.
    let bad_credentials = || {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            types::BAD_CREDENTIALS,
            "bad_credentials",
            "Wrong user name or password.",
        )
    };
    let username = first(&params, &config.username_params)
        .ok_or_else(bad_credentials)?
        .to_owned();
    let given = first(&params, &config.password_params)
        .ok_or_else(bad_credentials)?
        .to_owned();
    let (hash, plain) = route.accounts.get(&username).ok_or_else(bad_credentials)?;
    let verified = match config.password_scheme {
        PasswordScheme::Plain => {
            let phc = hash
                .as_ref()
                .and_then(EnvSecret::value)
                .unwrap_or_default()
                .to_owned();
            // argon2 is deliberately slow: keep it off the request threads.
            tokio::task::spawn_blocking(move || password::verify_argon2(&phc, &given).is_ok())
                .await
                .unwrap_or(false)
        }
        PasswordScheme::SaltedSha1 => {
            let nonce = first(&params, &config.nonce_params).unwrap_or_default();
            let secret = plain
                .as_ref()
                .and_then(EnvSecret::value)
                .unwrap_or_default();
            password::verify_salted_sha1(&config.sha1_template, nonce, secret, &given).is_ok()
        }
    };
    if !verified {
        return Err(bad_credentials());
    }

    let number = |names: &[String], what: &str| {
        first(&params, names)
            .and_then(phone::normalize_e164)
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    types::INVALID_NUMBER,
                    "invalid_number",
                    format!("The {what} is not a valid international number."),
                )
            })
    };
    let target = number(&config.target_params, "number to call")?;
    let callback = number(&config.callback_params, "callback number")?;
    // Both legs are originated and paid for: both must be allowed destinations.
    let allowed = |n: &str| {
        config.allowed_prefixes.is_empty()
            || config
                .allowed_prefixes
                .iter()
                .any(|p| n.starts_with(p.as_str()))
    };
    if !allowed(&target) || !allowed(&callback) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            types::DESTINATION_NOT_ALLOWED,
            "destination_not_allowed",
            "Calls to this destination are not allowed.",
        ));
    }
    if config.rate_limit_per_minute > 0 {
        match app
            .store
            .hit_rate(&format!("{SOURCE}:{username}"), Duration::from_secs(60))
            .await
        {
            Ok(hits) if hits > u64::from(config.rate_limit_per_minute) => {
                return Err(Refusal {
                    retry_after: Some(60),
                    ..Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        types::RATE_LIMITED,
                        "rate_limited",
                        "Too many callback requests, please wait a minute.",
                    )
                });
            }
            Ok(_) => {}
            // Redis is an accelerator (invariant 2): without it the limit is not enforced.
            Err(error) => tracing::warn!(%error, "rate limit unavailable; accepting"),
        }
    }

    let mut data = Map::new();
    data.insert("username".into(), Value::String(username.clone()));
    data.insert("target".into(), Value::String(target));
    data.insert("callback".into(), Value::String(callback));
    let secret_names: Vec<&String> = config
        .password_params
        .iter()
        .chain(&config.nonce_params)
        .collect();
    let mut extra = Map::new();
    for (k, v) in &params {
        let known = config
            .username_params
            .iter()
            .chain(&config.target_params)
            .chain(&config.callback_params)
            .any(|n| n == k);
        if !known && !secret_names.contains(&k) {
            extra.insert(k.clone(), Value::String(v.clone()));
        }
    }
    data.insert("params".into(), Value::Object(extra));
    let event = CloudEvent::new(
        ids::new_event_id(),
        format!("acrobits/{username}"),
        "com.acrobits.web_callback".to_owned(),
        Value::Object(data),
    )
    .with_subject(username);
    let outgoing = Outgoing {
        routing_key: format!("{SOURCE}.web_callback"),
        event,
        dedup_key: None,
    };
    publish_all(app, SOURCE, vec![outgoing])
        .await
        .map(|_| ())
        .map_err(Refusal::from_problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
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

    proptest::proptest! {
        #[test]
        fn parameters_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            json in proptest::prelude::any::<bool>(),
            query in "[a-zA-Z0-9=&%+]{0,60}",
        ) {
            let uri: Uri = format!("/v1/acrobits/web-callback?{query}").parse().unwrap();
            let ct = if json { "application/json" } else { "application/x-www-form-urlencoded" };
            let _ = parameters(&uri, &headers(&[(header::CONTENT_TYPE, ct)]), &body);
        }
    }
}
