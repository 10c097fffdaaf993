//! The generic runner around every handler: one consumer per handler queue.
//!
//! For each message: decode the CloudEvent, call the handler under a time budget with panics
//! caught, publish its jobs, timers and events with confirms, and only then ack (invariant 3). A
//! transient failure becomes a copy in a `relay.handler-retry.<delay>` tier that comes back to
//! this handler alone after its backoff; a permanent one (or a panic, or an event that is not a
//! CloudEvent) is parked in `relay.dead.events` with the reason. Publishing retries through
//! broker hiccups while the message is held, so a hiccup never spends the queue's delivery
//! limit (docs/ARCHITECTURE.md: that limit is for poison messages).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use relay_amqp::consumer::{Disposition, Handler as Consume};
use relay_amqp::{Broker, Delivery, FieldTable, Publish, headers, jobs};
use relay_core::{CloudEvent, backoff, event, routing};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::handler::{Context, Handler, HandlerError, Output};

/// How long publishing one output may keep retrying through broker trouble before the event is
/// handed back to its queue.
const PUBLISH_BUDGET: Duration = Duration::from_secs(30);

/// When the first durable retry of an event was scheduled (unix milliseconds).
const RETRY_SINCE: &str = "x-relay-retry-since";

/// What the runner did with an event: the `outcome` of `relay_worker_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its output published, with at least one job.
    JobsQueued,
    /// Its output published, without a job.
    NoJobs,
    /// A transient failure: a copy waits in a retry tier.
    Retrying,
    /// Parked in `relay.dead.events`.
    DeadLettered,
    /// Handed back to its queue (its output or its retry could not be published).
    Requeued,
}

impl Outcome {
    /// Every outcome, for the series created at start-up.
    pub(crate) const ALL: [Self; 5] = [
        Self::JobsQueued,
        Self::NoJobs,
        Self::Retrying,
        Self::DeadLettered,
        Self::Requeued,
    ];

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::JobsQueued => "jobs_queued",
            Self::NoJobs => "no_jobs",
            Self::Retrying => "retrying",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

/// One handler bound to the broker.
pub(crate) struct Runner {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) broker: Broker,
    pub(crate) timeout: Duration,
    pub(crate) retry_tiers: Vec<Duration>,
    pub(crate) retry_max_age: Duration,
}

impl Consume for Runner {
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        let name = self.handler.route().name;
        // `process relay.handler.<name>`, parented on the publisher's span (the message's
        // trace context).
        let queue = self.handler.route().queue();
        let span = relay_amqp::process_span!(
            &queue,
            delivery,
            handler = name,
            event_id = tracing::field::Empty,
        );
        async {
            let (disposition, outcome) = self.process(delivery).await;
            metrics::counter!("relay_worker_events_total", "handler" => name, "outcome" => outcome.label())
                .increment(1);
            disposition
        }
        .instrument(span)
        .await
    }
}

