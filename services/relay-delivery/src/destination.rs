//! The configured destinations as delivery holds them: each one's configuration, its URL parsed
//! once, its signing secret decoded once, and the two guards that keep it from harming the
//! others (its [`InFlight`] limiter and its [`Breaker`]).

use std::collections::HashMap;

use relay_core::config::{Config, ConfigError, DestinationConfig, Signing};
use relay_signing::standard_webhooks;

use crate::breaker::{self, Breaker};
use crate::in_flight::InFlight;

/// A destination ready to send to.
pub(crate) struct Destination {
    /// Its name in `[destinations]`, and in metrics.
    pub(crate) name: String,
    /// Its configuration.
    pub(crate) config: DestinationConfig,
    /// `config.url`, parsed once rather than on every request.
    pub(crate) url: reqwest::Url,
    /// The Standard Webhooks key, for that signing scheme.
    pub(crate) webhook_secret: Option<standard_webhooks::Secret>,
    /// At most `config.max_in_flight` requests at once.
    pub(crate) in_flight: InFlight,
    /// This process's circuit breaker for it.
    pub(crate) breaker: Breaker,
}

/// Every destination of `config`, by name.
pub(crate) fn from_config(config: &Config) -> Result<HashMap<String, Destination>, ConfigError> {
    config
        .destinations
        .iter()
        .map(|(name, d)| Ok((name.clone(), Destination::new(name, d)?)))
        .collect()
}

impl Destination {
    fn new(name: &str, config: &DestinationConfig) -> Result<Self, ConfigError> {
        let webhook_secret = match config.signing {
            Signing::StandardWebhooks => {
                let field = format!("destinations.{name}.secret_env");
                let text = config
                    .secret_env
                    .as_ref()
                    .map_or(Ok(""), |s| s.require(&field))?;
                Some(
                    standard_webhooks::Secret::parse(text).map_err(|e| ConfigError::Invalid {
                        field,
                        message: e.to_string(),
                    })?,
                )
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            url: reqwest::Url::parse(&config.url).map_err(|e| ConfigError::Invalid {
                field: format!("destinations.{name}.url"),
                message: e.to_string(),
            })?,
            webhook_secret,
            in_flight: InFlight::new(config.max_in_flight),
            breaker: Breaker::new(name, breaker::Settings::of(config)),
            config: config.clone(),
        })
    }

    /// The secret named by `secret_env` (empty when there is none).
    pub(crate) fn secret(&self) -> &str {
        self.config
            .secret_env
            .as_ref()
            .and_then(|s| s.value())
            .unwrap_or_default()
    }
}
