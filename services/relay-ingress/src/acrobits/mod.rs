//! `GET`/`POST /v1/acrobits/web-callback`: the Acrobits softphone's web callback.
//!
//! The app sends the number to call and the number to call back (plus whatever the account's
//! template adds: user name, password) as a query string, a form body or a JSON body, with
//! parameter names from its provisioning template (configurable). Success is any 2xx; a failure
//! is non-2xx with a `message` the app shows, in the response format the app reads (JSON, XML or
//! form, from the request's `Accept` or `Content-Type`): 400 invalid number, 401 bad
//! credentials, 403 destination not allowed, 429 rate-limited, 503 broker down. The refusals of
//! the HTTP layer on this route (405 another method, 408 a body too slow, 413, 415) answer in
//! that format too, each with its `Content-Type`. An accepted request becomes one
//! `acrobits.web_callback` event, without the password.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use relay_core::config::{AcrobitsSource, EnvSecret, PasswordScheme};
use relay_core::{CloudEvent, ids, phone};
use relay_signing::password;
use serde_json::{Map, Value};

pub mod params;
mod reply;

use params::{first, parameters};
pub use reply::types;
use reply::{Refusal, negotiate, reply};

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
        Err(refusal) => (refusal.render(format), refusal.outcome),
    }
}

/// A refusal of the HTTP layer on this route (another method, say), in the app's format rather
/// than as problem+json; returns the response and its metrics outcome.
pub(crate) fn refuse(headers: &HeaderMap, problem: Problem) -> (Response, &'static str) {
    let refusal = Refusal::from_problem(problem);
    (refusal.render(negotiate(headers)), refusal.outcome)
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

    // One session id for the whole callback: both legs will carry it, and the call log
    // threads every message of the call under it.
    let session_id = format!("callback:{}", ids::new_event_id());
    let (target, callback) = match admit(app, config, &username, &params).await {
        Ok(numbers) => numbers,
        Err((refusal, report)) => {
            if report {
                report_refusal(app, &username, &params, &refusal, &session_id).await;
            }
            return Err(refusal);
        }
    };

    let mut data = Map::new();
    data.insert("username".into(), Value::String(username.clone()));
    data.insert("target".into(), Value::String(target));
    data.insert("callback".into(), Value::String(callback));
    data.insert("session_id".into(), Value::String(session_id));
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

/// A refusal of an authenticated user, and whether the call log should hear of it.
type Refused = (Refusal, bool);

fn reported(refusal: Refusal) -> Refused {
    (refusal, true)
}

/// The toll-fraud checks of an authenticated request: both numbers valid and allowed, the
/// account within its rate. Returns the two numbers in E.164.
async fn admit(
    app: &Shared,
    config: &AcrobitsSource,
    username: &str,
    params: &[(String, String)],
) -> Result<(String, String), Refused> {
    let number = |names: &[String], what: &str| {
        first(params, names)
            .and_then(phone::normalize_e164)
            .ok_or_else(|| {
                reported(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    types::INVALID_NUMBER,
                    "invalid_number",
                    format!("The {what} is not a valid international number."),
                ))
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
        return Err(reported(Refusal::new(
            StatusCode::FORBIDDEN,
            types::DESTINATION_NOT_ALLOWED,
            "destination_not_allowed",
            "Calls to this destination are not allowed.",
        )));
    }
    let limit = u64::from(config.rate_limit_per_minute);
    if limit > 0 {
        match app
            .store
            .hit_rate(&format!("{SOURCE}:{username}"), Duration::from_secs(60))
            .await
        {
            Ok(hits) if hits > limit => {
                let refusal = Refusal {
                    retry_after: Some(60),
                    ..Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        types::RATE_LIMITED,
                        "rate_limited",
                        "Too many callback requests, please wait a minute.",
                    )
                };
                // Only the first refusal of a window reaches the call log: a user hammering
                // the button must not flood the helpdesk.
                return Err((refusal, hits == limit + 1));
            }
            Ok(_) => {}
            // Redis is an accelerator (invariant 2): without it the limit is not enforced.
            Err(error) => crate::publish::redis_failed("hit_rate", &error),
        }
    }
    Ok((target, callback))
}

/// Tells the call log that an authenticated user's callback was refused. Best effort: the app
/// gets its refusal whether or not the broker takes the report.
async fn report_refusal(
    app: &Shared,
    username: &str,
    params: &[(String, String)],
    refusal: &Refusal,
    session_id: &str,
) {
    let config = app.acrobits.as_ref().map(|r| &r.config);
    let raw = |names: Option<&Vec<String>>| {
        names
            .and_then(|n| first(params, n))
            .map(|v| Value::String(v.chars().take(64).collect()))
            .unwrap_or(Value::Null)
    };
    let mut data = Map::new();
    data.insert("username".into(), Value::String(username.to_owned()));
    data.insert("target".into(), raw(config.map(|c| &c.target_params)));
    data.insert("callback".into(), raw(config.map(|c| &c.callback_params)));
    data.insert("reason".into(), Value::String(refusal.outcome.to_owned()));
    data.insert("message".into(), Value::String(refusal.message.clone()));
    data.insert("session_id".into(), Value::String(session_id.to_owned()));
    let event = CloudEvent::new(
        ids::new_event_id(),
        format!("acrobits/{username}"),
        "com.acrobits.web_callback_refused".to_owned(),
        Value::Object(data),
    )
    .with_subject(username);
    let outgoing = Outgoing {
        routing_key: format!("{SOURCE}.web_callback_refused"),
        event,
        dedup_key: None,
    };
    // A failed publish is logged (now and then) and counted by `publish_all` already.
    if let Err(error) = publish_all(app, SOURCE, vec![outgoing]).await {
        tracing::debug!(
            ?error,
            "could not report a refused web callback to the call log"
        );
    }
}
