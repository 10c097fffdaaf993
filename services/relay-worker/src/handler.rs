//! The handler trait: what a handler is, what it gets and what it returns.
//!
//! A handler turns one event plus its [`Context`] into state changes (its own, in Redis) and an
//! [`Output`]: delivery jobs to publish and timers to set. The runner around it
//! ([`crate::runner`]) does everything else: decoding, timeouts, panics, publishing the output
//! with confirms before the ack, durable retries of transient failures and parking of
//! permanent ones. A handler knows nothing of queues or acks.

use std::time::Duration;

use futures_util::future::BoxFuture;
use relay_core::routing::HandlerRoute;
use relay_core::{CloudEvent, DeliveryJob};

/// What the runner knows of the message an event came in.
#[derive(Debug, Clone)]
pub struct Context {
    /// The event's routing key on `relay.events` (kept across handler retries), or the timer
    /// queue's name for a timer.
    pub routing_key: String,
    /// The broker delivered this message before (a consumer crashed or lost its channel while
    /// holding it): output that an earlier run may have published without being acked must be
    /// published again. Deterministic job ids make the repeat harmless.
    pub redelivered: bool,
    /// Durable retries already made of this event (0 on its first run).
    pub attempt: u32,
}

/// A timer: `event` comes back to the same handler after `delay`, through a TTL queue
/// (durable across restarts of any service or of the broker; docs/ARCHITECTURE.md, "Durable time").
#[derive(Debug, Clone)]
pub struct Timer {
    /// One of the delays the registry declares for this handler (`handlers::timer_queues`).
    pub delay: Duration,
    /// What arrives when it fires.
    pub event: CloudEvent,
}

/// An event a handler publishes to `relay.events` for other handlers (e.g. the call log's
/// `relay.call.missed`, which the web-callback handler takes). Its id must be deterministic, so
/// that an output published again after a crash is recognised downstream.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// Routing key on `relay.events`.
    pub routing_key: String,
    /// The event.
    pub event: CloudEvent,
}

/// What one event turned into.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Jobs for relay-delivery.
    pub jobs: Vec<DeliveryJob>,
    /// Timers to set.
    pub timers: Vec<Timer>,
    /// Events for other handlers.
    pub events: Vec<Emitted>,
}

impl Output {
    /// Nothing to publish.
    pub fn none() -> Self {
        Self::default()
    }

    /// One job.
    pub fn job(job: DeliveryJob) -> Self {
        Self {
            jobs: vec![job],
            ..Self::default()
        }
    }
}

/// Why a handler could not finish, and so what happens next.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try later (Redis away, a conflict that kept recurring): the event is
    /// retried durably with backoff, never in a hot loop.
    #[error("{0}")]
    Transient(String),
    /// No retry can fix it (the event does not have the shape the handler needs): the event
    /// is parked in `relay.dead.events` with `reason` and `detail`.
    #[error("{reason}: {detail}")]
    Permanent {
        /// Stable slug, e.g. `malformed_event`; one of [`DEAD_LETTER_REASONS`].
        reason: &'static str,
        /// What was wrong, for the operator (never a secret).
        detail: String,
    },
}

impl HandlerError {
    /// A permanent `malformed_event` failure.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::Permanent {
            reason: "malformed_event",
            detail: detail.into(),
        }
    }
}

/// Every `reason` the worker parks an event in `relay.dead.events` with (the `reason` label of
/// `relay_dead_letters_total{lot="events"}`): a permanent [`HandlerError`]'s (a handler's
/// `malformed_event`, the runner's `handler_panicked` and `retries_exhausted`) or `transient`
/// (a transient failure parked as it is). A test keeps it in step with the sources.
pub const DEAD_LETTER_REASONS: &[&str] = &[
    "malformed_event",
    "handler_panicked",
    "retries_exhausted",
    "transient",
];

/// The result of one handler call.
pub type HandlerResult = Result<Output, HandlerError>;

/// One handler of the worker: its own module under `handlers/`, listed once in the registry
/// (`handlers::build`).
pub trait Handler: Send + Sync + 'static {
    /// Name and binding patterns (`relay_core::routing`); the queue is
    /// `relay.handler.<name>`.
    fn route(&self) -> HandlerRoute;

    /// Unacknowledged events at once; `None`: `worker.prefetch`.
    fn prefetch(&self) -> Option<u16> {
        None
    }

    /// Creates the series of the handler's own labelled metrics at zero, one per label value
    /// it can record (outcomes, kinds, its configured providers or destinations), so that
    /// dashboards and alert rules see zeros from start-up rather than gaps. Called once as the
    /// worker starts; the runner's metrics are registered for every handler already.
    fn register_metrics(&self) {}

    /// Handles one event. Must be idempotent: the same event may come again after a crash.
    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult>;
}
