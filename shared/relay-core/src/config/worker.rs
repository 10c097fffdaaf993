//! `[worker]`: relay-worker and its handlers.
//!
//! A handler runs when its section is present (`[worker.call_log]`, `[worker.min_balance_alert]`,
//! `[worker.web_callback]`);
//! without its section its queue is not declared and the events it would take stay in
//! `relay.unrouted`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::serde_text;
use crate::routing::{self, HandlerRoute};

use super::{Config, ConfigError, invalid};

/// relay-worker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Unacknowledged events per handler at once (`basic_qos`), unless the handler's section
    /// sets its own.
    pub prefetch: u16,
    /// How long in-flight events may take to finish after SIGTERM.
    #[serde(with = "serde_text")]
    pub shutdown_grace: Duration,
    /// How long one handler call may take before it counts as a transient failure.
    #[serde(with = "serde_text")]
    pub handler_timeout: Duration,
    /// A transient handler failure is retried durably (through the `relay.handler-retry.*`
    /// delay tiers, with backoff) until the event is this old; then it is parked in
    /// `relay.dead.events`.
    #[serde(with = "serde_text")]
    pub retry_max_age: Duration,
    /// How often the depths of `relay.unrouted`, the parking lots, `relay.deliveries` and the
    /// handler queues are read into `relay_queue_messages{queue}`.
    #[serde(with = "serde_text")]
    pub queue_depth_interval: Duration,
    /// The min-balance alert handler; absent: off.
    pub min_balance_alert: Option<super::MinBalanceAlertConfig>,
    /// The call-log handler; absent: off.
    pub call_log: Option<CallLogConfig>,
    /// The web-callback handler (originates the calls web callbacks ask for); absent: off.
    pub web_callback: Option<super::WebCallbackConfig>,
    /// The failure-alert handler (failed deliveries, breakers open too long, queues too deep);
    /// absent: off.
    pub failure_alert: Option<super::FailureAlertConfig>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9091)),
            prefetch: 32,
            shutdown_grace: Duration::from_secs(20),
            handler_timeout: Duration::from_secs(30),
            retry_max_age: Duration::from_secs(86_400),
            queue_depth_interval: Duration::from_secs(15),
            min_balance_alert: None,
            call_log: None,
            web_callback: None,
            failure_alert: None,
        }
    }
}

/// When an inbound Plivo call counts as answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InboundAnswer {
    /// When an agent leg answers (a `<Dial>` leg reported to `/v1/plivo/status` by the Dial's
    /// `callbackUrl`). Plivo answers every inbound call itself to run the application, so the
    /// caller's own leg being in progress says nothing about a person picking up.
    #[default]
    AgentLeg,
    /// As soon as the application answers the caller's leg (no `<Dial>` in the application).
    App,
}

/// A staff member, by the number or SIP user that identifies them on a call.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Shown in the helpdesk ("Call answered by Alice").
    pub name: String,
    /// The staff e-mail the conversation is assigned to.
    #[serde(default)]
    pub email: Option<String>,
}

/// The call-log handler: call events from every provider → one helpdesk thread per call.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallLogConfig {
    /// Helpdesk destination (a key of `[destinations]`) of sessions whose channel number has
    /// no entry in `channels`.
    pub destination: String,
    /// Channel number (the company's number, E.164) → helpdesk destination, e.g. one Re:amaze
    /// brand per number.
    pub channels: BTreeMap<String, String>,
    /// A session with no terminal event this long after it began is closed with "Call ended
    /// (no hangup received)" by a durable timer.
    #[serde(with = "serde_text")]
    pub end_after: Duration,
    /// An ending without proof of an answer (an inbound caller's leg always ends `completed`)
    /// waits this long for an agent's answer that may still be on its way before it becomes
    /// "Missed call".
    #[serde(with = "serde_text")]
    pub missed_grace: Duration,
    /// How long a session's ledger is kept after its last change (late events within it are
    /// recognised and ignored).
    #[serde(with = "serde_text")]
    pub session_ttl: Duration,
    /// Send "Recording available" messages with the recording's URL as an attachment.
    pub recordings: bool,
    /// Region (ISO 3166 code, e.g. `US`) of numbers that arrive without a country code; none:
    /// such numbers are kept as they came.
    pub default_region: Option<String>,
    /// Customer names by number, shown in the helpdesk.
    pub contacts: BTreeMap<String, String>,
    /// Staff by number or SIP user (`sip:alice@example.com` or `alice`).
    pub agents: BTreeMap<String, AgentConfig>,
    /// When an inbound Plivo call counts as answered.
    pub plivo_inbound_answer: InboundAnswer,
    /// Unacknowledged events at once; default `worker.prefetch`.
    pub prefetch: Option<u16>,
}

