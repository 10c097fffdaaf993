//! A steady load of signed callbacks, a destination whose answer the test sets, and the
//! bookkeeping that says whether anything accepted was lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::{ACCOUNT_ID, min_balance_body};

/// The event id ingress gives the min-balance callback `id` of the test account.
pub fn event_id(id: u64) -> String {
    relay_core::ids::derived_event_id("voximplant", &[&ACCOUNT_ID.to_string(), &id.to_string()])
}

/// Signed min-balance callbacks at a steady rate, each with an id of its own.
pub struct Load {
    accepted: Arc<Mutex<BTreeSet<u64>>>,
    refused: Arc<AtomicU64>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Sends `per_second` callbacks to the ingress at `addr`, ids from `first_id` up.
    pub fn start(addr: SocketAddr, per_second: u32, first_id: u64) -> Self {
        let accepted: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let task = tokio::spawn({
            let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut id = first_id;
                let mut in_flight = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let (client, accepted, refused) =
                        (client.clone(), accepted.clone(), refused.clone());
                    in_flight.spawn(async move {
                        let sent = client
                            .post(format!("http://{addr}/v1/voximplant/callbacks"))
                            .header("content-type", "application/json")
                            .body(min_balance_body(id))
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == StatusCode::OK) {
                            accepted.lock().expect("load lock").insert(id);
                        } else {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    id += 1;
                    while in_flight.try_join_next().is_some() {}
                }
                while in_flight.join_next().await.is_some() {}
            }
        });
        Self {
            accepted,
            refused,
            stop,
            task: Some(task),
        }
    }

    /// Callback ids accepted so far.
    pub fn accepted(&self) -> BTreeSet<u64> {
        self.accepted.lock().expect("load lock").clone()
    }

    /// Requests not accepted so far (503s, refused connections, timeouts).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[derive(Default)]
struct Seen {
    /// 2xx answers per event id.
    delivered: BTreeMap<String, u32>,
    /// Requests answered with something else.
    refused: u64,
}

/// A destination that answers what the test says (200 by default) and counts deliveries by
/// the alert's event id.
#[derive(Clone)]
pub struct FaultSink {
    /// The destination URL.
    pub url: String,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Seen>>,
}

impl FaultSink {
    /// Starts it.
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let app = axum::Router::new().fallback({
            let (status, seen) = (status.clone(), seen.clone());
            move |_headers: HeaderMap, body: Bytes| {
                let (status, seen) = (status.clone(), seen.clone());
                async move {
                    let answer = status.load(Ordering::Relaxed);
                    let event: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let id = event["event_id"].as_str().unwrap_or_default().to_owned();
                    let mut seen = seen.lock().expect("sink lock");
                    if (200..300).contains(&answer) {
                        *seen.delivered.entry(id).or_default() += 1;
                    } else {
                        seen.refused += 1;
                    }
                    StatusCode::from_u16(answer).expect("a status")
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("sink serves");
        });
        Self {
            url: format!("http://{addr}/alerts"),
            status,
            seen,
        }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Deliveries (2xx) per event id so far.
    pub fn delivered(&self) -> BTreeMap<String, u32> {
        self.seen.lock().expect("sink lock").delivered.clone()
    }

    /// Requests answered with a failure so far.
    pub fn refused(&self) -> u64 {
        self.seen.lock().expect("sink lock").refused
    }
}

/// What one fault did, for the table.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The fault.
    pub fault: String,
    /// Callbacks accepted (200) by the end of it, in all.
    pub accepted: usize,
    /// Of those, delivered.
    pub delivered: usize,
    /// Accepted and never delivered.
    pub lost: usize,
    /// Extra deliveries of an event (at-least-once after a crash).
    pub duplicates: usize,
    /// Requests refused during it (503 or no connection), which the provider would retry.
    pub refused: u64,
    /// Seconds from healing the fault until everything accepted was delivered.
    pub recovery_secs: f64,
}

/// Waits until every accepted callback's alert was delivered (or `timeout`), and says how
/// it went.
pub async fn settle(
    fault: &str,
    load: &Load,
    sink: &FaultSink,
    refused_before: u64,
    timeout: Duration,
) -> Outcome {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    loop {
        let accepted = load.accepted();
        let delivered = sink.delivered();
        let missing = accepted
            .iter()
            .filter(|id| !delivered.contains_key(&event_id(**id)))
            .count();
        if missing == 0 || tokio::time::Instant::now() >= deadline {
            let duplicates = delivered
                .values()
                .map(|n| (*n as usize).saturating_sub(1))
                .sum();
            return Outcome {
                fault: fault.to_owned(),
                accepted: accepted.len(),
                delivered: accepted.len() - missing,
                lost: missing,
                duplicates,
                refused: load.refused() - refused_before,
                recovery_secs: started.elapsed().as_secs_f64(),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The results as a table.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| fault | accepted (total) | delivered | lost | duplicates | refused meanwhile | recovered in |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            o.fault, o.accepted, o.delivered, o.lost, o.duplicates, o.refused, o.recovery_secs
        ));
    }
    out
}
