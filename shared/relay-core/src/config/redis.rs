//! `[redis]`: the Redis connection and key lifetimes.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::duration::serde_text;

/// Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL. May contain a password: never logged.
    pub url: String,
    /// Prefix of every key the relay writes.
    pub key_prefix: String,
    /// Budget of one Redis operation; past it the operation counts as Redis being unavailable.
    #[serde(with = "serde_text")]
    pub op_timeout: Duration,
    /// How long a dedup mark is kept.
    #[serde(with = "serde_text")]
    pub dedup_ttl: Duration,
    /// How long a delivery record is kept.
    #[serde(with = "serde_text")]
    pub delivery_record_ttl: Duration,
    /// Failed operations in a row (timeouts, refused or dropped connections) that open the
    /// breaker: from then on Redis is skipped at once until it answers again.
    pub breaker_failures: u32,
    /// How often Redis is probed while the breaker is open.
    #[serde(with = "serde_text")]
    pub probe_interval: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "relay:".to_owned(),
            op_timeout: Duration::from_millis(250),
            dedup_ttl: Duration::from_secs(7 * 86_400),
            delivery_record_ttl: Duration::from_secs(7 * 86_400),
            breaker_failures: 3,
            probe_interval: Duration::from_secs(1),
        }
    }
}
