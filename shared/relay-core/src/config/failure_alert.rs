//! `[worker.failure_alert]`: alerts about the relay's own failures: deliveries that failed for
//! good, a destination's breaker open too long, a queue deeper than its threshold.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::serde_text;
use crate::routing;

use super::{Config, ConfigError, NotifierConfig, invalid};

/// The failure-alert handler.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureAlertConfig {
    /// Where failure alerts go (at least one). A failure of one of these destinations is
    /// logged and counted, never alerted about: an alert about the alert would feed on itself.
    pub notifiers: Vec<NotifierConfig>,
    /// After a destination's first failed delivery, wait this long for more before alerting,
    /// so that one alert names them all.
    #[serde(with = "serde_text")]
    pub group_wait: Duration,
    /// At most one alert per destination per window; failures later in the window are counted
    /// and reported with the next window's alert.
    #[serde(with = "serde_text")]
    pub window: Duration,
    /// How often the worker looks at breakers and queue depths.
    #[serde(with = "serde_text")]
    pub check_interval: Duration,
    /// A destination's breaker open (in any delivery process) at least this long fires an
    /// alert; it resolves when no process has it open.
    #[serde(with = "serde_text")]
    pub breaker_open_after: Duration,
    /// Queue name → the depth (ready messages) above which it fires an alert; resolved once at
    /// or below it. Set a queue to 0 to alert on any message in it.
    pub queue_thresholds: BTreeMap<String, u64>,
    /// Unacknowledged events at once; default `worker.prefetch`.
    pub prefetch: Option<u16>,
}

impl Default for FailureAlertConfig {
    fn default() -> Self {
        Self {
            notifiers: Vec::new(),
            group_wait: Duration::from_secs(30),
            window: Duration::from_secs(3600),
            check_interval: Duration::from_secs(30),
            breaker_open_after: Duration::from_secs(300),
            queue_thresholds: BTreeMap::from([
                (routing::UNROUTED.to_owned(), 1000),
                (routing::DEAD_EVENTS_QUEUE.to_owned(), 100),
                (routing::DEAD_DELIVERIES_QUEUE.to_owned(), 100),
            ]),
            prefetch: None,
        }
    }
}

impl FailureAlertConfig {
    /// Whether `destination` is one the failure alerts go to.
    pub fn notifies(&self, destination: &str) -> bool {
        self.notifiers.iter().any(|n| n.destination == destination)
    }
}

impl Config {
    /// Checks `[worker.failure_alert]`.
    pub(super) fn validate_failure_alert(&self) -> Result<(), ConfigError> {
        let Some(alert) = &self.worker.failure_alert else {
            return Ok(());
        };
        if alert.notifiers.is_empty() {
            return Err(invalid(
                "worker.failure_alert.notifiers",
                "name at least one notifier, e.g. notifiers = [{ destination = \"alerts\" }]",
            ));
        }
        self.check_notifiers("worker.failure_alert", &alert.notifiers)?;
        if alert.prefetch == Some(0) {
            return Err(invalid(
                "worker.failure_alert.prefetch",
                "must be at least 1",
            ));
        }
        for (field, value) in [
            ("window", alert.window),
            ("check_interval", alert.check_interval),
        ] {
            if value.is_zero() {
                return Err(invalid(
                    format!("worker.failure_alert.{field}"),
                    "must be positive",
                ));
            }
        }
        if alert.group_wait >= alert.window {
            return Err(invalid(
                "worker.failure_alert.group_wait",
                "must be shorter than worker.failure_alert.window",
            ));
        }
        if let Some(queue) = alert.queue_thresholds.keys().find(|q| q.is_empty()) {
            return Err(invalid(
                format!("worker.failure_alert.queue_thresholds.\"{queue}\""),
                "a queue name cannot be empty",
            ));
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

    const DESTINATIONS: &str = r#"
        [destinations.alerts]
        url = "http://127.0.0.1:9999/alerts"
    "#;

    fn check(text: &str) -> Result<Config, String> {
        let c = Config::from_toml(&format!("{text}\n{DESTINATIONS}"), &[], &no_env)
            .map_err(|e| e.to_string())?;
        c.validate_worker().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_watch_unrouted_and_the_parking_lots() {
        let c =
            check("[worker.failure_alert]\nnotifiers = [{ destination = \"alerts\" }]").unwrap();
        assert_eq!(c.enabled_handlers(), [routing::FAILURE_ALERT]);
        let a = c.worker.failure_alert.unwrap();
        assert_eq!(a.window, Duration::from_secs(3600));
        assert_eq!(a.queue_thresholds["relay.unrouted"], 1000);
        assert_eq!(a.queue_thresholds["relay.dead.deliveries"], 100);
        assert!(a.notifies("alerts"));
        assert!(!a.notifies("helpdesk"));
    }

    #[test]
    fn bad_settings_are_named() {
        let e = check("[worker.failure_alert]").unwrap_err();
        assert!(e.contains("worker.failure_alert.notifiers"), "{e}");
        let e =
            check("[worker.failure_alert]\nnotifiers = [{ destination = \"nope\" }]").unwrap_err();
        assert!(
            e.contains("worker.failure_alert.notifiers[0].destination"),
            "{e}"
        );
        let base = "[worker.failure_alert]\nnotifiers = [{ destination = \"alerts\" }]\n";
        let e = check(&format!("{base}group_wait = \"2h\"")).unwrap_err();
        assert!(e.contains("worker.failure_alert.group_wait"), "{e}");
        let e = check(&format!("{base}check_interval = \"0s\"")).unwrap_err();
        assert!(e.contains("worker.failure_alert.check_interval"), "{e}");
        let e = check(&format!(
            "{base}[worker.failure_alert.queue_thresholds]\n\"\" = 1"
        ))
        .unwrap_err();
        assert!(e.contains("queue_thresholds"), "{e}");
    }
}
