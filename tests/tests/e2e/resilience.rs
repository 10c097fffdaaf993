//! Broker and Redis outages: what the relay promises when its dependencies fail.

use std::time::Duration;

use relay_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_gets_503_with_retry_after_and_no_dedup_mark() {
    let mut env = TestEnv::new();
    env.config.amqp.url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port());
    let (ingress, addr) = start_ingress(&env.config).await;

    let response = post_callbacks(addr, min_balance_body(9), &[]).await;
    assert_eq!(response.status(), 503);
    let retry_after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        retry_after,
        env.config.ingress.retry_after.as_secs().to_string()
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:relay:problem:broker-unavailable");

    let readyz = reqwest::get(format!("http://{}/readyz", ingress.admin))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
    assert!(readyz.text().await.unwrap().contains("broker"));

    let mut redis = env.redis().await;
    let key = format!(
        "{}seen:voximplant:{ACCOUNT_ID}:9",
        env.config.redis.key_prefix
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists, "a failed request leaves no dedup mark");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_ingress_still_accepts_and_publishes() {
    let mut env = TestEnv::new();
    env.config.redis.url = format!("redis://127.0.0.1:{}", dead_port());
    let (ingress, addr) = start_ingress(&env.config).await;
    let channel = env.channel().await;
    // Ready needs Redis once; the broker alone is what we wait for here.
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let r = post_callbacks(addr, min_balance_body(10), &[]).await;
        if r.status() != 503 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), 200);
    let message = env
        .next_message(&channel, "relay.handler.min-balance-alert", WAIT)
        .await
        .expect("published without Redis");
    let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(event["type"], "com.voximplant.account.min_balance");
    // That the outage is counted is asserted in tests/metrics.rs, a binary of its own: in
    // this one, every test's metrics share one process.
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_that_slips_past_dedup_collapses_at_delivery() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    // A destination name of its own, so this test's metric is not shared with others.
    let alerts = env.config.destinations.remove("alerts").unwrap();
    env.config
        .destinations
        .insert("collapse".to_owned(), alerts);
    env.config
        .worker
        .min_balance_alert
        .as_mut()
        .expect("enabled by alerts_to")
        .destination = "collapse".to_owned();
    // Ingress cannot reach Redis, so it publishes the re-sent callback again.
    let mut ingress_config = env.config.clone();
    ingress_config.redis.url = format!("redis://127.0.0.1:{}", dead_port());
    let (ingress, addr) = start_ingress(&ingress_config).await;
    let worker = start_worker(&env.config).await;
    let delivery = start_delivery(&env.config).await;
    wait_ready(worker.admin).await;

    for _ in 0..2 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = post_callbacks(addr, min_balance_body(11), &[])
                .await
                .status();
            if status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ingress never accepted: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    sink.next(WAIT).await.expect("the alert");
    // The second copy becomes the same job id, which delivery skips.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !metrics_text().contains("relay_delivery_skipped_total{destination=\"collapse\"} 1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the duplicate job was never skipped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.count(), 1);
    delivery.stop().await;
    worker.stop().await;
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_recover_when_the_broker_connection_is_cut() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    env.config.amqp.url = format!("amqp://guest:guest@{}/{}", proxy.addr, env.vhost);
    env.config.amqp.reconnect_max_delay = Duration::from_millis(500);
    let relay = Relay::start(&env.config).await;
    wait_ready(relay.worker.admin).await;
    wait_ready(relay.delivery.admin).await;

    assert_eq!(
        post_callbacks(relay.addr, min_balance_body(20), &[])
            .await
            .status(),
        200
    );
    sink.next(WAIT).await.expect("alert before the cut");

    proxy.sever();
    // Until the services reconnect, ingress answers 503 (never a false 200); then 200.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = post_callbacks(relay.addr, min_balance_body(21), &[])
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingress never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = sink
        .next(WAIT)
        .await
        .expect("alert after the cut: worker and delivery recovered too");
    let alert: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(alert["account_id"], ACCOUNT_ID.to_string());
    relay.stop().await;
}
