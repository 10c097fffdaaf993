//! `relayctl dead` against the real broker, run as the operator runs it (the `relayctl`
//! binary): replays at a rate cap that lose nothing, filtered purges and listings that leave
//! the rest in order, unrouted events that reach a handler enabled after they arrived, and the
//! parked index (the console's) losing the entries of what a replay or a purge removed.
//! Messages are parked the way the relay parks them: published to `relay.dead` with the
//! relay's headers.
//!
//! The index itself (filled by its indexer, paged through with cursors and filters, 100,000
//! entries paged within a bound) is tested in relay-parked's own tests (`shared/relay-parked/
//! tests/`), on the same broker and Redis and isolated the same way.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use relay_amqp::headers;
use relay_core::{DeliveryJob, job, routing};
use relay_e2e::*;

const WAIT: Duration = Duration::from_secs(15);

/// One message to park, and the headers the relay would have given it.
struct Parcel {
    id: String,
    key: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    headers: FieldTable,
    /// Seconds since the epoch (the relay stamps what it parks).
    timestamp: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A job delivery gave up on, as relay-delivery parks it.
fn dead_job(n: usize, destination: &str, reason: &str) -> Parcel {
    let id = format!("job-{n:04}");
    let body = serde_json::json!({"n": n}).to_string();
    let job = DeliveryJob::post(
        id.clone(),
        &format!("event-{n}"),
        "min-balance-alert",
        destination,
        "application/json",
        body,
    );
    let mut table = FieldTable::default();
    headers::put_str(&mut table, headers::REASON, reason);
    headers::put_str(&mut table, headers::DETAIL, "the destination said no");
    headers::put_int(&mut table, headers::STATUS, 400);
    headers::put_int(&mut table, headers::ATTEMPT, 3);
    headers::put_str(&mut table, headers::DESTINATION, destination);
    headers::put_str(&mut table, headers::ROUTING_KEY, "");
    Parcel {
        id,
        key: routing::DEAD_DELIVERIES_KEY,
        content_type: job::CONTENT_TYPE,
        body: serde_json::to_vec(&job).unwrap(),
        headers: table,
        timestamp: now(),
    }
}

/// An event a handler could not process, parked by the worker (`relay-handler` names it).
fn dead_event(id: &str, key: &str, reason: &str) -> Parcel {
    let ty = format!("com.{key}");
    let body = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "test", "type": ty,
        "time": "2025-03-01T12:00:00Z", "data": {}
    });
    let mut table = FieldTable::default();
    headers::put_str(&mut table, headers::REASON, reason);
    headers::put_str(&mut table, headers::ROUTING_KEY, key);
    headers::put_str(&mut table, routing::HANDLER_HEADER, "call-log");
    Parcel {
        id: id.to_owned(),
        key: routing::DEAD_EVENTS_KEY,
        content_type: relay_core::event::CONTENT_TYPE,
        body: serde_json::to_vec(&body).unwrap(),
        headers: table,
        timestamp: now(),
    }
}

/// An event the broker parked by itself (a queue's delivery limit): no relay headers, its
/// story in `x-death`.
fn broker_parked_event(id: &str, key: &str) -> Parcel {
    let mut parcel = dead_event(id, key, "unused");
    let mut table = FieldTable::default();
    headers::put_str(&mut table, "x-first-death-reason", "delivery_limit");
    headers::put_str(&mut table, "x-first-death-queue", "relay.handler.call-log");
    let mut death = FieldTable::default();
    death.insert("time".into(), AMQPValue::Timestamp(now()));
    death.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
            LongString::from(key),
        )])),
    );
    table.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
    );
    parcel.headers = table;
    parcel
}

/// Parks `parcels` in order through `relay.dead`, every publish confirmed.
async fn park(env: &TestEnv, parcels: &[Parcel]) {
    let channel = env.channel().await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::with_capacity(parcels.len());
    for parcel in parcels {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(parcel.id.as_str().into())
            .with_content_type(parcel.content_type.into())
            .with_timestamp(parcel.timestamp)
            .with_headers(parcel.headers.clone());
        let confirm = channel
            .basic_publish(
                routing::DEAD_EXCHANGE.into(),
                parcel.key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &parcel.body,
                properties,
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(
            confirm.await.unwrap().is_ack(),
            "the broker took the parcel"
        );
    }
}

/// Takes every message of `queue` for good and returns their ids, in queue order.
async fn drain(channel: &Channel, queue: &str) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        ids.push(headers::message_id(&message.delivery.properties));
    }
    ids
}

