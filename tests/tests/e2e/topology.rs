//! The topology of DESIGN.md, declared idempotently.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use relay_amqp::Topology;
use relay_e2e::TestEnv;

fn text(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// The arguments DESIGN.md prescribes, written out independently of the implementation.
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
    let env = TestEnv::new();
    let topology = Topology::from_config(&env.config.amqp);
    let channel = env.channel().await;
    topology.declare(&channel).await.expect("first declaration");
    topology
        .declare(&channel)
        .await
        .expect("second declaration is a no-op");

    // Re-declaring with the design's own arguments succeeds only if they are exactly what the
    // broker holds (RabbitMQ refuses a mismatch with PRECONDITION_FAILED).
    let limit = i64::from(env.config.amqp.delivery_limit);
    redeclare(
        &channel,
        "relay.handler.min-balance-alert",
        design_args("relay.dead", Some("events"), Some(limit), None),
    )
    .await
    .expect("handler queue has the design's arguments");
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
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), text("quorum"));
    for q in [
        "relay.unrouted",
        "relay.dead.events",
        "relay.dead.deliveries",
    ] {
        redeclare(&channel, q, quorum.clone())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    let mut ae = FieldTable::default();
    ae.insert("alternate-exchange".into(), text("relay.unrouted"));
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare("relay.events".into(), ExchangeKind::Topic, durable, ae)
        .await
        .expect("relay.events is a durable topic exchange with its alternate exchange");

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
    let channel = env.channel().await;
    Topology::from_config(&env.config.amqp)
        .declare(&channel)
        .await
        .expect("declare");
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
