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
    /// Jobs in flight at once (`basic_qos`).
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
