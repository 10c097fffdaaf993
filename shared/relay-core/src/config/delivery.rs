//! `[delivery]`: relay-delivery itself (its destinations are in [`super::destination`]).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, invalid};

/// relay-delivery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Jobs held at once (`basic_qos`), across every destination. Must be above every
    /// destination's `max_in_flight`: what is left over is what the other destinations keep
    /// while one is stuck.
    pub prefetch: u16,
    /// How long in-flight jobs may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max`.
    #[serde(with = "serde_text")]
    pub backoff_base: Duration,
    /// Largest retry delay.
    #[serde(with = "serde_text")]
    pub backoff_max: Duration,
    /// How often destinations' `secret_file`s are checked for a change (SIGHUP checks at
    /// once), and the disabled destinations re-read from Redis.
    #[serde(with = "serde_text")]
    pub secret_check_interval: Duration,
    /// How often each delivery process reports its open destination breakers to Redis (for
    /// the worker's alert on a breaker open too long). A process with nothing open writes
    /// nothing.
    #[serde(with = "serde_text")]
    pub breaker_report_interval: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            prefetch: 64,
            shutdown_grace: Duration::from_secs(20),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            secret_check_interval: Duration::from_secs(5),
            breaker_report_interval: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Checks what relay-delivery needs.
    pub fn validate_delivery(&self) -> Result<(), ConfigError> {
        if self.delivery.prefetch == 0 {
            return Err(invalid("delivery.prefetch", "must be at least 1"));
        }
        if self.delivery.backoff_base.is_zero()
            || self.delivery.backoff_max < self.delivery.backoff_base
        {
            return Err(invalid(
                "delivery.backoff_base",
                "must be positive and not above delivery.backoff_max",
            ));
        }
        if self.delivery.secret_check_interval.is_zero() {
            return Err(invalid(
                "delivery.secret_check_interval",
                "must be positive",
            ));
        }
        if self.delivery.breaker_report_interval.is_zero() {
            return Err(invalid(
                "delivery.breaker_report_interval",
                "must be positive",
            ));
        }
        for (name, d) in &self.destinations {
            d.validate(name, &self.delivery)?;
        }
        Ok(())
    }
}
