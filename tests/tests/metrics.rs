//! Assertions on metrics. Metrics are per process, so these tests have a binary of their own
//! (no other test's counts mix in) and run one after the other (a lock).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use relay_e2e::*;
use tokio::sync::Mutex;

static ALONE: Mutex<()> = Mutex::const_new(());
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_counted_for_every_request_it_touches() {
    let _alone = ALONE.lock().await;
    let mut env = TestEnv::new();
    env.config.redis.url = format!("redis://127.0.0.1:{}", dead_port());
    let (ingress, addr) = start_ingress(&env.config).await;
    // Ready needs Redis once; wait for the broker by posting until accepted.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut id = 100;
    while post_callbacks(addr, min_balance_body(id), &[])
        .await
        .status()
        != 200
    {
        assert!(tokio::time::Instant::now() < deadline, "never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = r#"relay_redis_skipped_total{op="seen"}"#;
    let accepted = r#"relay_ingress_requests_total{source="voximplant",outcome="accepted"}"#;
    let (seen_before, accepted_before) = (metric(seen), metric(accepted));
    for _ in 0..5 {
        id += 1;
        assert_eq!(
            post_callbacks(addr, min_balance_body(id), &[])
                .await
                .status(),
            200
        );
    }
    assert_eq!(metric(accepted) - accepted_before, 5.0);
    assert_eq!(
        metric(seen) - seen_before,
        5.0,
        "each accepted request counts its skipped dedup check"
    );
    assert_eq!(metric("relay_redis_breaker_open"), 1.0);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_opens_the_breaker_and_coming_back_closes_it() {
    let _alone = ALONE.lock().await;
    let mut redis = PrivateRedis::start().await;
    let mut env = TestEnv::new();
    env.config.redis.url = redis.url();
    env.config.redis.probe_interval = Duration::from_millis(50);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let status = |id| async move {
        post_callbacks(addr, min_balance_body(id), &[])
            .await
            .status()
    };
    let duplicates = |id| async move {
        let answer: serde_json::Value = post_callbacks(addr, min_balance_body(id), &[])
            .await
            .json()
            .await
            .unwrap();
        answer["duplicates"].clone()
    };
    assert_eq!(status(1).await, 200);
    assert_eq!(duplicates(1).await, 1, "dedup works while Redis is up");
    assert_eq!(metric("relay_redis_breaker_open"), 0.0);

    // Redis dies: every request is still accepted, and once the breaker opens Redis is
    // skipped (counted) instead of being waited for.
    redis.kill();
    let skipped = r#"relay_redis_skipped_total{op="seen"}"#;
    let before = metric(skipped);
    for id in 10..40 {
        assert_eq!(status(id).await, 200);
    }
    assert_eq!(metric("relay_redis_breaker_open"), 1.0);
    let skipped_now = metric(skipped) - before;
    assert!(
        skipped_now >= 30.0 - f64::from(env.config.redis.breaker_failures),
        "only the first few requests waited for Redis; {skipped_now} skipped"
    );

    // Redis is back: the probe closes the breaker and dedup works again.
    redis.resume().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric("relay_redis_breaker_open") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(50).await, 200);
    assert_eq!(duplicates(50).await, 1, "dedup works again");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depth_of_relay_unrouted_is_a_metric() {
    let _alone = ALONE.lock().await;
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.config.worker.queue_depth_interval = Duration::from_millis(100);
    let worker = start_worker(&env.config).await;
    worker.wait_ready().await;
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    let series = r#"relay_queue_messages{queue="relay.unrouted"}"#;
    for n in 0..3 {
        let confirm = channel
            .basic_publish(
                "relay.events".into(),
                format!("nobody.listens{n}").as_str().into(),
                Default::default(),
                b"{}",
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(series) != 3.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {}",
            metric(series)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_service_describes_its_metrics_and_shows_zeros_not_gaps() {
    let env = TestEnv::new();
    let delivery = env.spawn("relay-delivery").await;
    let text = delivery.metrics_text().await;
    // Every label-less counter exists, described, at zero before any traffic (a labelled
    // series appears with its first label values, described then).
    let counters = relay_telemetry::catalog::METRICS
        .iter()
        .filter(|m| m.kind == relay_telemetry::catalog::Kind::Counter && !m.labelled);
    let mut seen = 0;
    for metric in counters {
        assert!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "no HELP for {}: {text}",
            metric.name
        );
        assert!(
            text.lines().any(|l| l == format!("{} 0", metric.name)),
            "{} is not at 0: {text}",
            metric.name
        );
        seen += 1;
    }
    assert!(seen >= 5, "{seen}");
    // The Redis breaker gauge is there from the start, described.
    assert!(text.contains("# HELP relay_redis_breaker_open "), "{text}");
    delivery.terminate();
}
