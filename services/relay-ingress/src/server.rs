//! The public listener: hyper HTTP/1 connections with limits that keep slow clients from holding
//! sockets and memory, a cap on open connections, and a graceful drain on shutdown.
//!
//! - **Request head**: a new connection must deliver its first request head within
//!   `header_read_timeout`; a kept-alive one must deliver its next head within
//!   `keep_alive_timeout` of its previous answer (idle time included). Otherwise hyper closes it.
//! - **Body**: a request's body must be complete within `body_read_timeout` of its head
//!   ([`crate::request::Deadline`]); otherwise the request gets 408 and the connection closes.
//! - **Connections**: at most `max_connections` are served at once. At the cap the listener
//!   stops accepting, so further clients wait in the kernel's listen backlog (tokio's 1024)
//!   until a connection closes, as in mini-redis's `server.rs`.
//! - **Requests**: at most `max_in_flight` are handled at once; the others wait with only their
//!   head read (their body's deadline starts when their turn comes), so memory grows with the
//!   requests being handled, not with the connections open.
//! - **Shutdown**: the listener closes at once (new clients are refused), idle kept-alive
//!   connections are closed cleanly, requests in flight finish and their connections close after
//!   the answer (`Connection: close`). What is still open after the grace is cut.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::rt::{Sleep, Timer};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use relay_core::config::IngressConfig;
use relay_telemetry::Readiness;
use relay_telemetry::throttle::Throttles;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::request::Deadline;

/// Connection errors and accept failures, one line per kind per second.
static WARNINGS: LazyLock<Throttles> = LazyLock::new(|| Throttles::new(Duration::from_secs(1)));

/// The most bytes hyper buffers for one connection's unparsed input (in effect: the largest
/// request head).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The limits of `[ingress]` that the listener enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
    body_read_timeout: Duration,
    max_connections: usize,
    max_in_flight: usize,
}

impl Limits {
    /// The limits configured in `[ingress]`.
    pub(crate) fn from_config(config: &IngressConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            keep_alive_timeout: config.keep_alive_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections,
            max_in_flight: config.max_in_flight,
        }
    }
}

/// Serves `router` on `listener` until `stop`, then drains within `grace` (see the module
/// documentation); `readiness` turns to draining the moment `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    readiness: &Readiness,
    stop: &CancellationToken,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let cut = CancellationToken::new();
    let mut http = http1::Builder::new();
    // hyper buffers up to ~400 KiB of an unfinished head per connection; callbacks' heads are a
    // few KiB, and a cap's worth of slow connections must not hold gigabytes. Larger heads get
    // hyper's 431.
    http.keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let requests = Requests {
        router,
        body_read_timeout: limits.body_read_timeout,
        peer: None,
        in_flight: Arc::new(Semaphore::new(
            limits.max_in_flight.min(Semaphore::MAX_PERMITS),
        )),
    };
    loop {
        // The permit comes first: at the cap, connections wait in the backlog, not in memory.
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error, stop).await;
                    continue;
                }
            },
        };
        // Answers are written whole; nothing gains from Nagle's delay.
        let _ = stream.set_nodelay(true);
        let mut builder = http.clone();
        builder.timer(HeadTimer::new(limits));
        let requests = Requests {
            peer: Some(peer),
            ..requests.clone()
        };
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), requests));
        let cut = cut.clone();
        metrics::gauge!("relay_ingress_connections").increment(1.0);
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        connection_failed(&error);
                    }
                }
                () = cut.cancelled() => {}
            }
            metrics::gauge!("relay_ingress_connections").decrement(1.0);
            drop(permit);
        });
    }
    readiness.start_draining();
    drop(listener);
    tracing::info!(
        open = graceful.count(),
        "not accepting connections any more; draining"
    );
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over with requests still in flight; closing their connections");
            cut.cancel();
        }
    }
}

/// The router behind one connection: each request's body gets its deadline first, and the
/// request carries the connection's peer address (`ConnectInfo`, for per-client limits).
#[derive(Clone)]
struct Requests {
    router: Router,
    body_read_timeout: Duration,
    peer: Option<std::net::SocketAddr>,
    /// `max_in_flight` permits, shared by every connection.
    in_flight: Arc<Semaphore>,
}

