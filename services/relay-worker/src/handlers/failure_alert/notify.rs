//! What failure alerts look like to each notifier format: Alertmanager v2 alerts, Slack
//! messages (text and blocks), and the relay's alert JSON for webhooks.

use std::time::Duration;

use relay_core::config::AlertFormat;
use relay_core::routing;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::state::{ConditionNotice, Firing, Window};

/// `alertname` of a destination's failed deliveries.
pub const DELIVERY_FAILED: &str = "RelayDeliveryFailed";
/// `alertname` of a queue above its threshold.
pub const QUEUE_DEPTH: &str = "RelayQueueDepth";
/// `alertname` of a breaker open too long.
pub const BREAKER_OPEN: &str = "RelayDestinationBreakerOpen";
/// Every `alertname` (the label of `relay_failure_alerts_total` too).
pub const ALERTNAMES: [&str; 3] = [DELIVERY_FAILED, QUEUE_DEPTH, BREAKER_OPEN];

/// A firing condition's `endsAt` is this many checks ahead.
pub const ENDS_AFTER_CHECKS: u32 = 4;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The command that lists a destination's parked jobs.
pub fn dead_list_command(destination: &str) -> String {
    format!("relayctl dead list --destination {destination}")
}

/// One alert, whatever its source, in the terms every format needs.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `alertname`.
    pub name: &'static str,
    /// Identifying labels besides `alertname` and `severity` (stable across re-sends).
    pub labels: Vec<(&'static str, String)>,
    /// Firing, or resolved.
    pub resolved: bool,
    /// One line for humans.
    pub summary: String,
    /// The details.
    pub description: String,
    /// What to run to look into it, if anything.
    pub command: Option<String>,
    /// Since when.
    pub starts_at: OffsetDateTime,
    /// Until when (resolved: when it cleared; firing: when Alertmanager may forget it).
    pub ends_at: OffsetDateTime,
    /// The machine-readable facts, for webhooks.
    pub facts: Value,
}

/// The alert of a destination's failure window.
pub fn delivery_failed(destination: &str, window: &Window, length: Duration) -> Alert {
    let last = &window.last;
    let what = last.event_type.as_deref().unwrap_or("a job");
    let status = last
        .status
        .map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
    let reason = last.reason.as_deref().unwrap_or("unknown");
    let mut description = format!(
        "{} failed since {}. Latest: {what} (job {}, handler {}) gave up after {} attempt(s): {status}, {reason}",
        plural(window.count, "delivery", "deliveries"),
        rfc3339(window.start),
        last.job_id,
        last.handler,
        last.attempts,
    );
    if let Some(detail) = &last.detail {
        description.push_str(&format!(" ({detail})"));
    }
    if let Some(excerpt) = last.excerpt.as_deref().filter(|e| !e.is_empty()) {
        description.push_str(&format!(". Response: {}", clip(excerpt, 300)));
    }
    if window.carried > 0 {
        description.push_str(&format!(
            ". Also {} after the previous alert",
            plural(window.carried, "failure", "failures")
        ));
    }
    Alert {
        name: DELIVERY_FAILED,
        labels: vec![("destination", destination.to_owned())],
        resolved: false,
        summary: format!(
            "Deliveries to {destination} are failing: {} in this window, last {status}",
            window.count
        ),
        description,
        command: Some(dead_list_command(destination)),
        starts_at: window.start,
        ends_at: window.start + length,
        facts: json!({
            "destination": destination,
            "failed": window.count,
            "carried": window.carried,
            "first_failed_at": rfc3339(window.start),
            "event_type": last.event_type,
            "last_status": last.status,
            "reason": last.reason,
            "detail": last.detail,
            "response_excerpt": last.excerpt,
            "job_id": last.job_id,
            "handler": last.handler,
            "attempts": last.attempts,
        }),
    }
}

