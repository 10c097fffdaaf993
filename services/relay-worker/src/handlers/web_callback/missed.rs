//! Calling back a missed call (`relay.call.missed` from the call log), when
//! `[worker.web_callback.missed_calls]` says so: on one of its channels, within its opening
//! hours in its time zone, to a caller the numbers policy allows (the same prefixes as the web
//! callback route), at most `per_caller_per_day` times a day.
//!
//! The callback gets a session of its own (`callback:missed:<missed session>`) that logs in the
//! missed call's thread: the handler publishes `relay.callback.requested` (the call log opens
//! the session with "Callback requested", in that thread) beside the origination job. The
//! decision is recorded once per missed call (`missed-callback:<session>`), so a redelivered
//! event repeats the same job (its id is deterministic) and counts against nobody's cap twice.

use std::time::Duration;

use relay_core::config::{AcrobitsSource, MissedCallbacks};
use relay_core::{CloudEvent, ids};
use relay_store::{Admission, Limit, Store};
use serde_json::json;

use super::origination::Request;
use crate::handler::{Emitted, HandlerError};

/// How long the decision about one missed call is kept.
const DECISION_TTL: Duration = Duration::from_secs(2 * 86_400);

/// A missed call, as the call log reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The missed call's session (and thread).
    pub session: String,
    /// Who called.
    pub caller: String,
    /// The number they called.
    pub channel: String,
}

impl Missed {
    /// Reads a `relay.call.missed` event.
    pub fn from_event(event: &CloudEvent) -> Result<Self, String> {
        let get = |name: &str| {
            event.data[name]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(format!("missed call without `{name}`"))
        };
        Ok(Self {
            session: get("session")?,
            caller: get("caller")?,
            channel: get("channel")?,
        })
    }
}

/// Why a missed call is not called back, or the callback to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not on a configured channel.
    OtherChannel,
    /// Outside the opening hours.
    Closed,
    /// The caller's number is not one the relay may call (`destination_denied`, …).
    NotAllowed(&'static str),
    /// The caller reached the day's cap.
    Capped,
    /// Call back: this request.
    CallBack(Request),
}

/// The policy part of the decision (no Redis): channel, hours, numbers.
pub fn policy(
    missed: &Missed,
    config: &MissedCallbacks,
    numbers: &AcrobitsSource,
    at: time::OffsetDateTime,
) -> Result<Decision, String> {
    if !config.channels.contains(&missed.channel) {
        return Ok(Decision::OtherChannel);
    }
    if !config.open_at(at)? {
        return Ok(Decision::Closed);
    }
    if let Err(reason) = numbers.number_policy(&missed.caller) {
        return Ok(Decision::NotAllowed(reason));
    }
    Ok(Decision::CallBack(Request {
        session: format!("callback:missed:{}", missed.session),
        user: config.user.clone(),
        callback: config
            .first_number
            .clone()
            .unwrap_or_else(|| missed.channel.clone()),
        target: missed.caller.clone(),
    }))
}

/// The whole decision: [`policy`], then the per-caller cap, recorded once per missed call.
pub async fn decide(
    missed: &Missed,
    config: &MissedCallbacks,
    numbers: &AcrobitsSource,
    at: time::OffsetDateTime,
    store: &Store,
) -> Result<Decision, HandlerError> {
    let decision = policy(missed, config, numbers, at).map_err(HandlerError::malformed)?;
    let Decision::CallBack(_) = &decision else {
        return Ok(decision);
    };
    let transient =
        |e: relay_store::StoreError| HandlerError::Transient(format!("missed-call callback: {e}"));
    let record = format!("missed-callback:{}", missed.session);
    if let Some(earlier) = store.get_text(&record).await.map_err(transient)? {
        // Decided before this delivery (a redelivery): the same answer.
        return Ok(if earlier == "call-back" {
            decision
        } else {
            Decision::Capped
        });
    }
    let cap = [Limit::fixed(
        format!("missed-callback:caller:{}", missed.caller),
        u64::from(config.per_caller_per_day),
        Duration::from_secs(86_400),
    )];
    let admitted = matches!(
        store
            .admit(&cap, &missed.session)
            .await
            .map_err(transient)?,
        Admission::Admitted
    );
    let verdict = if admitted { "call-back" } else { "capped" };
    if !store
        .compare_and_set(&record, None, verdict, DECISION_TTL)
        .await
        .map_err(transient)?
    {
        // Another delivery of the same event decided meanwhile: give this count back, follow it.
        if admitted {
            store
                .refund(&cap, &missed.session)
                .await
                .map_err(transient)?;
        }
        let earlier = store.get_text(&record).await.map_err(transient)?;
        return Ok(if earlier.as_deref() == Some("call-back") {
            decision
        } else {
            Decision::Capped
        });
    }
    Ok(if admitted { decision } else { Decision::Capped })
}

