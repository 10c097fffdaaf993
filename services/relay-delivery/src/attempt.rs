//! One attempt of one job: decode it, admit it past its destination's breaker and in-flight
//! limit (or defer it to a delay tier without spending an attempt), claim it, send it
//! ([`crate::http`]), tell the breaker what came of it, add it to the job's attempt history, and
//! hand the outcome to [`crate::settle`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_amqp::consumer::{Disposition, Handler};
use relay_amqp::{Delivery, headers};
use relay_core::DeliveryJob;
use relay_store::{AttemptEntry, DeliveryStatus};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::breaker::{Breaker, Decision, Input};
use crate::destination::Destination;
use crate::in_flight::{Admission, Slot};
use crate::policy::Outcome;
use crate::settle::{Deferral, Failure, Settle};
use crate::{http, outcome};

/// How much longer than the destination's timeout an attempt's claim lasts.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// The consumer's handler of `relay.deliveries`.
pub(crate) struct Sender {
    pub(crate) client: reqwest::Client,
    pub(crate) destinations: Arc<HashMap<String, Destination>>,
    pub(crate) settle: Settle,
}

impl Handler for Sender {
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        // `process relay.deliveries`, parented on the publisher's span; the request itself is
        // a child `CLIENT` span ([`http::send`]).
        let span = relay_amqp::process_span!(
            relay_core::routing::DELIVERIES,
            delivery,
            job_id = tracing::field::Empty,
            destination = tracing::field::Empty,
            attempt = tracing::field::Empty,
        );
        self.attempt(delivery).instrument(span).await
    }
}

impl Sender {
    async fn attempt(&self, delivery: &Delivery) -> Disposition {
        let job: DeliveryJob = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(e) => {
                let failure = Failure {
                    reason: "malformed_job",
                    detail: format!("not a delivery job: {e}"),
                    status: None,
                    response: None,
                };
                return self.settle.park(delivery, None, 0, failure).await;
            }
        };
        let attempt = u32::try_from(
            headers::get_int(delivery.properties.headers().as_ref(), headers::ATTEMPT).unwrap_or(0),
        )
        .unwrap_or(0)
        .saturating_add(1);
        let span = tracing::Span::current();
        span.record("job_id", job.id.as_str());
        span.record("destination", job.destination.as_str());
        span.record("attempt", attempt);

        let Some(destination) = self.destinations.get(&job.destination) else {
            let failure = Failure {
                reason: "unknown_destination",
                detail: format!("no destination named `{}` is configured", job.destination),
                status: None,
                response: None,
            };
            return self
                .settle
                .park(delivery, Some(&job), attempt, failure)
                .await;
        };

        // A destination that answered 410 Gone gets nothing until an operator enables it again:
        // its jobs are parked, to be replayed then.
        if destination.is_disabled() {
            let failure = Failure {
                reason: "destination_disabled",
                detail: format!(
                    "`{}` answered 410 Gone and is disabled; `relayctl destination enable {}`, then `relayctl dead replay --reason destination_disabled`",
                    destination.name, destination.name
                ),
                status: None,
                response: None,
            };
            return self
                .settle
                .park(delivery, Some(&job), attempt - 1, failure)
                .await;
        }

        // Before anything else: a job its destination cannot take now gives its prefetch slot
        // back at once, as a copy in a delay tier, so other destinations' jobs keep moving.
        let ticket = match admit(destination).await {
            Ok(ticket) => ticket,
            Err(deferral) => {
                return self
                    .settle
                    .defer(delivery, &job, attempt - 1, destination, deferral)
                    .await;
            }
        };

