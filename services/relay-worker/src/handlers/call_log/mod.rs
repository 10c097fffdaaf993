//! call-log: every call, from any provider, becomes one ordered conversation thread in the
//! helpdesk (Re:amaze custom voice channel).
//!
//! * [`input`] reads each provider's events as session inputs;
//! * [`session`] is the pure state machine and the session's outbox;
//! * [`message`] renders the helpdesk JSON;
//! * [`ledger`] keeps sessions in Redis, updated by compare-and-set, and indexes them by
//!   customer number and start time;
//! * [`lookup`] reads them for the operator console.
//!
//! Ordering (docs/ARCHITECTURE.md, "Call log"): a session has at most one message in flight.
//! Its job asks delivery for its outcome; the outcome event (`relay.delivery.*.call-log`) comes
//! back to this handler, settles the head of the outbox and releases the next message. So the
//! helpdesk receives one session's messages in state order even when callbacks arrive out of
//! order or a delivery is retried, and a session waiting on a retry holds back no other.
//!
//! A session that never gets its terminal event is closed by a durable timer: a TTL queue
//! (`relay.timer.call-log.<end_after>`) that brings an end-timer event back after `end_after`.

mod input;
mod ledger;
pub mod lookup;
pub mod message;
pub mod session;

pub use lookup::{Summary, SummaryPage};
pub use session::{
    Direction, EventLabel, Happened, MAX_MESSAGES, MAX_TIMELINE, MessageNote, MessageStatus,
    Session, State, TimelineEntry,
};

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use relay_core::config::CallLogConfig;
use relay_core::outcome::DeliveryOutcome;
use relay_core::routing::{self, HandlerRoute};
use relay_core::{CloudEvent, DeliveryJob, ids};
use relay_store::Store;
use relay_telemetry::admin::StartError;
use serde_json::json;

use crate::handler::{Context, Emitted, Handler, HandlerError, HandlerResult, Output, Timer};
use ledger::Ledger;
use message::Rules;
use session::{Input, Kind};

/// The handler's name: its queue, its jobs' handler and its outcome routing keys.
pub const NAME: &str = routing::CALL_LOG.name;
/// CloudEvent type of the end timer.
pub const END_TIMER_TYPE: &str = "relay.timer.call-log.end";
/// CloudEvent type of the grace timer of an unanswered ending.
pub const SETTLE_TIMER_TYPE: &str = "relay.timer.call-log.settle";

/// The call-log handler.
pub struct CallLog {
    rules: Rules,
    ledger: Ledger,
    end_after: Duration,
    missed_grace: Duration,
    region: Option<String>,
    prefetch: Option<u16>,
}

impl CallLog {
    /// The handler for its `[worker.call_log]` section.
    pub fn new(config: &CallLogConfig, store: Store) -> Result<Self, StartError> {
        Ok(Self {
            rules: Rules::from_config(config),
            ledger: Ledger::new(store, config.session_ttl),
            end_after: config.end_after,
            missed_grace: config.missed_grace,
            region: config.default_region.clone(),
            prefetch: config.prefetch,
        })
    }

    /// A provider event: apply it to its session.
    async fn on_input(&self, event: &CloudEvent, input: Input, context: &Context) -> HandlerResult {
        let update = self
            .ledger
            .update(&input.session, |session| {
                let step = session::apply(session, &input, &self.rules);
                if step.stale {
                    None
                } else {
                    Some((step.session, (step.created, step.grace_started)))
                }
            })
            .await?;
        let Some((after, (created, grace_started))) = update.after else {
            if !matches!(input.kind, Kind::EndTimer | Kind::Settle) {
                tracing::info!(session = %input.session, "stale or repeated call event; nothing changes");
                metrics::counter!("relay_call_log_stale_events_total", "source" => source_of(&context.routing_key))
                    .increment(1);
            }
            if let Some(before) = update.before.as_ref().filter(|_| context.redelivered) {
                // The crash may have come between the session's write and its filing.
                self.index(before, input.at).await;
            }
            return Ok(self.resend(event, update.before.as_ref(), context));
        };
        let learned_number = update
            .before
            .as_ref()
            .is_some_and(|b| b.customer.is_none() && after.customer.is_some());
        if created || learned_number || context.redelivered {
            self.index(&after, input.at).await;
        }
        let mut output = self.release(event, update.before.as_ref(), &after, context);
        let was_missed = update.before.as_ref().map(|b| b.state) == Some(State::Missed);
        if after.state == State::Missed && (!was_missed || context.redelivered) {
            output.events.extend(missed(&after, event));
        }
        let was_over = update
            .before
            .as_ref()
            .is_some_and(|b| b.state.is_terminal());
        if after.state.is_terminal() && (!was_over || context.redelivered) {
            output.events.extend(callback_ended(&after, event));
        }
        if (created || context.redelivered) && !after.state.is_terminal() {
            output.timers.push(self.end_timer(&after.id, event));
        }
        if grace_started || (context.redelivered && after.pending_end.is_some()) {
            output.timers.push(self.settle_timer(&after.id, event));
        }
        tracing::info!(session = %after.id, state = ?after.state, outbox = after.outbox.len(), "call session updated");
        Ok(output)
    }

