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
//!
//! The session also keeps what an operator looks at: a bounded timeline of what happened and
//! its messages with their delivery status (`timeline`).
//!
//! This module holds the data (states, inputs, the session record and its outbox); the
//! transition function [`apply`] is in `transition`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::message::{self, Rules};

mod timeline;
mod transition;

pub use timeline::{
    EventLabel, Happened, MAX_MESSAGES, MAX_TIMELINE, MessageNote, MessageStatus, TimelineEntry,
};
pub use transition::apply;

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
    /// What happened, oldest first: the latest [`MAX_TIMELINE`] entries.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Its messages, oldest first, with their delivery status: the latest [`MAX_MESSAGES`].
    #[serde(default)]
    pub messages: Vec<MessageNote>,
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
            timeline: Vec::new(),
            messages: Vec::new(),
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
        let pending = Pending {
            seq,
            key,
            id,
            text,
            body,
        };
        self.note_made(&pending, at);
        self.outbox.push(pending);
    }
}

/// Settles the message `seq` (delivered, or given up on) at `at`, the time of its outcome; true
/// when it was the head. Repeats (an outcome reported twice) change nothing.
pub fn settle(session: &mut Session, seq: u32, delivered: bool, at: OffsetDateTime) -> bool {
    if session.head().is_none_or(|head| head.seq != seq) {
        return false;
    }
    let head = session.outbox.remove(0);
    session.note_settled(seq, &head.id, delivered, at);
    session.trim_notes();
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

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
