//! relay-ingress: verifies inbound callbacks on their raw bytes, normalises them to CloudEvents,
//! publishes them with a publisher confirm, marks them seen, then answers.
//!
//! The order is the whole point (DESIGN.md, invariant 1): 2xx only after RabbitMQ confirmed
//! every event of the request; a request that fails leaves no dedup mark, so the provider's retry
//! is processed in full. Redis only accelerates dedup: when it is down, requests are accepted
//! (at-least-once) and counted in `relay_redis_errors_total`.

pub mod acrobits;
pub mod hooks;
pub mod plivo;
pub mod problem;
pub mod voximplant;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::join_all;
use http_body_util::BodyExt;
use relay_amqp::{Broker, BrokerSettings, FieldTable, Publish};
use relay_core::config::{Config, EnvSecret};
use relay_core::{CloudEvent, event, routing};
use relay_store::Store;
use relay_telemetry::Readiness;
use relay_telemetry::admin::{AdminServer, StartError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use problem::Problem;

/// A built, bound, not yet serving relay-ingress.
pub struct Ingress {
    listener: TcpListener,
    admin: AdminServer,
    router: Router,
    readiness: Readiness,
    background: CancellationToken,
    grace: Duration,
}

pub(crate) struct Shared {
    broker: Broker,
    store: Store,
    salt: Option<EnvSecret>,
    accounts: HashMap<u64, EnvSecret>,
    body_limit: usize,
    retry_after_secs: u64,
    dedup_ttl: Duration,
    /// Generic sources by name.
    hooks: HashMap<String, hooks::HookSource>,
    /// The Re:amaze route, when configured.
    reamaze: Option<hooks::HookSource>,
    /// The Voximplant scenario events route, when configured.
    voximplant_events: Option<hooks::HookSource>,
    /// The Plivo routes, when configured.
    plivo: Option<plivo::PlivoRoutes>,
    /// The Acrobits web callback, when configured.
    acrobits: Option<acrobits::AcrobitsRoute>,
    /// `ingress.public_base_url`: signed-URL schemes verify against it.
    public_base_url: String,
}

type AppState = Arc<Shared>;

impl Ingress {
    /// Validates `config`, binds both listeners and starts connecting to RabbitMQ and Redis in
    /// the background (the service serves 503 until the broker is there).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate_ingress()?;
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings::from_config(&config, "relay-ingress"),
            &readiness,
            background.clone(),
        );
        let store = Store::start(&config.redis, &readiness, background.clone());
        let ingress = &config.ingress;
        let mut hook_sources = HashMap::new();
        for (name, source) in &ingress.sources {
            hook_sources.insert(name.clone(), hooks::HookSource::from_config(name, source)?);
        }
        let voximplant_events = match &ingress.voximplant.events_secret_env {
            Some(secret) => Some(hooks::HookSource::voximplant_events(secret)?),
            None => None,
        };
        let acrobits = match &ingress.acrobits {
            Some(route) => Some(acrobits::AcrobitsRoute::new(route)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            hooks: hook_sources,
            reamaze: ingress
                .reamaze
                .as_ref()
                .map(|r| hooks::HookSource::reamaze(r.secret_env.clone())),
            voximplant_events,
            plivo: ingress.plivo.as_ref().map(plivo::PlivoRoutes::new),
            acrobits,
            public_base_url: ingress.public_base_url.clone(),
            broker,
            store,
            salt: ingress.voximplant.salt_env.clone(),
            accounts: ingress
                .voximplant
                .accounts
                .iter()
                .map(|a| (a.account_id, a.api_key_env.clone()))
                .collect(),
            body_limit: ingress.body_limit_bytes,
            retry_after_secs: ingress.retry_after.as_secs().max(1),
            dedup_ttl: config.redis.dedup_ttl,
        });
        let listener = TcpListener::bind(ingress.listen)
            .await
            .map_err(StartError::bind(ingress.listen))?;
        let admin = AdminServer::bind(ingress.admin_listen, readiness.clone())
            .await
            .map_err(StartError::bind(ingress.admin_listen))?;
        Ok(Self {
            listener,
            admin,
            router: router(shared),
            readiness,
            background,
            grace: ingress.shutdown_grace,
        })
    }

    /// The public listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `stop`, then drains: not ready at once, in-flight requests get the grace
    /// budget, then the broker connection closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        let readiness = self.readiness.clone();
        let drain_signal = stop.clone();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            drain_signal.cancelled().await;
            readiness.start_draining();
        });
        let grace = self.grace;
        let result = tokio::select! {
            r = serve => r,
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("grace period over with requests still in flight");
                Ok(())
            }
        };
        self.background.cancel();
        admin.stop().await;
        tracing::info!("relay-ingress stopped");
        result
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/voximplant/callbacks", post(voximplant_callbacks))
        .route("/v1/voximplant/events", post(voximplant_events))
        .route(
            "/v1/acrobits/web-callback",
            axum::routing::get(acrobits_request).post(acrobits_request),
        )
        .route(
            "/v1/plivo/{kind}",
            axum::routing::get(plivo_request).post(plivo_request),
        )
        .route("/v1/reamaze/{channel}", post(reamaze_request))
        .route("/v1/hooks/{source}", post(hook))
        .fallback(|| async { Problem::NotFound })
        .method_not_allowed_fallback(|| async { Problem::MethodNotAllowed })
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

