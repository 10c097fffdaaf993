//! `POST /v1/voximplant/callbacks`: Voximplant account callbacks.
//!
//! The body is `{"callbacks": [AccountCallback, …]}`. Every callback carries
//! `hash = md5(salt + account_id + api_key + callback_id)` and is verified on its own, as the
//! seed's reference receiver does (seed 000, docs/ARCHITECTURE.md invariant 5): the valid ones are
//! published and the answer is 200 once all of them are confirmed; the invalid ones (bad hash,
//! unconfigured account, unparseable) are counted in
//! `relay_ingress_callbacks_rejected_total{source,reason}`, logged without hash or key, and
//! reported as `rejected` in the answer. Refusing the whole request would make Voximplant re-send
//! the valid ones for ever. A request without a single valid callback is refused: 401, or 400
//! when none even parses.
//!
//! Each callback becomes one CloudEvent, routing key `voximplant.<type>`, whose id derives from
//! (account_id, callback_id), so a re-sent callback maps onto the same event downstream. About
//! forty callback types exist and more may come: unknown types and fields are kept, not dropped.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use relay_core::config::EnvSecret;
use relay_core::{CloudEvent, ids, routing};
use relay_telemetry::throttle::Throttles;
use serde_json::{Map, Value};

use crate::problem::Problem;
use crate::request::{read_body, require_json};
use crate::respond::respond;
use crate::{Accepted, AppState, Outgoing, Shared, publish_all};

/// Dedup namespace of this source in Redis, and its `source` label.
pub const SOURCE: &str = "voximplant";

/// One parsed, not yet verified, callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// Account the callback is about.
    pub account_id: u64,
    /// Voximplant's unique sequence number of the callback.
    pub callback_id: u64,
    /// The callback type, e.g. `min_balance`; routing-key safe.
    pub kind: String,
    /// The provided hash.
    pub hash: String,
    /// Every field but `hash`, as received.
    pub data: Map<String, Value>,
}

impl Callback {
    /// The dedup key: `<account_id>:<callback_id>`.
    pub fn dedup_key(&self) -> String {
        format!("{}:{}", self.account_id, self.callback_id)
    }

    /// The event's routing key.
    pub fn routing_key(&self) -> String {
        routing::event_key(SOURCE, &self.kind)
    }

    /// The CloudEvent for this callback.
    pub fn to_event(&self) -> CloudEvent {
        let account = self.account_id.to_string();
        CloudEvent::new(
            ids::derived_event_id(SOURCE, &[&account, &self.callback_id.to_string()]),
            format!("voximplant/account/{account}"),
            format!("com.voximplant.account.{}", self.kind),
            Value::Object(self.data.clone()),
        )
        .with_subject(account)
    }
}

/// Parses the request body, refusing it at the first callback that does not parse. Errors say
/// which callback and which field.
pub fn parse(body: &[u8]) -> Result<Vec<Callback>, Problem> {
    parse_batch(body)?.into_iter().collect()
}

/// Parses the request body into its callbacks, each on its own: the body fails only when it is
/// not an object with a non-empty `callbacks` array; a callback that does not parse is an `Err`
/// in its place, saying which and why.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<Callback, Problem>>, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::Malformed(format!("body is not JSON: {e}")))?;
    let list = value
        .get("callbacks")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Problem::Malformed("expected an object with a `callbacks` array".to_owned())
        })?;
    if list.is_empty() {
        return Err(Problem::Malformed("`callbacks` is empty".to_owned()));
    }
    Ok(list
        .iter()
        .enumerate()
        .map(|(i, item)| parse_one(i, item))
        .collect())
}

fn parse_one(index: usize, item: &Value) -> Result<Callback, Problem> {
    let bad = |what: &str| Problem::Malformed(format!("callbacks[{index}]: {what}"));
    let object = item.as_object().ok_or_else(|| bad("not an object"))?;
    let account_id = id_field(object, "account_id")
        .ok_or_else(|| bad("`account_id` must be a non-negative integer"))?;
    let callback_id = id_field(object, "callback_id")
        .ok_or_else(|| bad("`callback_id` must be a non-negative integer"))?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`type` must be a string"))?;
    if !routing::is_key_word(kind) {
        return Err(bad("`type` must be 1-64 letters, digits, `_` or `-`"));
    }
    let hash = object
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`hash` must be a string"))?;
    let mut data = object.clone();
    // The hash is derived from the API key; it has no use downstream.
    data.remove("hash");
    Ok(Callback {
        account_id,
        callback_id,
        kind: kind.to_owned(),
        hash: hash.to_owned(),
        data,
    })
}

