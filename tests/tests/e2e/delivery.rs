//! relay-delivery end to end: retries, dead letters, restarts.

use std::time::Duration;

use relay_amqp::headers;
use relay_e2e::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_delivered_exactly_once() {
    let mut sink = Sink::start(&[503, 503, 200]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    let relay = Relay::start(&env.config).await;

    assert_eq!(
        post_callbacks(relay.addr, min_balance_body(3), &[])
            .await
            .status(),
        200
    );
    let first = sink.next(WAIT).await.expect("attempt 1");
    let second = sink.next(WAIT).await.expect("attempt 2");
    let third = sink.next(WAIT).await.expect("attempt 3");
    let job_id = first.header("webhook-id").unwrap().to_owned();
    for attempt in [&second, &third] {
        assert_eq!(
            attempt.header("webhook-id"),
            Some(job_id.as_str()),
            "same job every attempt"
        );
        assert_eq!(attempt.body, first.body, "same body every attempt");
    }
    let record = env.wait_for_record(&job_id, "delivered").await;
    assert_eq!(record["attempts"], 3);

    // Nothing is left anywhere that could cause a fourth request.
    let channel = env.channel().await;
    for queue in [
        "relay.deliveries",
        "relay.retry.100ms",
        "relay.retry.300ms",
        "relay.dead.deliveries",
    ] {
        assert_eq!(env.queue_len(&channel, queue).await, 0, "{queue}");
    }
    assert_eq!(sink.count(), 3);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_dead_lettered_at_once_with_their_status() {
    let mut sink = Sink::start(&[400]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    let relay = Relay::start(&env.config).await;

    assert_eq!(
        post_callbacks(relay.addr, min_balance_body(4), &[])
            .await
            .status(),
        200
    );
    let attempt = sink.next(WAIT).await.expect("one attempt");
    let channel = env.channel().await;
    let dead = env
        .next_message(&channel, "relay.dead.deliveries", WAIT)
        .await
        .expect("dead-lettered");
    let table = dead.delivery.properties.headers().as_ref();
    assert_eq!(headers::get_int(table, headers::STATUS), Some(400));
    assert_eq!(
        headers::get_str(table, headers::REASON).as_deref(),
        Some("http_status")
    );
    assert_eq!(
        headers::get_str(table, headers::RESPONSE).as_deref(),
        Some("sink answered 400")
    );
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .as_deref(),
        attempt.header("webhook-id")
    );
    let job: relay_core::DeliveryJob =
        serde_json::from_slice(&dead.delivery.data).expect("the job, intact");
    env.wait_for_record(&job.id, "dead").await;
    for queue in ["relay.deliveries", "relay.retry.100ms", "relay.retry.300ms"] {
        assert_eq!(
            env.queue_len(&channel, queue).await,
            0,
            "{queue}: never retried"
        );
    }
    assert_eq!(sink.count(), 1, "never retried");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_in_a_retry_tier_survives_a_delivery_restart() {
    let mut sink = Sink::start(&[503]).await;
    let mut env = TestEnv::new();
    // One long tier, so the job is still parked there while delivery is down.
    env.config.amqp.retry_tiers = vec![Duration::from_secs(2)];
    env.alerts_to(&sink.url);
    let Relay {
        ingress,
        worker,
        delivery,
        addr,
    } = Relay::start(&env.config).await;

    assert_eq!(
        post_callbacks(addr, min_balance_body(5), &[])
            .await
            .status(),
        200
    );
    let first = sink.next(WAIT).await.expect("attempt 1 (503)");
    let job_id = first.header("webhook-id").unwrap().to_owned();
    env.wait_for_record(&job_id, "retrying").await;
    delivery.stop().await;

    let channel = env.channel().await;
    let parked = env.queue_len(&channel, "relay.retry.2s").await
        + env.queue_len(&channel, "relay.deliveries").await;
    assert_eq!(
        parked, 1,
        "the job is held by the broker while delivery is down"
    );

    let delivery = start_delivery(&env.config).await;
    let second = sink.next(WAIT).await.expect("attempt 2 after the restart");
    assert_eq!(second.header("webhook-id"), Some(job_id.as_str()));
    let record = env.wait_for_record(&job_id, "delivered").await;
    assert_eq!(record["attempts"], 2);
    delivery.stop().await;
    worker.stop().await;
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_one_job_in_flight_at_once_are_sent_once() {
    // The destination holds each request, so the first copy is still in flight when the
    // second is handled.
    let mut sink = Sink::start_with_delay(&[], Duration::from_millis(500)).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    // A destination name of its own, so this test's metric is not shared with others.
    let alerts = env.config.destinations.remove("alerts").unwrap();
    env.config.destinations.insert("copies".to_owned(), alerts);
    let event = relay_core::CloudEvent::new(
        relay_core::ids::derived_event_id("test", &["copies"]),
        "test".into(),
        "com.voximplant.account.min_balance".into(),
        serde_json::json!({"account_id": 1, "balance": 1.0}),
    );
    let job =
        relay_worker::handlers::min_balance::job(&event, "copies", Default::default()).unwrap();
    let body = serde_json::to_vec(&job).unwrap();
    // Both copies wait in the queue before delivery starts, so it takes them together.
    env.declare_topology().await;
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    for _ in 0..2 {
        channel
            .basic_publish(
                "relay.deliveries".into(),
                "".into(),
                Default::default(),
                &body,
                lapin::BasicProperties::default().with_message_id(job.id.as_str().into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let delivery = start_delivery(&env.config).await;
    sink.next(WAIT).await.expect("one request");
    env.wait_for_record(&job.id, "delivered").await;
    // The second copy was parked while the first held the claim; once it is back and skipped,
    // every queue is empty and nothing more can arrive.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut pending = 0;
        for queue in ["relay.deliveries", "relay.retry.100ms", "relay.retry.300ms"] {
            pending += env.queue_len(&channel, queue).await;
        }
        // The series exists from start-up: the skip is its count going to 1.
        if pending == 0 && metric(r#"relay_delivery_skipped_total{destination="copies"}"#) == 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second copy was never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    delivery.stop().await;
    assert_eq!(sink.count(), 1, "sent once");
}