/// One span per request, parented on the caller's `traceparent` when it sends one.
async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "ingress.request",
        otel.kind = "server",
        http.method = %request.method(),
        http.route = %route,
        http.status_code = tracing::field::Empty,
    );
    relay_telemetry::propagation::set_parent_from(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.status_code", response.status().as_u16());
    response
}

/// Reads the body, refusing more than `limit` bytes with 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Problem::TooLarge { limit }),
        Err(e) => Err(Problem::Malformed(format!("could not read the body: {e}"))),
    }
}

/// JSON routes accept a missing content type and any JSON-ish one: providers differ (Voximplant
/// does not document its header), but a form or XML body on a JSON route is a client error.
fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let ok = matches!(
        essence,
        "application/json" | "text/json" | "text/plain" | ""
    ) || (essence.starts_with("application/") && essence.ends_with("+json"));
    if ok {
        Ok(())
    } else {
        Err(Problem::UnsupportedMediaType(format!(
            "this route reads JSON, not `{essence}`"
        )))
    }
}

/// Whether the request's body is form-encoded.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Routes that read JSON or form bodies.
pub(crate) fn require_json_or_form(headers: &HeaderMap) -> Result<(), Problem> {
    if is_form(headers) {
        Ok(())
    } else {
        require_json(headers)
    }
}

/// What a successful request answers.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Accepted {
    /// Events published by this request.
    accepted: usize,
    /// Callbacks already seen (not published again).
    duplicates: usize,
}

async fn hook(
    State(app): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = hooks::handle(&app, app.hooks.get(&name), None, &uri, &headers, body).await;
    // Only configured names become metric labels: a scan of random names must not create series.
    let source = if app.hooks.contains_key(&name) {
        name.as_str()
    } else {
        "unknown"
    };
    respond(source, started, result)
}

async fn voximplant_events(
    State(app): State<AppState>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let source = app.voximplant_events.as_ref();
    let result = hooks::handle(&app, source, None, &uri, &headers, body).await;
    respond("voximplant-events", started, result)
}

async fn reamaze_request(
    State(app): State<AppState>,
    axum::extract::Path(channel): axum::extract::Path<String>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = if routing::is_key_word(&channel) {
        let source = app.reamaze.as_ref();
        hooks::handle(&app, source, Some(&channel), &uri, &headers, body).await
    } else {
        Err(Problem::NotFound)
    };
    respond("reamaze", started, result)
}

async fn acrobits_request(
    State(app): State<AppState>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (response, outcome) = acrobits::handle(&app, &uri, &headers, body).await;
    count(acrobits::SOURCE, started, outcome);
    response
}

async fn plivo_request(
    State(app): State<AppState>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    method: axum::http::Method,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = plivo::handle(&app, &kind, &method, &uri, &headers, body).await;
    respond_with(plivo::SOURCE, started, result)
}

/// Counts, times and logs a route's outcome, and renders it.
fn respond(source: &str, started: Instant, result: Result<Accepted, Problem>) -> Response {
    respond_with(
        source,
        started,
        result.map(|accepted| Json(accepted).into_response()),
    )
}

/// [`respond`] for routes that render their own success response.
fn respond_with(source: &str, started: Instant, result: Result<Response, Problem>) -> Response {
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(p) => p.outcome(),
    };
    count(source, started, outcome);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Counts and times one request of `source`, and logs a refusal once (never its content).
