//! Each account's alert record in Redis (`alert:<account>`), updated by compare-and-set: load,
//! apply the pure transition, write only if nobody wrote meanwhile, else load again.

use std::time::Duration;

use relay_store::Store;

use super::state::{Alert, Step};
use crate::handler::HandlerError;

/// How often a conflicting update is retried before the event is retried durably instead.
/// One account's callbacks may all arrive at once (a prefetch full of them, as under load),
/// and each round of contenders lets one through: enough rounds for a full prefetch.
const MAX_CONFLICTS: u32 = 128;

pub(super) struct Ledger {
    store: Store,
    ttl: Duration,
}

fn unavailable(error: relay_store::StoreError) -> HandlerError {
    HandlerError::Transient(format!("alert ledger: {error}"))
}

impl Ledger {
    pub(super) fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// Applies `change` to `account`'s record atomically; the step is written only when it
    /// changed the record.
    pub(super) async fn update(
        &self,
        account: &str,
        change: impl Fn(Option<Alert>) -> Option<Step>,
    ) -> Result<Option<Step>, HandlerError> {
        let key = format!("alert:{account}");
        for _ in 0..MAX_CONFLICTS {
            let raw = self.store.get_text(&key).await.map_err(unavailable)?;
            let before = match raw.as_deref().map(serde_json::from_str::<Alert>) {
                None => None,
                Some(Ok(alert)) => Some(alert),
                Some(Err(error)) => {
                    tracing::warn!(%error, account, "unreadable alert record; starting it afresh");
                    None
                }
            };
            let Some(step) = change(before) else {
                return Ok(None);
            };
            if !step.changed {
                return Ok(Some(step));
            }
            let text = serde_json::to_string(&step.alert).expect("an alert always serialises");
            let written = self
                .store
                .compare_and_set(&key, raw.as_deref(), &text, self.ttl)
                .await
                .map_err(unavailable)?;
            if written {
                return Ok(Some(step));
            }
            metrics::counter!("relay_min_balance_alert_ledger_conflicts_total").increment(1);
        }
        Err(HandlerError::Transient(format!(
            "alert of account {account} kept changing under {MAX_CONFLICTS} concurrent updates"
        )))
    }
}
