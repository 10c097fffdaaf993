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
    /// Publish a delivery outcome event (`relay.delivery.succeeded` / `failed`) when the job
    /// settles. Delivery reports every dead-lettered job's failure regardless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_outcome: bool,
    /// Small, non-secret facts the handler wants back in the outcome event (e.g. a call session
    /// and the message's place in it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// What the request carries, for operators and failure alerts: the type of the event it was
    /// made from (set by the worker's runner when the handler leaves it empty), or the
    /// handler's own word for it (the call log's `call-log.answered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

impl DeliveryJob {
    /// A `POST` job with the defaults every handler starts from: the idempotency key is the job
    /// id, no extra headers, no path, no outcome report.
    pub fn post(
        id: String,
        event_id: &str,
        handler: &str,
        destination: &str,
        content_type: &str,
        body: String,
    ) -> Self {
        Self {
            idempotency_key: id.clone(),
            id,
            event_id: event_id.to_owned(),
            handler: handler.to_owned(),
            destination: destination.to_owned(),
            method: "POST".to_owned(),
            path: String::new(),
            headers: BTreeMap::new(),
            content_type: content_type.to_owned(),
            body,
            created_at: OffsetDateTime::now_utc(),
            give_up_after: None,
            report_outcome: false,
            context: BTreeMap::new(),
            event_type: None,
        }
    }
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
            report_outcome: true,
            context: BTreeMap::from([("session".into(), "s-1".into())]),
            event_type: Some("voximplant.min_balance".into()),
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<DeliveryJob>(&text).unwrap(), job);
    }

    #[test]
    fn jobs_written_before_outcomes_existed_still_parse() {
        let old = r#"{"id":"j","event_id":"e","handler":"h","destination":"d","method":"POST",
            "content_type":"application/json","body":"{}","idempotency_key":"j",
            "created_at":"2026-01-01T00:00:00Z"}"#;
        let job: DeliveryJob = serde_json::from_str(old).unwrap();
        assert!(!job.report_outcome);
        assert!(job.context.is_empty());
        let text = serde_json::to_string(&job).unwrap();
        assert!(
            !text.contains("report_outcome") && !text.contains("context"),
            "{text}"
        );
    }
}
