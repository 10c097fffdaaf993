//! What follows an attempt, or a job that was not sent: record a success and report it, retry a
//! retryable failure through the delay tier its backoff calls for, defer a job its destination
//! cannot take now, or dead-letter (park) what cannot be delivered; then say whether to ack.
//!
//! Invariant 4 on every path: the answer is [`Disposition::Ack`] only once the success is
//! recorded or the copy (retry, deferral, dead letter) is confirmed by the broker; otherwise the
//! job goes back to its queue ([`Disposition::Requeue`]).

use std::time::Duration;

use relay_amqp::consumer::Disposition;
use relay_amqp::jobs::{self, JobMessage, Target};
use relay_amqp::{Broker, Delivery, FieldTable, headers};
use relay_core::outcome::{DeliveryOutcome, excerpt};
use relay_core::{DeliveryJob, routing};
use relay_store::{DeliveryRecord, DeliveryStatus, Store};
use time::OffsetDateTime;

use crate::destination::Destination;
use crate::outcome;
use crate::policy::{self, Outcome};

/// How long a retry copy may keep retrying through broker trouble.
const RESCHEDULE_BUDGET: Duration = Duration::from_secs(30);

/// Settles jobs: the broker and store side of delivery.
pub(crate) struct Settle {
    pub(crate) broker: Broker,
    pub(crate) store: Store,
    /// The delay tiers, ascending.
    pub(crate) tiers: Vec<Duration>,
    pub(crate) record_ttl: Duration,
}

/// Every `reason` delivery parks a job in `relay.dead.deliveries` with (the `reason` label of
/// `relay_dead_letters_total{lot="deliveries"}`, with the consumer's own poison reason): a
/// [`Failure`]'s.
pub const DEAD_LETTER_REASONS: &[&str] = &[
    "malformed_job",
    "unknown_destination",
    "destination_disabled",
    "attempts_exhausted",
    "expired",
    "gone",
    "invalid_request",
    "refused",
    "http_status",
];

/// Every `reason` of `relay_delivery_deferred_total`: a [`Deferral`]'s.
pub const DEFERRAL_REASONS: &[&str] = &["in_flight_limit", "breaker_open"];

/// Why a job is dead-lettered.
pub(crate) struct Failure {
    /// One of [`DEAD_LETTER_REASONS`].
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
    pub(crate) status: Option<u16>,
    pub(crate) response: Option<String>,
}

/// Why a job was not sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferral {
    /// Its destination had `max_in_flight` requests out, none finishing for `stalled`.
    InFlightLimit {
        /// Time since one of the destination's slots last changed hands.
        stalled: Duration,
    },
    /// Its destination's breaker is open (or half-open with its probe out) for `remaining`.
    BreakerOpen {
        /// Time left of the cool-down.
        remaining: Duration,
    },
}

