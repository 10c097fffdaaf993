//! Each account's alert record in Redis (`alert:<account>`), updated by compare-and-set: load,
//! apply the pure transition, write only if nobody wrote meanwhile, else load again.

use std::time::Duration;

use relay_store::{Change, Store};

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
        let updated = self
            .store
            .update_json(
                &format!("alert:{account}"),
                self.ttl,
                MAX_CONFLICTS,
                || metrics::counter!("relay_min_balance_alert_ledger_conflicts_total").increment(1),
                |before| match change(before) {
                    Some(step) if step.changed => Change::Write(step.alert.clone(), Some(step)),
                    unchanged => Change::Keep(unchanged),
                },
            )
            .await
            .map_err(|error| {
                HandlerError::Transient(format!("alert ledger of {account}: {error}"))
            })?;
        Ok(updated.note)
    }
}
