//! Provider events → [`Input`]: what each provider's callbacks mean for a call session.
//!
//! * **Plivo** (`plivo.call.*`, form parameters): the session is the first leg
//!   (`DialALegUUID`, else `ALegUUID`, else `CallUUID`), or the relay's own web-callback session
//!   carried in the answer URL's `session` parameter. An inbound caller's leg always ends
//!   `completed`, so whether a person answered comes from the agent legs: the `<Dial>`
//!   `callbackUrl` (`DialAction=answer`, `DialBLegTo`), a Dial `action` with
//!   `DialStatus=completed`, or an agent leg's own `in-progress`. An outbound first leg in
//!   progress means the customer answered. Agent legs ending change nothing: only the caller's
//!   leg ends a session, so ringing several agents never makes several "Missed call"s.
//! * **Voximplant** (`voximplant.call.*`): the relay's own scenario's events (docs/PROTOCOLS.md,
//!   "Voximplant scenario events").
//! * **Acrobits** (`acrobits.web_callback`, `acrobits.web_callback_refused`): a callback
//!   requested or refused; the session is the id ingress minted for it.
//!
//! Times come from the provider's fields where it sends them, else from when ingress received
//! the event (never the worker's clock).

use relay_core::{CloudEvent, phone};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::session::{Direction, EndStatus, Input, Kind};

/// Why an event could not be read.
pub(super) type Malformed = String;

/// Reads `event` (delivered with `routing_key`) as a session input. `Ok(None)`: the event says
/// nothing about a session (e.g. a Plivo callback without any call id).
pub(super) fn read(
    event: &CloudEvent,
    routing_key: &str,
    region: Option<&str>,
) -> Result<Option<Input>, Malformed> {
    let data = event
        .data
        .as_object()
        .ok_or("event data is not an object")?;
    let get = |name: &str| text(data.get(name));
    if routing_key.starts_with("plivo.call.") {
        let kind = event.source.strip_prefix("plivo/").unwrap_or("status");
        return Ok(plivo(&get, kind, event.time, region));
    }
    if routing_key.starts_with("voximplant.call.") {
        return voximplant(&get, event.time, region).map(Some);
    }
    match routing_key {
        "relay.delivery.failed.web-callback" => Ok(origination_failed(event)),
        // A callback the relay itself asks for (a missed call's), logged in `thread`.
        "relay.callback.requested" => {
            let user = get("username").ok_or("callback request without `username`")?;
            let target = get("target").ok_or("callback request without `target`")?;
            Ok(Some(Input {
                session: get("session_id").ok_or("callback request without `session_id`")?,
                at: event.time,
                direction: Some(Direction::Outbound),
                customer: Some(target.clone()),
                channel: None,
                kind: Kind::Requested {
                    user,
                    target,
                    thread: get("thread"),
                },
            }))
        }
        "acrobits.web_callback" => {
            let user = get("username").ok_or("web callback without `username`")?;
            let target = get("target").ok_or("web callback without `target`")?;
            Ok(Some(Input {
                session: get("session_id").unwrap_or_else(|| format!("callback:{}", event.id)),
                at: event.time,
                direction: Some(Direction::Outbound),
                customer: Some(target.clone()),
                channel: None,
                kind: Kind::Requested {
                    user,
                    target,
                    thread: None,
                },
            }))
        }
        "acrobits.web_callback_refused" => {
            let user = get("username").ok_or("refusal without `username`")?;
            let reason = get("message")
                .or_else(|| get("reason"))
                .unwrap_or_else(|| "refused".to_owned());
            Ok(Some(Input {
                session: get("session_id").unwrap_or_else(|| format!("callback:{}", event.id)),
                at: event.time,
                direction: Some(Direction::Outbound),
                customer: get("target"),
                channel: None,
                kind: Kind::Refused { user, reason },
            }))
        }
        _ => Ok(None),
    }
}

/// A failed origination (the web-callback handler's job given up on) as its session's input:
/// the provider's own error message when its answer has one, else delivery's reason.
fn origination_failed(event: &CloudEvent) -> Option<Input> {
    let outcome = relay_core::outcome::DeliveryOutcome::from_event(event).ok()?;
    let session = outcome.context.get("session")?.clone();
    let said = outcome
        .response_excerpt
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|answer| match answer.get("error") {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(other) => other.get("msg").and_then(|m| m.as_str()).map(str::to_owned),
            None => None,
        });
    let reason = said
        .or(outcome.detail)
        .or(outcome.reason)
        .unwrap_or_else(|| "the provider did not place the call".to_owned());
    Some(Input {
        session,
        at: event.time,
        direction: Some(Direction::Outbound),
        customer: None,
        channel: None,
        kind: Kind::OriginationFailed { reason },
    })
}