impl hyper::service::Service<Request<Incoming>> for Requests {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let requests = self.clone();
        Box::pin(async move {
            let _turn = requests
                .in_flight
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let deadline = tokio::time::Instant::now() + requests.body_read_timeout;
            let mut request = request.map(|body| Body::new(Deadline::new(body, deadline)));
            if let Some(peer) = requests.peer {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
            // A router is always ready (axum documents `poll_ready` as always `Ready`).
            tower_service::Service::call(&mut requests.router.clone(), request).await
        })
    }
}

/// hyper's header-read timer, with the keep-alive budget once a connection has been answered.
///
/// hyper arms this timer each time it starts waiting for a request head: when the connection
/// opens, and after each answer on a kept-alive connection (so the idle time counts). The first
/// wait is the header read timeout; every later one is the keep-alive timeout. hyper's HTTP/1
/// server uses its timer for nothing else.
struct HeadTimer {
    inner: TokioTimer,
    first: AtomicBool,
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
}

impl HeadTimer {
    fn new(limits: Limits) -> Self {
        Self {
            inner: TokioTimer::new(),
            first: AtomicBool::new(true),
            header_read_timeout: limits.header_read_timeout,
            keep_alive_timeout: limits.keep_alive_timeout,
        }
    }

    /// hyper's `deadline` (its `now()` + `header_read_timeout`), moved to the keep-alive
    /// timeout for every wait but the first.
    fn deadline(&self, deadline: Instant) -> Instant {
        if self.first.swap(false, Ordering::AcqRel) {
            return deadline;
        }
        deadline
            .checked_sub(self.header_read_timeout)
            .map_or(deadline, |start| start + self.keep_alive_timeout)
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn Sleep>> {
        self.inner.sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> std::pin::Pin<Box<dyn Sleep>> {
        self.inner.sleep_until(self.deadline(deadline))
    }

    fn reset(&self, sleep: &mut std::pin::Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        self.inner.reset(sleep, self.deadline(new_deadline));
    }
}

/// Every `kind` of `relay_ingress_connection_errors_total`.
pub const CONNECTION_ERROR_KINDS: &[&str] = &[
    "header_timeout",
    "malformed_head",
    "incomplete",
    "response",
    "io",
];

/// Creates the series of `relay_ingress_connection_errors_total` at zero, one per kind.
pub(crate) fn register_metrics() {
    for kind in CONNECTION_ERROR_KINDS {
        metrics::counter!("relay_ingress_connection_errors_total", "kind" => *kind).increment(0);
    }
}

/// Counts a connection that ended in an error, and logs the kind now and then: under attack
/// there is one per connection.
fn connection_failed(error: &hyper::Error) {
    let kind = if error.is_timeout() {
        "header_timeout"
    } else if error.is_parse() {
        "malformed_head"
    } else if error.is_incomplete_message() {
        "incomplete"
    } else if error.is_user() {
        "response"
    } else {
        "io"
    };
    debug_assert!(CONNECTION_ERROR_KINDS.contains(&kind));
    metrics::counter!("relay_ingress_connection_errors_total", "kind" => kind).increment(1);
    if let Some(suppressed) = WARNINGS.allow(&("connection", kind)) {
        tracing::info!(kind, %error, suppressed, "connection closed on an error");
    }
}

/// Handles a failed `accept`: a client that gave up meanwhile is nothing; anything else (out of
/// file descriptors, say) pauses accepting for a second rather than spinning on it.
async fn accept_failed(error: &io::Error, stop: &CancellationToken) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    metrics::counter!("relay_ingress_accept_errors_total").increment(1);
    if let Some(suppressed) = WARNINGS.allow("accept") {
        tracing::error!(%error, suppressed, "cannot accept connections; pausing a second");
    }
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_head_gets_the_header_timeout_and_later_ones_the_keep_alive_timeout() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1,
            max_in_flight: 1,
        };
        let timer = HeadTimer::new(limits);
        let now = Instant::now();
        let hyper_deadline = now + limits.header_read_timeout;
        assert_eq!(timer.deadline(hyper_deadline), hyper_deadline);
        assert_eq!(
            timer.deadline(hyper_deadline),
            now + limits.keep_alive_timeout
        );
        assert_eq!(
            timer.deadline(hyper_deadline),
            now + limits.keep_alive_timeout
        );
        let shorter = HeadTimer::new(Limits {
            keep_alive_timeout: Duration::from_secs(2),
            ..limits
        });
        assert_eq!(shorter.deadline(hyper_deadline), hyper_deadline);
        assert_eq!(
            shorter.deadline(hyper_deadline),
            now + Duration::from_secs(2)
        );
    }
}
