//! Delivery outcome events (docs/ARCHITECTURE.md): after a job's outcome is recorded, tell the handler
//! that made it. A job that asks for it gets `relay.delivery.succeeded`; every dead-lettered
//! job gets `relay.delivery.failed` regardless, with the reason and a response excerpt.

use std::time::Duration;

use relay_amqp::{Broker, PublishError};
use relay_core::outcome::DeliveryOutcome;
use relay_core::{DeliveryJob, routing};

/// How long publishing an outcome may keep retrying through broker trouble (the job is held
/// meanwhile; it is handed back only after that).
const BUDGET: Duration = Duration::from_secs(30);

/// The `outcome` labels of `relay_delivery_outcomes_total`.
const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";

/// Creates the series of `relay_delivery_outcomes_total` at zero, one per outcome.
pub(crate) fn register_metrics() {
    for outcome in [SUCCEEDED, FAILED] {
        metrics::counter!("relay_delivery_outcomes_total", "outcome" => outcome).increment(0);
    }
}

/// Publishes `outcome` to `relay.events` and waits for the confirm.
pub(crate) async fn publish(
    broker: &Broker,
    outcome: &DeliveryOutcome,
) -> Result<(), PublishError> {
    let event = outcome.to_event();
    // The handler name becomes a routing-key word; a job from elsewhere (relayctl, an old
    // version) with an odd name still gets its outcome, under `unknown`.
    let handler = if routing::is_key_word(&outcome.handler) {
        outcome.handler.as_str()
    } else {
        "unknown"
    };
    let key = routing::outcome_key(outcome.succeeded, handler);
    let published = relay_amqp::events::publish_patiently(broker, &key, &event, BUDGET).await;
    let label = if outcome.succeeded { SUCCEEDED } else { FAILED };
    match &published {
        Ok(()) => {
            metrics::counter!("relay_delivery_outcomes_total", "outcome" => label).increment(1);
        }
        Err(error) => {
            tracing::warn!(%error, job_id = %outcome.job_id, "could not publish the delivery outcome");
        }
    }
    published
}

/// The success outcome of `job`, when it asked for one, with the start of the answer (an
/// origination needs what the provider answered).
pub(crate) fn success(
    job: &DeliveryJob,
    attempts: u32,
    response: Option<String>,
) -> Option<DeliveryOutcome> {
    job.report_outcome.then(|| {
        let mut outcome = DeliveryOutcome::of(job, true, attempts);
        outcome.response_excerpt = response.map(|r| relay_core::outcome::excerpt(&r));
        outcome
    })
}