/// `relay.callback.requested` for `request`, logged in the missed call's thread.
pub fn requested(request: &Request, missed: &Missed, event: &CloudEvent) -> Emitted {
    let mut requested = CloudEvent::new(
        ids::derived_event_id("web-callback-missed", &[&missed.session]),
        "relay/web-callback".to_owned(),
        "relay.callback.requested".to_owned(),
        json!({
            "session_id": request.session,
            "username": request.user,
            "target": request.target,
            "callback": request.callback,
            "thread": missed.session,
        }),
    )
    .with_subject(&request.session);
    requested.time = event.time;
    Emitted {
        routing_key: "relay.callback.requested".to_owned(),
        event: requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MissedCallbacks {
        MissedCallbacks {
            channels: vec!["+15550009999".into()],
            hours: "09:00-18:00".into(),
            time_zone: "America/New_York".into(),
            per_caller_per_day: 1,
            user: "missed-call".into(),
            first_number: None,
        }
    }

    fn missed(caller: &str, channel: &str) -> Missed {
        Missed {
            session: "plivo:a-leg".into(),
            caller: caller.into(),
            channel: channel.into(),
        }
    }

    #[test]
    fn only_configured_channels_within_hours_and_allowed_numbers_are_called_back() {
        let numbers = AcrobitsSource::default();
        // 15:00 UTC is 10:00 in New York (EST).
        let open = time::macros::datetime!(2026-12-04 15:00 UTC);
        let closed = time::macros::datetime!(2026-12-04 12:00 UTC);
        let call = missed("+15105559999", "+15550009999");
        match policy(&call, &config(), &numbers, open).unwrap() {
            Decision::CallBack(request) => {
                assert_eq!(request.session, "callback:missed:plivo:a-leg");
                assert_eq!(request.callback, "+15550009999", "the team's line first");
                assert_eq!(request.target, "+15105559999", "then the caller");
                assert_eq!(request.user, "missed-call");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            policy(&call, &config(), &numbers, closed).unwrap(),
            Decision::Closed
        );
        assert_eq!(
            policy(
                &missed("+15105559999", "+15550001111"),
                &config(),
                &numbers,
                open
            )
            .unwrap(),
            Decision::OtherChannel
        );
        assert_eq!(
            policy(
                &missed("+19005550100", "+15550009999"),
                &config(),
                &numbers,
                open
            )
            .unwrap(),
            Decision::NotAllowed("destination_denied"),
            "a premium-rate caller id is never called back"
        );
    }

    #[test]
    fn the_first_number_can_be_the_teams_line() {
        let mut config = config();
        config.first_number = Some("+15550002000".into());
        let open = time::macros::datetime!(2026-12-04 15:00 UTC);
        let Decision::CallBack(request) = policy(
            &missed("+15105559999", "+15550009999"),
            &config,
            &AcrobitsSource::default(),
            open,
        )
        .unwrap() else {
            panic!("a callback");
        };
        assert_eq!(request.callback, "+15550002000");
    }
}
