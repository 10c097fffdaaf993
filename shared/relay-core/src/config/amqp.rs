//! `[amqp]`: the RabbitMQ connection and topology.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::duration::{serde_text, serde_text_vec};

/// RabbitMQ.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URI, vhost included (`%2f` is `/`). Contains credentials: never logged.
    pub url: String,
    /// How long a publish may wait for the broker's confirm before it counts as failed.
    #[serde(with = "serde_text")]
    pub confirm_timeout: Duration,
    /// `x-delivery-limit` of the handler queues and `relay.deliveries`: a message redelivered
    /// this many times (consumer crashes, requeues) is dead-lettered instead of looping.
    pub delivery_limit: u32,
    /// Delay tiers of durable retries, ascending; one `relay.retry.<delay>` queue each.
    #[serde(with = "serde_text_vec")]
    pub retry_tiers: Vec<Duration>,
    /// Upper bound of the pause between reconnection attempts.
    #[serde(with = "serde_text")]
    pub reconnect_max_delay: Duration,
    /// How long `relay.unrouted` keeps an event that no handler took (`x-message-ttl`).
    #[serde(with = "serde_text")]
    pub unrouted_ttl: Duration,
    /// Most events `relay.unrouted` holds (`x-max-length`); past it the oldest are dropped.
    pub unrouted_max_length: u32,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            confirm_timeout: Duration::from_secs(5),
            delivery_limit: 10,
            retry_tiers: [1, 5, 30, 120, 600, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            reconnect_max_delay: Duration::from_secs(5),
            unrouted_ttl: Duration::from_secs(7 * 86_400),
            unrouted_max_length: 100_000,
        }
    }
}
