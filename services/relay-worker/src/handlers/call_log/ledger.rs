//! The session ledger in Redis: one JSON record per call session under `call:<session id>`
//! (e.g. `relay:call:plivo:3e82…`), updated by compare-and-set so that two events of one
//! session handled at once never lose each other's change: load, apply the pure transition,
//! write only if nobody wrote meanwhile, else load again.

use std::time::Duration;

use relay_store::Store;

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

fn unavailable(error: relay_store::StoreError) -> HandlerError {
    HandlerError::Transient(format!("session ledger: {error}"))
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
        let key = Self::key(id);
        for _ in 0..MAX_CONFLICTS {
            let raw = self.store.get_text(&key).await.map_err(unavailable)?;
            let before = match raw.as_deref().map(serde_json::from_str::<Session>) {
                None => None,
                Some(Ok(session)) => Some(session),
                Some(Err(error)) => {
                    // A record this version cannot read (written by a newer one, or damaged):
                    // starting over beats parking every later event of the call.
                    tracing::warn!(%error, session = id, "unreadable session record; starting it afresh");
                    None
                }
            };
            let Some((after, note)) = change(before.clone()) else {
                return Ok(Update {
                    before,
                    after: None,
                });
            };
            let text = serde_json::to_string(&after).expect("a session always serialises");
            let written = self
                .store
                .compare_and_set(&key, raw.as_deref(), &text, self.ttl)
                .await
                .map_err(unavailable)?;
            if written {
                return Ok(Update {
                    before,
                    after: Some((after, note)),
                });
            }
            metrics::counter!("relay_call_log_ledger_conflicts_total").increment(1);
        }
        Err(HandlerError::Transient(format!(
            "session {id} kept changing under {MAX_CONFLICTS} concurrent updates"
        )))
    }
}
