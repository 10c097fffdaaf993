//! The broker connection as the services see it: readiness that tells the truth, and a
//! publisher that heals itself.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use relay_amqp::{Broker, BrokerSettings, Publish, PublishError};
use relay_e2e::*;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_is_ready_only_once_it_can_publish() {
    let env = TestEnv::new();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    // The very first requests after /readyz turned green are accepted, none gets 503.
    let requests = (0..20).map(|id| post_callbacks(addr, min_balance_body(1000 + id), &[]));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_whose_publishes_keep_failing_reopens_its_channel_and_recovers() {
    let env = TestEnv::new();
    let readiness = relay_telemetry::Readiness::new();
    let stop = CancellationToken::new();
    let broker = Broker::start(
        BrokerSettings::from_config(&env.config, "relay-test"),
        &readiness,
        stop.clone(),
    );
    let ready = |what: &'static str| {
        let readiness = readiness.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while !readiness.is_ready() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: {:?}",
                    readiness.failing()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    ready("connected").await;

    // A queue that refuses every message: each publish to it is nacked.
    let channel = env.channel().await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    channel
        .queue_declare("refuses-all".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let publish = |queue: &'static str| Publish {
        exchange: "",
        routing_key: queue,
        message_id: "m",
        content_type: "text/plain",
        body: b"x",
        headers: FieldTable::default(),
    };
    for _ in 0..relay_amqp::publisher::REOPEN_AFTER {
        assert!(matches!(
            broker.publish(publish("refuses-all")).await,
            Err(PublishError::Nacked)
        ));
    }
    assert!(
        readiness.failing().contains(&"broker-publish"),
        "not ready while it cannot publish: {:?}",
        readiness.failing()
    );

    // The publisher reopens its channel, proves it with a probe, and is ready again.
    ready("reopened").await;
    broker
        .publish(publish("relay.probe"))
        .await
        .expect("publishing works on the new channel");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_coming_back_is_parked_visibly_with_its_reason() {
    let mut env = TestEnv::new();
    env.config.amqp.delivery_limit = 3;
    env.alerts_to("http://127.0.0.1:1/alerts");
    env.declare_topology().await;
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    channel
        .basic_publish(
            "relay.events".into(),
            "voximplant.min_balance".into(),
            Default::default(),
            b"{\"poison\": true}",
            lapin::BasicProperties::default().with_message_id("poison-1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    // Two consumers before the worker took it and died without an answer.
    let queue = "relay.handler.min-balance-alert";
    for _ in 0..2 {
        let message = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()
            .expect("the message");
        message
            .delivery
            .acker
            .nack(lapin::options::BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let worker = start_worker(&env.config).await;
    let parked = env
        .next_message(&channel, "relay.dead.events", WAIT)
        .await
        .expect("parked in relay.dead.events");
    let headers = parked.delivery.properties.headers().as_ref();
    assert_eq!(
        relay_amqp::headers::get_str(headers, relay_amqp::headers::REASON).as_deref(),
        Some("redelivered_too_often")
    );
    assert_eq!(
        parked
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("poison-1")
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_an_accepted_event_through_refused_publishes_instead_of_parking_it() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    // Few redeliveries allowed: requeueing on each refused publish would park the event fast.
    env.config.amqp.delivery_limit = 3;
    env.alerts_to(&sink.url);
    let (ingress, addr) = start_ingress(&env.config).await;
    let worker = start_worker(&env.config).await;
    ingress.wait_ready().await;
    worker.wait_ready().await;

    // relay.deliveries refuses every publish for a while: a policy caps it at one message,
    // and one is put there (nothing consumes it yet).
    let policy = [
        "set_policy",
        "-p",
        env.vhost.as_str(),
        "--apply-to",
        "queues",
        "refuse-jobs",
        "^relay\\.deliveries$",
        r#"{"max-length": 1, "overflow": "reject-publish"}"#,
    ];
    let (ok, out) = relay_e2e::faults::rabbitmqctl(&policy).await;
    assert!(ok, "set_policy: {out}");
    let channel = env.channel().await;
    channel.confirm_select(Default::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let confirm = channel
            .basic_publish(
                "relay.deliveries".into(),
                "".into(),
                Default::default(),
                b"filler",
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        if confirm.is_nack() {
            break; // full: the policy is in force
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the policy never took"
        );
    }
    assert_eq!(
        post_callbacks(addr, min_balance_body(77), &[])
            .await
            .status(),
        200
    );
    // Long enough for several refused publishes (the worker retries with backoff).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ok, out) =
        relay_e2e::faults::rabbitmqctl(&["clear_policy", "-p", env.vhost.as_str(), "refuse-jobs"])
            .await;
    assert!(ok, "clear_policy: {out}");

    let delivery = start_delivery(&env.config).await;
    let alert = sink
        .next(WAIT)
        .await
        .expect("the alert, once jobs are taken again");
    let alert: serde_json::Value = serde_json::from_slice(&alert.body).unwrap();
    assert_eq!(alert["account_id"], ACCOUNT_ID.to_string());
    assert_eq!(
        env.queue_len(&channel, "relay.dead.events").await,
        0,
        "the accepted event was not parked"
    );
    delivery.stop().await;
    worker.stop().await;
    ingress.stop().await;
}
