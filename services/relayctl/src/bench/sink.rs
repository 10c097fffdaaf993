//! The bench's destinations: verifies every signature (as a real receiver would) and records
//! when each event's alert (Standard Webhooks, any path but `/helpdesk`) and each helpdesk
//! message (`X-Reamaze-Hmac-SHA256`, `/helpdesk`) arrived. Beside it, [`HoldingSink`]: a
//! destination that never answers until it is released (the isolation scenario's stuck one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use relay_signing::{reamaze, standard_webhooks};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The path of the helpdesk destination.
pub(crate) const HELPDESK_PATH: &str = "/helpdesk";

/// Arrivals by event id and by helpdesk message id: first arrival and how many times it
/// arrived.
#[derive(Default)]
pub(crate) struct Arrivals {
    pub(crate) by_event: HashMap<String, (Instant, u32)>,
    /// Alerts received (any path but the helpdesk's), verified or not.
    pub(crate) total: u64,
    /// When each verified alert arrived, by request path (the isolation scenario tells its
    /// destination apart by it).
    pub(crate) by_path: HashMap<String, Vec<Instant>>,
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
            move |uri: Uri, headers: HeaderMap, body: Bytes| {
                let (key, arrivals, changed) = (key.clone(), arrivals.clone(), changed.clone());
                async move {
                    let status = alert(&key, uri.path(), &headers, &body, &arrivals);
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

    /// Verified alerts received at `path` so far.
    pub(crate) fn at_path(&self, path: &str) -> usize {
        self.arrivals
            .lock()
            .expect("arrivals lock")
            .by_path
            .get(path)
            .map_or(0, Vec::len)
    }

    /// When the verified alerts at `path` arrived, from the `skip`th on.
    pub(crate) fn times_at(&self, path: &str, skip: usize) -> Vec<Instant> {
        self.arrivals
            .lock()
            .expect("arrivals lock")
            .by_path
            .get(path)
            .map_or_else(Vec::new, |t| t.iter().skip(skip).copied().collect())
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
    path: &str,
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
    a.by_path.entry(path.to_owned()).or_default().push(now);
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

/// A destination that holds every request open, answering none until [`HoldingSink::release`]
/// (then each held request, and any later one, gets a 503 at once). Its own listener, so
/// [`HoldingSink::close`] can shut it down without touching the recording sink. Dropped, it
/// releases and closes, so an early exit leaves nothing hanging.
pub(crate) struct HoldingSink {
    pub(crate) addr: SocketAddr,
    counts: Arc<HoldCounts>,
    release: CancellationToken,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// What the holding sink has seen.
#[derive(Default)]
struct HoldCounts {
    received: AtomicU64,
    held: AtomicU64,
    peak: AtomicU64,
    first: Mutex<Option<Instant>>,
}

/// Counts a request as held while it lives (also when the client gives up and hyper drops it).
struct Held(Arc<HoldCounts>);

impl Held {
    fn new(counts: Arc<HoldCounts>) -> Self {
        let now = Instant::now();
        counts.first.lock().expect("hold lock").get_or_insert(now);
        counts.received.fetch_add(1, Ordering::AcqRel);
        let holding = counts.held.fetch_add(1, Ordering::AcqRel) + 1;
        counts.peak.fetch_max(holding, Ordering::AcqRel);
        Self(counts)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HoldingSink {
    /// Starts the holding sink on a free loopback port.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let counts: Arc<HoldCounts> = Arc::default();
        let release = CancellationToken::new();
        let shutdown = CancellationToken::new();
        let hold = {
            let (counts, release) = (counts.clone(), release.clone());
            move || {
                let (counts, release) = (counts.clone(), release.clone());
                async move {
                    let _held = Held::new(counts);
                    release.cancelled().await;
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        };
        let app = axum::Router::new().fallback(hold);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            counts,
            release,
            shutdown,
            server: Some(server),
        })
    }

    /// Requests received so far.
    pub(crate) fn received(&self) -> u64 {
        self.counts.received.load(Ordering::Acquire)
    }

    /// When the first request arrived.
    pub(crate) fn first_request(&self) -> Option<Instant> {
        *self.counts.first.lock().expect("hold lock")
    }

    /// Requests held open now.
    pub(crate) fn held(&self) -> u64 {
        self.counts.held.load(Ordering::Acquire)
    }

    /// The most requests held open at once so far.
    pub(crate) fn peak_held(&self) -> u64 {
        self.counts.peak.load(Ordering::Acquire)
    }

    /// Answers every held request (503), and every later one at once.
    pub(crate) fn release(&self) {
        self.release.cancel();
    }

    /// Releases, stops listening and waits (up to 5 s) for the open connections to finish.
    pub(crate) async fn close(mut self) {
        self.release.cancel();
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
                eprintln!(
                    "bench: the holding sink's connections did not close within 5 s; dropped"
                );
            }
        }
    }
}

impl Drop for HoldingSink {
    fn drop(&mut self) {
        self.release.cancel();
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
