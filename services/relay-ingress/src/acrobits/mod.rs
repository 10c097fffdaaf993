//! `GET`/`POST /v1/acrobits/web-callback`: the Acrobits softphone's web callback.
//!
//! The app sends the number to call and the number to call back (plus whatever the account's
//! template adds: user name, password) as a query string, a form body or a JSON body, with
//! parameter names from its provisioning template (configurable). Success is any 2xx; a failure
//! is non-2xx with a `message` the app shows, in the response format the app reads (JSON, XML or
//! form, from the request's `Accept` or `Content-Type`): 400 invalid number, 401 bad
//! credentials, 403 destination not allowed, 429 rate-limited or locked out (with
//! `Retry-After`), 503 busy, broker down or Redis unavailable. The refusals of the HTTP layer
//! on this route (405 another method, 408 a body too slow, 413, 415) answer in that format
//! too, each with its `Content-Type`. An accepted request becomes one `acrobits.web_callback`
//! event, without the password.
//!
//! The order of the checks is the defence: what refuses cheaply comes first (an unreadable
//! request, missing parameters, Redis unavailable, a locked-out name or address), then the
//! password check (`login`: bounded, the same cost for every name), then the toll-fraud guard
//! of the authenticated request (`guard`: numbers, repeats, limits). Every refusal is counted
//! in `relay_ingress_callbacks_refused_total{reason}`. Callbacks cost money, so unlike every
//! other route this one fails closed without Redis (503 "Callback service temporarily
//! unavailable").

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use relay_core::config::AcrobitsSource;
use relay_core::{CloudEvent, ids};
use relay_store::{Admission, Limit};
use serde_json::{Map, Value};

mod guard;
mod login;
pub mod params;
mod reply;

pub use login::SCHEMES;
use params::{first, parameters};
pub use reply::types;
pub use reply::{OUTCOMES, REASONS};
use reply::{Refusal, negotiate, reply};

use crate::problem::Problem;
use crate::publish::redis_failed;
use crate::{Outgoing, Shared, publish_all, read_body};

/// Routing-key source, dedup namespace and `source` label.
pub const SOURCE: &str = "acrobits";

/// Creates the route's own series at zero: its refusals' reasons and its password checks'
/// schemes (its requests and events are registered with every source's).
pub(crate) fn register_metrics() {
    reply::register_metrics();
    login::register_metrics();
}

/// The longest password (or salted digest) checked; a longer one is refused unhashed.
const MAX_PASSWORD_BYTES: usize = 1024;

/// The configured route.
pub(crate) struct AcrobitsRoute {
    config: AcrobitsSource,
    accounts: login::Accounts,
}

impl AcrobitsRoute {
    /// The route; an account whose argon2 hash does not parse refuses start-up.
    pub(crate) fn new(config: &AcrobitsSource) -> Result<Self, relay_core::config::ConfigError> {
        Ok(Self {
            config: config.clone(),
            accounts: login::Accounts::new(config)?,
        })
    }
}

/// Handles one web-callback request from `peer` (the connection's address, when there is a
/// connection); returns the response and its metrics outcome.
pub(crate) async fn handle(
    app: &Shared,
    peer: Option<SocketAddr>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> (Response, &'static str) {
    let format = negotiate(headers);
    match process(app, peer, uri, headers, body).await {
        Ok(()) => (
            reply(
                format,
                StatusCode::OK,
                None,
                "Calling you back, please wait.",
            ),
            crate::respond::ACCEPTED,
        ),
        Err(refusal) => {
            refusal.count();
            (refusal.render(format), refusal.outcome)
        }
    }
}

/// A refusal of the HTTP layer on this route (another method, say), in the app's format rather
/// than as problem+json; returns the response and its metrics outcome.
pub(crate) fn refuse(headers: &HeaderMap, problem: Problem) -> (Response, &'static str) {
    let refusal = Refusal::from_problem(problem);
    refusal.count();
    (refusal.render(negotiate(headers)), refusal.outcome)
}

fn bad_credentials() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        types::BAD_CREDENTIALS,
        "bad_credentials",
        "Wrong user name or password.",
    )
}

