//! The console's pages and actions, one module each. Every page needs a session ([`Authed`]);
//! every action is a POST form carrying the session's CSRF token and is logged with the user.
//!
//! [`Authed`]: crate::session::Authed

mod alerts;
mod calls;
mod deliveries;
mod destinations;
mod login;
mod overview;
pub(crate) mod parked;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every route of the console (beside `/livez`, `/readyz` and `/metrics`).
pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/login", get(login::page).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/", get(overview::page))
        .route("/calls", get(calls::search))
        .route("/calls/{id}", get(calls::session))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/parked", get(parked::list))
        .route("/parked/replay", post(parked::replay))
        .route("/parked/purge", post(parked::purge))
        .route("/parked/jobs/{id}", get(parked::job))
        .route("/destinations", get(destinations::list))
        .route("/destinations/{name}/{action}", post(destinations::act))
        .route("/alerts", get(alerts::page))
        .layer(axum::middleware::from_fn(headers))
        .with_state(state)
}

/// Headers of every console response: no caching of pages that show operational data, no
/// framing (clickjacking), no sniffing, and a content security policy that allows only the
/// console's own inline styles.
async fn headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}
