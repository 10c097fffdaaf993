//! The admin server: `/livez`, `/readyz`, `/metrics`, on its own port, never the public one.

use std::net::SocketAddr;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// A bound, not yet serving, admin server.
pub struct AdminServer {
    listener: TcpListener,
    app: Router,
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, readiness: Readiness) -> std::io::Result<Self> {
        Self::bind_with(addr, readiness, Router::new()).await
    }

    /// Binds `addr` and serves the service's own admin `routes` beside the common ones (e.g.
    /// delivery's `/v1/deliveries/{id}`): still the admin port, never the public one.
    pub async fn bind_with(
        addr: SocketAddr,
        readiness: Readiness,
        routes: Router,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let state = AdminState {
            readiness,
            metrics: crate::metrics_handle(),
        };
        let app = Router::new()
            .route("/livez", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(state)
            .merge(routes);
        Ok(Self { listener, app })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves in the background until the returned handle is stopped.
    pub fn spawn(self) -> AdminTask {
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.serve(stop.clone()));
        AdminTask { stop, task }
    }

    /// Serves until `stop` is cancelled.
    pub async fn serve(self, stop: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    }
}

/// A running admin server.
pub struct AdminTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminTask {
    /// Stops serving and waits for the server to close.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] relay_core::config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A client the service needs could not be built.
    #[error("cannot initialise {what}: {message}")]
    Init {
        /// What failed, e.g. `the HTTP client`.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl StartError {
    /// A bind failure of `addr`.
    pub fn bind(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Bind { addr, source }
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let failing = state.readiness.failing();
    if failing.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", failing.join(", ")),
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