/// The JSON objects `relayctl … --json` printed (its standard error may follow).
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn ids_of(objects: &[serde_json::Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parked_jobs_replay_at_the_rate_cap_and_are_each_delivered_once() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    env.declare_topology().await;
    let parcels: Vec<Parcel> = (0..1000)
        .map(|n| dead_job(n, "alerts", "http_status"))
        .collect();
    park(&env, &parcels).await;
    let channel = env.channel().await;
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 1000);
    let delivery = start_delivery(&env.config).await;

    let started = Instant::now();
    let (ok, out) = env
        .relayctl(&["dead", "replay", "--all", "--rate", "500/s"])
        .await;
    let elapsed = started.elapsed();
    assert!(ok, "relayctl dead replay: {out}");
    assert!(
        out.contains("replayed 1000 of 1000 message(s) in relay.dead.deliveries"),
        "one summary line: {out}"
    );
    // 1000 messages at 500/s take 2 s (999 intervals): the cap held.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "1000 replays at 500/s took only {elapsed:?}"
    );
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 0);

    let mut seen = HashSet::new();
    while seen.len() < 1000 {
        let request = sink
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of 1000 jobs arrived", seen.len()));
        let id = request.header("webhook-id").unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} delivered twice");
    }
    let expected: HashSet<String> = parcels.iter().map(|p| p.id.clone()).collect();
    assert_eq!(seen, expected, "every parked job, nothing else");
    // Nothing is left that could deliver one again.
    for queue in ["relay.deliveries", "relay.dead.deliveries"] {
        assert_eq!(env.queue_len(&channel, queue).await, 0, "{queue}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1000, "each job exactly once");
    delivery.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_purge_removes_only_the_matching_and_leaves_the_rest_in_order() {
    let env = TestEnv::new();
    env.declare_topology().await;
    // More than 32: RabbitMQ 3.x shuffles that many when a channel closes holding them.
    let parcels: Vec<Parcel> = (0..90)
        .map(|n| {
            let (destination, reason) = match n % 3 {
                0 => ("helpdesk", "http_status"),
                1 => ("alerts", "http_status"),
                _ => ("alerts", "attempts_exhausted"),
            };
            dead_job(n, destination, reason)
        })
        .collect();
    park(&env, &parcels).await;
    let gone: Vec<String> = (0..90)
        .filter(|n| n % 3 == 0)
        .map(|n| format!("job-{n:04}"))
        .collect();
    let kept: Vec<String> = (0..90)
        .filter(|n| n % 3 != 0)
        .map(|n| format!("job-{n:04}"))
        .collect();

    // Without a terminal to ask on, and without --yes, nothing goes.
    let (ok, out) = env
        .relayctl(&["dead", "purge", "--destination", "helpdesk"])
        .await;
    assert!(!ok, "a purge with nobody to confirm it must refuse: {out}");
    assert!(out.contains("error: purging 30 message(s)"), "{out}");
    assert!(out.contains("--yes"), "{out}");
    let channel = env.channel().await;
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 90);

    // A dry run names them and changes nothing.
    let (ok, out) = env
        .relayctl(&[
            "dead",
            "purge",
            "--destination",
            "helpdesk",
            "--dry-run",
            "--json",
        ])
        .await;
    assert!(ok, "{out}");
    assert_eq!(ids_of(&json_lines(&out)), gone);
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 90);

    let (ok, out) = env
        .relayctl(&[
            "dead",
            "purge",
            "--destination",
            "helpdesk",
            "--reason",
            "http_status",
            "--yes",
        ])
        .await;
    assert!(ok, "relayctl dead purge: {out}");
    assert!(
        out.contains("purged 30 of 90 message(s) in relay.dead.deliveries; 60 left there"),
        "{out}"
    );
    assert_eq!(
        drain(&channel, "relay.dead.deliveries").await,
        kept,
        "the rest, untouched and in their order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_filters_shows_exactly_the_matching_messages_and_removes_nothing() {
    let env = TestEnv::new();
    env.declare_topology().await;
    let mut jobs: Vec<Parcel> = (0..40)
        .map(|n| {
            let reason = if n % 2 == 0 {
                "http_status"
            } else {
                "attempts_exhausted"
            };
            dead_job(n, "alerts", reason)
        })
        .collect();
    // Two of them were parked days ago.
    for old in &mut jobs[..2] {
        old.timestamp -= 3 * 86_400;
    }
    park(&env, &jobs).await;
    park(
        &env,
        &[
            dead_event("ev-ringing", "plivo.call.ringing", "malformed"),
            broker_parked_event("ev-answered", "plivo.call.answered"),
            dead_event("ev-balance", "voximplant.min_balance", "malformed"),
        ],
    )
    .await;

    let list = |args: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut all = vec!["dead", "list", "--json"];
            all.extend_from_slice(args);
            let (ok, out) = env.relayctl(&all).await;
            assert!(ok, "relayctl {all:?}: {out}");
            json_lines(&out)
        }
    };

    // Recent jobs parked for an HTTP status: the even ones but 0, which is too old.
    let found = list(&["--reason", "http_status", "--since", "1h"]).await;
    let expected: Vec<String> = (2..40).step_by(2).map(|n| format!("job-{n:04}")).collect();
    assert_eq!(ids_of(&found), expected);
    let job = &found[0];
    assert_eq!(job["queue"], "relay.dead.deliveries");
    assert_eq!(job["reason"], "http_status");
    assert_eq!(job["detail"], "the destination said no");
    assert_eq!(job["status"], 400);
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["destination"], "alerts");
    assert!(job["time"].as_str().unwrap().ends_with('Z'));
    assert!(job["body_size"].as_u64().unwrap() > 0);

    assert_eq!(
        ids_of(&list(&["--id", "job-0003"]).await),
        ["job-0003"],
        "by id"
    );
    assert_eq!(
        ids_of(&list(&["--limit", "2"]).await),
        ["job-0000", "job-0001"]
    );
    assert!(list(&["--destination", "helpdesk"]).await.is_empty());

    // Events by type glob (routing key or CloudEvent type), and the broker's own reason.
    let calls = list(&["--queue", "dead-events", "--type", "plivo.call.*"]).await;
    assert_eq!(ids_of(&calls), ["ev-ringing", "ev-answered"]);
    assert_eq!(calls[0]["type"], "com.plivo.call.ringing");
    assert_eq!(calls[0]["routing_key"], "plivo.call.ringing");
    assert_eq!(
        calls[1]["routing_key"], "plivo.call.answered",
        "from x-death"
    );
    let limited = list(&["--queue", "dead-events", "--reason", "delivery_limit"]).await;
    assert_eq!(ids_of(&limited), ["ev-answered"]);
    assert_eq!(
        limited[0]["reason"],
        "broker:delivery_limit@relay.handler.call-log"
    );
    assert_eq!(
        ids_of(&list(&["--lot", "events", "--type", "com.voximplant.*"]).await),
        ["ev-balance"],
        "the old --lot still works"
    );

    // show: headers and body, the body cut unless --full.
    let (ok, out) = env
        .relayctl(&[
            "dead",
            "show",
            "--queue",
            "dead-events",
            "--id",
            "ev-ringing",
            "--json",
        ])
        .await;
    assert!(ok, "{out}");
    let shown = &json_lines(&out)[0];
    assert_eq!(shown["headers"]["x-relay-reason"], "malformed");
    assert_eq!(shown["headers"]["relay-handler"], "call-log");
    assert_eq!(shown["body_truncated"], false);
    let body: serde_json::Value = serde_json::from_str(shown["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], "ev-ringing");

    // Reading changed nothing: everything is still there, in its order.
    let channel = env.channel().await;
    let all_jobs: Vec<String> = jobs.iter().map(|p| p.id.clone()).collect();
    assert_eq!(drain(&channel, "relay.dead.deliveries").await, all_jobs);
    assert_eq!(
        drain(&channel, "relay.dead.events").await,
        ["ev-ringing", "ev-answered", "ev-balance"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_events_replayed_after_their_handler_is_enabled_reach_it() {
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    // No min-balance handler yet: its events wait in relay.unrouted.
    env.config.worker.min_balance_alert = None;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    assert_eq!(
        post_callbacks(addr, min_balance_body(77), &[])
            .await
            .status(),
        200
    );
    ingress.stop().await;
    // And an event nobody handles, which must stay where it is.
    let channel = env.channel().await;
    channel
        .basic_publish(
            routing::EVENTS_EXCHANGE.into(),
            "shop.order_paid".into(),
            BasicPublishOptions::default(),
            br#"{"type":"com.shop.order_paid"}"#,
            BasicProperties::default().with_message_id("shop-1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.queue_len(&channel, "relay.unrouted").await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "nothing unrouted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, out) = env
        .relayctl(&["dead", "list", "--queue", "unrouted", "--json"])
        .await;
    assert!(ok, "{out}");
    let unrouted = json_lines(&out);
    assert_eq!(unrouted.len(), 2);
    assert_eq!(unrouted[0]["routing_key"], "voximplant.min_balance");
    let event_id = unrouted[0]["id"].as_str().unwrap().to_owned();

    // The handler is switched on; the worker binds its queue.
    env.alerts_to(&sink.url);
    let worker = start_worker(&env.config).await;
    let delivery = start_delivery(&env.config).await;
    worker.wait_ready().await;

    let (ok, out) = env
        .relayctl(&[
            "dead",
            "replay",
            "--queue",
            "unrouted",
            "--type",
            "voximplant.*",
        ])
        .await;
    assert!(ok, "relayctl dead replay: {out}");
    assert!(
        out.contains("replayed 1 of 2 message(s) in relay.unrouted"),
        "{out}"
    );
    assert!(!out.contains("reach no enabled handler"), "{out}");

    let alert = sink
        .next(WAIT)
        .await
        .expect("the alert reaches its destination");
    let body: serde_json::Value = serde_json::from_slice(&alert.body).unwrap();
    assert_eq!(body["type"], "voximplant.min_balance");
    assert_eq!(body["event_id"], event_id.as_str(), "the replayed event");
    assert_eq!(drain(&channel, "relay.unrouted").await, ["shop-1"]);
    delivery.stop().await;
    worker.stop().await;
}

/// The parked index's entry of `id` in `relay.dead.deliveries`, as the console's indexer
/// files one (relay-store's `parked` keys): a sorted-set member and its record.
async fn index_entry(env: &TestEnv, redis: &mut redis::aio::MultiplexedConnection, id: &str) {
    let prefix = &env.config.redis.key_prefix;
    let now_ms = now() * 1000;
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(format!("{prefix}parked:index:relay.dead.deliveries"))
        .arg(now_ms)
        .arg(id)
        .cmd("SET")
        .arg(format!("{prefix}parked:facts:relay.dead.deliveries:{id}"))
        .arg(serde_json::json!({ "id": id, "queue": "relay.dead.deliveries" }).to_string())
        .arg("PX")
        .arg(60_000)
        .query_async(redis)
        .await
        .unwrap();
}

/// Which of `ids` the parked index still holds (member and record both).
async fn indexed(
    env: &TestEnv,
    redis: &mut redis::aio::MultiplexedConnection,
    ids: &[&str],
) -> Vec<String> {
    let prefix = &env.config.redis.key_prefix;
    let mut held = Vec::new();
    for id in ids {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(format!("{prefix}parked:index:relay.dead.deliveries"))
            .arg(*id)
            .query_async(redis)
            .await
            .unwrap();
        let record: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}parked:facts:relay.dead.deliveries:{id}"))
            .query_async(redis)
            .await
            .unwrap();
        assert_eq!(
            score.is_some(),
            record,
            "{id}: member and record go together"
        );
        if record {
            held.push((*id).to_owned());
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_purge_remove_their_entries_from_the_parked_index() {
    let env = TestEnv::new();
    env.declare_topology().await;
    let parcels: Vec<Parcel> = (0..4)
        .map(|n| {
            let destination = if n % 2 == 0 { "alerts" } else { "helpdesk" };
            dead_job(n, destination, "http_status")
        })
        .collect();
    park(&env, &parcels).await;
    let mut redis = env.redis().await;
    let ids = ["job-0000", "job-0001", "job-0002", "job-0003", "job-ghost"];
    for id in ids {
        index_entry(&env, &mut redis, id).await;
    }
    assert_eq!(indexed(&env, &mut redis, &ids).await, ids);

    // A dry run changes nothing, in the index neither.
    let (ok, out) = env
        .relayctl(&["dead", "purge", "--destination", "alerts", "--dry-run"])
        .await;
    assert!(ok, "{out}");
    assert_eq!(indexed(&env, &mut redis, &ids).await, ids);

    let (ok, out) = env
        .relayctl(&["dead", "purge", "--destination", "helpdesk", "--yes"])
        .await;
    assert!(ok, "relayctl dead purge: {out}");
    assert!(out.contains("purged 2 of 4"), "{out}");
    assert_eq!(
        indexed(&env, &mut redis, &ids).await,
        ["job-0000", "job-0002", "job-ghost"]
    );

    let (ok, out) = env.relayctl(&["dead", "replay", "--id", "job-0000"]).await;
    assert!(ok, "relayctl dead replay: {out}");
    assert!(out.contains("replayed 1 of 2"), "{out}");
    assert_eq!(
        indexed(&env, &mut redis, &ids).await,
        ["job-0002", "job-ghost"]
    );

    // An id the index lists but the queue no longer holds: the walk finds nothing, and the
    // entry goes.
    let (ok, out) = env
        .relayctl(&["dead", "purge", "--id", "job-ghost", "--yes"])
        .await;
    assert!(!ok, "nothing to purge is reported: {out}");
    assert!(
        out.contains("no message in relay.dead.deliveries has id job-ghost"),
        "{out}"
    );
    assert_eq!(indexed(&env, &mut redis, &ids).await, ["job-0002"]);
    let channel = env.channel().await;
    assert_eq!(
        drain(&channel, "relay.dead.deliveries").await,
        ["job-0002"],
        "the queue agrees"
    );
}
