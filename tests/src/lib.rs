//! The end-to-end harness: real RabbitMQ, real Redis, every service in-process.
//!
//! Each [`TestEnv`] gets its own RabbitMQ vhost (created with `rabbitmqctl`, deleted on drop) and
//! its own Redis key prefix (deleted on drop), so tests run in parallel and leave nothing behind.
//! External HTTP peers are real servers on loopback ([`Sink`]). Waiting is done on events
//! (a request arriving, a message appearing) with deadlines, never with fixed sleeps.

pub mod browser;
mod calls;
pub mod faults;
mod helpdesk;
pub mod operator;
mod process;

pub use calls::{EVENTS_SECRET, PLIVO_TOKEN, PUBLIC_BASE, plivo_callback, voximplant_event};
pub use helpdesk::Helpdesk;
pub use process::Child;
pub use relay_store::PrivateRedis;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use relay_core::config::{Config, DestinationConfig, Signing, VoximplantAccount};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The Voximplant account every test environment accepts.
pub const ACCOUNT_ID: u64 = 4242;
/// Its API key.
pub const API_KEY: &str = "test-api-key";
/// The callback salt.
pub const SALT: &str = "test-salt";
/// The Standard Webhooks secret of the `alerts` destination.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The Re:amaze shared secret of the `helpdesk` destination.
pub const HELPDESK_SECRET: &str = "test-helpdesk-secret";

/// One isolated environment: a vhost, a Redis prefix, and a configuration pointing at both.
pub struct TestEnv {
    /// The vhost's name.
    pub vhost: String,
    /// Configuration for every service (listeners on port 0).
    pub config: Config,
    /// The secrets the configuration names, by variable, for child processes.
    secrets: Vec<(String, String)>,
    /// Whether the vhost is ours to delete (on the shared broker).
    owns_vhost: bool,
}

impl TestEnv {
    /// Creates the vhost and the configuration. Short retry tiers keep retry tests fast.
    pub fn new() -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let vhost = format!("relay-test-{id}");
        relay_amqp::vhost::create(&vhost, "guest").expect("create the test vhost");
        let url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
        Self::with(id, vhost, url, true)
    }

    /// An environment on a broker of the test's own (`amqp_url`, its default vhost), with a
    /// key prefix of its own on the shared Redis.
    pub fn on_private_broker(amqp_url: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Self::with(id, "/".to_owned(), amqp_url.to_owned(), false)
    }

    fn with(id: String, vhost: String, amqp_url: String, owns_vhost: bool) -> Self {
        relay_telemetry::init_for_tests();
        let mut config = Config::default();
        config.amqp.url = amqp_url;
        config.amqp.retry_tiers = vec![Duration::from_millis(100), Duration::from_millis(300)];
        config.redis.key_prefix = format!("relay-test:{id}:");
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        config.ingress.listen = local;
        config.ingress.admin_listen = local;
        config.ingress.shutdown_grace = Duration::from_secs(5);
        config.worker.admin_listen = local;
        config.worker.shutdown_grace = Duration::from_secs(5);
        config.delivery.admin_listen = local;
        config.delivery.shutdown_grace = Duration::from_secs(5);
        config.delivery.backoff_base = Duration::from_millis(50);
        config.delivery.backoff_max = Duration::from_millis(300);
        // The min-balance handler's queue exists in every environment (tests probe it for what
        // ingress published); starting the worker needs its destination (`alerts_to`).
        config.worker.min_balance_alert = Some(min_balance_alert());
        let mut env = Self {
            vhost,
            config,
            secrets: Vec::new(),
            owns_vhost,
        };
        env.config.ingress.voximplant.salt_env = Some(env.secret("TEST_SALT", SALT));
        env.config.ingress.voximplant.accounts = vec![VoximplantAccount {
            account_id: ACCOUNT_ID,
            api_key_env: env.secret("TEST_API_KEY", API_KEY),
        }];
        env
    }

    /// Enables the min-balance handler with its `alerts` destination (Standard Webhooks
    /// signed) at `url`.
    pub fn alerts_to(&mut self, url: &str) {
        let secret = self.secret("TEST_WEBHOOK_SECRET", WEBHOOK_SECRET);
        self.config.destinations.insert(
            "alerts".to_owned(),
            DestinationConfig::new(url, Signing::StandardWebhooks, Some(secret)),
        );
        self.config
            .worker
            .min_balance_alert
            .get_or_insert_with(min_balance_alert);
    }

    /// Enables the call log with its `helpdesk` destination (Re:amaze signed) at `url`.
    pub fn helpdesk_to(&mut self, url: &str) {
        let secret = self.secret("TEST_HELPDESK_SECRET", HELPDESK_SECRET);
        self.config.destinations.insert(
            "helpdesk".to_owned(),
            DestinationConfig::new(url, Signing::ReamazeHmac, Some(secret)),
        );
        self.config
            .worker
            .call_log
            .get_or_insert_with(Default::default);
    }

    /// A connection to this environment's vhost.
    pub async fn connection(&self) -> lapin::Connection {
        lapin::Connection::connect(
            &self.config.amqp.url,
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("test connection")
    }

    /// Declares the topology the worker would declare for this configuration.
    pub async fn declare_topology(&self) {
        let connection = self.connection().await;
        relay_worker::handlers::topology(&self.config)
            .declare(&connection)
            .await
            .expect("declare the topology");
        let _ = connection.close(200, "declared".into()).await;
    }

    /// An AMQP channel on this environment's vhost, for probing queues.
    pub async fn channel(&self) -> lapin::Channel {
        let conn = self.connection().await;
        let channel = conn.create_channel().await.expect("test channel");
        // The connection lives as long as the channel is used: leak it for the test's duration.
        std::mem::forget(conn);
        channel
    }

    /// Ready messages in `queue` (the queue must exist).
    pub async fn queue_len(&self, channel: &lapin::Channel, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue} should exist: {e}"))
            .message_count()
    }

    /// Waits for a message in `queue` and takes it (acked).
    pub async fn next_message(
        &self,
        channel: &lapin::Channel,
        queue: &str,
        timeout: Duration,
    ) -> Option<lapin::message::BasicGetMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get");
            if got.is_some() || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A Redis connection for probing keys.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.config.redis.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.owns_vhost
            && let Err(e) = relay_amqp::vhost::delete(&self.vhost)
        {
            eprintln!("cleanup: {e}");
        }
        if let Err(e) =
            relay_store::purge_prefix(&self.config.redis.url, &self.config.redis.key_prefix)
        {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The min-balance handler as the suite uses it: no throttle, so every callback of the test
/// account alerts (tests that exercise the lifecycle set their own).
fn min_balance_alert() -> relay_core::config::MinBalanceAlertConfig {
    relay_core::config::MinBalanceAlertConfig {
        throttle: Duration::ZERO,
        ..Default::default()
    }
}

/// A service running in the background of the test.
pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// The admin address.
    pub admin: SocketAddr,
}

