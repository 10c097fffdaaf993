//! The transition function: [`apply`] takes a session through one input, with one step per
//! state change (start, answer, end) and the message each makes.

use time::OffsetDateTime;

use super::{Direction, EndStatus, Input, Kind, PendingEnd, Session, State, Step};
use crate::handlers::call_log::message::{self, Rules};

/// Applies `input` to `session` (`None`: not seen yet).
pub fn apply(session: Option<Session>, input: &Input, rules: &Rules) -> Step {
    let created = session.is_none();
    if created && input.kind == Kind::EndTimer {
        // The ledger expired (or never existed): nothing to close.
        return Step {
            session: Session::new(input, rules),
            created: false,
            stale: true,
            grace_started: false,
        };
    }
    let mut s = session.unwrap_or_else(|| Session::new(input, rules));
    learn_parties(&mut s, input);
    let mark = s.timeline.len();
    let before = (
        s.state,
        s.outbox.len(),
        s.recordings.len(),
        s.pending_end.is_some(),
    );
    let mut stale = false;
    match &input.kind {
        Kind::Requested {
            user,
            target,
            thread,
        } => {
            if s.state == State::New {
                s.state = State::Requested;
                s.thread.clone_from(thread);
                s.user = Some(user.clone());
                s.direction = Direction::Outbound;
                s.started_at = Some(input.at);
                let text = format!("Callback requested by {user} to {target}");
                s.push("requested".into(), text, input.at, None, rules);
            } else {
                stale = true;
            }
        }
        Kind::Refused { user, reason } => {
            if s.state == State::New {
                s.state = State::Failed;
                s.user = Some(user.clone());
                s.direction = Direction::Outbound;
                s.ended_at = Some(input.at);
                s.push(
                    "refused".into(),
                    format!("Callback refused: {reason}"),
                    input.at,
                    None,
                    rules,
                );
            } else {
                stale = true;
            }
        }
        Kind::OriginationFailed { reason } => {
            // Only before the call exists: once a leg rings, the provider did place it.
            if matches!(s.state, State::New | State::Requested) {
                s.state = State::Failed;
                s.direction = Direction::Outbound;
                s.ended_at = Some(input.at);
                s.push(
                    "failed".into(),
                    format!("Callback failed: {reason}"),
                    input.at,
                    None,
                    rules,
                );
            } else {
                stale = true;
            }
        }
        Kind::Ringing => stale = !start(&mut s, input.at, rules),
        Kind::AppAnswered => {
            if rules.app_answer_counts {
                start(&mut s, input.at, rules);
                stale = !answer(&mut s, None, input.at, rules);
            } else {
                stale = !start(&mut s, input.at, rules);
            }
        }
        Kind::Answered { by } => {
            start(&mut s, input.at, rules);
            stale = !answer(&mut s, by.clone(), input.at, rules);
            // The answer the grace period waited for: the held ending follows it.
            if !stale && let Some(pending) = s.pending_end.take() {
                let at = pending.at.max(input.at);
                end(
                    &mut s,
                    pending.status,
                    None,
                    pending.cause.as_deref(),
                    at,
                    rules,
                );
            }
        }
        Kind::Ended {
            status,
            duration,
            answered,
            cause,
        } => {
            if s.state.is_terminal() || s.pending_end.is_some() {
                stale = true;
            } else if answered.is_none()
                && *status == EndStatus::Completed
                && s.state < State::Answered
            {
                // No proof either way yet: hold it for the grace period.
                start(&mut s, input.at, rules);
                s.pending_end = Some(PendingEnd {
                    status: *status,
                    cause: cause.clone(),
                    at: input.at,
                });
            } else {
                let answered_at = answered.map(|at| {
                    at.or_else(|| duration.map(|d| input.at - time::Duration::seconds(secs(d))))
                        .unwrap_or(input.at)
                });
                start(
                    &mut s,
                    answered_at.map_or(input.at, |a| a.min(input.at)),
                    rules,
                );
                if let Some(at) = answered_at {
                    answer(&mut s, None, at, rules);
                }
                end(
                    &mut s,
                    *status,
                    *duration,
                    cause.as_deref(),
                    input.at,
                    rules,
                );
            }
        }
        Kind::LegEnded => {}
        Kind::Recording { url } => {
            if rules.recordings && !s.recordings.contains(url) {
                start(&mut s, input.at, rules);
                s.recordings.push(url.clone());
                let key = format!("recording:{}", s.recordings.len());
                s.push(
                    key,
                    "Recording available".into(),
                    input.at,
                    Some(url),
                    rules,
                );
            }
        }
        Kind::Settle => match s.pending_end.take() {
            Some(pending) if !s.state.is_terminal() => {
                end(
                    &mut s,
                    pending.status,
                    None,
                    pending.cause.as_deref(),
                    pending.at,
                    rules,
                );
            }
            _ => stale = true,
        },
        Kind::EndTimer => {
            if s.state.is_terminal() {
                stale = true;
            } else if let Some(pending) = s.pending_end.take() {
                end(
                    &mut s,
                    pending.status,
                    None,
                    pending.cause.as_deref(),
                    pending.at,
                    rules,
                );
            } else {
                s.state = State::Ended;
                s.ended_at = Some(input.at);
                s.push(
                    "ended".into(),
                    "Call ended (no hangup received)".into(),
                    input.at,
                    None,
                    rules,
                );
            }
        }
    }
    let held = s.pending_end.is_some();
    let changed = before != (s.state, s.outbox.len(), s.recordings.len(), held);
    // An input that creates nothing (an agent leg ending before anything else is known) is
    // not worth a record: the session begins with its first real transition.
    let empty = s.state == State::New;
    if changed && !empty {
        s.note_event(&input.kind, input.at, before.0, mark);
        s.trim_notes();
    }
    Step {
        grace_started: held && !before.3,
        session: s,
        created: created && !empty,
        stale: (stale && !changed) || empty,
    }
}