impl Default for CallLogConfig {
    fn default() -> Self {
        Self {
            destination: "helpdesk".to_owned(),
            channels: BTreeMap::new(),
            end_after: Duration::from_secs(4 * 3600),
            missed_grace: Duration::from_secs(10),
            session_ttl: Duration::from_secs(2 * 86_400),
            recordings: true,
            default_region: None,
            contacts: BTreeMap::new(),
            agents: BTreeMap::new(),
            plivo_inbound_answer: InboundAnswer::AgentLeg,
            prefetch: None,
        }
    }
}

impl Config {
    /// `Ok` when `[destinations]` has `name`; else an error naming `field`.
    pub(super) fn require_destination(&self, field: &str, name: &str) -> Result<(), ConfigError> {
        if self.destinations.contains_key(name) {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!("no destination named `{name}` in [destinations]"),
            ))
        }
    }

    /// The handlers whose section is present, with their routes.
    pub fn enabled_handlers(&self) -> Vec<HandlerRoute> {
        let worker = &self.worker;
        let mut routes = Vec::new();
        if worker.min_balance_alert.is_some() {
            routes.push(routing::MIN_BALANCE_ALERT);
        }
        if worker.call_log.is_some() {
            routes.push(routing::CALL_LOG);
        }
        if worker.web_callback.is_some() {
            routes.push(routing::WEB_CALLBACK);
        }
        if worker.failure_alert.is_some() {
            routes.push(routing::FAILURE_ALERT);
        }
        routes
    }

    /// Checks what relay-worker needs.
    pub fn validate_worker(&self) -> Result<(), ConfigError> {
        let destination = |field: &str, name: &str| self.require_destination(field, name);
        let prefetch = |field: &str, value: Option<u16>| {
            if value == Some(0) {
                Err(invalid(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        prefetch("worker.prefetch", Some(self.worker.prefetch))?;
        if self.worker.queue_depth_interval.is_zero() {
            return Err(invalid("worker.queue_depth_interval", "must be positive"));
        }
        if self.worker.handler_timeout.is_zero() {
            return Err(invalid("worker.handler_timeout", "must be positive"));
        }
        self.validate_min_balance_alert()?;
        self.validate_web_callback()?;
        self.validate_failure_alert()?;
        if let Some(log) = &self.worker.call_log {
            destination("worker.call_log.destination", &log.destination)?;
            prefetch("worker.call_log.prefetch", log.prefetch)?;
            for (number, name) in &log.channels {
                let field = format!("worker.call_log.channels.\"{number}\"");
                destination(&field, name)?;
                if !number.starts_with('+') {
                    return Err(invalid(field, "a channel number is written in E.164 (+…)"));
                }
            }
            if log.end_after.is_zero() {
                return Err(invalid("worker.call_log.end_after", "must be positive"));
            }
            if log.missed_grace.is_zero() || log.missed_grace >= log.end_after {
                return Err(invalid(
                    "worker.call_log.missed_grace",
                    "must be positive and shorter than worker.call_log.end_after",
                ));
            }
            if log.session_ttl <= log.end_after {
                return Err(invalid(
                    "worker.call_log.session_ttl",
                    "must be longer than worker.call_log.end_after",
                ));
            }
            if let Some(region) = &log.default_region
                && !(region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(invalid(
                    "worker.call_log.default_region",
                    "an ISO 3166 region code such as \"US\"",
                ));
            }
        }
        Ok(())
    }
}
