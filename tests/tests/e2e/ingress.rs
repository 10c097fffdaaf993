//! relay-ingress end to end: the signed callback's whole path, and every refusal.

use std::time::Duration;

use relay_e2e::*;
use relay_signing::standard_webhooks;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_min_balance_reaches_the_sink_signed_and_in_the_same_trace() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    let relay = Relay::start(&env.config).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let response = post_callbacks(
        relay.addr,
        min_balance_body(1001),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 1);

    let got = sink.next(WAIT).await.expect("the alert arrives");
    assert_eq!(got.path, "/alerts");
    // The Standard Webhooks signature verifies with the destination's secret.
    let secret = standard_webhooks::Secret::parse(WEBHOOK_SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    standard_webhooks::verify(
        &secret,
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
        &got.body,
        now,
        300,
    )
    .expect("signature verifies");
    assert_eq!(
        got.header("idempotency-key"),
        got.header("webhook-id"),
        "job id is the idempotency key"
    );
    // The outbound request continues the inbound request's trace.
    let outbound = got
        .header("traceparent")
        .expect("traceparent on the outbound request");
    assert_eq!(outbound.split('-').nth(1), Some(trace_id), "{outbound}");
    let alert: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(alert["type"], "voximplant.min_balance");
    assert_eq!(alert["account_id"], ACCOUNT_ID.to_string());
    assert_eq!(alert["balance"], 1.25);

    relay.stop().await;
}

/// One callback of `min_balance_body(callback_id)`, its hash tampered with when `valid` is false.
fn callback(callback_id: u64, valid: bool) -> Value {
    let body: Value = serde_json::from_slice(&min_balance_body(callback_id)).unwrap();
    let mut callback = body["callbacks"][0].clone();
    if !valid {
        let good = callback["hash"].as_str().unwrap().to_owned();
        let flipped = if good.starts_with('0') { "1" } else { "0" };
        callback["hash"] = Value::String(format!("{flipped}{}", &good[1..]));
    }
    callback
}

fn batch(callbacks: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "callbacks": callbacks })).unwrap()
}