    /// A delivery outcome of one of this handler's messages: settle it, release the next.
    async fn on_outcome(&self, event: &CloudEvent, context: &Context) -> HandlerResult {
        let outcome = DeliveryOutcome::from_event(event)
            .map_err(|e| HandlerError::malformed(format!("not a delivery outcome: {e}")))?;
        let (Some(session), Some(seq)) = (
            outcome.context.get("session"),
            outcome
                .context
                .get("seq")
                .and_then(|s| s.parse::<u32>().ok()),
        ) else {
            return Ok(Output::none());
        };
        if !outcome.succeeded {
            tracing::warn!(session, seq, reason = ?outcome.reason, "a helpdesk message was given up on; releasing the next");
            metrics::counter!("relay_call_log_messages_undeliverable_total").increment(1);
        }
        let update = self
            .ledger
            .update(session, |current| {
                let mut session = current?;
                session::settle(&mut session, seq, outcome.succeeded, event.time)
                    .then_some((session, ()))
            })
            .await?;
        Ok(match &update.after {
            Some((after, ())) => self.release(event, update.before.as_ref(), after, context),
            None => self.resend(event, update.before.as_ref(), context),
        })
    }

    /// The job of the session's head when it just became the head.
    fn release(
        &self,
        event: &CloudEvent,
        before: Option<&Session>,
        after: &Session,
        context: &Context,
    ) -> Output {
        let was = before.and_then(Session::head).map(|h| h.seq);
        match after.head() {
            Some(head) if context.redelivered || was != Some(head.seq) => {
                Output::job(self.job(after, head, event))
            }
            _ => Output::none(),
        }
    }

    /// After a crash the broker redelivers the event that was being handled: its session may
    /// already be written while its job and timer were not published. Publish them again
    /// (deterministic ids make a repeat harmless).
    fn resend(&self, event: &CloudEvent, session: Option<&Session>, context: &Context) -> Output {
        let Some(session) = session.filter(|_| context.redelivered) else {
            return Output::none();
        };
        let mut output = match session.head() {
            Some(head) => Output::job(self.job(session, head, event)),
            None => Output::none(),
        };
        if !session.state.is_terminal() {
            output.timers.push(self.end_timer(&session.id, event));
        }
        if session.pending_end.is_some() {
            output.timers.push(self.settle_timer(&session.id, event));
        }
        if session.state == State::Missed {
            output.events.extend(missed(session, event));
        }
        if session.state.is_terminal() {
            output.events.extend(callback_ended(session, event));
        }
        output
    }

    /// Files `session` in the console's indexes. A failure is logged, not retried: the index
    /// only helps find a call, and the session itself is safely written.
    async fn index(&self, session: &Session, at: time::OffsetDateTime) {
        if let Err(error) = self.ledger.index(session, at).await {
            tracing::warn!(session = %session.id, %error, "call session not indexed for the console");
        }
    }

    fn job(&self, session: &Session, head: &session::Pending, event: &CloudEvent) -> DeliveryJob {
        let mut job = DeliveryJob::post(
            message::job_id(&head.id),
            &event.id,
            NAME,
            &session.destination,
            "application/json",
            head.body.clone(),
        );
        job.report_outcome = true;
        // The event that released this message is often the previous message's outcome:
        // name the message instead.
        job.event_type = Some(format!("call-log.{}", head.key));
        job.context = BTreeMap::from([
            ("session".to_owned(), session.id.clone()),
            ("seq".to_owned(), head.seq.to_string()),
        ]);
        job
    }

    /// The end timer of `session`, due `end_after` after `event`.
    fn end_timer(&self, session: &str, event: &CloudEvent) -> Timer {
        timer(END_TIMER_TYPE, session, event, self.end_after)
    }

    /// The grace timer of `session`'s unanswered ending.
    fn settle_timer(&self, session: &str, event: &CloudEvent) -> Timer {
        timer(SETTLE_TIMER_TYPE, session, event, self.missed_grace)
    }
}