/// 503 while Redis cannot count callbacks: they fail closed.
fn unavailable(app: &Shared) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        types::CALLBACK_UNAVAILABLE,
        "store_unavailable",
        "Callback service temporarily unavailable",
    )
    .retry_after(std::time::Duration::from_secs(app.retry_after_secs))
}

fn busy() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        types::BUSY,
        "busy",
        "The service is busy, please try again shortly.",
    )
    .retry_after(std::time::Duration::from_secs(1))
}

fn locked(lock: login::Lock, retry_after: std::time::Duration) -> Refusal {
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        types::LOGIN_LOCKED,
        "locked_out",
        "Too many failed sign-in attempts, please try again later.",
    )
    .because(match lock {
        login::Lock::User => "locked_out_user",
        login::Lock::Address => "locked_out_address",
    })
    .retry_after(retry_after)
}

/// A Redis failure on this route: logged when Redis answered with an error (an outage is the
/// breaker's to log), and the callback refused.
fn store_failed(app: &Shared, op: &'static str, error: &relay_store::StoreError) -> Refusal {
    redis_failed(op, error);
    unavailable(app)
}

async fn process(
    app: &Shared,
    peer: Option<SocketAddr>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), Refusal> {
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

    // Cheap refusals first: none of these hashes a password. Credentials come before numbers,
    // so an unauthenticated caller learns nothing about the numbers' policy or the limits, and
    // an unknown user and a wrong password get the same answer.
    let username = first(&params, &config.username_params)
        .filter(|u| u.len() <= AcrobitsSource::MAX_USERNAME_BYTES)
        .ok_or_else(bad_credentials)?;
    let given = first(&params, &config.password_params)
        .filter(|p| p.len() <= MAX_PASSWORD_BYTES)
        .ok_or_else(bad_credentials)?;
    let nonce = first(&params, &config.nonce_params).unwrap_or_default();
    let target = first(&params, &config.target_params);
    let callback = first(&params, &config.callback_params);
    if target.is_none() || callback.is_none() {
        let what = if target.is_none() {
            "number to call"
        } else {
            "callback number"
        };
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_NUMBER,
            "invalid_number",
            format!("The {what} is missing."),
        ));
    }
    // Callbacks cost money: without Redis to count them they are refused (docs/ARCHITECTURE.md, the one
    // exception to invariant 2), and at once while the breaker is open.
    if app.store.is_unavailable() {
        return Err(unavailable(app));
    }

    // The attempt is counted before the password is checked: concurrent guesses cannot slip
    // past the count, and a locked-out request costs no hash.
    let gate = login::gate(config, username, login::client_key(peer).as_deref());
    let gate_limits: Vec<Limit> = gate.iter().map(|(limit, _)| limit.clone()).collect();
    match app.store.admit(&gate_limits, "").await {
        Ok(Admission::Admitted) => {}
        Ok(Admission::Refused { index, retry_after }) => {
            return Err(locked(gate[index].1, retry_after));
        }
        Err(error) => return Err(store_failed(app, "login_gate", &error)),
    }
    let verified = match route.accounts.authenticate(username, given, nonce).await {
        Ok(verified) => verified,
        Err(login::Busy) => {
            // No password was checked: the attempt does not count.
            if let Err(error) = app.store.refund(&gate_limits, "").await {
                redis_failed("login_refund", &error);
            }
            return Err(busy());
        }
    };
    if !verified {
        return Err(bad_credentials());
    }
    // A success forgives the name's failures, and does not count against the address.
    let (user, address): (Vec<_>, Vec<_>) = gate
        .into_iter()
        .partition(|(_, lock)| *lock == login::Lock::User);
    let user: Vec<Limit> = user.into_iter().map(|(limit, _)| limit).collect();
    let address: Vec<Limit> = address.into_iter().map(|(limit, _)| limit).collect();
    if let Err(error) = app.store.reset(&user).await {
        redis_failed("login_reset", &error);
    }
    if let Err(error) = app.store.refund(&address, "").await {
        redis_failed("login_refund", &error);
    }

    // Authenticated: from here the call log hears of a refusal.
    let (target, callback) = match guard::numbers(config, target, callback) {
        Ok(numbers) => numbers,
        Err(refusal) => {
            report_refusal(app, username, &params, &refusal).await;
            return Err(refusal);
        }
    };

    // A repeat of an accepted request is answered as the first one was, and publishes nothing.
    let repeat = guard::Repeat::new(username, &callback, &target, config.duplicate_window);
    let (pending, pending_ttl) = repeat.pending(config.duplicate_window);
    match app.store.claim(&repeat.key, &pending, pending_ttl).await {
        Ok(None) => {}
        Ok(Some(held)) => {
            return match guard::Repeat::read(&held) {
                guard::Claimed::Done => {
                    metrics::counter!("relay_ingress_duplicates_total", "source" => SOURCE)
                        .increment(1);
                    Ok(())
                }
                guard::Claimed::Pending => Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    types::IN_PROGRESS,
                    "in_progress",
                    "Your callback request is being processed, please wait.",
                )
                .retry_after(std::time::Duration::from_secs(1))),
            };
        }
        Err(error) => return Err(store_failed(app, "callback_claim", &error)),
    }
    // Every refusal below gives the claim up, so that a retry is processed in full.
    let release = || async {
        if let Err(error) = app.store.release_claim(&repeat.key).await {
            redis_failed("callback_release", &error);
        }
    };

    let limits = guard::limits(config, username, &target);
    let limit_list: Vec<Limit> = limits.iter().map(|(limit, _)| limit.clone()).collect();
    match app.store.admit(&limit_list, &repeat.event_id).await {
        Ok(Admission::Admitted) => {}
        Ok(Admission::Refused { index, retry_after }) => {
            release().await;
            let (limit, scope) = &limits[index];
            let refusal = scope.refusal(retry_after);
            // Only the first refusal of a window reaches the call log: a user hammering the
            // button must not flood the helpdesk.
            let told = format!("rate:{}:told", limit.name);
            if matches!(app.store.claim(&told, "1", retry_after).await, Ok(None)) {
                report_refusal(app, username, &params, &refusal).await;
            }
            return Err(refusal);
        }
        Err(error) => {
            release().await;
            return Err(store_failed(app, "callback_limits", &error));
        }
    }

    // The session id both legs will carry, and under which the call log threads every message
    // of the call; like the event id, the same for a repeat within the window.
    let session_id = format!("callback:{}", repeat.event_id);
    let mut data = Map::new();
    data.insert("username".into(), Value::String(username.to_owned()));
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
        repeat.event_id.clone(),
        format!("acrobits/{username}"),
        "com.acrobits.web_callback".to_owned(),
        Value::Object(data),
    )
    .with_subject(username.to_owned());
    let outgoing = Outgoing {
        routing_key: format!("{SOURCE}.web_callback"),
        event,
        dedup_key: None,
    };
    match publish_all(app, SOURCE, vec![outgoing]).await {
        Ok(_) => {
            if let Err(error) = app
                .store
                .update_claim(&repeat.key, &repeat.done(), config.duplicate_window)
                .await
            {
                redis_failed("callback_claim", &error);
            }
            Ok(())
        }
        Err(problem) => {
            // Not accepted: it counts against no limit and leaves no mark (invariant 1).
            if let Err(error) = app.store.refund(&limit_list, &repeat.event_id).await {
                redis_failed("callback_refund", &error);
            }
            release().await;
            Err(Refusal::from_problem(problem))
        }
    }
}

/// Tells the call log that an authenticated user's callback was refused. Best effort: the app
/// gets its refusal whether or not the broker takes the report.
async fn report_refusal(
    app: &Shared,
    username: &str,
    params: &[(String, String)],
    refusal: &Refusal,
) {
    // A refused request has no session yet: the report opens one of its own.
    let session_id = format!("callback:{}", ids::new_event_id());
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
    data.insert("session_id".into(), Value::String(session_id));
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
