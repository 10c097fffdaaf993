//! min-balance-alert: `voximplant.min_balance` → one alert job for the configured destination.
//!
//! Voximplant sends `min_balance` when an account's balance falls under its threshold, with
//! `is_min_credit` when it reached the credit limit (calls stop) and `is_repeated` on re-sends.
//! The alert is `critical` when `is_min_credit`, `warning` otherwise.

use futures_util::future::BoxFuture;
use relay_core::config::{AlertFormat, MinBalanceAlertConfig};
use relay_core::routing::{self, HandlerRoute};
use relay_core::{CloudEvent, DeliveryJob, ids};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::handler::{Context, Handler, HandlerError, HandlerResult, Output};

/// The handler's name: part of its queue name and of its job ids.
pub const NAME: &str = routing::MIN_BALANCE_ALERT.name;

/// The min-balance-alert handler: one alert job per callback.
pub struct MinBalanceAlert {
    destination: String,
    format: AlertFormat,
    prefetch: Option<u16>,
}

impl MinBalanceAlert {
    /// The handler for its `[worker.min_balance_alert]` section.
    pub fn new(config: &MinBalanceAlertConfig) -> Self {
        Self {
            destination: config.destination.clone(),
            format: config.format,
            prefetch: config.prefetch,
        }
    }
}

impl Handler for MinBalanceAlert {
    fn route(&self) -> HandlerRoute {
        routing::MIN_BALANCE_ALERT
    }

    fn prefetch(&self) -> Option<u16> {
        self.prefetch
    }

    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        _context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            job(event, &self.destination, self.format)
                .map(Output::job)
                .map_err(HandlerError::malformed)
        })
    }
}

/// What the alert says, taken from the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Account id (the event subject).
    pub account_id: String,
    /// Account name, when the callback carried it.
    pub account_name: Option<String>,
    /// Balance as sent (a JSON number or string; kept exact).
    pub balance: Value,
    /// Currency code.
    pub currency: Option<String>,
    /// The account reached its credit limit.
    pub is_min_credit: bool,
    /// Voximplant re-sent this alert.
    pub is_repeated: bool,
}

impl Alert {
    /// Reads the alert out of a `com.voximplant.account.min_balance` event.
    pub fn from_event(event: &CloudEvent) -> Result<Self, String> {
        let data = event
            .data
            .as_object()
            .ok_or("event data is not an object")?;
        let account_id = match data.get("account_id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => event.subject.clone().ok_or("event has no account id")?,
        };
        let flags = data.get("min_balance").and_then(Value::as_object);
        let flag = |name: &str| {
            flags
                .and_then(|f| f.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Ok(Self {
            account_id,
            account_name: data
                .get("account_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            balance: data.get("balance").cloned().unwrap_or(Value::Null),
            currency: data
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_owned),
            is_min_credit: flag("is_min_credit"),
            is_repeated: flag("is_repeated"),
        })
    }

    /// `critical` at the credit limit, `warning` below the threshold.
    pub fn severity(&self) -> &'static str {
        if self.is_min_credit {
            "critical"
        } else {
            "warning"
        }
    }

    /// One line for humans.
    pub fn summary(&self) -> String {
        let who = match &self.account_name {
            Some(name) => format!("{name} ({})", self.account_id),
            None => self.account_id.clone(),
        };
        let balance = match &self.balance {
            Value::String(s) => s.clone(),
            Value::Null => "unknown".to_owned(),
            other => other.to_string(),
        };
        let currency = self.currency.as_deref().unwrap_or("");
        let what = if self.is_min_credit {
            "reached its credit limit"
        } else {
            "is below its minimum balance"
        };
        format!("Voximplant account {who} {what}: balance {balance} {currency}")
            .trim_end()
            .to_owned()
    }
}

/// The request body for `format`.
pub fn render(alert: &Alert, event: &CloudEvent, format: AlertFormat) -> Value {
    let occurred_at = event.time.format(&Rfc3339).unwrap_or_default();
    match format {
        AlertFormat::Webhook => json!({
            "type": "voximplant.min_balance",
            "severity": alert.severity(),
            "summary": alert.summary(),
            "account_id": alert.account_id,
            "account_name": alert.account_name,
            "balance": alert.balance,
            "currency": alert.currency,
            "is_min_credit": alert.is_min_credit,
            "is_repeated": alert.is_repeated,
            "event_id": event.id,
            "occurred_at": occurred_at,
        }),
        AlertFormat::Alertmanager => json!([{
            "labels": {
                "alertname": "VoximplantMinBalance",
                "severity": alert.severity(),
                "account_id": alert.account_id,
                "source": "relay",
            },
            "annotations": {
                "summary": alert.summary(),
                "event_id": event.id,
            },
            "startsAt": occurred_at,
        }]),
        AlertFormat::Slack => {
            let icon = if alert.is_min_credit {
                ":rotating_light:"
            } else {
                ":warning:"
            };
            json!({ "text": format!("{icon} {}", alert.summary()) })
        }
    }
}

/// The single job for `event`.
pub fn job(
    event: &CloudEvent,
    destination: &str,
    format: AlertFormat,
) -> Result<DeliveryJob, String> {
    let alert = Alert::from_event(event)?;
    let body = serde_json::to_string(&render(&alert, event, format)).map_err(|e| e.to_string())?;
    let id = ids::job_id(&event.id, NAME, 0);
    Ok(DeliveryJob::post(
        id,
        &event.id,
        NAME,
        destination,
        "application/json",
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(min_credit: bool) -> CloudEvent {
        CloudEvent::new(
            "e-1".into(),
            "voximplant/account/42".into(),
            "com.voximplant.account.min_balance".into(),
            json!({"account_id": 42, "account_name": "acme", "balance": 1.5, "currency": "USD",
                   "min_balance": {"is_min_credit": min_credit, "is_repeated": true}}),
        )
        .with_subject("42")
    }

    #[test]
    fn webhook_alert_carries_the_facts() {
        let j = job(&event(false), "alerts", AlertFormat::Webhook).unwrap();
        let body: Value = serde_json::from_str(&j.body).unwrap();
        assert_eq!(body["severity"], "warning");
        assert_eq!(body["account_id"], "42");
        assert_eq!(body["balance"], 1.5);
        assert_eq!(body["is_repeated"], true);
        assert_eq!(body["event_id"], "e-1");
        assert_eq!(
            body["summary"],
            "Voximplant account acme (42) is below its minimum balance: balance 1.5 USD"
        );
        assert_eq!(j.id, ids::job_id("e-1", NAME, 0));
        assert_eq!(j.idempotency_key, j.id);
        assert_eq!(j.destination, "alerts");
    }

    #[test]
    fn credit_limit_is_critical_in_every_format() {
        let e = event(true);
        let alert = Alert::from_event(&e).unwrap();
        assert_eq!(
            render(&alert, &e, AlertFormat::Alertmanager)[0]["labels"]["severity"],
            "critical"
        );
        let slack = render(&alert, &e, AlertFormat::Slack);
        assert!(slack["text"].as_str().unwrap().contains("credit limit"));
    }

    #[test]
    fn same_event_gives_same_job_id() {
        let e = event(false);
        assert_eq!(
            job(&e, "a", AlertFormat::Webhook).unwrap().id,
            job(&e, "a", AlertFormat::Webhook).unwrap().id
        );
    }

    #[test]
    fn refuses_non_object_data() {
        let mut e = event(false);
        e.data = json!([1]);
        assert!(job(&e, "a", AlertFormat::Webhook).is_err());
    }
}