impl Running {
    /// Stops the service the way SIGTERM would, and waits until it has drained.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_ready(self.admin).await;
    }
}

/// Waits until the admin server at `admin` reports ready (10 s at most).
pub async fn wait_ready(admin: SocketAddr) {
    let url = format!("http://{admin}/readyz");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("service at {admin} never became ready");
}

/// Starts relay-ingress; returns it and its public address.
pub async fn start_ingress(config: &Config) -> (Running, SocketAddr) {
    let ingress = relay_ingress::Ingress::build(config.clone())
        .await
        .expect("ingress builds");
    let addr = ingress.local_addr();
    let admin = ingress.admin_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            ingress.run_until_stopped(stop).await.expect("ingress runs");
        }
    });
    (Running { stop, task, admin }, addr)
}

/// Starts relay-worker.
pub async fn start_worker(config: &Config) -> Running {
    let worker = relay_worker::Worker::build(config.clone())
        .await
        .expect("worker builds");
    let admin = worker.admin_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            worker.run_until_stopped(stop).await.expect("worker runs");
        }
    });
    Running { stop, task, admin }
}

/// Starts relay-delivery.
pub async fn start_delivery(config: &Config) -> Running {
    let service = relay_delivery::DeliveryService::build(config.clone())
        .await
        .expect("delivery builds");
    let admin = service.admin_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            service
                .run_until_stopped(stop)
                .await
                .expect("delivery runs");
        }
    });
    Running { stop, task, admin }
}

/// A signed min-balance callback body for the test account.
pub fn min_balance_body(callback_id: u64) -> Vec<u8> {
    let value = relay_signing::voximplant::sample_min_balance(
        ACCOUNT_ID,
        callback_id,
        API_KEY,
        SALT,
        1.25,
        false,
    );
    serde_json::to_vec(&value).expect("json")
}

/// Posts `body` to the Voximplant callbacks route.
pub async fn post_callbacks(
    addr: SocketAddr,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/v1/voximplant/callbacks"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("ingress answers")
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A real HTTP peer on loopback that answers a script of statuses (then 200) and reports every
/// request it receives.
pub struct Sink {
    /// Base URL, e.g. `http://127.0.0.1:41234/alerts`.
    pub url: String,
    received: mpsc::UnboundedReceiver<Received>,
    count: Arc<AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Starts a sink answering `script` in order, then 200 forever.
    pub async fn start(script: &[u16]) -> Self {
        Self::start_with_delay(script, Duration::ZERO).await
    }

    /// Like [`Sink::start`], holding every response for `delay` (a slow destination).
    pub async fn start_with_delay(script: &[u16], delay: Duration) -> Self {
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let count = Arc::new(AtomicUsize::new(0));
        let (tx, received) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback({
            let count = count.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let script = script.clone();
                let count = count.clone();
                let tx = tx.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    let status = script
                        .lock()
                        .expect("script lock")
                        .pop_front()
                        .unwrap_or(200);
                    tokio::time::sleep(delay).await;
                    let status = StatusCode::from_u16(status).expect("valid status");
                    (status, format!("sink answered {}", status.as_u16()))
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("sink serves");
        });
        Self {
            url: format!("http://{addr}/alerts"),
            received,
            count,
            _server: server,
        }
    }

    /// The next request, waiting up to `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// A loopback TCP proxy whose connections can be cut, to simulate a broker restart without
/// disturbing the shared broker other tests use.
pub struct Proxy {
    /// The proxy's address.
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let handle = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().expect("proxy lock").push(handle);
                }
            }
        });
        Self {
            addr,
            connections,
            _accept: accept,
        }
    }

    /// Cuts every open connection (new ones are accepted again).
    pub fn sever(&self) {
        for handle in self.connections.lock().expect("proxy lock").drain(..) {
            handle.abort();
        }
    }
}

