//! A delivery's attempt history: every attempt is kept in order, across retries and across
//! delivery processes, and served at `GET /v1/deliveries/{id}` on delivery's admin port.

use std::net::SocketAddr;
use std::time::Duration;

use relay_core::DeliveryJob;
use relay_e2e::*;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

/// Gives Redis operations a budget a loaded test machine cannot exceed: a history entry that
/// timed out is dropped by design (Redis never slows a delivery), which is not what these
/// tests are about.
fn patient_redis(env: &mut TestEnv) {
    env.config.redis.op_timeout = Duration::from_secs(5);
}

/// Publishes one `alerts` job straight to `relay.deliveries` (confirmed), as the worker would.
async fn publish_job(env: &TestEnv, name: &str) -> DeliveryJob {
    let event = relay_core::CloudEvent::new(
        relay_core::ids::derived_event_id("test", &["history", name]),
        "test".into(),
        "com.voximplant.account.min_balance".into(),
        serde_json::json!({"account_id": 1, "balance": 1.0}),
    );
    let job =
        relay_worker::handlers::min_balance::job(&event, "alerts", Default::default()).unwrap();
    env.declare_topology().await;
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    channel
        .basic_publish(
            "relay.deliveries".into(),
            "".into(),
            Default::default(),
            &serde_json::to_vec(&job).unwrap(),
            lapin::BasicProperties::default().with_message_id(job.id.as_str().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    job
}

/// `GET /v1/deliveries/{id}` on delivery's admin port: status, content type, body.
async fn get_delivery(admin: SocketAddr, id: &str) -> (u16, String, serde_json::Value) {
    let response = reqwest::get(format!("http://{admin}/v1/deliveries/{id}"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.json().await.unwrap())
}

/// Waits until the admin route says the job reached `status`, and returns what it served.
async fn wait_for_status(admin: SocketAddr, id: &str, status: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, _, body) = get_delivery(admin, id).await;
        if code == 200 && body["status"] == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never reached {status}; last answer {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The record as the store reads it from Redis (what `relayctl delivery show` prints).
async fn stored_record(env: &TestEnv, id: &str) -> relay_store::DeliveryRecord {
    let stop = CancellationToken::new();
    let store = relay_store::Store::start(
        &env.config.redis,
        &relay_telemetry::Readiness::new(),
        stop.clone(),
    );
    assert!(store.wait_connected(WAIT).await, "redis reachable");
    let record = store.delivery(id).await.unwrap();
    stop.cancel();
    record.unwrap_or_else(|| panic!("no record of job {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_kept_in_order_and_served_on_the_admin_port() {
    let mut sink = Sink::start(&[503, 503, 200]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    patient_redis(&mut env);
    let job = publish_job(&env, "three").await;
    let delivery = start_delivery(&env.config).await;

    for n in 1..=3 {
        sink.next(WAIT)
            .await
            .unwrap_or_else(|| panic!("attempt {n}"));
    }
    let served = wait_for_status(delivery.admin, &job.id, "delivered").await;

    let record = stored_record(&env, &job.id).await;
    assert_eq!(record.attempts, 3);
    let seen: Vec<(u32, &str, Option<u16>)> = record
        .history
        .iter()
        .map(|e| (e.attempt, e.outcome.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "retryable", Some(503)),
            (2, "retryable", Some(503)),
            (3, "delivered", Some(200)),
        ]
    );
    for entry in &record.history[..2] {
        assert_eq!(
            entry.response_excerpt.as_deref(),
            Some("sink answered 503"),
            "{entry:?}"
        );
        assert_eq!(entry.error, None);
    }
    // Oldest first, each at its own time.
    let times: Vec<time::OffsetDateTime> = record
        .history
        .iter()
        .map(|e| {
            time::OffsetDateTime::parse(&e.at, &time::format_description::well_known::Rfc3339)
                .unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // The admin route serves exactly what is stored.
    assert_eq!(served, serde_json::to_value(&record).unwrap());

    let (status, content_type, body) = get_delivery(delivery.admin, "no-such-job").await;
    assert_eq!(status, 404);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], "urn:relay:problem:unknown-delivery");
    assert_eq!(body["status"], 404);

    delivery.stop().await;
    assert_eq!(sink.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_outlives_the_delivery_process_that_made_an_attempt() {
    let mut sink = Sink::start(&[503]).await;
    let mut env = TestEnv::new();
    // One long tier, so the job is still parked there when the first process is stopped.
    env.config.amqp.retry_tiers = vec![Duration::from_secs(2)];
    env.alerts_to(&sink.url);
    patient_redis(&mut env);
    let job = publish_job(&env, "restart").await;

    let first = start_delivery(&env.config).await;
    sink.next(WAIT).await.expect("attempt 1 (503)");
    wait_for_status(first.admin, &job.id, "retrying").await;
    first.stop().await;

    let second = start_delivery(&env.config).await;
    sink.next(WAIT)
        .await
        .expect("attempt 2, by another process");
    let served = wait_for_status(second.admin, &job.id, "delivered").await;
    let history: Vec<(u64, u64)> = served["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(history, [(1, 503), (2, 200)]);
    second.stop().await;
}