fn secs(duration: u64) -> i64 {
    i64::try_from(duration).unwrap_or(i64::MAX / 2)
}

/// Fills in parties an earlier event did not know.
fn learn_parties(s: &mut Session, input: &Input) {
    if s.customer.is_none() {
        s.customer.clone_from(&input.customer);
    }
    if s.channel.is_none() {
        s.channel.clone_from(&input.channel);
    }
    if s.state == State::New
        && let Some(direction) = input.direction
    {
        s.direction = direction;
    }
}

/// Moves a new or requested session to ringing with its "Call started" message; false when it
/// was past that already.
fn start(s: &mut Session, at: OffsetDateTime, rules: &Rules) -> bool {
    if s.state >= State::Ringing {
        return false;
    }
    s.state = State::Ringing;
    s.started_at = Some(s.started_at.map_or(at, |t| t.min(at)));
    let who = s.customer.as_deref().unwrap_or("an unknown number");
    let text = match s.direction {
        Direction::Inbound => format!("Call started - from {who}"),
        Direction::Outbound => format!("Call started - to {who}"),
    };
    s.push("started".into(), text, at, None, rules);
    true
}

/// Moves a ringing session to answered; false when it was not ringing.
fn answer(s: &mut Session, by: Option<String>, at: OffsetDateTime, rules: &Rules) -> bool {
    if s.state != State::Ringing {
        return false;
    }
    s.state = State::Answered;
    s.answered_at = Some(at);
    s.agent = by;
    let text = match (&s.agent, s.direction) {
        (Some(agent), _) => format!("Call answered by {}", rules.agent_name(agent)),
        (None, Direction::Outbound) => match s.customer.as_deref() {
            Some(customer) => format!("Call answered by {}", rules.contact_name(customer)),
            None => "Call answered".to_owned(),
        },
        (None, Direction::Inbound) => "Call answered".to_owned(),
    };
    s.push("answered".into(), text, at, None, rules);
    true
}

/// Moves a ringing or answered session to its terminal state with one message.
fn end(
    s: &mut Session,
    status: EndStatus,
    duration: Option<u64>,
    cause: Option<&str>,
    at: OffsetDateTime,
    rules: &Rules,
) {
    s.ended_at = Some(at);
    if s.state == State::Answered {
        s.state = State::Ended;
        // Providers keep time in whole seconds: so does the duration, whichever clocks the
        // answer and the end came from.
        let talk = duration.or_else(|| {
            let answered = s.answered_at?;
            u64::try_from(at.unix_timestamp() - answered.unix_timestamp()).ok()
        });
        let text = match talk {
            Some(secs) => format!("Call ended - duration: {}", message::hms(secs)),
            None => "Call ended".to_owned(),
        };
        s.push("ended".into(), text, at, None, rules);
        return;
    }
    if status == EndStatus::Failed {
        s.state = State::Failed;
        let text = match cause {
            Some(cause) if !cause.is_empty() => format!("Call failed: {cause}"),
            _ => "Call failed".to_owned(),
        };
        s.push("failed".into(), text, at, None, rules);
        return;
    }
    s.state = State::Missed;
    let text = match (s.direction, status) {
        (Direction::Inbound, _) => "Missed call".to_owned(),
        (Direction::Outbound, EndStatus::Busy) => "Call not answered (busy)".to_owned(),
        (Direction::Outbound, EndStatus::Canceled) => "Call canceled".to_owned(),
        (Direction::Outbound, _) => "Call not answered".to_owned(),
    };
    s.push("missed".into(), text, at, None, rules);
}