/// The alert of a firing or resolved condition.
pub fn condition(
    notice: ConditionNotice,
    firing: &Firing,
    check_interval: Duration,
    now: OffsetDateTime,
) -> Alert {
    let last = &firing.last;
    let resolved = notice == ConditionNotice::Resolved;
    let ends_at = if resolved {
        last.at
    } else {
        last.at.max(now) + check_interval * ENDS_AFTER_CHECKS
    };
    let (name, label, summary, description, command) = match last.kind.as_str() {
        "breaker_open" => {
            let summary = if resolved {
                format!("Destination {}'s breaker closed", last.subject)
            } else {
                format!(
                    "Destination {}'s breaker has been open for {} (threshold {})",
                    last.subject,
                    seconds(last.value),
                    seconds(last.threshold)
                )
            };
            let description = "While it is open its jobs wait in the delay tiers; they go again once a probe succeeds.".to_owned();
            (
                BREAKER_OPEN,
                "destination",
                summary,
                description,
                Some(dead_list_command(&last.subject)),
            )
        }
        _ => {
            let summary = if resolved {
                format!(
                    "Queue {} is back at or below {} messages ({} now)",
                    last.subject, last.threshold, last.value
                )
            } else {
                format!(
                    "Queue {} holds {} (threshold {})",
                    last.subject,
                    plural(last.value, "message", "messages"),
                    last.threshold
                )
            };
            let description = match last.subject.as_str() {
                routing::UNROUTED => "Events no enabled handler takes pile up here.",
                routing::DEAD_DELIVERIES_QUEUE => "Jobs delivery gave up on are parked here.",
                routing::DEAD_EVENTS_QUEUE => "Events a handler could not process are parked here.",
                _ => "The queue is deeper than its threshold.",
            }
            .to_owned();
            let command = match last.subject.as_str() {
                routing::UNROUTED => Some("relayctl dead list --queue unrouted"),
                routing::DEAD_DELIVERIES_QUEUE => {
                    Some("relayctl dead list --queue dead-deliveries")
                }
                routing::DEAD_EVENTS_QUEUE => Some("relayctl dead list --queue dead-events"),
                _ => None,
            };
            (
                QUEUE_DEPTH,
                "queue",
                summary,
                description,
                command.map(str::to_owned),
            )
        }
    };
    Alert {
        name,
        labels: vec![(label, last.subject.clone())],
        resolved,
        summary,
        description,
        command,
        starts_at: firing.since,
        ends_at,
        facts: json!({
            "kind": last.kind,
            "subject": last.subject,
            "value": last.value,
            "threshold": last.threshold,
            "observed_at": rfc3339(last.at),
        }),
    }
}

fn seconds(s: u64) -> String {
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Alertmanager's body (`POST /api/v2/alerts`): one postable alert.
pub fn alertmanager(alert: &Alert) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(alert.name));
    for (name, value) in &alert.labels {
        labels.insert((*name).into(), json!(value));
    }
    labels.insert("severity".into(), json!("warning"));
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(alert.summary));
    annotations.insert("description".into(), json!(alert.description));
    if let Some(command) = &alert.command {
        annotations.insert("command".into(), json!(command));
    }
    json!([{
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at),
    }])
}

/// A Slack message.
pub fn slack(alert: &Alert) -> Value {
    let (icon, status) = if alert.resolved {
        (":white_check_mark:", "RESOLVED")
    } else {
        (":rotating_light:", "FIRING")
    };
    let headline = if alert.resolved {
        format!("Resolved: {}", alert.summary)
    } else {
        alert.summary.clone()
    };
    let mut body = format!("{icon} *{headline}*\n{}", alert.description);
    if let Some(command) = &alert.command {
        body.push_str(&format!("\nInspect: `{command}`"));
    }
    json!({
        "text": format!("{icon} {headline}. {}", alert.description),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("*{status}* · `{}` · since {}", alert.name, rfc3339(alert.starts_at))}]},
        ],
    })
}

/// The relay's alert JSON.
pub fn webhook(alert: &Alert, event_id: &str) -> Value {
    let mut labels = serde_json::Map::new();
    for (name, value) in &alert.labels {
        labels.insert((*name).into(), json!(value));
    }
    json!({
        "type": "relay.failure_alert",
        "alertname": alert.name,
        "status": if alert.resolved { "resolved" } else { "firing" },
        "severity": "warning",
        "labels": labels,
        "summary": alert.summary,
        "description": alert.description,
        "command": alert.command,
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": alert.resolved.then(|| rfc3339(alert.ends_at)),
        "facts": alert.facts,
        "event_id": event_id,
    })
}

/// The body for `format`.
pub fn body(format: AlertFormat, alert: &Alert, event_id: &str) -> Value {
    match format {
        AlertFormat::Alertmanager => alertmanager(alert),
        AlertFormat::Slack => slack(alert),
        AlertFormat::Webhook => webhook(alert, event_id),
    }
}
