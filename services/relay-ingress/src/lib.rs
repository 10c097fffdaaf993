//! relay-ingress: verifies inbound callbacks on their raw bytes, normalises them to CloudEvents,
//! publishes them with a publisher confirm, marks them seen, then answers.
//!
//! The order is the whole point (docs/ARCHITECTURE.md, invariant 1): 2xx only after RabbitMQ confirmed
//! every event of the request; a request that fails leaves no dedup mark, so the provider's retry
//! is processed in full. Redis only accelerates dedup: when it is down, requests are accepted
//! (at-least-once) and counted in `relay_redis_errors_total`.
//!
//! Modules: `server` (connections, slow-client limits, drain), `request` (media types, body
//! limit and deadline), `publish` (confirm, then dedup marks), `respond` (render, count, log
//! refusals), [`problem`], and one module per source.

pub mod acrobits;
pub mod hooks;
pub mod plivo;
pub mod problem;
mod publish;
mod request;
mod respond;
mod server;
pub mod voximplant;

#[cfg(test)]
mod test_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use relay_amqp::{Broker, BrokerSettings};
use relay_core::config::{Config, EnvSecret};
use relay_core::routing;
use relay_store::Store;
use relay_telemetry::Readiness;
use relay_telemetry::admin::{AdminServer, StartError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use problem::Problem;
pub(crate) use publish::{Accepted, Outgoing, publish_all, publish_in};
pub(crate) use request::{is_form, read_body, require_json_or_form};
use respond::{count, respond, respond_with, segment};
pub use server::CONNECTION_ERROR_KINDS;

/// A built, bound, not yet serving relay-ingress.
pub struct Ingress {
    listener: TcpListener,
    admin: AdminServer,
    router: Router,
    readiness: Readiness,
    background: CancellationToken,
    grace: Duration,
    limits: server::Limits,
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

impl Shared {
    /// Every route's state from `config` (already validated), over `broker` and `store`.
    fn new(config: &Config, broker: Broker, store: Store) -> Result<Self, StartError> {
        let ingress = &config.ingress;
        let mut sources = HashMap::new();
        for (name, source) in &ingress.sources {
            sources.insert(name.clone(), hooks::HookSource::from_config(name, source)?);
        }
        let voximplant_events = match &ingress.voximplant.events_secret_env {
            Some(secret) => Some(hooks::HookSource::voximplant_events(secret)?),
            None => None,
        };
        let acrobits = match &ingress.acrobits {
            Some(route) => Some(acrobits::AcrobitsRoute::new(route)?),
            None => None,
        };
        Ok(Self {
            hooks: sources,
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
        })
    }
}

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
        let shared = Arc::new(Shared::new(&config, broker, store)?);
        register_metrics(&config);
        let ingress = &config.ingress;
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
            limits: server::Limits::from_config(ingress),
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

    /// Serves until `stop`, then drains: not ready at once, no new connections, idle ones
    /// closed, in-flight requests get the grace budget; then the broker connection closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        server::serve(
            self.listener,
            self.router,
            self.limits,
            &self.readiness,
            &stop,
            self.grace,
        )
        .await;
        self.background.cancel();
        admin.stop().await;
        tracing::info!("relay-ingress stopped");
        Ok(())
    }
}

/// The `source` label of every route `config` configures: `voximplant` (callbacks),
/// `voximplant-events`, `reamaze`, `plivo`, `acrobits`, and each generic source's name. The
/// same name labels a route's requests and the events it publishes.
pub fn sources(config: &Config) -> Vec<String> {
    let ingress = &config.ingress;
    let vox = &ingress.voximplant;
    let builtin = [
        (
            vox.salt_env.is_some() || !vox.accounts.is_empty(),
            voximplant::SOURCE,
        ),
        (vox.events_secret_env.is_some(), hooks::VOXIMPLANT_EVENTS),
        (ingress.reamaze.is_some(), hooks::REAMAZE),
        (ingress.plivo.is_some(), plivo::SOURCE),
        (ingress.acrobits.is_some(), acrobits::SOURCE),
    ];
    builtin
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, source)| source.to_owned())
        .chain(ingress.sources.keys().cloned())
        .collect()
}