/// A JSON value as text: strings as they are, numbers printed, a repeated form parameter (an
/// array) by its last value.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(values) => text(values.last()),
        _ => None,
    }
}

/// A number as E.164 when it is one, else as sent (a SIP URI stays a SIP URI).
fn number(raw: Option<String>, region: Option<&str>) -> Option<String> {
    let raw = raw?;
    Some(phone::normalize_provider(&raw, region).unwrap_or(raw))
}

/// A provider timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fraction][±HH:MM]` (UTC when it has
/// no offset), or unix seconds or milliseconds.
pub(super) fn parse_time(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(at);
    }
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number <= 0.0 {
            return None;
        }
        // Milliseconds past 2001-09-09 in seconds would be 1e12: anything that large is ms.
        let nanos = if number >= 1e12 {
            number * 1e6
        } else {
            number * 1e9
        };
        return OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).ok();
    }
    let (main, offset) = match value.rfind(['+', '-']) {
        Some(i) if i > 10 => (&value[..i], Some(&value[i..])),
        _ => (value, None),
    };
    let main = main.split('.').next().unwrap_or(main);
    let naive = time::PrimitiveDateTime::parse(
        main,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    )
    .ok()?;
    let offset = match offset {
        None => time::UtcOffset::UTC,
        Some(text) => time::UtcOffset::parse(
            text,
            format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
        )
        .ok()?,
    };
    Some(naive.assume_offset(offset))
}

fn plivo(
    get: &dyn Fn(&str) -> Option<String>,
    route: &str,
    received: OffsetDateTime,
    region: Option<&str>,
) -> Option<Input> {
    let call = get("CallUUID");
    let a_leg = get("DialALegUUID").or_else(|| get("ALegUUID"));
    let session = match get("session") {
        Some(session) => session,
        None => format!("plivo:{}", a_leg.clone().or_else(|| call.clone())?),
    };
    let time_of = |field: &str| get(field).and_then(|t| parse_time(&t));
    let direction = match get("Direction").map(|d| d.to_ascii_lowercase()).as_deref() {
        Some("inbound") => Some(Direction::Inbound),
        Some("outbound") => Some(Direction::Outbound),
        _ => None,
    };
    let dial = get("DialAction").or_else(|| get("DialBLegStatus"));
    let agent_leg = dial.is_none()
        && get("DialStatus").is_none()
        && matches!((&a_leg, &call), (Some(a), Some(c)) if a != c);
    let (customer, channel) = if agent_leg {
        (None, None)
    } else {
        let (from, to) = (number(get("From"), region), number(get("To"), region));
        match direction {
            Some(Direction::Outbound) => (to, from),
            _ => (from, to),
        }
    };
    let status = get("CallStatus").map(|s| s.to_ascii_lowercase());
    let mut at = received;
    let kind = if let Some(url) = get("RecordUrl") {
        Kind::Recording { url }
    } else if let Some(action) = dial {
        match action.to_ascii_lowercase().as_str() {
            "answer" | "connected" => Kind::Answered {
                by: number(get("DialBLegTo"), region),
            },
            "hangup" => Kind::LegEnded,
            _ => return None,
        }
    } else if let Some(dial_status) = get("DialStatus") {
        let bridged = get("DialBLegUUID").is_some();
        if dial_status.eq_ignore_ascii_case("completed") && bridged {
            Kind::Answered {
                by: number(get("DialBLegTo"), region),
            }
        } else {
            Kind::LegEnded
        }
    } else if agent_leg {
        match status.as_deref() {
            Some("ringing") => Kind::Ringing,
            Some("in-progress") => Kind::Answered {
                by: number(get("To"), region),
            },
            _ => Kind::LegEnded,
        }
    } else {
        let outbound = direction == Some(Direction::Outbound);
        match status.as_deref() {
            Some("ringing") => Kind::Ringing,
            Some("in-progress") if outbound => {
                at = time_of("AnswerTime").unwrap_or(received);
                Kind::Answered { by: None }
            }
            Some("in-progress") => Kind::AppAnswered,
            Some(
                end @ ("completed" | "busy" | "no-answer" | "timeout" | "cancel" | "canceled"
                | "failed"),
            ) => {
                at = time_of("EndTime").unwrap_or(received);
                let duration = get("Duration").and_then(|d| d.parse::<u64>().ok());
                let answered_at = time_of("AnswerTime");
                let answered = outbound
                    && end == "completed"
                    && (answered_at.is_some() || duration.is_some_and(|d| d > 0));
                Kind::Ended {
                    status: match end {
                        "busy" => EndStatus::Busy,
                        "no-answer" | "timeout" => EndStatus::NoAnswer,
                        "cancel" | "canceled" => EndStatus::Canceled,
                        "failed" => EndStatus::Failed,
                        _ => EndStatus::Completed,
                    },
                    // An outbound leg's Duration is talk time; an inbound caller's leg counts
                    // from when the application answered, so it is not.
                    duration: if answered { duration } else { None },
                    answered: answered.then_some(answered_at),
                    cause: get("HangupCauseName").or_else(|| get("HangupCause")),
                }
            }
            None if route == "answer" && outbound => Kind::Answered { by: None },
            None if route == "answer" => Kind::AppAnswered,
            None if route == "hangup" => Kind::Ended {
                status: EndStatus::Completed,
                duration: None,
                answered: None,
                cause: get("HangupCauseName").or_else(|| get("HangupCause")),
            },
            _ => return None,
        }
    };
    if matches!(kind, Kind::Ringing) {
        at = time_of("StartTime").unwrap_or(at);
    }
    Some(Input {
        session,
        at,
        direction: if agent_leg { None } else { direction },
        customer,
        channel,
        kind,
    })
}

