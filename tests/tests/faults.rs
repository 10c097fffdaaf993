//! The fault suite: the three services as processes under a steady load of signed callbacks,
//! and one fault after another. After each, every callback that was accepted must reach the
//! destination (counted there by event id), duplicates only where the design allows them (a
//! delivery killed between sending and recording), and nothing parked that was accepted.
//! Each part prints a table of its results.
//!
//! Part one runs on the shared broker (a vhost of its own) with a Redis of its own; part two
//! on a three-node RabbitMQ cluster of its own behind a balancer. They run one at a time.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use relay_e2e::faults::*;
use relay_e2e::*;
use tokio::sync::Mutex;

static ALONE: Mutex<()> = Mutex::const_new(());
/// Callbacks per second of the steady load.
const RATE: u32 = 40;
/// How long recovery from one fault may take before the test calls it lost.
const RECOVERY: Duration = Duration::from_secs(90);

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// A relay configured for fault runs: the sink as its alert destination, a fixed ingress port
/// (the load keeps its address across restarts), quick reconnects.
fn relay_env(mut env: TestEnv, sink: &FaultSink, redis_url: Option<String>) -> TestEnv {
    env.alerts_to(&sink.url);
    env.config.ingress.listen = free_port();
    env.config.amqp.reconnect_max_delay = Duration::from_secs(1);
    env.config.amqp.retry_tiers = vec![Duration::from_millis(200), Duration::from_secs(1)];
    env.config.delivery.backoff_base = Duration::from_millis(100);
    env.config.delivery.backoff_max = Duration::from_secs(1);
    let alerts = env.config.destinations.get_mut("alerts").unwrap();
    alerts.max_attempts = 1000;
    alerts.timeout = Duration::from_secs(2);
    if let Some(url) = redis_url {
        env.config.redis.url = url;
        env.config.redis.probe_interval = Duration::from_millis(200);
    }
    env
}

/// The three services, as processes.
struct Services {
    ingress: Option<Child>,
    worker: Option<Child>,
    delivery: Option<Child>,
}

impl Services {
    async fn start(env: &TestEnv) -> Self {
        Self {
            ingress: Some(env.spawn("relay-ingress").await),
            worker: Some(env.spawn("relay-worker").await),
            delivery: Some(env.spawn("relay-delivery").await),
        }
    }

    fn slot(&mut self, name: &str) -> &mut Option<Child> {
        match name {
            "relay-ingress" => &mut self.ingress,
            "relay-worker" => &mut self.worker,
            _ => &mut self.delivery,
        }
    }

