//! `[worker.min_balance_alert]`: the min-balance alert lifecycle (firing, throttled, re-sent to
//! Alertmanager, resolved) and the notifiers it reports to.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, invalid};

/// Shape of an alert request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertFormat {
    /// The relay's own JSON alert, for a (signed) webhook.
    #[default]
    Webhook,
    /// Alertmanager `POST /api/v2/alerts` (the destination's URL ends in `/api/v2/alerts`).
    Alertmanager,
    /// Slack incoming webhook: `text` plus Block Kit `blocks`.
    Slack,
}

/// One notifier: a destination and the request shape it takes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// Destination (a key of `[destinations]`); signing is the destination's.
    pub destination: String,
    /// Request shape for that destination.
    #[serde(default)]
    pub format: AlertFormat,
}

/// Per-account settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountAlertConfig {
    /// A balance at or above this resolves the account's alert (overrides
    /// `recovery_balance`).
    pub recovery_balance: Option<f64>,
}

/// The min-balance alert handler.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinBalanceAlertConfig {
    /// The single notifier's destination when `notifiers` is empty (the original form).
    pub destination: String,
    /// The single notifier's request shape when `notifiers` is empty.
    pub format: AlertFormat,
    /// Every notifier, each a destination with its format; empty: `destination` + `format`.
    pub notifiers: Vec<NotifierConfig>,
    /// Within this long of the last notice, callbacks of the same severity only refresh the
    /// alert's state; Slack and webhooks hear again after it (a change of severity: at once).
    #[serde(with = "serde_text")]
    pub throttle: Duration,
    /// While firing, Alertmanager gets the alert again this often (a durable timer); keep it
    /// well below Alertmanager's `resolve_timeout` (5 m by default).
    #[serde(with = "serde_text")]
    pub resend_interval: Duration,
    /// No `min_balance` callback for this long resolves the alert (checked on each re-send).
    #[serde(with = "serde_text")]
    pub quiet_period: Duration,
    /// A callback reporting a balance at or above this resolves the alert; none: only
    /// `quiet_period` (or an account's own level) resolves it.
    pub recovery_balance: Option<f64>,
    /// Per-account settings, by Voximplant account id.
    pub accounts: BTreeMap<String, AccountAlertConfig>,
    /// `generatorURL` of the Alertmanager alerts (e.g. the Voximplant control panel); none:
    /// left out.
    pub generator_url: Option<String>,
    /// Unacknowledged events at once; default `worker.prefetch`.
    pub prefetch: Option<u16>,
}

impl Default for MinBalanceAlertConfig {
    fn default() -> Self {
        Self {
            destination: "alerts".to_owned(),
            format: AlertFormat::Webhook,
            notifiers: Vec::new(),
            throttle: Duration::from_secs(3600),
            resend_interval: Duration::from_secs(60),
            quiet_period: Duration::from_secs(24 * 3600),
            recovery_balance: None,
            accounts: BTreeMap::new(),
            generator_url: None,
            prefetch: None,
        }
    }
}

impl MinBalanceAlertConfig {
    /// The notifiers in effect: `notifiers`, or the one `destination` + `format`.
    pub fn effective_notifiers(&self) -> Vec<NotifierConfig> {
        if self.notifiers.is_empty() {
            vec![NotifierConfig {
                destination: self.destination.clone(),
                format: self.format,
            }]
        } else {
            self.notifiers.clone()
        }
    }

    /// The recovery level of `account`: its own, else the global one.
    pub fn recovery_balance_of(&self, account: &str) -> Option<f64> {
        self.accounts
            .get(account)
            .and_then(|a| a.recovery_balance)
            .or(self.recovery_balance)
    }

    /// Whether any account can recover by balance (else balance callbacks need not be read).
    pub fn recovers_by_balance(&self) -> bool {
        self.recovery_balance.is_some()
            || self.accounts.values().any(|a| a.recovery_balance.is_some())
    }
}