fn voximplant(
    get: &dyn Fn(&str) -> Option<String>,
    received: OffsetDateTime,
    region: Option<&str>,
) -> Result<Input, Malformed> {
    let session = match get("relay_session") {
        Some(session) => session,
        None => format!(
            "voximplant:{}",
            get("session_id").ok_or("scenario event without `session_id`")?
        ),
    };
    let direction = match get("direction").as_deref() {
        Some("outbound") => Some(Direction::Outbound),
        Some("inbound") => Some(Direction::Inbound),
        _ => None,
    };
    let agent_leg = get("leg").as_deref() == Some("agent");
    let (from, to) = (number(get("from"), region), number(get("to"), region));
    let (customer, channel) = match (agent_leg, direction) {
        (true, _) => (None, None),
        (false, Some(Direction::Outbound)) => (to, from),
        (false, _) => (from, to),
    };
    let at = get("time").and_then(|t| parse_time(&t)).unwrap_or(received);
    let kind_text = get("kind").ok_or("scenario event without `kind`")?;
    let kind = match kind_text.as_str() {
        "started" | "ringing" => Kind::Ringing,
        "answered" => Kind::Answered {
            by: number(get("agent"), region).or_else(|| agent_leg.then(|| get("to")).flatten()),
        },
        "ended" | "missed" | "failed" if agent_leg => Kind::LegEnded,
        "ended" => {
            let status = match get("status").as_deref() {
                Some("busy") => EndStatus::Busy,
                Some("no-answer" | "no_answer" | "timeout") => EndStatus::NoAnswer,
                Some("canceled" | "cancel") => EndStatus::Canceled,
                Some("failed") => EndStatus::Failed,
                _ => EndStatus::Completed,
            };
            Kind::Ended {
                status,
                duration: get("duration")
                    .and_then(|d| d.parse::<f64>().ok())
                    .map(|d| d.max(0.0) as u64),
                answered: get("answered_at").map(|t| parse_time(&t)),
                cause: get("reason"),
            }
        }
        "missed" => Kind::Ended {
            status: EndStatus::NoAnswer,
            duration: None,
            answered: None,
            cause: get("reason"),
        },
        "failed" => Kind::Ended {
            status: EndStatus::Failed,
            duration: None,
            answered: None,
            cause: get("reason"),
        },
        "recording_ready" | "recording" => Kind::Recording {
            url: get("recording_url").ok_or("recording event without `recording_url`")?,
        },
        _ => Kind::LegEnded,
    };
    Ok(Input {
        session,
        at,
        direction: if agent_leg { None } else { direction },
        customer,
        channel,
        kind,
    })
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
