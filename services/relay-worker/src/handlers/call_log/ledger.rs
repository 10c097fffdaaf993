//! The session ledger in Redis: one JSON record per call session under `call:<session id>`
//! (e.g. `relay:call:plivo:3e82…`), updated by compare-and-set so that two events of one
//! session handled at once never lose each other's change: load, apply the pure transition,
//! write only if nobody wrote meanwhile, else load again.

use std::time::Duration;

use relay_store::{Change, Store};

use super::session::Session;
use crate::handler::HandlerError;

/// How often a conflicting update is retried before the event is retried durably instead.
const MAX_CONFLICTS: u32 = 16;

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

    fn key(session: &str) -> String {
        format!("call:{session}")
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
                &Self::key(id),
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
}
