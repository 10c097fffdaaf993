//! Publishing a CloudEvent the relay makes itself (a delivery outcome, a handler's event, the
//! worker's observations) to `relay.events`, where handlers bind to it like to any inbound
//! event. Ingress's publish of inbound events has its own pipeline (dedup, trace context,
//! headers); everything else goes through here.

use std::time::Duration;

use lapin::types::FieldTable;
use relay_core::{CloudEvent, event, routing};

use crate::{Broker, Publish, PublishError};

/// Publishes `event` to `relay.events` under `routing_key` and waits for the confirm,
/// retrying transient failures for up to `budget` ([`Broker::publish_patiently`]). The
/// message id is the event's id, so a repeat is recognised downstream.
pub async fn publish_patiently(
    broker: &Broker,
    routing_key: &str,
    event: &CloudEvent,
    budget: Duration,
) -> Result<(), PublishError> {
    let body = serde_json::to_vec(event).expect("a CloudEvent always serialises");
    broker
        .publish_patiently(
            Publish {
                exchange: routing::EVENTS_EXCHANGE,
                routing_key,
                message_id: &event.id,
                content_type: event::CONTENT_TYPE,
                body: &body,
                headers: FieldTable::default(),
            },
            budget,
        )
        .await
}
