//! Delivery isolation: a destination that hangs or fails never holds up another's jobs, and what
//! waited for it is delivered once it recovers, each job exactly once (by `Idempotency-Key`).
//! No assertion is about speed: deadlines only bound how long the test waits for an outcome.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use relay_core::DeliveryJob;
use relay_core::config::{DestinationConfig, Signing};
use relay_e2e::*;
use tokio::sync::watch;

/// How long the test waits for an outcome before calling it never reached.
const PATIENCE: Duration = Duration::from_secs(120);

/// A destination inside the test: answers `status` (after `release`, when it holds requests)
/// and counts, by `Idempotency-Key`, the requests that arrived and those it answered 2xx.
struct Peer {
    url: String,
    state: Arc<PeerState>,
    _server: tokio::task::JoinHandle<()>,
}

struct PeerState {
    status: AtomicU16,
    /// Requests are held until this is `true`.
    release: watch::Sender<bool>,
    arrived: Mutex<HashMap<String, u32>>,
    answered: Mutex<HashMap<String, u32>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// A metric series that must not be 1 when a request arrives, and how often it was.
    forbidden: Option<String>,
    arrived_when_forbidden: AtomicUsize,
}

impl Peer {
    async fn start(status: u16, held: bool, forbidden: Option<String>) -> Self {
        let state = Arc::new(PeerState {
            status: AtomicU16::new(status),
            release: watch::channel(!held).0,
            arrived: Mutex::default(),
            answered: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            forbidden,
            arrived_when_forbidden: AtomicUsize::new(0),
        });
        let app = axum::Router::new().fallback({
            let state = state.clone();
            move |headers: HeaderMap| {
                let state = state.clone();
                async move { state.answer(&headers).await }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    fn release(&self) {
        self.state.release.send_replace(true);
    }

    fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    fn arrived(&self) -> usize {
        self.state.arrived.lock().unwrap().values().sum::<u32>() as usize
    }

    fn answered(&self) -> HashMap<String, u32> {
        self.state.answered.lock().unwrap().clone()
    }

    fn arrivals(&self) -> HashMap<String, u32> {
        self.state.arrived.lock().unwrap().clone()
    }
}

impl PeerState {
    async fn answer(&self, headers: &HeaderMap) -> StatusCode {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(series) = &self.forbidden
            && metric(series) == 1.0
        {
            self.arrived_when_forbidden.fetch_add(1, Ordering::SeqCst);
        }
        *self.arrived.lock().unwrap().entry(key.clone()).or_default() += 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let _ = self
            .release
            .subscribe()
            .wait_for(|released| *released)
            .await;
        let status = StatusCode::from_u16(self.status.load(Ordering::SeqCst)).unwrap();
        if status.is_success() {
            *self.answered.lock().unwrap().entry(key).or_default() += 1;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        status
    }
}

/// Waits until `done`, or fails naming `what`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After delivery has stopped (its unacknowledged jobs back in their queues): nothing is left
/// to deliver, and nothing was parked.
async fn nothing_left(env: &TestEnv) {
    let channel = env.channel().await;
    for queue in [
        "relay.deliveries",
        "relay.retry.100ms",
        "relay.retry.300ms",
        "relay.dead.deliveries",
    ] {
        assert_eq!(env.queue_len(&channel, queue).await, 0, "{queue}");
    }
}

/// Each job's record counts exactly the requests that arrived for it: waiting (for a slot or
/// for the breaker) spent no attempt.
async fn attempts_are_requests(env: &TestEnv, peer: &Peer, jobs: &[DeliveryJob]) {
    let mut redis = env.redis().await;
    let arrivals = peer.arrivals();
    for job in jobs {
        let key = format!("{}delivery:{}", env.config.redis.key_prefix, job.id);
        let text: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(record["status"], "delivered", "{}", job.id);
        assert_eq!(
            record["attempts"].as_u64(),
            arrivals.get(&job.idempotency_key).map(|n| u64::from(*n)),
            "job {}: attempts as requests",
            job.id
        );
    }
}

fn each_once(what: &str, counts: &HashMap<String, u32>, jobs: &[DeliveryJob]) {
    assert_eq!(counts.len(), jobs.len(), "{what}: every job");
    for job in jobs {
        assert_eq!(
            counts.get(&job.idempotency_key),
            Some(&1),
            "{what}: job {} exactly once",
            job.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_hangs_never_holds_up_another() {
    let stuck = Peer::start(200, true, None).await;
    let steady = Peer::start(200, false, None).await;
    let mut env = TestEnv::new();
    let mut hanging = DestinationConfig::new(&stuck.url, Signing::None, None);
    // Longer than the test: its requests end only when the test releases them.
    hanging.timeout = Duration::from_secs(600);
    env.config
        .destinations
        .insert("isolation-stuck".to_owned(), hanging);
    env.config.destinations.insert(
        "isolation-steady".to_owned(),
        DestinationConfig::new(&steady.url, Signing::None, None),
    );
    // The stuck destination's jobs first: more of them than the consumer's prefetch.
    let stuck_jobs = jobs_for("isolation-stuck", 200);
    let steady_jobs = jobs_for("isolation-steady", 2_000);
    publish_jobs(&env, &stuck_jobs).await;
    publish_jobs(&env, &steady_jobs).await;
    let delivery = start_delivery(&env.config).await;

    until(
        "every steady job delivered while the other destination hangs",
        || steady.answered().len() == steady_jobs.len(),
    )
    .await;
    assert!(
        stuck.answered().is_empty(),
        "nothing answered before release"
    );
    let limit = env.config.destinations["isolation-stuck"].max_in_flight as usize;
    assert!(
        stuck.state.peak_in_flight.load(Ordering::SeqCst) <= limit,
        "at most max_in_flight requests held by the stuck destination"
    );

    stuck.release();
    until("every job of the released destination delivered", || {
        stuck.answered().len() == stuck_jobs.len()
    })
    .await;
    delivery.stop().await;
    nothing_left(&env).await;
    each_once("steady arrivals", &steady.arrivals(), &steady_jobs);
    each_once("stuck arrivals", &stuck.arrivals(), &stuck_jobs);
    each_once("stuck answered", &stuck.answered(), &stuck_jobs);
    attempts_are_requests(&env, &stuck, &stuck_jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_is_left_alone_while_its_breaker_is_open() {
    let open = r#"relay_destination_breaker{destination="breaker-failing",state="open"}"#;
    let closed = r#"relay_destination_breaker{destination="breaker-failing",state="closed"}"#;
    let failing = Peer::start(503, false, Some(open.to_owned())).await;
    let healthy = Peer::start(200, false, None).await;
    let mut env = TestEnv::new();
    let mut hard = DestinationConfig::new(&failing.url, Signing::None, None);
    // One request at a time, so every request that arrives was sent after the breaker's
    // latest decision: none may arrive while it says open.
    hard.max_in_flight = 1;
    hard.breaker_failures = 3;
    hard.breaker_cool_down = Duration::from_millis(500);
    env.config
        .destinations
        .insert("breaker-failing".to_owned(), hard);
    env.config.destinations.insert(
        "breaker-healthy".to_owned(),
        DestinationConfig::new(&healthy.url, Signing::None, None),
    );
    let failing_jobs = jobs_for("breaker-failing", 50);
    let healthy_jobs = jobs_for("breaker-healthy", 500);
    publish_jobs(&env, &failing_jobs).await;
    publish_jobs(&env, &healthy_jobs).await;
    let delivery = start_delivery(&env.config).await;

    // Three failures open it; after each cool-down one probe fails and opens it again.
    let mut seen_open = false;
    until(
        "the healthy destination served while the failing one's breaker opens and its probes fail",
        || {
            seen_open |= metric(open) == 1.0;
            healthy.answered().len() == healthy_jobs.len() && failing.arrived() >= 5
        },
    )
    .await;
    assert!(seen_open, "the breaker was seen open");
    let deferred =
        r#"relay_delivery_deferred_total{destination="breaker-failing",reason="breaker_open"}"#;
    assert!(metric(deferred) > 0.0, "jobs waited in the delay tiers");

    failing.answer_with(200);
    until("every deferred job delivered after recovery", || {
        failing.answered().len() == failing_jobs.len()
    })
    .await;
    assert_eq!(metric(closed), 1.0, "a successful probe closed the breaker");
    assert_eq!(metric(open), 0.0);
    delivery.stop().await;
    nothing_left(&env).await;
    assert_eq!(
        failing.state.arrived_when_forbidden.load(Ordering::SeqCst),
        0,
        "no request reached the destination while its breaker was open"
    );
    each_once("healthy", &healthy.answered(), &healthy_jobs);
    each_once("recovered", &failing.answered(), &failing_jobs);
    attempts_are_requests(&env, &failing, &failing_jobs).await;
}
