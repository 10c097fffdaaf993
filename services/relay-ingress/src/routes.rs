//! The router: every route's path and methods, and the thin handlers that time a request, hand
//! it to its source's module and answer.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Response;
use axum::routing::post;
use relay_core::routing;

use crate::problem::Problem;
use crate::respond::{self, count, respond, respond_with, segment};
use crate::state::AppState;
use crate::trace::trace_request;
use crate::{acrobits, hooks, plivo, voximplant};

pub(crate) fn router(state: AppState) -> Router {
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
