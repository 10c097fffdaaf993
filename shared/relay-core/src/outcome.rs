//! Delivery outcome events: what became of a job, published by relay-delivery to
//! `relay.events` so handlers can react to it like to any other event (docs/ARCHITECTURE.md, "Delivery
//! outcome events").
//!
//! A job that asks for it ([`crate::DeliveryJob::report_outcome`]) gets one when it settles;
//! every dead-lettered job gets a `failed` one regardless. Routing key
//! `relay.delivery.<succeeded|failed>.<handler>` ([`crate::routing::outcome_key`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CloudEvent, DeliveryJob, ids};

/// CloudEvent type of a success.
pub const SUCCEEDED_TYPE: &str = "relay.delivery.succeeded";
/// CloudEvent type of a failure (the job was dead-lettered).
pub const FAILED_TYPE: &str = "relay.delivery.failed";
/// Longest response excerpt an outcome carries, in bytes.
pub const EXCERPT_LIMIT: usize = 1024;

/// The `data` of an outcome event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryOutcome {
    /// The job.
    pub job_id: String,
    /// The event the job was made from.
    pub event_id: String,
    /// The handler that made the job.
    pub handler: String,
    /// Destination name.
    pub destination: String,
    /// Delivered (2xx), or given up on.
    pub succeeded: bool,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last attempt, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed (the dead-letter reason, e.g. `http_status`, `attempts_exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The first bytes of the last response body (at most [`EXCERPT_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    /// What the job carried ([`DeliveryJob::event_type`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The job's context, as the handler wrote it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

impl DeliveryOutcome {
    /// The outcome of `job` after `attempts`, with no failure details yet.
    pub fn of(job: &DeliveryJob, succeeded: bool, attempts: u32) -> Self {
        Self {
            job_id: job.id.clone(),
            event_id: job.event_id.clone(),
            handler: job.handler.clone(),
            destination: job.destination.clone(),
            succeeded,
            attempts,
            status: None,
            reason: None,
            detail: None,
            response_excerpt: None,
            event_type: job.event_type.clone(),
            context: job.context.clone(),
        }
    }

    /// The CloudEvent to publish. Its id derives from the job and what happened to it, so a
    /// re-published outcome (delivery crashed before its ack) is the same event.
    pub fn to_event(&self) -> CloudEvent {
        let (ty, what) = if self.succeeded {
            (SUCCEEDED_TYPE, "succeeded")
        } else {
            (FAILED_TYPE, "failed")
        };
        let attempts = self.attempts.to_string();
        let reason = self.reason.as_deref().unwrap_or_default();
        let id = ids::derived_event_id("relay-delivery", &[&self.job_id, what, &attempts, reason]);
        let data = serde_json::to_value(self).expect("an outcome always serialises");
        CloudEvent::new(id, "relay/delivery".to_owned(), ty.to_owned(), data)
            .with_subject(self.job_id.clone())
    }

    /// Reads an outcome back from its event.
    pub fn from_event(event: &CloudEvent) -> Result<Self, serde_json::Error> {
        serde_json::from_value(event.data.clone())
    }
}

/// `text` cut to at most [`EXCERPT_LIMIT`] bytes, on a character boundary.
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_LIMIT {
        return text.to_owned();
    }
    let mut end = EXCERPT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> DeliveryJob {
        let mut job = DeliveryJob::post(
            "j-1".into(),
            "e-1",
            "call-log",
            "helpdesk",
            "application/json",
            "{}".into(),
        );
        job.context.insert("session".into(), "s".into());
        job
    }

    #[test]
    fn round_trips_and_ids_are_deterministic() {
        let mut outcome = DeliveryOutcome::of(&job(), false, 3);
        outcome.reason = Some("http_status".into());
        outcome.status = Some(400);
        let event = outcome.to_event();
        assert_eq!(event.ty, FAILED_TYPE);
        assert_eq!(event.subject.as_deref(), Some("j-1"));
        assert_eq!(DeliveryOutcome::from_event(&event).unwrap(), outcome);
        assert_eq!(event.id, outcome.to_event().id);
        let success = DeliveryOutcome::of(&job(), true, 3).to_event();
        assert_ne!(success.id, event.id);
        assert_eq!(success.data["context"]["session"], "s");
    }

    #[test]
    fn excerpts_stop_at_the_limit_on_a_char_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(EXCERPT_LIMIT);
        let cut = excerpt(&long);
        assert!(cut.len() <= EXCERPT_LIMIT && cut.len() >= EXCERPT_LIMIT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
