//! Load on relay-ingress: closed loop (fixed concurrency, as fast as it answers) and open loop
//! (a fixed offered rate, whatever the answers do).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::env::{ACCOUNT_ID, API_KEY, SALT};

/// Callback ids never repeat within a process (the bench's dedup marks would swallow them).
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(0);

/// `n` fresh, correctly signed callback bodies with their event ids.
pub(crate) fn callbacks(n: usize) -> Vec<(String, Vec<u8>)> {
    if NEXT_CALLBACK.load(Ordering::Relaxed) == 0 {
        let seed = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(1)
            * 1_000_000;
        let _ = NEXT_CALLBACK.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let first = NEXT_CALLBACK.fetch_add(n as u64, Ordering::Relaxed);
    (first..first + n as u64)
        .map(|id| {
            let body = relay_signing::voximplant::sample_min_balance(
                ACCOUNT_ID, id, API_KEY, SALT, 0.5, false,
            );
            let event_id = relay_core::ids::derived_event_id(
                "voximplant",
                &[&ACCOUNT_ID.to_string(), &id.to_string()],
            );
            (event_id, serde_json::to_vec(&body).expect("json"))
        })
        .collect()
}

/// Latency summary of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Result of a closed-loop run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throughput {
    pub(crate) requests: usize,
    pub(crate) concurrency: usize,
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
    pub(crate) latency: Latency,
    pub(crate) failures: usize,
}

impl Throughput {
    /// Joins load tasks (each returning its latency histogram and failure count) started at
    /// `started` into one result.
    pub(crate) async fn join(
        tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, usize)>>,
        requests: usize,
        concurrency: usize,
        started: Instant,
    ) -> Self {
        let mut h = histogram();
        let mut failures = 0;
        for task in tasks {
            match task.await {
                Ok((part, f)) => {
                    let _ = h.add(part);
                    failures += f;
                }
                // A load task that panicked lost its share of the requests: count them failed.
                Err(_) => failures += requests / concurrency.max(1),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Self {
            requests,
            concurrency,
            seconds,
            per_second: requests as f64 / seconds,
            latency: Latency::of(&h),
            failures,
        }
    }
}

pub(crate) fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("HTTP client")
}

/// `concurrency` keep-alive connections, each sending its next request when the last answered.
pub(crate) async fn closed_loop(
    url: &str,
    bodies: Vec<(String, Vec<u8>)>,
    concurrency: usize,
) -> Throughput {
    let requests = bodies.len();
    let bodies = Arc::new(bodies);
    let client = client(concurrency);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, bodies, next) =
                (client.clone(), url.to_owned(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut h = histogram();
                let mut failures = 0;
                while let Some((_, body)) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let sent = Instant::now();
                    if !post(&client, &url, body.clone()).await {
                        failures += 1;
                    }
                    h.saturating_record(sent.elapsed().as_micros() as u64);
                }
                (h, failures)
            })
        })
        .collect();
    Throughput::join(tasks, requests, concurrency, started).await
}

/// Posts one JSON body; true on a 2xx.
pub(crate) async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> bool {
    send(
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// Sends one request; true on a 2xx (its answer read to the end, so the connection is reused).
pub(crate) async fn send(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// One request of an open-loop plan, built when it is due.
pub(crate) struct Planned<K> {
    /// When it is due, after the run's start.
    pub(crate) at: Duration,
    /// What the caller knows it by.
    pub(crate) key: K,
    pub(crate) url: Arc<str>,
    /// Header names and values, `content-type` included.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

/// Sends `bodies` at `rate` per second, each at its planned instant (open loop: a slow answer
/// does not delay the next request). Returns the planned send instant of each body and
/// whether ingress accepted it.
pub(crate) async fn open_loop(
    url: &str,
    bodies: Vec<(String, Vec<u8>)>,
    rate: u32,
) -> Vec<(String, Instant, bool)> {
    let url: Arc<str> = url.into();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let plan = bodies
        .into_iter()
        .enumerate()
        .map(|(i, (event_id, body))| Planned {
            at: interval.mul_f64(i as f64),
            key: event_id,
            url: url.clone(),
            headers: vec![("content-type", "application/json".to_owned())],
            body,
        })
        .collect();
    open_loop_plan(plan).await
}

/// Sends each request of `plan` (in time order) at its planned instant, whatever the answers
/// to earlier ones do. Returns each request's key, planned send instant and whether ingress
/// accepted it.
pub(crate) async fn open_loop_plan<K: Send + 'static>(
    plan: Vec<Planned<K>>,
) -> Vec<(K, Instant, bool)> {
    let client = client(256);
    // Bounds the requests in flight should ingress stall, so the bench itself stays bounded.
    let permits = Arc::new(tokio::sync::Semaphore::new(4096));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(plan.len());
    for request in plan {
        let planned = start + request.at;
        tokio::time::sleep_until(planned).await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let mut builder = client.post(&*request.url).body(request.body);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let key = request.key;
        tasks.push(tokio::spawn(async move {
            let ok = send(builder).await;
            drop(permit);
            (key, planned.into_std(), ok)
        }));
    }
    let mut sent = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(r) = task.await {
            sent.push(r);
        }
    }
    sent
}