impl Runner {
    async fn process(&self, delivery: &Delivery) -> (Disposition, Outcome) {
        let event = match serde_json::from_slice::<CloudEvent>(&delivery.data) {
            Ok(event) => event,
            Err(e) => {
                let failure = HandlerError::malformed(format!("not a CloudEvent: {e}"));
                return self.park(delivery, &failure).await;
            }
        };
        tracing::Span::current().record("event_id", event.id.as_str());
        let table = delivery.properties.headers().as_ref();
        let context = Context {
            routing_key: headers::get_str(table, headers::ROUTING_KEY)
                .unwrap_or_else(|| delivery.routing_key.to_string()),
            redelivered: delivery.redelivered,
            attempt: headers::get_int(table, headers::ATTEMPT)
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
        };
        let call = AssertUnwindSafe(self.handler.handle(&event, &context)).catch_unwind();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(HandlerError::Transient(format!(
                "the handler took longer than {:?}",
                self.timeout
            ))),
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tracing::error!(panic = %what, "handler panicked; parking the event");
                Err(HandlerError::Permanent {
                    reason: "handler_panicked",
                    detail: what,
                })
            }
            Ok(Ok(result)) => result,
        };
        match result {
            Ok(mut output) => {
                for job in &mut output.jobs {
                    job.event_type.get_or_insert_with(|| event.ty.clone());
                }
                self.publish(output).await
            }
            Err(failure @ HandlerError::Permanent { .. }) => self.park(delivery, &failure).await,
            Err(HandlerError::Transient(detail)) => self.retry(delivery, &context, &detail).await,
        }
    }

    /// Publishes the output with confirms; the event is acked only after all of it is
    /// confirmed.
    async fn publish(&self, output: Output) -> (Disposition, Outcome) {
        let name = self.handler.route().name;
        for job in &output.jobs {
            if let Err(error) = jobs::publish_patiently(&self.broker, job, PUBLISH_BUDGET).await {
                tracing::warn!(%error, job_id = %job.id, "could not queue a job; the event goes back to its queue");
                return (Disposition::Requeue, Outcome::Requeued);
            }
            tracing::info!(job_id = %job.id, destination = %job.destination, "job queued");
        }
        for timer in &output.timers {
            let queue = routing::timer_queue(name, timer.delay);
            let body = serde_json::to_vec(&timer.event).expect("a CloudEvent always serialises");
            let mut table = FieldTable::default();
            headers::put_str(&mut table, routing::HANDLER_HEADER, name);
            let published = self
                .broker
                .publish_patiently(
                    Publish {
                        exchange: "",
                        routing_key: &queue,
                        message_id: &timer.event.id,
                        content_type: event::CONTENT_TYPE,
                        body: &body,
                        headers: table,
                    },
                    PUBLISH_BUDGET,
                )
                .await;
            if let Err(error) = published {
                tracing::warn!(%error, timer = %queue, "could not set a timer; the event goes back to its queue");
                return (Disposition::Requeue, Outcome::Requeued);
            }
        }
        for emitted in &output.events {
            let published = relay_amqp::events::publish_patiently(
                &self.broker,
                &emitted.routing_key,
                &emitted.event,
                PUBLISH_BUDGET,
            )
            .await;
            if let Err(error) = published {
                tracing::warn!(%error, routing_key = %emitted.routing_key, "could not publish an event; the event goes back to its queue");
                return (Disposition::Requeue, Outcome::Requeued);
            }
        }
        let outcome = if output.jobs.is_empty() {
            Outcome::NoJobs
        } else {
            Outcome::JobsQueued
        };
        (Disposition::Ack, outcome)
    }

    /// Schedules a durable retry of a transient failure, or parks the event once it is too
    /// old to keep trying.
    async fn retry(
        &self,
        delivery: &Delivery,
        context: &Context,
        detail: &str,
    ) -> (Disposition, Outcome) {
        let name = self.handler.route().name;
        let table = delivery.properties.headers().clone().unwrap_or_default();
        let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(i64::MAX);
        let since = headers::get_int(Some(&table), RETRY_SINCE).unwrap_or(now_ms);
        let age = Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0));
        if age >= self.retry_max_age {
            let failure = HandlerError::Permanent {
                reason: "retries_exhausted",
                detail: format!("still failing after {age:?}: {detail}"),
            };
            return self.park(delivery, &failure).await;
        }
        let next = context.attempt + 1;
        let first = self.retry_tiers[0];
        let last = *self.retry_tiers.last().expect("at least one tier");
        let delay = backoff::retry_delay(next + 1, first, last, None, fastrand::f64());
        let tier = backoff::pick_tier(&self.retry_tiers, delay);
        let queue = routing::handler_retry_queue(tier);
        let mut copy = table;
        headers::put_str(&mut copy, routing::HANDLER_HEADER, name);
        headers::put_str(
            &mut copy,
            headers::ROUTING_KEY,
            context.routing_key.as_str(),
        );
        headers::put_int(&mut copy, headers::ATTEMPT, i64::from(next));
        headers::put_int(&mut copy, RETRY_SINCE, since);
        headers::put_str(&mut copy, headers::DETAIL, detail);
        let message_id = headers::message_id(&delivery.properties);
        let published = self
            .broker
            .publish_patiently(
                Publish {
                    exchange: "",
                    routing_key: &queue,
                    message_id: &message_id,
                    content_type: event::CONTENT_TYPE,
                    body: &delivery.data,
                    headers: copy,
                },
                PUBLISH_BUDGET,
            )
            .await;
        match published {
            Ok(()) => {
                tracing::warn!(detail, attempt = next, tier = %queue, "transient failure; the event will be retried");
                (Disposition::Ack, Outcome::Retrying)
            }
            Err(error) => {
                tracing::warn!(%error, "could not schedule the retry; the event goes back to its queue");
                (Disposition::Requeue, Outcome::Requeued)
            }
        }
    }

    /// Parks an event no retry can fix in `relay.dead.events`.
    async fn park(&self, delivery: &Delivery, failure: &HandlerError) -> (Disposition, Outcome) {
        let (reason, detail) = match failure {
            HandlerError::Permanent { reason, detail } => (*reason, detail.as_str()),
            HandlerError::Transient(detail) => ("transient", detail.as_str()),
        };
        tracing::warn!(reason, detail, "parking the event in relay.dead.events");
        let mut extra = FieldTable::default();
        headers::put_str(&mut extra, headers::DETAIL, detail);
        headers::put_str(
            &mut extra,
            routing::HANDLER_HEADER,
            self.handler.route().name,
        );
        let parked = self
            .broker
            .dead_letter(routing::DEAD_EVENTS_KEY, delivery, reason, extra)
            .await;
        match parked {
            Ok(()) => (Disposition::Ack, Outcome::DeadLettered),
            Err(error) => {
                tracing::warn!(%error, "could not park the event; it goes back to its queue");
                (Disposition::Requeue, Outcome::Requeued)
            }
        }
    }
}
