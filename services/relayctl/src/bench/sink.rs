//! The bench's destinations: verifies every signature (as a real receiver would) and records
//! when each event's alert (Standard Webhooks, any path but `/helpdesk`) and each helpdesk
//! message (`X-Reamaze-Hmac-SHA256`, `/helpdesk`) arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use relay_signing::{reamaze, standard_webhooks};
use tokio::sync::Notify;

/// The path of the helpdesk destination.
pub(crate) const HELPDESK_PATH: &str = "/helpdesk";

/// Arrivals by event id and by helpdesk message id: first arrival and how many times it
/// arrived.
#[derive(Default)]
pub(crate) struct Arrivals {
    pub(crate) by_event: HashMap<String, (Instant, u32)>,
    /// Alerts received (any path but the helpdesk's), verified or not.
    pub(crate) total: u64,
    /// Helpdesk messages by their JSON `id`.
    pub(crate) by_message: HashMap<String, (Instant, u32)>,
    pub(crate) bad_signatures: u64,
}

/// A running recording sink.
pub(crate) struct RecordingSink {
    pub(crate) addr: SocketAddr,
    pub(crate) arrivals: Arc<Mutex<Arrivals>>,
    /// Notified after every request.
    changed: Arc<Notify>,
}

impl RecordingSink {
    /// Starts the sink on a free loopback port: alerts signed with the Standard Webhooks
    /// `webhook_secret`, helpdesk messages with the Re:amaze `helpdesk_secret`.
    pub(crate) async fn start(webhook_secret: &str, helpdesk_secret: &str) -> anyhow::Result<Self> {
        let key = Arc::new(standard_webhooks::Secret::parse(webhook_secret)?);
        let helpdesk_secret: Arc<[u8]> = helpdesk_secret.as_bytes().into();
        let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
        let changed: Arc<Notify> = Arc::default();
        let helpdesk = {
            let (arrivals, changed) = (arrivals.clone(), changed.clone());
            move |headers: HeaderMap, body: Bytes| {
                let (secret, arrivals, changed) =
                    (helpdesk_secret.clone(), arrivals.clone(), changed.clone());
                async move {
                    let status = helpdesk_message(&secret, &headers, &body, &arrivals);
                    changed.notify_waiters();
                    status
                }
            }
        };
        let alert = {
            let (arrivals, changed) = (arrivals.clone(), changed.clone());
            move |headers: HeaderMap, body: Bytes| {
                let (key, arrivals, changed) = (key.clone(), arrivals.clone(), changed.clone());
                async move {
                    let status = alert(&key, &headers, &body, &arrivals);
                    changed.notify_waiters();
                    status
                }
            }
        };
        let app = axum::Router::new()
            .route(HELPDESK_PATH, axum::routing::post(helpdesk))
            .fallback(alert);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            arrivals,
            changed,
        })
    }

    /// Alerts received so far.
    pub(crate) fn total(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").total
    }

    /// Waits until `done` holds (checked after every request the sink receives) or `deadline`
    /// passes; true when it holds.
    pub(crate) async fn wait_until(
        &self,
        deadline: Instant,
        done: impl Fn(&Arrivals) -> bool,
    ) -> bool {
        loop {
            let changed = self.changed.notified();
            if done(&self.arrivals.lock().expect("arrivals lock")) {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_err()
            {
                return done(&self.arrivals.lock().expect("arrivals lock"));
            }
        }
    }
}

/// A min-balance alert (or a delivery-scenario job): verified, recorded by its `event_id`.
fn alert(
    key: &standard_webhooks::Secret,
    headers: &HeaderMap,
    body: &[u8],
    arrivals: &Mutex<Arrivals>,
) -> StatusCode {
    let now = Instant::now();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let verified = standard_webhooks::verify(
        key,
        header(standard_webhooks::ID_HEADER),
        header(standard_webhooks::TIMESTAMP_HEADER),
        header(standard_webhooks::SIGNATURE_HEADER),
        body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        standard_webhooks::DEFAULT_TOLERANCE_SECS,
    )
    .is_ok();
    let event_id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("event_id")?.as_str().map(str::to_owned));
    let mut a = arrivals.lock().expect("arrivals lock");
    a.total += 1;
    if !verified {
        a.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if let Some(id) = event_id {
        a.by_event.entry(id).or_insert((now, 0)).1 += 1;
    }
    StatusCode::OK
}

/// A Re:amaze voice message: verified, recorded by its `id`.
fn helpdesk_message(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    arrivals: &Mutex<Arrivals>,
) -> StatusCode {
    let now = Instant::now();
    let signature = headers.get(reamaze::HEADER).and_then(|v| v.to_str().ok());
    let verified = reamaze::verify(secret, body, signature).is_ok();
    let id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
    let mut a = arrivals.lock().expect("arrivals lock");
    if !verified {
        a.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Some(id) = id else {
        return StatusCode::BAD_REQUEST;
    };
    a.by_message.entry(id).or_insert((now, 0)).1 += 1;
    StatusCode::OK
}
