//! The call session: a state machine as data (CONVENTIONS.md, "State machines are data").
//!
//! States `requested → ringing → answered → ended`, terminals `missed` and `failed`. [`apply`]
//! is a pure function `(session, input) → (session, new messages)`: a session never regresses
//! (an input older than its state changes nothing and is reported as stale), each transition
//! yields at most one message with a deterministic id, and an inbound call that ends
//! unanswered yields exactly one "Missed call".
//!
//! An ending without proof of an answer (an inbound caller's leg always ends `completed`)
//! is not final at once: the session holds it as `pending_end` for a short grace period
//! (`missed_grace`, a durable timer), because the agent leg's answer may still be on its way
//! (it travels in another HTTP request, and the worker handles events concurrently). An
//! answer within the grace makes it "answered" then "ended"; otherwise the grace timer makes
//! it "Missed call".
//!
//! The session also holds its **outbox**: messages made but not yet settled at the helpdesk,
//! in state order. Only the head is ever in flight; the next one is released when the head's
//! delivery outcome comes back ([`settle`]). That keeps one session's messages in order at the
//! helpdesk while a retry of one session never holds back another.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::message::{self, Rules};

/// Where a session stands. The order of the variants is the state order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not yet seen (never stored).
    New,
    /// A web callback asked for the call.
    Requested,
    /// The call exists (ringing or being set up).
    Ringing,
    /// A person picked up.
    Answered,
    /// Ended after being answered.
    Ended,
    /// Ended without being answered.
    Missed,
    /// Failed (or refused) before it could connect.
    Failed,
}

impl State {
    /// Position in the state order; every terminal shares the last place.
    pub fn rank(self) -> u8 {
        match self {
            Self::New => 0,
            Self::Requested => 1,
            Self::Ringing => 2,
            Self::Answered => 3,
            Self::Ended | Self::Missed | Self::Failed => 4,
        }
    }

    /// Whether nothing comes after it.
    pub fn is_terminal(self) -> bool {
        self.rank() == 4
    }
}

/// Who called whom, from the company's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer called the company.
    Inbound,
    /// The company (or the relay, for a web callback) called the customer.
    Outbound,
}

/// How a call leg ended, as the provider reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    /// Hung up normally (answered or not: an inbound leg always ends `completed`).
    Completed,
    /// The callee was busy.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// The caller gave up before an answer.
    Canceled,
    /// The call could not be set up.
    Failed,
}

/// What happened, normalised from any provider's event.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A web callback was accepted.
    Requested {
        /// The softphone account.
        user: String,
        /// The number to call.
        target: String,
        /// The thread to log in, when not the session's own.
        thread: Option<String>,
    },
    /// A web callback was refused after authentication.
    Refused {
        /// The softphone account.
        user: String,
        /// Why, in words.
        reason: String,
    },
    /// The relay could not originate the call a web callback asked for (the provider refused,
    /// or it could not be reached in time).
    OriginationFailed {
        /// Why, in words.
        reason: String,
    },
    /// The call exists: ringing, or being set up.
    Ringing,
    /// The provider's application answered an inbound call (not necessarily a person).
    AppAnswered,
    /// A person answered: the agent `by`, or for an outbound call the customer.
    Answered {
        /// The agent's number or SIP user, when an agent answered.
        by: Option<String>,
    },
    /// The call (its customer leg) ended.
    Ended {
        /// As reported.
        status: EndStatus,
        /// Talk time reported by the provider, in seconds.
        duration: Option<u64>,
        /// The event proves the call was answered (e.g. an answer time), and when.
        answered: Option<Option<OffsetDateTime>>,
        /// The provider's hangup cause, for failures.
        cause: Option<String>,
    },
    /// An agent leg ended: no change to the session.
    LegEnded,
    /// A recording is ready.
    Recording {
        /// Where it is.
        url: String,
    },
    /// The session's durable end timer fired.
    EndTimer,
    /// The grace period of an unanswered ending is over.
    Settle,
}

/// One provider event about one session.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The session id (also the helpdesk thread id).
    pub session: String,
    /// When it happened, by the provider's clock when it says.
    pub at: OffsetDateTime,
    /// The session's direction, when this event knows it.
    pub direction: Option<Direction>,
    /// The customer's number (or identity), when known.
    pub customer: Option<String>,
    /// The company's number on this call, when known.
    pub channel: Option<String>,
    /// What happened.
    pub kind: Kind,
}

