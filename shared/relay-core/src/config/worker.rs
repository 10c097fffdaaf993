//! `[worker]`: relay-worker and its handlers.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;

use super::{Config, ConfigError, invalid};

/// relay-worker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Unacknowledged events per handler at once (`basic_qos`).
    pub prefetch: u16,
    /// How long in-flight events may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// The min-balance alert handler.
    pub min_balance_alert: MinBalanceAlertConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9091)),
            prefetch: 32,
            shutdown_grace: Duration::from_secs(20),
            min_balance_alert: MinBalanceAlertConfig::default(),
        }
    }
}

/// Shape of an alert request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertFormat {
    /// The relay's own JSON alert, for a signed webhook.
    #[default]
    Webhook,
    /// Alertmanager `POST /api/v2/alerts`.
    Alertmanager,
    /// Slack incoming webhook `{"text": …}`.
    Slack,
}

/// The min-balance alert handler.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinBalanceAlertConfig {
    /// Destination (a key of `[destinations]`) that receives the alerts.
    pub destination: String,
    /// Request shape for that destination.
    pub format: AlertFormat,
}

impl Default for MinBalanceAlertConfig {
    fn default() -> Self {
        Self {
            destination: "alerts".to_owned(),
            format: AlertFormat::Webhook,
        }
    }
}

impl Config {
    /// Checks what relay-worker needs.
    pub fn validate_worker(&self) -> Result<(), ConfigError> {
        let name = &self.worker.min_balance_alert.destination;
        if !self.destinations.contains_key(name) {
            return Err(invalid(
                "worker.min_balance_alert.destination",
                format!("no destination named `{name}` in [destinations]"),
            ));
        }
        if self.worker.prefetch == 0 {
            return Err(invalid("worker.prefetch", "must be at least 1"));
        }
        Ok(())
    }
}