    /// `kill -9` one service, and start it again after a moment.
    async fn crash(&mut self, env: &TestEnv, name: &'static str) {
        if let Some(child) = self.slot(name).take() {
            child.kill();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        *self.slot(name) = Some(env.spawn(name).await);
    }

    fn stop(&mut self) {
        for name in ["relay-ingress", "relay-worker", "relay-delivery"] {
            if let Some(child) = self.slot(name).take() {
                child.terminate();
            }
        }
    }
}

/// Runs `fault`, then waits for recovery, and records the outcome; duplicates are allowed
/// only when `duplicates_allowed`.
struct Run {
    outcomes: Vec<Outcome>,
    duplicates: usize,
}

impl Run {
    async fn after(
        &mut self,
        fault: &str,
        load: &Load,
        sink: &FaultSink,
        refused_before: u64,
        duplicates_allowed: bool,
    ) {
        let outcome = settle(fault, load, sink, refused_before, RECOVERY).await;
        let new_duplicates = outcome.duplicates - self.duplicates;
        self.duplicates = outcome.duplicates;
        println!(
            "{fault}: {} accepted, {} lost, {new_duplicates} new duplicates",
            outcome.accepted, outcome.lost
        );
        assert_eq!(outcome.lost, 0, "{fault}: accepted callbacks were lost");
        if !duplicates_allowed {
            assert_eq!(
                new_duplicates, 0,
                "{fault}: duplicates where none are allowed"
            );
        }
        self.outcomes.push(outcome);
    }
}

/// Polls `admin`'s /readyz until `done(status, body)`.
async fn readyz_until(admin: std::net::SocketAddr, done: impl Fn(u16, &str) -> bool) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        if let Ok(response) = client.get(format!("http://{admin}/readyz")).send().await {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if done(status, &body) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz stayed {status}: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits long enough for some load to flow (a moment of steady state between faults).
async fn steady(load: &Load, more: usize) {
    let target = load.accepted().len() + more;
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while load.accepted().len() < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never flowed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_one_broker_lose_nothing() {
    let _alone = ALONE.lock().await;
    let sink = FaultSink::start().await;
    let mut redis = PrivateRedis::start().await;
    let env = relay_env(TestEnv::new(), &sink, Some(redis.url()));
    let mut services = Services::start(&env).await;
    let mut load = Load::start(env.config.ingress.listen, RATE, 1);
    let mut run = Run {
        outcomes: Vec::new(),
        duplicates: 0,
    };

    steady(&load, 40).await;
    run.after("none (steady load)", &load, &sink, 0, false)
        .await;

    for (service, duplicates_allowed) in [
        ("relay-ingress", false),
        ("relay-worker", false),
        ("relay-delivery", true),
    ] {
        let before = load.refused();
        services.crash(&env, service).await;
        steady(&load, 20).await;
        run.after(
            &format!("kill -9 {service}"),
            &load,
            &sink,
            before,
            duplicates_allowed,
        )
        .await;
    }

    let before = load.refused();
    let closed = close_connections(&env.vhost).await;
    assert!(closed >= 3, "the relay's connections were found ({closed})");
    steady(&load, 20).await;
    run.after("broker connections closed", &load, &sink, before, false)
        .await;

    let before = load.refused();
    redis.kill();
    tokio::time::sleep(Duration::from_secs(30)).await;
    redis.resume().await;
    steady(&load, 20).await;
    run.after("Redis down for 30 s", &load, &sink, before, false)
        .await;

    let before = load.refused();
    sink.answer(503);
    tokio::time::sleep(Duration::from_secs(5)).await;
    sink.answer(200);
    run.after(
        "destination answers 503 for 5 s",
        &load,
        &sink,
        before,
        false,
    )
    .await;

    // 400: jobs are parked at once, never retried; a replay delivers them.
    let before = load.refused();
    sink.answer(400);
    let refused_by_sink = sink.refused();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while sink.refused() < refused_by_sink + 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 400 was answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.answer(200);
    let channel = env.channel().await;
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while env.queue_len(&channel, "relay.dead.deliveries").await < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the 400s were not parked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out) = env.relayctl(&["dead", "replay", "--all"]).await;
    assert!(ok, "relayctl dead replay: {out}");
    run.after(
        "destination answers 400, then a replay",
        &load,
        &sink,
        before,
        false,
    )
    .await;

    load.stop().await;
    let last = settle("end", &load, &sink, 0, RECOVERY).await;
    assert_eq!(last.lost, 0);
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 0);
    assert_eq!(
        env.queue_len(&channel, "relay.dead.events").await,
        0,
        "nothing accepted was parked"
    );
    println!(
        "\nFault suite, one broker ({RATE} callbacks/s):\n{}",
        table(&run.outcomes)
    );
    services.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_a_three_node_cluster_lose_nothing() {
    let _alone = ALONE.lock().await;
    let mut cluster = PrivateCluster::start().await;
    let balancer = Balancer::start(cluster.addresses()).await;
    let sink = FaultSink::start().await;
    let env = relay_env(
        TestEnv::on_private_broker(&format!("amqp://guest:guest@{}/%2f", balancer.addr)),
        &sink,
        None,
    );
    let mut services = Services::start(&env).await;
    let mut load = Load::start(env.config.ingress.listen, RATE, 1);
    let mut run = Run {
        outcomes: Vec::new(),
        duplicates: 0,
    };
    steady(&load, 40).await;
    run.after("none (steady load)", &load, &sink, 0, false)
        .await;

    // The node leading the handler's queue dies; later it comes back.
    let before = load.refused();
    let leader = cluster.leader_of("relay.handler.min-balance-alert").await;
    cluster.kill(leader);
    steady(&load, 40).await;
    run.after(
        &format!("kill -9 node {} (queue leader)", leader + 1),
        &load,
        &sink,
        before,
        true,
    )
    .await;
    cluster.restart(leader).await;
    steady(&load, 20).await;
    run.after(
        &format!("node {} back", leader + 1),
        &load,
        &sink,
        before,
        true,
    )
    .await;

    // The node ingress is connected through dies.
    let before = load.refused();
    let through = cluster
        .node_of_connection("relay-ingress")
        .await
        .expect("ingress is connected somewhere");
    cluster.kill(through);
    steady(&load, 40).await;
    run.after(
        &format!("kill -9 node {} (ingress's connection)", through + 1),
        &load,
        &sink,
        before,
        true,
    )
    .await;
    cluster.restart(through).await;

    // A memory alarm: the broker blocks publishers; ingress says so in /readyz until it lifts.
    let before = load.refused();
    for node in 0..3 {
        cluster
            .ctl(node, &["set_vm_memory_high_watermark", "0.000001"])
            .await;
    }
    let admin = services.ingress.as_ref().unwrap().admin;
    readyz_until(admin, |status, body| {
        status == 503 && body.contains("broker-alarm")
    })
    .await;
    for node in 0..3 {
        cluster
            .ctl(node, &["set_vm_memory_high_watermark", "0.4"])
            .await;
    }
    readyz_until(admin, |status, _| status == 200).await;
    steady(&load, 20).await;
    run.after(
        "memory alarm (publishers blocked)",
        &load,
        &sink,
        before,
        false,
    )
    .await;

    // Each node restarted in turn.
    for node in 0..3 {
        let before = load.refused();
        cluster.kill(node);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.restart(node).await;
        steady(&load, 20).await;
        run.after(
            &format!("node {} restarted", node + 1),
            &load,
            &sink,
            before,
            true,
        )
        .await;
    }

    load.stop().await;
    let last = settle("end", &load, &sink, 0, RECOVERY).await;
    assert_eq!(last.lost, 0);
    let channel = env.channel().await;
    for lot in ["relay.dead.events", "relay.dead.deliveries"] {
        assert_eq!(
            env.queue_len(&channel, lot).await,
            0,
            "nothing accepted was parked in {lot}"
        );
    }
    println!(
        "\nFault suite, three-node cluster ({RATE} callbacks/s):\n{}",
        table(&run.outcomes)
    );
    services.stop();
}
