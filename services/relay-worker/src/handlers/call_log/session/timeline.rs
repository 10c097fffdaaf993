//! What an operator sees of a session: its **timeline** (each input that changed it, each
//! helpdesk message made and each message settled, in the order the handler applied them) and
//! its **messages** with their delivery status.
//!
//! Both are bounded: the latest [`MAX_TIMELINE`] entries and [`MAX_MESSAGES`] messages are
//! kept, the oldest dropped. Both are written only by a change: an input that changes nothing
//! (stale or repeated) and an outcome reported twice add nothing, so the transition stays
//! idempotent.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{EndStatus, Kind, Pending, Session, State};

/// Timeline entries a session keeps; older ones are dropped.
pub const MAX_TIMELINE: usize = 100;

/// Messages a session keeps in [`Session::messages`]; older ones are dropped.
pub const MAX_MESSAGES: usize = 50;

/// What kind of input an event was: a short, stable label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLabel {
    /// A web callback was accepted.
    Requested,
    /// A web callback was refused.
    Refused,
    /// The relay could not originate a web callback's call.
    OriginationFailed,
    /// The call exists (ringing or being set up).
    Ringing,
    /// The provider's application answered.
    AppAnswered,
    /// A person answered.
    Answered,
    /// The call ended.
    Ended,
    /// An agent leg ended.
    LegEnded,
    /// A recording is ready.
    Recording,
    /// The grace period of an unanswered ending is over.
    Settle,
    /// The session's end timer fired.
    EndTimer,
}

/// Where a helpdesk message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Made, not yet settled (in the outbox).
    Pending,
    /// The helpdesk accepted it.
    Delivered,
    /// Given up on (dead-lettered).
    Undeliverable,
}

/// One entry of a session's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When: the input's time (the provider's clock when it says), the message's time, or the
    /// time of the delivery outcome that settled a message.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub what: Happened,
}

/// What a timeline entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Happened {
    /// An input changed the session.
    Event {
        /// Which kind of input.
        event: EventLabel,
        /// Its particulars in words (an end status, who answered, a recording URL, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The state before it.
        from: State,
        /// The state after it.
        to: State,
    },
    /// A helpdesk message was made.
    Message {
        /// Its position in the session.
        seq: u32,
        /// Its helpdesk message id.
        id: String,
        /// Its text.
        text: String,
        /// The id of the delivery job that carries it (its delivery record's key).
        job_id: String,
    },
    /// A message's delivery settled.
    Settled {
        /// Its position in the session.
        seq: u32,
        /// Its helpdesk message id.
        id: String,
        /// Delivered or undeliverable.
        status: MessageStatus,
    },
}

/// One helpdesk message of a session, with its delivery status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageNote {
    /// Position in the session (1, 2, …).
    pub seq: u32,
    /// Which transition made it (`started`, `answered`, `ended`, `recording:<n>`, …).
    pub key: String,
    /// The helpdesk message id.
    pub id: String,
    /// The readable text.
    pub text: String,
    /// The id of the delivery job that carries it: `Store::delivery(job_id)` has its attempts.
    pub job_id: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// When it settled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub settled_at: Option<OffsetDateTime>,
}

impl Kind {
    /// The stable label of this kind of input.
    pub fn label(&self) -> EventLabel {
        match self {
            Self::Requested { .. } => EventLabel::Requested,
            Self::Refused { .. } => EventLabel::Refused,
            Self::OriginationFailed { .. } => EventLabel::OriginationFailed,
            Self::Ringing => EventLabel::Ringing,
            Self::AppAnswered => EventLabel::AppAnswered,
            Self::Answered { .. } => EventLabel::Answered,
            Self::Ended { .. } => EventLabel::Ended,
            Self::LegEnded => EventLabel::LegEnded,
            Self::Recording { .. } => EventLabel::Recording,
            Self::Settle => EventLabel::Settle,
            Self::EndTimer => EventLabel::EndTimer,
        }
    }

    /// Its particulars in words, for the timeline.
    fn detail(&self) -> Option<String> {
        match self {
            Self::Requested { user, target, .. } => Some(format!("{user} to {target}")),
            Self::Refused { reason, .. } | Self::OriginationFailed { reason } => {
                Some(reason.clone())
            }
            Self::Answered { by } => by.as_ref().map(|by| format!("by {by}")),
            Self::Ended { status, cause, .. } => {
                let status = match status {
                    EndStatus::Completed => "completed",
                    EndStatus::Busy => "busy",
                    EndStatus::NoAnswer => "no answer",
                    EndStatus::Canceled => "canceled",
                    EndStatus::Failed => "failed",
                };
                Some(match cause {
                    Some(cause) if !cause.is_empty() => format!("{status}: {cause}"),
                    _ => status.to_owned(),
                })
            }
            Self::Recording { url } => Some(url.clone()),
            _ => None,
        }
    }
}

impl Session {
    /// Notes a message just made: a timeline entry and a [`MessageNote`].
    pub(super) fn note_made(&mut self, message: &Pending, at: OffsetDateTime) {
        let job_id = crate::handlers::call_log::message::job_id(&message.id);
        self.timeline.push(TimelineEntry {
            at,
            what: Happened::Message {
                seq: message.seq,
                id: message.id.clone(),
                text: message.text.clone(),
                job_id: job_id.clone(),
            },
        });
        self.messages.push(MessageNote {
            seq: message.seq,
            key: message.key.clone(),
            id: message.id.clone(),
            text: message.text.clone(),
            job_id,
            status: MessageStatus::Pending,
            settled_at: None,
        });
    }

    /// Notes the input `kind` that took the session from `from` to where it is now, before the
    /// entries of the messages it made (at `mark`, the timeline's length before the input).
    pub(super) fn note_event(&mut self, kind: &Kind, at: OffsetDateTime, from: State, mark: usize) {
        let mut detail = kind.detail();
        if self.pending_end.is_some() && matches!(kind, Kind::Ended { .. }) {
            let held = "held for a late answer";
            detail = Some(detail.map_or_else(|| held.to_owned(), |d| format!("{d}; {held}")));
        }
        let entry = TimelineEntry {
            at,
            what: Happened::Event {
                event: kind.label(),
                detail,
                from,
                to: self.state,
            },
        };
        self.timeline.insert(mark.min(self.timeline.len()), entry);
    }

    /// Notes that the message `seq` (id `id`) settled at `at`.
    pub(super) fn note_settled(&mut self, seq: u32, id: &str, delivered: bool, at: OffsetDateTime) {
        let status = if delivered {
            MessageStatus::Delivered
        } else {
            MessageStatus::Undeliverable
        };
        self.timeline.push(TimelineEntry {
            at,
            what: Happened::Settled {
                seq,
                id: id.to_owned(),
                status,
            },
        });
        if let Some(note) = self.messages.iter_mut().find(|m| m.seq == seq) {
            note.status = status;
            note.settled_at = Some(at);
        }
    }

    /// Drops the oldest timeline entries and messages beyond their caps.
    pub(super) fn trim_notes(&mut self) {
        fn keep_latest<T>(list: &mut Vec<T>, max: usize) {
            let excess = list.len().saturating_sub(max);
            list.drain(..excess);
        }
        keep_latest(&mut self.timeline, MAX_TIMELINE);
        keep_latest(&mut self.messages, MAX_MESSAGES);
    }
}