/// A local port with nothing listening on it.
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The current Prometheus exposition of this process.
pub fn metrics_text() -> String {
    relay_telemetry::metrics_handle().render()
}

/// The value of one series of this process's metrics, e.g.
/// `relay_redis_errors_total{op="seen"}`, or 0 when it does not exist yet. Metrics are per
/// process: tests that assert on them live in a binary of their own (`tests/metrics.rs`).
pub fn metric(series: &str) -> f64 {
    series_value(&metrics_text(), series)
}

/// The value of `series` in a Prometheus text exposition, 0 when absent.
pub fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// The `/metrics` text of the service whose admin port is `admin`.
pub async fn admin_metrics(admin: SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("the admin port answers")
        .text()
        .await
        .expect("metrics text")
}

/// All three services on one configuration.
pub struct Relay {
    /// relay-ingress.
    pub ingress: Running,
    /// relay-worker.
    pub worker: Running,
    /// relay-delivery.
    pub delivery: Running,
    /// The ingress public address.
    pub addr: SocketAddr,
}

impl Relay {
    /// Starts ingress, worker and delivery, and waits until ingress is ready.
    pub async fn start(config: &Config) -> Self {
        let (ingress, addr) = start_ingress(config).await;
        let worker = start_worker(config).await;
        let delivery = start_delivery(config).await;
        ingress.wait_ready().await;
        Self {
            ingress,
            worker,
            delivery,
            addr,
        }
    }

    /// Stops them in pipeline order: delivery, worker, ingress.
    pub async fn stop(self) {
        self.delivery.stop().await;
        self.worker.stop().await;
        self.ingress.stop().await;
    }
}

/// A throwaway RSA key pair (the relay-delivery test fixture) for Voximplant service-account
/// tokens: the private key signs, the public one verifies.
pub const VOX_PRIVATE: &str =
    include_str!("../../services/relay-delivery/tests/fixtures/voximplant-test-key.pem");
/// The public half of [`VOX_PRIVATE`].
pub const VOX_PUBLIC: &str =
    include_str!("../../services/relay-delivery/tests/fixtures/voximplant-test-key.pub.pem");

/// `count` jobs for `destination`, ids unique to this run.
pub fn jobs_for(destination: &str, count: usize) -> Vec<relay_core::DeliveryJob> {
    (0..count)
        .map(|i| {
            let event_id = relay_core::ids::new_event_id();
            relay_core::DeliveryJob::post(
                relay_core::ids::job_id(&event_id, "e2e", i as u32),
                &event_id,
                "e2e",
                destination,
                "application/json",
                format!(r#"{{"n":{i}}}"#),
            )
        })
        .collect()
}

/// Publishes `jobs` to `relay.deliveries` through the relay's own job publisher, in order of
/// chunks, every one confirmed.
pub async fn publish_jobs(env: &TestEnv, jobs: &[relay_core::DeliveryJob]) {
    env.declare_topology().await;
    let stop = CancellationToken::new();
    let broker = relay_amqp::Broker::start(
        relay_amqp::BrokerSettings::from_config(&env.config, "relay-test"),
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(broker.wait_connected(Duration::from_secs(10)).await);
    for chunk in jobs.chunks(256) {
        let results = futures_util::future::join_all(
            chunk
                .iter()
                .map(|job| relay_amqp::jobs::publish(&broker, job)),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "every job confirmed");
    }
    stop.cancel();
}

impl TestEnv {
    /// Delivery's record of `job_id` (JSON, as Redis holds it) once it has `status`
    /// (`delivered`, `retrying`, `dead`), waiting up to 15 s.
    pub async fn wait_for_record(&self, job_id: &str, status: &str) -> serde_json::Value {
        let mut redis = self.redis().await;
        let key = format!("{}delivery:{job_id}", self.config.redis.key_prefix);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let text: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .expect("redis answers");
            if let Some(text) = text {
                let record: serde_json::Value = serde_json::from_str(&text).expect("a JSON record");
                if record["status"] == status {
                    return record;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} never reached status {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl TestEnv {
    /// A queue of this test's own bound to `relay.events` for every delivery outcome event
    /// (`relay.delivery.#`), as a handler would bind to them; read it with [`TestEnv::next_message`].
    pub async fn outcome_queue(&self, channel: &lapin::Channel) -> String {
        self.declare_topology().await;
        let queue = format!("e2e-outcomes-{}", uuid::Uuid::now_v7().simple());
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the outcome queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                relay_core::routing::EVENTS_EXCHANGE.into(),
                "relay.delivery.#".into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the outcome queue");
        queue
    }
}