/// `relay.call.missed` for a session that just became "Missed call": an inbound call with its
/// caller and channel numbers known. Its id is the session's, so a repeat is recognised.
fn missed(session: &Session, event: &CloudEvent) -> Option<Emitted> {
    if session.direction != Direction::Inbound {
        return None;
    }
    let (caller, channel) = (session.customer.as_ref()?, session.channel.as_ref()?);
    let mut missed = CloudEvent::new(
        ids::derived_event_id("call-log-missed", &[&session.id]),
        "relay/call-log".to_owned(),
        "relay.call.missed".to_owned(),
        json!({
            "session": session.id,
            "caller": caller,
            "channel": channel,
            "destination": session.destination,
        }),
    )
    .with_subject(&session.id);
    missed.time = session.ended_at.unwrap_or(event.time);
    Some(Emitted {
        routing_key: routing::CALL_MISSED.to_owned(),
        event: missed,
    })
}

/// `relay.callback.ended` for a web callback's session that just reached its end, so that it
/// stops counting as in progress. Its id is the session's, so a repeat is recognised.
fn callback_ended(session: &Session, event: &CloudEvent) -> Option<Emitted> {
    if !session.id.starts_with("callback:") {
        return None;
    }
    let mut ended = CloudEvent::new(
        ids::derived_event_id("call-log-callback-ended", &[&session.id]),
        "relay/call-log".to_owned(),
        routing::CALLBACK_ENDED.to_owned(),
        json!({ "session": session.id, "state": format!("{:?}", session.state) }),
    )
    .with_subject(&session.id);
    ended.time = session.ended_at.unwrap_or(event.time);
    Some(Emitted {
        routing_key: routing::CALLBACK_ENDED.to_owned(),
        event: ended,
    })
}

/// A timer of type `ty` for `session`, due `delay` after `event` (its `time` is when it is due,
/// which becomes the time of any message it makes).
fn timer(ty: &str, session: &str, event: &CloudEvent, delay: Duration) -> Timer {
    let mut timer = CloudEvent::new(
        ids::derived_event_id("call-log-timer", &[ty, session]),
        "relay/call-log".to_owned(),
        ty.to_owned(),
        json!({ "session": session }),
    )
    .with_subject(session);
    timer.time = event.time + delay;
    Timer {
        delay,
        event: timer,
    }
}

/// The `source` label of `relay_call_log_stale_events_total`, one per first word of the
/// handler's routing patterns: `plivo`, `voximplant` and `acrobits` (the providers, as ingress
/// names them) and `relay` (the relay's own events).
fn sources() -> impl Iterator<Item = &'static str> {
    let mut words: Vec<&'static str> = routing::CALL_LOG
        .patterns
        .iter()
        .filter_map(|pattern| pattern.split('.').next())
        .collect();
    words.sort_unstable();
    words.dedup();
    words.into_iter()
}

/// Who sent an event delivered with `routing_key`: its first word, one of [`sources`].
fn source_of(routing_key: &str) -> &'static str {
    let first = routing_key.split('.').next();
    sources()
        .find(|source| first == Some(*source))
        .unwrap_or("unknown")
}

impl Handler for CallLog {
    fn route(&self) -> HandlerRoute {
        routing::CALL_LOG
    }

    fn prefetch(&self) -> Option<u16> {
        self.prefetch
    }

    fn register_metrics(&self) {
        for source in sources() {
            metrics::counter!("relay_call_log_stale_events_total", "source" => source).increment(0);
        }
    }

    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            // Its own messages' outcomes; a failed origination (`….web-callback`) is an input.
            if context.routing_key.starts_with("relay.delivery.")
                && context.routing_key.ends_with(&format!(".{NAME}"))
            {
                return self.on_outcome(event, context).await;
            }
            let timer = match event.ty.as_str() {
                END_TIMER_TYPE => Some(Kind::EndTimer),
                SETTLE_TIMER_TYPE => Some(Kind::Settle),
                _ => None,
            };
            if let Some(kind) = timer {
                let session = event.data["session"]
                    .as_str()
                    .ok_or_else(|| HandlerError::malformed("timer without `session`"))?;
                let input = Input {
                    session: session.to_owned(),
                    at: event.time,
                    direction: None,
                    customer: None,
                    channel: None,
                    kind,
                };
                return self.on_input(event, input, context).await;
            }
            match input::read(event, &context.routing_key, self.region.as_deref()) {
                Ok(Some(input)) => self.on_input(event, input, context).await,
                Ok(None) => {
                    metrics::counter!("relay_call_log_ignored_events_total").increment(1);
                    Ok(Output::none())
                }
                Err(detail) => Err(HandlerError::malformed(detail)),
            }
        })
    }
}
