//! Delivery jobs: what the worker asks delivery to send.
//!
//! A job names its destination; the destination's URL and secret live only in delivery's
//! configuration, so secrets never travel through the broker and a rotated secret applies to
//! the next attempt.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Media type of a serialised job on `relay.deliveries`.
pub const CONTENT_TYPE: &str = "application/vnd.relay.job+json";

/// One outbound request to make, at least once, to a named destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// Deterministic job id ([`crate::ids::job_id`]); also the AMQP `message_id`.
    pub id: String,
    /// The event this job was made from.
    pub event_id: String,
    /// The handler that made it.
    pub handler: String,
    /// Destination name, resolved by delivery from its configuration.
    pub destination: String,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path appended to the destination's URL (may be empty).
    #[serde(default)]
    pub path: String,
    /// Non-secret headers to send.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Media type of `body`.
    pub content_type: String,
    /// The exact body bytes to send (and sign).
    pub body: String,
    /// Sent as `Idempotency-Key`; the job id unless a handler says otherwise.
    pub idempotency_key: String,
    /// When the job was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this instant the job is dead-lettered instead of retried.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub give_up_after: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let job = DeliveryJob {
            id: "j".into(),
            event_id: "e".into(),
            handler: "min-balance-alert".into(),
            destination: "alerts".into(),
            method: "POST".into(),
            path: String::new(),
            headers: BTreeMap::from([("x-a".into(), "1".into())]),
            content_type: "application/json".into(),
            body: r#"{"a":1}"#.into(),
            idempotency_key: "j".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            give_up_after: None,
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<DeliveryJob>(&text).unwrap(), job);
    }
}
