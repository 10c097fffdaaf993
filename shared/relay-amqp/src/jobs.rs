//! Publishing delivery jobs: the one way a job reaches `relay.deliveries` or a retry tier,
//! used by the worker's handlers, by relay-delivery's retries and by relayctl.

use std::time::Duration;

use lapin::types::FieldTable;
use relay_core::{DeliveryJob, job, routing};

use crate::{Broker, Publish, PublishError, headers};

/// Where a job copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `relay.deliveries`, for an attempt now.
    Deliveries,
    /// The `relay.retry.<delay>` tier, for an attempt after it expires.
    Retry(Duration),
}

/// A serialised job and the headers delivery reads without parsing it.
#[derive(Debug, Clone, Copy)]
pub struct JobMessage<'a> {
    /// The job id (AMQP `message_id`).
    pub id: &'a str,
    /// The destination name (`x-relay-destination`, for operators' filters).
    pub destination: &'a str,
    /// Attempts already made (`x-relay-attempt`).
    pub attempts_made: u32,
    /// The serialised [`DeliveryJob`].
    pub body: &'a [u8],
}

/// Publishes `job` for its first attempt, waiting for the broker's confirm.
pub async fn publish(broker: &Broker, job: &DeliveryJob) -> Result<(), PublishError> {
    publish_patiently(broker, job, Duration::ZERO).await
}

/// [`publish`], retrying transient failures for up to `budget`
/// ([`Broker::publish_patiently`]).
pub async fn publish_patiently(
    broker: &Broker,
    job: &DeliveryJob,
    budget: Duration,
) -> Result<(), PublishError> {
    let body = serde_json::to_vec(job).expect("a job always serialises");
    let message = JobMessage {
        id: &job.id,
        destination: &job.destination,
        attempts_made: 0,
        body: &body,
    };
    publish_copy(broker, Target::Deliveries, message, budget).await
}

/// Publishes an already serialised job to `target` (a retry, a replay), retrying transient
/// failures for up to `budget`.
pub async fn publish_copy(
    broker: &Broker,
    target: Target,
    message: JobMessage<'_>,
    budget: Duration,
) -> Result<(), PublishError> {
    let mut table = FieldTable::default();
    headers::put_int(
        &mut table,
        headers::ATTEMPT,
        i64::from(message.attempts_made),
    );
    headers::put_str(&mut table, headers::DESTINATION, message.destination);
    let tier;
    let (exchange, routing_key) = match target {
        Target::Deliveries => (routing::DELIVERIES, ""),
        Target::Retry(delay) => {
            tier = routing::retry_queue(delay);
            ("", tier.as_str())
        }
    };
    broker
        .publish_patiently(
            Publish {
                exchange,
                routing_key,
                message_id: message.id,
                content_type: job::CONTENT_TYPE,
                body: message.body,
                headers: table,
            },
            budget,
        )
        .await
}