impl Config {
    /// Checks the notifiers of `section`: each destination exists, and an Alertmanager's URL
    /// is its v2 alerts endpoint (anything else answers 404 to every alert, or takes them
    /// for something else).
    pub(super) fn check_notifiers(
        &self,
        section: &str,
        notifiers: &[NotifierConfig],
    ) -> Result<(), ConfigError> {
        for (i, notifier) in notifiers.iter().enumerate() {
            let field = format!("{section}.notifiers[{i}].destination");
            self.require_destination(&field, &notifier.destination)?;
            let url = &self.destinations[&notifier.destination].url;
            let path = url.split(['?', '#']).next().unwrap_or_default();
            if notifier.format == AlertFormat::Alertmanager
                && !path.trim_end_matches('/').ends_with("/api/v2/alerts")
            {
                return Err(invalid(
                    field,
                    format!(
                        "destination `{}` takes Alertmanager alerts, so its url must end in /api/v2/alerts (it is {url})",
                        notifier.destination
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks `[worker.min_balance_alert]`.
    pub(super) fn validate_min_balance_alert(&self) -> Result<(), ConfigError> {
        let Some(alert) = &self.worker.min_balance_alert else {
            return Ok(());
        };
        if alert.notifiers.is_empty() {
            self.require_destination("worker.min_balance_alert.destination", &alert.destination)?;
        }
        self.check_notifiers("worker.min_balance_alert", &alert.effective_notifiers())?;
        if alert.prefetch == Some(0) {
            return Err(invalid(
                "worker.min_balance_alert.prefetch",
                "must be at least 1",
            ));
        }
        if alert.resend_interval.is_zero() {
            return Err(invalid(
                "worker.min_balance_alert.resend_interval",
                "must be positive",
            ));
        }
        if alert.quiet_period < alert.resend_interval {
            return Err(invalid(
                "worker.min_balance_alert.quiet_period",
                "must be at least worker.min_balance_alert.resend_interval",
            ));
        }
        let finite = |field: String, level: Option<f64>| match level {
            Some(level) if !level.is_finite() => Err(invalid(field, "must be a finite number")),
            _ => Ok(()),
        };
        finite(
            "worker.min_balance_alert.recovery_balance".to_owned(),
            alert.recovery_balance,
        )?;
        for (account, settings) in &alert.accounts {
            finite(
                format!("worker.min_balance_alert.accounts.\"{account}\".recovery_balance"),
                settings.recovery_balance,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Config {
        Config::from_toml(text, &[], &no_env).unwrap()
    }

    const DESTINATIONS: &str = r#"
        [destinations.alerts]
        url = "http://127.0.0.1:9999/alerts"
        [destinations.alertmanager]
        url = "http://127.0.0.1:9093/api/v2/alerts"
    "#;

    #[test]
    fn the_original_form_is_one_notifier_with_lifecycle_defaults() {
        let c = parse(&format!(
            "[worker.min_balance_alert]\nformat = \"slack\"\n{DESTINATIONS}"
        ));
        c.validate_worker().unwrap();
        let a = c.worker.min_balance_alert.unwrap();
        assert_eq!(
            a.effective_notifiers(),
            [NotifierConfig {
                destination: "alerts".into(),
                format: AlertFormat::Slack
            }]
        );
        assert_eq!(a.throttle, Duration::from_secs(3600));
        assert_eq!(a.resend_interval, Duration::from_secs(60));
        assert_eq!(a.recovery_balance_of("1"), None);
        assert!(!a.recovers_by_balance());
    }

    #[test]
    fn notifiers_and_recovery_levels_per_account() {
        let c = parse(&format!(
            r#"
            [worker.min_balance_alert]
            notifiers = [{{ destination = "alertmanager", format = "alertmanager" }},
                         {{ destination = "alerts" }}]
            throttle = "30m"
            resend_interval = "30s"
            quiet_period = "6h"
            recovery_balance = 10
            [worker.min_balance_alert.accounts."42"]
            recovery_balance = 100.5
            {DESTINATIONS}"#
        ));
        c.validate_worker().unwrap();
        let a = c.worker.min_balance_alert.unwrap();
        assert_eq!(a.effective_notifiers().len(), 2);
        assert_eq!(a.effective_notifiers()[1].format, AlertFormat::Webhook);
        assert_eq!(a.recovery_balance_of("42"), Some(100.5));
        assert_eq!(a.recovery_balance_of("7"), Some(10.0));
        assert_eq!(a.throttle, Duration::from_secs(1800));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |text: &str| {
            parse(&format!(
                "[worker.min_balance_alert]\n{text}\n{DESTINATIONS}"
            ))
            .validate_worker()
            .unwrap_err()
            .to_string()
        };
        let e = err(r#"notifiers = [{ destination = "nope", format = "slack" }]"#);
        assert!(
            e.contains("worker.min_balance_alert.notifiers[0].destination"),
            "{e}"
        );
        let e = err(r#"notifiers = [{ destination = "alerts", format = "alertmanager" }]"#);
        assert!(e.contains("must end in /api/v2/alerts"), "{e}");
        let e = err(r#"resend_interval = "0s""#);
        assert!(
            e.contains("worker.min_balance_alert.resend_interval"),
            "{e}"
        );
        let e = err("resend_interval = \"2h\"\nquiet_period = \"1h\"");
        assert!(e.contains("worker.min_balance_alert.quiet_period"), "{e}");
    }
}