        // One round trip: has this job already succeeded, and may this attempt claim it? The
        // claim keeps two copies of one job (a duplicate that slipped past ingress dedup) from
        // being sent at once; the losing copy checks again after the shortest tier, by when the
        // record says `delivered` and it is skipped.
        let claim_ttl = destination.config.timeout + CLAIM_MARGIN;
        match self.settle.store.begin_attempt(&job.id, claim_ttl).await {
            Ok((Some(record), claimed)) if record.status == DeliveryStatus::Delivered => {
                tracing::info!("job already delivered, not sending again");
                metrics::counter!("relay_delivery_skipped_total", "destination" => job.destination.clone()).increment(1);
                drop(ticket);
                if claimed {
                    self.settle.release(&job.id).await;
                }
                // The earlier copy may have died between its record and its outcome event.
                return self
                    .settle
                    .report(outcome::success(&job, record.attempts, None))
                    .await;
            }
            Ok((_, true)) => {}
            Ok((_, false)) => {
                tracing::info!("another attempt of this job is under way; checking again later");
                drop(ticket);
                let tier = self.settle.tiers[0];
                return self
                    .settle
                    .reschedule(delivery, &job, attempt - 1, tier)
                    .await;
            }
            Err(error) => {
                // Redis being away is logged once by the store's breaker, not per job.
                if error.means_unavailable() {
                    tracing::debug!(%error, "delivery record unavailable; sending without the duplicate check");
                } else {
                    tracing::warn!(%error, "delivery record unreadable; sending without the duplicate check");
                }
            }
        }

        let started = Instant::now();
        let (outcome, response) = http::send(&self.client, destination, &job, attempt).await;
        // The breaker hears the outcome before the slot is given back, so the next request
        // to this destination is decided on it.
        ticket.finish(&outcome);
        let label = outcome.label();
        metrics::counter!("relay_delivery_attempts_total", "destination" => destination.name.clone(), "outcome" => label)
            .increment(1);
        let latency = started.elapsed();
        metrics::histogram!("relay_delivery_latency_seconds", "destination" => destination.name.clone())
            .record(latency.as_secs_f64());
        // Before settling, so a record that reports this attempt never lacks it in its history,
        // and whatever settling comes to (a retry copy the broker refused included), the
        // attempt that was made is kept.
        let entry = attempt_entry(attempt, label, &outcome, response.as_deref(), latency);
        self.note_attempt(&job, &entry).await;

        let disposition = self
            .settle
            .outcome(delivery, &job, destination, attempt, outcome, response)
            .await;
        // Every settled outcome wrote the record, which released the claim; a job handed back
        // to its queue did not.
        if disposition == Disposition::Requeue {
            self.settle.release(&job.id).await;
        }
        disposition
    }

    /// Appends `entry` to the job's history. Redis being away costs nothing (the store's breaker
    /// skips it) and fails nothing: the history is for operators, the broker is authoritative.
    async fn note_attempt(&self, job: &DeliveryJob, entry: &AttemptEntry) {
        if let Err(error) = self
            .settle
            .store
            .append_attempt(&job.id, entry, self.settle.record_ttl)
            .await
        {
            if error.means_unavailable() {
                tracing::debug!(%error, "could not add the attempt to the delivery record");
            } else {
                tracing::warn!(%error, "could not add the attempt to the delivery record");
            }
        }
    }
}

/// What the history keeps of attempt number `attempt`: its outcome `label`, status or error
/// kind, latency, and at most [`relay_core::outcome::EXCERPT_LIMIT`] bytes of the response
/// (whose secrets [`crate::http`] has masked already).
fn attempt_entry(
    attempt: u32,
    label: &str,
    outcome: &Outcome,
    response: Option<&str>,
    latency: Duration,
) -> AttemptEntry {
    let (status, error) = match outcome {
        Outcome::Delivered(status) | Outcome::Permanent(status) => (Some(*status), None),
        Outcome::Gone => (Some(410), None),
        Outcome::Retryable {
            status: Some(status),
            ..
        } => (Some(*status), None),
        Outcome::Retryable {
            reason,
            status: None,
            ..
        } => (None, Some(reason.clone())),
        // A 2xx whose body says the request failed: both what was answered and what it meant.
        Outcome::Refused { status, detail } => {
            (Some(*status), Some(relay_core::outcome::excerpt(detail)))
        }
        Outcome::Unsendable(detail) => (None, Some(relay_core::outcome::excerpt(detail))),
    };
    let response_excerpt = response.map(relay_core::outcome::excerpt);
    AttemptEntry {
        attempt,
        at: OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        outcome: label.to_owned(),
        status,
        error,
        latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        response_excerpt,
    }
}

