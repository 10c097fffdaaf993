//! The topology of docs/ARCHITECTURE.md, declared idempotently.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use relay_e2e::TestEnv;

fn text(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// The arguments docs/ARCHITECTURE.md prescribes, written out independently of the implementation.
fn design_args(
    dead_exchange: &str,
    dead_key: Option<&str>,
    delivery_limit: Option<i64>,
    ttl: Option<i64>,
) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), text("quorum"));
    t.insert("x-dead-letter-exchange".into(), text(dead_exchange));
    if let Some(k) = dead_key {
        t.insert("x-dead-letter-routing-key".into(), text(k));
    }
    t.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    t.insert("x-overflow".into(), text("reject-publish"));
    if let Some(l) = delivery_limit {
        t.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(l));
    }
    if let Some(ttl) = ttl {
        t.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
    }
    t
}

async fn redeclare(channel: &lapin::Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, args)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_is_idempotent_and_matches_the_design() {
    let mut env = TestEnv::new();
    env.alerts_to("http://127.0.0.1:1/alerts");
    env.helpdesk_to("http://127.0.0.1:1/helpdesk");
    env.declare_topology().await;
    env.declare_topology().await; // a second declaration is a no-op
    let channel = env.channel().await;

    // Re-declaring with the design's own arguments succeeds only if they are exactly what the
    // broker holds (RabbitMQ refuses a mismatch with PRECONDITION_FAILED).
    let limit = i64::from(env.config.amqp.delivery_limit);
    for handler in ["relay.handler.min-balance-alert", "relay.handler.call-log"] {
        redeclare(
            &channel,
            handler,
            design_args("relay.dead", Some("events"), Some(limit), None),
        )
        .await
        .unwrap_or_else(|e| panic!("{handler} has the design's arguments: {e}"));
    }
    redeclare(
        &channel,
        "relay.deliveries",
        design_args("relay.dead", Some("deliveries"), Some(limit), None),
    )
    .await
    .expect("deliveries queue has the design's arguments");
    redeclare(
        &channel,
        "relay.retry.100ms",
        design_args("relay.deliveries", None, None, Some(100)),
    )
    .await
    .expect("retry tier has the design's arguments");
    redeclare(
        &channel,
        "relay.handler-retry.100ms",
        design_args("relay.handlers", None, None, Some(100)),
    )
    .await
    .expect("handler retry tier dead-letters to relay.handlers");
    redeclare(
        &channel,
        "relay.timer.call-log.4h",
        design_args("relay.handlers", None, None, Some(4 * 3600 * 1000)),
    )
    .await
    .expect("the call log's end timer is a TTL queue into relay.handlers");
    let mut unrouted = FieldTable::default();
    unrouted.insert("x-queue-type".into(), text("quorum"));
    unrouted.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(7 * 86_400 * 1000),
    );
    unrouted.insert("x-max-length".into(), AMQPValue::LongLongInt(100_000));
    redeclare(&channel, "relay.unrouted", unrouted)
        .await
        .expect("relay.unrouted is bounded by TTL and length");
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), text("quorum"));
    for q in ["relay.dead.events", "relay.dead.deliveries"] {
        redeclare(&channel, q, quorum.clone())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    // A copy of everything parked, bounded so that it never refuses one (drop-head) and never
    // grows without a reader.
    let mut index = quorum.clone();
    index.insert("x-max-length".into(), AMQPValue::LongLongInt(200_000));
    index.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(256 * 1024 * 1024),
    );
    index.insert("x-overflow".into(), text("drop-head"));
    index.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(7 * 86_400 * 1000),
    );
    redeclare(&channel, "relay.parked.index", index)
        .await
        .expect("relay.parked.index is a bounded quorum queue");
    let mut ae = FieldTable::default();
    ae.insert("alternate-exchange".into(), text("relay.unrouted"));
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            "relay.events".into(),
            ExchangeKind::Topic,
            durable,
            ae.clone(),
        )
        .await
        .expect("relay.events is a durable topic exchange with its alternate exchange");
    channel
        .exchange_declare("relay.handlers".into(), ExchangeKind::Headers, durable, ae)
        .await
        .expect("relay.handlers is a durable headers exchange with its alternate exchange");

    // And a mismatch really is refused, so the checks above mean something.
    let channel2 = env.channel().await;
    let mut classic = FieldTable::default();
    classic.insert("x-queue-type".into(), text("classic"));
    assert!(
        redeclare(&channel2, "relay.handler.min-balance-alert", classic)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_events_land_in_unrouted_and_retry_tiers_flow_back() {
    let env = TestEnv::new();
    env.declare_topology().await;
    let channel = env.channel().await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");

    // An event no handler binds is kept in relay.unrouted, not returned or dropped.
    let confirm = channel
        .basic_publish(
            "relay.events".into(),
            "nobody.listens".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"{}",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "not returned"
    );
    let got = env
        .next_message(&channel, "relay.unrouted", Duration::from_secs(5))
        .await;
    assert_eq!(got.expect("kept in relay.unrouted").delivery.data, b"{}");

    // A message parked in a retry tier comes back to relay.deliveries after its TTL.
    channel
        .basic_publish(
            "".into(),
            "relay.retry.100ms".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"job",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let back = env
        .next_message(&channel, "relay.deliveries", Duration::from_secs(10))
        .await;
    assert_eq!(back.expect("returned from the tier").delivery.data, b"job");
}

/// Publishes `body` with `key` to `exchange` (with `headers`) and waits for the confirm.
async fn publish(
    channel: &lapin::Channel,
    exchange: &str,
    key: &str,
    headers: FieldTable,
    body: &[u8],
) {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default().with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "the broker took it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_handler_stops_collecting_and_handler_messages_reach_their_queue() {
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.helpdesk_to("http://127.0.0.1:1/helpdesk");
    env.declare_topology().await;
    let channel = env.channel().await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");

    // Enabled: call events reach the call log's queue, and so does a message addressed to it
    // through relay.handlers (a handler retry or timer coming back).
    publish(
        &channel,
        "relay.events",
        "plivo.call.answered",
        FieldTable::default(),
        b"a",
    )
    .await;
    let mut to_call_log = FieldTable::default();
    to_call_log.insert("relay-handler".into(), text("call-log"));
    publish(&channel, "relay.handlers", "", to_call_log, b"timer").await;
    let mut to_nobody = FieldTable::default();
    to_nobody.insert("relay-handler".into(), text("min-balance-alert"));
    publish(&channel, "relay.handlers", "", to_nobody, b"orphan").await;
    assert_eq!(env.queue_len(&channel, "relay.handler.call-log").await, 2);
    let orphan = env
        .next_message(&channel, "relay.unrouted", Duration::from_secs(5))
        .await;
    assert_eq!(
        orphan
            .expect("a message for a handler that is off is kept")
            .delivery
            .data,
        b"orphan"
    );

    // Disabled: its queue is unbound (and keeps what it holds); its events go to unrouted.
    env.config.worker.call_log = None;
    env.declare_topology().await;
    publish(
        &channel,
        "relay.events",
        "plivo.call.answered",
        FieldTable::default(),
        b"b",
    )
    .await;
    let got = env
        .next_message(&channel, "relay.unrouted", Duration::from_secs(5))
        .await;
    assert_eq!(got.expect("unrouted now").delivery.data, b"b");
    assert_eq!(
        env.queue_len(&channel, "relay.handler.call-log").await,
        2,
        "the disabled handler's queue keeps its messages and takes no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_parked_is_copied_to_the_parked_index_with_where_it_went() {
    let mut env = TestEnv::new();
    env.config.worker.min_balance_alert = None;
    env.declare_topology().await;
    let channel = env.channel().await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");

    // Parked by the relay (either lot), unrouted straight or as an alternate exchange.
    publish(
        &channel,
        "relay.dead",
        "deliveries",
        FieldTable::default(),
        b"job",
    )
    .await;
    publish(
        &channel,
        "relay.dead",
        "events",
        FieldTable::default(),
        b"event",
    )
    .await;
    publish(
        &channel,
        "relay.unrouted",
        "",
        FieldTable::default(),
        b"direct",
    )
    .await;
    publish(
        &channel,
        "relay.events",
        "shop.order",
        FieldTable::default(),
        b"nobody",
    )
    .await;
    let mut to_nobody = FieldTable::default();
    to_nobody.insert("relay-handler".into(), text("min-balance-alert"));
    publish(&channel, "relay.handlers", "", to_nobody, b"off").await;

    let mut copies = Vec::new();
    while let Some(copy) = env
        .next_message(&channel, "relay.parked.index", Duration::from_secs(5))
        .await
    {
        let d = copy.delivery;
        copies.push((
            String::from_utf8(d.data).unwrap(),
            d.exchange.as_str().to_owned(),
            d.routing_key.as_str().to_owned(),
        ));
        if copies.len() == 5 {
            break;
        }
    }
    let copy = |body: &str, exchange: &str, key: &str| {
        (body.to_owned(), exchange.to_owned(), key.to_owned())
    };
    // A message that reached relay.unrouted as the alternate exchange keeps the exchange and
    // key it was published with (the indexer reads the queue from them).
    assert_eq!(
        copies,
        [
            copy("job", "relay.dead", "deliveries"),
            copy("event", "relay.dead", "events"),
            copy("direct", "relay.unrouted", ""),
            copy("nobody", "relay.events", "shop.order"),
            copy("off", "relay.handlers", ""),
        ]
    );
    // The parking lots and relay.unrouted still hold their own.
    assert_eq!(env.queue_len(&channel, "relay.dead.deliveries").await, 1);
    assert_eq!(env.queue_len(&channel, "relay.dead.events").await, 1);
    assert_eq!(env.queue_len(&channel, "relay.unrouted").await, 3);
}