/// An id given as a JSON integer or, tolerantly, as a string of digits.
fn id_field(object: &Map<String, Value>, name: &str) -> Option<u64> {
    match object.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Rejected-callback lines, one per reason per second (their exact number is in the metric).
static REJECTED: LazyLock<Throttles> = LazyLock::new(|| Throttles::new(Duration::from_secs(1)));

/// `POST /v1/voximplant/callbacks`.
pub(crate) async fn callbacks(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = handle(&app, &headers, body).await;
    respond(SOURCE, started, result)
}

/// Verifies every callback, publishes the valid ones, and reports the rest.
async fn handle(app: &Shared, headers: &HeaderMap, body: Body) -> Result<Accepted, Problem> {
    require_json(headers)?;
    let bytes = read_body(body, app.body_limit).await?;
    let items = parse_batch(&bytes)?;
    let total = items.len();
    let salt = app.salt.as_ref().and_then(EnvSecret::value).unwrap_or("");
    let mut valid = Vec::with_capacity(total);
    let mut refusal: Option<Problem> = None;
    for (index, item) in items.into_iter().enumerate() {
        let (problem, reason, ids) = match item {
            Err(problem) => (problem, "malformed", None),
            Ok(cb) => match verify(app, salt, index, &cb) {
                Ok(()) => {
                    valid.push(cb);
                    continue;
                }
                Err((problem, reason)) => (problem, reason, Some((cb.account_id, cb.callback_id))),
            },
        };
        reject(index, reason, ids, &problem);
        // The request's refusal, should nothing be valid: the first bad signature, else the
        // first malformed callback.
        let signature = |p: &Problem| matches!(p, Problem::BadSignature(_));
        if refusal
            .as_ref()
            .is_none_or(|first| !signature(first) && signature(&problem))
        {
            refusal = Some(problem);
        }
    }
    let rejected = total - valid.len();
    if valid.is_empty() {
        let problem = refusal.expect("a callback was rejected");
        return Err(if total == 1 {
            problem
        } else {
            none_valid(total, problem)
        });
    }
    let outgoing = valid
        .iter()
        .map(|cb| Outgoing {
            routing_key: cb.routing_key(),
            event: cb.to_event(),
            dedup_key: Some(cb.dedup_key()),
        })
        .collect();
    publish_all(app, SOURCE, outgoing)
        .await
        .map(|accepted| accepted.with_rejected(rejected))
}

/// Checks callback `index`'s hash against its account's key; on failure, the refusal and the
/// reason label of the rejection.
fn verify(
    app: &Shared,
    salt: &str,
    index: usize,
    cb: &Callback,
) -> Result<(), (Problem, &'static str)> {
    let Some(key) = app.accounts.get(&cb.account_id).and_then(EnvSecret::value) else {
        return Err((
            Problem::BadSignature(format!(
                "callbacks[{index}]: account {} is not configured",
                cb.account_id
            )),
            "unknown_account",
        ));
    };
    relay_signing::voximplant::verify_callback(salt, cb.account_id, key, cb.callback_id, &cb.hash)
        .map_err(|e| {
            let detail = format!("callbacks[{index}] (callback_id {}): {e}", cb.callback_id);
            (Problem::BadSignature(detail), "bad_signature")
        })
}

/// Every `reason` of `relay_ingress_callbacks_rejected_total`: why one callback of a batch was
/// refused.
pub const REJECTION_REASONS: &[&str] = &["malformed", "unknown_account", "bad_signature"];

/// Creates the series of `relay_ingress_callbacks_rejected_total` at zero, one per reason.
pub(crate) fn register_metrics() {
    for reason in REJECTION_REASONS {
        metrics::counter!(
            "relay_ingress_callbacks_rejected_total",
            "source" => SOURCE,
            "reason" => *reason
        )
        .increment(0);
    }
}

/// Counts and (now and then) logs a rejected callback: which one and why, never its hash.
fn reject(index: usize, reason: &'static str, ids: Option<(u64, u64)>, problem: &Problem) {
    debug_assert!(
        REJECTION_REASONS.contains(&reason),
        "add `{reason}` to REJECTION_REASONS"
    );
    metrics::counter!(
        "relay_ingress_callbacks_rejected_total",
        "source" => SOURCE,
        "reason" => reason
    )
    .increment(1);
    if let Some(suppressed) = REJECTED.allow(reason) {
        let (account_id, callback_id) = ids.unzip();
        let (_, _, _, detail) = problem.parts();
        tracing::warn!(
            source = SOURCE,
            index,
            account_id,
            callback_id,
            reason,
            %detail,
            suppressed,
            "callback rejected"
        );
    }
}

/// The refusal of a request none of whose `total` callbacks is valid.
fn none_valid(total: usize, first: Problem) -> Problem {
    let say = |detail: String| format!("none of the {total} callbacks is valid; {detail}");
    match first {
        Problem::BadSignature(detail) => Problem::BadSignature(say(detail)),
        Problem::Malformed(detail) => Problem::Malformed(say(detail)),
        other => other,
    }
}

#[cfg(test)]
mod tests;
