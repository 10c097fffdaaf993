//! relay-ingress: verifies inbound callbacks on their raw bytes, normalises them to CloudEvents,
//! publishes them with a publisher confirm, marks them seen, then answers.
//!
//! The order is the whole point (docs/ARCHITECTURE.md, invariant 1): 2xx only after RabbitMQ confirmed
//! every event of the request; a request that fails leaves no dedup mark, so the provider's retry
//! is processed in full. Redis only accelerates dedup: when it is down, requests are accepted
//! (at-least-once) and counted in `relay_redis_errors_total`.
//!
//! Modules: `app` (build, serve, stop), `state` (what every route shares), `routes` (the router
//! and its thin handlers), `trace` (a span per request), `series` (source labels, series at
//! zero), `server` (connections, slow-client limits, drain), `request` (media types, body
//! limit and deadline), `publish` (confirm, then dedup marks), `respond` (render, count, log
//! refusals), [`problem`], and one module per source.

pub mod acrobits;
mod app;
pub mod hooks;
pub mod plivo;
pub mod problem;
mod publish;
mod request;
mod respond;
mod routes;
mod series;
mod server;
mod state;
mod trace;
pub mod voximplant;

#[cfg(test)]
mod test_support;

pub use app::Ingress;
pub(crate) use publish::{Accepted, Outgoing, publish_all, publish_in};
pub(crate) use request::{is_form, read_body, require_json_or_form};
pub use series::sources;
pub use server::CONNECTION_ERROR_KINDS;
pub(crate) use state::{AppState, Shared};
