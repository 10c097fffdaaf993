//! The bench's destination: verifies every Standard Webhooks signature (as a real receiver
//! would) and records when each event's alert arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use relay_signing::standard_webhooks;

/// Arrivals by event id: first arrival and how many times it arrived.
#[derive(Default)]
pub(crate) struct Arrivals {
    pub(crate) by_event: HashMap<String, (Instant, u32)>,
    pub(crate) total: u64,
    pub(crate) bad_signatures: u64,
}

/// A running recording sink.
pub(crate) struct RecordingSink {
    pub(crate) addr: SocketAddr,
    pub(crate) arrivals: Arc<Mutex<Arrivals>>,
}

impl RecordingSink {
    pub(crate) async fn start(secret: &str) -> anyhow::Result<Self> {
        let key = Arc::new(standard_webhooks::Secret::parse(secret)?);
        let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
        let app = axum::Router::new().fallback({
            let arrivals = arrivals.clone();
            move |headers: HeaderMap, body: Bytes| {
                let (key, arrivals) = (key.clone(), arrivals.clone());
                async move {
                    let now = Instant::now();
                    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                    let verified = standard_webhooks::verify(
                        &key,
                        header(standard_webhooks::ID_HEADER),
                        header(standard_webhooks::TIMESTAMP_HEADER),
                        header(standard_webhooks::SIGNATURE_HEADER),
                        &body,
                        time::OffsetDateTime::now_utc().unix_timestamp(),
                        standard_webhooks::DEFAULT_TOLERANCE_SECS,
                    )
                    .is_ok();
                    let event_id = serde_json::from_slice::<serde_json::Value>(&body)
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
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, arrivals })
    }

    /// Alerts received so far.
    pub(crate) fn total(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").total
    }
}