/// Leave to send one request: a slot of the destination's in-flight limit, and whether the
/// request is its breaker's probe. Dropped unused, it gives both back (the probe as
/// [`Input::ProbeUnsent`]).
struct Ticket<'a> {
    // Declared first, so dropped first: the breaker hears of the probe before the slot is free.
    probe: ProbeGuard<'a>,
    _slot: Slot,
}

/// Reports an admitted probe that was never sent.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    /// Whether this request is the probe and its outcome not yet reported.
    pending: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.breaker.record(Input::ProbeUnsent, Instant::now());
        }
    }
}

impl Ticket<'_> {
    /// Tells the breaker what the request came to, then gives the slot back.
    fn finish(mut self, outcome: &Outcome) {
        let probe = std::mem::take(&mut self.probe.pending);
        let input = match outcome {
            Outcome::Retryable { .. } => Input::Failed { probe },
            Outcome::Delivered(_)
            | Outcome::Gone
            | Outcome::Permanent(_)
            | Outcome::Refused { .. } => Input::Answered { probe },
            // Nothing was sent: the destination said nothing.
            Outcome::Unsendable(_) if probe => Input::ProbeUnsent,
            Outcome::Unsendable(_) => return,
        };
        self.probe.breaker.record(input, Instant::now());
    }
}

/// Admits a job to `destination`, or says why not. An open breaker defers it at once; otherwise
/// it takes a slot of the destination's in-flight limit, and only then asks the breaker, so that
/// the breaker's answer holds when the request goes (a request that opened it meanwhile has
/// given its slot back first).
async fn admit(destination: &Destination) -> Result<Ticket<'_>, Deferral> {
    if let Some(remaining) = destination.breaker.waiting(Instant::now()) {
        return Err(Deferral::BreakerOpen { remaining });
    }
    let slot = match destination.in_flight.take().await {
        Admission::Go(slot) => slot,
        Admission::Full { stalled } => return Err(Deferral::InFlightLimit { stalled }),
    };
    let pending = match destination.breaker.admit(Instant::now()) {
        Decision::Send => false,
        Decision::Probe => true,
        // The slot goes back as `slot` drops.
        Decision::Wait { remaining } => return Err(Deferral::BreakerOpen { remaining }),
    };
    Ok(Ticket {
        probe: ProbeGuard {
            breaker: &destination.breaker,
            pending,
        },
        _slot: slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(42);

    #[test]
    fn an_entry_keeps_the_status_or_the_error_kind() {
        let retry = |status, reason: &str| Outcome::Retryable {
            reason: reason.to_owned(),
            status,
            retry_after: None,
        };
        let e = attempt_entry(
            2,
            "retryable",
            &retry(Some(503), "status 503"),
            Some("busy"),
            MS,
        );
        assert_eq!(
            (e.attempt, e.status, e.error.as_deref()),
            (2, Some(503), None)
        );
        assert_eq!(e.outcome, "retryable");
        assert_eq!(e.latency_ms, 42);
        assert_eq!(e.response_excerpt.as_deref(), Some("busy"));
        let e = attempt_entry(1, "retryable", &retry(None, "timeout"), None, MS);
        assert_eq!((e.status, e.error.as_deref()), (None, Some("timeout")));
        assert_eq!(e.response_excerpt, None);
        let e = attempt_entry(1, "gone", &Outcome::Gone, None, MS);
        assert_eq!(e.status, Some(410));
        let e = attempt_entry(
            1,
            "invalid",
            &Outcome::Unsendable("invalid URL".into()),
            None,
            MS,
        );
        assert_eq!((e.status, e.error.as_deref()), (None, Some("invalid URL")));
    }

    #[test]
    fn an_excerpt_is_short() {
        let body = "x".repeat(4000);
        let e = attempt_entry(1, "rejected", &Outcome::Permanent(401), Some(&body), MS);
        assert_eq!(
            e.response_excerpt.unwrap().len(),
            relay_core::outcome::EXCERPT_LIMIT
        );
    }
}