/// A message made for the helpdesk, waiting in the outbox until its delivery settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Position in the session (1, 2, …).
    pub seq: u32,
    /// Which transition made it (`started`, `answered`, `ended`, `recording:<n>`, …).
    pub key: String,
    /// The helpdesk message id (deterministic per session and transition).
    pub id: String,
    /// The readable text.
    pub text: String,
    /// The exact JSON body to send.
    pub body: String,
}

/// The last message the helpdesk accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Its message id.
    pub id: String,
    /// Its text.
    pub text: String,
}

/// One call session: the ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session id and helpdesk thread id.
    pub id: String,
    /// Helpdesk destination, chosen by the channel number when the session began.
    pub destination: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The customer's number.
    pub customer: Option<String>,
    /// The company's number.
    pub channel: Option<String>,
    /// The softphone account of a web callback.
    pub user: Option<String>,
    /// Who answered (agent number or SIP user).
    pub agent: Option<String>,
    /// Where it stands.
    pub state: State,
    /// When the call began.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When a person answered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub answered_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// Sequence number of the next message.
    pub next_seq: u32,
    /// Messages not yet settled, head first; only the head is in flight.
    pub outbox: Vec<Pending>,
    /// Messages the helpdesk accepted.
    pub delivered: u32,
    /// Messages given up on (dead-lettered).
    pub undeliverable: u32,
    /// The last message the helpdesk accepted.
    pub last_sent: Option<Sent>,
    /// Recording URLs already announced.
    pub recordings: Vec<String>,
    /// An ending without proof of an answer, waiting out its grace period.
    #[serde(default)]
    pub pending_end: Option<PendingEnd>,
    /// The helpdesk thread its messages go to, when not its own (a missed call's callback is
    /// logged in the missed call's thread).
    #[serde(default)]
    pub thread: Option<String>,
}

/// An unanswered ending held for its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEnd {
    /// As reported.
    pub status: EndStatus,
    /// The provider's hangup cause.
    pub cause: Option<String>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What one input did.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The session after it.
    pub session: Session,
    /// The session did not exist before.
    pub created: bool,
    /// The input was older than the session's state (or a repeat): nothing changed.
    pub stale: bool,
    /// An unanswered ending began its grace period: set the settle timer.
    pub grace_started: bool,
}

impl Session {
    fn new(input: &Input, rules: &Rules) -> Self {
        let direction = input.direction.unwrap_or(Direction::Inbound);
        Self {
            id: input.session.clone(),
            destination: rules.destination_for(input.channel.as_deref()).to_owned(),
            direction,
            customer: input.customer.clone(),
            channel: input.channel.clone(),
            user: None,
            agent: None,
            state: State::New,
            started_at: None,
            answered_at: None,
            ended_at: None,
            next_seq: 1,
            outbox: Vec::new(),
            delivered: 0,
            undeliverable: 0,
            last_sent: None,
            recordings: Vec::new(),
            pending_end: None,
            thread: None,
        }
    }

    /// The message in flight, if any.
    pub fn head(&self) -> Option<&Pending> {
        self.outbox.first()
    }

    fn push(
        &mut self,
        key: String,
        text: String,
        at: OffsetDateTime,
        attachment: Option<&str>,
        rules: &Rules,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (id, body) = message::render(self, &key, &text, at, attachment, rules);
        self.outbox.push(Pending {
            seq,
            key,
            id,
            text,
            body,
        });
    }
}

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
    Step {
        grace_started: held && !before.3,
        session: s,
        created: created && !empty,
        stale: (stale && !changed) || empty,
    }
}

/// Settles the message `seq` (delivered, or given up on); true when it was the head. Repeats
/// (an outcome reported twice) change nothing.
pub fn settle(session: &mut Session, seq: u32, delivered: bool) -> bool {
    if session.head().is_none_or(|head| head.seq != seq) {
        return false;
    }
    let head = session.outbox.remove(0);
    if delivered {
        session.delivered += 1;
        session.last_sent = Some(Sent {
            id: head.id,
            text: head.text,
        });
    } else {
        session.undeliverable += 1;
    }
    true
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

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
