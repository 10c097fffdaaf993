//! `[delivery]` and `[destinations]`: relay-delivery and where it sends.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, EnvSecret, invalid};

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
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            prefetch: 64,
            shutdown_grace: Duration::from_secs(20),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// How delivery signs requests to a destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    /// No signature.
    #[default]
    None,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); the secret is
    /// `whsec_<base64>`.
    StandardWebhooks,
    /// Re:amaze `X-Reamaze-Hmac-SHA256` over the body.
    ReamazeHmac,
    /// HTTP Basic with `username` and the secret as password.
    Basic,
}

/// An outbound destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Base URL; a job's path is appended.
    pub url: String,
    /// Signature scheme.
    #[serde(default)]
    pub signing: Signing,
    /// Environment variable holding the signing secret or password.
    #[serde(default)]
    pub secret_env: Option<EnvSecret>,
    /// User name for `basic`.
    #[serde(default)]
    pub username: Option<String>,
    /// Timeout of one attempt, connection included.
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// Attempts before a retryable failure is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Age after which a retryable failure is dead-lettered.
    #[serde(default = "default_max_age", with = "serde_text")]
    pub max_age: Duration,
    /// Extra non-secret headers on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests to this destination in flight at once, per delivery process. A job that finds
    /// them all taken waits in a delay tier instead of holding one of `delivery.prefetch`'s
    /// slots, so a slow destination cannot starve the others. Below `delivery.prefetch`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Retryable failures in a row (5xx, 408, 429, timeouts, connection errors) that open the
    /// destination's circuit breaker: its jobs then wait in the delay tiers, sending nothing,
    /// until `breaker_cool_down` has passed and a probe request succeeds.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Share of retryable failures among the attempts of one `breaker_window` that opens the
    /// breaker too (once the window has seen `breaker_min_requests`); between 0 and 1.
    #[serde(default = "default_breaker_failure_ratio")]
    pub breaker_failure_ratio: f64,
    /// Attempts a `breaker_window` needs before its failure ratio counts.
    #[serde(default = "default_breaker_min_requests")]
    pub breaker_min_requests: u32,
    /// Length of the windows over which the failure ratio is counted (each starts afresh).
    #[serde(default = "default_breaker_window", with = "serde_text")]
    pub breaker_window: Duration,
    /// How long an open breaker sends nothing before one probe request may go.
    #[serde(default = "default_breaker_cool_down", with = "serde_text")]
    pub breaker_cool_down: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    8
}
fn default_max_age() -> Duration {
    Duration::from_secs(86_400)
}
fn default_max_in_flight() -> u32 {
    16
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_failure_ratio() -> f64 {
    0.5
}
fn default_breaker_min_requests() -> u32 {
    20
}
fn default_breaker_window() -> Duration {
    Duration::from_secs(30)
}
fn default_breaker_cool_down() -> Duration {
    Duration::from_secs(10)
}

impl DestinationConfig {
    /// A destination with defaults for everything but the URL and signing.
    pub fn new(url: impl Into<String>, signing: Signing, secret: Option<EnvSecret>) -> Self {
        Self {
            url: url.into(),
            signing,
            secret_env: secret,
            username: None,
            timeout: default_timeout(),
            max_attempts: default_max_attempts(),
            max_age: default_max_age(),
            headers: BTreeMap::new(),
            max_in_flight: default_max_in_flight(),
            breaker_failures: default_breaker_failures(),
            breaker_failure_ratio: default_breaker_failure_ratio(),
            breaker_min_requests: default_breaker_min_requests(),
            breaker_window: default_breaker_window(),
            breaker_cool_down: default_breaker_cool_down(),
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
        for (name, d) in &self.destinations {
            let field = |f: &str| format!("destinations.{name}.{f}");
            let url = url::Url::parse(&d.url)
                .map_err(|e| invalid(field("url"), format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(field("url"), "must be http or https"));
            }
            if d.max_attempts == 0 {
                return Err(invalid(field("max_attempts"), "must be at least 1"));
            }
            if d.timeout.is_zero() {
                return Err(invalid(field("timeout"), "must be positive"));
            }
            if d.max_in_flight == 0 {
                return Err(invalid(field("max_in_flight"), "must be at least 1"));
            }
            if d.max_in_flight >= u32::from(self.delivery.prefetch) {
                return Err(invalid(
                    field("max_in_flight"),
                    format!(
                        "must be below delivery.prefetch ({}), or one stuck destination could hold every job delivery has taken",
                        self.delivery.prefetch
                    ),
                ));
            }
            if d.breaker_failures == 0 {
                return Err(invalid(field("breaker_failures"), "must be at least 1"));
            }
            if !(d.breaker_failure_ratio > 0.0 && d.breaker_failure_ratio <= 1.0) {
                return Err(invalid(
                    field("breaker_failure_ratio"),
                    "must be above 0 and at most 1",
                ));
            }
            if d.breaker_min_requests == 0 {
                return Err(invalid(field("breaker_min_requests"), "must be at least 1"));
            }
            if d.breaker_window.is_zero() {
                return Err(invalid(field("breaker_window"), "must be positive"));
            }
            if d.breaker_cool_down.is_zero() {
                return Err(invalid(field("breaker_cool_down"), "must be positive"));
            }
            match d.signing {
                Signing::None => {}
                Signing::StandardWebhooks | Signing::ReamazeHmac | Signing::Basic => {
                    let secret = d.secret_env.as_ref().ok_or_else(|| {
                        invalid(field("secret_env"), "required by this signing scheme")
                    })?;
                    let value = secret.require(&field("secret_env"))?;
                    if d.signing == Signing::StandardWebhooks && !value.starts_with("whsec_") {
                        return Err(invalid(
                            field("secret_env"),
                            format!("`{}` must hold a `whsec_…` secret", secret.var()),
                        ));
                    }
                    if d.signing == Signing::Basic && d.username.is_none() {
                        return Err(invalid(field("username"), "required by basic signing"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(destination: &str) -> Result<(), String> {
        let text = format!("[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\n{destination}");
        Config::from_toml(&text, &[], &|_: &str| None)
            .map_err(|e| e.to_string())?
            .validate_delivery()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn isolation_and_breaker_have_defaults() {
        let config = Config::from_toml(
            "[destinations.d]\nurl = \"http://127.0.0.1:1/x\"\n",
            &[],
            &|_: &str| None,
        )
        .unwrap();
        let d = &config.destinations["d"];
        assert_eq!(d.max_in_flight, 16);
        assert_eq!(d.breaker_failures, 5);
        assert_eq!(d.breaker_cool_down, Duration::from_secs(10));
        config.validate_delivery().unwrap();
        check("max_in_flight = 4\nbreaker_failures = 2\nbreaker_failure_ratio = 1.0\nbreaker_window = \"1m\"\nbreaker_cool_down = \"500ms\"\n").unwrap();
    }

    #[test]
    fn bad_limits_name_their_field() {
        for (line, field) in [
            ("max_in_flight = 0", "destinations.d.max_in_flight"),
            ("max_in_flight = 64", "destinations.d.max_in_flight"),
            ("breaker_failures = 0", "destinations.d.breaker_failures"),
            (
                "breaker_failure_ratio = 0.0",
                "destinations.d.breaker_failure_ratio",
            ),
            (
                "breaker_failure_ratio = 1.5",
                "destinations.d.breaker_failure_ratio",
            ),
            (
                "breaker_min_requests = 0",
                "destinations.d.breaker_min_requests",
            ),
            ("breaker_window = \"0s\"", "destinations.d.breaker_window"),
            (
                "breaker_cool_down = \"0s\"",
                "destinations.d.breaker_cool_down",
            ),
        ] {
            let err = check(&format!("{line}\n")).unwrap_err();
            assert!(err.contains(field), "{line}: {err}");
        }
    }
}