impl Settle {
    /// Acts on the `outcome` of attempt number `attempt`.
    pub(crate) async fn outcome(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        destination: &Destination,
        attempt: u32,
        outcome: Outcome,
        response: Option<String>,
    ) -> Disposition {
        match outcome {
            Outcome::Delivered(status) => {
                tracing::info!(status, "delivered");
                self.record(
                    job,
                    DeliveryStatus::Delivered,
                    attempt,
                    format!("status {status}"),
                )
                .await;
                self.report(outcome::success(job, attempt, response)).await
            }
            Outcome::Retryable {
                reason,
                status,
                retry_after,
            } => {
                let out_of_attempts = attempt >= destination.config.max_attempts;
                let expired = OffsetDateTime::now_utc() >= deadline(job, destination);
                if out_of_attempts || expired {
                    let why = if out_of_attempts {
                        "attempts_exhausted"
                    } else {
                        "expired"
                    };
                    let failure = Failure {
                        reason: why,
                        detail: format!("last attempt: {reason}"),
                        status,
                        response,
                    };
                    return self.park(delivery, Some(job), attempt, failure).await;
                }
                self.retry(delivery, job, destination, attempt, &reason, retry_after)
                    .await
            }
            Outcome::Gone => {
                metrics::counter!("relay_delivery_destination_gone_total", "destination" => destination.name.clone()).increment(1);
                self.disable(destination).await;
                let failure = Failure {
                    reason: "gone",
                    detail: "status 410".to_owned(),
                    status: Some(410),
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
            Outcome::Unsendable(detail) => {
                let failure = Failure {
                    reason: "invalid_request",
                    detail,
                    status: None,
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
            Outcome::Refused { status, detail } => {
                let failure = Failure {
                    reason: "refused",
                    detail,
                    status: Some(status),
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
            Outcome::Permanent(status) => {
                let failure = Failure {
                    reason: "http_status",
                    detail: format!("status {status}"),
                    status: Some(status),
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
        }
    }

    /// Parks a copy of a job that was not sent in a delay tier, with its attempts unchanged,
    /// then acks the original. The tier is the longest that ends before the destination is
    /// likely to take the job (the breaker's cool-down, or how long its requests have been
    /// stuck, up to its timeout), and at least the shortest. A job whose breaker is still open
    /// past the job's age limit is dead-lettered as `expired`, as its next failure would be.
    pub(crate) async fn defer(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        attempts_made: u32,
        destination: &Destination,
        deferral: Deferral,
    ) -> Disposition {
        let (reason, wait) = match deferral {
            Deferral::InFlightLimit { stalled } => {
                ("in_flight_limit", stalled.min(destination.config.timeout))
            }
            Deferral::BreakerOpen { remaining } => ("breaker_open", remaining),
        };
        if matches!(deferral, Deferral::BreakerOpen { .. })
            && OffsetDateTime::now_utc() >= deadline(job, destination)
        {
            let failure = Failure {
                reason: "expired",
                detail: "its destination's circuit breaker was still open at the job's age limit"
                    .to_owned(),
                status: None,
                response: None,
            };
            return self.park(delivery, Some(job), attempts_made, failure).await;
        }
        debug_assert!(DEFERRAL_REASONS.contains(&reason));
        metrics::counter!("relay_delivery_deferred_total", "destination" => destination.name.clone(), "reason" => reason)
            .increment(1);
        let tier = policy::defer_tier(&self.tiers, wait);
        tracing::debug!(reason, tier = ?tier, "destination cannot take the job now; deferred");
        self.reschedule(delivery, job, attempts_made, tier).await
    }

    /// Disables `destination` after a 410: at once in this process, and through Redis for the
    /// others (best effort: were Redis away, each process learns it from its own 410).
    async fn disable(&self, destination: &Destination) {
        if destination.set_disabled(true) {
            tracing::error!(
                destination = %destination.name,
                "destination answered 410 Gone: disabled, its jobs are parked until an operator runs `relayctl destination enable {}`",
                destination.name
            );
        }
        let disabled = relay_store::Disabled {
            since: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            reason: "status 410".to_owned(),
        };
        if let Err(error) = self
            .store
            .disable_destination(&destination.name, &disabled)
            .await
        {
            tracing::warn!(%error, destination = %destination.name, "could not record the disabled destination in Redis; other delivery processes learn of it from their own 410");
        }
    }

    /// Parks a retry copy in the delay tier its backoff calls for, then acks the original.
    async fn retry(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        destination: &Destination,
        attempt: u32,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Disposition {
        let delay = policy::retry_delay(
            attempt + 1,
            destination.backoff_base,
            destination.backoff_max,
            retry_after,
            fastrand::f64(),
        );
        let tier = policy::pick_tier(&self.tiers, delay);
        let disposition = self.reschedule(delivery, job, attempt, tier).await;
        if disposition == Disposition::Ack {
            tracing::info!(reason, tier = %routing::retry_queue(tier), attempts_made = attempt, "will retry");
            self.record(job, DeliveryStatus::Retrying, attempt, reason.to_owned())
                .await;
        }
        disposition
    }

    /// Publishes a copy of the job to the `tier` delay queue with `attempts_made`, then acks
    /// the original, or hands it back when the copy is not confirmed. Writes no record: a copy
    /// parked without an attempt must not overwrite the record of the attempt that was made.
    pub(crate) async fn reschedule(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        attempts_made: u32,
        tier: Duration,
    ) -> Disposition {
        let message = JobMessage {
            id: &job.id,
            destination: &job.destination,
            attempts_made,
            body: &delivery.data,
        };
        match jobs::publish_copy(
            &self.broker,
            Target::Retry(tier),
            message,
            RESCHEDULE_BUDGET,
        )
        .await
        {
            Ok(()) => Disposition::Ack,
            Err(error) => {
                tracing::warn!(%error, "could not park the retry; the job goes back to its queue");
                Disposition::Requeue
            }
        }
    }

    /// Dead-letters the job with its reason, then acks the original.
    pub(crate) async fn park(
        &self,
        delivery: &Delivery,
        job: Option<&DeliveryJob>,
        attempt: u32,
        failure: Failure,
    ) -> Disposition {
        debug_assert!(
            DEAD_LETTER_REASONS.contains(&failure.reason),
            "add `{}` to DEAD_LETTER_REASONS",
            failure.reason
        );
        tracing::warn!(reason = failure.reason, detail = %failure.detail, "dead-lettering the job");
        let mut extra = FieldTable::default();
        headers::put_str(&mut extra, headers::DETAIL, failure.detail.as_str());
        headers::put_int(&mut extra, headers::ATTEMPT, i64::from(attempt));
        if let Some(status) = failure.status {
            headers::put_int(&mut extra, headers::STATUS, i64::from(status));
        }
        if let Some(response) = &failure.response {
            headers::put_str(&mut extra, headers::RESPONSE, response.as_str());
        }
        match self
            .broker
            .dead_letter(
                routing::DEAD_DELIVERIES_KEY,
                delivery,
                failure.reason,
                extra,
            )
            .await
        {
            Ok(()) => {
                let Some(job) = job else {
                    return Disposition::Ack;
                };
                self.record(job, DeliveryStatus::Dead, attempt, failure.detail.clone())
                    .await;
                // Every parked job reports its failure, whether it asked or not.
                let mut report = DeliveryOutcome::of(job, false, attempt);
                report.status = failure.status;
                report.reason = Some(failure.reason.to_owned());
                report.detail = Some(failure.detail);
                report.response_excerpt = failure.response.as_deref().map(excerpt);
                // The parked copy is safe whatever happens to the report: handing the job
                // back would send it again (a replay of a dead job must be attempted anew, so
                // a `dead` record cannot be skipped). A lost failure report is logged instead.
                let _ = outcome::publish(&self.broker, &report).await;
                Disposition::Ack
            }
            Err(error) => {
                tracing::warn!(%error, "could not dead-letter; the job goes back to its queue");
                Disposition::Requeue
            }
        }
    }

    /// Publishes `report` (if any), then acks; a report the broker would not take hands the
    /// job back, and its next delivery re-reports from the record without sending again.
    pub(crate) async fn report(&self, report: Option<DeliveryOutcome>) -> Disposition {
        match report {
            None => Disposition::Ack,
            Some(report) => match outcome::publish(&self.broker, &report).await {
                Ok(()) => Disposition::Ack,
                Err(_) => Disposition::Requeue,
            },
        }
    }

    /// Gives up this attempt's claim on `job_id`.
    pub(crate) async fn release(&self, job_id: &str) {
        if let Err(error) = self.store.release(job_id).await {
            tracing::debug!(%error, "claim not released; it expires by itself");
        }
    }

    /// Writes the job's record (where it stands now), which also releases its claim. Its
    /// history is not written here: each attempt was appended to it as it ended
    /// ([`relay_store::Store::append_attempt`], in `attempt.rs`), so overwriting the record
    /// loses none, and a job settled without an attempt (a deferral) adds none.
    async fn record(
        &self,
        job: &DeliveryJob,
        status: DeliveryStatus,
        attempts: u32,
        last_outcome: String,
    ) {
        let record = DeliveryRecord {
            status,
            attempts,
            destination: job.destination.clone(),
            last_outcome,
            updated_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            // Kept apart, under `attempts:{job id}`; `finish_attempt` ignores this field.
            history: Vec::new(),
        };
        if let Err(error) = self
            .store
            .finish_attempt(&job.id, &record, self.record_ttl)
            .await
        {
            // Not worth failing the job over: the broker state is authoritative, and the
            // Idempotency-Key covers a re-send.
            if error.means_unavailable() {
                tracing::debug!(%error, "could not write the delivery record");
            } else {
                tracing::warn!(%error, "could not write the delivery record");
            }
        }
    }
}

/// The instant after which a retryable failure is dead-lettered instead.
fn deadline(job: &DeliveryJob, destination: &Destination) -> OffsetDateTime {
    let by_age = job.created_at + destination.config.max_age;
    job.give_up_after.map_or(by_age, |g| g.min(by_age))
}
