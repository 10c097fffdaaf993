//! The requests a notice or a re-send becomes, per notifier format: Alertmanager's v2 alerts,
//! a Slack message (text and blocks) and the relay's own alert JSON for webhooks.

use std::time::Duration;

use relay_core::config::AlertFormat;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::state::{Firing, Notice, NoticeKind, Severity};

/// `alertname` of the Alertmanager alert.
pub const ALERTNAME: &str = "VoximplantLowBalance";

/// A firing alert's `endsAt` is this many re-send intervals ahead: a missed re-send or two
/// does not resolve it, yet it ends soon after the relay stops re-sending.
pub const ENDS_AFTER_RESENDS: u32 = 4;

/// What the renderers need besides the alert.
#[derive(Debug, Clone)]
pub struct Render<'a> {
    /// The account.
    pub account: &'a str,
    /// `resend_interval`.
    pub resend_interval: Duration,
    /// `generatorURL`, when configured.
    pub generator_url: Option<&'a str>,
    /// The clock: a firing alert's `endsAt` is counted from now (or from its event, if later),
    /// so an event handled late (a retry, a worker that was down) never sends an `endsAt`
    /// already past, which Alertmanager would take as resolved.
    pub now: OffsetDateTime,
    /// The event that caused the request (the webhook's `event_id`).
    pub event_id: &'a str,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn balance_text(balance: &Value) -> String {
    match balance {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".to_owned(),
        other => other.to_string(),
    }
}

/// "acme (42)" or "42".
fn who(render: &Render<'_>, firing: &Firing) -> String {
    match &firing.facts.account_name {
        Some(name) => format!("{name} ({})", render.account),
        None => render.account.to_owned(),
    }
}

/// One line for humans.
pub fn summary(render: &Render<'_>, firing: &Firing, severity: Severity) -> String {
    let what = match severity {
        Severity::Critical => "reached its credit limit",
        Severity::Warning => "is below its minimum balance",
    };
    format!("Voximplant account {} {what}", who(render, firing))
}

/// Balance and currency, for humans.
pub fn description(firing: &Firing) -> String {
    let currency = firing.facts.currency.as_deref().unwrap_or("");
    format!("Balance {} {currency}", balance_text(&firing.facts.balance))
        .trim_end()
        .to_owned()
}

/// One Alertmanager alert (v2 `postableAlert`).
fn alertmanager_alert(
    render: &Render<'_>,
    firing: &Firing,
    severity: Severity,
    ends_at: OffsetDateTime,
) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": ALERTNAME,
            "account_id": render.account,
            "severity": severity.as_str(),
        },
        "annotations": {
            "summary": summary(render, firing, severity),
            "description": description(firing),
            "balance": balance_text(&firing.facts.balance),
            "currency": firing.facts.currency.clone().unwrap_or_default(),
        },
        "startsAt": rfc3339(firing.since),
        "endsAt": rfc3339(ends_at),
    });
    // A label with no value is no label to Alertmanager: left out when the name is unknown.
    if let Some(name) = &firing.facts.account_name {
        alert["labels"]["account_name"] = json!(name);
    }
    if let Some(url) = render.generator_url {
        alert["generatorURL"] = json!(url);
    }
    alert
}

/// Alertmanager's body (`POST /api/v2/alerts`, a JSON array): the firing alert with `endsAt` a
/// few re-sends ahead, or with `endsAt` = `at` once resolved; on a change of severity also the
/// former severity's alert (another label set) resolved.
pub fn alertmanager(
    render: &Render<'_>,
    firing: &Firing,
    notice: Option<&Notice>,
    at: OffsetDateTime,
) -> Value {
    let ahead = at.max(render.now) + render.resend_interval * ENDS_AFTER_RESENDS;
    let mut alerts = Vec::new();
    match notice {
        Some(Notice {
            kind: NoticeKind::Resolved,
            ..
        }) => alerts.push(alertmanager_alert(render, firing, firing.severity, at)),
        Some(Notice {
            kind: NoticeKind::SeverityChanged,
            previous: Some(previous),
            ..
        }) => {
            alerts.push(alertmanager_alert(render, firing, *previous, at));
            alerts.push(alertmanager_alert(render, firing, firing.severity, ahead));
        }
        _ => alerts.push(alertmanager_alert(render, firing, firing.severity, ahead)),
    }
    Value::Array(alerts)
}

fn status(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Resolved => "resolved",
        _ => "firing",
    }
}

fn kind_str(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Firing => "firing",
        NoticeKind::SeverityChanged => "severity_changed",
        NoticeKind::Reminder => "reminder",
        NoticeKind::Resolved => "resolved",
    }
}

/// The relay's alert JSON (webhooks).
pub fn webhook(render: &Render<'_>, firing: &Firing, notice: &Notice, at: OffsetDateTime) -> Value {
    json!({
        "type": "voximplant.min_balance",
        "alertname": ALERTNAME,
        "status": status(notice.kind),
        "notice": kind_str(notice.kind),
        "severity": firing.severity.as_str(),
        "previous_severity": notice.previous.map(Severity::as_str),
        "summary": summary(render, firing, firing.severity),
        "description": description(firing),
        "account_id": render.account,
        "account_name": firing.facts.account_name,
        "balance": firing.facts.balance,
        "currency": firing.facts.currency,
        "is_min_credit": firing.severity == Severity::Critical,
        "starts_at": rfc3339(firing.since),
        "ends_at": (notice.kind == NoticeKind::Resolved).then(|| rfc3339(at)),
        "event_id": render.event_id,
        "occurred_at": rfc3339(at),
    })
}

/// A Slack message: `text` (notifications, clients without blocks) and `blocks`.
pub fn slack(render: &Render<'_>, firing: &Firing, notice: &Notice, at: OffsetDateTime) -> Value {
    let (icon, headline) = match (notice.kind, firing.severity) {
        (NoticeKind::Resolved, _) => (
            ":white_check_mark:",
            format!(
                "Resolved: Voximplant account {} balance recovered",
                who(render, firing)
            ),
        ),
        (NoticeKind::SeverityChanged, Severity::Critical) | (_, Severity::Critical) => (
            ":rotating_light:",
            summary(render, firing, Severity::Critical),
        ),
        (_, Severity::Warning) => (":warning:", summary(render, firing, Severity::Warning)),
    };
    let mut headline = headline;
    if notice.kind == NoticeKind::Reminder {
        headline = format!("Still firing: {headline}");
    }
    if let (NoticeKind::SeverityChanged, Some(previous)) = (notice.kind, notice.previous) {
        headline = format!(
            "{headline} (was {}, now {})",
            previous.as_str(),
            firing.severity.as_str()
        );
    }
    let text = format!("{icon} {headline}. {}", description(firing));
    let context = format!(
        "*{}* · severity `{}` · since {}{}",
        status(notice.kind).to_uppercase(),
        firing.severity.as_str(),
        rfc3339(firing.since),
        if notice.kind == NoticeKind::Resolved {
            format!(" · resolved {}", rfc3339(at))
        } else {
            String::new()
        }
    );
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{headline}*\n{}", description(firing))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    })
}

/// The body of a notice for `format`.
pub fn body(
    format: AlertFormat,
    render: &Render<'_>,
    firing: &Firing,
    notice: &Notice,
    at: OffsetDateTime,
) -> Value {
    match format {
        AlertFormat::Alertmanager => alertmanager(render, firing, Some(notice), at),
        AlertFormat::Slack => slack(render, firing, notice, at),
        AlertFormat::Webhook => webhook(render, firing, notice, at),
    }
}
