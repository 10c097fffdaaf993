//! The index tests' environment: the real RabbitMQ and Redis on this machine, isolated as the
//! end-to-end suite isolates a test (tests/src/lib.rs `TestEnv`): a vhost of its own (created
//! with `rabbitmqctl`) and a Redis key prefix of its own, both deleted on drop.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relay_core::config::Config;
use relay_parked::{Index, Indexer, Queue};
use tokio_util::sync::CancellationToken;

pub struct Env {
    pub vhost: Option<String>,
    pub config: Config,
    pub stop: CancellationToken,
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

impl Env {
    /// Redis only.
    pub fn redis() -> Self {
        let mut config = Config::default();
        config.redis.key_prefix = format!("relay-test:parked-{}:", unique());
        // Filling 100,000 entries a thousand at a time is more than one default budget.
        config.redis.op_timeout = Duration::from_secs(5);
        Self {
            vhost: None,
            config,
            stop: CancellationToken::new(),
        }
    }

    /// RabbitMQ (a vhost of its own, the relay's topology declared) and Redis.
    pub async fn broker() -> Self {
        let mut env = Self::redis();
        let vhost = format!("relay-test-parked-{}", unique());
        relay_amqp::vhost::create(&vhost, "guest").expect("create the test vhost");
        env.config.amqp.url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
        env.vhost = Some(vhost);
        let connection = env.connection().await;
        relay_amqp::Topology::from_config(&env.config)
            .declare(&connection)
            .await
            .expect("declare the topology");
        env
    }

    pub async fn connection(&self) -> Connection {
        Connection::connect(&self.config.amqp.url, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ")
    }

    /// A channel in confirm mode (its connection lives as long as the test).
    pub async fn channel(&self) -> Channel {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.expect("a channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        std::mem::forget(connection);
        channel
    }

    pub async fn index(&self) -> Index {
        let store = relay_store::Store::start(
            &self.config.redis,
            &relay_telemetry::Readiness::new(),
            self.stop.clone(),
        );
        assert!(store.wait_connected(Duration::from_secs(5)).await);
        Index::new(store, &self.config)
    }

    /// Runs an indexer on a channel of its own until the test ends.
    pub async fn run_indexer(&self, index: Index) {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.expect("a channel");
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let indexer = Indexer::new(index);
            // Ends with the test (the vhost may go first: then with an error).
            let _ = indexer.run(&channel, &stop).await;
            drop(connection);
        });
    }

    /// Runs an indexer the way a service would: relay-amqp's consumer loop, on a broker
    /// connection that reconnects.
    pub async fn run_indexer_on_broker(&self, index: Index) {
        let broker = relay_amqp::Broker::start(
            relay_amqp::BrokerSettings::from_config(&self.config, "relay-parked-test"),
            &relay_telemetry::Readiness::new(),
            self.stop.clone(),
        );
        assert!(broker.wait_connected(Duration::from_secs(10)).await);
        let consumer = relay_amqp::Consumer {
            queue: relay_core::routing::PARKED_INDEX_QUEUE.to_owned(),
            tag: "relay-parked-test".to_owned(),
            prefetch: relay_parked::index::PREFETCH,
            grace: Duration::from_secs(1),
            poison: None,
        };
        let indexer = std::sync::Arc::new(Indexer::new(index));
        tokio::spawn(relay_amqp::consumer::run(
            broker,
            consumer,
            indexer,
            self.stop.clone(),
        ));
    }

    /// Waits until the index holds `count` messages of `queue`.
    pub async fn wait_indexed(&self, index: &Index, queue: Queue, count: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let now = index.count(queue).await.expect("count");
            if now == count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{queue}: {now} indexed, not {count}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Redis as it holds the keys.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.config.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(vhost) = &self.vhost {
            let _ = relay_amqp::vhost::delete(vhost);
        }
        let _ = relay_store::purge_prefix(&self.config.redis.url, &self.config.redis.key_prefix);
    }
}

/// Publishes `body` to `exchange` with `key` and `properties`, awaiting the confirm.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    key: &str,
    properties: BasicProperties,
    body: &[u8],
) {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "the broker took it");
}

/// A job parked the way relay-delivery parks one: published to `relay.dead` with the relay's
/// headers, stamped `timestamp` (seconds).
pub async fn park_job(channel: &Channel, id: &str, destination: &str, timestamp: u64) {
    use relay_amqp::headers;
    let mut table = FieldTable::default();
    headers::put_str(&mut table, headers::REASON, "http_status");
    headers::put_str(&mut table, headers::DETAIL, "the destination said no");
    headers::put_int(&mut table, headers::STATUS, 400);
    headers::put_int(&mut table, headers::ATTEMPT, 3);
    headers::put_str(&mut table, headers::DESTINATION, destination);
    let properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_content_type("application/json".into())
        .with_timestamp(timestamp)
        .with_headers(table);
    let body = format!(r#"{{"id":"{id}","destination":"{destination}"}}"#);
    publish(
        channel,
        "relay.dead",
        "deliveries",
        properties,
        body.as_bytes(),
    )
    .await;
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
