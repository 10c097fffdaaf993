//! The configured destinations as delivery holds them: each one's configuration, its URL parsed
//! once, its live secrets ([`Secrets`]), whether an operator must re-enable it, and the two
//! guards that keep it from harming the others (its [`InFlight`] limiter and its [`Breaker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use relay_core::config::{Config, ConfigError, DestinationConfig};

use crate::breaker::{self, Breaker};
use crate::in_flight::InFlight;
use crate::secrets::Secrets;

/// A destination ready to send to.
pub(crate) struct Destination {
    /// Its name in `[destinations]`, and in metrics.
    pub(crate) name: String,
    /// Its configuration.
    pub(crate) config: DestinationConfig,
    /// `config.url`, parsed once rather than on every request.
    pub(crate) url: reqwest::Url,
    /// Its secrets, reloaded when their file changes.
    pub(crate) secrets: Secrets,
    /// At most `config.max_in_flight` requests at once.
    pub(crate) in_flight: InFlight,
    /// This process's circuit breaker for it.
    pub(crate) breaker: Breaker,
    /// Set when it answered 410 Gone (here or in another delivery process) until an operator
    /// re-enables it (`relayctl destination enable`).
    disabled: AtomicBool,
    /// First retry delay (its own, or delivery's).
    pub(crate) backoff_base: Duration,
    /// Largest retry delay (its own, or delivery's).
    pub(crate) backoff_max: Duration,
}

/// Every destination of `config`, by name.
pub(crate) fn from_config(config: &Config) -> Result<HashMap<String, Destination>, ConfigError> {
    config
        .destinations
        .iter()
        .map(|(name, d)| Ok((name.clone(), Destination::new(name, d, config)?)))
        .collect()
}

impl Destination {
    fn new(name: &str, d: &DestinationConfig, config: &Config) -> Result<Self, ConfigError> {
        let destination = Self {
            name: name.to_owned(),
            url: reqwest::Url::parse(&d.url).map_err(|e| ConfigError::Invalid {
                field: format!("destinations.{name}.url"),
                message: e.to_string(),
            })?,
            secrets: Secrets::load(name, d)?,
            in_flight: InFlight::new(d.max_in_flight),
            breaker: Breaker::new(name, breaker::Settings::of(d)),
            disabled: AtomicBool::new(false),
            backoff_base: d.backoff_base.unwrap_or(config.delivery.backoff_base),
            backoff_max: d.backoff_max.unwrap_or(config.delivery.backoff_max),
            config: d.clone(),
        };
        destination.export_disabled(false);
        destination.register_metrics();
        Ok(destination)
    }

    /// Creates its labelled series at zero, so that dashboards and alert rules see zeros from
    /// start-up rather than gaps: its attempts by outcome, their latency, its jobs deferred by
    /// reason, skipped and gone, and its secret reloads (the breaker and disabled gauges are
    /// set already).
    fn register_metrics(&self) {
        let name = || self.name.clone();
        for outcome in crate::policy::ATTEMPT_OUTCOMES {
            metrics::counter!("relay_delivery_attempts_total", "destination" => name(), "outcome" => *outcome)
                .increment(0);
        }
        // Registering the handle is what creates the series (count 0).
        let _ = metrics::histogram!("relay_delivery_latency_seconds", "destination" => name());
        for reason in crate::settle::DEFERRAL_REASONS {
            metrics::counter!("relay_delivery_deferred_total", "destination" => name(), "reason" => *reason)
                .increment(0);
        }
        metrics::counter!("relay_delivery_skipped_total", "destination" => name()).increment(0);
        metrics::counter!("relay_delivery_destination_gone_total", "destination" => name())
            .increment(0);
        crate::watch::register_metrics(self);
    }

    /// Whether jobs to it are parked without a request.
    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    /// Marks it disabled or enabled in this process; says whether that changed anything.
    pub(crate) fn set_disabled(&self, disabled: bool) -> bool {
        let changed = self.disabled.swap(disabled, Ordering::AcqRel) != disabled;
        if changed {
            self.export_disabled(disabled);
        }
        changed
    }

    fn export_disabled(&self, disabled: bool) {
        metrics::gauge!("relay_destination_disabled", "destination" => self.name.clone())
            .set(if disabled { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::Signing;

    #[test]
    fn a_destination_retries_on_its_own_schedule_or_on_deliverys() {
        let mut config = Config::default();
        let mut own = DestinationConfig::new("http://127.0.0.1:1/a", Signing::None, None);
        own.backoff_base = Some(Duration::from_secs(5));
        own.backoff_max = Some(Duration::from_secs(600));
        config.destinations.insert("own".into(), own);
        config.destinations.insert(
            "default".into(),
            DestinationConfig::new("http://127.0.0.1:1/b", Signing::None, None),
        );
        let destinations = from_config(&config).unwrap();
        let own = &destinations["own"];
        assert_eq!(
            (own.backoff_base, own.backoff_max),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        let default = &destinations["default"];
        assert_eq!(
            (default.backoff_base, default.backoff_max),
            (config.delivery.backoff_base, config.delivery.backoff_max)
        );
    }

    #[test]
    fn disabling_is_reported_once_per_change() {
        let mut config = Config::default();
        config.destinations.insert(
            "d".into(),
            DestinationConfig::new("http://127.0.0.1:1/d", Signing::None, None),
        );
        let d = &from_config(&config).unwrap()["d"];
        assert!(!d.is_disabled());
        assert!(d.set_disabled(true));
        assert!(!d.set_disabled(true), "already disabled");
        assert!(d.is_disabled());
        assert!(d.set_disabled(false));
    }
}
