//! For the store's own tests: a [`Store`] on the real Redis at 127.0.0.1:6379 under a key
//! prefix of its own, deleted on drop.

use std::time::Duration;

use crate::Store;

pub(crate) struct TestRedis {
    pub(crate) config: relay_core::config::RedisConfig,
    stop: tokio_util::sync::CancellationToken,
}

impl TestRedis {
    pub(crate) fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let config = relay_core::config::RedisConfig {
            key_prefix: format!("relay-test:store-{}-{nanos}:", std::process::id()),
            ..Default::default()
        };
        Self {
            config,
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// A store of its own, as another process would have.
    pub(crate) async fn store(&self) -> Store {
        let readiness = relay_telemetry::Readiness::new();
        let store = Store::start(&self.config, &readiness, self.stop.clone());
        assert!(store.wait_connected(Duration::from_secs(5)).await);
        store
    }

    /// A plain connection, to look at keys as Redis holds them.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.config.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = crate::purge_prefix(&self.config.url, &self.config.key_prefix);
    }
}