/// Creates every labelled series ingress records for `config` at zero, so that dashboards and
/// alert rules see zeros from start-up rather than gaps: each configured source's requests (by
/// every outcome it can have) and events, the refusals of unknown sources and unmatched
/// routes, the Voximplant batches' and the Acrobits route's own reasons when configured, and
/// the connection errors.
fn register_metrics(config: &Config) {
    let answers: Vec<&'static str> = std::iter::once(respond::ACCEPTED)
        .chain(Problem::OUTCOMES.iter().copied())
        .collect();
    let sources = sources(config);
    for source in &sources {
        if source == acrobits::SOURCE {
            let acrobits: Vec<&'static str> =
                answers.iter().chain(acrobits::OUTCOMES).copied().collect();
            respond::register(source, &acrobits);
            acrobits::register_metrics();
        } else {
            respond::register(source, &answers);
        }
        if source == voximplant::SOURCE {
            voximplant::register_metrics();
        }
        publish::register(source);
    }
    respond::register(
        respond::UNMATCHED,
        &[
            Problem::NotFound.outcome(),
            Problem::MethodNotAllowed.outcome(),
        ],
    );
    respond::register(
        hooks::UNKNOWN,
        &[
            Problem::UnknownSource.outcome(),
            Problem::MalformedRequest(String::new()).outcome(),
        ],
    );
    server::register_metrics();
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/voximplant/callbacks", post(voximplant::callbacks))
        .route("/v1/voximplant/events", post(voximplant_events))
        .route(
            "/v1/acrobits/web-callback",
            axum::routing::get(acrobits_request)
                .post(acrobits_request)
                .fallback(acrobits_method_not_allowed),
        )
        .route(
            "/v1/plivo/{kind}",
            axum::routing::get(plivo_request).post(plivo_request),
        )
        // Providers are often configured with a trailing slash; signed over the URL as called.
        .route(
            "/v1/plivo/{kind}/",
            axum::routing::get(plivo_request).post(plivo_request),
        )
        .route("/v1/reamaze/{channel}", post(reamaze_request))
        .route("/v1/hooks/{source}", post(hook))
        .fallback(respond::not_found)
        .method_not_allowed_fallback(respond::method_not_allowed)
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

/// One `SERVER` span per request, parented on the caller's `traceparent` when it sends one,
/// named and described per OpenTelemetry's HTTP conventions: `{method} {route}` with the matched
/// route template (never the path, whose segments vary), `{method}` alone when no route matched;
/// status `ERROR` for a 5xx only (a 4xx is the caller's mistake, not the server's).
async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let (method, method_original) = relay_telemetry::propagation::method(request.method());
    let name = match &route {
        Some(route) => format!(
            "{} {route}",
            relay_telemetry::propagation::span_method(method)
        ),
        None => relay_telemetry::propagation::span_method(method).to_owned(),
    };
    // The listener is plain HTTP; TLS, if any, ends at a proxy that says so.
    let scheme = match request.headers().get("x-forwarded-proto") {
        Some(proto) if proto.as_bytes().eq_ignore_ascii_case(b"https") => "https",
        _ => "http",
    };
    // `server.address` and `server.port` as the client addressed us (the `Host` header).
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok());
    let port = host.as_ref().map(|host| {
        host.port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 })
    });
    let version = match request.version() {
        axum::http::Version::HTTP_10 => Some("1.0"),
        axum::http::Version::HTTP_11 => Some("1.1"),
        axum::http::Version::HTTP_2 => Some("2"),
        _ => None,
    };
    let span = tracing::info_span!(
        "HTTP request",
        "otel.name" = name.as_str(),
        "otel.kind" = "server",
        "otel.status_code" = tracing::field::Empty,
        "http.request.method" = method,
        "http.request.method_original" = method_original,
        "http.route" = route.as_deref(),
        "url.path" = request.uri().path(),
        "url.scheme" = scheme,
        "server.address" = host.as_ref().map(axum::http::uri::Authority::host),
        "server.port" = port,
        "network.protocol.version" = version,
        "user_agent.original" = request
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok()),
        "http.response.status_code" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    relay_telemetry::propagation::set_parent_from(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    response
}

async fn hook(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let name = match segment(name) {
        Ok(name) => name,
        Err(problem) => return respond(hooks::UNKNOWN, started, Err(problem)),
    };
    let result = hooks::handle(&app, app.hooks.get(&name), None, &uri, &headers, body).await;
    // Only configured names become metric labels: a scan of random names must not create series.
    let source = if app.hooks.contains_key(&name) {
        name.as_str()
    } else {
        hooks::UNKNOWN
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
    respond(hooks::VOXIMPLANT_EVENTS, started, result)
}

async fn reamaze_request(
    State(app): State<AppState>,
    channel: Result<Path<String>, PathRejection>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = match segment(channel) {
        Ok(channel) if routing::is_key_word(&channel) => {
            let source = app.reamaze.as_ref();
            hooks::handle(&app, source, Some(&channel), &uri, &headers, body).await
        }
        Ok(_) => Err(Problem::NotFound),
        Err(problem) => Err(problem),
    };
    respond(hooks::REAMAZE, started, result)
}

async fn acrobits_request(
    State(app): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<SocketAddr>>>,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let peer = peer.map(|axum::Extension(axum::extract::ConnectInfo(peer))| peer);
    let (response, outcome) = acrobits::handle(&app, peer, &uri, &headers, body).await;
    count(acrobits::SOURCE, started, outcome);
    response
}

/// Another method on the Acrobits route: 405 in the app's format, not problem+json.
async fn acrobits_method_not_allowed(headers: HeaderMap) -> Response {
    let started = Instant::now();
    let (response, outcome) = acrobits::refuse(&headers, Problem::MethodNotAllowed);
    count(acrobits::SOURCE, started, outcome);
    response
}

async fn plivo_request(
    State(app): State<AppState>,
    kind: Result<Path<String>, PathRejection>,
    method: axum::http::Method,
    uri: axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = match segment(kind) {
        Ok(kind) => plivo::handle(&app, &kind, &method, &uri, &headers, body).await,
        Err(problem) => Err(problem),
    };
    respond_with(plivo::SOURCE, started, result)
}