fn count(source: &str, started: Instant, outcome: &'static str) {
    metrics::counter!("relay_ingress_requests_total", "source" => source.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("relay_ingress_request_seconds", "source" => source.to_owned())
        .record(started.elapsed().as_secs_f64());
    if outcome != "accepted" {
        tracing::info!(source, outcome, "request refused");
    }
}

async fn voximplant_callbacks(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = handle_voximplant(&app, &headers, body).await;
    respond(voximplant::SOURCE, started, result)
}

async fn handle_voximplant(
    app: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Problem> {
    require_json(headers)?;
    let bytes = read_body(body, app.body_limit).await?;
    let callbacks = voximplant::parse(&bytes)?;

    // Verify every callback before anything is published: one bad hash refuses the request.
    let salt = app.salt.as_ref().and_then(EnvSecret::value).unwrap_or("");
    for (i, cb) in callbacks.iter().enumerate() {
        let key = app
            .accounts
            .get(&cb.account_id)
            .and_then(EnvSecret::value)
            .ok_or_else(|| {
                Problem::BadSignature(format!(
                    "callbacks[{i}]: account {} is not configured",
                    cb.account_id
                ))
            })?;
        relay_signing::voximplant::verify_callback(
            salt,
            cb.account_id,
            key,
            cb.callback_id,
            &cb.hash,
        )
        .map_err(|e| {
            Problem::BadSignature(format!(
                "callbacks[{i}] (callback_id {}): {e}",
                cb.callback_id
            ))
        })?;
    }

    let outgoing = callbacks
        .iter()
        .map(|cb| Outgoing {
            routing_key: cb.routing_key(),
            event: cb.to_event(),
            dedup_key: Some(cb.dedup_key()),
        })
        .collect();
    publish_all(app, voximplant::SOURCE, outgoing).await
}

/// One event a route wants published.
pub(crate) struct Outgoing {
    /// Routing key on `relay.events`.
    pub(crate) routing_key: String,
    /// The event.
    pub(crate) event: CloudEvent,
    /// The source's own unique name of the event, when it has one: its dedup mark.
    pub(crate) dedup_key: Option<String>,
}

/// What every route does once a request is verified and parsed (DESIGN.md, invariant 1): drop
/// repeats and what an earlier request already stored, publish the rest with confirms, and
/// only when every one is confirmed write their dedup marks. Any failed publish answers 503
/// and marks nothing, so the provider's retry is processed in full.
pub(crate) async fn publish_all(
    app: &Shared,
    source: &str,
    events: Vec<Outgoing>,
) -> Result<Accepted, Problem> {
    let received = events.len();
    let mut unique: Vec<Outgoing> = Vec::with_capacity(received);
    for event in events {
        if event.dedup_key.is_none() || !unique.iter().any(|u| u.dedup_key == event.dedup_key) {
            unique.push(event);
        }
    }
    let keys: Vec<String> = unique.iter().filter_map(|e| e.dedup_key.clone()).collect();
    let seen = match app.store.seen(source, &keys).await {
        Ok(seen) => seen,
        Err(error) => {
            // Invariant 2: accept without dedup; the deterministic event id still collapses a
            // duplicate downstream.
            tracing::warn!(%error, "dedup check unavailable, accepting without it");
            vec![false; keys.len()]
        }
    };
    let already: std::collections::HashSet<&str> = keys
        .iter()
        .zip(seen)
        .filter_map(|(k, seen)| seen.then_some(k.as_str()))
        .collect();
    let to_publish: Vec<&Outgoing> = unique
        .iter()
        .filter(|e| e.dedup_key.as_deref().is_none_or(|k| !already.contains(k)))
        .collect();
    let duplicates = received - to_publish.len();

    let bodies: Vec<Vec<u8>> = to_publish
        .iter()
        .map(|o| serde_json::to_vec(&o.event).expect("a CloudEvent always serialises"))
        .collect();
    let results = join_all(to_publish.iter().zip(&bodies).map(|(o, body)| {
        app.broker.publish(Publish {
            exchange: routing::EVENTS_EXCHANGE,
            routing_key: &o.routing_key,
            message_id: &o.event.id,
            content_type: event::CONTENT_TYPE,
            body,
            headers: FieldTable::default(),
        })
    }))
    .await;
    if let Some(error) = results.into_iter().find_map(Result::err) {
        tracing::warn!(%error, "publish failed, answering 503");
        return Err(Problem::BrokerUnavailable {
            retry_after_secs: app.retry_after_secs,
        });
    }

    // Only now, with every event confirmed, remember them.
    let to_mark: Vec<String> = to_publish
        .iter()
        .filter_map(|o| o.dedup_key.clone())
        .collect();
    if let Err(error) = app.store.mark_seen(source, &to_mark, app.dedup_ttl).await {
        tracing::warn!(%error, "could not write dedup marks; a re-send will be published again");
    }
    metrics::counter!("relay_ingress_events_total", "source" => source.to_owned())
        .increment(to_publish.len() as u64);
    if duplicates > 0 {
        metrics::counter!("relay_ingress_duplicates_total", "source" => source.to_owned())
            .increment(duplicates as u64);
    }
    tracing::debug!(
        source,
        accepted = to_publish.len(),
        duplicates,
        "events accepted"
    );
    Ok(Accepted {
        accepted: to_publish.len(),
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn json_media_types_are_accepted_others_refused() {
        assert!(require_json(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/cloudevents+json",
        ] {
            assert!(require_json(&with_type(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "application/x-www-form-urlencoded",
            "application/xml",
            "multipart/form-data",
        ] {
            assert!(
                matches!(
                    require_json(&with_type(bad)),
                    Err(Problem::UnsupportedMediaType(_))
                ),
                "{bad}"
            );
        }
    }
}