/// The dedup marks in the environment's key prefix.
async fn marks(env: &TestEnv) -> Vec<String> {
    let mut redis = env.redis().await;
    let mut marks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", env.config.redis.key_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    marks.sort();
    marks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_hash_publishes_the_valid_callbacks_and_counts_the_rejected() {
    let env = TestEnv::new();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let body = batch(&[callback(7, false), callback(8, true), callback(9, true)]);
    let response = post_callbacks(addr, body.clone(), &[]).await;
    assert_eq!(response.status(), 200, "the valid callbacks are taken");
    let text = response.text().await.unwrap();
    assert!(!text.contains(API_KEY) && !text.contains("hash"), "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            &answer["accepted"],
            &answer["duplicates"],
            &answer["rejected"]
        ),
        (&Value::from(2), &Value::from(0), &Value::from(1))
    );

    // Exactly the two valid callbacks were published, and only they are marked seen.
    let channel = env.channel().await;
    let queue = "relay.handler.min-balance-alert";
    let mut published = Vec::new();
    while let Some(message) = env
        .next_message(&channel, queue, std::time::Duration::ZERO)
        .await
    {
        let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        published.push(event["data"]["callback_id"].as_u64().unwrap());
    }
    published.sort_unstable();
    assert_eq!(published, [8, 9]);
    let prefix = &env.config.redis.key_prefix;
    assert_eq!(
        marks(&env).await,
        [8, 9].map(|id| format!("{prefix}seen:voximplant:{ACCOUNT_ID}:{id}"))
    );

    // Voximplant re-sends the request: the valid ones are duplicates now, nothing is published.
    let again = post_callbacks(addr, body, &[]).await;
    assert_eq!(again.status(), 200);
    let answer: Value = again.json().await.unwrap();
    assert_eq!(
        (
            &answer["accepted"],
            &answer["duplicates"],
            &answer["rejected"]
        ),
        (&Value::from(0), &Value::from(2), &Value::from(1))
    );
    assert_eq!(env.queue_len(&channel, queue).await, 0);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_valid_callback_is_refused_and_publishes_nothing() {
    let env = TestEnv::new();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let good = callback(7, true)["hash"].as_str().unwrap().to_owned();
    let body = batch(&[callback(7, false), callback(8, false)]);
    let response = post_callbacks(addr, body, &[]).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:relay:problem:bad-signature");
    assert!(!problem.to_string().contains(API_KEY) && !problem.to_string().contains(&good));

    let channel = env.channel().await;
    for queue in [
        "relay.handler.min-balance-alert",
        "relay.unrouted",
        "relay.deliveries",
    ] {
        assert_eq!(
            env.queue_len(&channel, queue).await,
            0,
            "{queue} received nothing"
        );
    }
    assert!(marks(&env).await.is_empty(), "no dedup mark");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_callback_twice_makes_one_alert() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    let Relay {
        ingress,
        worker,
        delivery,
        addr,
    } = Relay::start(&env.config).await;

    let first = post_callbacks(addr, min_balance_body(55), &[]).await;
    assert_eq!(first.status(), 200);
    let second = post_callbacks(addr, min_balance_body(55), &[]).await;
    assert_eq!(
        second.status(),
        200,
        "a duplicate is still answered 200 so the provider stops"
    );
    let answer: Value = second.json().await.unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(1))
    );

    sink.next(WAIT).await.expect("one alert");
    // Drain the pipeline: once worker and delivery are stopped, nothing else can arrive.
    worker.stop().await;
    delivery.stop().await;
    let channel = env.channel().await;
    assert_eq!(
        env.queue_len(&channel, "relay.handler.min-balance-alert")
            .await,
        0
    );
    assert_eq!(env.queue_len(&channel, "relay.deliveries").await, 0);
    assert_eq!(sink.count(), 1, "exactly one alert");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_specific_problems_and_publish_nothing() {
    let mut env = TestEnv::new();
    env.config.ingress.body_limit_bytes = 2048;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/voximplant/callbacks");

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "malformed-body",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"callbacks":[{"type":"x"}]}"#),
            400,
            "malformed-body",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=b"),
            415,
            "unsupported-media-type",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 4096]),
            413,
            "payload-too-large",
        ),
        (client.get(&url), 405, "method-not-allowed"),
        (
            client.post(format!("http://{addr}/v1/nope")),
            404,
            "not-found",
        ),
    ];
    for (request, status, ty) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{ty}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{ty}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], format!("urn:relay:problem:{ty}"));
        assert_eq!(problem["status"], status);
    }
    // An unknown account cannot be verified: 401, not 400.
    let other = relay_signing::voximplant::sample_min_balance(1, 1, API_KEY, SALT, 1.0, false);
    let response = post_callbacks(addr, serde_json::to_vec(&other).unwrap(), &[]).await;
    assert_eq!(response.status(), 401);

    let channel = env.channel().await;
    assert_eq!(
        env.queue_len(&channel, "relay.handler.min-balance-alert")
            .await,
        0
    );
    assert_eq!(env.queue_len(&channel, "relay.unrouted").await, 0);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_callback_types_are_kept_in_unrouted() {
    let mut env = TestEnv::new();
    // The min-balance alert takes every account callback (each carries the balance): without
    // it, a type no handler knows is kept in relay.unrouted.
    env.config.worker.min_balance_alert = None;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let hash = relay_signing::voximplant::callback_hash(SALT, ACCOUNT_ID, API_KEY, 77);
    let body = serde_json::json!({"callbacks": [{
        "callback_id": 77, "type": "js_fail", "account_id": ACCOUNT_ID, "hash": hash,
        "js_fail": {"application_name": "app"}, "a_field_from_2030": true
    }]});
    let response = post_callbacks(addr, serde_json::to_vec(&body).unwrap(), &[]).await;
    assert_eq!(response.status(), 200);
    let channel = env.channel().await;
    let message = env
        .next_message(&channel, "relay.unrouted", WAIT)
        .await
        .expect("kept");
    assert_eq!(message.delivery.routing_key.as_str(), "voximplant.js_fail");
    let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(event["type"], "com.voximplant.account.js_fail");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["data"]["a_field_from_2030"], true);
    assert!(event["data"].get("hash").is_none());
    let props = &message.delivery.properties;
    assert_eq!(props.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        props.message_id().as_ref().map(|s| s.to_string()),
        event["id"].as_str().map(str::to_owned)
    );
    ingress.stop().await;
}
