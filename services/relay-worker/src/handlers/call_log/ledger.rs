//! The session ledger in Redis: one JSON record per call session under `call:<session id>`
//! (e.g. `relay:call:plivo:3e82…`), updated by compare-and-set so that two events of one
//! session handled at once never lose each other's change: load, apply the pure transition,
//! write only if nobody wrote meanwhile, else load again.
//!
//! Beside the records, two time indexes of session ids ([`relay_store::Store::index_add`]),
//! scored by the call's start (ms), for the console ([`super::lookup`]):
//! `calls:number:{digits}` per customer number (its digits only, so `+1 (555) 010-0000` and
//! `15550100000` are one number) and `calls:recent`. A session is filed when it is created and
//! when it first learns its customer's number, never on every event; both indexes keep the
//! sessions of the last session TTL, at most [`MAX_INDEXED`] each, and expire with them.

use std::time::Duration;

use relay_store::{Change, IndexEntry, Store};
use time::OffsetDateTime;

use super::session::Session;
use crate::handler::HandlerError;

/// How often a conflicting update is retried before the event is retried durably instead.
const MAX_CONFLICTS: u32 = 16;

/// Sessions kept in one index (`calls:recent`, or one number's); older ones are dropped.
pub(crate) const MAX_INDEXED: usize = 10_000;

/// The index of all sessions, newest first.
pub(crate) const RECENT: &str = "calls:recent";

/// The key of a session's record, without the store's prefix.
pub(crate) fn key(session: &str) -> String {
    format!("{RECORDS}{session}")
}

/// What the key of a session's record begins with.
pub(crate) const RECORDS: &str = "call:";

/// The index of the sessions of customer `number` (any format), if it has digits.
pub(crate) fn number_index(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("calls:number:{digits}"))
}

/// The result of one update.
pub(crate) struct Update<T> {
    /// The session before (`None`: there was none).
    pub(crate) before: Option<Session>,
    /// The session after, and what the change function said.
    pub(crate) after: Option<(Session, T)>,
}

pub(crate) struct Ledger {
    store: Store,
    ttl: Duration,
}

impl Ledger {
    pub(crate) fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// Applies `change` to the session `id` atomically. `change` returns the new session (and
    /// a note for the caller), or `None` to leave the record as it is.
    pub(crate) async fn update<T>(
        &self,
        id: &str,
        change: impl Fn(Option<Session>) -> Option<(Session, T)>,
    ) -> Result<Update<T>, HandlerError> {
        let updated = self
            .store
            .update_json(
                &key(id),
                self.ttl,
                MAX_CONFLICTS,
                || metrics::counter!("relay_call_log_ledger_conflicts_total").increment(1),
                |before| match change(before) {
                    Some((after, note)) => Change::Write(after, Some(note)),
                    None => Change::Keep(None),
                },
            )
            .await
            .map_err(|error| HandlerError::Transient(format!("session ledger of {id}: {error}")))?;
        Ok(Update {
            before: updated.before,
            after: updated.written.zip(updated.note),
        })
    }

    /// Files `session` in `calls:recent` and under its customer's number (when it has one), in
    /// one round trip, at its start (else its end, else `at`). Called when a session is created
    /// or first learns its number (and again on a redelivery: filing is idempotent).
    pub(crate) async fn index(
        &self,
        session: &Session,
        at: OffsetDateTime,
    ) -> Result<(), relay_store::StoreError> {
        let at = session.started_at.or(session.ended_at).unwrap_or(at);
        let at = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let mut entries = vec![IndexEntry {
            index: RECENT.to_owned(),
            member: session.id.clone(),
            at_ms: at,
        }];
        if let Some(index) = session.customer.as_deref().and_then(number_index) {
            entries.push(IndexEntry {
                index,
                member: session.id.clone(),
                at_ms: at,
            });
        }
        self.store.index_add(&entries, self.ttl, MAX_INDEXED).await
    }
}
